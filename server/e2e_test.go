package server_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/auth/htpasswd"
	"github.com/socks6/socks6/server/resolver"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/proxy"
)

// e2eWait bounds every single wait in the end-to-end tests. It is
// generous because the tests run under the race detector, on machines
// that may be busy; successful tests never wait for it.
const e2eWait = 30 * time.Second

// e2eDial connects to the gateway at gw. The connection has a deadline of
// e2eWait and is closed when the test ends.
func e2eDial(t testing.TB, gw string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", gw, e2eWait)
	if err != nil {
		t.Fatalf("dial gateway %s: %v", gw, err)
	}
	c.SetDeadline(time.Now().Add(e2eWait))
	t.Cleanup(func() { c.Close() })
	return c
}

// e2eAddr turns "host:port" into a SOCKS address: an IP or a domain name.
func e2eAddr(t testing.TB, hostport string) proto.Addr {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("split %q: %v", hostport, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatalf("port of %q: %v", hostport, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return proto.Addr{IP: ip, Port: uint16(p)}
	}
	return proto.Addr{FQDN: host, Port: uint16(p)}
}

// e2eGreet negotiates a method on c: no authentication when user is
// empty, else username/password, which must succeed.
func e2eGreet(t testing.TB, c net.Conn, user, pass string) {
	t.Helper()
	want := proto.MethodNoAuth
	if user != "" {
		want = proto.MethodUserPass
	}
	if err := proto.Write(c, proto.Greeting{Methods: []proto.Method{want}}); err != nil {
		t.Fatalf("write greeting: %v", err)
	}
	ms, err := proto.ReadMethodSelection(c)
	if err != nil {
		t.Fatalf("read method selection: %v", err)
	}
	if ms.Method != want {
		t.Fatalf("gateway selected %v, want %v", ms.Method, want)
	}
	if user == "" {
		return
	}
	if err := proto.Write(c, proto.UserPassRequest{Username: user, Password: pass}); err != nil {
		t.Fatalf("write credentials: %v", err)
	}
	r, err := proto.ReadUserPassReply(c)
	if err != nil {
		t.Fatalf("read auth reply: %v", err)
	}
	if r.Status != proto.UserPassSuccess {
		t.Fatalf("auth status = %#x, want success", r.Status)
	}
}

// e2eRequest sends a request on a negotiated connection and reads the
// reply.
func e2eRequest(t testing.TB, c net.Conn, cmd proto.Command, target proto.Addr) proto.Reply {
	t.Helper()
	if err := proto.Write(c, proto.Request{Command: cmd, Addr: target}); err != nil {
		t.Fatalf("write request: %v", err)
	}
	rep, err := proto.ReadReply(c)
	if err != nil {
		t.Fatalf("read reply to %v %v: %v", cmd, target, err)
	}
	return rep
}

// e2eOpen dials the gateway, negotiates and sends one request; it returns
// the connection and the (first) reply.
func e2eOpen(t testing.TB, gw, user, pass string, cmd proto.Command, target string) (net.Conn, proto.Reply) {
	t.Helper()
	c := e2eDial(t, gw)
	e2eGreet(t, c, user, pass)
	return c, e2eRequest(t, c, cmd, e2eAddr(t, target))
}

// e2eConnect opens a CONNECT session that must succeed.
func e2eConnect(t testing.TB, gw, user, pass, target string) net.Conn {
	t.Helper()
	c, rep := e2eOpen(t, gw, user, pass, proto.CommandConnect, target)
	if rep.Code != proto.ReplySucceeded {
		t.Fatalf("CONNECT %s: reply %v (%#x), want succeeded", target, rep.Code, uint8(rep.Code))
	}
	return c
}

// e2eReplyCode returns the reply code for CONNECT to target and closes
// the session.
func e2eReplyCode(t testing.TB, gw, user, pass, target string) proto.ReplyCode {
	t.Helper()
	c, rep := e2eOpen(t, gw, user, pass, proto.CommandConnect, target)
	c.Close()
	return rep.Code
}

// e2eExpectClosed checks that the gateway closes c without sending
// anything more.
func e2eExpectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	b, err := io.ReadAll(c)
	if len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("after refusal read %x, %v; want the connection closed", b, err)
	}
}

