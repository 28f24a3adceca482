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
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"golang.org/x/sys/unix"
)

// startGateway serves a test gateway on loopback that may reach loopback
// targets and resolves with r.
func startGateway(t *testing.T, r server.Resolver) string {
	t.Helper()
	s := &server.Server{
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}},
		Resolver: r,
		Logger:   socks6test.Logger(t),
	}
	return socks6test.ServeGateway(t, s)
}

// rawTCP returns a raw socket fd connected to addr, blocking or not.
func rawTCP(t *testing.T, addr string, nonblock bool) int {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	typ := unix.SOCK_STREAM | unix.SOCK_CLOEXEC
	if nonblock {
		typ |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(unix.AF_INET, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	sa, _ := appendSockaddr(nil, afInet, ap)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := connectCtx(ctx, fd, sa, nonblock); err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	return fd
}

func getfl(t *testing.T, fd int) int {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

// The handshake runs over fdConn on a raw socket, blocking or not, and
// leaves its O_NONBLOCK flag as it was; the stream then flows on the
// socket itself.
func TestHandshakeOverFDConn(t *testing.T) {
	echo := netip.MustParseAddrPort(socks6test.EchoServer(t))
	r := &stubResolver{names: map[string]netip.Addr{"echo.test": echo.Addr()}}
	gw := startGateway(t, r)
	for _, nonblock := range []bool{false, true} {
		for _, ext := range []client.ExtMode{client.ExtAuto, client.ExtOff} {
			name := "blocking"
			if nonblock {
				name = "nonblocking"
			}
			t.Run(name+"/"+ext.String(), func(t *testing.T) {
				fd := rawTCP(t, gw, nonblock)
				before := getfl(t, fd)
				d := &client.Dialer{ProxyAddress: gw, Extensions: ext}
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				conn, err := d.Handshake(ctx, newFDConn(fd), "tcp", "echo.test:"+itoa16(echo.Port()))
				if err != nil {
					t.Fatal(err)
				}
				if conn.Extended() != (ext == client.ExtAuto) {
					t.Errorf("Extended() = %v", conn.Extended())
				}
				if after := getfl(t, fd); after != before {
					t.Errorf("file status flags %#x, were %#x", after, before)
				}
				if !r.wasAsked("echo.test") {
					t.Error("the gateway did not resolve echo.test: the name was not sent")
				}
				// The socket now carries the stream.
				msg := []byte("ping over the program's socket")
				if _, err := unix.Write(fd, msg); err != nil {
					t.Fatal(err)
				}
				c := newFDConn(fd)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
					t.Fatalf("echo: %q, %v", got, err)
				}
			})
		}
	}
}

func itoa16(p uint16) string { return string(appendUint(nil, uint64(p))) }

func TestHandshakeRefused(t *testing.T) {
	r := &stubResolver{names: map[string]netip.Addr{}}
	gw := startGateway(t, r)
	fd := rawTCP(t, gw, false)
	d := &client.Dialer{ProxyAddress: gw}
	_, err := d.Handshake(t.Context(), newFDConn(fd), "tcp", "nx.test:80")
	var re *client.ReplyError
	if !errors.As(err, &re) || re.Code != proto.ReplyNameNotFound {
		t.Fatalf("err = %v, want a ReplyError with name not found", err)
	}
	if got := handshakeErrno(err); got != unix.EHOSTUNREACH {
		t.Errorf("errno %v, want EHOSTUNREACH", got)
	}
}

func TestFDConnDeadline(t *testing.T) {
	ln := socks6test.Listen(t)
	socks6test.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(io.Discard, c)
	})
	for _, nonblock := range []bool{false, true} {
		fd := rawTCP(t, ln.Addr().String(), nonblock)
		c := newFDConn(fd)
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		start := time.Now()
		_, err := c.Read(make([]byte, 10))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("nonblock=%v: Read error %v, want a deadline error", nonblock, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("nonblock=%v: Read took %v", nonblock, d)
		}
		// A deadline moved into the past wakes a blocked Read.
		c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(50 * time.Millisecond)
			c.SetReadDeadline(time.Unix(1, 0))
		}()
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("nonblock=%v: Read after the deadline moved: %v", nonblock, err)
		}
		if fl := getfl(t, fd); (fl&unix.O_NONBLOCK != 0) != nonblock {
			t.Errorf("nonblock=%v: O_NONBLOCK changed", nonblock)
		}
	}
}
