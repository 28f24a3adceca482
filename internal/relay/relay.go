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

// Stats are the bytes relayed in each direction.
type Stats struct {
	Up   int64 // from a to b (client to target)
	Down int64 // from b to a (target to client)
}

// halfCloser is a connection that can end its write side only.
type halfCloser interface {
	CloseWrite() error
}

// Relay copies a→b and b→a until both directions end, then closes a and b.
// A direction ends at EOF (passed on with CloseWrite) or on an error, which
// ends the other too. If idle is positive and neither direction moves a
// byte for that long, Relay closes both and returns os.ErrDeadlineExceeded.
// head, if not empty, is written to b before anything else (bytes the
// client sent early, pipelined behind its request).
//
// The returned error is the first failure that ended the session, or nil
// when both sides closed cleanly.
func Relay(a, b net.Conn, idle time.Duration, head []byte) (Stats, error) {
	r := &relay{idle: idle}
	r.touch()
	var st Stats
	if len(head) > 0 {
		if idle > 0 {
			b.SetWriteDeadline(time.Now().Add(idle))
		}
		n, err := b.Write(head)
		st.Up += int64(n)
		if err != nil {
			a.Close()
			b.Close()
			return st, err
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var down int64
	go func() {
		defer wg.Done()
		down = r.copyDirection(a, b) // target → client
	}()
	st.Up += r.copyDirection(b, a) // client → target
	wg.Wait()
	st.Down = down
	a.Close()
	b.Close()
	return st, r.err()
}

type relay struct {
	idle     time.Duration
	last     atomic.Int64 // unix nanoseconds of the last progress
	mu       sync.Mutex
	firstErr error
	failed   atomic.Bool
	closers  [2]io.Closer
}

func (r *relay) touch() { r.last.Store(time.Now().UnixNano()) }

func (r *relay) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstErr
}

// fail records err and closes both ends so that the other direction stops.
func (r *relay) fail(err error, dst, src net.Conn) {
	r.mu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
	r.failed.Store(true)
	dst.Close()
	src.Close()
}

// idleExpired reports whether no progress has happened for the idle
// timeout; otherwise it returns the deadline to wait for next.
func (r *relay) idleExpired() (bool, time.Time) {
	last := time.Unix(0, r.last.Load())
	dl := last.Add(r.idle)
	return !time.Now().Before(dl), dl
}

// copyDirection copies src to dst until EOF or failure and returns the
// bytes copied.
func (r *relay) copyDirection(dst, src net.Conn) int64 {
	st, sok := src.(*net.TCPConn)
	dt, dok := dst.(*net.TCPConn)
	var n int64
	var err error
	if sok && dok {
		n, err = r.spliceLoop(dt, st)
	} else {
		n, err = r.bufferLoop(dst, src)
	}
	if err != nil {
		if !r.failed.Load() {
			r.fail(err, dst, src)
		}
		return n
	}
	// Clean EOF: pass the half-close on. If dst cannot half-close, the
	// session cannot continue one-way, so end it.
	if hc, ok := dst.(halfCloser); ok {
		if cerr := hc.CloseWrite(); cerr == nil {
			return n
		}
	}
	r.fail(nil, dst, src)
	return n
}

// setDeadlines arms the idle deadline on src's reads and dst's writes.
func (r *relay) setDeadlines(dst, src net.Conn) {
	if r.idle <= 0 {
		return
	}
	_, dl := r.idleExpired()
	src.SetReadDeadline(dl)
	dst.SetWriteDeadline(dl)
}

// isTimeout reports whether err is a deadline expiry, which may only mean
// that the other direction made the progress.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// spliceLoop waits for src to become readable, then splices exactly the
// queued bytes to dst. Waiting outside the copy is what keeps an idle
// direction from holding a pipe pair.
func (r *relay) spliceLoop(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		r.setDeadlines(dst, src)
		var queued int
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			queued, werr = pending(int(fd))
			return !errors.Is(werr, syscall.EAGAIN)
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			if isTimeout(err) && r.idle > 0 {
				if expired, _ := r.idleExpired(); !expired {
					continue
				}
			}
			return total, err
		}
		if queued == 0 {
			// Readable with nothing queued: end of stream.
			return total, nil
		}
		n, err := io.CopyN(dst, src, int64(queued))
		total += n
		if n > 0 {
			r.touch()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			if isTimeout(err) && r.idle > 0 {
				if expired, _ := r.idleExpired(); !expired {
					continue
				}
			}
			return total, err
		}
	}
}

var bufPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// bufferLoop is the portable copy for connections that cannot splice.
func (r *relay) bufferLoop(dst, src net.Conn) (int64, error) {
	bp := bufPool.Get().(*[32 << 10]byte)
	defer bufPool.Put(bp)
	buf := bp[:]
	var total int64
	for {
		r.setDeadlines(dst, src)
		nr, rerr := src.Read(buf)
		if nr > 0 {
			r.touch()
			r.setDeadlines(dst, src)
			nw, werr := dst.Write(buf[:nr])
			total += int64(nw)
			if werr != nil {
				return total, werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return total, nil
			}
			if isTimeout(rerr) && r.idle > 0 {
				if expired, _ := r.idleExpired(); !expired {
					continue
				}
			}
			return total, rerr
		}
	}
}
