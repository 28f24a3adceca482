package server

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/socks6/socks6/proto"
)

// ListenSettings govern LISTEN, the extensions' listening sockets: a
// client asks for a port, each caller is offered to it with a token, and
// it takes the caller on a new connection (TAKE) or rejects it.
type ListenSettings struct {
	// Disabled turns LISTEN off: the gateway does not offer the feature.
	Disabled bool
	// Reserved maps a user to ports only that user may listen on. No
	// other user gets them, not even by asking for "any port".
	Reserved map[string][]uint16
	// Privileged lists users who may listen on ports below 1024; "*"
	// means every user.
	Privileged []string
	// ListenersPerUser caps one user's listeners across sessions. Zero
	// means 8; negative means none allowed.
	ListenersPerUser int
	// OffersPerUser caps one user's pending offers across listeners;
	// callers beyond it are reset at once. Zero means 64.
	OffersPerUser int
	// OfferTimeout is how long an offer waits to be taken. Zero means 10s;
	// a client may ask for 1s to 60s.
	OfferTimeout time.Duration
	// PublicAddrs are addresses at which callers reach the gateway when
	// they differ from its own (a port forward, a public address on a
	// router); LISTEN replies list them, with the listener's port, as
	// PUBLIC_ADDR options.
	PublicAddrs []netip.Addr
}

func (l ListenSettings) listenersPerUser() int {
	if l.ListenersPerUser == 0 {
		return 8
	}
	return max(l.ListenersPerUser, 0)
}

func (l ListenSettings) offersPerUser() int {
	if l.OffersPerUser <= 0 {
		return 64
	}
	return l.OffersPerUser
}

func (l ListenSettings) offerTimeout(asked time.Duration) time.Duration {
	d := durOr(l.OfferTimeout, 10*time.Second)
	if asked > 0 {
		d = asked
	}
	return min(max(d, time.Second), time.Minute)
}

// reservedFor returns the user a port is reserved for, if any.
func (l ListenSettings) reservedFor(port uint16) (string, bool) {
	for u, ports := range l.Reserved {
		if slices.Contains(ports, port) {
			return u, true
		}
	}
	return "", false
}

func (l ListenSettings) privileged(user string) bool {
	return slices.Contains(l.Privileged, "*") || user != "" && slices.Contains(l.Privileged, user)
}

// listens is the gateway's listening state: every pending offer, keyed by
// the SHA-256 of its token so that looking one up reveals nothing about
// other tokens through timing, and counts per user.
type listens struct {
	mu        sync.Mutex
	offers    map[[32]byte]*offer
	listeners map[string]int // per user
	pending   map[string]int // pending offers per user
}

// gwListener is one LISTEN: a socket on the gateway owned by a control
// session.
type gwListener struct {
	ss       *session
	id       uint64
	ln       net.Listener
	bound    netip.AddrPort
	ttl      time.Duration
	opened   time.Time
	pending  map[*offer]struct{} // guarded by listens.mu
	closed   bool                // guarded by listens.mu
	accepted sync.WaitGroup

	// Outcomes, guarded by listens.mu.
	offered, taken, rejected, expired, refused int
}

// offer is one caller waiting to be taken.
type offer struct {
	key     [32]byte
	l       *gwListener
	user    string
	caller  net.Conn
	from    netip.AddrPort
	created time.Time
	expires time.Time
	timer   *time.Timer
}

var (
	errTokenInvalid    = &ReplyError{Code: proto.ReplyTokenInvalid, Err: errors.New("token unknown, used, expired or another user's")}
	errPortUnavailable = &ReplyError{Code: proto.ReplyPortUnavailable, Err: errors.New("port unavailable")}
)

func (s *Server) listenState() *listens {
	s.listenOnce.Do(func() {
		s.lst = &listens{offers: map[[32]byte]*offer{}, listeners: map[string]int{}, pending: map[string]int{}}
	})
	return s.lst
}

// resetClose closes c with a TCP reset, which is how a caller learns that
// nobody took it.
func resetClose(c net.Conn) {
	if tc, ok := tcpConnOf(c); ok {
		tc.SetLinger(0)
	}
	hardClose(c)
}

