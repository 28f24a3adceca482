package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
)

// Extension tests against our gateway. They skip (requireExtensions)
// while the gateway does not select method 0xC6.

var (
	ip4 = netip.MustParseAddr("127.0.0.1")
	ip6 = netip.MustParseAddr("::1")
)

func extNames() map[string][]netip.Addr {
	return map[string][]netip.Addr{
		"echo.test": {ip4},
		"dual.test": {ip6, ip4},
	}
}

func TestExtConnect(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	_, gw := newGateway(t, gatewayOpts{names: extNames()})
	requireExtensions(t, gw)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	port := strconv.Itoa(int(echoAP.Port()))

	for _, tc := range []struct {
		name    string
		mode    client.ExtMode
		network string
		target  string
	}{
		{"ip_require", client.ExtRequire, "tcp", echo},
		{"ip_auto", client.ExtAuto, "tcp", echo},
		{"name", client.ExtAuto, "tcp", "echo.test:" + port},
		{"dual_name", client.ExtAuto, "tcp", "dual.test:" + port},
		{"tcp4_implies_family", client.ExtAuto, "tcp4", "dual.test:" + port},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &client.Dialer{ProxyAddress: gw, Extensions: tc.mode}
			c, err := d.DialContext(testCtx(t), tc.network, tc.target)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			cc := c.(*client.Conn)
			if !cc.Extended() {
				t.Error("Extended() = false against an extension gateway")
			}
			if ap, ok := cc.Connected(); !ok || ap != echoAP {
				t.Errorf("Connected() = %v, %v; want %v", ap, ok, echoAP)
			}
			checkEcho(t, c, echoBytes)
		})
	}

	t.Run("family", func(t *testing.T) {
		d := &client.Dialer{ProxyAddress: gw, Family: proto.FamilyIPv4Only}
		c, err := d.DialContext(testCtx(t), "tcp", "dual.test:"+port)
		if err != nil {
			t.Fatalf("dial with FAMILY ipv4-only: %v", err)
		}
		c.Close()
		if ap, _ := c.(*client.Conn).Connected(); ap.Addr() != ip4 {
			t.Errorf("FAMILY ipv4-only: connected to %v", ap)
		}
		// Nothing listens on [::1]:port: FAMILY ipv6-only must keep
		// the gateway from falling back to IPv4.
		d.Family = proto.FamilyIPv6Only
		c, err = d.DialContext(testCtx(t), "tcp", "dual.test:"+port)
		if err == nil {
			ap, _ := c.(*client.Conn).Connected()
			c.Close()
			t.Fatalf("FAMILY ipv6-only connected to %v", ap)
		}
		asReply(t, err)
	})

	t.Run("refusals", func(t *testing.T) {
		d := &client.Dialer{ProxyAddress: gw, Extensions: client.ExtRequire}
		for _, tc := range []struct {
			target string
			want   proto.ReplyCode
		}{
			{closedPort(t), proto.ReplyConnectionRefused},
			{"nx.test:80", proto.ReplyNameNotFound},
			{"servfail.test:80", proto.ReplyNameServerFailure},
		} {
			_, err := d.DialContext(testCtx(t), "tcp", tc.target)
			if re := asReply(t, err); re.Code != tc.want || re.Target != tc.target {
				t.Errorf("CONNECT %s: %v; want code %v", tc.target, err, tc.want)
			}
		}
	})
}

func TestExtAuth(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	_, gw := newGateway(t, gatewayOpts{users: map[string]string{"alice": "wonderland"}})
	requireExtensions(t, gw)
	echo := socks6test.EchoServer(t)

	d := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "wonderland", Extensions: client.ExtRequire}
	c, err := d.DialContext(testCtx(t), "tcp", echo)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	checkEcho(t, c, 4096)
	c.Close()

	d.Password = "looking-glass"
	_, err = d.DialContext(testCtx(t), "tcp", echo)
	var he *client.HelloError
	if !errors.As(err, &he) || he.Status != proto.HelloAuthFailed || !errors.Is(err, client.ErrAuth) {
		t.Fatalf("wrong password: %v; want a HelloError with status auth failed", err)
	}
}

func TestExtRefusedByGuard(t *testing.T) {
	_, gw := newGateway(t, gatewayOpts{guard: true})
	requireExtensions(t, gw)
	d := &client.Dialer{ProxyAddress: gw}
	_, err := d.DialContext(testCtx(t), "tcp", socks6test.EchoServer(t))
	if re := asReply(t, err); re.Code != proto.ReplyNotAllowed {
		t.Fatalf("loopback behind the guard: %v, want not allowed", err)
	}
}

