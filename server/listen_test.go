package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// listenReq sends LISTEN on a control connection and returns its REPLY.
func listenReq(t testing.TB, c net.Conn, id uint64, addr string, exact bool, opts ...proto.Option) proto.ExtReply {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	extSend(t, c, proto.ExtRequest{ID: id, Command: proto.CommandListen, Exact: exact, Addr: proto.AddrFromAddrPort(ap), Options: opts})
	r := extReply(t, c, proto.CommandListen)
	if r.ID != id {
		t.Fatalf("LISTEN reply ID %d, want %d", r.ID, id)
	}
	return r
}

// readOffer reads frames until an ACCEPT_OFFER.
func readOffer(t testing.TB, c net.Conn) proto.AcceptOffer {
	t.Helper()
	for {
		f := extReadFrame(t, c)
		if f.Type != proto.FrameAcceptOffer {
			t.Fatalf("got %v while waiting for ACCEPT_OFFER", f.Type)
		}
		o, err := proto.ParseAcceptOffer(f.Value)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
}

// takeConn opens a new connection, HELLOs as user and sends TAKE.
func takeConn(t testing.TB, gw, user, pass string, token proto.Token) (net.Conn, proto.ExtReply) {
	t.Helper()
	c, ack := extHello(t, gw, user, pass)
	if ack.Status != proto.HelloOK {
		t.Fatalf("HELLO for TAKE: %v", ack.Status)
	}
	extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandTake, Token: token})
	return c, extReply(t, c, proto.CommandTake)
}

func listenGateway(t testing.TB, ls server.ListenSettings) (*server.Server, string, *e2eAudit) {
	t.Helper()
	audit := e2eNewAudit()
	s := &server.Server{HandshakeTimeout: e2eWait, Logger: audit.logger(), Settings: server.Settings{
		Auth:   e2eUsers(t, "alice", "wonderland", "bob", "builder"),
		Guard:  server.Guard{AllowLoopback: true},
		Listen: ls,
	}}
	return s, startGateway(t, s), audit
}