// serveListen answers LISTEN: it binds the port, registers the listener
// with the session and starts offering callers.
func (ss *session) serveListen(req proto.ExtRequest, listeners *[]*gwListener) proto.ExtReply {
	s := ss.s
	start := time.Now()
	reply := proto.ExtReply{ID: req.ID, Command: proto.CommandListen}
	l, err := ss.openListener(req, listeners)
	if err != nil {
		reply.Code = replyCode(err)
		reply.Options = proto.Options{proto.DiagnosticOption(diagnostic(err))}
	} else {
		reply.Addr = proto.AddrFromAddrPort(l.bound)
		reply.ListenerID = l.id
		reply.Options = append(reply.Options, proto.OfferTimeoutOption(l.ttl))
		for _, pub := range ss.publicAddrs(l) {
			if o, err := proto.PublicAddrOption(proto.AddrFromAddrPort(pub)); err == nil {
				reply.Options = append(reply.Options, o)
			}
		}
	}
	if log := s.logger(); log.Enabled(context.Background(), slog.LevelInfo) {
		attrs := []slog.Attr{
			slog.String("client", ss.client.String()),
			slog.String("user", ss.user),
			slog.String("cmd", "listen"),
			slog.String("target", req.Addr.String()),
			slog.Bool("exact", req.Exact),
			slog.String("bound", reply.Addr.String()),
			slog.Duration("dur", time.Since(start).Round(time.Millisecond)),
			slog.String("reply", reply.Code.String()),
		}
		if err != nil {
			attrs = append(attrs, slog.Any("err", err))
		}
		log.LogAttrs(context.Background(), slog.LevelInfo, "listen", attrs...)
	}
	return reply
}

// publicAddrs are the PUBLIC_ADDR options of a listener: the configured
// public addresses of its family (both for a dual-stack one), and for a
// listener on the unspecified address, without them, the host's source
// toward the Internet or the address the client reached the gateway at
// (see externalAddrs).
func (ss *session) publicAddrs(l *gwListener) []netip.AddrPort {
	a := l.bound.Addr()
	dual := a.Is6() && a.IsUnspecified() && !isV6Only(l.ln)
	v4, v6 := a.Is4() || dual, a.Is6()
	if a.IsUnspecified() {
		return ss.externalAddrs(l.bound.Port(), v4, v6)
	}
	var out []netip.AddrPort
	for _, p := range ss.st.Listen.PublicAddrs {
		if (p.Is4() && v4) || (p.Is6() && v6) {
			out = append(out, netip.AddrPortFrom(p, l.bound.Port()))
		}
	}
	return out
}

// isV6Only reports whether an IPv6 listener refuses IPv4 callers.
func isV6Only(ln net.Listener) bool {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return true
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return true
	}
	v6only := 1
	rc.Control(func(fd uintptr) {
		if v, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY); err == nil {
			v6only = v
		}
	})
	return v6only != 0
}

// openListener checks a LISTEN against policy and limits and binds it.
func (ss *session) openListener(req proto.ExtRequest, listeners *[]*gwListener) (*gwListener, error) {
	s := ss.s
	ls := ss.st.Listen
	a := req.Addr
	if a.FQDN != "" {
		return nil, replyErr(proto.ReplyAddressTypeNotSupported, errors.New("LISTEN needs an address, not a name"))
	}
	// The guard: no listener on the gateway's loopback or link-local
	// addresses unless allowed (the draft's MUST): there, it would offer
	// the client the connections that processes on the gateway make to
	// localhost. All interfaces (the unspecified address) and the
	// gateway's own addresses are what LISTEN is for.
	if ip, g := a.IP.Unmap(), ss.st.Guard; ip.IsLoopback() && !g.AllowLoopback || ip.IsLinkLocalUnicast() && !g.AllowLinkLocal {
		return nil, errInternalTarget
	}
	if p := ss.st.Policy; p != nil {
		r := Request{User: ss.user, Client: ss.client, Command: proto.CommandListen, Target: a}
		ctx, cancel := context.WithTimeout(s.baseCtx, s.handshakeTimeout())
		err := p.Allow(ctx, &r)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	st := s.listenState()
	st.mu.Lock()
	n := st.listeners[ss.user]
	if n >= ls.listenersPerUser() {
		st.mu.Unlock()
		return nil, replyErr(proto.ReplyQuotaExceeded, fmt.Errorf("user has %d listeners, the limit", n))
	}
	st.listeners[ss.user]++ // held while binding
	st.mu.Unlock()
	l, err := ss.bindListener(req, ls)
	if err != nil {
		st.mu.Lock()
		st.listeners[ss.user]--
		st.mu.Unlock()
		return nil, err
	}
	ss.nextListenerID++
	l.id = ss.nextListenerID
	*listeners = append(*listeners, l)
	l.accepted.Add(1)
	go l.acceptLoop()
	return l, nil
}

// bindListener picks the port and binds it. A requested port is given
// unless it is taken, privileged or another user's; then EXACT fails and
// otherwise another port is chosen at random among those nobody has
// reserved.
func (ss *session) bindListener(req proto.ExtRequest, ls ListenSettings) (*gwListener, error) {
	a := req.Addr
	host := a.IP.Unmap()
	network := "tcp4"
	switch {
	case host.Is6() && host.IsUnspecified() && req.DualStack:
		network = "tcp" // one dual-stack socket: both families, one port
	case host.Is6():
		network = "tcp6" // IPV6_V6ONLY
	case host.IsUnspecified() && req.DualStack:
		network, host = "tcp", netip.IPv6Unspecified()
	}
	refuse := func(port uint16) error {
		if owner, ok := ls.reservedFor(port); ok && owner != ss.user {
			return fmt.Errorf("port %d is reserved for another user", port)
		}
		if _, own := ls.reservedFor(port); port < 1024 && !own && !ls.privileged(ss.user) {
			return fmt.Errorf("port %d is privileged", port)
		}
		return nil
	}
	try := func(port uint16) (net.Listener, error) {
		return ss.s.listenTCP(network, netip.AddrPortFrom(host, port).String())
	}
	var ln net.Listener
	var first error
	if a.Port != 0 {
		if first = refuse(a.Port); first == nil {
			ln, first = try(a.Port)
		}
		if ln == nil && (req.Exact || errors.Is(first, syscall.EADDRNOTAVAIL)) {
			return nil, &ReplyError{Code: proto.ReplyPortUnavailable, Err: first}
		}
	} else if req.Exact {
		return nil, &ReplyError{Code: proto.ReplyPortUnavailable, Err: errors.New("EXACT with port 0")}
	}
	for i := 0; ln == nil && i < 64; i++ {
		port := uint16(20000 + rand.IntN(40000))
		if refuse(port) != nil {
			continue
		}
		var err error
		ln, err = try(port)
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, &ReplyError{Code: proto.ReplyPortUnavailable, Err: err}
		}
		if first == nil {
			first = err
		}
	}
	if ln == nil {
		return nil, &ReplyError{Code: proto.ReplyPortUnavailable, Err: first}
	}
	asked, _ := req.Options.OfferTimeout()
	return &gwListener{ss: ss, ln: ln, bound: addrPortOf(ln.Addr()), ttl: ls.offerTimeout(asked),
		opened: time.Now(), pending: map[*offer]struct{}{}}, nil
}