// e2eEcho writes msg on c and expects it back.
func e2eEcho(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// e2eUsers returns an htpasswd users file for the given user, password
// pairs, hashed at bcrypt's minimum cost so that tests stay fast.
func e2eUsers(t testing.TB, userPass ...string) *htpasswd.File {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(userPass); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(userPass[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("bcrypt: %v", err)
		}
		fmt.Fprintf(&b, "%s:%s\n", userPass[i], h)
	}
	f, err := htpasswd.Parse("test-users", strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("parse users: %v", err)
	}
	return f
}

// e2eAuthGateway starts a gateway that may reach loopback and requires
// alice/wonderland or bob/builder.
func e2eAuthGateway(t testing.TB) (*server.Server, string) {
	t.Helper()
	s := &server.Server{HandshakeTimeout: e2eWait, Settings: server.Settings{
		Auth:  e2eUsers(t, "alice", "wonderland", "bob", "builder"),
		Guard: server.Guard{AllowLoopback: true},
	}}
	return s, startGateway(t, s)
}

// e2eResolver is a stub resolver for Server.Resolver.
type e2eResolver func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f e2eResolver) Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error) {
	return lookupFromNetIP(ctx, f, network, host)
}

func (f e2eResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// e2eStubResolver answers from names and reports NXDOMAIN for anything
// else, so no query ever leaves the machine.
func e2eStubResolver(names map[string][]netip.Addr) e2eResolver {
	return func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		if a, ok := names[host]; ok {
			return a, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
}

// e2eEchoServer6 starts a TCP echo server on [::1] and returns its
// address; it skips the test when IPv6 loopback is unavailable.
func e2eEchoServer6(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	socks6test.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
	return ln.Addr().String()
}

// e2eSessionsDrop waits until the gateway counts want sessions.
func e2eSessionsDrop(t testing.TB, s *server.Server, want int) {
	t.Helper()
	if !socks6test.WaitFor(e2eWait, func() bool { return s.Sessions() == want }) {
		t.Fatalf("Sessions() = %d, want %d", s.Sessions(), want)
	}
}

// e2eCheckLeaks fails the test if goroutines or open files are left over
// a few seconds after it ends. The relay keeps process-wide state that is
// not a leak (its epoll instance and poller goroutine, created by the
// first relay, and the runtime's pool of splice pipes), so one relay runs
// to completion first and pooled pipes are collected before counting.
func e2eCheckLeaks(t testing.TB) {
	t.Helper()
	e2eWarmRelay(t)
	socks6test.CheckGoroutines(t, 2)
	socks6test.CheckFDs(t, 2)
	// Runs before the checks above, after the test's own cleanups that
	// were registered later (such as gateway shutdown).
	t.Cleanup(func() { runtime.GC(); runtime.GC() })
}

// e2eWarmRelay relays one CONNECT session to completion through a
// gateway of its own.
func e2eWarmRelay(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		c, err := echo.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	s := &server.Server{Logger: slog.New(slog.DiscardHandler),
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	go s.Serve(ln)
	defer s.Close()
	c := e2eConnect(t, ln.Addr().String(), "", "", echo.Addr().String())
	e2eEcho(t, c, strings.Repeat("warm", 1000))
	c.Close()
	e2eSessionsDrop(t, s, 0)
}

func TestXNetProxy(t *testing.T) {
	e2eCheckLeaks(t)
	echo4 := socks6test.EchoServer(t)
	echo6 := e2eEchoServer6(t)
	_, echoPort, _ := net.SplitHostPort(echo4)

	var mu sync.Mutex
	var asked []string
	resolver := e2eResolver(func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		mu.Lock()
		asked = append(asked, host)
		mu.Unlock()
		return net.DefaultResolver.LookupNetIP(ctx, network, host)
	})

	open := &server.Server{Resolver: resolver, Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	openGW := startGateway(t, open)
	authed := &server.Server{Resolver: resolver, Settings: server.Settings{
		Auth:  e2eUsers(t, "alice", "wonderland"),
		Guard: server.Guard{AllowLoopback: true},
	}}
	authGW := startGateway(t, authed)

	targets := []struct{ name, addr string }{
		{"ipv4", echo4},
		{"ipv6", echo6},
		{"name", net.JoinHostPort("localhost", echoPort)},
	}
	gateways := []struct {
		name string
		gw   string
		auth *proxy.Auth
	}{
		{"noauth", openGW, nil},
		{"userpass", authGW, &proxy.Auth{User: "alice", Password: "wonderland"}},
	}
	for _, g := range gateways {
		for _, tg := range targets {
			t.Run(g.name+"_"+tg.name, func(t *testing.T) {
				mu.Lock()
				asked = nil
				mu.Unlock()
				d, err := proxy.SOCKS5("tcp", g.gw, g.auth, proxy.Direct)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
				defer cancel()
				c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", tg.addr)
				if err != nil {
					t.Fatalf("DialContext(%s) through %s: %v", tg.addr, g.gw, err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(e2eWait))
				e2eEcho(t, c, "hello through x/net/proxy "+tg.name)

				mu.Lock()
				defer mu.Unlock()
				// One query per family (A and AAAA, Happy Eyeballs).
				if tg.name == "name" && !slices.Equal(asked, []string{"localhost", "localhost"}) {
					t.Errorf("gateway resolved %q, want localhost for A and for AAAA", asked)
				}
				if tg.name != "name" && len(asked) > 0 {
					t.Errorf("gateway resolved %q for an IP target", asked)
				}
			})
		}
	}

	t.Run("wrong_password", func(t *testing.T) {
		d, _ := proxy.SOCKS5("tcp", authGW, &proxy.Auth{User: "alice", Password: "looking-glass"}, proxy.Direct)
		ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
		defer cancel()
		c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", echo4)
		if err == nil {
			c.Close()
			t.Fatal("dial with a wrong password succeeded")
		}
	})
	t.Run("no_credentials", func(t *testing.T) {
		d, _ := proxy.SOCKS5("tcp", authGW, nil, proxy.Direct)
		ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
		defer cancel()
		c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", echo4)
		if err == nil {
			c.Close()
			t.Fatal("dial without credentials to an auth gateway succeeded")
		}
	})
}

func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install -y curl); skipping interop with curl")
	}
	const body = "hello from the target web server\n"
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(web.Close)
	_, webPort, _ := net.SplitHostPort(web.Listener.Addr().String())

	_, openGW := loopbackGateway(t)
	_, authGW := e2eAuthGateway(t)

	// Proxy settings from the environment or ~/.curlrc must not interfere.
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasSuffix(strings.ToLower(k), "_proxy") {
			env = append(env, kv)
		}
	}
	run := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
		defer cancel()
		cmd := exec.CommandContext(ctx, curl, append([]string{"-q", "-sS", "--max-time", "5"}, args...)...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return string(out), err
	}

	tests := []struct {
		name string
		args []string
	}{
		{"socks5", []string{"--socks5", openGW, "http://127.0.0.1:" + webPort + "/"}},
		{"socks5_hostname", []string{"--socks5-hostname", openGW, "http://localhost:" + webPort + "/"}},
		{"socks5_userpass", []string{"--socks5", authGW, "-U", "alice:wonderland", "http://127.0.0.1:" + webPort + "/"}},
		{"socks5_hostname_userpass", []string{"--socks5-hostname", authGW, "-U", "bob:builder", "http://localhost:" + webPort + "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if err != nil {
				t.Fatalf("curl %s: %v", strings.Join(tt.args, " "), err)
			}
			if out != body {
				t.Fatalf("curl got %q, want %q", out, body)
			}
		})
	}
	t.Run("wrong_password", func(t *testing.T) {
		out, err := run(t, "--socks5", authGW, "-U", "alice:looking-glass", "http://127.0.0.1:"+webPort+"/")
		if err == nil {
			t.Fatalf("curl with a wrong password succeeded: %q", out)
		}
	})
}

