package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Tuning. A running direction keeps its goroutine (and, while inside
// splice, a pipe) for linger after its last byte, so interactive traffic
// does not pay a park and wake per message; after that it parks. A round
// copies at most roundBytes so that deadlines are renewed while a bulk
// transfer flows (an absolute write deadline set once would otherwise cut
// a long, healthy transfer). The write deadline is renewed between
// rounds only, so a reader that, with every buffer on the way full,
// takes less than a round within about three quarters of the idle
// timeout counts as stalled: under 18 KB/s for the default 5 minutes.
// (A splice cut by its deadline also loses the bytes in its pipe; the
// session ends then, so nothing is silently dropped from a live stream.)
const (
	linger     = time.Second
	roundBytes = 4 << 20
)

// Stats are the bytes relayed in each direction.
type Stats struct {
	Up   int64 // from a to b (client to target)
	Down int64 // from b to a (target to client)
}

// Options tune a relay. The zero value means no idle timeout and no head.
type Options struct {
	// Idle ends the session after no byte has moved in either direction
	// for this long. Zero or negative means never.
	Idle time.Duration
	// Head is written to b before anything else: bytes the client sent
	// early, pipelined behind its request.
	Head []byte
}

// A Session is a running relay between two connections. Its methods are
// safe for concurrent use.
type Session struct {
	a, b net.Conn
	idle time.Duration
	done func(Stats, error)
	last atomic.Int64 // unix nanoseconds of the last progress

	mu     sync.Mutex
	dirs   [2]direction // 0: a→b (up), 1: b→a (down)
	live   int          // directions not yet ended
	closed bool
	err    error
	timer  *time.Timer
	head   int64
}

// Relay copies a→b and b→a until both directions end, then closes a and b
// and returns the byte counts and the first failure (nil when both sides
// ended cleanly). It is Start plus a wait.
func Relay(a, b net.Conn, idle time.Duration, head []byte) (Stats, error) {
	type result struct {
		st  Stats
		err error
	}
	ch := make(chan result, 1)
	Start(a, b, Options{Idle: idle, Head: head}, func(st Stats, err error) { ch <- result{st, err} })
	r := <-ch
	return r.st, r.err
}

// Start relays between a and b in the background and returns at once.
// When both directions have ended (EOF passed on as CloseWrite), or one
// failed, or the session idled out, or Close was called, Start's session
// closes a and b and calls done exactly once, from some goroutine of its
// own, with the byte counts and the first failure (os.ErrDeadlineExceeded
// for an idle timeout).
func Start(a, b net.Conn, opt Options, done func(Stats, error)) *Session {
	s := &Session{a: a, b: b, idle: opt.Idle, done: done, live: 2}
	s.touch()
	s.dirs[0] = direction{s: s, src: a, dst: b}
	s.dirs[1] = direction{s: s, src: b, dst: a}
	if len(opt.Head) > 0 {
		if s.idle > 0 {
			b.SetWriteDeadline(time.Now().Add(s.idle))
		}
		n, err := b.Write(opt.Head)
		s.head = int64(n)
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.closed = true
			s.live = 0
			s.mu.Unlock()
			s.finish()
			return s
		}
	}
	if s.idle > 0 {
		s.mu.Lock()
		s.timer = time.AfterFunc(s.idle, s.onIdle)
		s.mu.Unlock()
	}
	// Both directions start parked: a session whose peers are quiet costs
	// no goroutine at all, and the first byte wakes its direction.
	s.dirs[1].start()
	s.dirs[0].start()
	return s
}

// start parks d, or runs it in a goroutine where parking is unavailable.
func (d *direction) start() {
	_, sok := d.src.(*net.TCPConn)
	_, dok := d.dst.(*net.TCPConn)
	if sok && dok && canPark() {
		d.s.mu.Lock()
		if d.s.closed {
			// A fail came between the two directions' starts (the
			// other one woke and failed at once). It closes the sockets
			// after its unlock, which would drop a registration made
			// now without an event: end here instead, as park does.
			d.s.mu.Unlock()
			d.s.end(d, nil)
			return
		}
		err := arm(d)
		if err == nil {
			d.state = stateParked
		}
		d.s.mu.Unlock()
		if err == nil {
			return
		}
	}
	go d.run()
}

