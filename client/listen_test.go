package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
)

// Listener tests. The bodies (testListen*) run against the fake listen
// gateway here and against our gateway in listen_server_test.go.

// listenEnv is a gateway the listener test bodies run against.
type listenEnv struct {
	d *client.Dialer
	// rejects returns the REJECT_OFFER frames the gateway has received;
	// nil if the gateway cannot tell.
	rejects func() int
	// endSessions makes the gateway end every control connection.
	endSessions func()
}

func fakeListenEnv(t *testing.T, o listenGatewayOpts) (listenEnv, *listenGateway) {
	g := newListenGateway(t, o)
	return listenEnv{
		d: &client.Dialer{ProxyAddress: g.addr, Username: "alice", Password: "wonderland"},
		rejects: func() int {
			_, _, r, _ := g.counts()
			return r
		},
		endSessions: func() { g.closeSessions(proto.ReplyGeneralFailure) },
	}, g
}

// echoBody echoes each accepted connection until the caller half-closes.
type acceptEcho struct {
	mu      sync.Mutex
	remotes []string // RemoteAddr of every accepted Conn
	done    chan error
	conns   sync.WaitGroup
}

// serveEcho accepts on l until Accept fails, echoing every connection.
func serveEcho(t *testing.T, l *client.Listener) *acceptEcho {
	t.Helper()
	a := &acceptEcho{done: make(chan error, 1)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				a.done <- err
				return
			}
			cc := c.(*client.Conn)
			a.mu.Lock()
			a.remotes = append(a.remotes, c.RemoteAddr().String())
			a.mu.Unlock()
			if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
				t.Errorf("RemoteAddr() is a %T, want *net.TCPAddr", c.RemoteAddr())
			}
			if cc.BoundAddr().String() != c.RemoteAddr().String() {
				t.Errorf("BoundAddr() = %v, RemoteAddr() = %v: want the caller both times", cc.BoundAddr(), c.RemoteAddr())
			}
			a.conns.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(testWait))
				if _, err := io.Copy(c, c); err != nil {
					t.Errorf("echo to %v: %v", c.RemoteAddr(), err)
				}
				cc.CloseWrite()
			})
		}
	}()
	return a
}

// wait returns Accept's final error, once l is closed, and waits for the
// echoes.
func (a *acceptEcho) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-a.done:
		a.conns.Wait()
		return err
	case <-time.After(testWait):
		t.Fatal("Accept did not return")
		return nil
	}
}

// callerEcho connects to addr as a caller, sends n random bytes while it
// reads the echo, half-closes, and checks that the same bytes (by
// SHA-256) come back before EOF. It returns the caller's address.
func callerEcho(ctx context.Context, addr string, n int) (string, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testWait))
	data := make([]byte, n)
	rand.Read(data)
	want := sha256.Sum256(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	got, err := io.Copy(h, c)
	if err != nil {
		return "", fmt.Errorf("read echo: %w", err)
	}
	if err := <-werr; err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	if got != int64(n) || !bytes.Equal(h.Sum(nil), want[:]) {
		return "", fmt.Errorf("echo: %d bytes, SHA-256 %x; want %d bytes, %x", got, h.Sum(nil), n, want)
	}
	return c.LocalAddr().String(), nil
}

// expectReset checks that a caller on c is refused: a read ends with an
// error or EOF, not data, within testWait.
func expectReset(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testWait))
	n, err := c.Read(make([]byte, 1))
	if err == nil || n > 0 || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		t.Errorf("rejected caller read %d bytes, %v; want a reset or EOF", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("rejected caller was left waiting: %v", err)
	}
}

// dialCaller connects to a listener as a caller. A caller that the
// gateway resets at once may see the reset as connect's error
// (ECONNRESET) on loopback; that is returned, anything else fails the
// test.
func dialCaller(t *testing.T, addr string) (net.Conn, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testWait)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial caller: %v", err)
	}
	return c, err
}

// checkStats waits until l's stats reach want (they are updated by
// background takes).
func checkStats(t *testing.T, l *client.Listener, want client.ListenerStats) {
	t.Helper()
	var got client.ListenerStats
	if !socks6test.WaitFor(testWait, func() bool { got = l.Stats(); return got == want }) {
		t.Errorf("Stats() = %+v, want %+v (last take error: %v)", got, want, l.LastTakeError())
	}
}

