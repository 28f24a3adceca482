package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
)

// UDP in the stream against our gateway, with real UDP echo servers on
// loopback.

var _ net.PacketConn = (*client.PacketConn)(nil)

// packetEcho sends p to addr and returns what comes back and from where.
func packetEcho(t *testing.T, pc net.PacketConn, p []byte, addr net.Addr) ([]byte, net.Addr) {
	t.Helper()
	if n, err := pc.WriteTo(p, addr); err != nil || n != len(p) {
		t.Fatalf("WriteTo %v: %d, %v", addr, n, err)
	}
	buf := make([]byte, 70000)
	pc.SetReadDeadline(time.Now().Add(testWait))
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	return buf[:n], from
}

func TestListenPacket(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	echo := socks6test.UDPEchoServer(t)
	s, gw := newGateway(t, gatewayOpts{
		users:  map[string]string{"alice": "secret"},
		names:  map[string][]netip.Addr{"echo.test": {netip.MustParseAddr("127.0.0.1")}},
		public: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
	})
	requireExtensions(t, gw)
	d := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "secret"}
	pc, err := d.ListenPacket(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// The configured IPv4 address first (the client's family), then the
	// host's IPv6 source toward the Internet, if it has one.
	if pubs := pc.PublicAddrs(); len(pubs) == 0 || pubs[0].Addr() != netip.MustParseAddr("127.0.0.1") || pubs[0].Port() == 0 {
		t.Errorf("PublicAddrs %v, want 127.0.0.1 and a port first", pubs)
	}
	if pc.IdleTimeout() <= 0 {
		t.Errorf("IdleTimeout %v", pc.IdleTimeout())
	}

	t.Run("sizes", func(t *testing.T) {
		for _, n := range []int{0, 1, 512, 1500, 16385, 65507} {
			p := bytes.Repeat([]byte{byte(n)}, n)
			got, from := packetEcho(t, pc, p, echo)
			if !bytes.Equal(got, p) || from.String() != echo.String() {
				t.Fatalf("%d bytes: got %d from %v, want them back from %v", n, len(got), from, echo)
			}
		}
		if _, err := pc.WriteTo(make([]byte, 65508), echo); !errors.Is(err, proto.ErrTooLong) {
			t.Errorf("65508 bytes: %v, want ErrTooLong", err)
		}
	})

	t.Run("name", func(t *testing.T) {
		got, from := packetEcho(t, pc, []byte("by name"), client.NamedAddr(fmt.Sprintf("echo.test:%d", echo.Port)))
		if string(got) != "by name" || from.String() != echo.String() {
			t.Fatalf("got %q from %v", got, from)
		}
	})

	t.Run("many", func(t *testing.T) {
		// 200 datagrams in flight at once, each with its index: every
		// one arrives intact (loopback drops nothing at this rate).
		const n = 200
		for i := range n {
			if _, err := pc.WriteTo(fmt.Appendf(nil, "datagram %d", i), echo); err != nil {
				t.Fatal(err)
			}
		}
		seen := make(map[string]bool)
		buf := make([]byte, 64)
		pc.SetReadDeadline(time.Now().Add(testWait))
		for len(seen) < n {
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("after %d datagrams: %v", len(seen), err)
			}
			seen[string(buf[:k])] = true
		}
		for i := range n {
			if !seen[fmt.Sprintf("datagram %d", i)] {
				t.Fatalf("datagram %d missing", i)
			}
		}
	})

	t.Run("deadline", func(t *testing.T) {
		pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := pc.ReadFrom(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("ReadFrom with nothing to read: %v, want a deadline error", err)
		}
		// A deadline moved into the past wakes a waiting ReadFrom.
		pc.SetReadDeadline(time.Time{})
		done := make(chan error, 1)
		go func() {
			_, _, err := pc.ReadFrom(make([]byte, 8))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		pc.SetReadDeadline(time.Now())
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("ReadFrom: %v, want a deadline error", err)
			}
		case <-time.After(testWait):
			t.Fatal("ReadFrom did not return")
		}
		pc.SetReadDeadline(time.Time{})
	})

	t.Run("close", func(t *testing.T) {
		pc2, err := d.ListenPacket(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := pc2.ReadFrom(make([]byte, 8))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		pc2.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom after Close: %v, want net.ErrClosed", err)
		}
		if _, err := pc2.WriteTo([]byte("x"), echo); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("WriteTo after Close: %v, want net.ErrClosed", err)
		}
	})

	t.Run("session", func(t *testing.T) {
		// Two associations on one session: each gets its own replies.
		ss, a, b := twoAssocs(t, d)
		if a.PublicAddrs()[0] == b.PublicAddrs()[0] {
			t.Fatalf("two associations share the external address %v", a.PublicAddrs()[0])
		}
		if got, _ := packetEcho(t, a, []byte("to a"), echo); string(got) != "to a" {
			t.Fatalf("a got %q", got)
		}
		if got, _ := packetEcho(t, b, []byte("to b"), echo); string(got) != "to b" {
			t.Fatalf("b got %q", got)
		}
		// Closing a leaves b and the session working.
		a.Close()
		if got, _ := packetEcho(t, b, []byte("still b"), echo); string(got) != "still b" {
			t.Fatalf("b got %q", got)
		}
		// The session's end fails a waiting ReadFrom.
		done := make(chan error, 1)
		go func() {
			_, _, err := b.ReadFrom(make([]byte, 8))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		ss.Close()
		if err := <-done; err == nil {
			t.Fatal("ReadFrom after the session ended: no error")
		}
	})

	pc.Close()
	waitSessions(t, s, 0)
}

