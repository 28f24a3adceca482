package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socks6/socks6/proto"
)

// UDP in the stream (command UDP, DATAGRAM frames): limits.
const (
	// maxStreamAssocs caps the associations of one control connection
	// (advertised in LIMITS); more are answered with QuotaExceeded.
	maxStreamAssocs = 16
	// streamAssocQueue and streamAssocQueueBytes bound the datagrams to
	// not yet admitted destinations (a name to resolve, a policy to ask)
	// that wait for the association's admitting goroutine; more are
	// dropped, so that a slow lookup never stalls the control connection
	// and a connection's associations hold at most 16 × 256 KiB.
	streamAssocQueue      = 64
	streamAssocQueueBytes = 256 << 10
	// streamDownQueueBytes bounds the DATAGRAM frames from the outside
	// that wait for the control connection, per connection; more are
	// dropped (the draft's DATAGRAM section: drop rather than queue
	// behind a full connection).
	streamDownQueueBytes = 256 << 10
	// defaultStreamIdle is an association's idle timeout unless the
	// gateway's idle timeout is set longer or the client asks for less
	// (the draft's default; associations need one, since the protocol
	// cannot end a single association).
	defaultStreamIdle = 300 * time.Second
	// minStreamIdle is the shortest idle timeout a client may ask for.
	minStreamIdle = time.Second
	// admittedFor bounds how long an admitted destination is reused
	// without asking the policy (which a reload may change) and, for a
	// name, the resolver again (at most the answer's TTL).
	admittedFor = time.Minute
)

// errTooManyAssocs refuses an association over maxStreamAssocs.
var errTooManyAssocs = replyErr(proto.ReplyQuotaExceeded, errors.New("too many UDP associations on this connection"))

// A streamAssoc is one association of UDP in the stream: one UDP socket
// (dual-stack where the host has IPv6) whose datagrams travel to and from
// the client as DATAGRAM frames on the control connection. It maps like
// an endpoint-independent NAT (every destination sees the same port) and
// filters like an address-and-port-dependent one: a datagram from the
// outside reaches the client only from an address and port the
// association sent to within its idle timeout.
type streamAssoc struct {
	ss    *session
	id    uint64
	conn  *net.UDPConn
	idle  time.Duration // always set: the protocol cannot end one association alone
	ctx   context.Context
	end   context.CancelFunc
	queue chan streamDatagram // to admit
	wg    sync.WaitGroup
	start time.Time

	last atomic.Int64 // unix ns of the last datagram either way

	mu      sync.Mutex
	peers   map[netip.AddrPort]int64 // destinations sent to → unix ns
	allowed map[proto.Addr]admitted  // admitted destinations
	queued  int                      // payload bytes in queue

	fam proto.Family // FAMILY of the request: for destinations given as names

	up, down, upN, downN, dropped, droppedDown atomic.Int64
}

// An admitted destination: where datagrams to it go, until when.
type admitted struct {
	dst   netip.AddrPort
	until int64 // unix ns
}

// A streamDatagram is a client's datagram waiting to be admitted.
type streamDatagram struct {
	to      proto.Addr
	payload []byte
}

// serveUDP answers a REQUEST with command UDP: it opens an association
// and adds it to assocs. The REPLY carries the association ID, the idle
// timeout and the association's external addresses.
func (ss *session) serveUDP(req proto.ExtRequest, assocs map[uint64]*streamAssoc) proto.ExtReply {
	reply := proto.ExtReply{ID: req.ID, Command: proto.CommandUDP}
	a, err := ss.openStreamAssoc(req, assocs)
	if err != nil {
		reply.Code = replyCode(err)
		reply.Options = proto.Options{proto.DiagnosticOption(diagnostic(err))}
		ss.auditAssoc(nil, req, err)
		return reply
	}
	reply.AssocID = a.id
	reply.Options = append(reply.Options, proto.IdleTimeoutOption(a.idle))
	for _, pub := range ss.assocPublicAddrs(a) {
		if o, err := proto.PublicAddrOption(proto.AddrFromAddrPort(pub)); err == nil {
			reply.Options = append(reply.Options, o)
		}
	}
	return reply
}