// testListenMany takes n concurrent callers, each echoing size bytes
// both ways, and checks that each Conn's RemoteAddr is its caller.
func testListenMany(t *testing.T, env listenEnv, n, size int) {
	l, err := env.d.Listen(testCtx(t), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	a := serveEcho(t, l)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var callers []string
	for range n {
		wg.Go(func() {
			local, err := callerEcho(testCtx(t), l.Addr().String(), size)
			if err != nil {
				t.Errorf("caller: %v", err)
				return
			}
			mu.Lock()
			callers = append(callers, local)
			mu.Unlock()
		})
	}
	wg.Wait()
	l.Close()
	if err := a.wait(t); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	slices.Sort(callers)
	slices.Sort(a.remotes)
	if !slices.Equal(callers, a.remotes) {
		t.Errorf("accepted RemoteAddrs %v, callers %v", a.remotes, callers)
	}
	if st := l.Stats(); st != (client.ListenerStats{Offers: uint64(n), Taken: uint64(n)}) {
		t.Errorf("Stats() = %+v, want %d offers all taken (last take error: %v)", st, n, l.LastTakeError())
	}
}

// testListenHTTP serves HTTP on a Listener and fetches from it.
func testListenHTTP(t *testing.T, env listenEnv) {
	l, err := env.d.Listen(testCtx(t), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s from %s", r.URL.Path, r.RemoteAddr)
		}),
		ReadHeaderTimeout: testWait,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var locals []string
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			locals = append(locals, c.LocalAddr().String())
			mu.Unlock()
		}
		return c, err
	}
	hc := &http.Client{Transport: tr, Timeout: testWait}
	for i := range 5 {
		path := fmt.Sprintf("/page%d", i)
		resp, err := hc.Get("http://" + l.Addr().String() + path)
		if err != nil {
			t.Fatalf("GET %s: %v (last take error: %v)", path, err, l.LastTakeError())
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		mu.Lock()
		local := locals[len(locals)-1]
		mu.Unlock()
		if want := "hello " + path + " from " + local; err != nil || string(body) != want {
			t.Errorf("GET %s = %q, %v; want %q", path, body, err, want)
		}
	}
	if err := l.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want net.ErrClosed", err)
		}
	case <-time.After(testWait):
		t.Fatal("Serve did not return after Close")
	}
	checkStats(t, l, client.ListenerStats{Offers: 5, Taken: 5})
}

// testListenFilter rejects the first caller with Filter and takes the
// second.
func testListenFilter(t *testing.T, env listenEnv) {
	var (
		mu     sync.Mutex
		offers []client.Offer
	)
	var l *client.Listener
	lc := client.ListenConfig{Filter: func(o client.Offer) bool {
		mu.Lock()
		defer mu.Unlock()
		offers = append(offers, o)
		return len(offers) > 1
	}}
	l, err := env.d.ListenConfig(testCtx(t), "tcp", "127.0.0.1:0", lc)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	rejectsBefore := 0
	if env.rejects != nil {
		rejectsBefore = env.rejects()
	}

	// Bind the first caller's port first, so that Filter's offer can be
	// checked against it even if the reset beats connect.
	first, err := dialCaller(t, l.Addr().String())
	if err == nil {
		defer first.Close()
		first.Write([]byte("let me in"))
		expectReset(t, first)
	}
	checkStats(t, l, client.ListenerStats{Offers: 1, Rejected: 1})
	if env.rejects != nil && !socks6test.WaitFor(testWait, func() bool { return env.rejects() == rejectsBefore+1 }) {
		t.Errorf("gateway got %d REJECT_OFFERs, want 1", env.rejects()-rejectsBefore)
	}
	mu.Lock()
	o := offers[0]
	mu.Unlock()
	if o.Listener != l.ID() || first != nil && o.Caller.String() != first.LocalAddr().String() {
		t.Errorf("Filter saw %+v; want listener %d and the first caller", o, l.ID())
	}
	if left := time.Until(o.Expires); left <= 0 || left > time.Minute {
		t.Errorf("offer expires in %v", left)
	}

	a := serveEcho(t, l)
	if _, err := callerEcho(testCtx(t), l.Addr().String(), 1000); err != nil {
		t.Errorf("second caller: %v", err)
	}
	l.Close()
	a.wait(t)
	checkStats(t, l, client.ListenerStats{Offers: 2, Taken: 1, Rejected: 1})
}

// testListenClose checks that Close ends a pending Accept with
// net.ErrClosed and, for a Listener that owns its session, closes the
// socket at the gateway.
func testListenClose(t *testing.T, env listenEnv) {
	l, err := env.d.Listen(testCtx(t), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Accept block (not needed for correctness)
	if err := l.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	var oe *net.OpError
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) {
			t.Errorf("Accept after Close: %v, want a *net.OpError wrapping net.ErrClosed", err)
		}
	case <-time.After(testWait):
		t.Fatal("Accept did not return after Close")
	}
	if _, err := l.AcceptContext(testCtx(t)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Accept: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	// The session went with the listener, and the gateway's socket with
	// the session.
	addr := l.Addr().String()
	if !socks6test.WaitFor(testWait, func() bool {
		c, err := net.DialTimeout("tcp", addr, testWait)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}) {
		t.Errorf("the gateway still listens on %s after Close", addr)
	}
}

