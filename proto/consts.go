package proto

import "strconv"

// Version5 is the SOCKS protocol version byte of RFC 1928. The extensions
// keep it, which is what keeps them wire-compatible with SOCKS5 peers.
const Version5 = 0x05

// UserPassVersion is the sub-negotiation version of RFC 1929.
const UserPassVersion = 0x01

// Limits fixed by the wire format.
const (
	MaxMethods     = 255 // NMETHODS is one byte
	MaxFQDNLen     = 255 // domain-name length is one byte
	MaxUserPassLen = 255 // ULEN and PLEN are one byte
	// MaxUDPHeaderLen is the largest SOCKS5 UDP request header:
	// RSV(2) FRAG(1) ATYP(1) LEN(1) NAME(255) PORT(2).
	MaxUDPHeaderLen = 2 + 1 + 1 + 1 + MaxFQDNLen + 2
)

// A Method is an authentication method code (RFC 1928 section 3).
type Method uint8

// Methods defined by RFC 1928.
const (
	MethodNoAuth       Method = 0x00
	MethodGSSAPI       Method = 0x01
	MethodUserPass     Method = 0x02
	MethodNoAcceptable Method = 0xFF
)

// String returns the method's name, or its code in hex if unknown.
func (m Method) String() string {
	switch m {
	case MethodNoAuth:
		return "no-auth"
	case MethodGSSAPI:
		return "gssapi"
	case MethodUserPass:
		return "username/password"
	case MethodNoAcceptable:
		return "no-acceptable-methods"
	}
	return "method(0x" + strconv.FormatUint(uint64(m), 16) + ")"
}

// A Command is the CMD field of a request (RFC 1928 section 4).
type Command uint8

// Commands defined by RFC 1928.
const (
	CommandConnect      Command = 0x01
	CommandBind         Command = 0x02
	CommandUDPAssociate Command = 0x03
)

// String returns the command's name, or its code in hex if unknown.
func (c Command) String() string {
	switch c {
	case CommandConnect:
		return "connect"
	case CommandBind:
		return "bind"
	case CommandUDPAssociate:
		return "udp-associate"
	}
	return "command(0x" + strconv.FormatUint(uint64(c), 16) + ")"
}

// A ReplyCode is the REP field of a reply (RFC 1928 section 6).
type ReplyCode uint8

// Reply codes defined by RFC 1928.
const (
	ReplySucceeded               ReplyCode = 0x00
	ReplyGeneralFailure          ReplyCode = 0x01
	ReplyNotAllowed              ReplyCode = 0x02
	ReplyNetworkUnreachable      ReplyCode = 0x03
	ReplyHostUnreachable         ReplyCode = 0x04
	ReplyConnectionRefused       ReplyCode = 0x05
	ReplyTTLExpired              ReplyCode = 0x06
	ReplyCommandNotSupported     ReplyCode = 0x07
	ReplyAddressTypeNotSupported ReplyCode = 0x08
)

// String returns the reply code's meaning, or the code in hex if unknown.
func (r ReplyCode) String() string {
	switch r {
	case ReplySucceeded:
		return "succeeded"
	case ReplyGeneralFailure:
		return "general failure"
	case ReplyNotAllowed:
		return "not allowed by ruleset"
	case ReplyNetworkUnreachable:
		return "network unreachable"
	case ReplyHostUnreachable:
		return "host unreachable"
	case ReplyConnectionRefused:
		return "connection refused"
	case ReplyTTLExpired:
		return "ttl expired"
	case ReplyCommandNotSupported:
		return "command not supported"
	case ReplyAddressTypeNotSupported:
		return "address type not supported"
	}
	return "reply(0x" + strconv.FormatUint(uint64(r), 16) + ")"
}

// An AddrType is the ATYP field.
type AddrType uint8

// Address types defined by RFC 1928.
const (
	AddrTypeIPv4 AddrType = 0x01
	AddrTypeFQDN AddrType = 0x03
	AddrTypeIPv6 AddrType = 0x04
)

// String returns the address type's name, or its code in hex if unknown.
func (t AddrType) String() string {
	switch t {
	case AddrTypeIPv4:
		return "ipv4"
	case AddrTypeFQDN:
		return "fqdn"
	case AddrTypeIPv6:
		return "ipv6"
	}
	return "atyp(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// UserPass status values (RFC 1929 section 2): zero is success, anything
// else is failure.
const (
	UserPassSuccess = 0x00
	UserPassFailure = 0x01
)
