package server_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// chainHop is one gateway of a test chain: its server, address and audit.
type chainHop struct {
	s     *server.Server
	addr  string
	audit *e2eAudit
}

// chainGateway starts a gateway whose users are user/pass (none if
// empty), that knows the names in names (nothing else resolves), and
// forwards to ups.
func chainGateway(t *testing.T, user, pass string, names map[string][]netip.Addr, ups ...server.Upstream) *chainHop {
	t.Helper()
	h := &chainHop{audit: e2eNewAudit()}
	h.s = &server.Server{HandshakeTimeout: e2eWait, Logger: h.audit.logger(), Resolver: e2eStubResolver(names),
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}, Upstreams: ups}}
	if user != "" {
		h.s.Settings.Auth = e2eUsers(t, user, pass)
	}
	h.addr = startGateway(t, h.s)
	return h
}

// users returns the users of the session records so far.
func (h *chainHop) users(t *testing.T) []string {
	var out []string
	for _, r := range h.audit.sessions(t) {
		out = append(out, r.User)
	}
	return out
}

// extConnect sends an extension CONNECT with opts as alice and returns
// the connection and the REPLY.
func extConnect(t *testing.T, gw string, target proto.Addr, opts ...proto.Option) (net.Conn, proto.ExtReply) {
	t.Helper()
	c, ack := extHello(t, gw, "alice", "wonderland")
	if ack.Status != proto.HelloOK {
		t.Fatalf("HELLO_ACK %v", ack.Status)
	}
	extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandConnect, Addr: target, Options: opts})
	return c, extReply(t, c, proto.CommandConnect)
}

// TestChain runs requests through a chain of three gateways, A → B → C,
// each forwarding everything to the next with credentials of its own;
// only C reaches the destination, and only C knows its name.
func TestChain(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	names := map[string][]netip.Addr{"echo.test": {echoAP.Addr()}}
	c := chainGateway(t, "b-to-c", "pc", names)
	b := chainGateway(t, "a-to-b", "pb", nil, server.Upstream{Name: "C",
		Dialer: &client.Dialer{ProxyAddress: c.addr, Username: "b-to-c", Password: "pc"}, Default: true})
	a := chainGateway(t, "alice", "wonderland", nil, server.Upstream{Name: "B",
		Dialer: &client.Dialer{ProxyAddress: b.addr, Username: "a-to-b", Password: "pb"}, Default: true})
	named := proto.Addr{FQDN: "echo.test", Port: echoAP.Port()}

	t.Run("features", func(t *testing.T) {
		_, ack := extHello(t, a.addr, "alice", "wonderland")
		if !ack.Features.Has(proto.FeatureChain) {
			t.Errorf("features %v lack CHAIN", ack.Features)
		}
	})
	t.Run("plain_by_name", func(t *testing.T) {
		// Neither A nor B can resolve echo.test: the name goes up as it is.
		conn := e2eConnect(t, a.addr, "alice", "wonderland", named.FQDN+":"+strings.Split(echo, ":")[1])
		e2eEcho(t, conn, strings.Repeat("through three gateways ", 1000))
		conn.Close()
		// Each gateway saw its own client's credentials, never alice's
		// past A.
		e2eSessionsDrop(t, a.s, 0)
		e2eSessionsDrop(t, c.s, 0)
		socks6test.WaitFor(e2eWait, func() bool { return len(c.users(t)) == 1 && len(b.users(t)) == 1 })
		if got := c.users(t); len(got) != 1 || got[0] != "b-to-c" {
			t.Errorf("C's sessions were by %v, want [b-to-c]", got)
		}
		if got := b.users(t); len(got) != 1 || got[0] != "a-to-b" {
			t.Errorf("B's sessions were by %v, want [a-to-b]", got)
		}
		// The counters are released before the record is written.
		socks6test.WaitFor(e2eWait, func() bool { return len(a.audit.sessions(t)) == 1 })
		recs := a.audit.sessions(t)
		if len(recs) != 1 || recs[0].User != "alice" || !strings.Contains(a.audit.text(), `"upstream":"B"`) {
			t.Errorf("A's records %+v, want alice's with upstream B", recs)
		}
	})
	t.Run("connected_relayed", func(t *testing.T) {
		conn, rep := extConnect(t, a.addr, named)
		defer conn.Close()
		if rep.Code != proto.ReplySucceeded {
			t.Fatalf("CONNECT: %v", rep.Code)
		}
		if got, ok := rep.Options.Connected(); !ok || got.String() != echo {
			t.Errorf("CONNECTED %v %v, want %s (from C)", got, ok, echo)
		}
		e2eEcho(t, conn, "ext")
	})
	t.Run("reply_codes", func(t *testing.T) {
		// C's answers reach alice: a closed port, and an unknown name.
		if code := e2eReplyCode(t, a.addr, "alice", "wonderland", e2eClosedPort(t)); code != proto.ReplyConnectionRefused {
			t.Errorf("closed port: %v, want connection refused", code)
		}
		_, rep := extConnect(t, a.addr, proto.Addr{FQDN: "nx.test", Port: 80})
		if rep.Code != proto.ReplyNameNotFound {
			t.Errorf("unknown name: %v, want name not found", rep.Code)
		}
	})
	t.Run("hop_limit", func(t *testing.T) {
		for _, tc := range []struct {
			hops uint8
			want proto.ReplyCode
		}{
			{0, proto.ReplyHopLimitExceeded}, // refused whatever A would do
			{1, proto.ReplyHopLimitExceeded}, // A may not forward it
			{2, proto.ReplyHopLimitExceeded}, // B gets 1 and may not forward it
			{3, proto.ReplySucceeded},        // C gets 1 and serves it itself
		} {
			conn, rep := extConnect(t, a.addr, named, proto.HopLimitOption(tc.hops))
			conn.Close()
			if rep.Code != tc.want {
				t.Errorf("HOP_LIMIT %d: %v, want %v", tc.hops, rep.Code, tc.want)
			}
		}
		// RESOLVE too.
		ctl, _ := extHello(t, a.addr, "alice", "wonderland")
		extSend(t, ctl, proto.ExtRequest{ID: 5, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: "echo.test"}, Options: proto.Options{proto.HopLimitOption(0)}})
		if r := extReply(t, ctl, proto.CommandResolve); r.Code != proto.ReplyHopLimitExceeded {
			t.Errorf("RESOLVE with HOP_LIMIT 0: %v", r.Code)
		}
	})
	t.Run("resolve", func(t *testing.T) {
		d := &client.Dialer{ProxyAddress: a.addr, Username: "alice", Password: "wonderland"}
		ans, err := d.Resolve(t.Context(), "echo.test")
		if err != nil || len(ans) != 1 || ans[0].Addr != echoAP.Addr() {
			t.Errorf("RESOLVE echo.test through the chain: %v %v", ans, err)
		}
	})
}

