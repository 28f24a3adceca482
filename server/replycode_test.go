package server_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// TestReplyCodes provokes each reply code of RFC 1928 with real sockets
// on loopback. Codes that need real routing (0x03, 0x04 from a route,
// 0x06) are also covered inside network namespaces in netns_test.go.
func TestReplyCodes(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echo6 := e2eEchoServer6(t)
	closed := e2eClosedPort(t)
	_, echoPort, _ := net.SplitHostPort(echo)

	var mu sync.Mutex
	var asked []string
	names := e2eStubResolver(map[string][]netip.Addr{
		"echo.test": {netip.MustParseAddr("127.0.0.1")},
		"evil.test": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
	})
	resolver := e2eResolver(func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		mu.Lock()
		asked = append(asked, host)
		mu.Unlock()
		return names(ctx, network, host)
	})
	open := &server.Server{Resolver: resolver, Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	openGW := startGateway(t, open)
	guarded := &server.Server{Resolver: resolver}
	guardedGW := startGateway(t, guarded)
	denyEcho := &server.Server{Settings: server.Settings{
		Guard:  server.Guard{AllowLoopback: true},
		Policy: &server.Rules{Rules: []server.Rule{{Action: server.Deny, Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}},
	}}
	denyGW := startGateway(t, denyEcho)

	tests := []struct {
		name   string
		gw     string
		target string
		want   proto.ReplyCode
	}{
		{"succeeded", openGW, echo, proto.ReplySucceeded},
		{"succeeded_ipv6", openGW, echo6, proto.ReplySucceeded},
		{"succeeded_name", openGW, net.JoinHostPort("echo.test", echoPort), proto.ReplySucceeded},
		{"not_allowed_policy", denyGW, echo, proto.ReplyNotAllowed},
		{"not_allowed_guard_ipv4", guardedGW, echo, proto.ReplyNotAllowed},
		{"not_allowed_guard_ipv6", guardedGW, echo6, proto.ReplyNotAllowed},
		{"not_allowed_guard_other_loopback", guardedGW, "127.1.2.3:" + echoPort, proto.ReplyNotAllowed},
		{"not_allowed_guard_mapped", guardedGW, "[::ffff:127.0.0.1]:" + echoPort, proto.ReplyNotAllowed},
		{"not_allowed_guard_unspecified", openGW, "0.0.0.0:" + echoPort, proto.ReplyNotAllowed},
		{"not_allowed_name_into_loopback", guardedGW, net.JoinHostPort("evil.test", echoPort), proto.ReplyNotAllowed},
		{"host_unreachable_nxdomain", openGW, "nonexistent.invalid:80", proto.ReplyHostUnreachable},
		{"connection_refused", openGW, closed, proto.ReplyConnectionRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rep := e2eOpen(t, tt.gw, "", "", proto.CommandConnect, tt.target)
			if rep.Code != tt.want {
				t.Fatalf("CONNECT %s: reply %v (%#x), want %v (%#x)", tt.target, rep.Code, uint8(rep.Code), tt.want, uint8(tt.want))
			}
			if tt.want == proto.ReplySucceeded {
				e2eEcho(t, c, "hi")
				return
			}
			e2eExpectClosed(t, c)
		})
	}
	mu.Lock()
	for _, name := range []string{"echo.test", "evil.test", "nonexistent.invalid"} {
		if !slices.Contains(asked, name) {
			t.Errorf("the stub resolver was not asked for %s (asked %q)", name, asked)
		}
	}
	mu.Unlock()

	t.Run("general_failure_sessions_full", func(t *testing.T) {
		s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}, Limits: server.Limits{Sessions: 1}}}
		gw := startGateway(t, s)
		held := e2eConnect(t, gw, "", "", echo)
		if code := e2eReplyCode(t, gw, "", "", echo); code != proto.ReplyGeneralFailure {
			t.Fatalf("second session: %v, want general failure", code)
		}
		e2eEcho(t, held, "still here")
	})

	t.Run("command_not_supported", func(t *testing.T) {
		c := e2eDial(t, openGW)
		e2eGreet(t, c, "", "")
		rep := e2eRequest(t, c, proto.Command(0x09), e2eAddr(t, echo))
		if rep.Code != proto.ReplyCommandNotSupported {
			t.Fatalf("CMD 0x09: reply %v, want command not supported", rep.Code)
		}
		e2eExpectClosed(t, c)
	})

	t.Run("address_type_not_supported", func(t *testing.T) {
		c := e2eDial(t, openGW)
		e2eGreet(t, c, "", "")
		// VER CMD RSV ATYP=0x02 and what would be an IPv4 address and port.
		if _, err := c.Write([]byte{5, 1, 0, 2, 127, 0, 0, 1, 0, 80}); err != nil {
			t.Fatal(err)
		}
		rep, err := proto.ReadReply(c)
		if err != nil {
			t.Fatalf("read reply: %v", err)
		}
		if rep.Code != proto.ReplyAddressTypeNotSupported {
			t.Fatalf("ATYP 0x02: reply %v, want address type not supported", rep.Code)
		}
		e2eExpectClosed(t, c)
	})
}

