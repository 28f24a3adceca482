package server_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/resolver"
)

// e2eUDPClient is a client's UDP socket talking to an association's
// relay address.
type e2eUDPClient struct {
	t     testing.TB
	pc    *net.UDPConn
	relay netip.AddrPort
}

// e2eListenUDP opens a UDP socket on ip (port 0), closed when the test
// ends.
func e2eListenUDP(t testing.TB, ip string) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatalf("listen udp on %s: %v", ip, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// e2eUDPAssociate opens an association whose request names announce as
// the client's UDP address, and returns the control connection and the
// relay address from the reply.
func e2eUDPAssociate(t testing.TB, gw, announce string) (net.Conn, netip.AddrPort) {
	t.Helper()
	c, rep := e2eOpen(t, gw, "", "", proto.CommandUDPAssociate, announce)
	if rep.Code != proto.ReplySucceeded {
		t.Fatalf("UDP ASSOCIATE: reply %v, want succeeded", rep.Code)
	}
	ap, ok := rep.Addr.AddrPort()
	if !ok || ap.Port() == 0 || ap.Addr().IsUnspecified() {
		t.Fatalf("UDP ASSOCIATE relay address %v: want a usable address", rep.Addr)
	}
	// The control connection stays open, quietly, as long as the test
	// wants the association.
	c.SetDeadline(time.Time{})
	return c, ap
}

// send wraps payload in a UDP request header for dst with fragment
// number frag and sends it to the relay.
func (u *e2eUDPClient) send(dst proto.Addr, frag uint8, payload string) {
	u.t.Helper()
	b, err := proto.UDPHeader{Frag: frag, Addr: dst}.AppendBinary(nil)
	if err != nil {
		u.t.Fatal(err)
	}
	b = append(b, payload...)
	if _, err := u.pc.WriteToUDPAddrPort(b, u.relay); err != nil {
		u.t.Fatalf("send to relay %v: %v", u.relay, err)
	}
}

// recv reads one datagram from the relay within wait; ok is false on
// timeout.
func (u *e2eUDPClient) recv(wait time.Duration) (h proto.UDPHeader, payload string, ok bool) {
	u.t.Helper()
	buf := make([]byte, 65535)
	u.pc.SetReadDeadline(time.Now().Add(wait))
	n, from, err := u.pc.ReadFromUDPAddrPort(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return h, "", false
	}
	if err != nil {
		u.t.Fatalf("read from relay: %v", err)
	}
	if from != u.relay {
		u.t.Fatalf("datagram from %v, not from the relay %v", from, u.relay)
	}
	h, hn, err := proto.ParseUDPHeader(buf[:n])
	if err != nil {
		u.t.Fatalf("reply header %x: %v", buf[:n], err)
	}
	return h, string(buf[hn:n]), true
}

// expect reads the next datagram, which must come from src and carry
// payload.
func (u *e2eUDPClient) expect(src netip.AddrPort, payload string) {
	u.t.Helper()
	h, got, ok := u.recv(e2eWait)
	if !ok {
		u.t.Fatalf("no reply for %q", payload)
	}
	if h.Frag != 0 || h.Addr != proto.AddrFromAddrPort(src) {
		u.t.Fatalf("reply header %+v, want source %v and FRAG 0", h, src)
	}
	if got != payload {
		u.t.Fatalf("reply payload %q, want %q", got, payload)
	}
}

// expectNothing checks that no datagram arrives for a while.
func (u *e2eUDPClient) expectNothing() {
	u.t.Helper()
	if h, p, ok := u.recv(200 * time.Millisecond); ok {
		u.t.Fatalf("unexpected datagram %+v %q", h, p)
	}
}

func TestUDPAssociate(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.UDPEchoServer(t).AddrPort()
	echo = netip.AddrPortFrom(echo.Addr().Unmap(), echo.Port())
	echoAddr := proto.AddrFromAddrPort(echo)
	s := &server.Server{
		Resolver: e2eStubResolver(map[string][]netip.Addr{"echo.test": {echo.Addr()}}),
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}},
	}
	gw := startGateway(t, s)

	// open starts an association for a client socket that announces its
	// address.
	open := func(t *testing.T) (*e2eUDPClient, net.Conn) {
		pc := e2eListenUDP(t, "127.0.0.1")
		ctl, relay := e2eUDPAssociate(t, gw, pc.LocalAddr().String())
		return &e2eUDPClient{t: t, pc: pc, relay: relay}, ctl
	}

	t.Run("echo", func(t *testing.T) {
		u, _ := open(t)
		u.send(echoAddr, 0, "ping")
		u.expect(echo, "ping")
		u.send(echoAddr, 0, "pong")
		u.expect(echo, "pong")
	})

	t.Run("domain_name_target", func(t *testing.T) {
		u, _ := open(t)
		u.send(proto.Addr{FQDN: "echo.test", Port: echo.Port()}, 0, "by name")
		u.expect(echo, "by name")
	})

	t.Run("zero_length", func(t *testing.T) {
		u, _ := open(t)
		u.send(echoAddr, 0, "")
		u.expect(echo, "")
	})

	t.Run("large", func(t *testing.T) {
		u, _ := open(t)
		big := string(make([]byte, 60000))
		u.send(echoAddr, 0, big)
		u.expect(echo, big)
	})

	t.Run("fragment_dropped", func(t *testing.T) {
		u, _ := open(t)
		u.send(echoAddr, 1, "fragment one")
		u.send(echoAddr, 0x81, "last fragment")
		u.send(echoAddr, 0, "whole")
		u.expect(echo, "whole")
		u.expectNothing()
	})

	t.Run("other_port_dropped", func(t *testing.T) {
		u, _ := open(t)
		other := &e2eUDPClient{t: t, pc: e2eListenUDP(t, "127.0.0.1"), relay: u.relay}
		other.send(echoAddr, 0, "intruder")
		u.send(echoAddr, 0, "owner")
		u.expect(echo, "owner")
		u.expectNothing()
		other.expectNothing()
	})

	t.Run("other_ip_dropped", func(t *testing.T) {
		// The client does not announce its port, so the gateway learns
		// it from the first datagram, which must come from the control
		// connection's IP.
		pc := e2eListenUDP(t, "127.0.0.1")
		ctl, relay := e2eUDPAssociate(t, gw, "0.0.0.0:0")
		defer ctl.Close()
		intruder := &e2eUDPClient{t: t, pc: e2eListenUDP(t, "127.0.0.2"), relay: relay}
		intruder.send(echoAddr, 0, "intruder")
		intruder.expectNothing()
		u := &e2eUDPClient{t: t, pc: pc, relay: relay}
		u.send(echoAddr, 0, "owner")
		u.expect(echo, "owner")
		u.expectNothing()
		intruder.send(echoAddr, 0, "intruder again")
		intruder.expectNothing()
		u.expectNothing()
	})

	t.Run("unsolicited_reply_dropped", func(t *testing.T) {
		// Only destinations the client has sent to may answer: a stranger
		// that learns the association's outbound address gets nothing
		// through.
		u, _ := open(t)
		target := e2eListenUDP(t, "127.0.0.1")
		tAddr := target.LocalAddr().(*net.UDPAddr).AddrPort()
		u.send(proto.AddrFromAddrPort(tAddr), 0, "hello target")
		buf := make([]byte, 100)
		target.SetReadDeadline(time.Now().Add(e2eWait))
		n, outbound, err := target.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "hello target" {
			t.Fatalf("target read %q, %v", buf[:n], err)
		}
		stranger := e2eListenUDP(t, "127.0.0.1")
		stranger.WriteToUDPAddrPort([]byte("spoofed"), outbound)
		u.expectNothing()
		target.WriteToUDPAddrPort([]byte("genuine"), outbound)
		u.expect(tAddr, "genuine")
	})

	t.Run("ipv6_client_ipv4_target", func(t *testing.T) {
		// A client that reaches the gateway over IPv6 gets an IPv6 relay
		// address and can still send to IPv4 targets.
		ln, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		s6 := &server.Server{Logger: socks6test.Logger(t), Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
		go s6.Serve(ln)
		t.Cleanup(func() { s6.Close() })
		pc := e2eListenUDP(t, "::1")
		_, relay := e2eUDPAssociate(t, ln.Addr().String(), pc.LocalAddr().String())
		if !relay.Addr().Is6() || relay.Addr().Is4In6() {
			t.Fatalf("relay address %v for an IPv6 client, want IPv6", relay)
		}
		u := &e2eUDPClient{t: t, pc: pc, relay: relay}
		u.send(echoAddr, 0, "six to four")
		u.expect(echo, "six to four")
	})

	t.Run("control_close_ends_association", func(t *testing.T) {
		u, ctl := open(t)
		u.send(echoAddr, 0, "before")
		u.expect(echo, "before")
		ctl.Close()
		e2eSessionsDrop(t, s, 0)
		// The relay socket is closed: a datagram to it draws an ICMP
		// port unreachable, which a connected socket reports.
		probe, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(u.relay))
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		refused := socks6test.WaitFor(e2eWait, func() bool {
			probe.Write([]byte{0, 0, 0, 1, 127, 0, 0, 1, 0, 7})
			probe.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err := probe.Read(make([]byte, 64))
			return errors.Is(err, syscall.ECONNREFUSED)
		})
		if !refused {
			t.Fatalf("relay %v still open after the control connection closed", u.relay)
		}
	})

	e2eSessionsDrop(t, s, 0)
}