func (ss *session) openStreamAssoc(req proto.ExtRequest, assocs map[uint64]*streamAssoc) (*streamAssoc, error) {
	s := ss.s
	// The Address of a UDP request is the zero address, and the gateway
	// ignores it (the draft's REQUEST section).
	if s.shutdown.Load() {
		return nil, errShuttingDown
	}
	if len(assocs) >= maxStreamAssocs {
		return nil, errTooManyAssocs
	}
	if p := ss.st.Policy; p != nil {
		// The rules for "udp" govern both kinds of association; each
		// datagram's destination is checked when it is sent.
		r := Request{User: ss.user, Client: ss.client, Command: proto.CommandUDPAssociate, AnyTarget: true}
		ctx, cancel := context.WithTimeout(s.baseCtx, s.handshakeTimeout())
		err := p.Allow(ctx, &r)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	conn, err := s.listenUDP(s.baseCtx, "udp")
	if err != nil {
		return nil, replyErr(proto.ReplyGeneralFailure, err)
	}
	if rc, err := conn.SyscallConn(); err == nil {
		rc.Control(preferPublicSource) // the source PUBLIC_ADDR names
	}
	idle := max(s.idleTimeout(), defaultStreamIdle)
	if d, ok := req.Options.IdleTimeout(); ok && d > 0 {
		idle = min(idle, max(d, minStreamIdle))
	}
	if ss.dgw == nil {
		ss.dgw = newDgramWriter(ss)
	}
	ss.nextAssocID++
	ctx, cancel := context.WithCancel(s.baseCtx)
	a := &streamAssoc{
		ss: ss, id: ss.nextAssocID, conn: conn, idle: idle, ctx: ctx, end: cancel,
		queue: make(chan streamDatagram, streamAssocQueue), start: time.Now(),
		peers: make(map[netip.AddrPort]int64), allowed: make(map[proto.Addr]admitted),
	}
	a.fam, _ = req.Options.Family()
	s.addAssocPort(a.port(), 1)
	a.touch()
	assocs[a.id] = a
	a.wg.Add(2)
	go a.fromOutside()
	go a.admitLoop()
	return a, nil
}

// assocPublicAddrs are the association's external addresses with its
// port: for a socket on the unspecified address (the usual), those of
// each family it serves (see externalAddrs); for one a ListenUDP hook
// bound to an address, the configured public addresses of its family or
// else that address.
func (ss *session) assocPublicAddrs(a *streamAssoc) []netip.AddrPort {
	v4, v6, unspecified := boundFamilies(a.conn)
	if unspecified {
		return ss.externalAddrs(a.port(), v4, v6)
	}
	var out []netip.AddrPort
	for _, p := range ss.st.Listen.PublicAddrs {
		if (p.Is4() && v4) || (p.Is6() && v6) {
			out = append(out, netip.AddrPortFrom(p, a.port()))
		}
	}
	if len(out) == 0 {
		out = append(out, netip.AddrPortFrom(addrPortOf(a.conn.LocalAddr()).Addr().Unmap(), a.port()))
	}
	return out
}

func (a *streamAssoc) touch() { a.last.Store(time.Now().UnixNano()) }

// port is the association's external port.
func (a *streamAssoc) port() uint16 { return addrPortOf(a.conn.LocalAddr()).Port() }

// addAssocPort counts an association on port in (n 1) or out (n -1).
func (s *Server) addAssocPort(port uint16, n int) {
	s.assocMu.Lock()
	defer s.assocMu.Unlock()
	if s.assocPorts == nil {
		s.assocPorts = make(map[uint16]int)
	}
	if s.assocPorts[port] += n; s.assocPorts[port] <= 0 {
		delete(s.assocPorts, port)
	}
}

// hairpin reports whether dst is the external address of an in-stream
// UDP association on this host: a loopback or interface address of the
// gateway, and an association's port. The draft asks a gateway to
// forward between associations through their external addresses
// (hairpinning), which the guard would otherwise refuse as the
// gateway's own address. The kernel delivers such a datagram locally,
// and the other association's filtering still applies.
func (s *Server) hairpin(dst netip.AddrPort) bool {
	s.assocMu.Lock()
	_, ok := s.assocPorts[dst.Port()]
	s.assocMu.Unlock()
	if !ok {
		return false
	}
	ip := dst.Addr().Unmap()
	if ip.IsLoopback() {
		return true
	}
	for _, a := range s.selfAddrs() {
		if a == ip {
			return true
		}
	}
	return false
}

// allowDest checks a destination address of the association against
// guard and policy; an association's external address on this host
// needs the policy only (hairpin).
func (a *streamAssoc) allowDest(ctx context.Context, r *Request, ip netip.Addr, port uint16) error {
	if a.ss.s.hairpin(netip.AddrPortFrom(ip, port)) {
		if p := a.ss.st.Policy; p != nil {
			return p.AllowIP(ctx, r, ip)
		}
		return nil
	}
	return a.ss.allowIPFor(ctx, r, ip)
}

// expired reports whether no datagram has passed for the idle timeout.
func (a *streamAssoc) expired(now time.Time) bool {
	return now.Sub(time.Unix(0, a.last.Load())) >= a.idle
}

// close ends the association: its socket closes, its goroutines end, and
// its audit record is written with why it ended (nil: the connection
// ended in order).
func (a *streamAssoc) close(why error) {
	a.end()
	a.ss.s.addAssocPort(a.port(), -1)
	a.conn.Close()
	a.wg.Wait()
	a.ss.auditAssoc(a, proto.ExtRequest{}, why)
}

// send handles a DATAGRAM from the client on the control loop: a
// destination admitted before is sent to at once; any other waits for
// the admitting goroutine, or is dropped when too many wait.
func (a *streamAssoc) send(g proto.Datagram) {
	if len(g.Payload) > maxPayloadFor(g.Addr) {
		a.dropped.Add(1)
		return
	}
	now := time.Now().UnixNano()
	a.mu.Lock()
	ad, ok := a.allowed[g.Addr]
	if ok && now < ad.until {
		a.mu.Unlock()
		a.sendTo(ad.dst, g.Payload)
		return
	}
	if a.queued+len(g.Payload) > streamAssocQueueBytes {
		a.mu.Unlock()
		a.dropped.Add(1)
		return
	}
	a.queued += len(g.Payload)
	a.mu.Unlock()
	select {
	case a.queue <- streamDatagram{to: g.Addr, payload: append([]byte(nil), g.Payload...)}:
	default:
		a.mu.Lock()
		a.queued -= len(g.Payload)
		a.mu.Unlock()
		a.dropped.Add(1)
	}
}

// maxPayloadFor is the largest UDP payload to an address: 65507 bytes
// over IPv4, 65527 over IPv6 (no jumbograms), 65507 for a name, whose
// address is not known yet.
func maxPayloadFor(t proto.Addr) int {
	if t.FQDN == "" && t.IP.Is6() && !t.IP.Is4In6() {
		return 65527
	}
	return 65507
}

// sendTo sends one datagram and remembers dst as a peer whose replies
// may come back.
func (a *streamAssoc) sendTo(dst netip.AddrPort, payload []byte) {
	a.mu.Lock()
	if _, ok := a.peers[dst]; !ok && len(a.peers) >= maxUDPPeers {
		a.sweepPeersLocked(time.Now())
	}
	if _, ok := a.peers[dst]; ok || len(a.peers) < maxUDPPeers {
		a.peers[dst] = time.Now().UnixNano()
	}
	a.mu.Unlock()
	to := dst
	if to.Addr().Is4() {
		// The socket is dual-stack: IPv4 goes as IPv4-mapped.
		to = netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port())
	}
	if _, err := a.conn.WriteToUDPAddrPort(payload, to); err != nil {
		a.dropped.Add(1)
		return
	}
	a.up.Add(int64(len(payload)))
	a.upN.Add(1)
	a.touch()
}