// TestDialErrorReplyCodes checks that each way a dial can fail keeps its
// own reply code, with a Dial hook standing in for the network. The same
// errors come from real routes in TestNetNSReplyCodes.
func TestDialErrorReplyCodes(t *testing.T) {
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	tests := []struct {
		name string
		err  error
		want proto.ReplyCode
	}{
		{"network_unreachable", opErr(syscall.ENETUNREACH), proto.ReplyNetworkUnreachable},
		{"host_unreachable", opErr(syscall.EHOSTUNREACH), proto.ReplyHostUnreachable},
		{"host_down", opErr(syscall.EHOSTDOWN), proto.ReplyHostUnreachable},
		{"refused", opErr(syscall.ECONNREFUSED), proto.ReplyConnectionRefused},
		{"timed_out", opErr(syscall.ETIMEDOUT), proto.ReplyTTLExpired},
		{"deadline", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, proto.ReplyTTLExpired},
		{"context_deadline", context.DeadlineExceeded, proto.ReplyTTLExpired},
		{"prohibited", opErr(syscall.EACCES), proto.ReplyNotAllowed},
		{"firewall", opErr(syscall.EPERM), proto.ReplyNotAllowed},
		{"other", errors.New("something else"), proto.ReplyGeneralFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server.Server{
				Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					if addr != "192.0.2.1:80" {
						t.Errorf("dialed %s, want 192.0.2.1:80", addr)
					}
					return nil, tt.err
				},
			}
			gw := startGateway(t, s)
			if code := e2eReplyCode(t, gw, "", "", "192.0.2.1:80"); code != tt.want {
				t.Fatalf("dial error %v: reply %v, want %v", tt.err, code, tt.want)
			}
		})
	}

	t.Run("dns_timeout", func(t *testing.T) {
		s := &server.Server{
			Resolver: e2eResolver(func(ctx context.Context, network, host string) ([]netip.Addr, error) {
				return nil, &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}
			}),
		}
		gw := startGateway(t, s)
		// A resolver that does not answer is a name server failure
		// (0xE7), which plain clients see as a general failure (the
		// draft's mapping table): TTL expired is for connect timeouts.
		if code := e2eReplyCode(t, gw, "", "", "slow.test:80"); code != proto.ReplyGeneralFailure {
			t.Fatalf("resolver timeout: reply %v, want general failure", code)
		}
	})

	t.Run("first_failure_reported", func(t *testing.T) {
		// A name with two addresses: both are tried, IPv6 first (Happy
		// Eyeballs), and with no refusal and no timeout the first
		// failure decides the code.
		var dialed []string
		var mu sync.Mutex
		s := &server.Server{
			Resolver: e2eStubResolver(map[string][]netip.Addr{
				"two.test": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
			}),
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				mu.Lock()
				dialed = append(dialed, addr)
				mu.Unlock()
				if addr == "[2001:db8::1]:80" {
					return nil, opErr(syscall.EHOSTUNREACH)
				}
				return nil, opErr(syscall.ENETUNREACH)
			},
		}
		gw := startGateway(t, s)
		if code := e2eReplyCode(t, gw, "", "", "two.test:80"); code != proto.ReplyHostUnreachable {
			t.Fatalf("reply %v, want host unreachable", code)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"[2001:db8::1]:80", "192.0.2.1:80"}; !slices.Equal(dialed, want) {
			t.Fatalf("dialed %q, want %q", dialed, want)
		}
	})

	t.Run("second_address_succeeds", func(t *testing.T) {
		echo := socks6test.EchoServer(t)
		s := &server.Server{
			Resolver: e2eStubResolver(map[string][]netip.Addr{
				"two.test": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
			}),
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == "192.0.2.1:80" {
					return nil, opErr(syscall.EHOSTUNREACH)
				}
				var d net.Dialer
				return d.DialContext(ctx, "tcp", echo)
			},
			// The documentation addresses stand for remote hosts, even if
			// this machine happens to use one of them.
			Settings: server.Settings{Guard: server.Guard{Self: func() []netip.Addr { return nil }}},
		}
		gw := startGateway(t, s)
		c := e2eConnect(t, gw, "", "", "two.test:80")
		e2eEcho(t, c, "via the second address")
	})
}