func TestUDPAssociateAudit(t *testing.T) {
	echo := socks6test.UDPEchoServer(t).AddrPort()
	audit := e2eNewAudit()
	s := &server.Server{Logger: audit.logger(), Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	gw := startGateway(t, s)
	pc := e2eListenUDP(t, "127.0.0.1")
	ctl, relay := e2eUDPAssociate(t, gw, pc.LocalAddr().String())
	u := &e2eUDPClient{t: t, pc: pc, relay: relay}
	for _, p := range []string{"one", "three", ""} {
		u.send(proto.AddrFromAddrPort(echo), 0, p)
		u.expect(echo, p)
	}
	ctl.Close()
	rec := audit.waitSession(t)
	if rec.Cmd != "udp-associate" || rec.Bound != relay.String() || rec.Reply != proto.ReplySucceeded.String() {
		t.Errorf("record = %+v", rec)
	}
	if rec.BytesUp != 8 || rec.BytesDown != 8 {
		t.Errorf("bytes_up=%d bytes_down=%d, want 8 each (payload bytes)", rec.BytesUp, rec.BytesDown)
	}
}

// TestUDPAssociateGuard checks that datagrams to targets the guard or
// policy refuses are dropped.
func TestUDPAssociateGuard(t *testing.T) {
	echo := socks6test.UDPEchoServer(t).AddrPort()
	for _, tt := range []struct {
		name string
		st   server.Settings
		dst  proto.Addr
	}{
		{"loopback_guarded", server.Settings{}, proto.AddrFromAddrPort(echo)},
		{"policy_deny", server.Settings{Guard: server.Guard{AllowLoopback: true},
			Policy: &server.Rules{Rules: []server.Rule{{Action: server.Deny, Ports: []server.PortRange{{Lo: echo.Port(), Hi: echo.Port()}}}}}},
			proto.AddrFromAddrPort(echo)},
		{"name_into_loopback", server.Settings{}, proto.Addr{FQDN: "evil.test", Port: echo.Port()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &server.Server{Settings: tt.st,
				Resolver: e2eStubResolver(map[string][]netip.Addr{"evil.test": {netip.MustParseAddr("127.0.0.1")}})}
			gw := startGateway(t, s)
			pc := e2eListenUDP(t, "127.0.0.1")
			_, relay := e2eUDPAssociate(t, gw, pc.LocalAddr().String())
			u := &e2eUDPClient{t: t, pc: pc, relay: relay}
			u.send(tt.dst, 0, "should not pass")
			u.expectNothing()
		})
	}
}

// blockingResolver answers nothing: each Lookup waits for its context and
// reports when it ended.
type blockingResolver struct{ ended chan time.Time }

func (r blockingResolver) Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error) {
	<-ctx.Done()
	select {
	case r.ended <- time.Now():
	default:
	}
	return nil, ctx.Err()
}

// The association's name lookups end with it: closing the control
// connection while a datagram's name is being resolved ends the lookup
// at once, not when the dial timeout (here 5 s) runs out; the session,
// its slot and its sockets go with it.
func TestUDPAssociateLookupEndsWithAssociation(t *testing.T) {
	e2eCheckLeaks(t)
	res := blockingResolver{ended: make(chan time.Time, 4)}
	s := &server.Server{DialTimeout: 5 * time.Second, Resolver: res,
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	gw := startGateway(t, s)
	pc := e2eListenUDP(t, "127.0.0.1")
	ctl, relay := e2eUDPAssociate(t, gw, pc.LocalAddr().String())
	u := &e2eUDPClient{t: t, pc: pc, relay: relay}
	u.send(proto.Addr{FQDN: "slow.test", Port: 9}, 0, "waits for its name")
	time.Sleep(100 * time.Millisecond) // the relay is in the lookup
	closed := time.Now()
	ctl.Close()
	select {
	case end := <-res.ended:
		if d := end.Sub(closed); d > 2*time.Second {
			t.Errorf("the lookup ended %v after the control connection closed", d)
		}
	case <-time.After(e2eWait):
		t.Fatal("the lookup never ended")
	}
}
