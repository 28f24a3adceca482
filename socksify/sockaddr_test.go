package socksify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	for _, f := range bytes.Fields([]byte(s)) {
		for i := 0; i+1 < len(f); i += 2 {
			var v byte
			if _, err := fmt.Sscanf(string(f[i:i+2]), "%02x", &v); err != nil {
				t.Fatalf("hex %q: %v", f, err)
			}
			b = append(b, v)
		}
	}
	return b
}

func TestParseSockaddr(t *testing.T) {
	tests := []struct {
		name    string
		in      string // hex
		want    sockaddr
		wantErr error
	}{
		{name: "inet", in: "0200 1f90 c0000201 0000000000000000",
			want: sockaddr{family: afInet, ap: netip.MustParseAddrPort("192.0.2.1:8080")}},
		{name: "inet short", in: "0200 1f90 c0000201", wantErr: errSockaddrShort},
		{name: "inet6", in: "0a00 0050 00000000 20010db8000000000000000000000001 00000000",
			want: sockaddr{family: afInet6, ap: netip.MustParseAddrPort("[2001:db8::1]:80")}},
		{name: "inet6 mapped", in: "0a00 0035 00000000 00000000000000000000ffff0a0a0a35 00000000",
			want: sockaddr{family: afInet6, ap: netip.MustParseAddrPort("[::ffff:10.10.10.53]:53")}},
		{name: "inet6 link-local with scope", in: "0a00 0016 00000000 fe800000000000000000000000000001 02000000",
			want: sockaddr{family: afInet6, ap: netip.AddrPortFrom(netip.MustParseAddr("fe80::1%2"), 22)}},
		{name: "inet6 RFC 2133 length", in: "0a00 0050 00000000 20010db8000000000000000000000001",
			want: sockaddr{family: afInet6, ap: netip.MustParseAddrPort("[2001:db8::1]:80")}},
		{name: "inet6 short", in: "0a00 0050 00000000 20010db8", wantErr: errSockaddrShort},
		{name: "unix path", in: "0100 2f72756e2f78 00 4142", want: sockaddr{family: afUnix, path: "/run/x"}},
		{name: "unix path no NUL", in: "0100 2f746d70", want: sockaddr{family: afUnix, path: "/tmp"}},
		{name: "unix abstract", in: "0100 00616263", want: sockaddr{family: afUnix, path: "\x00abc"}},
		{name: "unix unnamed", in: "0100", want: sockaddr{family: afUnix}},
		{name: "netlink", in: "1000 0000 00000000 00000000", want: sockaddr{family: 16}, wantErr: errSockaddrFamily},
		{name: "unspec", in: "0000", want: sockaddr{family: 0}, wantErr: errSockaddrFamily},
		// What an AF_INET UDP socket would send to (udp_sendmsg).
		{name: "unspec with an IPv4 address", in: "0000 0035 c6336407 0000000000000000",
			want: sockaddr{family: afUnspec, ap: netip.MustParseAddrPort("198.51.100.7:53")}, wantErr: errSockaddrFamily},
		{name: "unspec too short for one", in: "0000 0035 c6336407", want: sockaddr{family: afUnspec}, wantErr: errSockaddrFamily},
		{name: "one byte", in: "02", wantErr: errSockaddrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSockaddr(mustHex(t, tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if err != nil && tt.want.family != 0 && got.family != tt.want.family {
				t.Errorf("family %d, want %d", got.family, tt.want.family)
			}
			if err != nil && got.ap != tt.want.ap {
				t.Errorf("address %v, want %v", got.ap, tt.want.ap)
			}
		})
	}
}

func TestAppendSockaddr(t *testing.T) {
	tests := []struct {
		name    string
		family  int
		ap      string
		want    string // hex; "" for an error
		roundAP string // what parseSockaddr gives back
	}{
		{"inet", afInet, "198.18.0.1:8080", "0200 1f90 c6120001 0000000000000000", "198.18.0.1:8080"},
		{"inet from mapped", afInet, "[::ffff:127.0.0.1]:53", "0200 0035 7f000001 0000000000000000", "127.0.0.1:53"},
		{"inet6", afInet6, "[fd00:5eed::1]:443", "0a00 01bb 00000000 fd005eed000000000000000000000001 00000000", "[fd00:5eed::1]:443"},
		{"inet6 mapping IPv4", afInet6, "127.0.0.1:1080", "0a00 0438 00000000 00000000000000000000ffff7f000001 00000000", "[::ffff:127.0.0.1]:1080"},
		{"inet refuses IPv6", afInet, "[::1]:80", "", ""},
		{"unix refused", afUnix, "127.0.0.1:80", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := appendSockaddr(nil, tt.family, netip.MustParseAddrPort(tt.ap))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("got % x, want an error", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tt.want); !bytes.Equal(b, want) {
				t.Errorf("got % x, want % x", b, want)
			}
			sa, err := parseSockaddr(b)
			if err != nil || sa.ap != netip.MustParseAddrPort(tt.roundAP) {
				t.Errorf("round trip: %v, %v; want %s", sa.ap, err, tt.roundAP)
			}
		})
	}
}

