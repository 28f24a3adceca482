package proto

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// testParse runs the golden vectors of one message type through its slice
// parser and encoder: decode, re-encode byte for byte, every truncation,
// trailing bytes left alone.
func testParse[T message](t *testing.T, parse func([]byte) (T, int, error), vs []vector[T]) {
	t.Helper()
	for _, tt := range vs {
		t.Run(tt.name, func(t *testing.T) {
			in := mustHex(t, tt.in)
			got, n, err := parse(in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parse(%s) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				var zero T
				if n != 0 || !reflect.DeepEqual(got, zero) {
					t.Errorf("parse(%s) = %#v, %d on error; want the zero value, 0", tt.in, got, n)
				}
			} else {
				if n != len(in) {
					t.Errorf("parse(%s) n = %d, want %d", tt.in, n, len(in))
				}
				checkDecoded(t, tt, in, got)
			}

			// Every truncation: ErrShortBuffer until the error is
			// detectable, then the error.
			at := tt.at
			if at == 0 {
				at = len(in)
			}
			for i := range len(in) {
				want := ErrShortBuffer
				if i >= at {
					want = tt.wantErr
				}
				if _, n, err := parse(in[:i]); !errors.Is(err, want) || n != 0 {
					t.Errorf("parse(%x) = n %d, error %v; want 0, %v", in[:i], n, err, want)
				}
			}

			// Bytes after the message are not the parser's business.
			long := append(append([]byte(nil), in...), 0xde, 0xad, 0xbe, 0xef)
			got2, n2, err := parse(long)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parse(%s deadbeef) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err == nil && (n2 != len(in) || !reflect.DeepEqual(got2, got)) {
				t.Errorf("parse(%s deadbeef) = %#v, %d; want %#v, %d", tt.in, got2, n2, got, len(in))
			}
		})
	}
}

// checkDecoded checks a successful decode of vector tt (whose bytes are
// in): the value is tt.want, it re-encodes as tt.enc (or in), and
// AppendBinary appends, leaving what came before alone. Both table
// drivers, for slice parsers and for frame-value parsers, use it.
func checkDecoded[T message](t *testing.T, tt vector[T], in []byte, got T) {
	t.Helper()
	if !reflect.DeepEqual(got, tt.want) {
		t.Errorf("parse(%s) =\n%#v\nwant\n%#v", tt.in, got, tt.want)
	}
	wantEnc := in
	if tt.enc != "" {
		wantEnc = mustHex(t, tt.enc)
	}
	enc, err := got.AppendBinary(nil)
	if err != nil {
		t.Fatalf("AppendBinary: %v", err)
	}
	if !bytes.Equal(enc, wantEnc) {
		t.Errorf("AppendBinary = % x, want % x", enc, wantEnc)
	}
	pre := []byte{0xaa, 0xbb}
	enc2, err := tt.want.AppendBinary(pre)
	if err != nil || !bytes.Equal(enc2[:2], pre) || !bytes.Equal(enc2[2:], wantEnc) {
		t.Errorf("AppendBinary(aa bb) = % x, %v; want aa bb % x", enc2, err, wantEnc)
	}
}

func TestParseAddr(t *testing.T) {
	testParse(t, ParseAddr, addrVectors)
}

func TestParseGreeting(t *testing.T) {
	testParse(t, ParseGreeting, greetingVectors)
}

func TestParseMethodSelection(t *testing.T) {
	testParse(t, ParseMethodSelection, methodSelectionVectors)
}

func TestParseUserPassRequest(t *testing.T) {
	testParse(t, ParseUserPassRequest, userPassRequestVectors)
}

func TestParseUserPassReply(t *testing.T) {
	testParse(t, ParseUserPassReply, userPassReplyVectors)
}

func TestParseRequest(t *testing.T) {
	testParse(t, ParseRequest, requestVectors)
}

func TestParseReply(t *testing.T) {
	testParse(t, ParseReply, replyVectors)
}

