package server_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// UDP in the stream (command UDP, DATAGRAM frames), spoken with proto
// directly against a real gateway and real UDP sockets on loopback.

// udpOpen asks for an association and returns its REPLY.
func udpOpen(t *testing.T, c net.Conn, id uint64, opts proto.Options) proto.ExtReply {
	t.Helper()
	extSend(t, c, proto.ExtRequest{ID: id, Command: proto.CommandUDP, Addr: proto.Addr{IP: netip.IPv4Unspecified()}, Options: opts})
	r := extReply(t, c, proto.CommandUDP)
	if r.ID != id {
		t.Fatalf("REPLY for request %d, want %d", r.ID, id)
	}
	return r
}

// udpNext reads frames until a DATAGRAM and decodes it.
func udpNext(t *testing.T, c net.Conn) proto.Datagram {
	t.Helper()
	for {
		f := extReadFrame(t, c)
		if f.Type != proto.FrameDatagram {
			continue
		}
		g, err := proto.ParseDatagram(f.Value)
		if err != nil {
			t.Fatalf("DATAGRAM: %v", err)
		}
		return g
	}
}

func udpAddr(ap *net.UDPAddr) proto.Addr {
	return proto.AddrFromAddrPort(ap.AddrPort())
}

// udpPing sends PING and waits for its PONG: every frame sent before it
// has been handled, and every datagram the gateway sent before the PONG
// came first.
func udpPing(t *testing.T, c net.Conn, tag byte) []proto.Datagram {
	t.Helper()
	op := [8]byte{tag}
	extSend(t, c, proto.Ping{Opaque: op})
	var got []proto.Datagram
	for {
		f := extReadFrame(t, c)
		switch f.Type {
		case proto.FramePong:
			if p, _ := proto.ParsePong(f.Value); p.Opaque == op {
				return got
			}
		case proto.FrameDatagram:
			g, err := proto.ParseDatagram(f.Value)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, g)
		}
	}
}

