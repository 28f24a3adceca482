package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/resolver"
)

// testWait bounds every single wait in these tests. It is generous
// because the tests run under the race detector on machines that may be
// busy; passing tests never wait for it.
const testWait = 30 * time.Second

// testCtx returns a context that ends with the test or after testWait.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// startGateway serves s on a loopback listener until the test ends and
// returns its address.
func startGateway(t testing.TB, s *server.Server) string {
	t.Helper()
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return socks6test.ServeGateway(t, s)
}

// gatewayOpts configures newGateway.
type gatewayOpts struct {
	plain bool              // a plain SOCKS5 gateway: never selects 0xC6
	users map[string]string // username → password; nil means no auth
	names map[string][]netip.Addr
	guard bool // refuse loopback targets (the default guard)
	// public are the external addresses of associations and listeners
	// (server.ListenSettings.PublicAddrs).
	public []netip.Addr
}

// newGateway starts a server.Server that may reach loopback (unless
// o.guard) and returns its address.
func newGateway(t testing.TB, o gatewayOpts) (*server.Server, string) {
	t.Helper()
	s := &server.Server{
		HandshakeTimeout:  testWait,
		DisableExtensions: o.plain,
		Resolver:          &stubResolver{names: o.names},
		Settings:          server.Settings{Guard: server.Guard{AllowLoopback: !o.guard}, Listen: server.ListenSettings{PublicAddrs: o.public}},
	}
	if o.users != nil {
		s.Settings.Auth = server.AuthenticatorFunc(func(_ context.Context, user, pass string) error {
			if want, ok := o.users[user]; ok && want == pass {
				return nil
			}
			return errors.New("bad credentials")
		})
	}
	return s, startGateway(t, s)
}

// stubResolver is the gateway's resolver in these tests: fixed names,
// "nx.test" and every other name not found, "servfail.test" failing.
type stubResolver struct {
	names map[string][]netip.Addr
}

func (r *stubResolver) Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error) {
	switch host {
	case "servfail.test":
		return nil, &resolver.Error{Name: host, Kind: resolver.ServerFailure}
	}
	ips, ok := r.names[host]
	if !ok {
		return nil, &resolver.Error{Name: host, Kind: resolver.NotFound}
	}
	var out []resolver.Answer
	for i, ip := range ips {
		if (network == "ip4") == ip.Is4() {
			out = append(out, resolver.Answer{Addr: ip, TTL: uint32(100 + i)})
		}
	}
	return out, nil
}

// requireExtensions skips the test unless the gateway at gw selects
// method 0xC6 when offered. It probes with a bare greeting, so that a
// bug in the client cannot cause the skip.
func requireExtensions(t testing.TB, gw string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", gw, testWait)
	if err != nil {
		t.Fatalf("probe %s: %v", gw, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testWait))
	g := proto.Greeting{Methods: []proto.Method{proto.MethodExtensions, proto.MethodNoAuth, proto.MethodUserPass}}
	if err := proto.Write(c, g); err != nil {
		t.Fatalf("probe %s: %v", gw, err)
	}
	sel, err := proto.ReadMethodSelection(c)
	if err != nil {
		t.Fatalf("probe %s: %v", gw, err)
	}
	if sel.Method != proto.MethodExtensions {
		t.Skip("gateway does not negotiate extensions yet")
	}
}

// echoServer6 starts a TCP echo server on [::1]:0, or skips the test if
// IPv6 loopback is unavailable.
func echoServer6(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	socks6test.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
	return ln.Addr().String()
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t testing.TB) string {
	t.Helper()
	ln := socks6test.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// checkEcho sends n random bytes on c while reading the echo, half-closes
// c, and checks that exactly the same bytes come back before EOF.
func checkEcho(t testing.TB, c net.Conn, n int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testWait))
	data := make([]byte, n)
	rand.Read(data)
	want := sha256.Sum256(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	got, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if got != int64(n) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echo: %d bytes, checksum %x; want %d bytes, %x", got, h.Sum(nil), n, want)
	}
}

// asReply returns the *client.ReplyError inside err, failing the test if
// there is none.
func asReply(t testing.TB, err error) *client.ReplyError {
	t.Helper()
	var re *client.ReplyError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *client.ReplyError", err, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("error %v is not a *net.OpError", err)
	}
	return re
}

