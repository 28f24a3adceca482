package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/socks6/socks6/proto"
)

// closeTimeout bounds writing a CLOSE frame before the connection is
// closed anyway.
const closeTimeout = time.Second

// errSessionClosed is the error of requests on a session that Close
// ended.
var errSessionClosed = fmt.Errorf("socks: session closed: %w", net.ErrClosed)

// A Session is a control connection with the extensions negotiated: the
// gateway selected method 0xC6 and answered HELLO with status ok. Control
// requests (RESOLVE and LISTEN now; UDP later) travel on it, several at
// a time, each with its own Request ID.
//
// A reader goroutine owns the receiving side. It hands each REPLY to the
// request with its Request ID, hands each ACCEPT_OFFER to the listener
// with its Listener ID, answers PING with PONG, skips frames of unknown
// types, and, on a malformed frame, sends CLOSE 0xEB and closes the
// connection (draft-socks6-extensions-00, "Error Handling"). When the
// connection ends, for whatever reason, every outstanding request fails
// with the reason, which Err also returns, and the session's listeners
// stop (draft-socks6-extensions-00, "Lifetime of Listeners").
//
// The methods of a Session are safe for concurrent use. The caller must
// call Close when done; until then the session holds the connection, the
// reader goroutine and the session's listeners.
type Session struct {
	c       net.Conn
	gateway string        // for error messages
	family  proto.Family  // FAMILY option of requests; 0 for none
	hops    uint8         // HOP_LIMIT option of RESOLVE; 0 for none
	timeout time.Duration // bounds writes whose ctx has no deadline
	ack     proto.HelloAck
	limit   int    // Max Frame Length, both ways
	taker   Dialer // opens the connections that TAKE offered callers
	// key is the session key of a TLS session (tls), with which TAKEs
	// prove that they come from this session's owner; it is erased
	// (under mu) when the session ends.
	key proto.SessionKey
	tls bool

	// wlock is held (a value in it) while a frame is written: a channel
	// rather than a mutex, so that a writer with a deadline can give up
	// waiting for it.
	wlock     chan struct{}
	closeSent bool  // CLOSE was written: nothing more may be (wlock)
	writeErr  error // a write failed, the stream is broken (wlock)

	mu     sync.Mutex
	nextID uint64
	calls  map[uint64]*call
	// prefetching counts the Prefetch requests not answered yet.
	prefetching int
	pings       map[[8]byte]chan struct{}
	// listeners holds every listener the gateway granted, by Listener
	// ID, including closed and abandoned ones, whose offers are
	// rejected: the protocol cannot close a single listener.
	listeners map[uint64]*Listener
	// assocs holds every UDP association the gateway granted, by
	// Association ID, closed ones included; nil until the first.
	assocs  map[uint64]*PacketConn
	closing bool  // Close was called
	err     error // why the session ended; set once, before done closes

	done chan struct{} // closed when the reader has ended and c is closed
}

// A call is an outstanding control request.
type call struct {
	cmd proto.Command
	ch  chan callResult // buffered: the reader never blocks on it
	// ln is the listener a LISTEN creates. The reader registers it when
	// the REPLY arrives, before it reads the next frame, which may be an
	// offer for it.
	ln *Listener
	// pc is the association a UDP request creates, registered like ln.
	pc *PacketConn
	// prefetch marks a Prefetch: nobody waits for its REPLY.
	prefetch bool
}

type callResult struct {
	rep proto.ExtReply
	err error
}