// testSessionListenClose checks Close of a Listener from Session.Listen:
// the session carries on, and the listener's further callers are
// rejected.
func testSessionListenClose(t *testing.T, env listenEnv) {
	s, err := env.d.OpenSession(testCtx(t))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	defer s.Close()
	l1, err := s.Listen(testCtx(t), "tcp", "127.0.0.1:0", client.ListenConfig{})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	l2, err := s.Listen(testCtx(t), "tcp", "127.0.0.1:0", client.ListenConfig{})
	if err != nil {
		t.Fatalf("second listen: %v", err)
	}
	if l1.ID() == l2.ID() || l1.Addr().String() == l2.Addr().String() {
		t.Fatalf("two listeners share ID %d or address %v", l1.ID(), l1.Addr())
	}
	a2 := serveEcho(t, l2)
	if err := l1.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := l1.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if _, err := s.Ping(testCtx(t)); err != nil {
		t.Fatalf("the session did not survive its listener's Close: %v", err)
	}
	// l1's socket stays open at the gateway (the protocol cannot close
	// it), but its callers are rejected.
	if c, err := dialCaller(t, l1.Addr().String()); err == nil {
		defer c.Close()
		expectReset(t, c)
	}
	checkStats(t, l1, client.ListenerStats{Offers: 1, Rejected: 1})
	// l2 is unaffected.
	if _, err := callerEcho(testCtx(t), l2.Addr().String(), 5000); err != nil {
		t.Errorf("caller of the other listener: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("close session: %v", err)
	}
	if err := a2.wait(t); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept of the other listener after the session's Close: %v, want net.ErrClosed", err)
	}
	l2.Close()
}