func TestStreamUDP(t *testing.T) {
	e2eCheckLeaks(t)
	audit := e2eNewAudit()
	st := server.Settings{Policy: &server.Rules{Rules: []server.Rule{
		{Action: server.Deny, Ports: []server.PortRange{{Lo: 9, Hi: 9}}},
	}}}
	s := &server.Server{HandshakeTimeout: e2eWait, Settings: st, Logger: audit.logger(),
		Resolver: &extStub{names: map[string][]netip.Addr{"echo.test": {netip.MustParseAddr("127.0.0.1")}}}}
	s.Settings.Guard.AllowLoopback = true
	// Configured external addresses on loopback, so that datagrams sent
	// to them stay on loopback (without, PUBLIC_ADDR is the host's
	// source toward the Internet: TestNetNSStreamUDPPublicAddr).
	loop := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	s.Settings.Listen.PublicAddrs = loop
	gw := startGateway(t, s)
	echo := socks6test.UDPEchoServer(t)

	c, ack := extHello(t, gw, "", "")
	defer c.Close()
	if !ack.Features.Has(proto.FeatureUDP) {
		t.Fatalf("features %v lack UDP", ack.Features)
	}
	if l, ok := ack.Options.Limits(); !ok || l.MaxUDPAssocs != 16 {
		t.Fatalf("LIMITS %+v, %v: want 16 UDP associations", l, ok)
	}
	r := udpOpen(t, c, 1, nil)
	if r.Code != proto.ReplySucceeded || r.AssocID == 0 {
		t.Fatalf("REPLY %+v, want success with an association ID", r)
	}
	if d, ok := r.Options.IdleTimeout(); !ok || d != 5*time.Minute {
		t.Errorf("IDLE_TIMEOUT %v, %v: want the gateway's 5m", d, ok)
	}
	pubs := r.Options.PublicAddrs()
	if len(pubs) != 2 || pubs[0].IP != loop[0] || pubs[1].IP != loop[1] || pubs[0].Port == 0 || pubs[1].Port != pubs[0].Port {
		t.Fatalf("PUBLIC_ADDR %v, want 127.0.0.1 and ::1 (the configured ones, the client's family first) with the association's port", pubs)
	}
	ext := net.UDPAddrFromAddrPort(netip.AddrPortFrom(pubs[0].IP, pubs[0].Port))

	t.Run("echo", func(t *testing.T) {
		for _, payload := range [][]byte{[]byte("ping"), {}, bytes.Repeat([]byte{0xa5}, 60000)} {
			extSend(t, c, proto.Datagram{AssocID: r.AssocID, Addr: udpAddr(echo), Payload: payload})
			g := udpNext(t, c)
			if g.AssocID != r.AssocID || g.Addr != udpAddr(echo) || !bytes.Equal(g.Payload, payload) {
				t.Fatalf("got assoc %d from %v, %d bytes; want %d from %v, %d bytes",
					g.AssocID, g.Addr, len(g.Payload), r.AssocID, echo, len(payload))
			}
		}
	})

	t.Run("name", func(t *testing.T) {
		extSend(t, c, proto.Datagram{AssocID: r.AssocID, Addr: proto.Addr{FQDN: "echo.test", Port: uint16(echo.Port)}, Payload: []byte("by name")})
		g := udpNext(t, c)
		if g.Addr != udpAddr(echo) || string(g.Payload) != "by name" {
			t.Fatalf("got %q from %v, want the echo from %v", g.Payload, g.Addr, echo)
		}
	})

	t.Run("filtering", func(t *testing.T) {
		// A stranger's datagram to the association's port is not
		// passed on until the association has sent to the stranger.
		stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer stranger.Close()
		if _, err := stranger.WriteToUDP([]byte("unasked"), ext); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if got := udpPing(t, c, 1); len(got) != 0 {
			t.Fatalf("a stranger's datagram reached the client: %+v", got)
		}
		extSend(t, c, proto.Datagram{AssocID: r.AssocID, Addr: udpAddr(stranger.LocalAddr().(*net.UDPAddr)), Payload: []byte("hello")})
		buf := make([]byte, 64)
		stranger.SetReadDeadline(time.Now().Add(e2eWait))
		n, from, err := stranger.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "hello" || from.Port() != uint16(ext.Port) {
			t.Fatalf("stranger got %q from %v (%v), want hello from port %d", buf[:n], from, err, ext.Port)
		}
		if _, err := stranger.WriteToUDP([]byte("answer"), ext); err != nil {
			t.Fatal(err)
		}
		g := udpNext(t, c)
		if string(g.Payload) != "answer" || g.Addr != udpAddr(stranger.LocalAddr().(*net.UDPAddr)) {
			t.Fatalf("got %q from %v, want the answer", g.Payload, g.Addr)
		}
	})

	t.Run("dropped", func(t *testing.T) {
		// Denied by policy, unresolvable, port 0, unknown association:
		// dropped without an answer, and the session goes on.
		extSend(t, c, proto.Datagram{AssocID: r.AssocID, Addr: proto.Addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 9}, Payload: []byte("denied")})
		extSend(t, c, proto.Datagram{AssocID: r.AssocID, Addr: proto.Addr{FQDN: "nx.test", Port: 7}, Payload: []byte("nx")})
		extSend(t, c, proto.Datagram{AssocID: r.AssocID, Addr: proto.Addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 0}, Payload: []byte("port 0")})
		extSend(t, c, proto.Datagram{AssocID: r.AssocID + 100, Addr: udpAddr(echo), Payload: []byte("unknown")})
		time.Sleep(100 * time.Millisecond)
		if got := udpPing(t, c, 2); len(got) != 0 {
			t.Fatalf("dropped datagrams got answers: %+v", got)
		}
	})

	t.Run("quota", func(t *testing.T) {
		c2, _ := extHello(t, gw, "", "")
		defer c2.Close()
		for i := uint64(1); i <= 16; i++ {
			if r := udpOpen(t, c2, i, nil); r.Code != proto.ReplySucceeded {
				t.Fatalf("association %d: %v", i, r.Code)
			}
		}
		if r := udpOpen(t, c2, 17, nil); r.Code != proto.ReplyQuotaExceeded {
			t.Fatalf("association 17: %v, want quota exceeded", r.Code)
		}
		// A connection-consuming request is refused while associations
		// live on the connection.
		extSend(t, c2, proto.ExtRequest{ID: 18, Command: proto.CommandConnect, Addr: udpAddr(echo)})
		if r := extReply(t, c2, proto.CommandConnect); r.Code != proto.ReplyMalformedRequest {
			t.Fatalf("CONNECT after UDP: %v, want malformed", r.Code)
		}
	})

	t.Run("idle", func(t *testing.T) {
		c3, _ := extHello(t, gw, "", "")
		defer c3.Close()
		r := udpOpen(t, c3, 1, proto.Options{proto.IdleTimeoutOption(time.Second)})
		if d, ok := r.Options.IdleTimeout(); !ok || d != time.Second {
			t.Fatalf("IDLE_TIMEOUT %v, %v: want the 1s asked for", d, ok)
		}
		extSend(t, c3, proto.Datagram{AssocID: r.AssocID, Addr: udpAddr(echo), Payload: []byte("before")})
		if g := udpNext(t, c3); string(g.Payload) != "before" {
			t.Fatalf("got %q", g.Payload)
		}
		time.Sleep(1500 * time.Millisecond)
		extSend(t, c3, proto.Datagram{AssocID: r.AssocID, Addr: udpAddr(echo), Payload: []byte("after")})
		time.Sleep(100 * time.Millisecond)
		if got := udpPing(t, c3, 3); len(got) != 0 {
			t.Fatalf("an idle association still relays: %+v", got)
		}
		// The connection itself stays usable.
		if r := udpOpen(t, c3, 2, nil); r.Code != proto.ReplySucceeded {
			t.Fatalf("new association after idle: %v", r.Code)
		}
	})

	t.Run("queue_bound", func(t *testing.T) {
		// 20 datagrams of 60000 bytes to a name whose lookup takes
		// 300 ms: the ones that find the queue's 256 KiB full are
		// dropped, not held (at most 4 wait, and 1 is being admitted).
		c6, _ := extHello(t, gw, "", "")
		r := udpOpen(t, c6, 1, nil)
		big := bytes.Repeat([]byte{7}, 60000)
		for range 20 {
			extSend(t, c6, proto.Datagram{AssocID: r.AssocID, Addr: proto.Addr{FQDN: "slow.test", Port: uint16(echo.Port)}, Payload: big})
		}
		udpPing(t, c6, 4) // all 20 handled by the control loop
		c6.Close()
		rec := udpAuditRecord(t, audit, c6.LocalAddr().String(), 1)
		var dropped int
		if _, err := fmt.Sscanf(rec[strings.Index(rec, `"dropped":`):], `"dropped":%d`, &dropped); err != nil || dropped < 15 {
			t.Fatalf("dropped %d (%v) of 20 datagrams, want at least 15; record %s", dropped, err, rec)
		}
	})

	t.Run("idle_default", func(t *testing.T) {
		// Without the gateway's idle timeout, an association still has
		// the draft's 300 s: the protocol cannot end one alone.
		s2 := &server.Server{HandshakeTimeout: e2eWait, IdleTimeout: -1, Logger: socks6test.Logger(t)}
		s2.Settings.Guard.AllowLoopback = true
		c7, _ := extHello(t, startGateway(t, s2), "", "")
		defer c7.Close()
		r := udpOpen(t, c7, 1, nil)
		if d, ok := r.Options.IdleTimeout(); r.Code != proto.ReplySucceeded || !ok || d != 300*time.Second {
			t.Fatalf("REPLY %v, IDLE_TIMEOUT %v, %v: want success and 300s", r.Code, d, ok)
		}
	})

	t.Run("idle_session_ends", func(t *testing.T) {
		// Once its association has idled out, a session ends after the
		// gateway's idle timeout even if the client keeps sending
		// datagrams for the association that is gone.
		s3 := &server.Server{HandshakeTimeout: e2eWait, IdleTimeout: 3 * time.Second, Logger: socks6test.Logger(t)}
		s3.Settings.Guard.AllowLoopback = true
		c8, _ := extHello(t, startGateway(t, s3), "", "")
		defer c8.Close()
		r := udpOpen(t, c8, 1, proto.Options{proto.IdleTimeoutOption(time.Second)})
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			b := make([]byte, 256)
			for {
				if _, err := c8.Read(b); err != nil {
					return
				}
			}
		}()
		time.Sleep(1500 * time.Millisecond) // the association idles out
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-closed:
				return
			case <-time.After(200 * time.Millisecond):
			}
			b, _ := proto.AppendFrame(nil, proto.Datagram{AssocID: r.AssocID, Addr: proto.Addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 9}})
			c8.Write(b)
		}
		t.Fatal("the session stayed open for 10s with only datagrams for a dead association")
	})

	t.Run("hairpin", func(t *testing.T) {
		// With the default guard (no loopback, no own addresses), one
		// association reaches another's external address on this
		// gateway, through the other's filtering; an ordinary loopback
		// service stays refused.
		s4 := &server.Server{HandshakeTimeout: e2eWait, Logger: socks6test.Logger(t)}
		s4.Settings.Listen.PublicAddrs = loop
		gw4 := startGateway(t, s4)
		ca, _ := extHello(t, gw4, "", "")
		defer ca.Close()
		cb, _ := extHello(t, gw4, "", "")
		defer cb.Close()
		ra, rb := udpOpen(t, ca, 1, nil), udpOpen(t, cb, 1, nil)
		extA, extB := ra.Options.PublicAddrs()[0], rb.Options.PublicAddrs()[0]
		extSend(t, ca, proto.Datagram{AssocID: ra.AssocID, Addr: extB, Payload: []byte("unasked")})
		time.Sleep(50 * time.Millisecond)
		if got := udpPing(t, cb, 6); len(got) != 0 {
			t.Fatalf("B got %+v before it sent to A", got)
		}
		extSend(t, cb, proto.Datagram{AssocID: rb.AssocID, Addr: extA, Payload: []byte("from b")})
		if g := udpNext(t, ca); string(g.Payload) != "from b" || g.Addr != extB {
			t.Fatalf("A got %q from %v, want from b from %v", g.Payload, g.Addr, extB)
		}
		extSend(t, ca, proto.Datagram{AssocID: ra.AssocID, Addr: extB, Payload: []byte("from a")})
		if g := udpNext(t, cb); string(g.Payload) != "from a" || g.Addr != extA {
			t.Fatalf("B got %q from %v, want from a from %v", g.Payload, g.Addr, extA)
		}
		extSend(t, ca, proto.Datagram{AssocID: ra.AssocID, Addr: udpAddr(echo), Payload: []byte("to a loopback service")})
		time.Sleep(50 * time.Millisecond)
		if got := udpPing(t, ca, 7); len(got) != 0 {
			t.Fatalf("a loopback service answered through the default guard: %+v", got)
		}
	})

	t.Run("bad", func(t *testing.T) {
		// The address of a UDP request is ignored (the draft: the client
		// sends the zero address, the gateway ignores it).
		c4, _ := extHello(t, gw, "", "")
		extSend(t, c4, proto.ExtRequest{ID: 1, Command: proto.CommandUDP, Addr: udpAddr(echo)})
		if r := extReply(t, c4, proto.CommandUDP); r.Code != proto.ReplySucceeded {
			t.Fatalf("UDP with an address: %v, want success", r.Code)
		}
		c4.Close()
		c5, _ := extHello(t, gw, "", "")
		extSendRaw(t, c5, proto.Frame{Type: proto.FrameDatagram, Value: []byte{1, 9}}) // ATYP 9
		extExpectClose(t, c5, proto.ReplyMalformedRequest)
	})

	c.Close()
	e2eSessionsDrop(t, s, 0)
	// One record per association, with its datagrams and bytes.
	rec := udpAuditRecord(t, audit, c.LocalAddr().String(), 1)
	for _, want := range []string{`"dgrams_up":5`, `"dgrams_down":5`, `"bytes_up":60016`, `"dropped":3`, `"reply":"succeeded"`} {
		if !strings.Contains(rec, want) {
			t.Errorf("audit record %s lacks %s", rec, want)
		}
	}
}

// udpAuditRecord waits for the audit record of association assoc of the
// client at client and returns it.
func udpAuditRecord(t *testing.T, audit *e2eAudit, client string, assoc int) string {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for time.Now().Before(deadline) {
		audit.mu.Lock()
		log := audit.buf.String()
		audit.mu.Unlock()
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, `"msg":"udp"`) && strings.Contains(line, fmt.Sprintf(`"assoc":%d,`, assoc)) && strings.Contains(line, `"client":"`+client+`"`) {
				return line
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no audit record of association %d of %s", assoc, client)
	return ""
}