func TestReplyErrno(t *testing.T) {
	tests := []struct {
		code proto.ReplyCode
		want syscall.Errno
	}{
		{proto.ReplyGeneralFailure, syscall.ECONNREFUSED},
		{proto.ReplyNotAllowed, syscall.EACCES},
		{proto.ReplyNetworkUnreachable, syscall.ENETUNREACH},
		{proto.ReplyHostUnreachable, syscall.EHOSTUNREACH},
		{proto.ReplyConnectionRefused, syscall.ECONNREFUSED},
		{proto.ReplyTTLExpired, syscall.ETIMEDOUT},
		{proto.ReplyCommandNotSupported, syscall.EOPNOTSUPP},
		{proto.ReplyAddressTypeNotSupported, syscall.EAFNOSUPPORT},
		{proto.ReplyAuthRequired, syscall.EACCES},
		{proto.ReplyNotServed, syscall.ENETUNREACH},
		{proto.ReplyNameNotFound, syscall.EHOSTUNREACH},
		{proto.ReplyNameServerFailure, syscall.EHOSTUNREACH},
		{proto.ReplyTimeout, syscall.ETIMEDOUT},
		{proto.ReplyHopLimitExceeded, syscall.ENETUNREACH},
		{0x7f, syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		if got := replyErrno(tt.code); got != tt.want {
			t.Errorf("replyErrno(%v) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestHandshakeErrno(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "socks6 connect", Net: "tcp", Err: err}
	}
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"refused", op(&client.ReplyError{Code: proto.ReplyConnectionRefused}), syscall.ECONNREFUSED},
		{"name not found", op(&client.ReplyError{Code: proto.ReplyNameNotFound}), syscall.EHOSTUNREACH},
		{"rfc1929 auth", op(fmt.Errorf("%w: refused", client.ErrAuth)), syscall.EACCES},
		{"hello refused", op(&client.HelloError{Status: proto.HelloAuthFailed}), syscall.EACCES},
		{"close", op(&client.CloseError{Reason: proto.ReplyNotAllowed}), syscall.EACCES},
		{"deadline", op(context.DeadlineExceeded), syscall.ETIMEDOUT},
		{"i/o timeout", op(os.ErrDeadlineExceeded), syscall.ETIMEDOUT},
		{"gateway down", os.NewSyscallError("connect", syscall.ECONNREFUSED), syscall.ECONNREFUSED},
		{"no route to the gateway", syscall.ENETUNREACH, syscall.ENETUNREACH},
		{"eof", op(io.ErrUnexpectedEOF), syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		if got := handshakeErrno(tt.err); got != tt.want {
			t.Errorf("%s: handshakeErrno(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	p := policy{
		direct:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd12::/16")},
		gateway: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1080")},
	}
	tests := []struct {
		dst    string
		stream bool
		want   route
	}{
		{"127.0.0.1:80", true, routeDirect},
		{"127.0.0.1:80", false, routeDirect},
		{"[::1]:80", true, routeDirect},
		{"[::ffff:127.0.0.2]:80", true, routeDirect},
		{"0.0.0.0:80", true, routeDirect},
		{"127.0.0.53:53", false, routeDNS},
		{"10.255.255.53:53", false, routeDNS},
		{"[2001:db8::53]:53", true, routeDNS},
		{"10.1.2.3:53", false, routeDNS}, // DNS even in a direct range
		{"192.0.2.1:1080", true, routeDirect},
		{"192.0.2.1:1080", false, routeDirect},
		{"192.0.2.1:40000", false, routeDirect}, // the gateway's UDP relay ports
		{"192.0.2.1:40000", true, routeProxy},
		{"192.0.2.1:1081", true, routeProxy},
		{"198.18.0.1:443", true, routeProxy},
		{"[fd00:5eed::1]:443", true, routeProxy},
		{"198.18.0.1:443", false, routeProxy},
		{"[fd00:5eed::1]:443", false, routeProxy},
		{"10.1.2.3:22", true, routeDirect},
		{"10.1.2.3:123", false, routeDirect},
		{"[fd12::1]:80", true, routeDirect},
		{"[::ffff:10.1.2.3]:80", true, routeDirect},
		{"203.0.113.5:443", true, routeProxy},
		{"203.0.113.5:443", false, routeProxy},
		{"[fe80::1%2]:22", true, routeProxy},
		{"224.0.0.251:5353", false, routeDeny},
		{"255.255.255.255:67", false, routeDeny},
		{"[ff02::fb]:5353", false, routeDeny},
		{"[ff02::fb]:5353", true, routeProxy},
	}
	for _, tt := range tests {
		if got := p.route(tt.stream, netip.MustParseAddrPort(tt.dst)); got != tt.want {
			t.Errorf("route(stream=%v, %s) = %v, want %v", tt.stream, tt.dst, got, tt.want)
		}
	}
	for path, want := range map[string]bool{
		"/var/run/nscd/socket":                    true,
		"/run/systemd/resolve/io.systemd.Resolve": true,
		"/run/dbus/system_bus_socket":             false,
		"\x00/tmp/.X11-unix/X0":                   false,
	} {
		if got := unixPathRefused(path); got != want {
			t.Errorf("unixPathRefused(%q) = %v", path, got)
		}
	}
}