func TestParseUDPHeader(t *testing.T) {
	testParse(t, ParseUDPHeader, udpHeaderVectors)
}

func TestParseUDPHeaderPayload(t *testing.T) {
	dgram := mustHex(t, "0000 00 01 c0000201 0035 0102030405")
	h, n, err := ParseUDPHeader(dgram)
	if err != nil {
		t.Fatal(err)
	}
	if want := (UDPHeader{Addr: Addr{IP: ip("192.0.2.1"), Port: 53}}); h != want {
		t.Errorf("header = %+v, want %+v", h, want)
	}
	if got := dgram[n:]; !bytes.Equal(got, []byte{1, 2, 3, 4, 5}) {
		t.Errorf("payload = % x, want 01 02 03 04 05", got)
	}
	// An empty payload is a valid datagram.
	if _, n, err := ParseUDPHeader(dgram[:10]); err != nil || n != 10 {
		t.Errorf("header only: n = %d, err = %v; want 10, nil", n, err)
	}
}

func TestAppendBinaryErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name    string
		msg     message
		wantErr error
	}{
		{name: "addr_fqdn_too_long", msg: Addr{FQDN: long}, wantErr: ErrTooLong},
		{name: "greeting_no_methods", msg: Greeting{}, wantErr: ErrMalformed},
		{name: "greeting_empty_methods", msg: Greeting{Methods: []Method{}}, wantErr: ErrMalformed},
		{name: "greeting_too_many_methods", msg: Greeting{Methods: make([]Method, 256)}, wantErr: ErrTooLong},
		{name: "userpass_user_too_long", msg: UserPassRequest{Username: long, Password: "p"}, wantErr: ErrTooLong},
		{name: "userpass_password_too_long", msg: UserPassRequest{Username: "u", Password: long}, wantErr: ErrTooLong},
		{name: "request_fqdn_too_long", msg: Request{Command: CommandConnect, Addr: Addr{FQDN: long}}, wantErr: ErrTooLong},
		{name: "reply_fqdn_too_long", msg: Reply{Addr: Addr{FQDN: long}}, wantErr: ErrTooLong},
		{name: "udp_fqdn_too_long", msg: UDPHeader{Addr: Addr{FQDN: long}}, wantErr: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre := []byte{1, 2, 3}
			b, err := tt.msg.AppendBinary(pre)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("AppendBinary error = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(b, pre) {
				t.Errorf("AppendBinary returned % x on error, want its argument % x unchanged", b, pre)
			}
		})
	}
}

// The longest fields the format allows encode; one byte more does not.
func TestAppendBinaryLimits(t *testing.T) {
	ok := []message{
		Addr{FQDN: strings.Repeat("x", MaxFQDNLen)},
		Greeting{Methods: make([]Method, MaxMethods)},
		UserPassRequest{Username: strings.Repeat("u", MaxUserPassLen), Password: strings.Repeat("p", MaxUserPassLen)},
		UDPHeader{Addr: Addr{FQDN: strings.Repeat("x", MaxFQDNLen)}},
	}
	for _, m := range ok {
		if _, err := m.AppendBinary(nil); err != nil {
			t.Errorf("%T at the limit: %v", m, err)
		}
	}
	b, _ := UDPHeader{Addr: Addr{FQDN: strings.Repeat("x", MaxFQDNLen)}}.AppendBinary(nil)
	if len(b) != MaxUDPHeaderLen {
		t.Errorf("longest UDP header is %d bytes, MaxUDPHeaderLen = %d", len(b), MaxUDPHeaderLen)
	}
}

func TestAddrEncodedLen(t *testing.T) {
	for _, tt := range addrVectors {
		if tt.wantErr != nil {
			continue
		}
		b, err := tt.want.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := tt.want.EncodedLen(); got != len(b) {
			t.Errorf("%s: EncodedLen = %d, want %d", tt.name, got, len(b))
		}
	}
}