// testListenSessionEnd checks that the gateway ending the session ends
// Accept with the session's error and, if takenSurvives, that a
// connection taken before that keeps working (it does unless the whole
// gateway stopped).
func testListenSessionEnd(t *testing.T, env listenEnv, takenSurvives bool, check func(error) bool) {
	l, err := env.d.Listen(testCtx(t), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	caller, err := net.DialTimeout("tcp", l.Addr().String(), testWait)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer caller.Close()
	taken, err := l.AcceptContext(testCtx(t))
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer taken.Close()

	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	env.endSessions()
	select {
	case err := <-errc:
		var oe *net.OpError
		if err == nil || !errors.As(err, &oe) || errors.Is(err, net.ErrClosed) || !check(err) {
			t.Errorf("Accept after the gateway ended the session: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("Accept did not return when the gateway ended the session")
	}

	if !takenSurvives {
		return
	}
	// The taken stream is independent of the session.
	caller.SetDeadline(time.Now().Add(testWait))
	taken.SetDeadline(time.Now().Add(testWait))
	if _, err := caller.Write([]byte("ping")); err != nil {
		t.Fatalf("caller write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(taken, buf); err != nil || string(buf) != "ping" {
		t.Errorf("taken stream after the session ended: %q, %v", buf, err)
	}
}

func TestFakeListen(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, env listenEnv)
	}{
		{"http", testListenHTTP},
		{"many", func(t *testing.T, env listenEnv) { testListenMany(t, env, 100, 256<<10) }},
		{"filter", testListenFilter},
		{"close", testListenClose},
		{"session_listen_close", testSessionListenClose},
		{"session_end", func(t *testing.T, env listenEnv) {
			testListenSessionEnd(t, env, true, func(err error) bool {
				var ce *client.CloseError
				return errors.As(err, &ce) && ce.Reason == proto.ReplyGeneralFailure && ce.Diagnostic == "going away"
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := fakeListenEnv(t, listenGatewayOpts{})
			tc.run(t, env)
		})
	}
}

// TestFakeListenRequest checks what LISTEN and TAKE send and what the
// Listener reports from the REPLY.
func TestFakeListenRequest(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	env, g := fakeListenEnv(t, listenGatewayOpts{reserved: []uint16{8080, 8443}, public: netip.MustParseAddr("192.0.2.7")})
	s, err := env.d.OpenSession(testCtx(t))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	defer s.Close()
	if got := s.ReservedPorts(); !slices.Equal(got, []uint16{8080, 8443}) {
		t.Errorf("ReservedPorts() = %v", got)
	}
	lc := client.ListenConfig{Exact: false, DualStack: true, OfferTimeout: 2500 * time.Millisecond}
	l, err := s.Listen(testCtx(t), "tcp", ":0", lc)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	l6, err := s.Listen(testCtx(t), "tcp6", "", client.ListenConfig{})
	if err == nil {
		t.Fatalf("listen without a port succeeded on %v", l6.Addr())
	}
	l6, err = s.Listen(testCtx(t), "tcp6", "[::]:0", client.ListenConfig{})
	if err != nil {
		t.Fatalf("listen tcp6: %v", err)
	}
	defer l6.Close()
	lx, err := s.Listen(testCtx(t), "tcp4", ":0", client.ListenConfig{Exact: true})
	if err != nil {
		t.Fatalf("listen exact: %v", err)
	}
	defer lx.Close()

	g.mu.Lock()
	listens := slices.Clone(g.listens)
	g.mu.Unlock()
	if len(listens) != 3 {
		t.Fatalf("gateway got %d LISTENs, want 3", len(listens))
	}
	want := []proto.ExtRequest{
		{Command: proto.CommandListen, DualStack: true, Addr: proto.Addr{IP: netip.IPv4Unspecified()}, Options: proto.Options{proto.OfferTimeoutOption(2500 * time.Millisecond)}},
		{Command: proto.CommandListen, Addr: proto.Addr{IP: netip.IPv6Unspecified()}},
		{Command: proto.CommandListen, Exact: true, Addr: proto.Addr{IP: netip.IPv4Unspecified()}},
	}
	for i, r := range listens {
		w := want[i]
		w.ID = r.ID
		if fmt.Sprint(r) != fmt.Sprint(w) {
			t.Errorf("LISTEN %d = %+v, want %+v", i, r, w)
		}
	}
	if listens[0].ID == listens[1].ID || listens[1].ID == listens[2].ID {
		t.Errorf("LISTENs share a Request ID: %d %d %d", listens[0].ID, listens[1].ID, listens[2].ID)
	}

	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok || !addr.IP.IsLoopback() || addr.Port == 0 {
		t.Errorf("Addr() = %v (%T)", l.Addr(), l.Addr())
	}
	if got := l.PublicAddrs(); len(got) != 1 || got[0] != netip.AddrPortFrom(netip.MustParseAddr("192.0.2.7"), uint16(addr.Port)) {
		t.Errorf("PublicAddrs() = %v", got)
	}
	if l.OfferTimeout() != 2500*time.Millisecond {
		t.Errorf("OfferTimeout() = %v, want the 2.5s asked for", l.OfferTimeout())
	}
	if l6.OfferTimeout() != 10*time.Second {
		t.Errorf("OfferTimeout() = %v, want the gateway's default 10s", l6.OfferTimeout())
	}
	if l.ID() == l6.ID() || l.ID() == 0 {
		t.Errorf("listener IDs %d and %d", l.ID(), l6.ID())
	}
	if a := l6.Addr().(*net.TCPAddr); a.IP.To4() != nil {
		t.Errorf("tcp6 listener bound to %v", a)
	}

	// Offers reach the right listener; takes carry the session's
	// credentials.
	for _, ln := range []*client.Listener{l, l6, lx} {
		a := serveEcho(t, ln)
		local, err := callerEcho(testCtx(t), ln.Addr().String(), 3000)
		if err != nil {
			t.Errorf("caller of %v: %v", ln.Addr(), err)
		}
		ln.Close()
		a.wait(t)
		if len(a.remotes) != 1 || a.remotes[0] != local {
			t.Errorf("listener %v accepted %v, want the caller %v", ln.Addr(), a.remotes, local)
		}
	}
	g.mu.Lock()
	hellos := slices.Clone(g.hellos)
	g.mu.Unlock()
	for _, h := range hellos {
		if h.Username != "alice" || h.Password != "wonderland" || h.Auth != proto.MethodUserPass {
			t.Errorf("TAKE connection's HELLO has user %q", h.Username)
		}
	}
	if len(hellos) != 3 {
		t.Errorf("%d TAKE connections, want 3", len(hellos))
	}
}

// TestFakeListenBacklog checks that offers nobody accepts are taken up
// to the backlog and rejected beyond it.
func TestFakeListenBacklog(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	env, _ := fakeListenEnv(t, listenGatewayOpts{})
	l, err := env.d.Listen(testCtx(t), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	const backlog, n = 64, 80
	for i := range n {
		c, err := dialCaller(t, l.Addr().String())
		if err != nil {
			continue // rejected before connect returned
		}
		defer c.Close()
		fmt.Fprintf(c, "%03d", i)
	}
	checkStats(t, l, client.ListenerStats{Offers: n, Taken: backlog, Rejected: n - backlog})
	// The stats count a rejection just before REJECT_OFFER is written.
	if got := 0; !socks6test.WaitFor(testWait, func() bool { got = env.rejects(); return got == n-backlog }) {
		t.Errorf("gateway got %d REJECT_OFFERs, want %d", got, n-backlog)
	}
	seen := make(map[string]bool)
	for range backlog {
		c, err := l.AcceptContext(testCtx(t))
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		c.SetDeadline(time.Now().Add(testWait))
		b := make([]byte, 3)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Errorf("read from a taken caller: %v", err)
		}
		seen[string(b)] = true
		c.Close()
	}
	if len(seen) != backlog {
		t.Errorf("accepted %d distinct callers, want %d", len(seen), backlog)
	}
	// With the backlog drained, a new caller is taken again.
	a := serveEcho(t, l)
	if _, err := callerEcho(testCtx(t), l.Addr().String(), 100); err != nil {
		t.Errorf("caller after the backlog drained: %v", err)
	}
	l.Close()
	a.wait(t)
}

// TestFakeListenTakeFails checks that failed takes are counted, not
// returned by Accept.
func TestFakeListenTakeFails(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	t.Run("token_invalid", func(t *testing.T) {
		env, g := fakeListenEnv(t, listenGatewayOpts{badTokens: true})
		l, err := env.d.Listen(testCtx(t), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		if c, err := dialCaller(t, l.Addr().String()); err == nil {
			defer c.Close()
			expectReset(t, c)
		}
		checkStats(t, l, client.ListenerStats{Offers: 1, Failed: 1})
		err = l.LastTakeError()
		var re *client.ReplyError
		if !errors.As(err, &re) || re.Code != proto.ReplyTokenInvalid || re.Command != proto.CommandTake {
			t.Errorf("LastTakeError() = %v, want TokenInvalid", err)
		}
		if takes, _, _, _ := g.counts(); takes != 1 {
			t.Errorf("gateway got %d TAKEs, want 1 (no retry)", takes)
		}
		checkNoToken(t, fmt.Sprintf("%v %+v %#v", err, err, err))
		ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		defer cancel()
		if _, err := l.AcceptContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Accept returned %v for a failed take", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		env, g := fakeListenEnv(t, listenGatewayOpts{expiredOffers: true})
		l, err := env.d.Listen(testCtx(t), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		if c, err := dialCaller(t, l.Addr().String()); err == nil {
			defer c.Close()
		}
		checkStats(t, l, client.ListenerStats{Offers: 1, Failed: 1})
		if err := l.LastTakeError(); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("LastTakeError() = %v, want an expired offer", err)
		}
		if takes, _, _, _ := g.counts(); takes != 0 {
			t.Errorf("the client sent %d TAKEs for an expired offer", takes)
		}
	})
	t.Run("gateway_gone", func(t *testing.T) {
		// Takes dial a gateway that has stopped accepting: the dial
		// error is counted.
		env, _ := fakeListenEnv(t, listenGatewayOpts{})
		s, err := env.d.OpenSession(testCtx(t))
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		defer s.Close()
		var dials atomic.Int32
		d := *env.d
		d.ProxyDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) > 1 {
				return nil, errors.New("no route to the test gateway")
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		s2, err := d.OpenSession(testCtx(t))
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		defer s2.Close()
		l, err := s2.Listen(testCtx(t), "tcp", "127.0.0.1:0", client.ListenConfig{})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		if c, err := dialCaller(t, l.Addr().String()); err == nil {
			defer c.Close()
		}
		checkStats(t, l, client.ListenerStats{Offers: 1, Failed: 1})
		if err := l.LastTakeError(); err == nil || !strings.Contains(err.Error(), "no route to the test gateway") {
			t.Errorf("LastTakeError() = %v", err)
		}
	})
}

// checkNoToken fails if text may carry a token: a run of 32 hex
// digits. Tokens are secrets (draft, "ACCEPT_OFFER"); the gateway forgets
// used ones, so any such run stands in for them.
func checkNoToken(t *testing.T, text string) {
	t.Helper()
	run := 0
	for _, r := range text {
		if strings.ContainsRune("0123456789abcdefABCDEF", r) {
			run++
			if run >= 32 {
				t.Errorf("error text may carry a token: %q", text)
				return
			}
		} else {
			run = 0
		}
	}
}

// TestFakeListenRefused checks the errors of a refused or impossible
// LISTEN.
func TestFakeListenRefused(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	for _, code := range []proto.ReplyCode{proto.ReplyPortUnavailable, proto.ReplyQuotaExceeded, proto.ReplyNotAllowed} {
		t.Run(code.String(), func(t *testing.T) {
			env, _ := fakeListenEnv(t, listenGatewayOpts{refuse: code})
			_, err := env.d.ListenConfig(testCtx(t), "tcp", "127.0.0.1:8080", client.ListenConfig{Exact: true})
			re := asReply(t, err)
			if re.Code != code || re.Command != proto.CommandListen || re.Target != "127.0.0.1:8080" || re.Diagnostic != "refused by the test" {
				t.Errorf("listen: %v; want %v", err, code)
			}
			var oe *net.OpError
			if errors.As(err, &oe) && (oe.Op != "socks6 listen" || oe.Net != "tcp") {
				t.Errorf("OpError %q %q", oe.Op, oe.Net)
			}
		})
	}
	t.Run("no_listen_feature", func(t *testing.T) {
		env, _ := fakeListenEnv(t, listenGatewayOpts{features: proto.FeatureResolve})
		if _, err := env.d.Listen(testCtx(t), "tcp", ":0"); !errors.Is(err, client.ErrNoExtensions) {
			t.Errorf("listen without the LISTEN bit: %v, want ErrNoExtensions", err)
		}
	})
	t.Run("plain_gateway", func(t *testing.T) {
		_, gw := newGateway(t, gatewayOpts{plain: true})
		for _, mode := range []client.ExtMode{client.ExtAuto, client.ExtOff} {
			d := &client.Dialer{ProxyAddress: gw, Extensions: mode}
			_, err := d.Listen(testCtx(t), "tcp", ":0")
			var oe *net.OpError
			if !errors.Is(err, client.ErrNoExtensions) || !errors.As(err, &oe) || oe.Op != "socks6 listen" {
				t.Errorf("listen through a plain SOCKS5 gateway (%v): %v, want ErrNoExtensions", mode, err)
			}
		}
	})
	t.Run("bad_address", func(t *testing.T) {
		env, g := fakeListenEnv(t, listenGatewayOpts{})
		s, err := env.d.OpenSession(testCtx(t))
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		defer s.Close()
		for _, tc := range []struct{ network, address string }{
			{"udp", ":0"},
			{"tcp", "gateway.test:0"},
			{"tcp4", "[::]:0"},
			{"tcp6", "0.0.0.0:0"},
			{"tcp", "[fe80::1%eth0]:0"},
			{"tcp", "127.0.0.1"},
			{"tcp", "127.0.0.1:70000"},
		} {
			if l, err := s.Listen(testCtx(t), tc.network, tc.address, client.ListenConfig{}); err == nil {
				t.Errorf("listen %s %s succeeded: %v", tc.network, tc.address, l.Addr())
			}
		}
		if _, err := s.Ping(testCtx(t)); err != nil {
			t.Errorf("ping: %v", err)
		}
		g.mu.Lock()
		n := len(g.listens)
		g.mu.Unlock()
		if n != 0 {
			t.Errorf("bad addresses reached the gateway as %d LISTENs", n)
		}
	})
}

// listenScript plays a gateway that grants one LISTEN (Listener ID 5)
// and then runs script on the control connection.
func listenScript(t *testing.T, script func(c net.Conn, req proto.ExtRequest)) string {
	t.Helper()
	return fakeGateway(t, func(c net.Conn) {
		if !toExt(t, c) {
			return
		}
		writeRaw(t, c, frame(t, proto.HelloAck{MaxFrameLen: 1024, Features: proto.FeatureListen, SessionID: proto.SessionID{1}}))
		req, ok := readRequest(t, c)
		if !ok {
			return
		}
		if req.Command != proto.CommandListen {
			t.Errorf("REQUEST %v, want LISTEN", req.Command)
			return
		}
		script(c, req)
	})
}

func listenReply(id, listener uint64) proto.ExtReply {
	return proto.ExtReply{ID: id, Command: proto.CommandListen, ListenerID: listener,
		Addr: proto.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 8080}}
}

func acceptOffer(listener uint64, tok byte) proto.AcceptOffer {
	return proto.AcceptOffer{ListenerID: listener, Token: proto.Token{tok, 0xaa}, ExpiresMillis: 10000,
		Caller: proto.Addr{IP: netip.MustParseAddr("198.51.100.9"), Port: 50123}}
}

// expectReject reads frames until a REJECT_OFFER and checks its token.
func expectReject(t testing.TB, c net.Conn, tok byte) bool {
	t.Helper()
	for {
		f, err := proto.ReadFrame(c, nil)
		if err != nil {
			t.Errorf("fake gateway: want REJECT_OFFER, got %v", err)
			return false
		}
		switch f.Type {
		case proto.FrameRejectOffer:
			r, err := proto.ParseRejectOffer(f.Value)
			if err != nil || r.Token != (proto.Token{tok, 0xaa}) {
				t.Errorf("REJECT_OFFER for the wrong token (%v)", err)
			}
			return true
		case proto.FrameClose:
			cl, _ := proto.ParseClose(f.Value)
			t.Errorf("client sent CLOSE %v, want REJECT_OFFER", cl.Reason)
			return false
		}
	}
}

// TestHostileListen checks the session's handling of bad offers and
// LISTEN replies.
func TestHostileListen(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	for _, tc := range []struct {
		name   string
		script func(t *testing.T, c net.Conn, req proto.ExtRequest)
		listen bool // Listen succeeds
	}{
		{
			name: "offer_unknown_listener",
			script: func(t *testing.T, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, frame(t, listenReply(req.ID, 5)))
				writeRaw(t, c, frame(t, acceptOffer(6, 1)))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			listen: true,
		},
		{
			name: "offer_without_listener",
			script: func(t *testing.T, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, frame(t, acceptOffer(5, 1)))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
		},
		{
			name: "offer_caller_is_a_name",
			script: func(t *testing.T, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, frame(t, listenReply(req.ID, 5)))
				o := acceptOffer(5, 1)
				o.Caller = proto.Addr{FQDN: "caller.test", Port: 1}
				writeRaw(t, c, frame(t, o))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			listen: true,
		},
		{
			name: "offer_truncated",
			script: func(t *testing.T, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, frame(t, listenReply(req.ID, 5)))
				writeRaw(t, c, rawFrame(t, proto.FrameAcceptOffer, []byte{5, 1, 2, 3}))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			listen: true,
		},
		{
			name: "listen_bound_to_a_name",
			script: func(t *testing.T, c net.Conn, req proto.ExtRequest) {
				r := listenReply(req.ID, 5)
				r.Addr = proto.Addr{FQDN: "gw.test", Port: 80}
				writeRaw(t, c, frame(t, r))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
		},
		{
			name: "take_frame_to_client",
			script: func(t *testing.T, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, frame(t, listenReply(req.ID, 5)))
				writeRaw(t, c, frame(t, proto.RejectOffer{}))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			listen: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := listenScript(t, func(c net.Conn, req proto.ExtRequest) { tc.script(t, c, req) })
			d := &client.Dialer{ProxyAddress: gw}
			s, err := d.OpenSession(testCtx(t))
			if err != nil {
				t.Fatalf("open session: %v", err)
			}
			defer s.Close()
			l, err := s.Listen(testCtx(t), "tcp", ":0", client.ListenConfig{})
			if tc.listen != (err == nil) {
				t.Fatalf("listen: %v", err)
			}
			if err == nil {
				defer l.Close()
				_, err = l.AcceptContext(testCtx(t))
			}
			if !isMalformed(err) {
				t.Errorf("got %v, want a malformed-frame error", err)
			}
			<-s.Done()
		})
	}

	t.Run("duplicate_listener_id", func(t *testing.T) {
		gw := listenScript(t, func(c net.Conn, req proto.ExtRequest) {
			writeRaw(t, c, frame(t, listenReply(req.ID, 5)))
			req2, ok := readRequest(t, c)
			if !ok {
				return
			}
			writeRaw(t, c, frame(t, listenReply(req2.ID, 5)))
			expectClose(t, c, proto.ReplyMalformedRequest)
		})
		s, err := (&client.Dialer{ProxyAddress: gw}).OpenSession(testCtx(t))
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		defer s.Close()
		l, err := s.Listen(testCtx(t), "tcp", ":0", client.ListenConfig{})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		if _, err := s.Listen(testCtx(t), "tcp", ":0", client.ListenConfig{}); !isMalformed(err) {
			t.Errorf("second listen with the same Listener ID: %v", err)
		}
		if _, err := l.Accept(); !isMalformed(err) {
			t.Errorf("Accept after the session failed: %v", err)
		}
	})

	t.Run("offer_right_after_reply", func(t *testing.T) {
		// The offer arrives in the same segment as the REPLY: the
		// listener must already be registered.
		gw := listenScript(t, func(c net.Conn, req proto.ExtRequest) {
			b := frame(t, listenReply(req.ID, 5))
			b = append(b, frame(t, acceptOffer(5, 3))...)
			writeRaw(t, c, b)
			if expectReject(t, c, 3) {
				expectClose(t, c, proto.ReplySucceeded)
			}
		})
		s, err := (&client.Dialer{ProxyAddress: gw}).OpenSession(testCtx(t))
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		defer s.Close()
		seen := make(chan client.Offer, 1)
		l, err := s.Listen(testCtx(t), "tcp", ":0", client.ListenConfig{Filter: func(o client.Offer) bool {
			seen <- o
			return false
		}})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		o := <-seen
		if o.Listener != 5 || o.Caller != netip.MustParseAddrPort("198.51.100.9:50123") {
			t.Errorf("offer %+v", o)
		}
		checkStats(t, l, client.ListenerStats{Offers: 1, Rejected: 1})
		if l.Addr().String() != "192.0.2.1:8080" || l.ID() != 5 || len(l.PublicAddrs()) != 0 || l.OfferTimeout() != 0 {
			t.Errorf("listener %v id %d public %v timeout %v", l.Addr(), l.ID(), l.PublicAddrs(), l.OfferTimeout())
		}
	})

	t.Run("abandoned_listen", func(t *testing.T) {
		// The LISTEN's context ends before the REPLY; the late REPLY
		// registers a closed listener whose offers are rejected, and the
		// session carries on.
		cancelled := make(chan struct{})
		rejected := make(chan struct{})
		gw := listenScript(t, func(c net.Conn, req proto.ExtRequest) {
			<-cancelled
			writeRaw(t, c, frame(t, listenReply(req.ID, 5)))
			writeRaw(t, c, frame(t, acceptOffer(5, 4)))
			for {
				f, err := proto.ReadFrame(c, nil)
				if err != nil {
					t.Errorf("fake gateway: %v", err)
					return
				}
				switch f.Type {
				case proto.FramePing:
					p, _ := proto.ParsePing(f.Value)
					writeRaw(t, c, frame(t, proto.Pong(p)))
				case proto.FrameRejectOffer:
					if r, _ := proto.ParseRejectOffer(f.Value); r.Token != (proto.Token{4, 0xaa}) {
						t.Error("REJECT_OFFER for the wrong token")
					}
					close(rejected)
				case proto.FrameClose:
					if cl, _ := proto.ParseClose(f.Value); cl.Reason != proto.ReplySucceeded {
						t.Errorf("client sent CLOSE %v", cl.Reason)
					}
					return
				default:
					t.Errorf("client sent %v", f.Type)
				}
			}
		})
		s, err := (&client.Dialer{ProxyAddress: gw}).OpenSession(testCtx(t))
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		defer cancel()
		if _, err := s.Listen(ctx, "tcp", ":0", client.ListenConfig{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("listen with a short deadline: %v", err)
		}
		close(cancelled)
		select {
		case <-rejected:
		case <-s.Done():
			t.Fatalf("session ended: %v", s.Err())
		}
		if _, err := s.Ping(testCtx(t)); err != nil {
			t.Errorf("ping after the abandoned LISTEN: %v", err)
		}
	})

	t.Run("take_hostile", func(t *testing.T) {
		// The TAKE connection gets a malformed REPLY: the take fails,
		// the client sends CLOSE 0xEB on that connection only.
		var n atomic.Int32
		closed := make(chan proto.ReplyCode, 1)
		gw := fakeGateway(t, func(c net.Conn) {
			if !toExt(t, c) {
				return
			}
			writeRaw(t, c, frame(t, proto.HelloAck{MaxFrameLen: 1024, Features: proto.FeatureListen, SessionID: proto.SessionID{1}}))
			req, ok := readRequest(t, c)
			if !ok {
				return
			}
			if n.Add(1) == 1 {
				writeRaw(t, c, frame(t, listenReply(req.ID, 5)))
				writeRaw(t, c, frame(t, acceptOffer(5, 9)))
				expectClose(t, c, proto.ReplySucceeded)
				return
			}
			if req.Command != proto.CommandTake || req.Token != (proto.Token{9, 0xaa}) {
				t.Errorf("TAKE %v with the wrong token", req.Command)
			}
			writeRaw(t, c, frame(t, resolveReply(1, ip4))) // not a TAKE REPLY: bytes after the address
			f, err := proto.ReadFrame(c, nil)
			if err == nil && f.Type == proto.FrameClose {
				cl, _ := proto.ParseClose(f.Value)
				closed <- cl.Reason
			}
		})
		l, err := (&client.Dialer{ProxyAddress: gw}).Listen(testCtx(t), "tcp", ":0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		checkStats(t, l, client.ListenerStats{Offers: 1, Failed: 1})
		if !isMalformed(l.LastTakeError()) {
			t.Errorf("LastTakeError() = %v", l.LastTakeError())
		}
		select {
		case r := <-closed:
			if r != proto.ReplyMalformedRequest {
				t.Errorf("CLOSE %v on the TAKE connection", r)
			}
		case <-time.After(testWait):
			t.Error("no CLOSE on the TAKE connection")
		}
	})
}
