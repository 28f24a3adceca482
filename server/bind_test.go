package server_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// e2eBind sends BIND with DST.ADDR expect and returns the control
// connection and the address from the first reply, which must succeed.
func e2eBind(t testing.TB, gw, expect string) (net.Conn, netip.AddrPort) {
	t.Helper()
	c, rep := e2eOpen(t, gw, "", "", proto.CommandBind, expect)
	if rep.Code != proto.ReplySucceeded {
		t.Fatalf("first BIND reply: %v, want succeeded", rep.Code)
	}
	ap, ok := rep.Addr.AddrPort()
	if !ok || ap.Port() == 0 || ap.Addr().IsUnspecified() {
		t.Fatalf("first BIND reply address %v: want a usable address", rep.Addr)
	}
	return c, ap
}

func TestBind(t *testing.T) {
	e2eCheckLeaks(t)
	s := &server.Server{BindTimeout: 300 * time.Millisecond,
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	gw := startGateway(t, s)

	t.Run("accepts_expected_caller", func(t *testing.T) {
		ctl, bound := e2eBind(t, gw, "127.0.0.1:0")
		peer, err := net.DialTimeout("tcp", bound.String(), e2eWait)
		if err != nil {
			t.Fatalf("dial bound address %v: %v", bound, err)
		}
		defer peer.Close()
		peer.SetDeadline(time.Now().Add(e2eWait))

		rep, err := proto.ReadReply(ctl)
		if err != nil {
			t.Fatalf("second BIND reply: %v", err)
		}
		if rep.Code != proto.ReplySucceeded {
			t.Fatalf("second BIND reply: %v, want succeeded", rep.Code)
		}
		if got, want := rep.Addr, proto.AddrFromAddrPort(netip.MustParseAddrPort(peer.LocalAddr().String())); got != want {
			t.Fatalf("second reply names %v, want the caller %v", got, want)
		}

		io.WriteString(peer, "from the caller")
		got := make([]byte, len("from the caller"))
		if _, err := io.ReadFull(ctl, got); err != nil || string(got) != "from the caller" {
			t.Fatalf("client read %q, %v", got, err)
		}
		io.WriteString(ctl, "from the client")
		got = make([]byte, len("from the client"))
		if _, err := io.ReadFull(peer, got); err != nil || string(got) != "from the client" {
			t.Fatalf("caller read %q, %v", got, err)
		}

		// The listener took one caller and is gone.
		e2eWaitRefused(t, bound.String())
		ctl.Close()
		if b, err := io.ReadAll(peer); len(b) != 0 || err != nil {
			t.Errorf("caller read %q, %v after the client closed; want EOF", b, err)
		}
	})

	t.Run("unspecified_expect_accepts_anyone", func(t *testing.T) {
		ctl, bound := e2eBind(t, gw, "0.0.0.0:0")
		peer, err := net.DialTimeout("tcp", bound.String(), e2eWait)
		if err != nil {
			t.Fatalf("dial bound address: %v", err)
		}
		defer peer.Close()
		if rep, err := proto.ReadReply(ctl); err != nil || rep.Code != proto.ReplySucceeded {
			t.Fatalf("second BIND reply %+v, %v", rep, err)
		}
	})

	t.Run("other_caller_refused", func(t *testing.T) {
		// DST.ADDR names another host: a caller from 127.0.0.1 is turned
		// away, and the wait ends in a failure reply at BindTimeout.
		ctl, bound := e2eBind(t, gw, "192.0.2.7:0")
		start := time.Now()
		peer, err := net.DialTimeout("tcp", bound.String(), e2eWait)
		if err != nil {
			t.Fatalf("dial bound address: %v", err)
		}
		defer peer.Close()
		peer.SetDeadline(time.Now().Add(e2eWait))
		if b, err := io.ReadAll(peer); len(b) != 0 {
			t.Fatalf("unexpected caller read %q, %v; want to be closed", b, err)
		}
		rep, err := proto.ReadReply(ctl)
		if err != nil {
			t.Fatalf("second BIND reply: %v", err)
		}
		if rep.Code == proto.ReplySucceeded {
			t.Fatal("second BIND reply succeeded for a caller from the wrong address")
		}
		if rep.Code != proto.ReplyTTLExpired {
			t.Errorf("second BIND reply %v, want %v", rep.Code, proto.ReplyTTLExpired)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("failure after %v, before BindTimeout", d)
		}
		e2eExpectClosed(t, ctl)
	})

	t.Run("timeout_without_caller", func(t *testing.T) {
		ctl, bound := e2eBind(t, gw, "127.0.0.1:0")
		rep, err := proto.ReadReply(ctl)
		if err != nil || rep.Code != proto.ReplyTTLExpired {
			t.Fatalf("second BIND reply %+v, %v; want ttl expired", rep, err)
		}
		e2eExpectClosed(t, ctl)
		e2eWaitRefused(t, bound.String())
	})

	t.Run("client_closes_while_waiting", func(t *testing.T) {
		s := &server.Server{BindTimeout: time.Minute,
			Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
		gw := startGateway(t, s)
		ctl, bound := e2eBind(t, gw, "127.0.0.1:0")
		e2eSessionsDrop(t, s, 1)
		ctl.Close()
		e2eWaitRefused(t, bound.String())
		e2eSessionsDrop(t, s, 0)
	})

	t.Run("data_before_second_reply", func(t *testing.T) {
		// RFC 1928 gives the client nothing to send before the second
		// reply; the gateway ends the session rather than lose the bytes.
		// DST.ADDR names another host, so that the probes below, which
		// come from 127.0.0.1, cannot be taken for the expected caller.
		ctl, bound := e2eBind(t, gw, "192.0.2.7:0")
		io.WriteString(ctl, "too early")
		e2eWaitRefused(t, bound.String())
		if b, _ := io.ReadAll(ctl); len(b) != 0 {
			if rep, _, err := proto.ParseReply(b); err != nil || rep.Code == proto.ReplySucceeded {
				t.Fatalf("after early data read %x; want a failure or nothing", b)
			}
		}
	})

	e2eSessionsDrop(t, s, 0)
}

// e2eWaitRefused waits until nothing listens at addr any more.
func e2eWaitRefused(t testing.TB, addr string) {
	t.Helper()
	var last error
	ok := socks6test.WaitFor(e2eWait, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		last = err
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	if !ok {
		t.Fatalf("%s still listening (last dial: %v)", addr, last)
	}
}

// A BIND for any peer (0.0.0.0) leaves the policy to the caller's
// address: a network rule that denies BIND from 127.0.0.0/8 keeps such a
// caller out (it is closed, and the BIND goes on waiting), as it does
// for a BIND that names its peer.
func TestBindAnyPeerPolicy(t *testing.T) {
	e2eCheckLeaks(t)
	s := &server.Server{BindTimeout: 500 * time.Millisecond, Settings: server.Settings{
		Guard: server.Guard{AllowLoopback: true},
		Policy: &server.Rules{Default: server.Allow, Rules: []server.Rule{
			{Action: server.Deny, Commands: []proto.Command{proto.CommandBind}, Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		}},
	}}
	gw := startGateway(t, s)
	ctl, bound := e2eBind(t, gw, "0.0.0.0:0")
	peer, err := net.DialTimeout("tcp", bound.String(), e2eWait)
	if err != nil {
		t.Fatalf("dial bound address %v: %v", bound, err)
	}
	defer peer.Close()
	peer.SetReadDeadline(time.Now().Add(e2eWait))
	if n, err := peer.Read(make([]byte, 1)); err == nil {
		t.Errorf("denied caller read %d bytes; want its connection closed", n)
	}
	rep, err := proto.ReadReply(ctl)
	if err != nil {
		t.Fatalf("second BIND reply: %v", err)
	}
	if rep.Code == proto.ReplySucceeded {
		t.Fatalf("second BIND reply succeeded for a denied caller (%v)", rep.Addr)
	}
}
