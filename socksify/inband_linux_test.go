//go:build linux && amd64

package socksify

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
	"golang.org/x/sys/unix"
)

// fakeGateway accepts one connection, checks that the greeting and the
// request come in one piece, waits for release (if not nil), and answers
// with reply followed by extra (the target's first bytes).
func fakeGateway(t *testing.T, reply, extra []byte, release <-chan struct{}) (netip.AddrPort, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 3+4+1+9+2) // greeting, request for "name.test":80
		if _, err := io.ReadFull(c, b); err != nil {
			got <- err.Error()
			return
		}
		got <- string(b)
		c.Write([]byte{5, 0})
		if release != nil {
			<-release
		}
		c.Write(append(append([]byte(nil), reply...), extra...))
		io.Copy(io.Discard, c)
	}()
	return netip.MustParseAddrPort(ln.Addr().String()), got
}

// newInbandTest returns an inband for a non-blocking socket toward gw,
// with a supervisor whose "listener" is the read end of a pipe: writing
// to the other end looks like another notification.
func newInbandTest(t *testing.T, gw netip.AddrPort, timeout time.Duration) (*inband, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	sa, _ := appendSockaddr(nil, afInet, gw)
	req, _ := proto.Request{Command: proto.CommandConnect, Addr: proto.Addr{FQDN: "name.test", Port: 80}}.AppendBinary([]byte{5, 1, 0})
	sup := &supervisor{lfd: p[0], ctx: context.Background()}
	h := &inband{sup: sup, dup: fd, gw: sa, target: "name.test:80", req: req}
	if timeout > 0 {
		h.deadline = time.Now().Add(timeout)
	}
	return h, p[1]
}

var okReply = []byte{5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 80} // a name as BND.ADDR: read exactly

func TestInband(t *testing.T) {
	gw, got := fakeGateway(t, okReply, []byte("BANNER"), nil)
	h, _ := newInbandTest(t, gw, 5*time.Second)
	if err := h.run(h.waitInline); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g[:3] != "\x05\x01\x00" || g[3:5] != "\x05\x01" {
		t.Errorf("the gateway got %q", g)
	}
	// What follows the reply is the program's.
	b := make([]byte, 16)
	unix.SetNonblock(h.dup, false)
	n, err := unix.Read(h.dup, b)
	if err != nil || string(b[:n]) != "BANNER" {
		t.Errorf("after the reply: %q, %v", b[:n], err)
	}
}

// Another notification during the wait hands the exchange off; a
// goroutine finishes it.
func TestInbandHandoff(t *testing.T) {
	release := make(chan struct{})
	gw, _ := fakeGateway(t, okReply, nil, release)
	h, notify := newInbandTest(t, gw, 5*time.Second)
	go func() {
		time.Sleep(50 * time.Millisecond)
		unix.Write(notify, []byte{1})
	}()
	if err := h.run(h.waitInline); err != errHandoff {
		t.Fatalf("inline run: %v, want errHandoff", err)
	}
	if h.phase != phSelection && h.phase != phReply {
		t.Errorf("handed off in phase %d", h.phase)
	}
	close(release)
	if err := h.run(h.waitGoroutine); err != nil {
		t.Fatal(err)
	}
	if h.phase != phDone || !h.connected {
		t.Errorf("phase %d, connected %v", h.phase, h.connected)
	}
}

func TestInbandRefused(t *testing.T) {
	gw, _ := fakeGateway(t, []byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}, nil, nil)
	h, _ := newInbandTest(t, gw, 5*time.Second)
	err := h.run(h.waitInline)
	var re *client.ReplyError
	if !errors.As(err, &re) || handshakeErrno(err) != unix.ECONNREFUSED {
		t.Errorf("refusal: %v", err)
	}
}

func TestInbandTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	gw, _ := fakeGateway(t, okReply, nil, release)
	h, _ := newInbandTest(t, gw, 200*time.Millisecond)
	err := h.run(h.waitInline)
	if !errors.Is(err, os.ErrDeadlineExceeded) || handshakeErrno(err) != unix.ETIMEDOUT {
		t.Errorf("silent gateway: %v", err)
	}
}

func TestInbandGatewayDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	h, _ := newInbandTest(t, gw, 5*time.Second)
	if err := h.run(h.waitInline); handshakeErrno(err) != unix.ECONNREFUSED {
		t.Errorf("gateway down: %v", err)
	}
}

// TestSpinEstimate: the inline wait spins for twice the recent wait, at
// most maxInlineSpin, and not at all once waits take longer.
func TestSpinEstimate(t *testing.T) {
	if !spinAllowed {
		t.Skip("one CPU (or GOMAXPROCS 1): the loop never spins")
	}
	var e spinEstimate
	if b := e.budget(); b != maxInlineSpin {
		t.Errorf("first budget %v, want %v (learn with a spin)", b, maxInlineSpin)
	}
	e.add(100 * time.Microsecond)
	if b := e.budget(); b != 200*time.Microsecond {
		t.Errorf("budget after a 100µs wait: %v, want 200µs", b)
	}
	for range 20 {
		e.add(5 * time.Millisecond) // a gateway far away
	}
	if b := e.budget(); b != 0 {
		t.Errorf("budget after 5ms waits: %v, want 0", b)
	}
	for range 40 {
		e.add(50 * time.Microsecond) // it came closer
	}
	if b := e.budget(); b <= 0 || b > maxInlineSpin {
		t.Errorf("budget after 50µs waits: %v, want (0, %v]", b, maxInlineSpin)
	}
}

// TestSpinHandedOff: waits that end by hand-off before the answer (a
// gateway slower than the program's other notifications) feed the
// estimate too, so the loop stops spinning for it instead of spending
// the whole budget on every wait.
func TestSpinHandedOff(t *testing.T) {
	if !spinAllowed {
		t.Skip("one CPU (or GOMAXPROCS 1): the loop never spins")
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	sup := &supervisor{lfd: p[0]}
	h := &inband{sup: sup, dup: sp[0], phase: phReply} // sp[1] never answers
	for range 20 {
		var b [16]byte
		unix.Read(p[0], b[:])
		tm := time.AfterFunc(2*time.Millisecond, func() { unix.Write(p[1], []byte{1}) })
		err := h.waitInline(unix.POLLIN)
		tm.Stop()
		if err != errHandoff {
			t.Fatalf("waitInline = %v, want errHandoff", err)
		}
	}
	if b := sup.spinReply.budget(); b != 0 || sup.spinReply.avg < time.Millisecond {
		t.Errorf("after 20 waits handed off at 2ms: average %v, budget %v; want at least 1ms and no spin", sup.spinReply.avg, b)
	}
}