// fakeGateway is a hand-written gateway for one test: each accepted
// connection runs script, which reports problems with t.Errorf only.
// When the test ends, the gateway waits for the scripts to return before
// it closes what is left.
func fakeGateway(t testing.TB, script func(c net.Conn)) string {
	t.Helper()
	ln := socks6test.Listen(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(testWait))
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				script(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		// Let the scripts finish what they check (each is bounded by its
		// connection's deadline), then close what is left.
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(testWait):
			t.Errorf("fake gateway: a script did not finish within %v", testWait)
		}
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		<-finished
	})
	return ln.Addr().String()
}

// fakeHello plays the gateway's side of negotiation on c: it reads the
// greeting, selects 0xC6, reads HELLO and checks that it repeats the
// greeting, and writes ack (status ok and a random session ID unless
// set). It returns the HELLO.
func fakeHello(t testing.TB, c net.Conn, ack proto.HelloAck) (proto.Hello, bool) {
	t.Helper()
	g, err := proto.ReadGreeting(c)
	if err != nil {
		t.Errorf("fake gateway: read greeting: %v", err)
		return proto.Hello{}, false
	}
	if !g.Offers(proto.MethodExtensions) {
		t.Errorf("fake gateway: greeting %v does not offer 0xC6", g.Methods)
		return proto.Hello{}, false
	}
	if err := proto.Write(c, proto.MethodSelection{Method: proto.MethodExtensions}); err != nil {
		t.Errorf("fake gateway: write selection: %v", err)
		return proto.Hello{}, false
	}
	f, err := proto.ReadFrame(c, nil)
	if err != nil || f.Type != proto.FrameHello {
		t.Errorf("fake gateway: read HELLO: %v, %v", f.Type, err)
		return proto.Hello{}, false
	}
	h, err := proto.ParseHello(f.Value)
	if err != nil {
		t.Errorf("fake gateway: parse HELLO: %v", err)
		return proto.Hello{}, false
	}
	if !bytes.Equal(methodBytes(h.Methods), methodBytes(g.Methods)) {
		t.Errorf("HELLO methods %v, greeting %v: transcript mismatch", h.Methods, g.Methods)
	}
	if ack.SessionID == (proto.SessionID{}) && ack.Status == proto.HelloOK {
		rand.Read(ack.SessionID[:])
	}
	if err := proto.WriteFrame(c, ack); err != nil {
		t.Errorf("fake gateway: write HELLO_ACK: %v", err)
		return proto.Hello{}, false
	}
	return h, true
}

func methodBytes(ms []proto.Method) []byte {
	b := make([]byte, len(ms))
	for i, m := range ms {
		b[i] = byte(m)
	}
	return b
}

// readRequest reads a REQUEST frame on the fake gateway's side.
func readRequest(t testing.TB, c net.Conn) (proto.ExtRequest, bool) {
	t.Helper()
	f, err := proto.ReadFrame(c, nil)
	if err != nil {
		t.Errorf("fake gateway: read REQUEST: %v", err)
		return proto.ExtRequest{}, false
	}
	if f.Type != proto.FrameRequest {
		t.Errorf("fake gateway: got %v, want REQUEST", f.Type)
		return proto.ExtRequest{}, false
	}
	r, err := proto.ParseExtRequest(f.Value)
	if err != nil {
		t.Errorf("fake gateway: parse REQUEST: %v", err)
		return proto.ExtRequest{}, false
	}
	return r, true
}

// expectClose reads frames on the fake gateway's side until a CLOSE and
// checks its reason.
func expectClose(t testing.TB, c net.Conn, reason proto.ReplyCode) {
	t.Helper()
	for {
		f, err := proto.ReadFrame(c, nil)
		if err != nil {
			t.Errorf("fake gateway: want CLOSE 0x%02x, got %v", uint8(reason), err)
			return
		}
		if f.Type != proto.FrameClose {
			continue
		}
		cl, err := proto.ParseClose(f.Value)
		if err != nil {
			t.Errorf("fake gateway: parse CLOSE: %v", err)
			return
		}
		if cl.Reason != reason {
			t.Errorf("client sent CLOSE %v, want %v", cl.Reason, reason)
		}
		return
	}
}

// writeRaw writes frames or bytes on the fake gateway's side.
func writeRaw(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Errorf("fake gateway: write: %v", err)
	}
}

// frame encodes m as a frame.
func frame(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.AppendFrame(nil, m)
	if err != nil {
		t.Errorf("encode %v: %v", m.FrameType(), err)
	}
	return b
}

// rawFrame encodes a frame of any type and value.
func rawFrame(t testing.TB, typ proto.FrameType, value []byte) []byte {
	t.Helper()
	b, err := proto.Frame{Type: typ, Value: value}.AppendBinary(nil)
	if err != nil {
		t.Errorf("encode frame: %v", err)
	}
	return b
}
