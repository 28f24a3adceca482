//go:build linux && amd64

package socksify

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// An fdConn is a net.Conn over the supervisor's dup of a program's
// connected TCP socket, for running the gateway handshake on the
// program's own socket. It reads and writes with recv and send and
// MSG_DONTWAIT, waiting with poll between attempts, so that it works the
// same whether the socket is blocking or not and never changes the
// O_NONBLOCK flag of the open file description, which the program
// shares (net.FileConn would set it). Deadlines are checked at least
// every pollSlice. It is meant for short, bounded exchanges, not bulk
// data, and for one reader and one writer at a time.
type fdConn struct {
	fd        int
	rdl, wdl  atomic.Int64 // deadlines in Unix nanoseconds; 0 means none
	closeOnce sync.Once
	closed    atomic.Bool
}

// pollSlice bounds each poll, so that a deadline moved into the past
// (context cancellation) is noticed.
const pollSlice = 50 * time.Millisecond

func newFDConn(fd int) *fdConn { return &fdConn{fd: fd} }

func (c *fdConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		n, _, err := rawRecvfrom(c.fd, b, unix.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return 0, c.opError("read", err)
		}
		if err := c.wait(unix.POLLIN, &c.rdl); err != nil {
			return 0, c.opError("read", err)
		}
	}
}

func (c *fdConn) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		if c.closed.Load() {
			return done, net.ErrClosed
		}
		n, err := rawSendto(c.fd, b[done:], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil)
		switch {
		case err == nil:
			done += n
			continue
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return done, c.opError("write", err)
		}
		if err := c.wait(unix.POLLOUT, &c.wdl); err != nil {
			return done, c.opError("write", err)
		}
	}
	return done, nil
}

// wait polls for events until they come or the deadline passes. Errors
// and hang-ups return nil: the next recv or send reports them.
func (c *fdConn) wait(events int16, dl *atomic.Int64) error {
	for {
		timeout := pollSlice
		if d := dl.Load(); d != 0 {
			left := time.Until(time.Unix(0, d))
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			timeout = min(timeout, left)
		}
		ms := int((timeout + time.Millisecond - 1) / time.Millisecond)
		rev, err := pollFD(c.fd, events, ms)
		if err != nil && err != unix.EINTR {
			return err
		}
		if rev != 0 {
			return nil
		}
		if c.closed.Load() {
			return net.ErrClosed
		}
	}
}

func (c *fdConn) opError(op string, err error) error {
	if err == os.ErrDeadlineExceeded || err == net.ErrClosed {
		return &net.OpError{Op: op, Net: "tcp", Err: err}
	}
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, err)}
}

// Close closes the dup; the program's socket stays open.
func (c *fdConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		unix.Close(c.fd)
	})
	return nil
}

func (c *fdConn) LocalAddr() net.Addr  { return tcpAddrOf(unix.Getsockname(c.fd)) }
func (c *fdConn) RemoteAddr() net.Addr { return tcpAddrOf(unix.Getpeername(c.fd)) }

func tcpAddrOf(sa unix.Sockaddr, err error) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	}
	return &net.TCPAddr{}
}

func (c *fdConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *fdConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(deadlineNanos(t))
	return nil
}

func (c *fdConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(deadlineNanos(t))
	return nil
}

func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if n := t.UnixNano(); n > 0 {
		return n
	}
	return 1 // far in the past (x/net's aLongTimeAgo is Unix(1, 0))
}