func TestExtResolve(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	_, gw := newGateway(t, gatewayOpts{names: extNames()})
	requireExtensions(t, gw)
	d := &client.Dialer{ProxyAddress: gw}
	s, err := d.OpenSession(testCtx(t))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	defer s.Close()
	if !s.Features().Has(proto.FeatureResolve) {
		t.Fatalf("features %v lack RESOLVE", s.Features())
	}
	if s.ID() == (proto.SessionID{}) {
		t.Error("zero session ID")
	}

	ans, err := s.Resolve(testCtx(t), "dual.test")
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if got := answerAddrs(ans); !slices.Contains(got, ip4) || !slices.Contains(got, ip6) || len(got) != 2 {
		t.Errorf("dual.test = %v, want ::1 and 127.0.0.1", got)
	}
	for _, a := range ans {
		if a.TTL == 0 || a.TTL > 101 {
			t.Errorf("answer %v: TTL %d, want the resolver's (100 or 101)", a.Addr, a.TTL)
		}
	}

	for _, tc := range []struct {
		host string
		want proto.ReplyCode
	}{
		{"nx.test", proto.ReplyNameNotFound},
		{"servfail.test", proto.ReplyNameServerFailure},
	} {
		_, err := s.Resolve(testCtx(t), tc.host)
		if re := asReply(t, err); re.Code != tc.want || re.Command != proto.CommandResolve {
			t.Errorf("resolve %s: %v, want %v", tc.host, err, tc.want)
		}
	}

	// Several requests outstanding at once on one session.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			host := "echo.test"
			if i%2 == 1 {
				host = "dual.test"
			}
			if _, err := s.Resolve(testCtx(t), host); err != nil {
				t.Errorf("concurrent resolve %s: %v", host, err)
			}
		})
	}
	wg.Wait()

	// Prefetches whose answers are dropped leave the session working.
	for _, host := range []string{"dual.test", "nx.test", "echo.test"} {
		if err := s.Prefetch(host); err != nil {
			t.Errorf("prefetch %s: %v", host, err)
		}
	}
	if ans, err := s.Resolve(testCtx(t), "dual.test"); err != nil || len(ans) != 2 {
		t.Errorf("resolve after prefetches = %v, %v", ans, err)
	}
	if _, err := s.Ping(testCtx(t)); err != nil {
		t.Errorf("ping after prefetches: %v", err)
	}

	d4 := &client.Dialer{ProxyAddress: gw, Family: proto.FamilyIPv4Only}
	ans, err = d4.Resolve(testCtx(t), "dual.test")
	if err != nil {
		t.Fatalf("resolve ipv4-only: %v", err)
	}
	if got := answerAddrs(ans); !slices.Equal(got, []netip.Addr{ip4}) {
		t.Errorf("dual.test ipv4-only = %v, want [127.0.0.1]", got)
	}
}

func answerAddrs(ans []proto.ResolveAnswer) []netip.Addr {
	var out []netip.Addr
	for _, a := range ans {
		out = append(out, a.Addr)
	}
	return out
}