func TestListenPacketRefused(t *testing.T) {
	t.Run("plain gateway", func(t *testing.T) {
		_, gw := newGateway(t, gatewayOpts{plain: true})
		_, err := (&client.Dialer{ProxyAddress: gw}).ListenPacket(testCtx(t))
		if !errors.Is(err, client.ErrNoExtensions) {
			t.Fatalf("got %v, want ErrNoExtensions", err)
		}
	})
	t.Run("quota", func(t *testing.T) {
		_, gw := newGateway(t, gatewayOpts{})
		requireExtensions(t, gw)
		ss, err := (&client.Dialer{ProxyAddress: gw}).OpenSession(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		lim, _ := ss.Limits()
		for range lim.MaxUDPAssocs {
			if _, err := ss.ListenPacket(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		}
		_, err = ss.ListenPacket(testCtx(t))
		if re := asReply(t, err); re.Code != proto.ReplyQuotaExceeded {
			t.Fatalf("association %d: %v, want quota exceeded", lim.MaxUDPAssocs+1, re.Code)
		}
	})
}

// waitSessions waits until the gateway counts want sessions.
func waitSessions(t *testing.T, s interface{ Sessions() int }, want int) {
	t.Helper()
	if !socks6test.WaitFor(testWait, func() bool { return s.Sessions() == want }) {
		t.Fatalf("gateway has %d sessions, want %d", s.Sessions(), want)
	}
}

// TestFakePacketWriteDeadline: a gateway that stops reading. One
// association's writes, without a deadline, fill the connection and
// block; the other's, with a deadline, wait behind them for the stream
// and give up at the deadline.
func TestFakePacketWriteDeadline(t *testing.T) {
	release := make(chan struct{})
	gw := fakeGateway(t, func(c net.Conn) {
		if _, ok := fakeHello(t, c, proto.HelloAck{Status: proto.HelloOK, Version: proto.ExtVersion,
			Features: proto.FeatureUDP, MaxFrameLen: proto.DefaultMaxFrameLen}); !ok {
			return
		}
		for id := uint64(1); id <= 2; id++ {
			req, ok := readRequest(t, c)
			if !ok {
				return
			}
			writeRaw(t, c, frame(t, proto.ExtReply{ID: req.ID, Command: proto.CommandUDP, AssocID: id,
				Options: proto.Options{proto.IdleTimeoutOption(time.Minute)}}))
		}
		<-release // reads nothing more
	})
	defer close(release)
	_, a, b := twoAssocs(t, &client.Dialer{ProxyAddress: gw, Timeout: -1})
	to := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}
	go func() {
		big := make([]byte, 60000)
		for {
			if _, err := a.WriteTo(big, to); err != nil {
				return // the session closed at the end of the test
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // a's writes have filled the connection
	b.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	_, err := b.WriteTo([]byte("x"), to)
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("WriteTo behind a stuck writer: %v after %v, want a deadline error after 100ms", err, time.Since(start))
	}
}

// twoAssocs opens a session through d, closed when the test ends, with
// two UDP associations on it.
func twoAssocs(t *testing.T, d *client.Dialer) (*client.Session, *client.PacketConn, *client.PacketConn) {
	t.Helper()
	ss, err := d.OpenSession(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	var pcs [2]*client.PacketConn
	for i := range pcs {
		if pcs[i], err = ss.ListenPacket(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	return ss, pcs[0], pcs[1]
}

// BenchmarkPacketEcho measures UDP in the stream end to end on loopback:
// 64-byte round trips, one at a time, from a PacketConn through the
// gateway to a UDP echo server and back.
func BenchmarkPacketEcho(b *testing.B) {
	echo := socks6test.UDPEchoServer(b)
	_, gw := newGateway(b, gatewayOpts{})
	d := &client.Dialer{ProxyAddress: gw}
	pc, err := d.ListenPacket(testCtx(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	p := make([]byte, 64)
	buf := make([]byte, 2048)
	for b.Loop() {
		if _, err := pc.WriteTo(p, echo); err != nil {
			b.Fatal(err)
		}
		if _, _, err := pc.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
}
