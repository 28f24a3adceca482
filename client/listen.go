package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/socks6/socks6/proto"
)

// Bounds of a listener (draft-socks6-extensions-00, "Listening").
const (
	// maxTakes caps the takes of one listener that run at once: each is
	// a new connection to the gateway with its own handshake.
	maxTakes = 16
	// listenBacklog caps the callers a listener has taken, or is
	// taking, that Accept has not returned yet. An offer that finds the
	// backlog full waits up to backlogWait for Accept to make room and
	// is rejected after that, so that the gateway resets the caller
	// rather than leave it waiting for an Accept that may never come.
	listenBacklog = 64
	// backlogWait is how long after its arrival an offer may wait for
	// room in a full backlog. It absorbs bursts while Accept is being
	// called but lags behind the takes.
	backlogWait = time.Second
	// maxQueuedOffers caps the offers waiting for a take to start. An
	// honest gateway sends no more than the pending offers its LIMITS
	// allow; this bounds one that does not.
	maxQueuedOffers = 1024
)

// errOfferExpired is the take error of an offer that expired before a
// take could start.
var errOfferExpired = errors.New("socks: the offer expired before it could be taken")

// ListenConfig holds the options of a listener. Its zero value asks for
// the requested port if it is free (another one otherwise), on the
// requested family only, with the gateway's offer lifetime, and accepts
// every caller.
type ListenConfig struct {
	// Exact sets the LISTEN flag EXACT: the gateway fails with 0xE2
	// (PortUnavailable) rather than give another port.
	Exact bool
	// DualStack sets the LISTEN flag DUAL_STACK: one port on both IPv4
	// and IPv6. The gateway honours it for an unspecified address only.
	DualStack bool
	// OfferTimeout is sent with LISTEN as an OFFER_TIMEOUT option: how
	// long each offer should stand, in whole milliseconds. The gateway
	// may clamp it (the draft suggests 1s to 60s); Listener.OfferTimeout
	// reports what it chose. Zero or negative sends no option, which
	// means the gateway's default (10s in the draft).
	OfferTimeout time.Duration
	// Filter, if set, sees each offer before it is taken; returning
	// false rejects it with REJECT_OFFER (the gateway resets the caller)
	// and Accept waits for the next one. It runs on the listener's take
	// goroutines, up to 16 at a time, and should return quickly: the
	// offer expires meanwhile. Nil accepts every offer.
	Filter func(Offer) bool
}

// An Offer describes one caller waiting at a listener: an ACCEPT_OFFER,
// without its token.
type Offer struct {
	Listener uint64         // Listener ID
	Caller   netip.AddrPort // the caller's address as the gateway sees it
	Expires  time.Time      // when the gateway withdraws the offer (local clock)
}

// ListenerStats counts what a listener did with the offers it got.
// Offers = Taken + Rejected + Failed + offers still in progress.
type ListenerStats struct {
	Offers   uint64 // ACCEPT_OFFER frames for the listener
	Taken    uint64 // callers taken (returned by Accept, waiting for it, or dropped by Close)
	Rejected uint64 // offers refused with REJECT_OFFER: by Filter, a full backlog, or a closed listener
	Failed   uint64 // offers that expired before a take could start, takes that failed, offers the session's end withdrew
}

// Listen asks the gateway for a listening socket (LISTEN,
// draft-socks6-extensions-00 "Listening") on a session of its own; see
// Session.Listen. Closing the Listener closes that session.
func (d *Dialer) Listen(ctx context.Context, network, address string) (*Listener, error) {
	return d.ListenConfig(ctx, network, address, ListenConfig{})
}

// ListenConfig is Listen with options.
func (d *Dialer) ListenConfig(ctx context.Context, network, address string, lc ListenConfig) (*Listener, error) {
	// Timeout bounds opening the session and the LISTEN when ctx has no
	// deadline; the listener itself lives on.
	ctx, cancel := d.handshakeContext(ctx)
	defer cancel()
	s, err := d.OpenSession(ctx)
	if err != nil {
		return nil, relabel(err, "listen", network, address)
	}
	l, err := s.Listen(ctx, network, address, lc)
	if err != nil {
		s.Close()
		return nil, err
	}
	l.own = true
	return l, nil
}