func TestExtPing(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	_, gw := newGateway(t, gatewayOpts{})
	requireExtensions(t, gw)
	s, err := (&client.Dialer{ProxyAddress: gw}).OpenSession(testCtx(t))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	defer s.Close()
	for range 3 {
		if _, err := s.Ping(testCtx(t)); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
}

// TestExtGatewayEnds checks that a session notices the gateway going
// away (with CLOSE or without) and fails what is outstanding.
func TestExtGatewayEnds(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	srv, gw := newGateway(t, gatewayOpts{names: extNames()})
	requireExtensions(t, gw)
	s, err := (&client.Dialer{ProxyAddress: gw}).OpenSession(testCtx(t))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	defer s.Close()
	srv.Close()
	select {
	case <-s.Done():
	case <-time.After(testWait):
		t.Fatal("session did not end when the gateway closed")
	}
	if s.Err() == nil {
		t.Error("Err() = nil after the gateway closed")
	}
	if _, err := s.Resolve(testCtx(t), "echo.test"); err == nil {
		t.Error("resolve on an ended session succeeded")
	}
}

// The same procedures against a fake gateway that speaks the extensions
// correctly, so that the framed paths are tested whatever the state of
// our gateway.

func TestFakeExtConnect(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	gw := fakeGateway(t, func(c net.Conn) {
		h, ok := fakeHello(t, c, proto.HelloAck{MaxFrameLen: 1024})
		if !ok {
			return
		}
		if h.Auth != proto.MethodUserPass || h.Username != "alice" || h.Password != "wonderland" {
			t.Errorf("HELLO %v, want alice's credentials", h)
		}
		req, ok := readRequest(t, c)
		if !ok {
			return
		}
		if req.ID != 1 || req.Command != proto.CommandConnect || req.Addr != (proto.Addr{FQDN: "echo.test", Port: echoAP.Port()}) {
			t.Errorf("REQUEST %+v, want ID 1 CONNECT echo.test:%d", req, echoAP.Port())
		}
		if f, ok := req.Options.Family(); !ok || f != proto.FamilyPreferIPv4 {
			t.Errorf("FAMILY %v, %v; want prefer-ipv4", f, ok)
		}
		target, err := net.Dial("tcp", echo)
		if err != nil {
			t.Errorf("dial echo: %v", err)
			return
		}
		defer target.Close()
		conn, _ := proto.ConnectedOption(proto.AddrFromAddrPort(echoAP))
		// Frames the client must skip or ignore before the REPLY; the
		// PING must not be answered (CONNECT was its last frame).
		writeRaw(t, c, rawFrame(t, 0x21, []byte("grease")))
		writeRaw(t, c, frame(t, proto.Routes{Generation: 1, DefaultRoute: true}))
		writeRaw(t, c, frame(t, proto.Ping{Opaque: [8]byte{1, 2, 3}}))
		writeRaw(t, c, frame(t, proto.ExtReply{
			ID: 1, Addr: proto.AddrFromAddrPort(netip.MustParseAddrPort(target.LocalAddr().String())),
			Command: proto.CommandConnect, Options: proto.Options{conn},
		}))
		relay(c, target)
	})
	d := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "wonderland", Family: proto.FamilyPreferIPv4}
	c, err := d.DialContext(testCtx(t), "tcp", net.JoinHostPort("echo.test.", strconv.Itoa(int(echoAP.Port()))))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	cc := c.(*client.Conn)
	if !cc.Extended() {
		t.Error("Extended() = false")
	}
	if ap, ok := cc.Connected(); !ok || ap != echoAP {
		t.Errorf("Connected() = %v, %v; want %v", ap, ok, echoAP)
	}
	if cc.BoundAddr().Port == 0 {
		t.Errorf("BoundAddr() = %v", cc.BoundAddr())
	}
	checkEcho(t, c, echoBytes)
}

// relay copies both ways between the fake gateway's client side and the
// target, half-closing as each direction ends.
func relay(c, target net.Conn) {
	c.SetDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		io.Copy(target, c)
		target.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, target)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

func TestFakeExtConnectRefused(t *testing.T) {
	gw := fakeGateway(t, func(c net.Conn) {
		if _, ok := fakeHello(t, c, proto.HelloAck{}); !ok {
			return
		}
		if _, ok := readRequest(t, c); !ok {
			return
		}
		writeRaw(t, c, frame(t, proto.ExtReply{ID: 1, Code: proto.ReplyNameNotFound, Command: proto.CommandConnect,
			Options: proto.Options{proto.DiagnosticOption("no such name")}}))
	})
	d := &client.Dialer{ProxyAddress: gw}
	_, err := d.DialContext(testCtx(t), "tcp", "example.test:80")
	re := asReply(t, err)
	if re.Code != proto.ReplyNameNotFound || re.Diagnostic != "no such name" {
		t.Fatalf("got %+v", re)
	}
	const want = `socks: CONNECT example.test:80: name not found (0xe6): "no such name"`
	if re.Error() != want {
		t.Errorf("Error() = %q, want %q", re.Error(), want)
	}
}

// sessionGateway runs a fake gateway whose sessions offer RESOLVE and
// then run script.
func sessionGateway(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	lim, _ := proto.LimitsOption(proto.Limits{MaxListeners: 4, MaxPendingOffers: 8, MaxUDPAssocs: 2})
	return fakeGateway(t, func(c net.Conn) {
		ack := proto.HelloAck{Features: proto.FeatureResolve | 1<<40, MaxFrameLen: 2048, Options: proto.Options{lim}}
		if _, ok := fakeHello(t, c, ack); ok {
			script(c)
		}
	})
}