// OpenSession connects to the gateway and negotiates the extensions,
// which must be selected: it fails with ErrNoExtensions (or ErrDowngrade
// with ExtRequire) otherwise, and at once if Extensions is ExtOff.
//
// ctx bounds the handshake only. The caller must Close the session.
func (d *Dialer) OpenSession(ctx context.Context) (*Session, error) {
	if d.Extensions == ExtOff {
		return nil, d.opError("session", "tcp", "", fmt.Errorf("%w: Dialer.Extensions is off", ErrNoExtensions))
	}
	if err := d.checkCredentials(); err != nil {
		return nil, d.opError("session", "tcp", "", err)
	}
	ctx, cancel := d.handshakeContext(ctx)
	defer cancel()
	c, err := d.dialGateway(ctx)
	if err != nil {
		return nil, d.opError("session", "tcp", "", err)
	}
	stop := watch(ctx, c)
	neg, err := d.negotiate(c, false)
	if err != nil {
		err = ctxErr(ctx, err)
		stop()
		c.Close()
		return nil, d.opError("session", "tcp", "", err)
	}
	if err := stop(); err != nil {
		c.Close()
		return nil, d.opError("session", "tcp", "", err)
	}
	s := &Session{
		c:         c,
		gateway:   d.ProxyAddress,
		family:    d.Family,
		hops:      d.HopLimit,
		timeout:   d.timeout(),
		ack:       neg.ack,
		limit:     int(neg.ack.MaxFrameLen),
		key:       neg.key,
		tls:       neg.tls,
		taker:     *d,
		calls:     make(map[uint64]*call),
		pings:     make(map[[8]byte]chan struct{}),
		listeners: make(map[uint64]*Listener),
		done:      make(chan struct{}),
		wlock:     make(chan struct{}, 1),
	}
	// The gateway has just negotiated the extensions with these
	// credentials: the connections that take offered callers insist on
	// them (no fallback, draft-socks6-extensions-00 "Downgrade
	// Protection").
	s.taker.Extensions = ExtRequire
	go s.readLoop()
	return s, nil
}

// Resolve opens a session, resolves host with it and closes it. An IP
// address is returned as it is, without contacting the gateway. ctx
// bounds the whole call.
func (d *Dialer) Resolve(ctx context.Context, host string) ([]proto.ResolveAnswer, error) {
	if a, ok := literalAnswer(host); ok {
		return a, nil
	}
	// Timeout bounds the request too when ctx has no deadline (a
	// gateway that never answers must not hang the call).
	ctx, cancel := d.handshakeContext(ctx)
	defer cancel()
	s, err := d.OpenSession(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Resolve(ctx, host)
}

// Features returns the features the gateway offers to this session, from
// HELLO_ACK.
func (s *Session) Features() proto.Features { return s.ack.Features }

// ID returns the Session ID the gateway assigned in HELLO_ACK.
func (s *Session) ID() proto.SessionID { return s.ack.SessionID }

// Limits returns the LIMITS option of HELLO_ACK; ok is false if the
// gateway sent none.
func (s *Session) Limits() (l proto.Limits, ok bool) { return s.ack.Options.Limits() }

// ReservedPorts returns the listening ports the gateway reserves for this
// session's user, from HELLO_ACK's RESERVED_PORTS option; nil if there
// is none.
func (s *Session) ReservedPorts() []uint16 {
	p, _ := s.ack.Options.ReservedPorts()
	return p
}

// MaxFrameLen returns the Max Frame Length of HELLO_ACK: the longest
// frame value, DATAGRAM aside, that either side may send.
func (s *Session) MaxFrameLen() int { return s.limit }

// Done returns a channel that is closed when the session has ended: the
// gateway closed it, it failed, or Close was called.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns nil while the session runs, and why it ended afterwards: a
// *CloseError if the gateway sent CLOSE, an error wrapping net.ErrClosed
// after Close, or the read or protocol error that ended it.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Resolve asks the gateway for all addresses of host, with their TTLs,
// in the order the gateway would try them (RESOLVE,
// draft-socks6-extensions-00). The Dialer's Family, if set, goes with it
// as a FAMILY option. An IP address is returned as it is, with TTL
// math.MaxUint32. It fails with ErrNoExtensions if the gateway did not
// set the RESOLVE feature bit, and with a *ReplyError (inside a
// *net.OpError) if the gateway refuses, for example with
// proto.ReplyNameNotFound. An empty answer means that the name exists
// but has no address of the requested families.
//
// ctx bounds this call only. If it ends first, the request is abandoned
// and its late REPLY is dropped.
func (s *Session) Resolve(ctx context.Context, host string) ([]proto.ResolveAnswer, error) {
	if a, ok := literalAnswer(host); ok {
		return a, nil
	}
	req, err := s.resolveRequest(host)
	if err != nil {
		return nil, s.opError("resolve", host, err)
	}
	rep, err := s.roundTrip(ctx, req, nil)
	if err != nil {
		return nil, s.opError("resolve", host, err)
	}
	if rep.Code != proto.ReplySucceeded {
		diag, _ := rep.Options.Diagnostic()
		return nil, s.opError("resolve", host, &ReplyError{Command: proto.CommandResolve, Target: host, Code: rep.Code, Diagnostic: diag})
	}
	if rep.Answers == nil {
		return []proto.ResolveAnswer{}, nil
	}
	return rep.Answers, nil
}

// MaxPrefetches is how many Prefetch requests a session keeps
// unanswered at most; Prefetch refuses more with ErrPrefetchBusy. It
// bounds what the gateway may leave unanswered, and keeps the bytes in
// flight far below a socket buffer, so that a Prefetch's write does not
// wait for the gateway to read.
const MaxPrefetches = 32

// Prefetch asks the gateway to resolve host (RESOLVE) and returns as soon
// as the request is written, without waiting for the answer, which is
// dropped when it comes. A CONNECT to host that follows then finds the
// name in the gateway's cache, or joins its lookup under way: the
// gateway's DNS round trip overlaps whatever the caller does meanwhile.
// It is meant for a caller that must not wait, such as a DNS server that
// hands out a name's address before anything connects to it.
//
// An IP address literal needs no lookup and sends nothing. Prefetch
// returns an error wrapping ErrNoExtensions if the session lacks the
// RESOLVE feature, ErrPrefetchBusy if MaxPrefetches are unanswered, and
// the session's error once it has ended. A write that fails ends the
// session, as every failed write does.
func (s *Session) Prefetch(host string) error {
	if _, ok := literalAnswer(host); ok {
		return nil
	}
	req, err := s.resolveRequest(host)
	if err != nil {
		return s.opError("prefetch", host, err)
	}
	s.mu.Lock()
	switch {
	case s.err != nil || s.closing:
		err := s.endErrLocked()
		s.mu.Unlock()
		return s.opError("prefetch", host, err)
	case s.prefetching >= MaxPrefetches:
		s.mu.Unlock()
		return s.opError("prefetch", host, ErrPrefetchBusy)
	}
	s.nextID++
	req.ID = s.nextID
	s.calls[req.ID] = &call{cmd: req.Command, ch: make(chan callResult, 1), prefetch: true}
	s.prefetching++
	s.mu.Unlock()
	if err := s.writeAsync(req); err != nil {
		s.mu.Lock()
		if _, ok := s.calls[req.ID]; ok {
			delete(s.calls, req.ID)
			s.prefetching--
		}
		s.mu.Unlock()
		return s.opError("prefetch", host, err)
	}
	return nil
}

// resolveRequest builds the RESOLVE of host (a name, not a literal) for
// Resolve and Prefetch; its ID is set when it is sent.
func (s *Session) resolveRequest(host string) (proto.ExtRequest, error) {
	if !s.ack.Features.Has(proto.FeatureResolve) {
		return proto.ExtRequest{}, fmt.Errorf("%w: no RESOLVE feature bit", ErrNoExtensions)
	}
	name, err := fqdn(host)
	if err != nil {
		return proto.ExtRequest{}, err
	}
	req := proto.ExtRequest{Command: proto.CommandResolve, Addr: proto.Addr{FQDN: name}}
	if s.family != 0 {
		req.Options = append(req.Options, proto.FamilyOption(s.family))
	}
	if s.hops != 0 {
		req.Options = append(req.Options, proto.HopLimitOption(s.hops))
	}
	return req, nil
}

// literalAnswer returns the answer for an IP address, which needs no
// lookup.
func literalAnswer(host string) ([]proto.ResolveAnswer, bool) {
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return nil, false
	}
	return []proto.ResolveAnswer{{TTL: math.MaxUint32, Addr: ip}}, true
}