// relabel renames the operation of a *net.OpError from OpenSession.
func relabel(err error, op, network, address string) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		oe.Op = "socks6 " + op
		oe.Net = network
		oe.Addr = sockAddr{network, address}
	}
	return err
}

// Listen asks the gateway for a listening socket on this session
// (LISTEN); a session may hold several. network is "tcp", "tcp4" or
// "tcp6"; address is host:port, where host is an IP address of the
// gateway or empty for the unspecified address (0.0.0.0, or :: with
// "tcp6"), and port 0 lets the gateway choose.
//
// Each caller that connects is offered on the session; the Listener
// takes it on a new connection to the gateway, with the session's
// Dialer and credentials, and Accept returns it. Listen fails with
// ErrNoExtensions if the gateway did not set the LISTEN feature bit (or
// its LIMITS allow no listeners), and with a *ReplyError inside a
// *net.OpError if the gateway refuses, for example with
// proto.ReplyPortUnavailable (0xE2, the port is taken or reserved, or
// the address is not the gateway's) or proto.ReplyQuotaExceeded (0xE3).
//
// ctx bounds the request only; cancelling it later does not affect the
// listener. A listener lives as long as the session; see Listener.Close.
func (s *Session) Listen(ctx context.Context, network, address string, lc ListenConfig) (*Listener, error) {
	if !s.ack.Features.Has(proto.FeatureListen) {
		return nil, s.listenError(network, address, fmt.Errorf("%w: no LISTEN feature bit", ErrNoExtensions))
	}
	if lim, ok := s.Limits(); ok && lim.MaxListeners == 0 {
		// "A limit of 0 means that the corresponding feature is not
		// available, even if its bit is set" (draft, "Limits").
		return nil, s.listenError(network, address, fmt.Errorf("%w: LIMITS allow no listeners", ErrNoExtensions))
	}
	addr, err := listenAddr(ctx, network, address)
	if err != nil {
		return nil, s.listenError(network, address, err)
	}
	req := proto.ExtRequest{Command: proto.CommandListen, Exact: lc.Exact, DualStack: lc.DualStack, Addr: addr}
	if lc.OfferTimeout > 0 {
		req.Options = proto.Options{proto.OfferTimeoutOption(lc.OfferTimeout)}
	}
	l := newListener(ctx, s, lc)
	rep, err := s.roundTrip(ctx, req, l)
	if err != nil {
		// If the REPLY comes after all, the reader registers l as it is,
		// closed, and rejects its offers.
		l.shutdown(true)
		return nil, s.listenError(network, address, err)
	}
	if rep.Code != proto.ReplySucceeded {
		l.shutdown(false)
		diag, _ := rep.Options.Diagnostic()
		return nil, s.listenError(network, address, &ReplyError{Command: proto.CommandListen, Target: address, Code: rep.Code, Diagnostic: diag})
	}
	return l, nil
}

func (s *Session) listenError(network, address string, err error) error {
	e := s.opError("listen", address, err).(*net.OpError)
	e.Net = network
	return e
}

// listenAddr turns a Listen network and address into the Address of
// LISTEN. A host name is refused here: the gateway would answer it with
// 0x08 (draft, "LISTEN").
func listenAddr(ctx context.Context, network, address string) (proto.Addr, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return proto.Addr{}, net.UnknownNetworkError(network)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return proto.Addr{}, err
	}
	port, err := parsePort(ctx, network, portStr)
	if err != nil {
		return proto.Addr{}, err
	}
	if host == "" {
		if network == "tcp6" {
			return proto.Addr{IP: netip.IPv6Unspecified(), Port: port}, nil
		}
		return proto.Addr{IP: netip.IPv4Unspecified(), Port: port}, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return proto.Addr{}, &net.AddrError{Err: "listening address must be an IP address of the gateway", Addr: address}
	}
	if ip.Zone() != "" {
		return proto.Addr{}, &net.AddrError{Err: "a zone cannot be sent to the gateway", Addr: address}
	}
	ip = ip.Unmap()
	if network == "tcp4" && !ip.Is4() || network == "tcp6" && !ip.Is6() {
		return proto.Addr{}, &net.AddrError{Err: "address family does not match network " + network, Addr: address}
	}
	return proto.Addr{IP: ip, Port: port}, nil
}

