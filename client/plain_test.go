package client_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	socks5 "github.com/things-go/go-socks5"
)

// The fallback path: the client offers 0xC6, the gateway selects a plain
// method, and the client continues as an RFC 1928 client in the same
// connection. Run against our gateway with its extensions disabled and
// against things-go/go-socks5, an independent implementation.

const echoBytes = 1 << 20

// plainGateway is a gateway under test: its address, and what it answers
// to a CONNECT to a name that does not exist.
type plainGateway struct {
	addr     string
	notFound proto.ReplyCode
}

// plainGateways starts one gateway of each implementation with the given
// users (nil for no authentication). Names: "echo.test" is 127.0.0.1.
func plainGateways(t *testing.T, users map[string]string) map[string]plainGateway {
	t.Helper()
	names := map[string][]netip.Addr{"echo.test": {netip.MustParseAddr("127.0.0.1")}}
	_, ours := newGateway(t, gatewayOpts{plain: true, users: users, names: names})
	return map[string]plainGateway{
		// The gateway maps NameNotFound (0xE6) to host unreachable
		// for plain clients (draft: Reply Codes).
		"server":   {ours, proto.ReplyHostUnreachable},
		"thingsgo": {thingsGoGateway(t, users, names), proto.ReplyHostUnreachable},
	}
}

// thingsGoGateway starts a go-socks5 server on loopback.
func thingsGoGateway(t *testing.T, users map[string]string, names map[string][]netip.Addr, opts ...socks5.Option) string {
	t.Helper()
	opts = append([]socks5.Option{socks5.WithResolver(mapResolver(names))}, opts...)
	if users != nil {
		opts = append(opts, socks5.WithCredential(socks5.StaticCredentials(users)))
	}
	srv := socks5.NewServer(opts...)
	ln := socks6test.Listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// mapResolver resolves names for go-socks5 from a map.
type mapResolver map[string][]netip.Addr

func (m mapResolver) Resolve(ctx context.Context, name string) (context.Context, net.IP, error) {
	if ips := m[name]; len(ips) > 0 {
		return ctx, ips[0].AsSlice(), nil
	}
	return ctx, nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func TestPlainConnect(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	echo4 := socks6test.EchoServer(t)
	_, port, _ := net.SplitHostPort(echo4)
	for name, gw := range plainGateways(t, nil) {
		t.Run(name, func(t *testing.T) {
			d := &client.Dialer{ProxyAddress: gw.addr}
			targets := map[string]func() string{
				"ipv4": func() string { return echo4 },
				"ipv6": func() string { return echoServer6(t) },
				"name": func() string { return net.JoinHostPort("echo.test", port) },
			}
			for tn, target := range targets {
				t.Run(tn, func(t *testing.T) {
					c, err := d.DialContext(testCtx(t), "tcp", target())
					if err != nil {
						t.Fatalf("dial: %v", err)
					}
					defer c.Close()
					cc := c.(*client.Conn)
					if cc.Extended() {
						t.Error("Extended() on a plain gateway")
					}
					if ap, ok := cc.Connected(); ok {
						t.Errorf("Connected() = %v on a plain gateway", ap)
					}
					if _, ok := cc.BoundAddr().AddrPort(); !ok || cc.BoundAddr().Port == 0 {
						t.Errorf("BoundAddr() = %v", cc.BoundAddr())
					}
					checkEcho(t, c, echoBytes)
				})
			}
		})
	}
}

func TestPlainAuth(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	echo := socks6test.EchoServer(t)
	for name, gw := range plainGateways(t, map[string]string{"alice": "wonderland"}) {
		t.Run(name, func(t *testing.T) {
			t.Run("ok", func(t *testing.T) {
				d := &client.Dialer{ProxyAddress: gw.addr, Username: "alice", Password: "wonderland"}
				c, err := d.DialContext(testCtx(t), "tcp", echo)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				checkEcho(t, c, 4096)
			})
			t.Run("wrong_password", func(t *testing.T) {
				d := &client.Dialer{ProxyAddress: gw.addr, Username: "alice", Password: "looking-glass"}
				_, err := d.DialContext(testCtx(t), "tcp", echo)
				if !errors.Is(err, client.ErrAuth) {
					t.Fatalf("dial with a wrong password: %v, want ErrAuth", err)
				}
			})
			t.Run("no_credentials", func(t *testing.T) {
				d := &client.Dialer{ProxyAddress: gw.addr}
				_, err := d.DialContext(testCtx(t), "tcp", echo)
				if !errors.Is(err, client.ErrAuth) {
					t.Fatalf("dial without credentials: %v, want ErrAuth", err)
				}
			})
		})
	}
}

func TestPlainRefusals(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	echo := socks6test.EchoServer(t)
	closed := closedPort(t)
	for name, gw := range plainGateways(t, nil) {
		t.Run(name, func(t *testing.T) {
			d := &client.Dialer{ProxyAddress: gw.addr}
			for _, tc := range []struct {
				name   string
				target string
				want   proto.ReplyCode
			}{
				{"refused", closed, proto.ReplyConnectionRefused},
				{"name_not_found", "nx.test:80", gw.notFound},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, err := d.DialContext(testCtx(t), "tcp", tc.target)
					re := asReply(t, err)
					if re.Code != tc.want || re.Command != proto.CommandConnect || re.Target != tc.target {
						t.Fatalf("error %v: code %v command %v target %q; want %v CONNECT %q", err, re.Code, re.Command, re.Target, tc.want, tc.target)
					}
				})
			}
			t.Run("require_extensions", func(t *testing.T) {
				d := &client.Dialer{ProxyAddress: gw.addr, Extensions: client.ExtRequire}
				_, err := d.DialContext(testCtx(t), "tcp", echo)
				if !errors.Is(err, client.ErrDowngrade) {
					t.Fatalf("ExtRequire against a plain gateway: %v, want ErrDowngrade", err)
				}
			})
			t.Run("session", func(t *testing.T) {
				_, err := d.OpenSession(testCtx(t))
				if !errors.Is(err, client.ErrNoExtensions) {
					t.Fatalf("OpenSession against a plain gateway: %v, want ErrNoExtensions", err)
				}
				_, err = d.Resolve(testCtx(t), "echo.test")
				if !errors.Is(err, client.ErrNoExtensions) {
					t.Fatalf("Resolve against a plain gateway: %v, want ErrNoExtensions", err)
				}
			})
		})
	}

	t.Run("not_allowed", func(t *testing.T) {
		_, gw := newGateway(t, gatewayOpts{plain: true, guard: true})
		d := &client.Dialer{ProxyAddress: gw}
		_, err := d.DialContext(testCtx(t), "tcp", echo)
		if re := asReply(t, err); re.Code != proto.ReplyNotAllowed {
			t.Fatalf("loopback target behind the guard: %v, want not allowed", err)
		}
		gw2 := thingsGoGateway(t, nil, nil, socks5.WithRule(socks5.NewPermitNone()))
		d = &client.Dialer{ProxyAddress: gw2}
		_, err = d.DialContext(testCtx(t), "tcp", echo)
		if re := asReply(t, err); re.Code != proto.ReplyNotAllowed {
			t.Fatalf("go-socks5 with PermitNone: %v, want not allowed", err)
		}
	})
}