// listenTCP opens a listener for LISTEN through the ListenTCP hook or
// net.ListenConfig.
func (s *Server) listenTCP(network, addr string) (net.Listener, error) {
	ctx, cancel := context.WithTimeout(s.baseCtx, s.handshakeTimeout())
	defer cancel()
	if s.ListenTCP != nil {
		return s.ListenTCP(ctx, network, addr)
	}
	return Listen(ctx, network, addr)
}

// acceptLoop offers each caller on the control connection until the
// listener closes.
func (l *gwListener) acceptLoop() {
	defer l.accepted.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() || isTemporaryAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return
		}
		backoff = 0
		l.offer(c)
	}
}

func isTemporaryAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}

// offer registers a caller and sends ACCEPT_OFFER, or resets the caller
// when the user has too many offers pending.
func (l *gwListener) offer(c net.Conn) {
	ss := l.ss
	s := ss.s
	st := s.listenState()
	from := addrPortOf(c.RemoteAddr())
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	var token proto.Token
	crand.Read(token[:])
	o := &offer{key: sha256.Sum256(token[:]), l: l, user: ss.user, caller: c, from: from,
		created: time.Now(), expires: time.Now().Add(l.ttl)}

	st.mu.Lock()
	if l.closed || st.pending[ss.user] >= ss.st.Listen.offersPerUser() {
		l.refused++
		st.mu.Unlock()
		resetClose(c)
		l.auditCaller(o, "refused", errors.New("too many pending offers"))
		return
	}
	st.pending[ss.user]++
	st.offers[o.key] = o
	l.pending[o] = struct{}{}
	l.offered++
	o.timer = time.AfterFunc(l.ttl, func() { s.expire(o) })
	st.mu.Unlock()

	err := ss.writeFrame(proto.AcceptOffer{ListenerID: l.id, Token: token, Caller: proto.AddrFromAddrPort(from),
		ExpiresMillis: uint64(l.ttl / time.Millisecond)})
	if err != nil {
		// The control connection is gone; its session closes the
		// listener and every pending caller.
		hardClose(ss.c)
	}
}

// withdraw removes a pending offer; it reports false if someone else
// (TAKE, REJECT_OFFER, expiry, close) got it first. st.mu must be held.
func (st *listens) withdrawLocked(o *offer) bool {
	if _, ok := st.offers[o.key]; !ok {
		return false
	}
	delete(st.offers, o.key)
	delete(o.l.pending, o)
	st.pending[o.user]--
	if st.pending[o.user] == 0 {
		delete(st.pending, o.user)
	}
	o.timer.Stop()
	return true
}

// expire ends an offer nobody took in time.
func (s *Server) expire(o *offer) {
	st := s.listenState()
	st.mu.Lock()
	ok := st.withdrawLocked(o)
	if ok {
		o.l.expired++
	}
	st.mu.Unlock()
	if ok {
		resetClose(o.caller)
		o.l.auditCaller(o, "expired", nil)
	}
}

