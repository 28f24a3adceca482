package proto

import "strconv"

// Version5 is the SOCKS protocol version byte of RFC 1928. The extensions
// keep it, which is what keeps them wire-compatible with SOCKS5 peers.
const Version5 = 0x05

// UserPassVersion is the sub-negotiation version of RFC 1929.
const UserPassVersion = 0x01

// ExtVersion is the version of the SOCKS6 extensions carried in HELLO and
// HELLO_ACK. It is not the RFC 1928 version byte, which stays Version5.
const ExtVersion = 0x01

// ALPN protocol identifiers for SOCKS inside TLS.
const (
	// ALPNSOCKS6 selects the extended protocol from the first byte: the
	// client sends HELLO at once, with no RFC 1928 greeting.
	ALPNSOCKS6 = "socks6"
	// ALPNSOCKS5 selects plain RFC 1928 inside TLS, as does no ALPN.
	ALPNSOCKS5 = "socks5"
)

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

// MethodExtensions is METHOD_EXT, the method a client adds to its greeting
// to offer the SOCKS6 extensions. It lies in RFC 1928's private range
// (0x80 to 0xFE). A server that selects it expects a HELLO frame next
// instead of a method sub-negotiation.
const MethodExtensions Method = 0xC6

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
	case MethodExtensions:
		return "socks6-extensions"
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

// Commands of the SOCKS6 extensions, sent only in a REQUEST frame.
const (
	CommandListen  Command = 0x10 // listen and receive ACCEPT_OFFER frames
	CommandTake    Command = 0x11 // take an offered connection by its token
	CommandUDP     Command = 0x12 // relay datagrams inside the control stream
	CommandResolve Command = 0x13 // resolve a name on the gateway
	CommandResume  Command = 0x14 // resume a session on a new TLS connection
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
	case CommandListen:
		return "listen"
	case CommandTake:
		return "take"
	case CommandUDP:
		return "udp"
	case CommandResolve:
		return "resolve"
	case CommandResume:
		return "resume"
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

// Reply codes of the SOCKS6 extensions (0xE0 to 0xEF). They appear in
// REPLY and CLOSE frames, never in an RFC 1928 reply.
const (
	ReplyAuthRequired       ReplyCode = 0xE0 // the command needs an authenticated session
	ReplyTokenInvalid       ReplyCode = 0xE1 // unknown, used, expired or another user's token, or a wrong PROOF
	ReplyPortUnavailable    ReplyCode = 0xE2 // EXACT port taken, privileged, reserved for another user, or not the gateway's address
	ReplyQuotaExceeded      ReplyCode = 0xE3 // a limit of the session, user or gateway
	ReplyResumeRejected     ReplyCode = 0xE4 // RESUME or ATTACH refused
	ReplyNotServed          ReplyCode = 0xE5 // destination outside this gateway's routes
	ReplyNameNotFound       ReplyCode = 0xE6 // NXDOMAIN
	ReplyNameServerFailure  ReplyCode = 0xE7 // SERVFAIL, or the resolver is unreachable
	ReplyTimeout            ReplyCode = 0xE8 // connection attempt timed out (not TTL expired)
	ReplyRejectedByListener ReplyCode = 0xE9 // the client behind a listener refused the offer
	ReplyHopLimitExceeded   ReplyCode = 0xEA // HOP_LIMIT reached 0
	ReplyMalformedRequest   ReplyCode = 0xEB // a malformed frame or request; the Reason of CLOSE
)

// SOCKS5 returns the code to send in an RFC 1928 reply, to a client that
// did not negotiate the extensions: RFC 1928 codes stay, and the
// extension codes map as the draft's table says (0xE6 NameNotFound
// becomes host unreachable, 0xE8 Timeout TTL expired, and so on). Codes
// no table covers become general failure.
func (r ReplyCode) SOCKS5() ReplyCode {
	switch r {
	case ReplyAuthRequired, ReplyTokenInvalid, ReplyPortUnavailable, ReplyNotServed:
		return ReplyNotAllowed
	case ReplyNameNotFound:
		return ReplyHostUnreachable
	case ReplyTimeout:
		return ReplyTTLExpired
	case ReplyRejectedByListener:
		return ReplyConnectionRefused
	}
	if r <= ReplyAddressTypeNotSupported {
		return r
	}
	return ReplyGeneralFailure
}

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
	case ReplyAuthRequired:
		return "authentication required"
	case ReplyTokenInvalid:
		return "token invalid"
	case ReplyPortUnavailable:
		return "port unavailable"
	case ReplyQuotaExceeded:
		return "quota exceeded"
	case ReplyResumeRejected:
		return "resume rejected"
	case ReplyNotServed:
		return "not served"
	case ReplyNameNotFound:
		return "name not found"
	case ReplyNameServerFailure:
		return "name server failure"
	case ReplyTimeout:
		return "timed out"
	case ReplyRejectedByListener:
		return "rejected by listener"
	case ReplyHopLimitExceeded:
		return "hop limit exceeded"
	case ReplyMalformedRequest:
		return "malformed request"
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
