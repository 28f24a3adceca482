package proto

import "errors"

// Sentinel errors returned by the parsers. They carry no attacker bytes.
var (
	// ErrShortBuffer means the input ends before the message does; the
	// caller should read more and parse again.
	ErrShortBuffer = errors.New("socks: short buffer")
	// ErrVersion means the version byte is not the one the message needs.
	ErrVersion = errors.New("socks: unsupported version")
	// ErrAddressType means ATYP is not IPv4, domain name or IPv6.
	ErrAddressType = errors.New("socks: unsupported address type")
	// ErrMalformed means a field holds a value the protocol forbids, such
	// as an empty method list, an empty domain name or a nonzero reserved
	// byte where zero is required.
	ErrMalformed = errors.New("socks: malformed message")
	// ErrTooLong means a field is longer than the protocol allows.
	ErrTooLong = errors.New("socks: field too long")
	// ErrAuthMethod means a HELLO names an authentication method the
	// parser does not know, so it cannot find the options; the gateway
	// answers with HelloAuthFailed.
	ErrAuthMethod = errors.New("socks: unsupported authentication method")
)

// A ParseError reports which message failed to decode and where. The Read
// wrappers return it; slice parsers return the bare sentinels, which costs
// no allocation.
type ParseError struct {
	Msg    string // "greeting", "request", "udp header", …
	Offset int    // bytes consumed before the failure
	Err    error  // one of the sentinel errors, or an I/O error
}

// Error returns the message name and the underlying error.
func (e *ParseError) Error() string { return "socks: parsing " + e.Msg + ": " + e.Err.Error() }

// Unwrap returns the underlying sentinel or I/O error.
func (e *ParseError) Unwrap() error { return e.Err }