// A Listener is a listening socket at the gateway (LISTEN). It
// implements net.Listener: Accept returns a *Conn joined to the next
// caller.
//
// Offers are taken as they arrive, in the background, up to 16 takes at
// once, whether or not Accept is being called: each take is a new
// connection to the gateway, with the session's Dialer and credentials
// and the extensions required, that sends TAKE with the offer's token.
// Accept returns taken callers in the order the takes complete. Up to 64
// callers may wait, taken or being taken, for Accept; an offer beyond
// that waits up to a second for Accept to make room and is then
// rejected (REJECT_OFFER, and the gateway resets the caller). A take that fails (TokenInvalid, an offer that expired, a
// dial error) is dropped and counted in Stats, never returned by Accept;
// LastTakeError keeps the last one for debugging.
//
// The methods of a Listener are safe for concurrent use.
type Listener struct {
	s      *Session
	own    bool // Close closes s (Dialer.Listen)
	filter func(Offer) bool
	// base is the parent of the takes' contexts: it carries the values
	// of the ctx Listen had, not its cancellation, and stop cancels it
	// when the listener closes or its session ends. Like the base
	// context of a server, it is the one context stored in a struct.
	base context.Context
	stop context.CancelFunc

	// Set by the session's reader from the REPLY to LISTEN, before the
	// listener is published to anyone but the reader.
	id           uint64
	addr         *net.TCPAddr
	public       []netip.AddrPort
	offerTimeout time.Duration

	ready  chan *Conn    // taken callers for Accept; capacity listenBacklog
	closed chan struct{} // closed by shutdown
	wg     sync.WaitGroup

	mu      sync.Mutex
	state   listenState
	queue   []queuedOffer // offers waiting for a take goroutine
	workers int           // take goroutines running
	taking  int           // backlog slots held by takes that have not delivered yet
	freed   chan struct{} // closed when a backlog slot frees or the listener stops; nil if nobody waits
	stats   ListenerStats
	lastErr error
}

// A listener's state:
//
//	listenOpen ──session ends──▶ listenEnded
//	     │                            │
//	     └──────Close/shutdown────────┴──▶ listenClosed
//
// Only an open listener takes offers. An ended one still hands Accept
// the callers it took; Accept then reports the session's error.
type listenState uint8

const (
	listenOpen listenState = iota
	listenEnded
	listenClosed
)

// A queuedOffer is an offer waiting for a take. Its token is a secret:
// it goes to the gateway and nowhere else.
type queuedOffer struct {
	token    proto.Token
	offer    Offer
	timeout  time.Duration // Expires In, for take error messages
	deadline time.Time     // until when it may wait for room in the backlog
}

func newListener(ctx context.Context, s *Session, lc ListenConfig) *Listener {
	base, stop := context.WithCancel(context.WithoutCancel(ctx))
	return &Listener{
		s:      s,
		filter: lc.Filter,
		base:   base,
		stop:   stop,
		ready:  make(chan *Conn, listenBacklog),
		closed: make(chan struct{}),
	}
}

// granted fills in what the REPLY to LISTEN says. It runs on the
// session's reader, under s.mu.
func (l *Listener) granted(rep proto.ExtReply) {
	l.id = rep.ListenerID
	ap, _ := rep.Addr.AddrPort()
	l.addr = net.TCPAddrFromAddrPort(ap)
	for _, a := range rep.Options.PublicAddrs() {
		if ap, ok := a.AddrPort(); ok {
			l.public = append(l.public, ap)
		}
	}
	l.offerTimeout, _ = rep.Options.OfferTimeout()
}