// sweepPeersLocked forgets peers not sent to within the idle timeout
// (all of them if the table is still full).
func (a *streamAssoc) sweepPeersLocked(now time.Time) {
	for p, t := range a.peers {
		if now.Sub(time.Unix(0, t)) >= a.idle {
			delete(a.peers, p)
		}
	}
	if len(a.peers) >= maxUDPPeers {
		clear(a.peers)
	}
}

// isPeer reports whether src may send to the client: the association
// sent to it within the idle timeout.
func (a *streamAssoc) isPeer(src netip.AddrPort, now time.Time) bool {
	a.mu.Lock()
	t, ok := a.peers[src]
	a.mu.Unlock()
	return ok && now.Sub(time.Unix(0, t)) < a.idle
}

// admitLoop admits the destinations of queued datagrams (policy, guard,
// resolution) and sends them.
func (a *streamAssoc) admitLoop() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case d := <-a.queue:
			now := time.Now()
			a.mu.Lock()
			a.queued -= len(d.payload)
			ad, ok := a.allowed[d.to]
			a.mu.Unlock()
			dst := ad.dst
			if !ok || now.UnixNano() >= ad.until {
				var ttl time.Duration
				if dst, ttl, ok = a.admit(d.to); !ok {
					a.dropped.Add(1)
					continue
				}
				a.mu.Lock()
				if len(a.allowed) >= maxUDPPeers {
					clear(a.allowed)
				}
				a.allowed[d.to] = admitted{dst: dst, until: now.Add(ttl).UnixNano()}
				a.mu.Unlock()
			}
			if len(d.payload) > maxPayloadFor(proto.AddrFromAddrPort(dst)) {
				a.dropped.Add(1)
				continue
			}
			a.sendTo(dst, d.payload)
		}
	}
}