// TestPipelinedHandshake sends greeting, credentials, request and early
// payload in one write, as a latency-minded client does.
func TestPipelinedHandshake(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	_, openGW := loopbackGateway(t)
	_, authGW := e2eAuthGateway(t)
	const early = "early bytes, sent before any reply"

	for _, tt := range []struct{ name, gw, user, pass string }{
		{"noauth", openGW, "", ""},
		{"userpass", authGW, "alice", "wonderland"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := e2eDial(t, tt.gw)
			var b []byte
			if tt.user == "" {
				b, _ = proto.Greeting{Methods: []proto.Method{proto.MethodNoAuth}}.AppendBinary(b)
			} else {
				b, _ = proto.Greeting{Methods: []proto.Method{proto.MethodUserPass}}.AppendBinary(b)
				b, _ = proto.UserPassRequest{Username: tt.user, Password: tt.pass}.AppendBinary(b)
			}
			b, _ = proto.Request{Command: proto.CommandConnect, Addr: e2eAddr(t, echo)}.AppendBinary(b)
			b = append(b, early...)
			if _, err := c.Write(b); err != nil {
				t.Fatalf("write: %v", err)
			}
			if _, err := proto.ReadMethodSelection(c); err != nil {
				t.Fatalf("method selection: %v", err)
			}
			if tt.user != "" {
				if r, err := proto.ReadUserPassReply(c); err != nil || r.Status != proto.UserPassSuccess {
					t.Fatalf("auth reply %+v, %v", r, err)
				}
			}
			rep, err := proto.ReadReply(c)
			if err != nil || rep.Code != proto.ReplySucceeded {
				t.Fatalf("reply %+v, %v", rep, err)
			}
			got := make([]byte, len(early))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read echoed early bytes: %v", err)
			}
			if string(got) != early {
				t.Fatalf("target echoed %q, want %q", got, early)
			}
			e2eEcho(t, c, "and after")
		})
	}
}