// Addr returns the address the gateway bound the listener to, from the
// REPLY to LISTEN, as a *net.TCPAddr. Callers may need one of
// PublicAddrs instead.
func (l *Listener) Addr() net.Addr { return l.addr }

// PublicAddrs returns the addresses at which callers can reach the
// listener when they differ from Addr (a port forward, or one per family
// with DualStack), from the PUBLIC_ADDR options of the REPLY. It may be
// empty.
func (l *Listener) PublicAddrs() []netip.AddrPort { return append([]netip.AddrPort(nil), l.public...) }

// OfferTimeout returns how long the gateway keeps each offer, from the
// REPLY's OFFER_TIMEOUT option; zero if it sent none.
func (l *Listener) OfferTimeout() time.Duration { return l.offerTimeout }

// ID returns the Listener ID the gateway assigned.
func (l *Listener) ID() uint64 { return l.id }

// Stats returns the listener's counts so far.
func (l *Listener) Stats() ListenerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// LastTakeError returns the error of the most recent offer that failed
// (see ListenerStats.Failed), or nil. It is for debugging: such failures
// are not returned by Accept.
func (l *Listener) LastTakeError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// Accept waits for the next caller and returns it as a *Conn; see
// AcceptContext.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptContext(context.Background())
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptContext waits for the next taken caller. Its RemoteAddr is the
// caller's address and its BoundAddr the Address of the REPLY to TAKE.
// After Close it fails with a *net.OpError wrapping net.ErrClosed. After
// the session ends, it returns the callers already taken, then a
// *net.OpError wrapping the session's error (a *CloseError if the
// gateway sent CLOSE). If ctx ends first, it fails with ctx's error and
// the listener carries on.
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error) {
	select {
	case <-l.closed:
		return nil, l.acceptError(net.ErrClosed)
	default:
	}
	select {
	case c := <-l.ready:
		return l.accepted(c), nil
	case <-l.closed:
		return nil, l.acceptError(net.ErrClosed)
	case <-l.s.done:
		select {
		case c := <-l.ready:
			return l.accepted(c), nil
		default:
		}
		return nil, l.acceptError(l.s.Err())
	case <-ctx.Done():
		return nil, l.acceptError(ctx.Err())
	}
}

// accepted wakes the offers waiting for room in the backlog, now that c
// has left it.
func (l *Listener) accepted(c *Conn) *Conn {
	l.mu.Lock()
	l.wakeLocked()
	l.mu.Unlock()
	return c
}

// wakeLocked wakes the offers waiting for room in the backlog.
func (l *Listener) wakeLocked() {
	if l.freed != nil {
		close(l.freed)
		l.freed = nil
	}
}

func (l *Listener) acceptError(err error) error {
	e := &net.OpError{Op: "socks6 accept", Net: "tcp", Source: sockAddr{"tcp", l.s.gateway}, Err: err}
	if l.addr != nil {
		e.Addr = l.addr
	}
	return e
}

// Close stops the listener; Accept then fails with net.ErrClosed, and
// the callers taken but not yet accepted are closed. Connections Accept
// returned stay open.
//
// The protocol cannot close a single listener (draft-socks6-extensions-00,
// "Lifetime of Listeners"). So Close on a Listener from Dialer.Listen
// closes its session, which closes the listening socket at the gateway;
// on one from Session.Listen it only makes the session reject the
// listener's further offers, and the gateway keeps the socket until the
// session ends. Close waits for the listener's takes to stop. A second
// Close returns nil.
func (l *Listener) Close() error {
	l.shutdown(!l.own)
	if l.own {
		return l.s.Close()
	}
	return nil
}

