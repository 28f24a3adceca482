package proto

import "net/netip"

// An IPRange is an inclusive range of IP addresses of one family, and an
// IP protocol number (0 for any), in the shape of RFC 9484's IP Address
// Range.
//
//	+------------+---------------+---------------+-------------+
//	| IP Version | Start Address |  End Address  | IP Protocol |
//	+------------+---------------+---------------+-------------+
//	|     1      |    4 or 16    |    4 or 16    |      1      |
//	+------------+---------------+---------------+-------------+
//
// The IP version (4 or 6) is not a field: it is the family of Start and
// End, which must agree. An IPv4-mapped address belongs to version 6.
type IPRange struct {
	Start, End netip.Addr
	Protocol   uint8
}

// Version returns 4 or 6, the IP version field of r, or 0 if Start is not
// a valid address.
func (r IPRange) Version() uint8 {
	switch {
	case r.Start.Is4():
		return 4
	case r.Start.Is6():
		return 6
	}
	return 0
}

// A Routes is the value of a ROUTES frame: the destinations this gateway
// serves. A client sends other destinations elsewhere (directly, or to
// another gateway); the gateway answers them with ReplyNotServed.
//
//	+------------+-------+--------+--------+--------+---------+
//	| Generation | Flags | Count  | Ranges | Count  | Domains |
//	+------------+-------+--------+--------+--------+---------+
//	|   varint   |   1   | varint |   …    | varint |    …    |
//	+------------+-------+--------+--------+--------+---------+
//
// Each domain is a length byte (1 to 255) and a name in A-labels; a name
// that starts with "*." covers its subdomains only. The only flag is
// DEFAULT_ROUTE (0x01); the others must be zero.
type Routes struct {
	// Generation grows with every change; a client keeps the routes of
	// the highest generation it has seen.
	Generation uint64
	// DefaultRoute (flag 0x01) says the gateway serves every
	// destination, Ranges and Domains aside.
	DefaultRoute bool
	Ranges       []IPRange
	Domains      []string
}

// FrameType returns FrameRoutes.
func (Routes) FrameType() FrameType { return FrameRoutes }

const flagDefaultRoute = 0x01

// AppendBinary appends the ROUTES value. It fails with ErrMalformed for a
// range whose ends are invalid, of different families or out of order,
// and for an empty domain name; with ErrTooLong for a name over 255 bytes
// or a Generation over MaxVarint.
func (r Routes) AppendBinary(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.varint(r.Generation)
	var flags byte
	if r.DefaultRoute {
		flags |= flagDefaultRoute
	}
	e.u8(flags)
	e.varint(uint64(len(r.Ranges)))
	for _, x := range r.Ranges {
		v := x.Version()
		if v == 0 || !x.End.IsValid() || x.End.BitLen() != x.Start.BitLen() || x.Start.Compare(x.End) > 0 {
			return b, ErrMalformed
		}
		e.u8(v)
		e.bytes(x.Start.AsSlice())
		e.bytes(x.End.AsSlice())
		e.u8(x.Protocol)
	}
	e.varint(uint64(len(r.Domains)))
	for _, name := range r.Domains {
		if name == "" {
			return b, ErrMalformed
		}
		if len(name) > MaxFQDNLen {
			return b, ErrTooLong
		}
		e.u8(byte(len(name)))
		e.str(name)
	}
	return e.result(b)
}

// ParseRoutes decodes a ROUTES value. It fails with ErrMalformed for
// unknown flags, an IP version other than 4 and 6, a range whose start is
// after its end, an empty domain name, or bytes after the last domain;
// and with ErrShortBuffer as soon as a count could not fit in what is
// left, before it allocates anything.
func ParseRoutes(b []byte) (Routes, error) {
	d := decoder{b: b}
	var r Routes
	r.Generation = d.varint()
	flags := d.u8()
	if d.err == nil && flags&^flagDefaultRoute != 0 {
		return Routes{}, ErrMalformed
	}
	r.DefaultRoute = flags&flagDefaultRoute != 0
	const minRange = 1 + 4 + 4 + 1
	if n := d.count(minRange); n > 0 {
		r.Ranges = make([]IPRange, n)
		for i := range r.Ranges {
			x := &r.Ranges[i]
			switch d.u8() {
			case 4:
				var s, e [4]byte
				d.read(s[:])
				d.read(e[:])
				x.Start, x.End = netip.AddrFrom4(s), netip.AddrFrom4(e)
			case 6:
				var s, e [16]byte
				d.read(s[:])
				d.read(e[:])
				x.Start, x.End = netip.AddrFrom16(s), netip.AddrFrom16(e)
			default:
				d.fail(ErrMalformed)
			}
			x.Protocol = d.u8()
			if d.err != nil {
				return Routes{}, d.err
			}
			if x.Start.Compare(x.End) > 0 {
				return Routes{}, ErrMalformed
			}
		}
	}
	const minDomain = 1 + 1
	if n := d.count(minDomain); n > 0 {
		r.Domains = make([]string, n)
		for i := range r.Domains {
			l := d.u8()
			if d.err == nil && l == 0 {
				return Routes{}, ErrMalformed
			}
			r.Domains[i] = string(d.bytes(int(l)))
			if d.err != nil {
				return Routes{}, d.err
			}
		}
	}
	if err := d.end(); err != nil {
		return Routes{}, err
	}
	return r, nil
}
