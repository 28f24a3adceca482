//go:build linux && amd64

package socksify

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
	"golang.org/x/sys/unix"
)

// An inband is one in-band CONNECT under way in plain SOCKS5 without
// credentials, on a non-blocking program socket: a small state machine
// (connect to the gateway, send the greeting and the request in one
// write, read the method selection, read the reply) that the
// notification loop runs inline, and hands to a goroutine at any wait
// if another notification comes meanwhile. A program that makes one
// connection at a time thus gets its connect answered with no thread
// hand-off at all: the loop's thread waits for the gateway and answers.
type inband struct {
	sup      *supervisor
	c        call
	dup      int
	si       sockInfo
	dst      netip.AddrPort
	target   string
	gw       []byte
	deadline time.Time // zero: none

	phase     inbandPhase
	connected bool   // the socket is connected to the gateway: disconnect it on failure
	req       []byte // greeting and request
	sent      int
	buf       [4 + 1 + 255 + 2]byte // the method selection, then the reply
	got       int
}

type inbandPhase uint8

const (
	phConnect    inbandPhase = iota // connect to the gateway
	phConnecting                    // wait for the connection
	phSend                          // send the greeting and the request
	phSelection                     // read the method selection (2 bytes)
	phReply                         // read the reply, exactly
	phDone
)

// errHandoff stops an inline run: another notification is waiting, so
// a goroutine takes over.
var errHandoff = errors.New("socksify: hand off")

// startInband runs the CONNECT inline and answers c, or hands it to a
// goroutine. It owns dup.
func (sup *supervisor) startInband(c call, dup int, si sockInfo, dst netip.AddrPort, target string, taddr proto.Addr, gw []byte) {
	h := &inband{sup: sup, c: c, dup: dup, si: si, dst: dst, target: target, gw: gw}
	if sup.timeout > 0 {
		h.deadline = c.start.Add(sup.timeout)
	}
	req, err := proto.Request{Command: proto.CommandConnect, Addr: taddr}.AppendBinary([]byte{proto.Version5, 1, byte(proto.MethodNoAuth)})
	if err != nil {
		h.finish(err)
		return
	}
	h.req = req
	err = h.run(h.waitInline)
	if err == errHandoff {
		if sup.log.Enabled(sup.ctx, slog.LevelDebug) {
			sup.log.Debug("socksify: connect: handshake handed to a goroutine", "tid", c.tid, "target", target, "phase", h.phase)
		}
		sup.wg.Add(1)
		go func() {
			defer sup.wg.Done()
			h.finish(h.run(h.waitGoroutine))
		}()
		return
	}
	h.finish(err)
}

// run advances the exchange until it is done or fails; wait blocks until
// the socket is ready for events.
func (h *inband) run(wait func(events int16) error) error {
	for {
		switch h.phase {
		case phConnect:
			switch err := rawConnect(h.dup, h.gw); err {
			case nil:
				h.phase = phSend
			case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
				h.phase = phConnecting
			default:
				return err
			}
		case phConnecting:
			if err := wait(unix.POLLOUT); err != nil {
				return err
			}
			soerr, err := unix.GetsockoptInt(h.dup, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return err
			}
			if soerr != 0 {
				return syscall.Errno(soerr)
			}
			h.phase = phSend
		case phSend:
			h.connected = true
			n, err := rawSendto(h.dup, h.req[h.sent:], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil)
			switch {
			case err == unix.EAGAIN || err == unix.EINTR:
				if err := wait(unix.POLLOUT); err != nil {
					return err
				}
				continue
			case err != nil:
				return fmt.Errorf("socksify: writing the request: %w", err)
			}
			if h.sent += n; h.sent == len(h.req) {
				h.phase = phSelection
			}
		case phSelection:
			done, err := h.read(2, wait)
			if err != nil || !done {
				return err
			}
			switch {
			case h.buf[0] != proto.Version5:
				return fmt.Errorf("%w: version %d", errSOCKS5Malformed, h.buf[0])
			case h.buf[1] == byte(proto.MethodNoAcceptable):
				return fmt.Errorf("%w: the gateway wants authentication (give a user)", client.ErrAuth)
			case h.buf[1] != byte(proto.MethodNoAuth):
				return fmt.Errorf("%w: method %#02x, which was not offered", errSOCKS5Malformed, h.buf[1])
			}
			h.got = 0
			h.phase = phReply
		case phReply:
			// VER REP RSV ATYP, then the address (the first byte of a
			// name is its length) and the port: read exactly that, for
			// what follows is the target's.
			done, err := h.read(5, wait)
			if err != nil || !done {
				return err
			}
			need := 0
			switch proto.AddrType(h.buf[3]) {
			case proto.AddrTypeIPv4:
				need = 4 + 4 + 2
			case proto.AddrTypeIPv6:
				need = 4 + 16 + 2
			case proto.AddrTypeFQDN:
				need = 4 + 1 + int(h.buf[4]) + 2
			default:
				return fmt.Errorf("%w: address type %d in the reply", errSOCKS5Malformed, h.buf[3])
			}
			if done, err = h.read(need, wait); err != nil || !done {
				return err
			}
			rep, _, err := proto.ParseReply(h.buf[:need])
			if err != nil {
				return err
			}
			h.phase = phDone
			if rep.Code != proto.ReplySucceeded {
				return &client.ReplyError{Command: proto.CommandConnect, Target: h.target, Code: rep.Code}
			}
			return nil
		case phDone:
			return nil
		}
	}
}