func TestListenTakeReject(t *testing.T) {
	e2eCheckLeaks(t)
	s, gw, audit := listenGateway(t, server.ListenSettings{})
	ctl, ack := extHello(t, gw, "alice", "wonderland")
	if !ack.Features.Has(proto.FeatureListen) {
		t.Fatalf("features %v lack LISTEN", ack.Features)
	}
	if l, ok := ack.Options.Limits(); !ok || l.MaxListeners != 8 || l.MaxPendingOffers != 64 {
		t.Errorf("LIMITS %+v %v", l, ok)
	}
	r := listenReq(t, ctl, 1, "127.0.0.1:0", false, proto.OfferTimeoutOption(3*time.Second))
	if r.Code != proto.ReplySucceeded || r.ListenerID == 0 || r.Addr.Port == 0 {
		t.Fatalf("LISTEN: %+v", r)
	}
	if d, ok := r.Options.OfferTimeout(); !ok || d != 3*time.Second {
		t.Errorf("OFFER_TIMEOUT %v %v, want 3s", d, ok)
	}
	pub := net.JoinHostPort(r.Addr.IP.String(), fmt.Sprint(r.Addr.Port))

	// A caller sends before it is taken; its bytes come first.
	caller, err := net.Dial("tcp", pub)
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	caller.Write([]byte("hello from the caller "))
	o := readOffer(t, ctl)
	if o.ListenerID != r.ListenerID || o.Caller.String() != caller.LocalAddr().String() || o.ExpiresMillis != 3000 {
		t.Fatalf("offer %v from %v expires %d, want listener %d caller %v 3000", o.ListenerID, o.Caller, o.ExpiresMillis, r.ListenerID, caller.LocalAddr())
	}
	data, tr := takeConn(t, gw, "alice", "wonderland", o.Token)
	if tr.Code != proto.ReplySucceeded || tr.Addr.String() != caller.LocalAddr().String() {
		t.Fatalf("TAKE: %v %v", tr.Code, tr.Addr)
	}
	buf := make([]byte, 22)
	data.SetReadDeadline(time.Now().Add(e2eWait))
	if _, err := io.ReadFull(data, buf); err != nil || string(buf) != "hello from the caller " {
		t.Fatalf("early bytes %q %v", buf, err)
	}
	data.Write([]byte("and back"))
	buf = buf[:8]
	caller.SetReadDeadline(time.Now().Add(e2eWait))
	if _, err := io.ReadFull(caller, buf); err != nil || string(buf) != "and back" {
		t.Fatalf("reply to caller %q %v", buf, err)
	}

	// Replay of the same token: TokenInvalid.
	c2, tr := takeConn(t, gw, "alice", "wonderland", o.Token)
	if tr.Code != proto.ReplyTokenInvalid {
		t.Fatalf("replayed token: %v, want token invalid", tr.Code)
	}
	e2eExpectClosed(t, c2)
	data.Close()
	caller.Close()

	// REJECT_OFFER resets the caller.
	caller2, err := net.Dial("tcp", pub)
	if err != nil {
		t.Fatal(err)
	}
	o2 := readOffer(t, ctl)
	extSend(t, ctl, proto.RejectOffer{Token: o2.Token})
	caller2.SetReadDeadline(time.Now().Add(e2eWait))
	if n, err := caller2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("rejected caller read %d %v, want reset or EOF", n, err)
	}
	caller2.Close()
	// Its token is consumed.
	c3, tr := takeConn(t, gw, "alice", "wonderland", o2.Token)
	if tr.Code != proto.ReplyTokenInvalid {
		t.Fatalf("TAKE of a rejected offer: %v", tr.Code)
	}
	e2eExpectClosed(t, c3)

	// A token presented by another user is refused, and consumed.
	caller3, _ := net.Dial("tcp", pub)
	defer caller3.Close()
	o3 := readOffer(t, ctl)
	c4, tr := takeConn(t, gw, "bob", "builder", o3.Token)
	if tr.Code != proto.ReplyTokenInvalid {
		t.Fatalf("bob took alice's caller: %v", tr.Code)
	}
	e2eExpectClosed(t, c4)
	c5, tr := takeConn(t, gw, "alice", "wonderland", o3.Token)
	if tr.Code != proto.ReplyTokenInvalid {
		t.Fatalf("token survived a wrong TAKE: %v", tr.Code)
	}
	e2eExpectClosed(t, c5)

	// A random token.
	var random proto.Token
	copy(random[:], bytes.Repeat([]byte{0x5a}, 16))
	c6, tr := takeConn(t, gw, "alice", "wonderland", random)
	if tr.Code != proto.ReplyTokenInvalid {
		t.Fatalf("random token: %v", tr.Code)
	}
	e2eExpectClosed(t, c6)

	// Closing the control connection closes the listener.
	ctl.Close()
	e2eSessionsDrop(t, s, 0)
	if c, err := net.DialTimeout("tcp", pub, time.Second); err == nil {
		c.Close()
		t.Fatal("listener still accepts after its session ended")
	}
	outcomes := map[string]int{}
	var listenerRecs int
	for _, rec := range audit.records(t) {
		switch rec.Msg {
		case "caller":
			outcomes[rec.Outcome]++
		case "listener":
			listenerRecs++
		}
	}
	if outcomes["taken"] != 1 || outcomes["rejected"] != 1 || outcomes["refused"] != 1 || listenerRecs != 1 {
		t.Errorf("audit: caller outcomes %v, %d listener records", outcomes, listenerRecs)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestListenExpiry(t *testing.T) {
	e2eCheckLeaks(t)
	_, gw, _ := listenGateway(t, server.ListenSettings{})
	ctl, _ := extHello(t, gw, "alice", "wonderland")
	defer ctl.Close()
	r := listenReq(t, ctl, 1, "127.0.0.1:0", false, proto.OfferTimeoutOption(time.Second))
	pub := net.JoinHostPort(r.Addr.IP.String(), fmt.Sprint(r.Addr.Port))
	caller, err := net.Dial("tcp", pub)
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	o := readOffer(t, ctl)
	start := time.Now()
	caller.SetReadDeadline(time.Now().Add(e2eWait))
	if _, err := caller.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("unclaimed caller: %v, want reset", err)
	}
	t.Logf("caller closed %v after the offer", time.Since(start))
	c, tr := takeConn(t, gw, "alice", "wonderland", o.Token)
	if tr.Code != proto.ReplyTokenInvalid {
		t.Fatalf("expired token: %v", tr.Code)
	}
	e2eExpectClosed(t, c)
}