func TestAuthentication(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	s, gw := e2eAuthGateway(t)

	t.Run("success", func(t *testing.T) {
		c := e2eConnect(t, gw, "alice", "wonderland", echo)
		e2eEcho(t, c, "in")
	})
	for _, tt := range []struct{ name, user, pass string }{
		{"wrong_password", "alice", "builder"},
		{"unknown_user", "mallory", "wonderland"},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := e2eDial(t, gw)
			if err := proto.Write(c, proto.Greeting{Methods: []proto.Method{proto.MethodUserPass}}); err != nil {
				t.Fatal(err)
			}
			if ms, err := proto.ReadMethodSelection(c); err != nil || ms.Method != proto.MethodUserPass {
				t.Fatalf("method selection %+v, %v", ms, err)
			}
			if err := proto.Write(c, proto.UserPassRequest{Username: tt.user, Password: tt.pass}); err != nil {
				t.Fatal(err)
			}
			r, err := proto.ReadUserPassReply(c)
			if err != nil {
				t.Fatalf("read auth reply: %v", err)
			}
			if r.Status != proto.UserPassFailure {
				t.Fatalf("auth status = %#x, want %#x", r.Status, proto.UserPassFailure)
			}
			e2eExpectClosed(t, c)
		})
	}
	t.Run("no_acceptable_method", func(t *testing.T) {
		c := e2eDial(t, gw)
		if err := proto.Write(c, proto.Greeting{Methods: []proto.Method{proto.MethodNoAuth, proto.MethodGSSAPI}}); err != nil {
			t.Fatal(err)
		}
		ms, err := proto.ReadMethodSelection(c)
		if err != nil {
			t.Fatalf("read method selection: %v", err)
		}
		if ms.Method != proto.MethodNoAcceptable {
			t.Fatalf("method = %v, want %v", ms.Method, proto.MethodNoAcceptable)
		}
		e2eExpectClosed(t, c)
	})
	t.Run("userpass_offered_to_open_gateway", func(t *testing.T) {
		// A gateway without users selects "no authentication" even when
		// the client prefers username/password.
		_, open := loopbackGateway(t)
		c := e2eDial(t, open)
		proto.Write(c, proto.Greeting{Methods: []proto.Method{proto.MethodUserPass, proto.MethodNoAuth}})
		if ms, err := proto.ReadMethodSelection(c); err != nil || ms.Method != proto.MethodNoAuth {
			t.Fatalf("method selection %+v, %v; want no-auth", ms, err)
		}
	})
	e2eSessionsDrop(t, s, 0)
}

