package proto

import "net/netip"

// Flags of a LISTEN request.
const (
	flagExact     = 0x01
	flagDualStack = 0x02
)

// An ExtRequest is the value of a REQUEST frame: a command on a framed
// connection. (Request is the RFC 1928 request.)
//
//	+------------+---------+-------+----------+--------------+---------+
//	| Request ID | Command | Flags | Address  | Command data | Options |
//	+------------+---------+-------+----------+--------------+---------+
//	|   varint   |    1    |   1   | Variable |   Variable   | to end  |
//	+------------+---------+-------+----------+--------------+---------+
//
// Command data is Token (16) for TAKE; Session ID (16), Generation
// (varint) and Proof (32) for RESUME; and empty for every other command,
// including commands proto does not know, so that the gateway can parse
// such a request and answer ReplyCommandNotSupported. Flags are defined
// for LISTEN only and must be zero otherwise.
//
// The encoder ignores the fields that Command does not carry.
type ExtRequest struct {
	// ID is chosen by the client and echoed in the REPLY.
	ID      uint64
	Command Command
	// Exact (LISTEN, flag 0x01) asks the gateway to fail with
	// ReplyPortUnavailable rather than pick another port.
	Exact bool
	// DualStack (LISTEN, flag 0x02) asks for a listener on both IPv4
	// and IPv6.
	DualStack bool
	// Addr is the target for CONNECT, BIND and UDP ASSOCIATE; the
	// requested bind address for LISTEN (port 0 means any); the name to
	// look up, port 0, for RESOLVE; and 0.0.0.0:0 (the zero Addr) for
	// TAKE, UDP and RESUME.
	Addr       Addr
	Token      Token     // TAKE
	SessionID  SessionID // RESUME
	Generation uint64    // RESUME
	Proof      Proof     // RESUME
	Options    Options
}

// FrameType returns FrameRequest.
func (ExtRequest) FrameType() FrameType { return FrameRequest }

// AppendBinary appends the REQUEST value. It fails with ErrTooLong for an
// ID or Generation over MaxVarint or a domain name over 255 bytes, and as
// Options.AppendBinary does.
func (r ExtRequest) AppendBinary(b []byte) ([]byte, error) {
	var flags byte
	if r.Command == CommandListen {
		if r.Exact {
			flags |= flagExact
		}
		if r.DualStack {
			flags |= flagDualStack
		}
	}
	e := encoder{b: b}
	e.varint(r.ID)
	e.u8(byte(r.Command))
	e.u8(flags)
	e.addr(r.Addr)
	switch r.Command {
	case CommandTake:
		e.bytes(r.Token[:])
	case CommandResume:
		e.bytes(r.SessionID[:])
		e.varint(r.Generation)
		e.bytes(r.Proof[:])
	}
	if err := r.Options.checkAttach(attachRequest); err != nil {
		return b, err
	}
	e.options(r.Options)
	return e.result(b)
}

// ParseExtRequest decodes a REQUEST value. It fails with ErrMalformed for
// flags not defined for the command or an ATTACH option in the REPLY
// form, with ErrAddressType for an unknown ATYP, and as ParseOptions does
// for the options. It accepts any command.
//
// The draft has the gateway answer an unknown ATYP with
// ReplyAddressTypeNotSupported rather than treat the frame as malformed;
// it finds the Request ID to answer with ParseVarint(b).
func ParseExtRequest(b []byte) (ExtRequest, error) {
	d := decoder{b: b}
	var r ExtRequest
	r.ID = d.varint()
	r.Command = Command(d.u8())
	flags := d.u8()
	if d.err == nil {
		allowed := byte(0)
		if r.Command == CommandListen {
			allowed = flagExact | flagDualStack
		}
		if flags&^allowed != 0 {
			return ExtRequest{}, ErrMalformed
		}
		r.Exact = flags&flagExact != 0
		r.DualStack = flags&flagDualStack != 0
	}
	r.Addr = d.addr()
	switch r.Command {
	case CommandTake:
		d.read(r.Token[:])
	case CommandResume:
		d.read(r.SessionID[:])
		r.Generation = d.varint()
		d.read(r.Proof[:])
	}
	r.Options = d.options()
	if d.err != nil {
		return ExtRequest{}, d.err
	}
	if err := r.Options.checkAttach(attachRequest); err != nil {
		return ExtRequest{}, err
	}
	return r, nil
}

// A ResolveAnswer is one address in the REPLY to RESOLVE: a TTL in
// seconds (4 bytes) and a host address, ATYP 1 or 4 without a port.
type ResolveAnswer struct {
	TTL  uint32
	Addr netip.Addr // 4 bytes for ATYP 1, 16 for ATYP 4 (an IPv4-mapped address stays 16)
}

