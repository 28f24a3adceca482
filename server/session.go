package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/socks6/socks6/internal/relay"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server/resolver"
)

// hsBufSize holds the largest pipelined handshake: a greeting (257), a
// username/password request (513) and a request (262), plus early data.
const hsBufSize = 2048

var hsBufPool = sync.Pool{New: func() any { return new([hsBufSize]byte) }}

// hsReader reads handshake messages from a connection through a pooled
// buffer, so a pipelined client's greeting, credentials and request cost
// one read. A framed connection's larger frames grow the buffer up to max.
type hsReader struct {
	c    net.Conn
	arr  *[hsBufSize]byte // the pooled array, while buf is backed by it
	buf  []byte
	max  int // 0 means hsBufSize
	r, w int
}

func newHSReader(c net.Conn) *hsReader {
	arr := hsBufPool.Get().(*[hsBufSize]byte)
	return &hsReader{c: c, arr: arr, buf: arr[:]}
}

// next parses one message from the buffer, reading more as needed.
func next[T any](h *hsReader, parse func([]byte) (T, int, error)) (T, error) {
	for {
		v, n, err := parse(h.buf[h.r:h.w])
		if err == nil {
			h.r += n
			return v, nil
		}
		if !errors.Is(err, proto.ErrShortBuffer) {
			return v, err
		}
		if h.w == len(h.buf) {
			if h.r > 0 {
				h.w = copy(h.buf, h.buf[h.r:h.w])
				h.r = 0
			} else if len(h.buf) < h.max {
				nb := make([]byte, min(2*len(h.buf), h.max))
				copy(nb, h.buf[:h.w])
				h.buf = nb
			} else {
				return v, proto.ErrTooLong
			}
		}
		m, rerr := h.c.Read(h.buf[h.w:])
		h.w += m
		if rerr != nil && m == 0 {
			if errors.Is(rerr, io.EOF) && h.w > h.r {
				rerr = io.ErrUnexpectedEOF
			}
			return v, rerr
		}
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// release returns a copy of the bytes read past the last message and
// gives the buffer back to the pool.
func (h *hsReader) release() []byte {
	var rest []byte
	if h.w > h.r {
		rest = append([]byte(nil), h.buf[h.r:h.w]...)
	}
	if h.arr != nil {
		hsBufPool.Put(h.arr)
	}
	h.arr, h.buf = nil, nil
	return rest
}

// session is one client connection's state, for the audit record.
type session struct {
	s       *Server
	c       net.Conn
	st      *Settings
	client  netip.AddrPort
	user    string
	req     Request
	hasReq  bool
	replied bool
	// selPending: the NoAuth method selection is still to be sent, with
	// the first reply (the client pipelined its request).
	selPending bool
	sent       proto.ReplyCode // the reply code sent, once replied
	bound      string
	up         int64
	down       int64
	counted    bool // holds a place in the session counters
	start      time.Time

	// Extension sessions (framed after method 0xC6).
	ext       bool           // replies are REPLY frames
	isControl bool           // a control connection that served control requests
	reqID     uint64         // the REQUEST's ID, echoed in its REPLY
	family    proto.Family   // the request's FAMILY option
	connected netip.AddrPort // where CONNECT got through, for the CONNECTED option
	diag      string         // DIAGNOSTIC text for a failure REPLY
	token     proto.Token    // TAKE's token
	hops      uint8          // the request's HOP_LIMIT, if hasHops
	hasHops   bool
	upstream  string      // the upstream gateway that served the request, for the audit
	proof     proto.Proof // TAKE's PROOF option, if hasProof
	hasProof  bool
	// The session's ID, sent in HELLO_ACK, and, for a TLS session (TLS
	// 1.3), its key of generation 0, which a TAKE of its listeners'
	// callers must prove. The key is erased when the session ends.
	sessID     proto.SessionID
	key        proto.SessionKey
	tlsSession bool
	// nextListenerID numbers the control session's listeners.
	nextListenerID uint64
	// nextAssocID numbers the control session's UDP associations, and
	// dgw writes their datagrams (made with the first).
	nextAssocID uint64
	dgw         *dgramWriter
	wmu         sync.Mutex // serializes frames on a control connection
}

// writeReply sends a reply and records that one was sent: a REPLY frame
// on an extension session, else an RFC 1928 reply with the extension
// codes mapped to the ones plain clients know.
func (ss *session) writeReply(code proto.ReplyCode, bound proto.Addr) error {
	if ss.ext {
		r := proto.ExtReply{ID: ss.reqID, Code: code, Addr: bound, Command: ss.req.Command}
		if code == proto.ReplySucceeded && ss.connected.IsValid() && ss.req.Command == proto.CommandConnect {
			if o, err := proto.ConnectedOption(proto.AddrFromAddrPort(ss.connected)); err == nil {
				r.Options = proto.Options{o}
			}
		}
		if code != proto.ReplySucceeded && ss.diag != "" {
			r.Options = proto.Options{proto.DiagnosticOption(ss.diag)}
		}
		ss.replied, ss.sent = true, code
		return ss.writeFrame(r)
	}
	var buf [2 + 32 + proto.MaxFQDNLen]byte
	b := buf[:0]
	if ss.selPending {
		// The method selection negotiate held back goes out with the
		// reply, in one segment.
		b = append(b, proto.Version5, byte(proto.MethodNoAuth))
		ss.selPending = false
	}
	b, err := proto.Reply{Code: code.SOCKS5(), Addr: bound}.AppendBinary(b)
	if err != nil {
		return err
	}
	ss.replied, ss.sent = true, code.SOCKS5()
	_, err = ss.c.Write(b)
	return err
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// errDetached is returned by a command handler that handed the session
// to a background relay; the relay's completion callback closes it.
var errDetached = errors.New("relaying in the background")

// serveConn runs one session from accept to the start of its relay (or to
// its end, for failures and UDP associations).
func (s *Server) serveConn(c net.Conn) {
	// An IPv4 client of a dual-stack listener arrives IPv4-mapped; logs
	// and limits use its IPv4 form.
	client := addrPortOf(c.RemoteAddr())
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	ss := &session{s: s, c: c, st: s.settings.Load(), client: client, start: time.Now()}
	err := ss.run()
	if errors.Is(err, errDetached) {
		return
	}
	ss.close(err)
}

// startRelay hands the client connection and peer to a background relay
// so that an idle session keeps no goroutine; close runs when it ends.
func (ss *session) startRelay(peer net.Conn, early []byte) error {
	ss.c.SetDeadline(time.Time{})
	rs := relay.Start(ss.c, peer, relay.Options{Idle: ss.s.idleTimeout(), Head: early},
		func(st relay.Stats, err error) {
			ss.up, ss.down = st.Up, st.Down
			ss.close(err)
		})
	ss.s.setCloser(ss.c, rs)
	return errDetached
}

// close ends the session: closes the client connection, releases its
// limits and writes the audit record.
func (ss *session) close(err error) {
	s := ss.s
	// Release the counters before the close that the client observes, so
	// that a client which saw its session end can count on its slot.
	if ss.counted {
		s.counts.release(ss.user, ss.client.Addr().Unmap())
	}
	hardClose(ss.c)
	clear(ss.key[:])
	ss.audit(err)
	s.untrack(ss.c)
	s.sessions.Done()
}

// audit writes the session's record: one per session that got as far as
// a request, at Info; failed handshakes at Debug only, so that a flood of
// garbage cannot flood the log.
func (ss *session) audit(err error) {
	s := ss.s
	if errors.Is(err, net.ErrClosed) && s.shutdown.Load() {
		err = errors.New("gateway shut down")
	}
	if errors.Is(err, errControlDone) {
		err = nil
	}
	code := proto.ReplySucceeded
	if err != nil {
		code = replyCode(err)
		if !ss.ext {
			code = code.SOCKS5() // what the client was told
		}
	}
	if !ss.hasReq && !ss.isControl {
		if err == nil {
			return // HELLO, then CLOSE: nothing was asked
		}
		if s.OnSession != nil {
			s.OnSession(SessionRecord{Command: "handshake", Reply: code, User: ss.user, Duration: time.Since(ss.start), Err: err})
		}
		s.logger().LogAttrs(context.Background(), slog.LevelDebug, "handshake failed",
			slog.String("client", ss.client.String()),
			slog.String("user", ss.user),
			slog.Duration("dur", time.Since(ss.start).Round(time.Millisecond)),
			slog.Any("err", err))
		return
	}
	if s.OnSession != nil {
		sent := code
		if ss.replied {
			sent = ss.sent // not how a relay that followed ended
		}
		s.OnSession(SessionRecord{Command: ss.cmdName(), Reply: sent, User: ss.user, Upstream: ss.upstream,
			BytesUp: ss.up, BytesDown: ss.down, Duration: time.Since(ss.start), Err: err})
	}
	if log := s.logger(); log.Enabled(context.Background(), slog.LevelInfo) {
		ss.auditRecord(log, code, err)
	}
}

// A SessionRecord is what Server.OnSession is told of a session that
// ended: what its audit record says, for metrics.
type SessionRecord struct {
	// Command is the session's command as the audit record names it
	// ("connect", "bind", "udp-associate", "take", "control",
	// "tor-resolve", …), "udp" for a UDP association inside a control
	// connection (one record each), or "handshake" for a session that
	// failed before its request.
	Command string
	// Reply is the reply code the client was sent (the RFC 1928 code for
	// a plain client), whatever ended the session afterwards; for a
	// session that ended before any reply, the code of why.
	Reply proto.ReplyCode
	// User is the authenticated user, or empty.
	User string
	// Upstream names the upstream gateway that served the request, if
	// one did.
	Upstream string
	// BytesUp and BytesDown are the bytes relayed each way.
	BytesUp, BytesDown int64
	// Duration is the session's life from accept.
	Duration time.Duration
	// Err is why it failed, or nil.
	Err error
}

// auditRecord writes the Info record. It is a function of its own so that
// the attribute array lives in its frame only when the record is written:
// a large frame makes every caller's goroutine grow its stack.
func (ss *session) auditRecord(log *slog.Logger, code proto.ReplyCode, err error) {
	attrs := []slog.Attr{
		slog.String("client", ss.client.String()),
		slog.String("user", ss.user),
		slog.String("cmd", ss.cmdName()),
		slog.String("target", ss.targetString()),
		slog.String("bound", ss.bound),
		slog.String("connected", connectedString(ss.connected)),
		slog.Int64("bytes_up", ss.up),
		slog.Int64("bytes_down", ss.down),
		slog.Duration("dur", time.Since(ss.start).Round(time.Millisecond)),
		slog.String("reply", code.String()),
	}
	if ss.upstream != "" {
		attrs = append(attrs, slog.String("upstream", ss.upstream))
	}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "session", attrs...)
}

// run is the session boundary: an error returned before a reply was sent
// becomes the failure reply here and nowhere else.
func (ss *session) run() error {
	s := ss.s
	hsDone := false
	endHandshake := func() {
		if !hsDone {
			hsDone = true
			s.releaseHandshake()
		}
	}
	defer endHandshake()
	deadline := time.Now().Add(s.handshakeTimeout())
	ss.c.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(s.baseCtx, deadline)
	defer cancel()
	h := newHSReader(ss.c)
	defer func() {
		if h.buf != nil {
			h.release()
		}
	}()

	ext, err := ss.negotiate(ctx, h)
	if err != nil {
		return err
	}
	if ext {
		if err := ss.control(h, endHandshake); err != nil {
			return err
		}
		// A consuming request, maybe after a long-lived control
		// session: its stages get a deadline of their own.
		deadline = time.Now().Add(s.handshakeTimeout())
		ss.c.SetDeadline(deadline)
		ctx, cancel = context.WithDeadline(s.baseCtx, deadline)
		defer cancel()
	} else {
		req, err := next(h, proto.ParseRequest)
		if err != nil {
			if errors.Is(err, proto.ErrAddressType) {
				ss.hasReq = true
				err = replyErr(proto.ReplyAddressTypeNotSupported, err)
				return ss.fail(err)
			}
			if ss.selPending {
				// No reply for a request that does not parse, but the
				// selection the client was owed, as a client that waited
				// for it got it.
				ss.selPending = false
				ss.c.Write([]byte{proto.Version5, byte(proto.MethodNoAuth)})
			}
			return err
		}
		ss.req = Request{User: ss.user, Client: ss.client, Command: req.Command, Target: req.Addr}
	}
	ss.hasReq = true
	early := h.release()
	endHandshake()

	if ss.hasHops && ss.hops == 0 {
		return ss.fail(errHopLimit) // whatever the command (the draft's "Chaining")
	}
	if ss.req.Command == proto.CommandConnect {
		// "127.0.0.1" sent as a name is 127.0.0.1: the guard and the
		// network rules see it so, and it is routed by nets.
		ss.req.Target = literalTarget(ss.req.Target)
	}
	switch cmd := ss.req.Command; {
	case cmd == proto.CommandTake && ss.ext:
		// The LISTEN that made the offer passed the policy; TAKE only
		// joins its caller, and must be the same user's.
		if err := ss.acquireOnce(); err != nil {
			return ss.fail(err)
		}
		if s.shutdown.Load() {
			return ss.fail(errShuttingDown) // no new relay during the drain
		}
		return ss.fail(ss.take(early))
	case cmd == proto.CommandConnect, cmd == proto.CommandBind, cmd == proto.CommandUDPAssociate:
	case cmd == commandTorResolve && !ss.ext:
		return ss.fail(ss.torResolve(ctx))
	default:
		return ss.fail(replyErr(proto.ReplyCommandNotSupported, errors.New("unknown command")))
	}
	if err := ss.checkPolicy(ctx); err != nil {
		return ss.fail(err)
	}
	if err := ss.acquireOnce(); err != nil {
		return ss.fail(err)
	}
	if s.shutdown.Load() {
		// Shutdown drains sessions that are relaying; one still in its
		// handshake does not start anything new.
		return ss.fail(errShuttingDown)
	}

	switch ss.req.Command {
	case proto.CommandConnect:
		if u := ss.st.upstreamFor(ss.req.Target); u != nil {
			err = ss.connectUpstream(u, early)
		} else {
			err = ss.connect(ctx, early)
		}
	case proto.CommandBind:
		err = ss.bind(ctx)
	case proto.CommandUDPAssociate:
		err = ss.udpAssociate(ctx)
	}
	return ss.fail(err)
}

// acquireOnce is acquire unless the session holds its places already.
func (ss *session) acquireOnce() error {
	if ss.counted {
		return nil
	}
	return ss.acquire()
}

// acquire takes the session's places in the overall, per-user and
// per-client counters.
func (ss *session) acquire() error {
	lim := ss.st.Limits.withDefaults()
	if err := ss.s.counts.acquire(lim, ss.user, ss.client.Addr().Unmap()); err != nil {
		code := proto.ReplyNotAllowed
		switch {
		case ss.ext:
			code = proto.ReplyQuotaExceeded
		case err == limitErr("sessions"):
			code = proto.ReplyGeneralFailure
		}
		return replyErr(code, err)
	}
	ss.counted = true
	return nil
}

// fail sends the failure reply for err if no reply was sent yet.
func (ss *session) fail(err error) error {
	if err == nil || ss.replied {
		return err
	}
	if ss.ext {
		ss.diag = diagnostic(err)
	}
	if werr := ss.writeReply(replyCode(err), proto.Addr{}); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

// negotiate reads the greeting, selects a method and authenticates. It
// reports whether the client negotiated the extensions (method 0xC6, then
// HELLO), in which case the connection is framed from here on.
func (ss *session) negotiate(ctx context.Context, h *hsReader) (ext bool, err error) {
	if tc, ok := ss.c.(*tls.Conn); ok {
		socks6, err := ss.tlsHandshake(tc)
		if err != nil {
			return false, err
		}
		if socks6 {
			// No greeting: HELLO comes first, with no Methods.
			return true, ss.hello(ctx, h, proto.Greeting{})
		}
	}
	g, err := next(h, proto.ParseGreeting)
	if err != nil {
		return false, err
	}
	if !ss.s.DisableExtensions && g.Offers(proto.MethodExtensions) {
		if _, err := ss.c.Write([]byte{proto.Version5, byte(proto.MethodExtensions)}); err != nil {
			return false, err
		}
		return true, ss.hello(ctx, h, g)
	}
	want := proto.MethodNoAuth
	if ss.st.Auth != nil {
		want = proto.MethodUserPass
	}
	if !g.Offers(want) {
		ss.c.Write([]byte{proto.Version5, byte(proto.MethodNoAcceptable)})
		return false, errors.New("no acceptable authentication method offered")
	}
	if want == proto.MethodNoAuth && h.w > h.r {
		// The client sent its request without waiting for the method
		// selection (pipelining, as socksify does): hold the selection
		// back and send it with the reply (writeReply), so that the
		// client wakes once, not twice. A client that waits gets it now.
		ss.selPending = true
		return false, nil
	}
	if _, err := ss.c.Write([]byte{proto.Version5, byte(want)}); err != nil {
		return false, err
	}
	if want == proto.MethodNoAuth {
		return false, nil
	}
	up, err := next(h, proto.ParseUserPassRequest)
	if err != nil {
		return false, err
	}
	if err := ss.st.Auth.Authenticate(ctx, up.Username, up.Password); err != nil {
		ss.user = up.Username
		ss.c.Write([]byte{proto.UserPassVersion, proto.UserPassFailure})
		return false, err
	}
	ss.user = up.Username
	_, err = ss.c.Write([]byte{proto.UserPassVersion, proto.UserPassSuccess})
	return false, err
}

// checkPolicy applies the policy and, for IP targets, the guard.
func (ss *session) checkPolicy(ctx context.Context) error {
	if p := ss.st.Policy; p != nil {
		r := &ss.req
		if r.Command == proto.CommandUDPAssociate {
			// DST.ADDR of UDP ASSOCIATE is where the client will send
			// from, not a destination; each datagram is checked later.
			q := *r
			q.Target, q.AnyTarget = proto.Addr{}, true
			r = &q
		}
		var err error
		if r.Command == proto.CommandConnect && r.Target.FQDN != "" && ss.st.upstreamFor(r.Target) != nil {
			err = ss.allowUnresolved(ctx, r) // an upstream resolves it
		} else {
			err = p.Allow(ctx, r)
		}
		if err != nil {
			return err
		}
	}
	if ss.req.Command == proto.CommandConnect && ss.req.Target.FQDN == "" {
		return ss.allowIP(ctx, ss.req.Target.IP)
	}
	return nil
}

// allowIP checks one address a request would reach against guard and
// policy.
func (ss *session) allowIP(ctx context.Context, ip netip.Addr) error {
	return ss.allowIPFor(ctx, &ss.req, ip)
}

// allowIPFor checks an address that request r would reach.
func (ss *session) allowIPFor(ctx context.Context, r *Request, ip netip.Addr) error {
	g := ss.st.Guard
	if g.Self == nil {
		g.Self = ss.s.selfAddrs
	}
	if err := g.check(ip); err != nil {
		return err
	}
	p := ss.st.Policy
	if p != nil {
		if err := p.AllowIP(ctx, r, ip); err != nil {
			return err
		}
	}
	// An address in a NAT64 prefix reaches, through the translator, the
	// IPv4 address it embeds: the guard and the policy judge that one
	// too, or 64:ff9b::a.b.c.d would reach what a.b.c.d may not.
	v4, ok := ss.s.nat64Embedded(ip)
	if !ok {
		return nil
	}
	if err := g.check(v4); err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	if r.Target.FQDN == "" {
		// An IP target: judge the request as if it had named v4.
		q := *r
		q.Target.IP = v4
		return p.Allow(ctx, &q)
	}
	return p.AllowIP(ctx, r, v4)
}

// wellKnownNAT64 is the Well-Known Prefix of RFC 6052.
var wellKnownNAT64 = netip.MustParsePrefix("64:ff9b::/96")

// nat64Embedded returns the IPv4 address that ip embeds if ip is in the
// Well-Known Prefix or in the gateway's NAT64 prefix: the configured one,
// or with DiscoverNAT64 the one the resolver has found already (a check
// never waits for discovery; a prefix found later applies from then on).
func (s *Server) nat64Embedded(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() || ip.Is4In6() {
		return netip.Addr{}, false
	}
	if v4, ok := resolver.Extract(wellKnownNAT64, ip); ok {
		return v4, true
	}
	prefix, ok := s.NAT64Prefix, s.NAT64Prefix.IsValid()
	if !ok && s.DiscoverNAT64 {
		if d, isR := s.resolver().(interface{ NAT64PrefixKnown() (netip.Prefix, bool) }); isR {
			prefix, ok = d.NAT64PrefixKnown()
		}
	}
	if ok && prefix.Contains(ip) {
		return resolver.Extract(prefix, ip)
	}
	return netip.Addr{}, false
}
