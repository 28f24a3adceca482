package server_test

import (
	"net"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// e2eDialFrom connects to the gateway from the loopback address src
// (127.0.0.0/8 is all on lo), so that tests can play several client
// hosts.
func e2eDialFrom(t testing.TB, gw, src string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: e2eWait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", gw)
	if err != nil {
		t.Fatalf("dial gateway from %s: %v", src, err)
	}
	c.SetDeadline(time.Now().Add(e2eWait))
	t.Cleanup(func() { c.Close() })
	return c
}

// e2eConnectFrom is e2eConnect from a given source address; it returns
// the connection and the reply code.
func e2eConnectFrom(t testing.TB, gw, src, user, pass, target string) (net.Conn, proto.ReplyCode) {
	t.Helper()
	c := e2eDialFrom(t, gw, src)
	e2eGreet(t, c, user, pass)
	return c, e2eRequest(t, c, proto.CommandConnect, e2eAddr(t, target)).Code
}

func TestLimits(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	const n = 3

	// hold opens n sessions that must succeed and checks they echo.
	hold := func(t *testing.T, gw, src, user, pass string) []net.Conn {
		var held []net.Conn
		for i := range n {
			c, code := e2eConnectFrom(t, gw, src, user, pass, echo)
			if code != proto.ReplySucceeded {
				t.Fatalf("session %d of %d: %v", i+1, n, code)
			}
			held = append(held, c)
		}
		return held
	}
	// still checks that held sessions are unaffected.
	still := func(t *testing.T, held []net.Conn) {
		t.Helper()
		for _, c := range held {
			e2eEcho(t, c, "unaffected")
		}
	}

	t.Run("sessions", func(t *testing.T) {
		s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true},
			Limits: server.Limits{Sessions: n}}}
		gw := startGateway(t, s)
		held := hold(t, gw, "127.0.0.1", "", "")
		for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
			if _, code := e2eConnectFrom(t, gw, src, "", "", echo); code != proto.ReplyGeneralFailure {
				t.Fatalf("session %d from %s: %v, want general failure", n+1, src, code)
			}
		}
		still(t, held)
		e2eSessionsDrop(t, s, n)
		held[0].Close()
		e2eSessionsDrop(t, s, n-1)
		c, code := e2eConnectFrom(t, gw, "127.0.0.2", "", "", echo)
		if code != proto.ReplySucceeded {
			t.Fatalf("after one closed: %v, want succeeded", code)
		}
		e2eEcho(t, c, "in again")
		still(t, held[1:])
	})

	t.Run("per_user", func(t *testing.T) {
		s := &server.Server{Settings: server.Settings{
			Auth:   e2eUsers(t, "alice", "wonderland", "bob", "builder"),
			Guard:  server.Guard{AllowLoopback: true},
			Limits: server.Limits{PerUser: n}}}
		gw := startGateway(t, s)
		held := hold(t, gw, "127.0.0.1", "alice", "wonderland")
		// From another host too: the limit is per user.
		if _, code := e2eConnectFrom(t, gw, "127.0.0.2", "alice", "wonderland", echo); code != proto.ReplyNotAllowed {
			t.Fatalf("alice's session %d: %v, want not allowed", n+1, code)
		}
		bob, code := e2eConnectFrom(t, gw, "127.0.0.1", "bob", "builder", echo)
		if code != proto.ReplySucceeded {
			t.Fatalf("bob while alice is full: %v, want succeeded", code)
		}
		e2eEcho(t, bob, "bob is unaffected")
		still(t, held)
		held[1].Close()
		e2eSessionsDrop(t, s, n)
		c, code := e2eConnectFrom(t, gw, "127.0.0.1", "alice", "wonderland", echo)
		if code != proto.ReplySucceeded {
			t.Fatalf("alice after one closed: %v, want succeeded", code)
		}
		e2eEcho(t, c, "alice again")
	})

	t.Run("per_client", func(t *testing.T) {
		s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true},
			Limits: server.Limits{PerClient: n}}}
		gw := startGateway(t, s)
		held := hold(t, gw, "127.0.0.1", "", "")
		if _, code := e2eConnectFrom(t, gw, "127.0.0.1", "", "", echo); code != proto.ReplyNotAllowed {
			t.Fatalf("session %d from 127.0.0.1: %v, want not allowed", n+1, code)
		}
		other, code := e2eConnectFrom(t, gw, "127.0.0.2", "", "", echo)
		if code != proto.ReplySucceeded {
			t.Fatalf("another client: %v, want succeeded", code)
		}
		e2eEcho(t, other, "other client unaffected")
		still(t, held)
		held[2].Close()
		e2eSessionsDrop(t, s, n)
		c, code := e2eConnectFrom(t, gw, "127.0.0.1", "", "", echo)
		if code != proto.ReplySucceeded {
			t.Fatalf("after one closed: %v, want succeeded", code)
		}
		e2eEcho(t, c, "in again")
	})

	t.Run("refused_sessions_do_not_count", func(t *testing.T) {
		// A request refused by a limit or by policy holds no place.
		s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true},
			Limits: server.Limits{Sessions: 1}}}
		gw := startGateway(t, s)
		for range 5 {
			if code := e2eReplyCode(t, gw, "", "", e2eClosedPort(t)); code != proto.ReplyConnectionRefused {
				t.Fatalf("reply %v, want connection refused", code)
			}
			// The place is given back as the session closes, just after
			// its failure reply.
			e2eSessionsDrop(t, s, 0)
		}
		e2eSessionsDrop(t, s, 0)
		c := e2eConnect(t, gw, "", "", echo)
		e2eEcho(t, c, "one place, free")
	})

	t.Run("udp_and_bind_count", func(t *testing.T) {
		s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true},
			Limits: server.Limits{Sessions: 2}}}
		gw := startGateway(t, s)
		e2eUDPAssociate(t, gw, "0.0.0.0:0")
		e2eBind(t, gw, "127.0.0.1:0")
		if code := e2eReplyCode(t, gw, "", "", echo); code != proto.ReplyGeneralFailure {
			t.Fatalf("third session: %v, want general failure", code)
		}
	})

	t.Run("reload_changes_limits", func(t *testing.T) {
		s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true},
			Limits: server.Limits{Sessions: 1}}}
		gw := startGateway(t, s)
		held := e2eConnect(t, gw, "", "", echo)
		if code := e2eReplyCode(t, gw, "", "", echo); code != proto.ReplyGeneralFailure {
			t.Fatalf("second session: %v, want general failure", code)
		}
		s.Reload(server.Settings{Guard: server.Guard{AllowLoopback: true}, Limits: server.Limits{Sessions: 2}})
		c := e2eConnect(t, gw, "", "", echo)
		e2eEcho(t, c, "room after reload")
		e2eEcho(t, held, "held")
	})
}