func TestListenPorts(t *testing.T) {
	e2eCheckLeaks(t)
	// A port the test holds, to see EXACT fail on it.
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	_, gw, _ := listenGateway(t, server.ListenSettings{
		Reserved:         map[string][]uint16{"bob": {uint16(busyPort + 1)}, "alice": {1000}},
		ListenersPerUser: 3,
	})
	ctl, ack := extHello(t, gw, "alice", "wonderland")
	defer ctl.Close()
	if ports, _ := ack.Options.ReservedPorts(); len(ports) != 1 || ports[0] != 1000 {
		t.Errorf("RESERVED_PORTS %v, want [1000]", ports)
	}
	at := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	for _, tc := range []struct {
		name  string
		addr  string
		exact bool
		code  proto.ReplyCode
		port  int // 0: any other port
	}{
		{"taken, EXACT", at(busyPort), true, proto.ReplyPortUnavailable, -1},
		{"taken, ANY", at(busyPort), false, proto.ReplySucceeded, 0},
		{"reserved for bob, EXACT", at(busyPort + 1), true, proto.ReplyPortUnavailable, -1},
		{"privileged, EXACT", at(81), true, proto.ReplyPortUnavailable, -1},
		{"not the gateway's address", "192.0.2.77:0", false, proto.ReplyPortUnavailable, -1},
		{"alice's own reserved privileged port", at(1000), true, proto.ReplySucceeded, 1000},
		{"third listener", at(0), false, proto.ReplySucceeded, 0},
		{"fourth listener: over the limit", at(0), false, proto.ReplyQuotaExceeded, -1},
	} {
		r := listenReq(t, ctl, 1, tc.addr, tc.exact)
		if r.Code != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, r.Code, tc.code)
			continue
		}
		if r.Code != proto.ReplySucceeded {
			if d, _ := r.Options.Diagnostic(); d == "" {
				t.Errorf("%s: no DIAGNOSTIC", tc.name)
			}
			continue
		}
		switch {
		case tc.port > 0 && int(r.Addr.Port) != tc.port:
			t.Errorf("%s: port %d, want %d", tc.name, r.Addr.Port, tc.port)
		case tc.port == 0 && (int(r.Addr.Port) == busyPort || int(r.Addr.Port) == busyPort+1 || r.Addr.Port < 1024):
			t.Errorf("%s: got port %d", tc.name, r.Addr.Port)
		}
	}
	// A name is not an address to listen on.
	extSend(t, ctl, proto.ExtRequest{ID: 9, Command: proto.CommandListen, Addr: proto.Addr{FQDN: "gw.test", Port: 80}})
	if r := extReply(t, ctl, proto.CommandListen); r.Code != proto.ReplyAddressTypeNotSupported {
		t.Errorf("LISTEN on a name: %v", r.Code)
	}
	// A session holding listeners cannot become a data connection.
	extSend(t, ctl, proto.ExtRequest{ID: 10, Command: proto.CommandConnect, Addr: proto.Addr{FQDN: "x.test", Port: 80}})
	if r := extReply(t, ctl, proto.CommandConnect); r.Code != proto.ReplyMalformedRequest {
		t.Errorf("CONNECT on a listening control connection: %v", r.Code)
	}
}