// TestHalfClose checks that an end of stream in one direction reaches the
// other end while the opposite direction keeps flowing.
func TestHalfClose(t *testing.T) {
	e2eCheckLeaks(t)
	_, gw := loopbackGateway(t)

	// The target reads to EOF, then, after pause, answers with what it
	// read. A pause longer than the relay's linger (1s) makes the
	// answering direction park and wake on the answer.
	for _, pause := range []time.Duration{0, 1500 * time.Millisecond} {
		t.Run(fmt.Sprintf("client_first_answer_after_%v", pause), func(t *testing.T) {
			ln := socks6test.Listen(t)
			socks6test.Serve(t, ln, func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(e2eWait))
				b, err := io.ReadAll(c)
				if err != nil {
					t.Errorf("target read: %v", err)
					return
				}
				time.Sleep(pause)
				fmt.Fprintf(c, "target saw EOF after %q", b)
			})
			c := e2eConnect(t, gw, "", "", ln.Addr().String())
			io.WriteString(c, "request")
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read answer after half-close: %v", err)
			}
			if want := `target saw EOF after "request"`; string(got) != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}

	t.Run("target_first", func(t *testing.T) {
		// The target speaks, half-closes, then reads what the client sends
		// after it saw EOF.
		ln := socks6test.Listen(t)
		heard := make(chan string, 1)
		socks6test.Serve(t, ln, func(c net.Conn) {
			defer c.Close()
			c.SetDeadline(time.Now().Add(e2eWait))
			io.WriteString(c, "banner")
			c.(*net.TCPConn).CloseWrite()
			b, err := io.ReadAll(c)
			if err != nil {
				t.Errorf("target read: %v", err)
			}
			heard <- string(b)
		})
		c := e2eConnect(t, gw, "", "", ln.Addr().String())
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "banner" {
			t.Fatalf("read until target's EOF: %q, %v; want \"banner\"", got, err)
		}
		io.WriteString(c, "reply after EOF")
		c.Close()
		select {
		case h := <-heard:
			if h != "reply after EOF" {
				t.Fatalf("target heard %q", h)
			}
		case <-time.After(e2eWait):
			t.Fatal("target heard nothing")
		}
	})
}

// e2eStream writes n pseudo-random bytes (AES-CTR keyed by seed) to w and
// returns their SHA-256.
func e2eStream(w io.Writer, n int64, seed byte) ([32]byte, error) {
	key := make([]byte, 16)
	key[0] = seed
	blk, _ := aes.NewCipher(key)
	ctr := cipher.NewCTR(blk, make([]byte, aes.BlockSize))
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		clear(chunk)
		ctr.XORKeyStream(chunk, chunk)
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			return [32]byte{}, err
		}
		n -= int64(len(chunk))
	}
	return [32]byte(h.Sum(nil)), nil
}

// e2eDrain reads r to EOF and returns the byte count and SHA-256.
func e2eDrain(r io.Reader) (int64, [32]byte, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 256<<10))
	return n, [32]byte(h.Sum(nil)), err
}

