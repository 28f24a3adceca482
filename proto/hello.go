package proto

import (
	"strconv"
	"strings"
)

// A Hello is the value of a HELLO frame, the client's first frame: after
// the gateway selects MethodExtensions, or at once on a TLS connection
// whose ALPN is ALPNSOCKS6. It carries the extension version (always
// ExtVersion), the client's greeting method list for downgrade detection,
// and its credentials.
//
//	+---------+----------+-----------+------+-----------+---------+
//	| Version | NMETHODS |  METHODS  | Auth | Auth data | Options |
//	+---------+----------+-----------+------+-----------+---------+
//	|    1    |    1     | 0 to 255  |  1   | Variable  | to end  |
//	+---------+----------+-----------+------+-----------+---------+
//
// Auth data is empty for MethodNoAuth and ULEN UNAME PLEN PASSWD (RFC 1929
// without VER) for MethodUserPass.
//
// Its String and GoString methods hide the password.
type Hello struct {
	// Methods repeats the method list of the client's RFC 1928
	// greeting, in order; the gateway compares it with the greeting it
	// received. It is empty (nil) after ALPN socks6, which has no
	// greeting.
	Methods []Method
	// Auth is MethodNoAuth or MethodUserPass.
	Auth Method
	// Username and Password are the RFC 1929 credentials, up to 255
	// bytes each, for MethodUserPass; the encoder ignores them
	// otherwise. Empty ones are accepted and left to the authenticator.
	Username string
	Password string
	Options  Options
}

// FrameType returns FrameHello.
func (Hello) FrameType() FrameType { return FrameHello }

// AppendBinary appends the HELLO value. It fails with ErrTooLong for more
// than 255 methods or a credential over 255 bytes, and with ErrAuthMethod
// for an Auth other than MethodNoAuth and MethodUserPass.
func (h Hello) AppendBinary(b []byte) ([]byte, error) {
	if len(h.Methods) > MaxMethods {
		return b, ErrTooLong
	}
	e := encoder{b: b}
	e.u8(ExtVersion)
	e.u8(byte(len(h.Methods)))
	for _, m := range h.Methods {
		e.u8(byte(m))
	}
	e.u8(byte(h.Auth))
	switch h.Auth {
	case MethodNoAuth:
	case MethodUserPass:
		if len(h.Username) > MaxUserPassLen || len(h.Password) > MaxUserPassLen {
			return b, ErrTooLong
		}
		e.u8(byte(len(h.Username)))
		e.str(h.Username)
		e.u8(byte(len(h.Password)))
		e.str(h.Password)
	default:
		return b, ErrAuthMethod
	}
	e.options(h.Options)
	return e.result(b)
}

// ParseHello decodes a HELLO value. It fails with ErrVersion if the
// version is not ExtVersion (the gateway answers HelloVersionUnsupported),
// with ErrAuthMethod for an Auth method other than MethodNoAuth and
// MethodUserPass (the gateway answers HelloAuthFailed), and as
// ParseOptions does for the options.
func ParseHello(b []byte) (Hello, error) {
	d := decoder{b: b}
	if v := d.u8(); d.err == nil && v != ExtVersion {
		return Hello{}, ErrVersion
	}
	var h Hello
	if ms := d.bytes(int(d.u8())); len(ms) > 0 {
		h.Methods = make([]Method, len(ms))
		for i, m := range ms {
			h.Methods[i] = Method(m)
		}
	}
	h.Auth = Method(d.u8())
	if d.err == nil {
		switch h.Auth {
		case MethodNoAuth:
		case MethodUserPass:
			h.Username = string(d.bytes(int(d.u8())))
			h.Password = string(d.bytes(int(d.u8())))
		default:
			return Hello{}, ErrAuthMethod
		}
	}
	h.Options = d.options()
	if d.err != nil {
		return Hello{}, d.err
	}
	return h, nil
}

// String describes h, hiding the password.
func (h Hello) String() string {
	var s strings.Builder
	s.WriteString("HELLO methods=[")
	for i, m := range h.Methods {
		if i > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(m.String())
	}
	s.WriteString("] auth=" + h.Auth.String())
	if h.Auth == MethodUserPass {
		s.WriteString(" user=" + strconv.Quote(h.Username) + " password=REDACTED")
	}
	s.WriteString(" options=" + h.Options.String())
	return s.String()
}

// GoString returns h as Go syntax, hiding the password.
func (h Hello) GoString() string {
	var s strings.Builder
	s.WriteString("proto.Hello{Methods:[]proto.Method{")
	for i, m := range h.Methods {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString("0x" + strconv.FormatUint(uint64(m), 16))
	}
	s.WriteString("}, Auth:0x" + strconv.FormatUint(uint64(h.Auth), 16))
	s.WriteString(", Username:" + strconv.Quote(h.Username) + ", Password:REDACTED, Options:" + h.Options.GoString() + "}")
	return s.String()
}

// A HelloStatus is the Status field of HELLO_ACK.
type HelloStatus uint8