// rejectOffer handles REJECT_OFFER: the caller is reset. Unknown tokens,
// and tokens of other sessions, are ignored.
func (ss *session) rejectOffer(token proto.Token) {
	st := ss.s.listenState()
	key := sha256.Sum256(token[:])
	st.mu.Lock()
	o, ok := st.offers[key]
	if !ok || o.l.ss != ss || !st.withdrawLocked(o) {
		st.mu.Unlock()
		return
	}
	o.l.rejected++
	st.mu.Unlock()
	resetClose(o.caller)
	o.l.auditCaller(o, "rejected", nil)
}

// take serves TAKE: the token is consumed whatever happens; if it names a
// live offer of this user, the connection is joined to the caller, whose
// early bytes (sent while the offer waited) come first.
func (ss *session) take(early []byte) error {
	s := ss.s
	st := s.listenState()
	key := sha256.Sum256(ss.token[:])
	st.mu.Lock()
	o, ok := st.offers[key]
	if ok {
		st.withdrawLocked(o)
	}
	valid := ok && time.Now().Before(o.expires) && ss.takeAuthorized(o.l.ss, o.user)
	if valid {
		o.l.taken++
	} else if ok {
		o.l.expired++
	}
	st.mu.Unlock()
	if !ok {
		return errTokenInvalid
	}
	if !valid {
		resetClose(o.caller)
		o.l.auditCaller(o, "refused", errors.New("TAKE after expiry, by another user, or without the listener's TLS session's PROOF"))
		return errTokenInvalid
	}
	o.l.auditCaller(o, "taken", nil)
	ss.bound = o.from.String()
	if err := ss.writeReply(proto.ReplySucceeded, proto.AddrFromAddrPort(o.from)); err != nil {
		resetClose(o.caller)
		return err
	}
	return ss.startRelay(o.caller, early)
}

// closeListeners ends a control session's listeners: the sockets close,
// pending callers are reset, and each listener's record is written.
func (ss *session) closeListeners(listeners []*gwListener) {
	st := ss.s.listenState()
	for _, l := range listeners {
		l.ln.Close()
		l.accepted.Wait()
		st.mu.Lock()
		l.closed = true
		var callers []*offer
		for o := range l.pending {
			if st.withdrawLocked(o) {
				callers = append(callers, o)
			}
		}
		st.listeners[ss.user]--
		if st.listeners[ss.user] <= 0 {
			delete(st.listeners, ss.user)
		}
		l.expired += len(callers)
		stats := [...]int{l.offered, l.taken, l.rejected, l.expired, l.refused}
		st.mu.Unlock()
		for _, o := range callers {
			resetClose(o.caller)
			l.auditCaller(o, "closed", errors.New("listener closed"))
		}
		log := ss.s.logger()
		if log.Enabled(context.Background(), slog.LevelInfo) {
			log.LogAttrs(context.Background(), slog.LevelInfo, "listener",
				slog.String("client", ss.client.String()),
				slog.String("user", ss.user),
				slog.String("bound", l.bound.String()),
				slog.Int("offered", stats[0]),
				slog.Int("taken", stats[1]),
				slog.Int("rejected", stats[2]),
				slog.Int("expired", stats[3]),
				slog.Int("refused", stats[4]),
				slog.Duration("dur", time.Since(l.opened).Round(time.Millisecond)))
		}
	}
}

// auditCaller writes one record per caller of a listener: who called,
// and whether the caller was taken, rejected, expired, refused or cut
// when the listener closed.
func (l *gwListener) auditCaller(o *offer, outcome string, err error) {
	log := l.ss.s.logger()
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("client", l.ss.client.String()),
		slog.String("user", o.user),
		slog.String("listener", l.bound.String()),
		slog.String("caller", o.from.String()),
		slog.String("outcome", outcome),
		slog.Duration("wait", time.Since(o.created).Round(time.Millisecond)),
	}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "caller", attrs...)
}

// helloOptions are the HELLO_ACK options for a user: LIMITS (listeners,
// offers, UDP associations), and the user's reserved ports.
func (ss *session) helloOptions() proto.Options {
	ls := ss.st.Listen
	lim := proto.Limits{MaxUDPAssocs: maxStreamAssocs}
	if !ls.Disabled {
		lim.MaxListeners = uint64(ls.listenersPerUser())
		lim.MaxPendingOffers = uint64(ls.offersPerUser())
	}
	var opts proto.Options
	if o, err := proto.LimitsOption(lim); err == nil {
		opts = append(opts, o)
	}
	if ports := ls.Reserved[ss.user]; len(ports) > 0 && ss.user != "" && !ls.Disabled {
		opts = append(opts, proto.ReservedPortsOption(ports))
	}
	return opts
}