// TestBulkBothWays pushes 100 MiB each way at once and compares checksums
// on both sides.
func TestBulkBothWays(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB; skipped in -short mode")
	}
	e2eCheckLeaks(t)
	const size = 100 << 20
	type result struct {
		sent, got [32]byte
		n         int64
	}
	audit := e2eNewAudit()
	s := &server.Server{Logger: audit.logger(), Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	gw := startGateway(t, s)

	ln := socks6test.Listen(t)
	targetRes := make(chan result, 1)
	socks6test.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		var r result
		var werr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.sent, werr = e2eStream(c, size, 2)
			c.(*net.TCPConn).CloseWrite()
		}()
		var err error
		r.n, r.got, err = e2eDrain(c)
		<-done
		if err != nil || werr != nil {
			t.Errorf("target: read %v, write %v", err, werr)
		}
		targetRes <- r
	})

	c := e2eConnect(t, gw, "", "", ln.Addr().String())
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var client result
	var werr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.sent, werr = e2eStream(c, size, 1)
		c.(*net.TCPConn).CloseWrite()
	}()
	var err error
	client.n, client.got, err = e2eDrain(c)
	<-done
	if err != nil || werr != nil {
		t.Fatalf("client: read %v, write %v", err, werr)
	}
	c.Close()
	var target result
	select {
	case target = <-targetRes:
	case <-time.After(time.Minute):
		t.Fatal("target did not finish")
	}
	if client.n != size || target.n != size {
		t.Errorf("received %d bytes at the client and %d at the target, want %d each", client.n, target.n, size)
	}
	if client.sent != target.got {
		t.Errorf("upstream corrupted: client sent %x, target got %x", client.sent, target.got)
	}
	if target.sent != client.got {
		t.Errorf("downstream corrupted: target sent %x, client got %x", target.sent, client.got)
	}
	rec := audit.waitSession(t)
	if rec.BytesUp != size || rec.BytesDown != size {
		t.Errorf("audit bytes_up=%d bytes_down=%d, want %d each", rec.BytesUp, rec.BytesDown, size)
	}
}

// e2eAudit collects a gateway's log as JSON lines.
type e2eAudit struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func e2eNewAudit() *e2eAudit { return &e2eAudit{} }

func (a *e2eAudit) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

func (a *e2eAudit) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(a, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// e2eRecord is one decoded log record; Keys lists every key it had.
type e2eRecord struct {
	Keys      []string
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	Client    string `json:"client"`
	User      string `json:"user"`
	Cmd       string `json:"cmd"`
	Target    string `json:"target"`
	Bound     string `json:"bound"`
	Connected string `json:"connected"`
	BytesUp   int64  `json:"bytes_up"`
	BytesDown int64  `json:"bytes_down"`
	Dur       int64  `json:"dur"`
	Reply     string `json:"reply"`
	Err       string `json:"err"`
	Outcome   string `json:"outcome"`
}

// records decodes every record logged so far.
func (a *e2eAudit) records(t testing.TB) []e2eRecord {
	t.Helper()
	a.mu.Lock()
	data := slices.Clone(a.buf.Bytes())
	a.mu.Unlock()
	var out []e2eRecord
	for line := range bytes.Lines(data) {
		var r e2eRecord
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("decode log line %s: %v", line, err)
		}
		json.Unmarshal(line, &keys)
		for k := range keys {
			r.Keys = append(r.Keys, k)
		}
		slices.Sort(r.Keys)
		out = append(out, r)
	}
	return out
}

// sessions returns the "session" records logged so far.
func (a *e2eAudit) sessions(t testing.TB) []e2eRecord {
	t.Helper()
	var out []e2eRecord
	for _, r := range a.records(t) {
		if r.Msg == "session" {
			out = append(out, r)
		}
	}
	return out
}

// waitSession waits for the first session record and returns it.
func (a *e2eAudit) waitSession(t testing.TB) e2eRecord {
	t.Helper()
	if !socks6test.WaitFor(e2eWait, func() bool { return len(a.sessions(t)) > 0 }) {
		t.Fatal("no session record logged")
	}
	return a.sessions(t)[0]
}