// TestPlainOff checks ExtOff: the greeting does not offer 0xC6, and the
// dial works against a plain gateway.
func TestPlainOff(t *testing.T) {
	echo := socks6test.EchoServer(t)
	got := make(chan []proto.Method, 1)
	gw := fakeGateway(t, func(c net.Conn) {
		g, err := proto.ReadGreeting(c)
		if err != nil {
			t.Errorf("read greeting: %v", err)
			return
		}
		got <- g.Methods
		proto.Write(c, proto.MethodSelection{Method: proto.MethodNoAcceptable})
	})
	d := &client.Dialer{ProxyAddress: gw, Extensions: client.ExtOff, Username: "u", Password: "p"}
	_, err := d.DialContext(testCtx(t), "tcp", echo)
	if !errors.Is(err, client.ErrAuth) {
		t.Errorf("dial: %v, want ErrAuth for 0xFF", err)
	}
	if ms := <-got; !slices.Equal(ms, []proto.Method{proto.MethodNoAuth, proto.MethodUserPass}) {
		t.Errorf("ExtOff greeting offers %v, want [no-auth username/password]", ms)
	}

	_, plain := newGateway(t, gatewayOpts{plain: true})
	d = &client.Dialer{ProxyAddress: plain, Extensions: client.ExtOff}
	c, err := d.DialContext(testCtx(t), "tcp4", echo)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	checkEcho(t, c, 1000)
	if _, err := d.OpenSession(testCtx(t)); !errors.Is(err, client.ErrNoExtensions) {
		t.Errorf("OpenSession with ExtOff: %v, want ErrNoExtensions", err)
	}
}

// TestDialAddressErrors checks what DialContext refuses before it
// contacts the gateway.
func TestDialAddressErrors(t *testing.T) {
	d := &client.Dialer{ProxyAddress: closedPort(t)}
	for _, tc := range []struct{ network, address string }{
		{"udp", "127.0.0.1:53"},
		{"tcp", "no-port"},
		{"tcp", ":80"},
		{"tcp", "[fe80::1%eth0]:80"},
		{"tcp4", "[::1]:80"},
		{"tcp6", "127.0.0.1:80"},
		{"tcp", "host:99999"},
		{"tcp", string(make([]byte, 256)) + ":80"},
	} {
		_, err := d.DialContext(testCtx(t), tc.network, tc.address)
		var oe *net.OpError
		if !errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Dial(%q, %q) = %v, want a *net.OpError", tc.network, strconv.Quote(tc.address), err)
		}
	}
}