// Ping sends a PING and waits for the matching PONG; it returns the round
// trip time. ctx bounds the wait.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	var p proto.Ping
	rand.Read(p.Opaque[:])
	ch := make(chan struct{})
	s.mu.Lock()
	if s.err != nil || s.closing {
		err := s.endErrLocked()
		s.mu.Unlock()
		return 0, s.opError("ping", "", err)
	}
	s.pings[p.Opaque] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.pings, p.Opaque)
		s.mu.Unlock()
	}
	start := time.Now()
	if err := s.write(ctx, p); err != nil {
		forget()
		return 0, s.opError("ping", "", err)
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		forget()
		return 0, s.opError("ping", "", ctx.Err())
	case <-s.done:
		forget()
		return 0, s.opError("ping", "", s.Err())
	}
}

// Close ends the session: it sends CLOSE with reason 0x00, closes the
// connection and waits for the reader goroutine to end. Outstanding
// requests fail. The session's listeners close too: the gateway closes
// them with the session, and Close closes the connections they took that
// Accept has not returned; connections already accepted are independent
// and stay open. Closing a session that has already ended (the gateway
// closed it) frees it and returns nil; so does a second Close.
func (s *Session) Close() error {
	s.mu.Lock()
	first := !s.closing
	s.closing = true
	ended := s.err != nil
	s.mu.Unlock()
	var err error
	if first && !ended {
		_, err = s.writeClose(proto.ReplySucceeded)
	}
	if cerr := s.c.Close(); err == nil && first && !ended && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	<-s.done
	s.mu.Lock()
	lns := make([]*Listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		lns = append(lns, l)
	}
	s.mu.Unlock()
	for _, l := range lns {
		l.shutdown(false)
	}
	if err != nil {
		return s.opError("close", "", err)
	}
	return nil
}

