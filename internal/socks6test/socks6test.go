package socks6test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Listen returns a TCP listener on 127.0.0.1:0, or [::1]:0 when IPv4
// loopback is unavailable, closed when the test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln, err = net.Listen("tcp", "[::1]:0")
	}
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// A Servable is a server that ServeGateway can run: server.Server (this package
// sits below it and does not import it).
type Servable interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// ServeGateway runs srv on a Listen listener until the test ends, then shuts it
// down (5 s at most) and waits for Serve to return. It returns the
// listener's address.
func ServeGateway(t testing.TB, srv Servable) string {
	t.Helper()
	return serveGateway(t, srv.Serve, srv.Shutdown)
}

// serveGateway runs serve on a new loopback listener until the test
// ends, and then calls shutdown (5 s at most) and waits for serve.
func serveGateway(t testing.TB, serve func(net.Listener) error, shutdown func(context.Context) error) string {
	t.Helper()
	ln := Listen(t)
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// Serve accepts on ln until it is closed and runs handle for each
// connection in its own goroutine; handle owns the connection.
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	done := make(chan struct{})
	conns := make(chan net.Conn, 1024)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case conns <- c:
			default:
			}
			go handle(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
}

// EchoServer starts a TCP echo server on loopback and returns its address.
// It echoes until EOF, then half-closes, so half-close can be observed.
func EchoServer(t testing.TB) string {
	t.Helper()
	ln := Listen(t)
	Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	})
	return ln.Addr().String()
}

// UDPEchoServer starts a UDP echo server on 127.0.0.1 and returns its
// address.
func UDPEchoServer(t testing.TB) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().(*net.UDPAddr)
}

// Logger returns a logger that writes to t.Log, so a failing test shows
// the gateway's audit records and nothing is printed otherwise.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// OpenFDs returns the number of open file descriptors of this process.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}

// WaitFor polls cond every 10ms until it holds or timeout passes, and
// reports whether it held.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CheckFDs records the open-file count now and, when the test ends,
// fails it if the count has not come back to within slack of it within
// a few seconds (connections close asynchronously).
func CheckFDs(t testing.TB, slack int) {
	t.Helper()
	base := OpenFDs(t)
	t.Cleanup(func() {
		var now int
		if !WaitFor(5*time.Second, func() bool { now = OpenFDs(t); return now <= base+slack }) {
			t.Errorf("open files: %d at start, %d at end (slack %d): descriptors leaked", base, now, slack)
		}
	})
}

// CheckGoroutines fails the test if, a few seconds after it ends, more
// goroutines run than when it started (plus slack).
func CheckGoroutines(t testing.TB, slack int) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		if !WaitFor(5*time.Second, func() bool { now = runtime.NumGoroutine(); return now <= base+slack }) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Errorf("goroutines: %d at start, %d at end (slack %d); stacks:\n%s", base, now, slack, buf[:n])
		}
	})
}