// Close ends the session now; done is called once both directions have
// stopped. Close is idempotent.
func (s *Session) Close() error {
	s.fail(net.ErrClosed)
	return nil
}

func (s *Session) touch() { s.last.Store(time.Now().UnixNano()) }

// fail records err as the session's failure and stops everything:
// connections are closed (running directions then fail on their own) and
// parked directions end here, since no readiness event will come for a
// closed socket.
func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.err == nil {
		s.err = err
	}
	ended := 0
	for i := range s.dirs {
		d := &s.dirs[i]
		if d.state == stateParked {
			d.state = stateDone
			ended++
			unpark(d)
		}
	}
	s.live -= ended
	// Only a fail that ended the last directions reports: after both
	// ended on their own (live already 0, done called), a Close still
	// comes here, from a gateway closing the sessions it tracks.
	last := ended > 0 && s.live == 0
	s.mu.Unlock()
	closeConn(s.a)
	closeConn(s.b)
	if last {
		s.finish()
	}
}

// end marks d finished; err nil means clean EOF.
func (s *Session) end(d *direction, err error) {
	if err != nil {
		s.fail(err)
	}
	s.mu.Lock()
	if d.state == stateDone {
		s.mu.Unlock()
		return
	}
	d.state = stateDone
	s.live--
	last := s.live == 0
	s.mu.Unlock()
	if last {
		s.finish()
	}
}

// finish closes both connections and reports. It runs once: from the
// fail or end that took live to 0, or from Start when the head could not
// be written.
func (s *Session) finish() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	err := s.err
	st := Stats{Up: s.head + s.dirs[0].n, Down: s.dirs[1].n}
	s.mu.Unlock()
	closeConn(s.a)
	closeConn(s.b)
	s.done(st, err)
}

// onIdle runs when the idle timer fires.
func (s *Session) onIdle() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	since := time.Since(time.Unix(0, s.last.Load()))
	if since < s.idle {
		s.timer.Reset(s.idle - since)
		s.mu.Unlock()
		return
	}
	for i := range s.dirs {
		if s.dirs[i].state == stateRunning {
			// A running direction enforces the idle timeout on its own
			// deadlines (or parks within linger); look again later.
			s.timer.Reset(min(linger, s.idle))
			s.mu.Unlock()
			return
		}
	}
	s.mu.Unlock()
	s.fail(os.ErrDeadlineExceeded)
}

const (
	stateRunning = iota
	stateParked
	stateDone
)