// TestChainLoop: two gateways that forward to each other stop the
// request at the hop limit instead of passing it round for ever.
func TestChainLoop(t *testing.T) {
	e2eCheckLeaks(t)
	// Y's address is needed for X's upstream before Y runs: a listener
	// reserved first.
	ln := socks6test.Listen(t)
	yAddr := ln.Addr().String()
	x := chainGateway(t, "", "", nil, server.Upstream{Dialer: &client.Dialer{ProxyAddress: yAddr}, Default: true})
	y := &server.Server{HandshakeTimeout: e2eWait, Logger: socks6test.Logger(t),
		Settings: server.Settings{Upstreams: []server.Upstream{{Dialer: &client.Dialer{ProxyAddress: x.addr}, Default: true}}}}
	go y.Serve(ln)
	t.Cleanup(func() { y.Close() })

	d := &client.Dialer{ProxyAddress: x.addr}
	_, err := d.DialContext(t.Context(), "tcp", "loop.test:80")
	var re *client.ReplyError
	if !errors.As(err, &re) || re.Code != proto.ReplyHopLimitExceeded {
		t.Fatalf("CONNECT round the loop: %v, want hop limit exceeded", err)
	}
	// A plain client learns of it as a general failure.
	if code := e2eReplyCode(t, x.addr, "", "", "192.0.2.7:80"); code != proto.ReplyGeneralFailure {
		t.Errorf("plain client: %v, want general failure", code)
	}
	e2eSessionsDrop(t, x.s, 0)
	e2eSessionsDrop(t, y, 0)
}