func openSession(t *testing.T, gw string, family proto.Family) *client.Session {
	t.Helper()
	d := &client.Dialer{ProxyAddress: gw, Family: family}
	s, err := d.OpenSession(testCtx(t))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func resolveReply(id uint64, ips ...netip.Addr) proto.ExtReply {
	r := proto.ExtReply{ID: id, Command: proto.CommandResolve, Answers: []proto.ResolveAnswer{}}
	for i, ip := range ips {
		r.Answers = append(r.Answers, proto.ResolveAnswer{TTL: uint32(60 + i), Addr: ip})
	}
	return r
}

func TestFakeSession(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	pong := make(chan bool, 1)
	gw := sessionGateway(t, func(c net.Conn) {
		// The session answers a PING with the same data.
		ping := proto.Ping{Opaque: [8]byte{9, 8, 7, 6, 5, 4, 3, 2}}
		writeRaw(t, c, frame(t, ping))
		f, err := proto.ReadFrame(c, nil)
		p, perr := proto.ParsePong(f.Value)
		pong <- err == nil && perr == nil && f.Type == proto.FramePong && p.Opaque == ping.Opaque

		// Two RESOLVEs outstanding, answered in reverse order, with a
		// GREASE frame and a PING from the client in between.
		a, ok1 := readRequest(t, c)
		b, ok2 := readRequest(t, c)
		if !ok1 || !ok2 {
			return
		}
		for _, r := range []proto.ExtRequest{a, b} {
			if r.Command != proto.CommandResolve || r.Addr.Port != 0 || r.Addr.FQDN == "" {
				t.Errorf("REQUEST %+v, want RESOLVE of a name with port 0", r)
			}
			if f, ok := r.Options.Family(); !ok || f != proto.FamilyIPv6Only {
				t.Errorf("RESOLVE FAMILY = %v, %v; want ipv6-only", f, ok)
			}
		}
		if a.ID == b.ID {
			t.Errorf("two outstanding requests share ID %d", a.ID)
		}
		writeRaw(t, c, rawFrame(t, 0x40, nil))
		ans := map[string]netip.Addr{"a.test": ip4, "b.test": ip6}
		writeRaw(t, c, frame(t, resolveReply(b.ID, ans[b.Addr.FQDN])))
		writeRaw(t, c, frame(t, resolveReply(a.ID, ans[a.Addr.FQDN])))

		// A PING from the client.
		f, err = proto.ReadFrame(c, nil)
		if err != nil || f.Type != proto.FramePing {
			t.Errorf("want PING, got %v, %v", f.Type, err)
			return
		}
		writeRaw(t, c, rawFrame(t, proto.FramePong, f.Value))
		expectClose(t, c, proto.ReplySucceeded)
	})
	s := openSession(t, gw, proto.FamilyIPv6Only)
	if !s.Features().Has(proto.FeatureResolve) {
		t.Errorf("Features() = %v", s.Features())
	}
	if l, ok := s.Limits(); !ok || l.MaxListeners != 4 || l.MaxUDPAssocs != 2 {
		t.Errorf("Limits() = %+v, %v", l, ok)
	}
	if s.ID() == (proto.SessionID{}) {
		t.Error("ID() is zero")
	}
	if s.MaxFrameLen() != 2048 {
		t.Errorf("MaxFrameLen() = %d", s.MaxFrameLen())
	}
	if ok := <-pong; !ok {
		t.Fatal("the session did not answer PING with a matching PONG")
	}
	var wg sync.WaitGroup
	for host, want := range map[string]netip.Addr{"a.test": ip4, "b.test": ip6} {
		wg.Go(func() {
			ans, err := s.Resolve(testCtx(t), host)
			if err != nil || len(ans) != 1 || ans[0].Addr != want || ans[0].TTL != 60 {
				t.Errorf("resolve %s = %v, %v; want %v", host, ans, err, want)
			}
		})
	}
	wg.Wait()
	if _, err := s.Ping(testCtx(t)); err != nil {
		t.Errorf("ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := s.Resolve(testCtx(t), "a.test"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("resolve after Close: %v, want net.ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestFakeSessionAbandoned(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	gw := sessionGateway(t, func(c net.Conn) {
		first, ok := readRequest(t, c)
		if !ok {
			return
		}
		second, ok := readRequest(t, c)
		if !ok {
			return
		}
		// The late answer to the abandoned request is dropped, not
		// malformed; the session carries on.
		writeRaw(t, c, frame(t, resolveReply(first.ID, ip4)))
		writeRaw(t, c, frame(t, resolveReply(second.ID)))
		expectClose(t, c, proto.ReplySucceeded)
	})
	s := openSession(t, gw, 0)
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Resolve(ctx, "slow.test"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("resolve with a short deadline: %v", err)
	}
	ans, err := s.Resolve(testCtx(t), "empty.test")
	if err != nil || ans == nil || len(ans) != 0 {
		t.Fatalf("resolve after an abandoned request = %v, %v; want an empty answer", ans, err)
	}
	if s.Err() != nil {
		t.Fatalf("session ended: %v", s.Err())
	}
}

func TestFakeSessionGatewayClose(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	gw := sessionGateway(t, func(c net.Conn) {
		if _, ok := readRequest(t, c); !ok {
			return
		}
		writeRaw(t, c, frame(t, proto.Close{Reason: proto.ReplyQuotaExceeded, Options: proto.Options{proto.DiagnosticOption("too many")}}))
		// The client must not send anything after a CLOSE.
		c.SetReadDeadline(time.Now().Add(testWait))
		if b, _ := io.ReadAll(c); len(b) > 0 {
			t.Errorf("client sent %x after the gateway's CLOSE", b)
		}
	})
	s := openSession(t, gw, 0)
	_, err := s.Resolve(testCtx(t), "a.test")
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Reason != proto.ReplyQuotaExceeded || ce.Diagnostic != "too many" {
		t.Fatalf("resolve: %v, want the gateway's CLOSE", err)
	}
	<-s.Done()
	if !errors.As(s.Err(), &ce) {
		t.Errorf("Err() = %v, want a *CloseError", s.Err())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after the gateway's CLOSE: %v", err)
	}
}

func TestFakeSessionClosePending(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	got := make(chan struct{})
	gw := sessionGateway(t, func(c net.Conn) {
		if _, ok := readRequest(t, c); !ok {
			return
		}
		close(got)
		expectClose(t, c, proto.ReplySucceeded)
	})
	s := openSession(t, gw, 0)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Resolve(testCtx(t), "a.test")
		errc <- err
	}()
	<-got
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("pending resolve after Close: %v, want net.ErrClosed", err)
	}
}

func TestFakeSessionNoResolve(t *testing.T) {
	gw := fakeGateway(t, func(c net.Conn) {
		if _, ok := fakeHello(t, c, proto.HelloAck{}); ok {
			// Nothing but the client's CLOSE may arrive.
			expectClose(t, c, proto.ReplySucceeded)
		}
	})
	d := &client.Dialer{ProxyAddress: gw}
	s, err := d.OpenSession(testCtx(t))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	defer s.Close()
	if _, err := s.Resolve(testCtx(t), "a.test"); !errors.Is(err, client.ErrNoExtensions) {
		t.Errorf("resolve without the RESOLVE bit: %v, want ErrNoExtensions", err)
	}
	ans, err := s.Resolve(testCtx(t), "2001:db8::1")
	if err != nil || len(ans) != 1 || ans[0].Addr != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("resolve of a literal = %v, %v", ans, err)
	}
	if err := s.Prefetch("a.test"); !errors.Is(err, client.ErrNoExtensions) {
		t.Errorf("prefetch without the RESOLVE bit: %v, want ErrNoExtensions", err)
	}
	if err := s.Prefetch("192.0.2.1"); err != nil {
		t.Errorf("prefetch of a literal: %v, want nil (nothing to send)", err)
	}
}

// TestFakeSessionPrefetch: Prefetch writes a RESOLVE and returns without
// its answer; the answer, when it comes, is dropped without disturbing
// the session; at most MaxPrefetches are unanswered at once.
func TestFakeSessionPrefetch(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	gw := sessionGateway(t, func(c net.Conn) {
		var reqs []proto.ExtRequest
		for range client.MaxPrefetches {
			r, ok := readRequest(t, c)
			if !ok {
				return
			}
			if r.Command != proto.CommandResolve || r.Addr.FQDN == "" {
				t.Errorf("REQUEST %+v, want RESOLVE of a name", r)
			}
			reqs = append(reqs, r)
		}
		// The client's PING comes next: the refused prefetch sent
		// nothing. Answer one prefetch, then the PING.
		f, err := proto.ReadFrame(c, nil)
		if err != nil || f.Type != proto.FramePing {
			t.Errorf("want PING after %d RESOLVEs, got %v, %v", client.MaxPrefetches, f.Type, err)
			return
		}
		writeRaw(t, c, frame(t, resolveReply(reqs[0].ID, ip4)))
		writeRaw(t, c, rawFrame(t, proto.FramePong, f.Value))
		// One more prefetch fits now, and a RESOLVE waited for is
		// answered as usual, with the others still unanswered.
		r, ok := readRequest(t, c)
		if !ok || r.Addr.FQDN != "again.test" {
			t.Errorf("REQUEST %+v, want RESOLVE again.test", r)
			return
		}
		w, ok := readRequest(t, c)
		if !ok {
			return
		}
		writeRaw(t, c, frame(t, resolveReply(w.ID, ip6)))
		expectClose(t, c, proto.ReplySucceeded)
	})
	s := openSession(t, gw, 0)
	for i := range client.MaxPrefetches {
		if err := s.Prefetch(fmt.Sprintf("p%d.test", i)); err != nil {
			t.Fatalf("prefetch %d: %v", i, err)
		}
	}
	if err := s.Prefetch("over.test"); !errors.Is(err, client.ErrPrefetchBusy) {
		t.Errorf("prefetch beyond MaxPrefetches: %v, want ErrPrefetchBusy", err)
	}
	// The PONG follows the answer to the first prefetch, which the
	// reader has therefore handled when Ping returns.
	if _, err := s.Ping(testCtx(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := s.Prefetch("again.test"); err != nil {
		t.Errorf("prefetch after one was answered: %v", err)
	}
	ans, err := s.Resolve(testCtx(t), "w.test")
	if err != nil || len(ans) != 1 || ans[0].Addr != ip6 {
		t.Errorf("resolve with prefetches outstanding = %v, %v; want %v", ans, err, ip6)
	}
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := s.Prefetch("late.test"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("prefetch after Close: %v, want net.ErrClosed", err)
	}
}

// A call whose deadline has passed sends nothing and fails alone: the
// session, and the calls after it, go on. (Its write used to fail on the
// past deadline and end the session for every caller.)
func TestFakeSessionPastDeadline(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	gw := sessionGateway(t, func(c net.Conn) {
		req, ok := readRequest(t, c)
		if !ok {
			return
		}
		if req.Addr.FQDN != "after.test" {
			t.Errorf("first request for %q, want after.test (nothing sent for the late call)", req.Addr.FQDN)
		}
		writeRaw(t, c, frame(t, resolveReply(req.ID, ip4)))
		expectClose(t, c, proto.ReplySucceeded)
	})
	s := openSession(t, gw, 0)
	late, cancel := context.WithDeadline(testCtx(t), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := s.Resolve(late, "late.test"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("resolve with a past deadline: %v, want context.DeadlineExceeded", err)
	}
	if _, err := s.Ping(late); err == nil {
		t.Fatal("ping with a past deadline succeeded")
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the session ended: %v", err)
	}
	ans, err := s.Resolve(testCtx(t), "after.test")
	if err != nil || len(ans) != 1 {
		t.Fatalf("resolve after the late calls = %v, %v", ans, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// Close does not wait behind a write stuck on a gateway that stopped
// reading, even with no write timeout (Timeout < 0).
func TestFakeSessionCloseWithStuckWrite(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	release := make(chan struct{})
	gw := sessionGateway(t, func(c net.Conn) {
		c.(*net.TCPConn).SetReadBuffer(4096)
		<-release // never reads: the client's send buffer fills
	})
	defer close(release)
	d := &client.Dialer{ProxyAddress: gw, Timeout: -1,
		ProxyDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				c.(*net.TCPConn).SetWriteBuffer(4096)
			}
			return c, err
		}}
	s, err := d.OpenSession(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	// Requests from many callers, each waiting for its answer, until the
	// buffers are full and one is stuck in its write.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	long := strings.Repeat("a", 200) + ".test"
	for range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Resolve(ctx, long)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked behind a stuck write")
	}
	cancel()
	wg.Wait()
}

// Dialer.Resolve is bounded by Dialer.Timeout when ctx has no deadline,
// request included, as CONNECT is.
func TestFakeDialerResolveTimeout(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	gw := sessionGateway(t, func(c net.Conn) {
		readRequest(t, c)      // and never answer
		io.Copy(io.Discard, c) // until the client gives up
	})
	d := &client.Dialer{ProxyAddress: gw, Timeout: 200 * time.Millisecond}
	start := time.Now()
	if _, err := d.Resolve(context.Background(), "silent.test"); err == nil {
		t.Fatal("resolve against a silent gateway succeeded")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("resolve took %v with Timeout 200ms", el)
	}
}
