package server

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Close can take its snapshot of the sessions after a session has
// started its relay and before it has installed the relay as its closer
// (setCloser): the snapshot then holds the bare client connection, whose
// close a relay direction parked in the poller never hears of. The
// session must end anyway, and Close must not wait for the idle timeout
// (here none) or the target (here silent).
func TestCloseBeforeSetCloser(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	held := make(chan net.Conn, 1)
	go func() {
		if c, err := target.Accept(); err == nil {
			held <- c // silent: never writes, never closes
		}
	}()
	defer func() {
		select {
		case c := <-held:
			c.Close()
		default:
		}
	}()

	s := &Server{Settings: Settings{Guard: Guard{AllowLoopback: true}}, IdleTimeout: -1}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		t.Fatal(err)
	}
	var method [2]byte
	if _, err := io.ReadFull(c, method[:]); err != nil {
		t.Fatalf("method reply: %v", err)
	}
	// From here the session takes s.mu only in setCloser, after it has
	// replied and started its relay.
	s.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.mu.Unlock()
		}
	}()
	ap := netip.MustParseAddrPort(target.Addr().String())
	ip := ap.Addr().As4()
	req := append([]byte{5, 1, 0, 1}, ip[:]...)
	req = append(req, byte(ap.Port()>>8), byte(ap.Port()))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	var reply [10]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil || reply[1] != 0 {
		t.Fatalf("CONNECT reply %x, %v", reply, err)
	}
	time.Sleep(100 * time.Millisecond) // the relay parks; the session waits in setCloser
	cls := s.closersLocked()
	s.shutdown.Store(true)
	s.mu.Unlock()
	locked = false
	for _, cl := range cls {
		cl.Close()
	}
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end after its connection was closed")
	}
}
