package client_test

import (
	"crypto/rand"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/socks6/socks6/proto"
)

// listenGateway is a fake gateway that speaks LISTEN, ACCEPT_OFFER, TAKE
// and REJECT_OFFER correctly, with real loopback sockets: each LISTEN
// opens a TCP listener on 127.0.0.1 (or ::1), each caller is held and
// offered with a random token, a TAKE joins the caller to the new
// connection, and REJECT_OFFER or expiry resets the caller. It serves
// the listener tests while our gateway cannot, and pins down what the
// client sends.
type listenGateway struct {
	t    testing.TB
	o    listenGatewayOpts
	addr string

	mu      sync.Mutex
	offers  map[proto.Token]*fakeOffer
	ctls    map[*fakeCtl]bool
	listens []proto.ExtRequest // every LISTEN received
	hellos  []proto.Hello      // HELLO of every TAKE connection
	takes   int                // TAKE requests
	taken   int                // TAKE requests that succeeded
	rejects int                // REJECT_OFFER frames
	badRej  int                // REJECT_OFFER frames for unknown tokens
}

// listenGatewayOpts configures a listenGateway. It is copied when the
// gateway starts.
type listenGatewayOpts struct {
	features      proto.Features  // HELLO_ACK features; 0 means LISTEN and RESOLVE
	reserved      []uint16        // RESERVED_PORTS in HELLO_ACK
	refuse        proto.ReplyCode // answer every LISTEN with this code
	badTokens     bool            // answer every TAKE with 0xE1 (and consume the token)
	expiredOffers bool            // send every offer with Expires In 0
	public        netip.Addr      // PUBLIC_ADDR host (the bound port); invalid means none
}

// A fakeOffer is a caller held by the gateway until it is taken,
// rejected or expires.
type fakeOffer struct {
	caller *net.TCPConn
	ctl    *fakeCtl
	timer  *time.Timer
}

// A fakeCtl is a control connection with its listeners.
type fakeCtl struct {
	c      net.Conn
	user   string
	wmu    sync.Mutex
	mu     sync.Mutex
	lns    []net.Listener
	nextID uint64
	wg     sync.WaitGroup // accept loops
}

func newListenGateway(t testing.TB, o listenGatewayOpts) *listenGateway {
	t.Helper()
	if o.features == 0 {
		o.features = proto.FeatureListen | proto.FeatureResolve
	}
	g := &listenGateway{t: t, o: o, offers: make(map[proto.Token]*fakeOffer), ctls: make(map[*fakeCtl]bool)}
	g.addr = fakeGateway(t, g.serve)
	return g
}

func (g *listenGateway) serve(c net.Conn) {
	t := g.t
	lim, _ := proto.LimitsOption(proto.Limits{MaxListeners: 8, MaxPendingOffers: 256})
	ack := proto.HelloAck{Features: g.o.features, MaxFrameLen: 4096, Options: proto.Options{lim}}
	if g.o.reserved != nil {
		ack.Options = append(ack.Options, proto.ReservedPortsOption(g.o.reserved))
	}
	h, ok := fakeHello(t, c, ack)
	if !ok {
		return
	}
	f, err := proto.ReadFrame(c, nil)
	if err != nil {
		return // a session closed without a request (EOF) is fine
	}
	ctl := &fakeCtl{c: c, user: h.Username, nextID: 6}
	g.mu.Lock()
	g.ctls[ctl] = true
	g.mu.Unlock()
	defer g.endCtl(ctl)
	for {
		switch f.Type {
		case proto.FrameRequest:
			req, err := proto.ParseExtRequest(f.Value)
			if err != nil {
				t.Errorf("fake gateway: parse REQUEST: %v", err)
				return
			}
			switch req.Command {
			case proto.CommandTake:
				g.mu.Lock()
				delete(g.ctls, ctl)
				g.mu.Unlock()
				g.take(c, h, req)
				return
			case proto.CommandListen:
				g.listen(ctl, req)
			default:
				ctl.write(t, proto.ExtReply{ID: req.ID, Code: proto.ReplyCommandNotSupported, Command: req.Command})
			}
		case proto.FrameRejectOffer:
			r, err := proto.ParseRejectOffer(f.Value)
			if err != nil {
				t.Errorf("fake gateway: parse REJECT_OFFER: %v", err)
				return
			}
			g.mu.Lock()
			g.rejects++
			if _, ok := g.offers[r.Token]; !ok {
				g.badRej++
			}
			g.mu.Unlock()
			g.withdraw(r.Token)
		case proto.FramePing:
			p, err := proto.ParsePing(f.Value)
			if err != nil {
				t.Errorf("fake gateway: parse PING: %v", err)
				return
			}
			ctl.write(t, proto.Pong(p))
		case proto.FrameClose:
			return
		default:
			t.Errorf("fake gateway: unexpected %v on a control connection", f.Type)
			return
		}
		if f, err = proto.ReadFrame(c, nil); err != nil {
			return
		}
	}
}

// write sends one frame on the control connection.
func (ctl *fakeCtl) write(t testing.TB, m proto.Message) {
	ctl.wmu.Lock()
	defer ctl.wmu.Unlock()
	if err := proto.WriteFrame(ctl.c, m); err != nil {
		t.Logf("fake gateway: write %v: %v", m.FrameType(), err)
	}
}