// TestChainRoutes: only the destinations an upstream serves go to it;
// the rest are served here, and the most specific match wins.
func TestChainRoutes(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	names := map[string][]netip.Addr{"svc.corp.test": {echoAP.Addr()}, "local.test": {echoAP.Addr()}}
	up := chainGateway(t, "", "", names)
	up2 := chainGateway(t, "", "", names)
	a := chainGateway(t, "alice", "wonderland", names,
		server.Upstream{Name: "corp", Dialer: &client.Dialer{ProxyAddress: up.addr}, Domains: []string{"corp.test"}, Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		server.Upstream{Name: "corp-host", Dialer: &client.Dialer{ProxyAddress: up2.addr}, Nets: []netip.Prefix{netip.PrefixFrom(echoAP.Addr(), 32)}})
	port := strings.Split(echo, ":")[1]
	for _, tc := range []struct {
		target string
		via    *chainHop // nil: served by A
	}{
		{"svc.corp.test:" + port, up},
		{"local.test:" + port, nil},
		{echo, up2}, // the /32 beats the /8
	} {
		n1, n2 := len(up.audit.sessions(t)), len(up2.audit.sessions(t))
		conn := e2eConnect(t, a.addr, "alice", "wonderland", tc.target)
		e2eEcho(t, conn, "x")
		conn.Close()
		e2eSessionsDrop(t, a.s, 0)
		e2eSessionsDrop(t, up.s, 0)
		e2eSessionsDrop(t, up2.s, 0)
		d1, d2 := len(up.audit.sessions(t))-n1, len(up2.audit.sessions(t))-n2
		switch {
		case tc.via == up && (d1 != 1 || d2 != 0), tc.via == up2 && (d1 != 0 || d2 != 1), tc.via == nil && (d1 != 0 || d2 != 0):
			t.Errorf("%s: upstream sessions %d and %d", tc.target, d1, d2)
		}
	}
}

// TestChainPolicy: the forwarding gateway's rules still apply; a name
// it never resolves is judged by its domain rules, not its network
// rules.
func TestChainPolicy(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	up := chainGateway(t, "", "", map[string][]netip.Addr{"ok.test": {echoAP.Addr()}, "bad.test": {echoAP.Addr()}})
	a := chainGateway(t, "alice", "wonderland", nil, server.Upstream{Dialer: &client.Dialer{ProxyAddress: up.addr}, Default: true})
	a.s.Reload(server.Settings{Auth: a.s.Settings.Auth, Guard: server.Guard{AllowLoopback: true}, Upstreams: a.s.Settings.Upstreams,
		Policy: &server.Rules{Default: server.Allow, Rules: []server.Rule{
			// First, so that a walk that stops at network rules for a
			// name (Allow defers to AllowIP, which never comes for a
			// forwarded name) would miss the domain rule after it.
			{Action: server.Deny, Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
			{Action: server.Deny, Domains: []string{"bad.test"}},
		}}})
	port := strings.Split(echo, ":")[1]
	if code := e2eReplyCode(t, a.addr, "alice", "wonderland", "bad.test:"+port); code != proto.ReplyNotAllowed {
		t.Errorf("denied domain: %v, want not allowed", code)
	}
	if code := e2eReplyCode(t, a.addr, "alice", "wonderland", echo); code != proto.ReplyNotAllowed {
		t.Errorf("denied network, by address: %v, want not allowed", code)
	}
	conn := e2eConnect(t, a.addr, "alice", "wonderland", "ok.test:"+port)
	e2eEcho(t, conn, "allowed by name")
	conn.Close()
	e2eSessionsDrop(t, a.s, 0)
	e2eSessionsDrop(t, up.s, 0)
	if n := len(up.audit.sessions(t)); n != 1 {
		t.Errorf("upstream saw %d sessions, want 1", n)
	}
}

// TestChainIPLiteralName: an IP address sent as a name (ATYP 3
// "127.0.0.1") is judged and routed as the address it is: the guard and
// network rules refuse it, and an upstream's nets route it.
func TestChainIPLiteralName(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	up := chainGateway(t, "", "", nil)
	a := chainGateway(t, "alice", "wonderland", nil, server.Upstream{Dialer: &client.Dialer{ProxyAddress: up.addr}, Default: true})
	a.s.Reload(server.Settings{Auth: a.s.Settings.Auth, Upstreams: a.s.Settings.Upstreams}) // the default guard
	literal := proto.Addr{FQDN: echoAP.Addr().String(), Port: echoAP.Port()}
	for _, target := range []proto.Addr{proto.AddrFromAddrPort(echoAP), literal} {
		conn, rep := extConnect(t, a.addr, target)
		conn.Close()
		if rep.Code != proto.ReplyNotAllowed {
			t.Errorf("CONNECT %v through the guard: %v, want not allowed", target, rep.Code)
		}
	}
	// Routed by nets: a literal name for an address in an upstream's nets
	// goes to that upstream.
	b := chainGateway(t, "alice", "wonderland", nil, server.Upstream{Name: "lo", Dialer: &client.Dialer{ProxyAddress: up.addr},
		Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	conn, rep := extConnect(t, b.addr, literal)
	if rep.Code != proto.ReplySucceeded {
		t.Fatalf("CONNECT %v: %v", literal, rep.Code)
	}
	e2eEcho(t, conn, "routed by nets")
	conn.Close()
	e2eSessionsDrop(t, up.s, 0)
	if n := len(up.audit.sessions(t)); n != 1 {
		t.Errorf("the upstream served %d sessions, want 1", n)
	}
}

// TestChainToSelf: an upstream that is this gateway itself is refused
// when the connection arrives, whatever its address looks like, so that
// even a plain SOCKS5 hop, which cannot carry HOP_LIMIT, cannot loop.
func TestChainToSelf(t *testing.T) {
	e2eCheckLeaks(t)
	ln := socks6test.Listen(t)
	audit := e2eNewAudit()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	s := &server.Server{HandshakeTimeout: e2eWait, Logger: audit.logger(), Settings: server.Settings{
		Upstreams: []server.Upstream{{Dialer: &client.Dialer{ProxyAddress: "localhost:" + port, Extensions: client.ExtOff}, Default: true}}}}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	if code := e2eReplyCode(t, ln.Addr().String(), "", "", "192.0.2.7:80"); code != proto.ReplyGeneralFailure {
		t.Errorf("CONNECT through itself: %v, want general failure", code)
	}
	e2eSessionsDrop(t, s, 0)
	socks6test.WaitFor(e2eWait, func() bool { return len(audit.sessions(t)) >= 1 })
	if recs := audit.sessions(t); len(recs) != 1 || !strings.Contains(recs[0].Err, "itself") {
		t.Errorf("%d session records, the first %+v; want the client's alone, refused as a loop", len(recs), recs[:min(1, len(recs))])
	}
}

// sessionsOnly is a Policy without AllowUnresolved.
type sessionsOnly struct{ allowIP int }

func (p *sessionsOnly) Allow(context.Context, *server.Request) error { return nil }
func (p *sessionsOnly) AllowIP(context.Context, *server.Request, netip.Addr) error {
	p.allowIP++
	return server.ErrNotAllowed
}

// TestChainCustomPolicy: a Policy that defers names to AllowIP, which a
// forwarded name never reaches, refuses forwarded names rather than
// letting them through.
func TestChainCustomPolicy(t *testing.T) {
	e2eCheckLeaks(t)
	up := chainGateway(t, "", "", map[string][]netip.Addr{"x.test": {netip.MustParseAddr("127.0.0.1")}})
	a := chainGateway(t, "alice", "wonderland", nil, server.Upstream{Dialer: &client.Dialer{ProxyAddress: up.addr}, Default: true})
	a.s.Reload(server.Settings{Auth: a.s.Settings.Auth, Upstreams: a.s.Settings.Upstreams, Guard: server.Guard{AllowLoopback: true}, Policy: &sessionsOnly{}})
	if code := e2eReplyCode(t, a.addr, "alice", "wonderland", "x.test:80"); code != proto.ReplyNotAllowed {
		t.Errorf("forwarded name under a policy without AllowUnresolved: %v, want not allowed", code)
	}
}

// TestChainUpstreamMalformed: an upstream that calls the forwarded
// request malformed (0xEB), or wants another login, is this gateway's
// problem: the client gets a general failure, and no DIAGNOSTIC with
// the upstream's name or words.
func TestChainUpstreamMalformed(t *testing.T) {
	e2eCheckLeaks(t)
	ext := socks6test.Listen(t)
	socks6test.Serve(t, ext, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(e2eWait))
		proto.ReadGreeting(c)
		c.Write([]byte{5, byte(proto.MethodExtensions)})
		proto.ReadFrame(c, nil) // HELLO
		proto.WriteFrame(c, proto.HelloAck{Status: proto.HelloOK, Version: proto.ExtVersion, MaxFrameLen: proto.DefaultMaxFrameLen})
		proto.ReadFrame(c, nil) // REQUEST
		proto.WriteFrame(c, proto.ExtReply{ID: 1, Code: proto.ReplyMalformedRequest, Options: proto.Options{proto.DiagnosticOption("secret upstream words")}})
	})
	a := chainGateway(t, "alice", "wonderland", nil, server.Upstream{Name: "secret-upstream", Dialer: &client.Dialer{ProxyAddress: ext.Addr().String()}, Default: true})
	conn, rep := extConnect(t, a.addr, proto.Addr{FQDN: "x.test", Port: 80})
	conn.Close()
	diag, _ := rep.Options.Diagnostic()
	if rep.Code != proto.ReplyGeneralFailure || strings.Contains(diag, "secret") {
		t.Errorf("REPLY %v, DIAGNOSTIC %q; want general failure without the upstream's name or words", rep.Code, diag)
	}
}

// text returns everything logged so far.
func (a *e2eAudit) text() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}