func TestAddrType(t *testing.T) {
	tests := []struct {
		name string
		a    Addr
		want AddrType
	}{
		{name: "zero", a: Addr{}, want: AddrTypeIPv4},
		{name: "ipv4", a: Addr{IP: ip("192.0.2.1")}, want: AddrTypeIPv4},
		{name: "ipv6", a: Addr{IP: ip("2001:db8::1")}, want: AddrTypeIPv6},
		{name: "ipv4_mapped_keeps_ipv6", a: Addr{IP: ip("::ffff:192.0.2.1")}, want: AddrTypeIPv6},
		{name: "fqdn", a: Addr{FQDN: "example.org"}, want: AddrTypeFQDN},
		{name: "fqdn_wins_over_ip", a: Addr{IP: ip("192.0.2.1"), FQDN: "example.org"}, want: AddrTypeFQDN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Type(); got != tt.want {
				t.Errorf("Type() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAddrZero(t *testing.T) {
	b, err := Addr{}.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, "01 00000000 0000"); !bytes.Equal(b, want) {
		t.Errorf("zero Addr encodes as % x, want % x", b, want)
	}
	if got := (Addr{}).String(); got != "0.0.0.0:0" {
		t.Errorf("zero Addr String() = %q, want 0.0.0.0:0", got)
	}
	ap, ok := Addr{}.AddrPort()
	if !ok || ap != netip.MustParseAddrPort("0.0.0.0:0") {
		t.Errorf("zero Addr AddrPort() = %v, %v; want 0.0.0.0:0, true", ap, ok)
	}
}

func TestAddrFromAddrPort(t *testing.T) {
	tests := []struct {
		name string
		ap   string
		want Addr
		enc  string
	}{
		{name: "ipv4", ap: "192.0.2.1:80", want: Addr{IP: ip("192.0.2.1"), Port: 80}, enc: "01 c0000201 0050"},
		{name: "ipv6", ap: "[2001:db8::1]:443", want: Addr{IP: ip("2001:db8::1"), Port: 443}, enc: "04 20010db8000000000000000000000001 01bb"},
		// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
		{name: "ipv4_mapped_unmapped", ap: "[::ffff:192.0.2.1]:80", want: Addr{IP: ip("192.0.2.1"), Port: 80}, enc: "01 c0000201 0050"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ap := netip.MustParseAddrPort(tt.ap)
			a := AddrFromAddrPort(ap)
			if a != tt.want {
				t.Errorf("AddrFromAddrPort(%s) = %#v, want %#v", tt.ap, a, tt.want)
			}
			b, err := a.AppendBinary(nil)
			if err != nil || !bytes.Equal(b, mustHex(t, tt.enc)) {
				t.Errorf("AppendBinary = % x, %v; want %s", b, err, tt.enc)
			}
			back, ok := a.AddrPort()
			if !ok || back.Port() != ap.Port() || back.Addr() != ap.Addr().Unmap() {
				t.Errorf("AddrPort() = %v, %v; want %v, true", back, ok, ap)
			}
		})
	}
	if _, ok := (Addr{FQDN: "example.org", Port: 80}).AddrPort(); ok {
		t.Error("AddrPort() of a domain name: ok = true, want false")
	}
}

func TestAddrString(t *testing.T) {
	tests := []struct {
		name string
		a    Addr
		want string
	}{
		{name: "ipv4", a: Addr{IP: ip("192.0.2.1"), Port: 80}, want: "192.0.2.1:80"},
		{name: "ipv6", a: Addr{IP: ip("2001:db8::1"), Port: 443}, want: "[2001:db8::1]:443"},
		{name: "ipv4_mapped", a: Addr{IP: ip16("::ffff:192.0.2.1"), Port: 80}, want: "[::ffff:192.0.2.1]:80"},
		{name: "fqdn", a: Addr{FQDN: "example.org", Port: 8080}, want: "example.org:8080"},
		{name: "fqdn_ip_literal", a: Addr{FQDN: "::1", Port: 80}, want: "[::1]:80"},
		{name: "zero", a: Addr{}, want: "0.0.0.0:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGreetingOffers(t *testing.T) {
	g := Greeting{Methods: []Method{MethodNoAuth, MethodUserPass}}
	for m, want := range map[Method]bool{MethodNoAuth: true, MethodUserPass: true, MethodGSSAPI: false, MethodNoAcceptable: false} {
		if got := g.Offers(m); got != want {
			t.Errorf("Offers(%v) = %v, want %v", m, got, want)
		}
	}
	if (Greeting{}).Offers(MethodNoAuth) {
		t.Error("empty greeting offers no-auth")
	}
}

func TestEnumString(t *testing.T) {
	tests := []struct {
		name string
		v    fmt.Stringer
		want string
	}{
		{name: "method_no_auth", v: MethodNoAuth, want: "no-auth"},
		{name: "method_gssapi", v: MethodGSSAPI, want: "gssapi"},
		{name: "method_userpass", v: MethodUserPass, want: "username/password"},
		{name: "method_no_acceptable", v: MethodNoAcceptable, want: "no-acceptable-methods"},
		{name: "method_unknown", v: Method(0x80), want: "method(0x80)"},
		{name: "command_connect", v: CommandConnect, want: "connect"},
		{name: "command_bind", v: CommandBind, want: "bind"},
		{name: "command_udp_associate", v: CommandUDPAssociate, want: "udp-associate"},
		{name: "command_unknown", v: Command(0), want: "command(0x0)"},
		{name: "reply_succeeded", v: ReplySucceeded, want: "succeeded"},
		{name: "reply_general_failure", v: ReplyGeneralFailure, want: "general failure"},
		{name: "reply_not_allowed", v: ReplyNotAllowed, want: "not allowed by ruleset"},
		{name: "reply_network_unreachable", v: ReplyNetworkUnreachable, want: "network unreachable"},
		{name: "reply_host_unreachable", v: ReplyHostUnreachable, want: "host unreachable"},
		{name: "reply_connection_refused", v: ReplyConnectionRefused, want: "connection refused"},
		{name: "reply_ttl_expired", v: ReplyTTLExpired, want: "ttl expired"},
		{name: "reply_command_not_supported", v: ReplyCommandNotSupported, want: "command not supported"},
		{name: "reply_address_type_not_supported", v: ReplyAddressTypeNotSupported, want: "address type not supported"},
		{name: "reply_unknown", v: ReplyCode(0xff), want: "reply(0xff)"},
		{name: "atyp_ipv4", v: AddrTypeIPv4, want: "ipv4"},
		{name: "atyp_fqdn", v: AddrTypeFQDN, want: "fqdn"},
		{name: "atyp_ipv6", v: AddrTypeIPv6, want: "ipv6"},
		{name: "atyp_unknown", v: AddrType(2), want: "atyp(0x2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUserPassRequestHidesPassword(t *testing.T) {
	u := UserPassRequest{Username: "alice", Password: "hunter2"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		got := fmt.Sprintf(verb, u)
		if strings.Contains(got, "hunter2") {
			t.Errorf("Sprintf(%q) = %s: leaks the password", verb, got)
		}
		if !strings.Contains(got, "alice") || !strings.Contains(got, "REDACTED") {
			t.Errorf("Sprintf(%q) = %s, want the username and REDACTED", verb, got)
		}
	}
	if got, want := u.String(), "user=alice password=REDACTED"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	// Through a pointer and inside another value too.
	if got := fmt.Sprint(&u, []UserPassRequest{u}); strings.Contains(got, "hunter2") {
		t.Errorf("Sprint = %s: leaks the password", got)
	}
}

func TestParseErrorMessage(t *testing.T) {
	err := error(&ParseError{Msg: "request", Offset: 3, Err: ErrAddressType})
	if got, want := err.Error(), "socks: parsing request: socks: unsupported address type"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrAddressType) {
		t.Error("errors.Is(ParseError, ErrAddressType) = false")
	}
}