// endErrLocked returns the error for a request on a session that has
// ended or is closing.
func (s *Session) endErrLocked() error {
	if s.err != nil {
		return s.err
	}
	return errSessionClosed
}

// roundTrip sends req with a fresh Request ID and waits for its REPLY.
// For LISTEN, ln is the listener that a successful REPLY registers;
// otherwise nil.
func (s *Session) roundTrip(ctx context.Context, req proto.ExtRequest, ln *Listener) (proto.ExtReply, error) {
	return s.roundTripCall(ctx, req, &call{cmd: req.Command, ln: ln})
}

// roundTripCall is roundTrip for a call the caller has filled in.
func (s *Session) roundTripCall(ctx context.Context, req proto.ExtRequest, cl *call) (proto.ExtReply, error) {
	cl.ch = make(chan callResult, 1)
	s.mu.Lock()
	if s.err != nil || s.closing {
		err := s.endErrLocked()
		s.mu.Unlock()
		return proto.ExtReply{}, err
	}
	// IDs are never reused on the connection, so a late REPLY to an
	// abandoned request cannot be mistaken for the answer to a new one.
	s.nextID++
	req.ID = s.nextID
	s.calls[req.ID] = cl
	s.mu.Unlock()

	if err := s.write(ctx, req); err != nil {
		s.mu.Lock()
		delete(s.calls, req.ID)
		s.mu.Unlock()
		return proto.ExtReply{}, err
	}
	select {
	case r := <-cl.ch:
		return r.rep, r.err
	case <-ctx.Done():
		// The entry stays, so that the reader recognises the late
		// REPLY and drops it into the buffered channel.
		return proto.ExtReply{}, ctx.Err()
	}
}

// write sends m as one frame. A write that fails may have sent part of
// the frame, so it ends the session.
func (s *Session) write(ctx context.Context, m proto.Message) error {
	if err := ctx.Err(); err != nil {
		return err // nothing is sent for a call that has ended already
	}
	b, err := encodeFrame(m, s.limit)
	if err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = s.writeDeadline()
	}
	if err := s.writeFrame(b, deadline, false); err != nil {
		return ctxErr(ctx, err)
	}
	return nil
}

// writeAsync sends m as one frame from a goroutine that no context
// bounds (the reader, a listener's takes). A failure ends the session,
// which reports it; the caller has nothing more to do about it.
func (s *Session) writeAsync(m proto.Message) error {
	b, err := encodeFrame(m, s.limit)
	if err != nil {
		return err
	}
	return s.writeFrame(b, s.writeDeadline(), false)
}

// writeDeadline is the deadline of a write that no context bounds.
func (s *Session) writeDeadline() time.Time {
	if s.timeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(s.timeout)
}

// writeFrame writes an encoded frame with a write deadline (zero for
// none). last marks a CLOSE, after which nothing may be written.
func (s *Session) writeFrame(b []byte, deadline time.Time, last bool) error {
	if !s.lockWrite(deadline) {
		// Another frame held the stream until the deadline: nothing
		// went out, the stream is intact, and only this call fails.
		return fmt.Errorf("socks: writing to the gateway: %w", os.ErrDeadlineExceeded)
	}
	defer s.unlockWrite()
	return s.writeFrameLocked(b, deadline, last)
}