// admit resolves a destination and checks it against guard and policy,
// as UDP ASSOCIATE does (the rules for "udp"). It returns the address
// and how long the decision may be reused.
func (a *streamAssoc) admit(t proto.Addr) (netip.AddrPort, time.Duration, bool) {
	ss := a.ss
	ctx, cancel := context.WithTimeout(a.ctx, ss.s.dialTimeout())
	defer cancel()
	r := Request{User: ss.user, Client: ss.client, Command: proto.CommandUDPAssociate, Target: t}
	if p := ss.st.Policy; p != nil {
		if err := p.Allow(ctx, &r); err != nil {
			return netip.AddrPort{}, 0, false
		}
	}
	var ips []netip.Addr
	ttl := admittedFor
	if t.FQDN == "" {
		ip := t.IP.Unmap()
		if err := a.allowDest(ctx, &r, ip, t.Port); err != nil {
			return netip.AddrPort{}, 0, false
		}
		ips = []netip.Addr{ip}
	} else {
		ans, err := ss.s.resolveAll(ctx, t.FQDN, a.fam)
		if err != nil {
			return netip.AddrPort{}, 0, false
		}
		for _, x := range ans {
			if ip := x.Addr.Unmap(); a.allowDest(ctx, &r, ip, t.Port) == nil {
				ips = append(ips, ip)
				// The draft: cache a name's answer for its TTL at most.
				ttl = min(ttl, max(time.Duration(x.TTL)*time.Second, time.Second))
				break
			}
		}
	}
	if len(ips) == 0 || t.Port == 0 {
		return netip.AddrPort{}, 0, false
	}
	return netip.AddrPortFrom(ips[0], t.Port), ttl, true
}

// fromOutside reads datagrams from the outside and passes those from
// peers to the client as DATAGRAM frames, through the connection's
// dgramWriter, which drops them when too many wait.
func (a *streamAssoc) fromOutside() {
	defer a.wg.Done()
	// The frame is built in place: type, length and association ID
	// (at most 8+8+8 bytes), ATYP, IPv6 address and port before the
	// payload, which is read at a fixed offset and never copied.
	const room = 8 + 8 + 8 + 1 + 16 + 2
	buf := make([]byte, room+maxUDPPayload)
	var hdr [room]byte
	for {
		n, src, err := a.conn.ReadFromUDPAddrPort(buf[room:])
		if err != nil {
			return
		}
		now := time.Now()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if !a.isPeer(src, now) {
			continue
		}
		h := appendDatagramHeader(hdr[:0], a.id, src, n)
		start := room - len(h)
		copy(buf[start:room], h)
		if !a.ss.dgw.send(buf[start : room+n]) {
			a.droppedDown.Add(1)
			continue
		}
		a.down.Add(int64(n))
		a.downN.Add(1)
		a.touch()
	}
}

// appendDatagramHeader appends the header of a DATAGRAM frame from src
// with an n-byte payload: type, length, association ID, address.
func appendDatagramHeader(b []byte, id uint64, src netip.AddrPort, n int) []byte {
	// Neither can fail: the ID is below MaxVarint and the address is IP.
	addr, _ := proto.AddrFromAddrPort(src).AppendBinary(nil)
	idb, _ := proto.AppendVarint(nil, id)
	b, _ = proto.AppendVarint(b, uint64(proto.FrameDatagram))
	b, _ = proto.AppendVarint(b, uint64(len(idb)+len(addr)+n))
	b = append(b, idb...)
	return append(b, addr...)
}

// A dgramWriter writes the DATAGRAM frames of a connection's associations
// to the client, in order, from a queue of at most streamDownQueueBytes:
// a datagram that finds it full is dropped, so a congested connection
// delays datagrams by that much at most, and an association's reader
// never waits for the connection.
type dgramWriter struct {
	ss   *session
	wake chan struct{} // buffered: a frame was queued
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	q       [][]byte
	bytes   int
	writing bool // a frame taken from q, or sent at once, is being written
	broken  bool // a write failed: the connection is closed
}