// direction is one half of a session: bytes from src to dst.
type direction struct {
	s        *Session
	src, dst net.Conn
	n        int64 // bytes copied; written only by the running goroutine
	state    int   // guarded by s.mu
	// poller registration (see park_linux.go)
	rc         syscall.RawConn // src's, for registering its fd
	id         uint64
	registered bool
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// run copies until EOF, failure, or a quiet spell long enough to park.
// It reads into a small pooled buffer, which costs a read and a write per
// message, the least for interactive traffic; when a read fills the
// buffer, a bulk transfer is under way and the bytes queued behind it are
// spliced without entering user space. A direction waiting in read holds
// a small buffer and its goroutine for at most the linger time, then
// parks with neither.
func (d *direction) run() {
	s := d.s
	src, sok := d.src.(*net.TCPConn)
	_, dok := d.dst.(*net.TCPConn)
	if !sok || !dok || !canPark() {
		d.s.end(d, d.bufferLoop())
		return
	}
	rc, err := src.SyscallConn()
	if err != nil {
		d.s.end(d, err)
		return
	}
	wait := linger
	if s.idle > 0 && s.idle < 2*linger {
		wait = s.idle / 2 // park early enough for the idle timer to see it
	}
	// Deadlines are renewed only when a quarter of their span has passed:
	// setting one costs a timer update, and a bulk transfer goes round
	// this loop tens of thousands of times a second.
	var rset, wset time.Time
	for {
		if now := time.Now(); now.Sub(rset) > wait/4 {
			d.src.SetReadDeadline(now.Add(wait))
			rset = now
		}
		bp := smallPool.Get().(*[smallCopy]byte)
		nr, rerr := d.src.Read(bp[:])
		if nr > 0 {
			d.renewWriteDeadline(&wset)
			nw, werr := d.dst.Write(bp[:nr])
			d.n += int64(nw)
			s.touch()
			if werr != nil {
				smallPool.Put(bp)
				d.s.end(d, werr)
				return
			}
		}
		smallPool.Put(bp)
		if rerr != nil {
			switch {
			case errors.Is(rerr, io.EOF):
				d.s.end(d, d.eof())
				return
			case isTimeout(rerr):
				// Quiet for the linger time (or this goroutine was
				// delayed past it; then the next read just renews it).
				if d.park() {
					return
				}
				// It could not park (the poller refused the fd: out of
				// epoll watches or memory) and waits here instead; the
				// idle timer leaves a running direction to its own
				// deadlines, so it enforces the timeout itself.
				if s.idle > 0 && time.Since(time.Unix(0, s.last.Load())) >= s.idle {
					d.s.end(d, os.ErrDeadlineExceeded)
					return
				}
				rset = time.Time{}
				continue
			default:
				d.s.end(d, rerr)
				return
			}
		}
		if nr < smallCopy {
			continue
		}
		// The read filled the buffer: splice whatever else is queued.
		var queued int
		rc.Control(func(fd uintptr) { queued = queuedBytes(int(fd)) })
		for queued > smallCopy {
			chunk := min(queued, roundBytes)
			d.renewWriteDeadline(&wset)
			n, err := io.CopyN(d.dst, d.src, int64(chunk))
			d.n += n
			queued -= int(n)
			if n > 0 {
				s.touch()
			}
			if err != nil {
				switch {
				case errors.Is(err, io.EOF):
					d.s.end(d, d.eof())
				case d.lingerExpired(err, wset):
					// The read deadline meant for waiting passed while
					// this goroutine was delayed; the bytes are still
					// queued. Renew it and go on.
					rset = time.Now()
					d.src.SetReadDeadline(rset.Add(wait))
					continue
				default:
					d.s.end(d, err) // includes a write stalled for idle
				}
				return
			}
		}
	}
}

// renewWriteDeadline gives dst's writes the idle timeout from now, at most
// once a second (or a quarter of the timeout): wset is when it was last
// set. A write that cannot progress for the idle timeout then fails.
func (d *direction) renewWriteDeadline(wset *time.Time) {
	idle := d.s.idle
	if now := time.Now(); idle > 0 && now.Sub(*wset) > min(idle/4, time.Second) {
		d.dst.SetWriteDeadline(now.Add(idle))
		*wset = now
	}
}

// lingerExpired reports whether err is only the wait deadline on src
// having passed (a goroutine delayed on a busy machine can find it so),
// as opposed to dst's write deadline: a write that made no progress for
// the idle timeout.
func (d *direction) lingerExpired(err error, wset time.Time) bool {
	if !isTimeout(err) {
		return false
	}
	return d.s.idle <= 0 || time.Since(wset) < d.s.idle
}

// eof passes src's end of stream on to dst, unless the other direction
// has ended already: then the session is about to close both sockets, and
// the close sends the FIN that a shutdown would (one system call fewer per
// session, which shows at tens of thousands of sessions a second).
func (d *direction) eof() error {
	s := d.s
	s.mu.Lock()
	other := &s.dirs[0]
	if other == d {
		other = &s.dirs[1]
	}
	otherDone := other.state == stateDone
	s.mu.Unlock()
	if _, tls := d.dst.(layered); otherDone && !tls {
		return nil
	}
	// A TLS peer is told of the end with close_notify (CloseWrite):
	// closeConn closes the TCP connection under it without one.
	return d.closeWrite()
}

// A layered connection runs over another, as a *tls.Conn does.
type layered interface{ NetConn() net.Conn }

// closeConn closes c. A TLS connection's Close first sends close_notify
// under the connection's output lock, which a write that cannot finish
// may hold for ever: the TLS layer answers a peer's KeyUpdate requests
// from Read, so a peer that asks for them and never reads blocks that
// answer. Closing the connection underneath ends any such write at once;
// a stream that ended cleanly has sent its close_notify already.
func closeConn(c net.Conn) error {
	if l, ok := c.(layered); ok {
		return l.NetConn().Close()
	}
	return c.Close()
}

// closeWrite passes EOF on. If dst cannot half-close, the session cannot
// go on one-way, so that ends it; a clean EOF is still no failure.
func (d *direction) closeWrite() error {
	if hc, ok := d.dst.(interface{ CloseWrite() error }); ok {
		if err := hc.CloseWrite(); err == nil {
			return nil
		}
	}
	d.s.fail(nil)
	return nil
}

// park hands the wait for src's next byte to the shared poller and
// reports whether the calling goroutine may exit. Registration happens
// under the session lock so that fail cannot miss a half-parked direction.
func (d *direction) park() bool {
	s := d.s
	d.src.SetReadDeadline(time.Time{})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.end(d, nil)
		return true
	}
	if err := arm(d); err != nil {
		s.mu.Unlock()
		return false // keep waiting in this goroutine instead
	}
	d.state = stateParked
	s.mu.Unlock()
	return true
}