// lockWrite takes the stream for one frame, waiting until deadline at
// most (zero: no limit); it reports whether it did.
func (s *Session) lockWrite(deadline time.Time) bool {
	select {
	case s.wlock <- struct{}{}:
		return true
	default:
	}
	if deadline.IsZero() {
		s.wlock <- struct{}{}
		return true
	}
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case s.wlock <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (s *Session) unlockWrite() { <-s.wlock }

// writeFrameLocked is writeFrame for a caller that holds the stream
// (lockWrite).
func (s *Session) writeFrameLocked(b []byte, deadline time.Time, last bool) error {
	if s.writeErr != nil {
		return s.writeErr
	}
	if s.closeSent {
		return errSessionClosed
	}
	s.c.SetWriteDeadline(deadline)
	n, err := s.c.Write(b)
	if err != nil && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		// Nothing went out (the deadline had passed, or the send buffer
		// stayed full until it did): the stream is intact, and only this
		// call fails.
		return fmt.Errorf("socks: writing to the gateway: %w", err)
	}
	s.closeSent = last
	if err != nil {
		// Part of a frame may have gone out: the framing is lost.
		s.writeErr = fmt.Errorf("socks: writing to the gateway: %w", err)
		s.c.Close() // the reader ends the session
		return s.writeErr
	}
	return nil
}

// writeClose sends CLOSE with reason; no frame may follow it. It waits
// at most closeTimeout for a write in progress, and gives up (sent false)
// if that write still holds the stream then: the gateway has stopped
// reading, CLOSE could not go out anyway, and the caller's close of the
// connection ends the stuck write too.
func (s *Session) writeClose(reason proto.ReplyCode) (sent bool, err error) {
	b, err := encodeFrame(proto.Close{Reason: reason}, s.limit)
	if err != nil {
		return false, err
	}
	deadline := time.Now().Add(closeTimeout)
	if !s.lockWrite(deadline) {
		return false, nil
	}
	defer s.unlockWrite()
	return true, s.writeFrameLocked(b, deadline, true)
}

// readLoop reads and dispatches frames until the connection fails, then
// ends the session.
func (s *Session) readLoop() {
	br := bufio.NewReader(s.c)
	var err error
	for err == nil {
		var f proto.Frame
		if f, err = readFrame(br, s.limit); err == nil {
			err = s.handle(f)
		}
	}
	s.end(err)
}

// handle acts on one frame from the gateway. An error ends the session.
func (s *Session) handle(f proto.Frame) error {
	switch f.Type {
	case proto.FrameReply:
		return s.handleReply(f)
	case proto.FramePing:
		p, err := proto.ParsePing(f.Value)
		if err != nil {
			return malformed("PING", err)
		}
		return s.writeAsync(proto.Pong(p))
	case proto.FramePong:
		p, err := proto.ParsePong(f.Value)
		if err != nil {
			return malformed("PONG", err)
		}
		// A PONG that matches no outstanding PING is ignored.
		s.mu.Lock()
		if ch, ok := s.pings[p.Opaque]; ok {
			delete(s.pings, p.Opaque)
			close(ch)
		}
		s.mu.Unlock()
		return nil
	case proto.FrameClose:
		return closeError(f)
	case proto.FrameRoutes:
		// Route advertisement is not used yet; a well-formed ROUTES is
		// skipped.
		return checkFrame(f)
	case proto.FrameAcceptOffer:
		return s.handleOffer(f)
	case proto.FrameDatagram:
		return s.handleDatagram(f)
	case proto.FrameStreamAck:
		// This needs a resumable stream, which this session never holds.
		return wrongFrame(f, "on a session without resumable streams")
	}
	if f.Type <= lastKnownFrame {
		// HELLO, REQUEST, REJECT_OFFER travel the other way; a second
		// HELLO_ACK is malformed.
		return wrongFrame(f, "from the gateway on a control connection")
	}
	return nil // unknown types, GREASE included, are skipped
}

// handleReply hands a REPLY to the request with its Request ID.
func (s *Session) handleReply(f proto.Frame) error {
	id, _, err := proto.ParseVarint(f.Value)
	if err != nil {
		return malformed("REPLY", err)
	}
	s.mu.Lock()
	cl, ok := s.calls[id]
	delete(s.calls, id)
	if ok && cl.prefetch {
		s.prefetching--
	}
	s.mu.Unlock()
	if !ok {
		return malformed("REPLY", fmt.Errorf("request ID %d is not outstanding: %w", id, proto.ErrMalformed))
	}
	rep, err := proto.ParseExtReply(f.Value, cl.cmd)
	if err == nil && cl.ln != nil && rep.Code == proto.ReplySucceeded {
		err = s.addListener(cl.ln, rep)
	}
	if err == nil && cl.pc != nil && rep.Code == proto.ReplySucceeded {
		err = s.addAssoc(cl.pc, rep)
	}
	if err != nil {
		err = malformed("REPLY", err)
		cl.ch <- callResult{err: err}
		return err
	}
	cl.ch <- callResult{rep: rep}
	return nil
}