func TestAuditRecord(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	closed := e2eClosedPort(t)
	wantKeys := []string{"bound", "bytes_down", "bytes_up", "client", "cmd", "connected", "dur", "level", "msg", "reply", "target", "time", "user"}

	t.Run("connect", func(t *testing.T) {
		audit := e2eNewAudit()
		s := &server.Server{Logger: audit.logger(), Settings: server.Settings{
			Auth: e2eUsers(t, "alice", "wonderland"), Guard: server.Guard{AllowLoopback: true},
		}}
		gw := startGateway(t, s)
		c := e2eConnect(t, gw, "alice", "wonderland", echo)
		up := strings.Repeat("u", 1000)
		io.WriteString(c, up)
		if _, err := io.ReadFull(c, make([]byte, 600)); err != nil {
			t.Fatal(err)
		}
		// Only 600 of the 1000 echoed bytes are read; the rest still count
		// as relayed to the client.
		client := c.LocalAddr().String()
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()
		e2eSessionsDrop(t, s, 0)

		rec := audit.waitSession(t)
		if got := audit.sessions(t); len(got) != 1 {
			t.Fatalf("%d session records, want 1: %+v", len(got), got)
		}
		if !slices.Equal(rec.Keys, wantKeys) {
			t.Errorf("record keys = %q, want %q", rec.Keys, wantKeys)
		}
		if rec.Level != "INFO" || rec.Client != client || rec.User != "alice" || rec.Cmd != "connect" ||
			rec.Target != echo || rec.Reply != proto.ReplySucceeded.String() || rec.Bound == "" {
			t.Errorf("record = %+v", rec)
		}
		if rec.BytesUp != 1000 || rec.BytesDown != 1000 {
			t.Errorf("bytes_up=%d bytes_down=%d, want 1000 each", rec.BytesUp, rec.BytesDown)
		}
	})

	t.Run("refused", func(t *testing.T) {
		audit := e2eNewAudit()
		s := &server.Server{Logger: audit.logger(), Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
		gw := startGateway(t, s)
		if code := e2eReplyCode(t, gw, "", "", closed); code != proto.ReplyConnectionRefused {
			t.Fatalf("reply %v, want connection refused", code)
		}
		rec := audit.waitSession(t)
		if rec.Reply != proto.ReplyConnectionRefused.String() || rec.Err == "" || rec.Target != closed ||
			rec.BytesUp != 0 || rec.BytesDown != 0 {
			t.Errorf("record = %+v", rec)
		}
		if want := append(slices.Clone(wantKeys), "err"); !slices.Equal(rec.Keys, slices.Sorted(slices.Values(want))) {
			t.Errorf("record keys = %q", rec.Keys)
		}
	})

	t.Run("handshake_failure_is_no_session", func(t *testing.T) {
		audit := e2eNewAudit()
		s := &server.Server{Logger: audit.logger(), Settings: server.Settings{Auth: e2eUsers(t, "alice", "wonderland")}}
		gw := startGateway(t, s)
		c := e2eDial(t, gw)
		proto.Write(c, proto.Greeting{Methods: []proto.Method{proto.MethodUserPass}})
		proto.ReadMethodSelection(c)
		proto.Write(c, proto.UserPassRequest{Username: "alice", Password: "s3cr3t-guess"})
		proto.ReadUserPassReply(c)
		io.Copy(io.Discard, c)
		var debug bool
		socks6test.WaitFor(e2eWait, func() bool {
			for _, r := range audit.records(t) {
				debug = debug || (r.Msg == "handshake failed" && r.Level == "DEBUG")
			}
			return debug
		})
		if !debug {
			t.Error("no Debug record for the failed handshake")
		}
		if got := audit.sessions(t); len(got) != 0 {
			t.Errorf("failed login produced session records: %+v", got)
		}
		for _, r := range audit.records(t) {
			if strings.Contains(fmt.Sprint(r), "s3cr3t") {
				t.Errorf("password in log: %+v", r)
			}
		}
	})
}

// e2eClosedPort returns a loopback address where nothing listens.
func e2eClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// e2eServe serves s on loopback and returns its address and Serve's
// result; the server is closed when the test ends.
func e2eServe(t testing.TB, s *server.Server) (string, <-chan error) {
	t.Helper()
	if s.Logger == nil {
		s.Logger = socks6test.Logger(t)
	}
	ln := socks6test.Listen(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String(), done
}

func TestShutdown(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)

	t.Run("drains", func(t *testing.T) {
		s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
		gw, served := e2eServe(t, s)
		c := e2eConnect(t, gw, "", "", echo)
		e2eEcho(t, c, "before")

		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
			defer cancel()
			shut <- s.Shutdown(ctx)
		}()
		select {
		case err := <-served:
			if !errors.Is(err, server.ErrServerClosed) {
				t.Fatalf("Serve = %v, want ErrServerClosed", err)
			}
		case <-time.After(e2eWait):
			t.Fatal("Serve did not return after Shutdown")
		}
		if c2, err := net.DialTimeout("tcp", gw, e2eWait); err == nil {
			c2.Close()
			t.Error("gateway still accepts after Shutdown")
		}
		e2eEcho(t, c, "during shutdown")
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with a session open", err)
		default:
		}
		c.Close()
		select {
		case err := <-shut:
			if err != nil {
				t.Fatalf("Shutdown = %v, want nil once drained", err)
			}
		case <-time.After(e2eWait):
			t.Fatal("Shutdown did not return after the last session ended")
		}
	})

	t.Run("deadline_cuts", func(t *testing.T) {
		s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
		gw, served := e2eServe(t, s)
		c := e2eConnect(t, gw, "", "", echo)
		e2eEcho(t, c, "before")
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Fatalf("Serve = %v, want ErrServerClosed", err)
		}
		if b, err := io.ReadAll(c); len(b) != 0 {
			t.Fatalf("read %q, %v after the cut; want end of stream", b, err)
		}
		if s.Sessions() != 0 {
			t.Fatalf("Sessions() = %d after Shutdown returned", s.Sessions())
		}
	})

	t.Run("deadline_cuts_dialing", func(t *testing.T) {
		// A session still dialing its target is cut too: the dial is
		// cancelled instead of running on to DialTimeout.
		dialing := make(chan struct{}, 1)
		s := &server.Server{
			HandshakeTimeout: time.Minute,
			DialTimeout:      time.Minute,
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dialing <- struct{}{}
				<-ctx.Done() // a target that never answers
				return nil, ctx.Err()
			},
		}
		gw, _ := e2eServe(t, s)
		c := e2eDial(t, gw)
		e2eGreet(t, c, "", "")
		proto.Write(c, proto.Request{Command: proto.CommandConnect, Addr: e2eAddr(t, "192.0.2.1:80")})
		select {
		case <-dialing:
		case <-time.After(e2eWait):
			t.Fatal("the gateway did not dial")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		shut := make(chan error, 1)
		go func() { shut <- s.Shutdown(ctx) }()
		select {
		case err := <-shut:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Shutdown waited for a dial that its deadline should have cut")
		}
		if b, err := io.ReadAll(c); len(b) > 0 {
			if rep, _, perr := proto.ParseReply(b); perr != nil || rep.Code == proto.ReplySucceeded {
				t.Fatalf("after the cut read %x, %v", b, err)
			}
		}
	})

	t.Run("serve_after_shutdown", func(t *testing.T) {
		s := &server.Server{}
		s.Shutdown(t.Context())
		if err := s.Serve(socks6test.Listen(t)); !errors.Is(err, server.ErrServerClosed) {
			t.Fatalf("Serve after Shutdown = %v, want ErrServerClosed", err)
		}
	})
}

func TestReload(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	s, gw := loopbackGateway(t)
	old := e2eConnect(t, gw, "", "", echo)
	e2eEcho(t, old, "before reload")

	s.Reload(server.Settings{
		Guard:  server.Guard{AllowLoopback: true},
		Policy: &server.Rules{Default: server.Deny},
	})
	if code := e2eReplyCode(t, gw, "", "", echo); code != proto.ReplyNotAllowed {
		t.Fatalf("new session after reload to deny-all: %v, want not allowed", code)
	}
	e2eEcho(t, old, "after reload")

	// Reload back: new sessions are allowed again, and the old one still
	// works.
	s.Reload(server.Settings{Guard: server.Guard{AllowLoopback: true}})
	c := e2eConnect(t, gw, "", "", echo)
	e2eEcho(t, c, "allowed again")
	e2eEcho(t, old, "still")

	// A reload that requires authentication applies to new sessions only.
	s.Reload(server.Settings{Guard: server.Guard{AllowLoopback: true}, Auth: e2eUsers(t, "alice", "wonderland")})
	c = e2eConnect(t, gw, "alice", "wonderland", echo)
	e2eEcho(t, c, "with auth")
	e2eEcho(t, old, "still, without auth")
}