// listen answers LISTEN with a loopback listener and starts offering its
// callers.
func (g *listenGateway) listen(ctl *fakeCtl, req proto.ExtRequest) {
	t := g.t
	g.mu.Lock()
	g.listens = append(g.listens, req)
	g.mu.Unlock()
	fail := func(code proto.ReplyCode, diag string) {
		ctl.write(t, proto.ExtReply{ID: req.ID, Code: code, Command: proto.CommandListen, Options: proto.Options{proto.DiagnosticOption(diag)}})
	}
	if g.o.refuse != 0 {
		fail(g.o.refuse, "refused by the test")
		return
	}
	host := "127.0.0.1"
	if req.Addr.IP.Is6() {
		host = "::1"
	}
	port := "0"
	if req.Exact {
		port = strconv.Itoa(int(req.Addr.Port))
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		fail(proto.ReplyPortUnavailable, err.Error())
		return
	}
	timeout := 10 * time.Second
	if d, ok := req.Options.OfferTimeout(); ok {
		timeout = min(max(d, time.Second), time.Minute)
	}
	bound := netip.MustParseAddrPort(ln.Addr().String())
	rep := proto.ExtReply{ID: req.ID, Command: proto.CommandListen, Addr: proto.AddrFromAddrPort(bound),
		Options: proto.Options{proto.OfferTimeoutOption(timeout)}}
	if g.o.public.IsValid() {
		pub, _ := proto.PublicAddrOption(proto.Addr{IP: g.o.public, Port: bound.Port()})
		rep.Options = append(rep.Options, pub)
	}
	ctl.mu.Lock()
	ctl.nextID++
	rep.ListenerID = ctl.nextID
	ctl.lns = append(ctl.lns, ln)
	ctl.wg.Add(1)
	ctl.mu.Unlock()
	// The REPLY goes out before any offer for the listener can.
	ctl.write(t, rep)
	go g.offerCallers(ctl, ln, rep.ListenerID, timeout)
}

// offerCallers accepts callers on ln and offers each on ctl.
func (g *listenGateway) offerCallers(ctl *fakeCtl, ln net.Listener, id uint64, timeout time.Duration) {
	defer ctl.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		var tok proto.Token
		rand.Read(tok[:])
		expires := timeout
		if g.o.expiredOffers {
			expires = 0
		}
		o := &fakeOffer{caller: c.(*net.TCPConn), ctl: ctl}
		g.mu.Lock()
		g.offers[tok] = o
		o.timer = time.AfterFunc(expires, func() { g.withdraw(tok) })
		g.mu.Unlock()
		ctl.write(g.t, proto.AcceptOffer{
			ListenerID: id, Token: tok, ExpiresMillis: uint64(expires / time.Millisecond),
			Caller: proto.AddrFromAddrPort(netip.MustParseAddrPort(c.RemoteAddr().String())),
		})
	}
}

// withdraw forgets an offer and resets its caller.
func (g *listenGateway) withdraw(tok proto.Token) {
	g.mu.Lock()
	o := g.offers[tok]
	delete(g.offers, tok)
	g.mu.Unlock()
	if o != nil {
		o.timer.Stop()
		resetConn(o.caller)
	}
}

// resetConn closes c with a TCP reset.
func resetConn(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// take answers TAKE: the token must name an outstanding offer of the
// same user; the token is consumed either way.
func (g *listenGateway) take(c net.Conn, h proto.Hello, req proto.ExtRequest) {
	t := g.t
	if ap, ok := req.Addr.AddrPort(); req.ID != 1 || !ok || ap != netip.AddrPortFrom(netip.IPv4Unspecified(), 0) {
		t.Errorf("TAKE %+v: want ID 1 and the zero address", req)
	}
	g.mu.Lock()
	g.takes++
	g.hellos = append(g.hellos, h)
	o := g.offers[req.Token]
	delete(g.offers, req.Token)
	ok := o != nil && !g.o.badTokens && o.ctl.user == h.Username
	if ok {
		g.taken++
	}
	g.mu.Unlock()
	if o != nil {
		o.timer.Stop()
	}
	if !ok {
		if o != nil {
			resetConn(o.caller)
		}
		writeRaw(t, c, frame(t, proto.ExtReply{ID: req.ID, Code: proto.ReplyTokenInvalid, Command: proto.CommandTake}))
		return
	}
	defer o.caller.Close()
	caller := netip.MustParseAddrPort(o.caller.RemoteAddr().String())
	// A frame the client must skip before the REPLY.
	writeRaw(t, c, rawFrame(t, 0x3a, []byte("grease")))
	writeRaw(t, c, frame(t, proto.ExtReply{ID: req.ID, Command: proto.CommandTake, Addr: proto.AddrFromAddrPort(caller)}))
	o.caller.SetDeadline(time.Now().Add(testWait))
	relay(c, o.caller)
}

// endCtl closes a control connection's listeners and resets the callers
// it has pending, as a gateway does when a session ends.
func (g *listenGateway) endCtl(ctl *fakeCtl) {
	g.mu.Lock()
	delete(g.ctls, ctl)
	g.mu.Unlock()
	ctl.mu.Lock()
	for _, ln := range ctl.lns {
		ln.Close()
	}
	ctl.mu.Unlock()
	ctl.wg.Wait()
	g.mu.Lock()
	var pending []proto.Token
	for tok, o := range g.offers {
		if o.ctl == ctl {
			pending = append(pending, tok)
		}
	}
	g.mu.Unlock()
	for _, tok := range pending {
		g.withdraw(tok)
	}
}

// closeSessions ends every control connection with CLOSE reason.
func (g *listenGateway) closeSessions(reason proto.ReplyCode) {
	g.mu.Lock()
	var ctls []*fakeCtl
	for ctl := range g.ctls {
		ctls = append(ctls, ctl)
	}
	g.mu.Unlock()
	for _, ctl := range ctls {
		ctl.write(g.t, proto.Close{Reason: reason, Options: proto.Options{proto.DiagnosticOption("going away")}})
		ctl.c.Close()
	}
}

// counts returns the gateway's counters.
func (g *listenGateway) counts() (takes, taken, rejects, pending int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.takes, g.taken, g.rejects, len(g.offers)
}
