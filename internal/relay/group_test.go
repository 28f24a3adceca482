package relay

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestGroup: Close ends every running session of a group, sessions that
// end on their own are forgotten, and a session started after Close is
// closed at once.
func TestGroup(t *testing.T) {
	var g Group
	pair := func() (net.Conn, net.Conn, net.Conn, net.Conn) {
		a1, a2 := tcpPair(t)
		b1, b2 := tcpPair(t)
		return a1, a2, b1, b2
	}
	ended := make(chan error, 4)
	done := func(_ Stats, err error) { ended <- err }

	// One that ends on its own.
	a1, a2, b1, b2 := pair()
	g.Start(a2, b1, Options{}, done)
	a1.Close()
	b2.Close()
	wait(t, ended)
	if n := g.Len(); n != 0 {
		t.Fatalf("Len = %d after a session ended, want 0", n)
	}

	// Two that run until Close.
	var far []net.Conn
	for range 2 {
		a1, a2, b1, b2 := pair()
		g.Start(a2, b1, Options{}, done)
		far = append(far, a1, b2)
	}
	if n := g.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	g.Close()
	wait(t, ended)
	wait(t, ended)
	for _, c := range far {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
			t.Errorf("after Close, the far end reads %v, want EOF or a reset", err)
		}
	}

	// Started after Close: closed at once.
	a1, a2, b1, b2 = pair()
	defer a1.Close()
	defer b2.Close()
	g.Start(a2, b1, Options{}, done)
	wait(t, ended)
}

func wait(t *testing.T, ch chan error) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("a session did not end")
	}
}
