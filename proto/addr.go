package proto

import (
	"net/netip"
	"strconv"
)

// An Addr is a SOCKS address: ATYP, DST.ADDR and DST.PORT of RFC 1928.
// Exactly one of IP and FQDN is set. The zero Addr encodes as 0.0.0.0:0.
//
// The ATYP follows the form of IP, so that parsing and re-encoding give
// back the same bytes: a 4-byte IP encodes as ATYP 1 and a 16-byte one as
// ATYP 4, including an IPv4-mapped address (::ffff:a.b.c.d) received as
// ATYP 4. Use [AddrFromAddrPort] or IP.Unmap() to send such an address as
// IPv4.
//
//	+------+----------+----------+
//	| ATYP | DST.ADDR | DST.PORT |
//	+------+----------+----------+
//	|  1   | Variable |    2     |
//	+------+----------+----------+
type Addr struct {
	IP   netip.Addr // IPv4 (ATYP 1) or IPv6 (ATYP 4, ::ffff:a.b.c.d included)
	FQDN string     // domain name, 1–255 bytes, not resolved
	Port uint16
}

// AddrFromAddrPort returns the Addr for ap. It unmaps an IPv4-mapped IPv6
// address, so that an address learned from a dual-stack socket goes out
// as ATYP 1.
func AddrFromAddrPort(ap netip.AddrPort) Addr {
	return Addr{IP: ap.Addr().Unmap(), Port: ap.Port()}
}

// AddrPort returns a's IP address and port; ok is false for a domain name.
func (a Addr) AddrPort() (ap netip.AddrPort, ok bool) {
	if a.FQDN != "" {
		return netip.AddrPort{}, false
	}
	ip := a.IP
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	return netip.AddrPortFrom(ip, a.Port), true
}

// String returns "host:port", with IPv6 addresses in brackets.
func (a Addr) String() string {
	host := a.FQDN
	if host == "" {
		if a.IP.IsValid() {
			host = a.IP.String()
		} else {
			host = "0.0.0.0"
		}
	}
	return netipJoin(host, a.Port)
}

func netipJoin(host string, port uint16) string {
	p := strconv.FormatUint(uint64(port), 10)
	for i := 0; i < len(host); i++ {
		if host[i] == ':' {
			return "[" + host + "]:" + p
		}
	}
	return host + ":" + p
}

// Type returns the ATYP that a encodes as.
func (a Addr) Type() AddrType {
	switch {
	case a.FQDN != "":
		return AddrTypeFQDN
	case a.IP.Is6():
		return AddrTypeIPv6
	}
	return AddrTypeIPv4
}

// EncodedLen returns the length of a's encoding.
func (a Addr) EncodedLen() int {
	switch a.Type() {
	case AddrTypeFQDN:
		return 1 + 1 + len(a.FQDN) + 2
	case AddrTypeIPv6:
		return 1 + 16 + 2
	}
	return 1 + 4 + 2
}

// AppendBinary appends ATYP, ADDR and PORT. It fails with ErrTooLong for a
// domain name over 255 bytes. (An empty FQDN means an IP address.)
func (a Addr) AppendBinary(b []byte) ([]byte, error) {
	switch a.Type() {
	case AddrTypeFQDN:
		if len(a.FQDN) > MaxFQDNLen {
			return b, ErrTooLong
		}
		b = append(b, byte(AddrTypeFQDN), byte(len(a.FQDN)))
		b = append(b, a.FQDN...)
	case AddrTypeIPv6:
		ip := a.IP.As16()
		b = append(b, byte(AddrTypeIPv6))
		b = append(b, ip[:]...)
	default:
		ip := [4]byte{}
		if a.IP.IsValid() {
			ip = a.IP.As4()
		}
		b = append(b, byte(AddrTypeIPv4))
		b = append(b, ip[:]...)
	}
	return append(b, byte(a.Port>>8), byte(a.Port)), nil
}

// ParseAddr decodes ATYP, ADDR and PORT from the front of b. It returns
// ErrAddressType for an unknown ATYP and ErrMalformed for an empty domain
// name.
func ParseAddr(b []byte) (Addr, int, error) {
	if len(b) < 1 {
		return Addr{}, 0, ErrShortBuffer
	}
	var a Addr
	n := 1
	switch AddrType(b[0]) {
	case AddrTypeIPv4:
		if len(b) < 1+4+2 {
			return Addr{}, 0, ErrShortBuffer
		}
		a.IP = netip.AddrFrom4([4]byte(b[1:5]))
		n += 4
	case AddrTypeIPv6:
		if len(b) < 1+16+2 {
			return Addr{}, 0, ErrShortBuffer
		}
		a.IP = netip.AddrFrom16([16]byte(b[1:17]))
		n += 16
	case AddrTypeFQDN:
		if len(b) < 2 {
			return Addr{}, 0, ErrShortBuffer
		}
		l := int(b[1])
		if l == 0 {
			return Addr{}, 0, ErrMalformed
		}
		if len(b) < 2+l+2 {
			return Addr{}, 0, ErrShortBuffer
		}
		a.FQDN = string(b[2 : 2+l])
		n += 1 + l
	default:
		return Addr{}, 0, ErrAddressType
	}
	a.Port = uint16(b[n])<<8 | uint16(b[n+1])
	return a, n + 2, nil
}