// shutdown closes the listener: it stops taking, rejects the offers
// still queued if reject is set (and the session runs), waits for the
// take goroutines and closes the taken callers nobody accepted.
func (l *Listener) shutdown(reject bool) {
	l.mu.Lock()
	if l.state == listenClosed {
		l.mu.Unlock()
		return
	}
	l.state = listenClosed
	l.wakeLocked()
	queue := l.queue
	l.queue = nil
	l.stats.Rejected += uint64(len(queue))
	l.mu.Unlock()
	close(l.closed)
	l.stop()
	if reject {
		for _, q := range queue {
			l.reject(q)
		}
	}
	l.wg.Wait()
	for {
		select {
		case c := <-l.ready:
			c.Close()
		default:
			return
		}
	}
}

// sessionEnded stops an open listener when its session ends: the gateway
// has withdrawn the queued offers and fails the takes under way.
func (l *Listener) sessionEnded(err error) {
	l.mu.Lock()
	if l.state == listenOpen {
		l.state = listenEnded
		l.wakeLocked()
		if n := len(l.queue); n > 0 {
			l.stats.Failed += uint64(n)
			l.lastErr = fmt.Errorf("socks: %d offers withdrawn: %w", n, err)
			l.queue = nil
		}
	}
	l.mu.Unlock()
	l.stop()
}

// enqueue queues an offer for a take goroutine, starting one if fewer
// than maxTakes run. It reports false if the listener takes no more
// offers, in which case the caller rejects the offer. It runs on the
// session's reader.
func (l *Listener) enqueue(o proto.AcceptOffer, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.Offers++
	if l.state != listenOpen || len(l.queue) >= maxQueuedOffers {
		l.stats.Rejected++
		return false
	}
	caller, _ := o.Caller.AddrPort()
	expires := now.Add(millis(o.ExpiresMillis))
	deadline := now.Add(backlogWait)
	if expires.Before(deadline) {
		deadline = expires
	}
	l.queue = append(l.queue, queuedOffer{
		token:    o.Token,
		offer:    Offer{Listener: o.ListenerID, Caller: caller, Expires: expires},
		timeout:  millis(o.ExpiresMillis),
		deadline: deadline,
	})
	if l.workers < maxTakes {
		l.workers++
		l.wg.Add(1)
		go l.takeOffers()
	}
	return true
}

// millis converts Expires In to a Duration, saturating.
func millis(ms uint64) time.Duration {
	if ms > math.MaxInt64/uint64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// takeOffers is a take goroutine: it handles queued offers until there
// are none, or the listener stops.
func (l *Listener) takeOffers() {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		if l.state != listenOpen || len(l.queue) == 0 {
			l.workers--
			l.mu.Unlock()
			return
		}
		q := l.queue[0]
		l.queue[0] = queuedOffer{} // the token is not kept longer than needed
		l.queue = l.queue[1:]
		if len(l.queue) == 0 {
			l.queue = nil
		}
		l.mu.Unlock()
		l.handle(q)
	}
}

// handle decides one offer: it rejects it if the backlog stays full or
// the Filter refuses it, drops it if it has expired, and takes it
// otherwise.
func (l *Listener) handle(q queuedOffer) {
	if !l.reserve(q) {
		l.reject(q)
		return
	}

	if l.filter != nil && !l.filter(q.offer) {
		l.mu.Lock()
		l.taking--
		l.stats.Rejected++
		l.mu.Unlock()
		l.reject(q)
		return
	}
	if !time.Now().Before(q.offer.Expires) {
		// The gateway has withdrawn it, or will before a TAKE arrives;
		// its token would only earn a TokenInvalid.
		l.deliver(nil, l.takeError(q, errOfferExpired))
		return
	}
	c, err := l.take(q)
	l.deliver(c, err)
}