// Hello statuses. Anything but HelloOK ends the session.
const (
	HelloOK                 HelloStatus = 0x00
	HelloAuthFailed         HelloStatus = 0x01
	HelloVersionUnsupported HelloStatus = 0x02
	HelloTranscriptMismatch HelloStatus = 0x03 // HELLO's method list differs from the greeting
)

// String returns the status's meaning, or its code in hex if unknown.
func (s HelloStatus) String() string {
	switch s {
	case HelloOK:
		return "ok"
	case HelloAuthFailed:
		return "authentication failed"
	case HelloVersionUnsupported:
		return "version unsupported"
	case HelloTranscriptMismatch:
		return "transcript mismatch"
	}
	return "status(0x" + strconv.FormatUint(uint64(s), 16) + ")"
}

// Features is the feature bitmap of HELLO_ACK: what the gateway serves.
// Bits proto does not know are kept.
type Features uint64

// Feature bits.
const (
	FeatureListen  Features = 1 << 0 // LISTEN, TAKE, ACCEPT_OFFER, REJECT_OFFER
	FeatureUDP     Features = 1 << 1 // UDP in the stream (DATAGRAM)
	FeatureResolve Features = 1 << 2 // RESOLVE
	FeatureRoutes  Features = 1 << 3 // ROUTES
	FeatureResume  Features = 1 << 4 // RESUME, STREAM_ACK
	FeatureChain   Features = 1 << 5 // chaining with HOP_LIMIT
)

// Has reports whether every bit of x is set in f.
func (f Features) Has(x Features) bool { return f&x == x }

// String returns the feature names joined by "|", then any unknown bits
// in hex.
func (f Features) String() string {
	names := [...]string{"listen", "udp", "resolve", "routes", "resume", "chain"}
	var parts []string
	for i, n := range names {
		if f&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if rest := f &^ (1<<len(names) - 1); rest != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// A HelloAck is the value of a HELLO_ACK frame, the gateway's answer to
// HELLO.
//
//	+--------+---------+----------+---------------+------------+---------+
//	| Status | Version | Features | Max frame len | Session ID | Options |
//	+--------+---------+----------+---------------+------------+---------+
//	|   1    |    1    |  varint  |    varint     |     16     | to end  |
//	+--------+---------+----------+---------------+------------+---------+
//
// Every field is present whatever the status.
type HelloAck struct {
	Status HelloStatus
	// Version is ExtVersion, except with HelloVersionUnsupported, where
	// it is the highest version the gateway supports. The encoder writes
	// zero as ExtVersion.
	Version  uint8
	Features Features
	// MaxFrameLen is the longest frame value, DATAGRAM aside, that
	// either side may send: MinNegotiatedFrameLen to
	// MaxNegotiatedFrameLen. The encoder writes zero as
	// DefaultMaxFrameLen.
	MaxFrameLen uint16
	SessionID   SessionID
	Options     Options
}

// FrameType returns FrameHelloAck.
func (HelloAck) FrameType() FrameType { return FrameHelloAck }

// AppendBinary appends the HELLO_ACK value. It fails with ErrMalformed for
// an unknown status or a MaxFrameLen out of range, and with ErrVersion for
// a Version other than ExtVersion without HelloVersionUnsupported.
func (a HelloAck) AppendBinary(b []byte) ([]byte, error) {
	ml := a.MaxFrameLen
	if ml == 0 {
		ml = DefaultMaxFrameLen
	}
	v := a.Version
	if v == 0 {
		v = ExtVersion
	}
	if a.Status > HelloTranscriptMismatch || ml < MinNegotiatedFrameLen {
		return b, ErrMalformed
	}
	if v != ExtVersion && a.Status != HelloVersionUnsupported {
		return b, ErrVersion
	}
	e := encoder{b: b}
	e.u8(byte(a.Status))
	e.u8(v)
	e.varint(uint64(a.Features))
	e.varint(uint64(ml))
	e.bytes(a.SessionID[:])
	e.options(a.Options)
	return e.result(b)
}

// ParseHelloAck decodes a HELLO_ACK value. It fails with ErrMalformed
// for an unknown status or a max frame length out of range, with
// ErrVersion for a version other than ExtVersion (any but 0 is accepted
// with HelloVersionUnsupported), and as ParseOptions does for the options.
func ParseHelloAck(b []byte) (HelloAck, error) {
	d := decoder{b: b}
	var a HelloAck
	a.Status = HelloStatus(d.u8())
	a.Version = d.u8()
	if d.err == nil {
		if a.Status > HelloTranscriptMismatch {
			return HelloAck{}, ErrMalformed
		}
		if a.Version == 0 || a.Version != ExtVersion && a.Status != HelloVersionUnsupported {
			return HelloAck{}, ErrVersion
		}
	}
	a.Features = Features(d.varint())
	ml := d.varint()
	if d.err == nil && (ml < MinNegotiatedFrameLen || ml > MaxNegotiatedFrameLen) {
		return HelloAck{}, ErrMalformed
	}
	a.MaxFrameLen = uint16(ml)
	d.read(a.SessionID[:])
	a.Options = d.options()
	if d.err != nil {
		return HelloAck{}, d.err
	}
	return a, nil
}
