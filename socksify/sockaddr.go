package socksify

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// Sizes of the Linux socket address structures.
const (
	sizeofSockaddrInet4 = 16  // struct sockaddr_in
	sizeofSockaddrInet6 = 28  // struct sockaddr_in6
	maxSockaddrLen      = 128 // struct sockaddr_storage
)

var (
	errSockaddrShort  = errors.New("socket address too short")
	errSockaddrFamily = errors.New("socket address family not handled")
)

// A sockaddr is a decoded struct sockaddr: an IP address and port
// (AF_INET, AF_INET6), a path (AF_UNIX; abstract names start with a NUL
// byte), or just a family.
type sockaddr struct {
	family uint16
	ap     netip.AddrPort // AF_INET, AF_INET6 (with the zone from sin6_scope_id); AF_UNSPEC, see below
	path   string         // AF_UNIX
}

// parseSockaddr decodes b, the bytes a program passed with its length.
// Multi-byte fields are in host order (little endian on x86_64) except
// ports and addresses, which are in network order.
func parseSockaddr(b []byte) (sockaddr, error) {
	if len(b) < 2 {
		return sockaddr{}, errSockaddrShort
	}
	sa := sockaddr{family: binary.LittleEndian.Uint16(b)}
	switch sa.family {
	case afInet:
		if len(b) < sizeofSockaddrInet4 {
			return sa, errSockaddrShort
		}
		ip := netip.AddrFrom4([4]byte(b[4:8]))
		sa.ap = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4]))
	case afInet6:
		// The kernel accepts the 24-byte RFC 2133 form without
		// sin6_scope_id.
		if len(b) < 24 {
			return sa, errSockaddrShort
		}
		ip := netip.AddrFrom16([16]byte(b[8:24]))
		if len(b) >= sizeofSockaddrInet6 {
			if scope := binary.LittleEndian.Uint32(b[24:28]); scope != 0 && ip.IsLinkLocalUnicast() {
				ip = ip.WithZone(strconv.FormatUint(uint64(scope), 10))
			}
		}
		sa.ap = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4]))
	case afUnix:
		p := b[2:]
		if len(p) > 0 && p[0] != 0 {
			// A pathname: up to the first NUL.
			for i, c := range p {
				if c == 0 {
					p = p[:i]
					break
				}
			}
		}
		sa.path = string(p)
	case afUnspec:
		// Still errSockaddrFamily: connect takes AF_UNSPEC as
		// "disconnect". But an AF_INET UDP socket's sendto and sendmsg
		// take it as AF_INET (udp_sendmsg), so ap holds the address that
		// the datagram would go to, for the send paths (sendDest).
		if len(b) >= sizeofSockaddrInet4 {
			sa.ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
		}
		return sa, errSockaddrFamily
	default:
		return sa, errSockaddrFamily
	}
	return sa, nil
}

// isIP reports whether sa is an AF_INET or AF_INET6 address.
func (sa sockaddr) isIP() bool { return sa.family == afInet || sa.family == afInet6 }

// appendSockaddr appends ap as a struct sockaddr of the given family: a
// sockaddr_in for afInet (ap must be IPv4 or IPv4-mapped), a sockaddr_in6
// for afInet6 (IPv4 becomes IPv4-mapped; a numeric zone becomes
// sin6_scope_id).
func appendSockaddr(b []byte, family int, ap netip.AddrPort) ([]byte, error) {
	ip := ap.Addr()
	switch family {
	case afInet:
		ip = ip.Unmap()
		if !ip.Is4() {
			return b, errSockaddrFamily
		}
		var s [sizeofSockaddrInet4]byte
		binary.LittleEndian.PutUint16(s[0:], afInet)
		binary.BigEndian.PutUint16(s[2:], ap.Port())
		a4 := ip.As4()
		copy(s[4:], a4[:])
		return append(b, s[:]...), nil
	case afInet6:
		var s [sizeofSockaddrInet6]byte
		binary.LittleEndian.PutUint16(s[0:], afInet6)
		binary.BigEndian.PutUint16(s[2:], ap.Port())
		a16 := ip.As16()
		copy(s[8:], a16[:])
		// parseSockaddr keeps a link-local scope as a numeric zone; put
		// it back, so that an address reported to the program still
		// names its interface.
		if z := ip.Zone(); z != "" {
			if id, err := strconv.ParseUint(z, 10, 32); err == nil {
				binary.LittleEndian.PutUint32(s[24:], uint32(id))
			}
		}
		return append(b, s[:]...), nil
	}
	return b, errSockaddrFamily
}