// An ExtReply is the value of a REPLY frame: the gateway's answer to an
// ExtRequest.
//
//	+------------+-------+----------+------------+---------+
//	| Request ID | Reply | Address  | Reply data | Options |
//	+------------+-------+----------+------------+---------+
//	|   varint   |   1   | Variable |  Variable  | to end  |
//	+------------+-------+----------+------------+---------+
//
// Reply data is present only when Reply is ReplySucceeded, and its layout
// depends on the command of the request, which the REPLY does not carry:
// Listener ID (varint) for LISTEN; Association ID (varint) for UDP;
// Count (varint) and Count × {TTL (4), ATYP (1), address} for RESOLVE;
// Generation (varint) and Proof (32) for RESUME; and empty for every other
// command. The client finds the command by the Request ID, which it reads
// with ParseVarint before it calls ParseExtReply.
//
// The encoder ignores the fields that Command and Code do not carry.
type ExtReply struct {
	ID   uint64
	Code ReplyCode
	// Addr is the bound address: the gateway's end of the connection for
	// CONNECT, the listening address for LISTEN, the caller for TAKE,
	// and 0.0.0.0:0 (the zero Addr) otherwise.
	Addr Addr
	// Command is the command of the request this reply answers. It is
	// not on the wire; it says how to encode and decode the reply data.
	Command    Command
	ListenerID uint64          // LISTEN
	AssocID    uint64          // UDP
	Answers    []ResolveAnswer // RESOLVE
	Generation uint64          // RESUME: the new generation
	Proof      Proof           // RESUME: the gateway's proof
	Options    Options
}

// FrameType returns FrameReply.
func (ExtReply) FrameType() FrameType { return FrameReply }

// AppendBinary appends the REPLY value. It fails with ErrTooLong for a
// number over MaxVarint or a domain name over 255 bytes, with
// ErrMalformed for an invalid answer address, and as Options.AppendBinary
// does.
func (r ExtReply) AppendBinary(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.varint(r.ID)
	e.u8(byte(r.Code))
	e.addr(r.Addr)
	if r.Code == ReplySucceeded {
		switch r.Command {
		case CommandListen:
			e.varint(r.ListenerID)
		case CommandUDP:
			e.varint(r.AssocID)
		case CommandResolve:
			e.varint(uint64(len(r.Answers)))
			for _, a := range r.Answers {
				e.u32(a.TTL)
				switch {
				case a.Addr.Is4():
					ip := a.Addr.As4()
					e.u8(byte(AddrTypeIPv4))
					e.bytes(ip[:])
				case a.Addr.Is6():
					ip := a.Addr.As16()
					e.u8(byte(AddrTypeIPv6))
					e.bytes(ip[:])
				default:
					e.fail(ErrMalformed)
				}
			}
		case CommandResume:
			e.varint(r.Generation)
			e.bytes(r.Proof[:])
		}
	}
	if err := r.Options.checkAttach(attachReply); err != nil {
		return b, err
	}
	e.options(r.Options)
	return e.result(b)
}

// ParseExtReply decodes a REPLY value that answers a request for command
// cmd. It fails with ErrAddressType for an unknown ATYP or an answer that
// is not an IP address, with ErrMalformed for an ATTACH option in the
// REQUEST form, and as ParseOptions does for the options.
func ParseExtReply(b []byte, cmd Command) (ExtReply, error) {
	d := decoder{b: b}
	r := ExtReply{Command: cmd}
	r.ID = d.varint()
	r.Code = ReplyCode(d.u8())
	r.Addr = d.addr()
	if r.Code == ReplySucceeded {
		switch cmd {
		case CommandListen:
			r.ListenerID = d.varint()
		case CommandUDP:
			r.AssocID = d.varint()
		case CommandResolve:
			r.Answers = parseAnswers(&d)
		case CommandResume:
			r.Generation = d.varint()
			d.read(r.Proof[:])
		}
	}
	r.Options = d.options()
	if d.err != nil {
		return ExtReply{}, d.err
	}
	if err := r.Options.checkAttach(attachReply); err != nil {
		return ExtReply{}, err
	}
	return r, nil
}

func parseAnswers(d *decoder) []ResolveAnswer {
	const minAnswer = 4 + 1 + 4 // TTL, ATYP, IPv4
	n := d.count(minAnswer)
	if d.err != nil || n == 0 {
		return nil
	}
	as := make([]ResolveAnswer, n)
	for i := range as {
		as[i].TTL = d.u32()
		switch AddrType(d.u8()) {
		case AddrTypeIPv4:
			var ip [4]byte
			d.read(ip[:])
			as[i].Addr = netip.AddrFrom4(ip)
		case AddrTypeIPv6:
			var ip [16]byte
			d.read(ip[:])
			as[i].Addr = netip.AddrFrom16(ip)
		default:
			d.fail(ErrAddressType)
		}
		if d.err != nil {
			return nil
		}
	}
	return as
}