// wake is called by the poller when a parked direction's source is
// readable (or at EOF, or failed).
func (d *direction) wake() {
	s := d.s
	s.mu.Lock()
	if d.state != stateParked {
		s.mu.Unlock()
		return
	}
	d.state = stateRunning
	s.mu.Unlock()
	select {
	case wakeCh <- d:
	default:
		go runWorker(d)
	}
}

// Woken directions run on reused goroutines. A direction that ends calls
// back into the session's owner (the gateway writes its audit record
// there), which grows a fresh goroutine's stack; a worker keeps what it
// grew. Workers exit after workerIdle without work.
const workerIdle = time.Second

var wakeCh = make(chan *direction) // unbuffered: only idle workers receive

func runWorker(d *direction) {
	d.run()
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case d := <-wakeCh:
			d.run()
			t.Reset(workerIdle)
		case <-t.C:
			return
		}
	}
}

var bufPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// smallCopy is the read buffer of a running direction; a transfer that
// fills it is spliced instead, which is cheaper above this size.
const smallCopy = 16 << 10

var smallPool = sync.Pool{New: func() any { return new([smallCopy]byte) }}

// bufferLoop is the portable copy for connections that cannot splice or
// park (TLS, pipes): a goroutine per direction for the whole session.
func (d *direction) bufferLoop() error {
	s := d.s
	bp := bufPool.Get().(*[32 << 10]byte)
	defer bufPool.Put(bp)
	for {
		if s.idle > 0 {
			d.src.SetReadDeadline(time.Now().Add(s.idle))
		}
		nr, rerr := d.src.Read(bp[:])
		if nr > 0 {
			s.touch()
			if s.idle > 0 {
				d.dst.SetWriteDeadline(time.Now().Add(s.idle))
			}
			nw, werr := d.dst.Write(bp[:nr])
			d.n += int64(nw)
			if werr != nil {
				return werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return d.eof()
			}
			if isTimeout(rerr) && time.Since(time.Unix(0, s.last.Load())) < s.idle {
				continue // the other direction made progress
			}
			return rerr
		}
	}
}