// read reads until buf holds n bytes, never more; done is false when it
// must be called again (it waited and the phase loop goes round).
func (h *inband) read(n int, wait func(events int16) error) (bool, error) {
	for h.got < n {
		r, err := rawRecv(h.dup, h.buf[h.got:n], unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			if err := wait(unix.POLLIN); err != nil {
				return false, err
			}
			continue
		case err != nil:
			return false, gatewayReadErr(err)
		case r == 0:
			return false, gatewayReadErr(io.EOF)
		}
		h.got += r
	}
	return true, nil
}

// waitInline waits on the loop's thread for the socket, or for another
// notification, which makes it hand the exchange off; it answers the
// fake DNS server's UDP queries meanwhile, as the loop does.
func (h *inband) waitInline(events int16) error {
	est := &h.sup.spinReply
	switch h.phase {
	case phConnecting:
		est = &h.sup.spinConnect
	case phSelection:
		est = &h.sup.spinSelection
	}
	start := time.Now()
	budget := est.budget()
	spinUntil := start.Add(budget)
	// A wait that ends without the answer (another notification, the
	// deadline, an error) still tells how long the answer takes at
	// least: record it if it outlasted the spin, so that a gateway that
	// is slower than the notifications come stops being spun for.
	answered := false
	defer func() {
		if d := time.Since(start); !answered && d > budget {
			est.add(d)
		}
	}()
	var fds [4]unix.PollFd
	fds[0] = unix.PollFd{Fd: int32(h.dup), Events: events}
	fds[1] = unix.PollFd{Fd: int32(h.sup.lfd), Events: unix.POLLIN}
	nfds := 2
	for _, fd := range h.sup.dnsFDs {
		if nfds < len(fds) {
			fds[nfds] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
			nfds++
		}
	}
	for {
		var ts *unix.Timespec
		now := time.Now()
		spinning := now.Before(spinUntil)
		if !h.deadline.IsZero() {
			left := h.deadline.Sub(now)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			t := unix.NsecToTimespec(int64(left))
			ts = &t
		}
		if spinning {
			ts = &unix.Timespec{} // look, don't sleep
		}
		for i := range fds[:nfds] {
			fds[i].Revents = 0
		}
		n, err := pollHeld(fds[:nfds], ts)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			if spinning {
				schedYield()
			}
			continue // the deadline: checked above
		}
		for _, f := range fds[2:nfds] {
			if f.Revents != 0 { // a DNS query: answered meanwhile
				h.sup.dns.serveUDPOnce(int(f.Fd), h.sup.dnsBuf)
			}
		}
		if fds[1].Revents != 0 {
			return errHandoff
		}
		if fds[0].Revents != 0 {
			answered = true
			est.add(time.Since(start))
			return nil
		}
	}
}

// waitGoroutine waits off the loop for the socket, until the deadline or
// the supervisor's end.
func (h *inband) waitGoroutine(events int16) error {
	for {
		if err := h.sup.ctx.Err(); err != nil {
			return err
		}
		timeout := pollSlice
		if !h.deadline.IsZero() {
			left := time.Until(h.deadline)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			timeout = min(timeout, left)
		}
		rev, err := pollFD(h.dup, events, int((timeout+time.Millisecond-1)/time.Millisecond))
		if err != nil && err != unix.EINTR {
			return err
		}
		if rev != 0 {
			return nil
		}
	}
}

// finish answers the program's connect with the exchange's outcome and
// releases the socket's duplicate.
func (h *inband) finish(err error) {
	h.sup.answerConnect(h.c, h.dup, h.si, h.dst, h.target, err, h.connected)
}

// rawRecv receives into b with flags, without the source address.
func rawRecv(fd int, b []byte, flags int) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(flags), 0, 0)
	return int(n), errnoErr(e)
}

// Spinning for the gateway. On a machine with more than one CPU,
// waitInline first polls the socket without sleeping, yielding the CPU
// between polls, before it sleeps in poll: a gateway nearby (on this
// host or the LAN) answers within a few hundred microseconds, and an
// answer that comes while the loop spins is read without the wake-up of
// an idle CPU, which on a virtual machine (a halted vCPU, woken by the
// hypervisor) costs tens of microseconds, paid again when the loop wakes
// the program. The program's connect returns that much sooner. The
// budget adapts to the gateway: twice the recent time such a wait took
// (an exponentially weighted moving average, kept apart for the
// connection, the method selection and the reply, whose times differ),
// at most maxInlineSpin, and none at all once the waits take longer than
// that, as for a gateway across the Internet. sched_yield between polls leaves the CPU to any
// other thread that wants it, so the spinning only uses time that would
// otherwise be idle.
const maxInlineSpin = 400 * time.Microsecond

// A spinEstimate is the recent duration of one kind of inline wait. Only
// the loop's thread uses it.
type spinEstimate struct {
	avg time.Duration // EWMA, weight 1/4
	n   int
}

// spinAllowed is whether spinning can help: another CPU must be there to
// run the gateway (and the loop must hold its P, see pollHeld).
var spinAllowed = holdP && runtime.NumCPU() > 1

// budget returns how long the next wait may spin.
func (e *spinEstimate) budget() time.Duration {
	switch {
	case !spinAllowed:
		return 0
	case e.n == 0:
		return maxInlineSpin // learn with a spin
	case e.avg > maxInlineSpin:
		return 0
	}
	return min(2*e.avg, maxInlineSpin)
}

// add records how long a wait took.
func (e *spinEstimate) add(d time.Duration) {
	if e.n == 0 {
		e.avg = d
	} else {
		e.avg += (d - e.avg) / 4
	}
	e.n++
}

// schedYield yields the CPU without entering the runtime's system call
// state, so that the loop keeps its P (see pollHeld).
func schedYield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
