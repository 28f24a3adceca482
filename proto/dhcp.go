package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// DHCP discovery (draft-socks6-extensions-00, "Discovery"): the SOCKS
// gateway option of DHCPv4, and the sub-option of DHCPv6's
// OPTION_VENDOR_OPTS that carries the same list until a code is
// assigned.
const (
	// DHCPv4GatewayOption is the DHCPv4 option code the draft uses until
	// IANA assigns one, from the site-specific range (RFC 3942).
	DHCPv4GatewayOption = 224
	// DHCPv6VendorOpts is OPTION_VENDOR_OPTS (RFC 8415).
	DHCPv6VendorOpts = 17
	// DHCPv6Enterprise is the placeholder enterprise number of the
	// DHCPv6 form (32473, for documentation, RFC 5612).
	DHCPv6Enterprise = 32473
	// DHCPv6GatewaySubOption is the sub-option code under it.
	DHCPv6GatewaySubOption = 1
)

// A GatewayEntry is one gateway in a DHCP SOCKS gateway option.
type GatewayEntry struct {
	// Priority: lower is preferred; equal ones are used in random order.
	Priority uint16
	// Addr and Port are where the gateway listens: IPv4 in the DHCPv4
	// option, IPv6 in the DHCPv6 one.
	Addr netip.Addr
	Port uint16
	// ALPN lists the protocol IDs the port accepts over TLS; empty
	// means cleartext SOCKS5 (with 0xC6 for the extensions).
	ALPN []string
}

// TLS reports whether the entry's port expects TLS.
func (e GatewayEntry) TLS() bool { return len(e.ALPN) > 0 }

// String returns the entry as a proxy URL with its priority: for example
// "socks6://192.0.2.1:1080 priority 10" or "socks6s://… alpn socks6,socks5".
func (e GatewayEntry) String() string {
	s := "socks6://"
	if e.TLS() {
		s = "socks6s://"
	}
	s += netip.AddrPortFrom(e.Addr, e.Port).String() + " priority " + strconv.Itoa(int(e.Priority))
	if e.TLS() {
		s += " alpn "
		for i, p := range e.ALPN {
			if i > 0 {
				s += ","
			}
			s += p
		}
	}
	return s
}

// AppendGatewayEntries appends entries in the Gateway Entry format: with
// 4-byte addresses if v6 is false (every Addr must then be IPv4), else
// 16-byte ones (every Addr IPv6, IPv4-mapped included).
func AppendGatewayEntries(b []byte, entries []GatewayEntry, v6 bool) ([]byte, error) {
	for _, e := range entries {
		if !e.Addr.IsValid() || v6 != e.Addr.Is6() {
			return nil, fmt.Errorf("gateway entry %v: not an address of the option's family (IPv4 for DHCPv4, IPv6 for DHCPv6): %w", e.Addr, ErrMalformed)
		}
		b = binary.BigEndian.AppendUint16(b, e.Priority)
		b = binary.BigEndian.AppendUint16(b, e.Port)
		n := 0
		for _, p := range e.ALPN {
			if len(p) == 0 || len(p) > 255 {
				return nil, fmt.Errorf("gateway entry ALPN ID %q: length 1 to 255: %w", p, ErrMalformed)
			}
			n += 1 + len(p)
		}
		if n > 255 {
			return nil, fmt.Errorf("gateway entry ALPN IDs: %d bytes, at most 255: %w", n, ErrMalformed)
		}
		b = append(b, byte(n))
		for _, p := range e.ALPN {
			b = append(b, byte(len(p)))
			b = append(b, p...)
		}
		if v6 {
			a := e.Addr.As16()
			b = append(b, a[:]...)
		} else {
			a := e.Addr.As4()
			b = append(b, a[:]...)
		}
	}
	return b, nil
}

// ParseGatewayEntries decodes a whole option value of Gateway Entries,
// with 4-byte addresses if v6 is false, else 16-byte ones. Anything that
// does not parse, up to the last byte, makes the whole option malformed:
// the DHCPv4 code is site-specific, so another site's option 224 must be
// ignored rather than half read. An empty value is malformed too.
func ParseGatewayEntries(b []byte, v6 bool) ([]GatewayEntry, error) {
	alen := 4
	if v6 {
		alen = 16
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("gateway option: empty: %w", ErrMalformed)
	}
	var out []GatewayEntry
	for len(b) > 0 {
		if len(b) < 5 {
			return nil, fmt.Errorf("gateway option: entry cut short: %w", ErrMalformed)
		}
		e := GatewayEntry{Priority: binary.BigEndian.Uint16(b), Port: binary.BigEndian.Uint16(b[2:])}
		n := int(b[4])
		b = b[5:]
		if len(b) < n+alen {
			return nil, fmt.Errorf("gateway option: entry cut short: %w", ErrMalformed)
		}
		ids := b[:n]
		for len(ids) > 0 {
			l := int(ids[0])
			if l == 0 || l+1 > len(ids) {
				return nil, fmt.Errorf("gateway option: bad ALPN ID length: %w", ErrMalformed)
			}
			e.ALPN = append(e.ALPN, string(ids[1:1+l]))
			ids = ids[1+l:]
		}
		a, _ := netip.AddrFromSlice(b[n : n+alen])
		if e.Port == 0 || a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("gateway option: unusable address %v port %d: %w", a, e.Port, ErrMalformed)
		}
		e.Addr = a
		out = append(out, e)
		b = b[n+alen:]
	}
	return out, nil
}

// AppendDHCPv6VendorGateways appends the value of an OPTION_VENDOR_OPTS
// (without the option's own code and length) that carries entries under
// the enterprise number ent as sub-option DHCPv6GatewaySubOption.
func AppendDHCPv6VendorGateways(b []byte, ent uint32, entries []GatewayEntry) ([]byte, error) {
	sub, err := AppendGatewayEntries(nil, entries, true)
	if err != nil {
		return nil, err
	}
	if len(sub) > 0xffff {
		return nil, fmt.Errorf("gateway sub-option: %d bytes: %w", len(sub), ErrTooLong)
	}
	b = binary.BigEndian.AppendUint32(b, ent)
	b = binary.BigEndian.AppendUint16(b, DHCPv6GatewaySubOption)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sub)))
	return append(b, sub...), nil
}

// ErrNoGatewaySubOption is returned for a vendor option of another
// enterprise, or one without the gateway sub-option: not an error in the
// option, just not one that names gateways.
var ErrNoGatewaySubOption = errors.New("no SOCKS gateway sub-option")

// ParseDHCPv6VendorGateways decodes the value of an OPTION_VENDOR_OPTS:
// the entries of its gateway sub-option if its enterprise number is ent.
// The sub-options must all parse.
func ParseDHCPv6VendorGateways(b []byte, ent uint32) ([]GatewayEntry, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("vendor option: cut short: %w", ErrMalformed)
	}
	if binary.BigEndian.Uint32(b) != ent {
		return nil, ErrNoGatewaySubOption
	}
	b = b[4:]
	var found []byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("vendor option: sub-option cut short: %w", ErrMalformed)
		}
		code, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if len(b) < 4+l {
			return nil, fmt.Errorf("vendor option: sub-option cut short: %w", ErrMalformed)
		}
		if code == DHCPv6GatewaySubOption {
			if found != nil {
				return nil, fmt.Errorf("vendor option: gateway sub-option twice: %w", ErrMalformed)
			}
			found = b[4 : 4+l]
		}
		b = b[4+l:]
	}
	if found == nil {
		return nil, ErrNoGatewaySubOption
	}
	return ParseGatewayEntries(found, true)
}