// addListener registers the listener that a successful REPLY to LISTEN
// created, so that offers for it, which may follow at once, find it.
func (s *Session) addListener(l *Listener, rep proto.ExtReply) error {
	if rep.Addr.FQDN != "" {
		return fmt.Errorf("LISTEN bound to a domain name: %w", proto.ErrMalformed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.listeners[rep.ListenerID]; dup {
		return fmt.Errorf("listener ID %d is already in use: %w", rep.ListenerID, proto.ErrMalformed)
	}
	l.granted(rep)
	s.listeners[rep.ListenerID] = l
	return nil
}

// addAssoc registers the association that a successful REPLY to UDP
// created, so that its datagrams find it.
func (s *Session) addAssoc(pc *PacketConn, rep proto.ExtReply) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.assocs[rep.AssocID]; dup {
		return fmt.Errorf("association ID %d is already in use: %w", rep.AssocID, proto.ErrMalformed)
	}
	if s.assocs == nil {
		s.assocs = make(map[uint64]*PacketConn)
	}
	pc.granted(rep)
	s.assocs[rep.AssocID] = pc
	return nil
}

// handleDatagram hands a DATAGRAM to its association. One for an
// association the session never had is malformed; one for a closed
// association is dropped.
func (s *Session) handleDatagram(f proto.Frame) error {
	g, err := proto.ParseDatagram(f.Value)
	if err != nil {
		return malformed("DATAGRAM", err)
	}
	if g.Addr.FQDN != "" {
		return malformed("DATAGRAM", fmt.Errorf("source address is a domain name: %w", proto.ErrMalformed))
	}
	s.mu.Lock()
	pc, ok := s.assocs[g.AssocID]
	s.mu.Unlock()
	if !ok {
		return wrongFrame(f, fmt.Sprintf("for association ID %d, which the gateway never granted", g.AssocID))
	}
	pc.deliver(g)
	return nil
}

// handleOffer hands an ACCEPT_OFFER to its listener, or rejects it at
// once if the listener takes no more offers. An offer for a listener the
// gateway never granted is malformed.
func (s *Session) handleOffer(f proto.Frame) error {
	o, err := proto.ParseAcceptOffer(f.Value)
	if err != nil {
		return malformed("ACCEPT_OFFER", err)
	}
	if o.Caller.FQDN != "" {
		return malformed("ACCEPT_OFFER", fmt.Errorf("caller address is a domain name: %w", proto.ErrMalformed))
	}
	s.mu.Lock()
	l := s.listeners[o.ListenerID]
	s.mu.Unlock()
	if l == nil {
		return malformed("ACCEPT_OFFER", fmt.Errorf("listener ID %d is unknown: %w", o.ListenerID, proto.ErrMalformed))
	}
	if l.enqueue(o, time.Now()) {
		return nil
	}
	return s.writeAsync(proto.RejectOffer{Token: o.Token})
}

// end runs once, when the reader stops: it answers a protocol error with
// CLOSE 0xEB, closes the connection, records why the session ended and
// fails every outstanding request with it.
func (s *Session) end(err error) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if isProtocolError(err) && !closing {
		s.writeClose(proto.ReplyMalformedRequest)
	}
	s.c.Close()

	switch {
	case closing:
		err = errSessionClosed
	case errors.Is(err, net.ErrClosed):
		// A failed write closed the connection under the reader.
		s.lockWrite(time.Time{})
		if s.writeErr != nil {
			err = s.writeErr
		}
		s.unlockWrite()
	case !isProtocolError(err):
		var ce *CloseError
		if !errors.As(err, &ce) {
			err = fmt.Errorf("socks: control connection to the gateway ended: %w", err)
		}
	}
	s.mu.Lock()
	s.err = err
	clear(s.key[:]) // the session is over: its key goes (draft, "Session Keys")
	calls := s.calls
	s.calls = nil
	lns := make([]*Listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		lns = append(lns, l)
	}
	s.mu.Unlock()
	for _, cl := range calls {
		cl.ch <- callResult{err: err}
	}
	for _, l := range lns {
		l.sessionEnded(err)
	}
	close(s.done)
}

func (s *Session) opError(op, target string, err error) error {
	e := &net.OpError{Op: "socks6 " + op, Net: "tcp", Source: sockAddr{"tcp", s.gateway}, Err: err}
	if target != "" {
		e.Addr = sockAddr{"tcp", target}
	}
	return e
}