// reserve takes a backlog slot for q, held until deliver, so that the
// send to ready cannot block. If the backlog is full it waits for Accept
// to free a slot until q's deadline. It reports false, counting a
// rejection, if no slot freed in time or the listener stopped.
func (l *Listener) reserve(q queuedOffer) bool {
	var timer *time.Timer
	l.mu.Lock()
	defer func() {
		l.mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if l.state != listenOpen {
			l.stats.Rejected++
			return false
		}
		if len(l.ready)+l.taking < cap(l.ready) {
			l.taking++
			return true
		}
		wait := time.Until(q.deadline)
		if wait <= 0 {
			l.stats.Rejected++
			return false
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		if l.freed == nil {
			l.freed = make(chan struct{})
		}
		freed := l.freed
		l.mu.Unlock()
		select {
		case <-freed:
		case <-timer.C:
		}
		l.mu.Lock()
	}
}

// deliver hands a taken caller to Accept, or counts a failed take.
func (l *Listener) deliver(c *Conn, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.taking--
	if err != nil {
		l.stats.Failed++
		l.lastErr = err
		return
	}
	l.stats.Taken++
	if l.state == listenClosed {
		c.Close()
		return
	}
	l.ready <- c // len(ready)+taking < cap(ready) held when the slot was taken
}

// reject sends REJECT_OFFER for q, unless the session has ended. A write
// that fails ends the session, which reports it.
func (l *Listener) reject(q queuedOffer) {
	select {
	case <-l.s.done:
		return
	default:
	}
	l.s.writeAsync(proto.RejectOffer{Token: q.token})
}

// take opens a connection to the gateway, negotiates the extensions and
// sends TAKE with q's token (draft-socks6-extensions-00, "TAKE").
func (l *Listener) take(q queuedOffer) (*Conn, error) {
	d := &l.s.taker
	ctx, cancel := d.handshakeContext(l.base)
	defer cancel()
	c, err := d.dialGateway(ctx)
	if err != nil {
		return nil, l.takeError(q, ctxErr(ctx, err))
	}
	stop := watch(ctx, c)
	conn, err := takeOn(c, d, q, l.s)
	if err != nil {
		err = ctxErr(ctx, err)
		stop()
		c.Close()
		return nil, l.takeError(q, err)
	}
	if err := stop(); err != nil {
		c.Close()
		return nil, l.takeError(q, err)
	}
	return conn, nil
}

// takeOn runs the handshake and TAKE on c, whose deadline the caller
// manages. On error the caller closes c.
func takeOn(c net.Conn, d *Dialer, q queuedOffer, owner *Session) (*Conn, error) {
	neg, err := d.negotiate(c, false)
	if err != nil {
		return nil, err
	}
	req := proto.ExtRequest{Command: proto.CommandTake, Token: q.token}
	if owner.tls {
		owner.mu.Lock()
		key, ended := owner.key, owner.err != nil
		owner.mu.Unlock()
		if ended {
			return nil, errors.New("socks: the listener's session has ended")
		}
		o, err := takeProof(c, owner.ack.SessionID, key, q.token)
		clear(key[:])
		if err != nil {
			return nil, err
		}
		req.Options = proto.Options{o}
	}
	rep, err := exchange(c, neg.ack, req)
	if err != nil {
		writeMalformedClose(c, err)
		return nil, err
	}
	if rep.Code != proto.ReplySucceeded {
		diag, _ := rep.Options.Diagnostic()
		return nil, &ReplyError{Command: proto.CommandTake, Target: q.offer.Caller.String(), Code: rep.Code, Diagnostic: diag}
	}
	// The REPLY carries the caller's address; the offer's serves if the
	// gateway sent the zero address.
	caller := q.offer.Caller
	if ap, ok := rep.Addr.AddrPort(); ok && ap.Port() != 0 {
		caller = ap
	}
	return &Conn{Conn: c, bound: rep.Addr, ext: true, remote: net.TCPAddrFromAddrPort(caller)}, nil
}

// takeError describes a failed take by the caller's address, never by
// the token.
func (l *Listener) takeError(q queuedOffer, err error) error {
	return &net.OpError{
		Op: "socks6 take", Net: "tcp", Source: sockAddr{"tcp", l.s.gateway},
		Addr: sockAddr{"tcp", q.offer.Caller.String()},
		Err:  fmt.Errorf("offer of listener %d (expires in %v): %w", q.offer.Listener, q.timeout, err),
	}
}
