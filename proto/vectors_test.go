package proto

import (
	"encoding"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// Every message is an encoding.BinaryAppender.
var (
	_ encoding.BinaryAppender = Addr{}
	_ encoding.BinaryAppender = Greeting{}
	_ encoding.BinaryAppender = MethodSelection{}
	_ encoding.BinaryAppender = UserPassRequest{}
	_ encoding.BinaryAppender = UserPassReply{}
	_ encoding.BinaryAppender = Request{}
	_ encoding.BinaryAppender = Reply{}
	_ encoding.BinaryAppender = UDPHeader{}
)

// mustHex decodes s, ignoring spaces, and fails the test on bad input.
func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// message is what every wire type has in common.
type message interface {
	AppendBinary([]byte) ([]byte, error)
}

// A vector is a named golden encoding of one message. A valid vector
// decodes to want and re-encodes to enc (or to in, when enc is empty). A
// malformed one fails with wantErr as soon as at bytes are present
// (0 means all of in), and with ErrShortBuffer before that.
type vector[T any] struct {
	name    string
	in      string // hex, spaces ignored
	want    T
	enc     string // canonical re-encoding, when it differs from in
	wantErr error
	at      int
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// ip16 is s in its 16-byte form, as ParseAddr returns ATYP 4.
func ip16(s string) netip.Addr { return netip.AddrFrom16(netip.MustParseAddr(s).As16()) }

// Hex fragments reused below.
var (
	fqdn255Hex = "ff " + strings.Repeat("61", 255) // LEN NAME
	fqdn255    = strings.Repeat("a", 255)
	user255Hex = "ff " + strings.Repeat("75", 255)
	user255    = strings.Repeat("u", 255)
	pass255Hex = "ff " + strings.Repeat("70", 255)
	pass255    = strings.Repeat("p", 255)
)

var addrVectors = []vector[Addr]{
	{name: "ipv4", in: "01 c0000201 0050", want: Addr{IP: ip("192.0.2.1"), Port: 80}},
	{name: "ipv4_unspecified", in: "01 00000000 0000", want: Addr{IP: ip("0.0.0.0")}},
	{name: "ipv4_port_max", in: "01 7f000001 ffff", want: Addr{IP: ip("127.0.0.1"), Port: 65535}},
	{name: "ipv6", in: "04 20010db8000000000000000000000001 01bb", want: Addr{IP: ip("2001:db8::1"), Port: 443}},
	{name: "ipv6_unspecified", in: "04 00000000000000000000000000000000 0000", want: Addr{IP: ip("::")}},
	// ::ffff:192.0.2.1 sent as ATYP 4 stays ATYP 4.
	{name: "ipv4_mapped_ipv6", in: "04 00000000000000000000ffffc0000201 0050", want: Addr{IP: ip16("::ffff:192.0.2.1"), Port: 80}},
	{name: "fqdn", in: "03 0b 6578616d706c652e6f7267 0050", want: Addr{FQDN: "example.org", Port: 80}},
	{name: "fqdn_one_byte", in: "03 01 61 0001", want: Addr{FQDN: "a", Port: 1}},
	{name: "fqdn_max_len", in: "03 " + fqdn255Hex + " 0050", want: Addr{FQDN: fqdn255, Port: 80}},
	// The name is not validated: any bytes are kept for the resolver to refuse.
	{name: "fqdn_binary", in: "03 03 00ff3a 0035", want: Addr{FQDN: "\x00\xff:", Port: 53}},
	{name: "fqdn_ip_literal", in: "03 03 3a3a31 0050", want: Addr{FQDN: "::1", Port: 80}},

	{name: "atyp_zero", in: "00 c0000201 0050", wantErr: ErrAddressType, at: 1},
	{name: "atyp_two", in: "02 c0000201 0050", wantErr: ErrAddressType, at: 1},
	{name: "atyp_five", in: "05 c0000201 0050", wantErr: ErrAddressType, at: 1},
	{name: "atyp_ff", in: "ff", wantErr: ErrAddressType, at: 1},
	{name: "fqdn_empty", in: "03 00 0050", wantErr: ErrMalformed, at: 2},
}

var greetingVectors = []vector[Greeting]{
	{name: "no_auth", in: "05 01 00", want: Greeting{Methods: []Method{MethodNoAuth}}},
	{name: "no_auth_userpass", in: "05 02 00 02", want: Greeting{Methods: []Method{MethodNoAuth, MethodUserPass}}},
	{name: "duplicates_kept", in: "05 03 02 02 ff", want: Greeting{Methods: []Method{MethodUserPass, MethodUserPass, MethodNoAcceptable}}},
	{name: "max_methods", in: "05 ff " + allBytesHex(255), want: Greeting{Methods: allMethods(255)}},

	{name: "version4", in: "04 01 00", wantErr: ErrVersion, at: 1},
	{name: "version_http", in: "474554202f", wantErr: ErrVersion, at: 1}, // "GET /"
	{name: "nmethods_zero", in: "05 00", wantErr: ErrMalformed, at: 2},
}

var methodSelectionVectors = []vector[MethodSelection]{
	{name: "no_auth", in: "05 00", want: MethodSelection{Method: MethodNoAuth}},
	{name: "userpass", in: "05 02", want: MethodSelection{Method: MethodUserPass}},
	{name: "no_acceptable", in: "05 ff", want: MethodSelection{Method: MethodNoAcceptable}},
	{name: "private", in: "05 80", want: MethodSelection{Method: 0x80}},

	{name: "version4", in: "04 00", wantErr: ErrVersion, at: 2},
}

var userPassRequestVectors = []vector[UserPassRequest]{
	{name: "user_pass", in: "01 04 75736572 06 736563726574", want: UserPassRequest{Username: "user", Password: "secret"}},
	{name: "empty_password", in: "01 04 75736572 00", want: UserPassRequest{Username: "user"}},
	{name: "empty_both", in: "01 00 00", want: UserPassRequest{}},
	{name: "max_lengths", in: "01 " + user255Hex + " " + pass255Hex, want: UserPassRequest{Username: user255, Password: pass255}},

	{name: "version2", in: "02 04 75736572 00", wantErr: ErrVersion, at: 1},
	{name: "version5", in: "05 01 00", wantErr: ErrVersion, at: 1}, // a greeting where auth was expected
}

var userPassReplyVectors = []vector[UserPassReply]{
	{name: "success", in: "01 00", want: UserPassReply{Status: UserPassSuccess}},
	{name: "failure", in: "01 01", want: UserPassReply{Status: UserPassFailure}},
	{name: "failure_ff", in: "01 ff", want: UserPassReply{Status: 0xff}},

	{name: "version5", in: "05 00", wantErr: ErrVersion, at: 2},
}

var requestVectors = []vector[Request]{
	{name: "connect_ipv4", in: "05 01 00 01 c0000201 0050", want: Request{Command: CommandConnect, Addr: Addr{IP: ip("192.0.2.1"), Port: 80}}},
	{name: "connect_ipv6", in: "05 01 00 04 20010db8000000000000000000000001 01bb", want: Request{Command: CommandConnect, Addr: Addr{IP: ip("2001:db8::1"), Port: 443}}},
	{name: "connect_ipv4_mapped", in: "05 01 00 04 00000000000000000000ffff7f000001 0050", want: Request{Command: CommandConnect, Addr: Addr{IP: ip16("::ffff:127.0.0.1"), Port: 80}}},
	{name: "connect_fqdn", in: "05 01 00 03 0b 6578616d706c652e6f7267 01bb", want: Request{Command: CommandConnect, Addr: Addr{FQDN: "example.org", Port: 443}}},
	{name: "connect_fqdn_max", in: "05 01 00 03 " + fqdn255Hex + " 0050", want: Request{Command: CommandConnect, Addr: Addr{FQDN: fqdn255, Port: 80}}},
	{name: "bind_ipv4", in: "05 02 00 01 c6336401 1f90", want: Request{Command: CommandBind, Addr: Addr{IP: ip("198.51.100.1"), Port: 8080}}},
	{name: "udp_associate_unspecified", in: "05 03 00 01 00000000 0000", want: Request{Command: CommandUDPAssociate, Addr: Addr{IP: ip("0.0.0.0")}}},
	// Unknown commands parse; the server answers "command not supported".
	{name: "unknown_command", in: "05 09 00 01 c0000201 0050", want: Request{Command: 9, Addr: Addr{IP: ip("192.0.2.1"), Port: 80}}},
	// RSV is ignored on input and written as zero.
	{name: "rsv_nonzero", in: "05 01 ff 01 c0000201 0050", enc: "05 01 00 01 c0000201 0050", want: Request{Command: CommandConnect, Addr: Addr{IP: ip("192.0.2.1"), Port: 80}}},

	{name: "version4", in: "04 01 00 01 c0000201 0050", wantErr: ErrVersion, at: 1},
	{name: "atyp_unknown", in: "05 01 00 02 c0000201 0050", wantErr: ErrAddressType, at: 4},
	{name: "fqdn_empty", in: "05 01 00 03 00 0050", wantErr: ErrMalformed, at: 5},
}

var replyVectors = []vector[Reply]{
	{name: "succeeded_ipv4", in: "05 00 00 01 c0000201 0438", want: Reply{Code: ReplySucceeded, Addr: Addr{IP: ip("192.0.2.1"), Port: 1080}}},
	{name: "succeeded_ipv6", in: "05 00 00 04 20010db8000000000000000000000002 c350", want: Reply{Code: ReplySucceeded, Addr: Addr{IP: ip("2001:db8::2"), Port: 50000}}},
	{name: "succeeded_fqdn", in: "05 00 00 03 09 6c6f63616c686f7374 0050", want: Reply{Code: ReplySucceeded, Addr: Addr{FQDN: "localhost", Port: 80}}},
	{name: "refused", in: "05 05 00 01 00000000 0000", want: Reply{Code: ReplyConnectionRefused, Addr: Addr{IP: ip("0.0.0.0")}}},
	{name: "unknown_code", in: "05 80 00 01 00000000 0000", want: Reply{Code: 0x80, Addr: Addr{IP: ip("0.0.0.0")}}},
	{name: "rsv_nonzero", in: "05 00 01 01 c0000201 0438", enc: "05 00 00 01 c0000201 0438", want: Reply{Code: ReplySucceeded, Addr: Addr{IP: ip("192.0.2.1"), Port: 1080}}},

	{name: "version4", in: "04 00 00 01 c0000201 0438", wantErr: ErrVersion, at: 1},
	{name: "atyp_unknown", in: "05 00 00 00 c0000201 0438", wantErr: ErrAddressType, at: 4},
	{name: "fqdn_empty", in: "05 00 00 03 00 0050", wantErr: ErrMalformed, at: 5},
}

var udpHeaderVectors = []vector[UDPHeader]{
	{name: "ipv4", in: "0000 00 01 c0000201 0035", want: UDPHeader{Addr: Addr{IP: ip("192.0.2.1"), Port: 53}}},
	{name: "ipv6", in: "0000 00 04 20010db8000000000000000000000001 0035", want: UDPHeader{Addr: Addr{IP: ip("2001:db8::1"), Port: 53}}},
	{name: "fqdn", in: "0000 00 03 0b 6578616d706c652e6f7267 0035", want: UDPHeader{Addr: Addr{FQDN: "example.org", Port: 53}}},
	{name: "fqdn_max", in: "0000 00 03 " + fqdn255Hex + " 0035", want: UDPHeader{Addr: Addr{FQDN: fqdn255, Port: 53}}},
	{name: "frag", in: "0000 01 01 c0000201 0035", want: UDPHeader{Frag: 1, Addr: Addr{IP: ip("192.0.2.1"), Port: 53}}},
	{name: "frag_last", in: "0000 81 01 c0000201 0035", want: UDPHeader{Frag: 0x81, Addr: Addr{IP: ip("192.0.2.1"), Port: 53}}},

	{name: "rsv_low", in: "0001 00 01 c0000201 0035", wantErr: ErrMalformed, at: 4},
	{name: "rsv_high", in: "0100 00 01 c0000201 0035", wantErr: ErrMalformed, at: 4},
	{name: "atyp_unknown", in: "0000 00 02 c0000201 0035", wantErr: ErrAddressType, at: 4},
	{name: "fqdn_empty", in: "0000 00 03 00 0035", wantErr: ErrMalformed, at: 5},
}

// allBytesHex returns the hex of the bytes 0, 1, …, n-1.
func allBytesHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return hex.EncodeToString(b)
}

func allMethods(n int) []Method {
	m := make([]Method, n)
	for i := range m {
		m[i] = Method(i)
	}
	return m
}

// seeds returns the decoded inputs and canonical encodings of vs, for a
// fuzz corpus.
func seeds[T any](tb testing.TB, vs []vector[T]) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, v := range vs {
		out = append(out, mustHex(tb, v.in))
		if v.enc != "" {
			out = append(out, mustHex(tb, v.enc))
		}
	}
	return out
}