func TestListenPolicyAndPlain(t *testing.T) {
	e2eCheckLeaks(t)
	s := &server.Server{HandshakeTimeout: e2eWait, Settings: server.Settings{
		Guard: server.Guard{AllowLoopback: true},
		Policy: &server.Rules{Default: server.Allow, Rules: []server.Rule{
			{Action: server.Deny, Commands: []proto.Command{proto.CommandListen}, Ports: []server.PortRange{{Lo: 0, Hi: 0}}},
		}},
	}}
	gw := startGateway(t, s)
	ctl, _ := extHello(t, gw, "", "")
	defer ctl.Close()
	if r := listenReq(t, ctl, 1, "127.0.0.1:0", false); r.Code != proto.ReplyNotAllowed {
		t.Errorf("LISTEN denied by policy: %v", r.Code)
	}
	// LISTEN and TAKE exist only in frames; a plain client's 0x10 is an
	// unknown command, and BIND still works (TestBind).
	c := e2eDial(t, gw)
	e2eGreet(t, c, "", "")
	if r := e2eRequest(t, c, proto.CommandListen, proto.Addr{IP: netip.MustParseAddr("127.0.0.1")}); r.Code != proto.ReplyCommandNotSupported {
		t.Errorf("plain LISTEN: %v", r.Code)
	}
	// With LISTEN disabled, the feature bit is gone and LISTEN is not supported.
	s2 := &server.Server{HandshakeTimeout: e2eWait, Settings: server.Settings{Listen: server.ListenSettings{Disabled: true}}}
	gw2 := startGateway(t, s2)
	ctl2, ack := extHello(t, gw2, "", "")
	defer ctl2.Close()
	if ack.Features.Has(proto.FeatureListen) {
		t.Error("LISTEN offered while disabled")
	}
	if r := listenReq(t, ctl2, 1, "127.0.0.1:0", false); r.Code != proto.ReplyCommandNotSupported {
		t.Errorf("LISTEN while disabled: %v", r.Code)
	}
}