func newDgramWriter(ss *session) *dgramWriter {
	w := &dgramWriter{ss: ss, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.wg.Add(1)
	go w.run()
	return w
}

// send writes frame at once if nothing is queued or being written and
// the connection is free (no hand-off to the writer goroutine: the
// common case), else queues a copy; it reports false if the frame was
// dropped.
func (w *dgramWriter) send(frame []byte) bool {
	w.mu.Lock()
	if w.broken {
		w.mu.Unlock()
		return false
	}
	if len(w.q) == 0 && !w.writing && w.ss.wmu.TryLock() {
		w.writing = true
		w.mu.Unlock()
		err := w.ss.writeFrameBytesLocked(frame)
		w.ss.wmu.Unlock()
		return w.written(err)
	}
	if w.bytes+len(frame) > streamDownQueueBytes {
		w.mu.Unlock()
		return false
	}
	w.q = append(w.q, append([]byte(nil), frame...))
	w.bytes += len(frame)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

func (w *dgramWriter) run() {
	defer w.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			if len(w.q) == 0 || w.writing {
				// Empty, or a frame sent at once is being written; its
				// sender wakes us when it is done.
				w.mu.Unlock()
				break
			}
			f := w.q[0]
			w.q[0] = nil
			w.q = w.q[1:]
			w.bytes -= len(f)
			w.writing = true
			w.mu.Unlock()
			if !w.written(w.ss.writeFrameBytes(f)) {
				return
			}
		}
	}
}

// written records the end of a write and reports whether it succeeded;
// it wakes the writer goroutine for what was queued meanwhile.
func (w *dgramWriter) written(err error) bool {
	w.mu.Lock()
	w.writing = false
	if err != nil {
		w.broken, w.q, w.bytes = true, nil, 0
	}
	more := len(w.q) > 0
	w.mu.Unlock()
	if more {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return err == nil
}

// close stops the writer; what is still queued is dropped.
func (w *dgramWriter) close() {
	close(w.done)
	w.wg.Wait()
}

// writeFrameBytes writes an encoded frame on the control connection,
// serialized with writeFrame. A write that fails may have sent part of
// the frame: the connection is closed, which ends the session.
func (ss *session) writeFrameBytes(b []byte) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	return ss.writeFrameBytesLocked(b)
}

// writeFrameBytesLocked is writeFrameBytes for a caller that holds wmu.
func (ss *session) writeFrameBytesLocked(b []byte) error {
	ss.c.SetWriteDeadline(time.Now().Add(ss.s.handshakeTimeout()))
	if _, err := ss.c.Write(b); err != nil {
		hardClose(ss.c)
		return err
	}
	return nil
}

// auditAssoc writes one record per association: who, its external port,
// datagrams and bytes each way, drops, how long, and how it ended; or,
// with a nil association, the refused request.
func (ss *session) auditAssoc(a *streamAssoc, req proto.ExtRequest, err error) {
	if on := ss.s.OnSession; on != nil {
		r := SessionRecord{Command: "udp", Reply: proto.ReplySucceeded, User: ss.user, Err: err}
		if a != nil {
			r.BytesUp, r.BytesDown, r.Duration = a.up.Load(), a.down.Load(), time.Since(a.start)
		} else if err != nil {
			r.Reply = replyCode(err)
		}
		on(r)
	}
	log := ss.s.logger()
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("client", ss.client.String()),
		slog.String("user", ss.user),
		slog.String("cmd", "udp"),
	}
	code := proto.ReplySucceeded
	if err != nil && a == nil {
		code = replyCode(err)
	}
	if a != nil {
		attrs = append(attrs,
			slog.Uint64("assoc", a.id),
			slog.String("bound", addrPortOf(a.conn.LocalAddr()).String()),
			slog.Int64("dgrams_up", a.upN.Load()),
			slog.Int64("dgrams_down", a.downN.Load()),
			slog.Int64("bytes_up", a.up.Load()),
			slog.Int64("bytes_down", a.down.Load()),
			slog.Int64("dropped", a.dropped.Load()),
			slog.Int64("dropped_down", a.droppedDown.Load()),
			slog.Duration("dur", time.Since(a.start).Round(time.Millisecond)))
	}
	attrs = append(attrs, slog.String("reply", code.String()))
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "udp", attrs...)
}