// A TAKE that comes once shutdown has begun is refused, as every other
// new command is: the drain waits for sessions that are relaying, and
// starts no new relay.
func TestTakeDuringShutdown(t *testing.T) {
	e2eCheckLeaks(t)
	s, gw, _ := listenGateway(t, server.ListenSettings{})
	ctl, _ := extHello(t, gw, "alice", "wonderland")
	defer ctl.Close()
	r := listenReq(t, ctl, 1, "127.0.0.1:0", false)
	if r.Code != proto.ReplySucceeded {
		t.Fatalf("LISTEN: %v", r.Code)
	}
	caller, err := net.Dial("tcp", net.JoinHostPort(r.Addr.IP.String(), fmt.Sprint(r.Addr.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	o := readOffer(t, ctl)
	tc, ack := extHello(t, gw, "alice", "wonderland") // accepted before the shutdown
	defer tc.Close()
	if ack.Status != proto.HelloOK {
		t.Fatalf("HELLO: %v", ack.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		s.Shutdown(ctx)
		close(done)
	}()
	defer func() { <-done }()
	// Shutdown has begun once the gateway accepts nobody.
	deadline := time.Now().Add(e2eWait)
	for {
		c, err := net.DialTimeout("tcp", gw, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the gateway still accepts after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	extSend(t, tc, proto.ExtRequest{ID: 1, Command: proto.CommandTake, Token: o.Token})
	if tr := extReply(t, tc, proto.CommandTake); tr.Code == proto.ReplySucceeded {
		t.Fatalf("TAKE during shutdown succeeded (%v)", tr.Addr)
	}
	ctl.Close()
}

// The guard applies to LISTEN: by default no listener on the gateway's
// loopback (an IPv4-mapped form included) or link-local addresses; with
// AllowLoopback, loopback is fine. All interfaces stay allowed.
func TestListenGuard(t *testing.T) {
	e2eCheckLeaks(t)
	s := &server.Server{HandshakeTimeout: e2eWait} // the default guard
	gw := startGateway(t, s)
	ctl, _ := extHello(t, gw, "", "")
	defer ctl.Close()
	id := uint64(0)
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "[::ffff:127.0.0.1]:0", "127.0.0.2:0", "[fe80::1]:0", "169.254.1.1:0"} {
		id++
		if r := listenReq(t, ctl, id, addr, false); r.Code != proto.ReplyNotAllowed {
			t.Errorf("LISTEN %s under the default guard: %v, want not allowed", addr, r.Code)
		}
	}
	id++
	if r := listenReq(t, ctl, id, "0.0.0.0:0", false); r.Code != proto.ReplySucceeded {
		t.Errorf("LISTEN on all interfaces: %v, want succeeded", r.Code)
	}

	s2 := &server.Server{HandshakeTimeout: e2eWait, Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	ctl2, _ := extHello(t, startGateway(t, s2), "", "")
	defer ctl2.Close()
	if r := listenReq(t, ctl2, 1, "127.0.0.1:0", false); r.Code != proto.ReplySucceeded {
		t.Errorf("LISTEN on loopback with AllowLoopback: %v", r.Code)
	}
}

// TestListenManyCallers: 100 concurrent callers, every one offered and
// taken, each stream intact both ways.
func TestListenManyCallers(t *testing.T) {
	e2eCheckLeaks(t)
	s, gw, _ := listenGateway(t, server.ListenSettings{OffersPerUser: 128})
	ctl, _ := extHello(t, gw, "alice", "wonderland")
	r := listenReq(t, ctl, 1, "127.0.0.1:0", false)
	pub := net.JoinHostPort(r.Addr.IP.String(), fmt.Sprint(r.Addr.Port))
	const callers = 100
	const size = 256 << 10

	// The taker: each offer is taken on its own connection, which echoes
	// what it reads with every byte inverted.
	var takers sync.WaitGroup
	go func() {
		for range callers {
			o := readOffer(t, ctl)
			takers.Add(1)
			go func() {
				defer takers.Done()
				c, tr := takeConn(t, gw, "alice", "wonderland", o.Token)
				defer c.Close()
				if tr.Code != proto.ReplySucceeded {
					t.Errorf("TAKE: %v", tr.Code)
					return
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					for i := range buf[:n] {
						buf[i] ^= 0xff
					}
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
					if err != nil {
						c.(*net.TCPConn).CloseWrite()
						return
					}
				}
			}()
		}
	}()

	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", pub)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			msg := make([]byte, size)
			for j := range msg {
				msg[j] = byte(i*7 + j*13)
			}
			want := make([]byte, size)
			for j := range msg {
				want[j] = msg[j] ^ 0xff
			}
			go func() {
				c.Write(msg)
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
				t.Errorf("caller %d: %d bytes back, intact %v, err %v", i, len(got), bytes.Equal(got, want), err)
			}
		}()
	}
	wg.Wait()
	takers.Wait()
	ctl.Close()
	e2eSessionsDrop(t, s, 0)
}

// TestListenOfferLimitAndClose: callers beyond the user's pending-offer
// limit are reset at once; closing the control connection resets the
// callers still waiting.
func TestListenOfferLimitAndClose(t *testing.T) {
	e2eCheckLeaks(t)
	s, gw, _ := listenGateway(t, server.ListenSettings{OffersPerUser: 2})
	ctl, _ := extHello(t, gw, "alice", "wonderland")
	r := listenReq(t, ctl, 1, "127.0.0.1:0", false)
	pub := net.JoinHostPort(r.Addr.IP.String(), fmt.Sprint(r.Addr.Port))
	var callers []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", pub)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		callers = append(callers, c)
		readOffer(t, ctl)
	}
	// The gateway resets the third caller as soon as it accepts it; the
	// reset can arrive before the dial has seen its connection complete,
	// and then the dial itself fails with it.
	third, err := net.Dial("tcp", pub)
	switch {
	case isReset(err):
	case err != nil:
		t.Fatal(err)
	default:
		defer third.Close()
		third.SetReadDeadline(time.Now().Add(e2eWait))
		if _, err := third.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("third caller over the limit of 2: %v, want reset", err)
		}
	}
	ctl.Close()
	for i, c := range callers {
		c.SetReadDeadline(time.Now().Add(e2eWait))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("pending caller %d after the control connection closed: %v, want reset", i, err)
		}
	}
	e2eSessionsDrop(t, s, 0)
}
