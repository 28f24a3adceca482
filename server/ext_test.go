package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/resolver"
)

// The extension tests speak frames with proto directly, so that each
// message the gateway sends is checked byte for byte against the draft,
// independently of the client library.

// extDial connects, offers 0xC6 (plus no-auth and username/password) and
// expects the gateway to select it.
func extDial(t testing.TB, gw string) (net.Conn, []proto.Method) {
	t.Helper()
	c := e2eDial(t, gw)
	methods := []proto.Method{proto.MethodNoAuth, proto.MethodUserPass, proto.MethodExtensions}
	if err := proto.Write(c, proto.Greeting{Methods: methods}); err != nil {
		t.Fatal(err)
	}
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		t.Fatalf("method selection: %v", err)
	}
	if sel != [2]byte{5, byte(proto.MethodExtensions)} {
		t.Fatalf("method selection % x, want 05 c6", sel)
	}
	return c, methods
}

// extHello negotiates the extensions and returns the HELLO_ACK.
func extHello(t testing.TB, gw, user, pass string) (net.Conn, proto.HelloAck) {
	t.Helper()
	c, methods := extDial(t, gw)
	h := proto.Hello{Methods: methods, Auth: proto.MethodNoAuth}
	if user != "" {
		h.Auth, h.Username, h.Password = proto.MethodUserPass, user, pass
	}
	if err := proto.WriteFrame(c, h); err != nil {
		t.Fatal(err)
	}
	return c, extReadAck(t, c)
}

func extReadAck(t testing.TB, c net.Conn) proto.HelloAck {
	t.Helper()
	f := extReadFrame(t, c)
	if f.Type != proto.FrameHelloAck {
		t.Fatalf("first frame %v, want HELLO_ACK", f.Type)
	}
	ack, err := proto.ParseHelloAck(f.Value)
	if err != nil {
		t.Fatalf("HELLO_ACK: %v", err)
	}
	return ack
}

func extReadFrame(t testing.TB, c net.Conn) proto.Frame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(e2eWait))
	f, err := proto.ReadFrame(c, nil)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// extReply reads frames until a REPLY and decodes it for cmd.
func extReply(t testing.TB, c net.Conn, cmd proto.Command) proto.ExtReply {
	t.Helper()
	for {
		f := extReadFrame(t, c)
		if f.Type != proto.FrameReply {
			continue
		}
		r, err := proto.ParseExtReply(f.Value, cmd)
		if err != nil {
			t.Fatalf("REPLY: %v", err)
		}
		return r
	}
}

// extSendRaw sends f as it is, whatever its type and value.
func extSendRaw(t testing.TB, c net.Conn, f proto.Frame) {
	t.Helper()
	b, err := f.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func extSend(t testing.TB, c net.Conn, m proto.Message) {
	t.Helper()
	if err := proto.WriteFrame(c, m); err != nil {
		t.Fatal(err)
	}
}

// extExpectClose expects a CLOSE with reason, then EOF.
func extExpectClose(t testing.TB, c net.Conn, reason proto.ReplyCode) {
	t.Helper()
	f := extReadFrame(t, c)
	if f.Type != proto.FrameClose {
		t.Fatalf("got %v, want CLOSE", f.Type)
	}
	cl, err := proto.ParseClose(f.Value)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Reason != reason {
		t.Fatalf("CLOSE reason %v, want %v", cl.Reason, reason)
	}
	e2eExpectClosed(t, c)
}

// extStub is a resolver for these tests: fixed answers, NXDOMAIN and
// SERVFAIL names, a slow name, and a count of lookups.
type extStub struct {
	mu    sync.Mutex
	names map[string][]netip.Addr
	calls int
}

func (r *extStub) Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	switch host {
	case "nx.test":
		return nil, &resolver.Error{Name: host, Kind: resolver.NotFound}
	case "slow.test":
		// 127.0.0.1 after 300 ms: a lookup that datagrams queue behind.
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if network == "ip4" {
			return []resolver.Answer{{Addr: netip.MustParseAddr("127.0.0.1"), TTL: 60}}, nil
		}
		return nil, nil
	case "servfail.test":
		return nil, &resolver.Error{Name: host, Kind: resolver.ServerFailure}
	}
	ips, ok := r.names[host]
	if !ok {
		return nil, &resolver.Error{Name: host, Kind: resolver.NotFound}
	}
	var out []resolver.Answer
	for i, ip := range ips {
		if (network == "ip4") == ip.Is4() {
			out = append(out, resolver.Answer{Addr: ip, TTL: uint32(100 + i)})
		}
	}
	return out, nil
}

func extGateway(t testing.TB, st server.Settings, r server.Resolver) (*server.Server, string) {
	t.Helper()
	st.Guard.AllowLoopback = true
	s := &server.Server{HandshakeTimeout: e2eWait, Settings: st, Resolver: r}
	return s, startGateway(t, s)
}

func TestExtHello(t *testing.T) {
	e2eCheckLeaks(t)
	_, gw := extGateway(t, server.Settings{}, &extStub{})
	c, ack := extHello(t, gw, "", "")
	defer c.Close()
	if ack.Status != proto.HelloOK || ack.Version != proto.ExtVersion {
		t.Fatalf("HELLO_ACK status %v version %d", ack.Status, ack.Version)
	}
	if !ack.Features.Has(proto.FeatureResolve) {
		t.Errorf("features %v lack RESOLVE", ack.Features)
	}
	if ack.MaxFrameLen < proto.MinNegotiatedFrameLen {
		t.Errorf("max frame length %d", ack.MaxFrameLen)
	}
	if ack.SessionID == (proto.SessionID{}) {
		t.Error("zero session ID")
	}
	_, ack2 := extHello(t, gw, "", "")
	if ack2.SessionID == ack.SessionID {
		t.Error("two sessions got the same ID")
	}

	// PING is answered with the same data; an unknown (GREASE) frame is
	// skipped; CLOSE ends the connection.
	extSendRaw(t, c, proto.Frame{Type: 0x21, Value: []byte("grease")})
	extSend(t, c, proto.Ping{Opaque: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}})
	f := extReadFrame(t, c)
	if f.Type != proto.FramePong || !bytes.Equal(f.Value, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("got %v % x, want PONG 0102030405060708", f.Type, f.Value)
	}
	extSend(t, c, proto.Close{})
	e2eExpectClosed(t, c)
}

func TestExtHelloFailures(t *testing.T) {
	e2eCheckLeaks(t)
	users := e2eUsers(t, "alice", "wonderland")
	_, gw := extGateway(t, server.Settings{Auth: users}, &extStub{})

	t.Run("good credentials", func(t *testing.T) {
		c, ack := extHello(t, gw, "alice", "wonderland")
		defer c.Close()
		if ack.Status != proto.HelloOK {
			t.Fatalf("status %v", ack.Status)
		}
	})
	for _, tc := range []struct {
		name, user, pass string
	}{{"wrong password", "alice", "queen"}, {"no credentials", "", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			c, ack := extHello(t, gw, tc.user, tc.pass)
			if ack.Status != proto.HelloAuthFailed || ack.Features != 0 || ack.SessionID != (proto.SessionID{}) {
				t.Fatalf("HELLO_ACK %+v, want auth failed with no features and a zero ID", ack)
			}
			e2eExpectClosed(t, c)
		})
	}
	t.Run("transcript mismatch", func(t *testing.T) {
		c, _ := extDial(t, gw)
		extSend(t, c, proto.Hello{Methods: []proto.Method{proto.MethodExtensions}, Auth: proto.MethodUserPass, Username: "alice", Password: "wonderland"})
		if ack := extReadAck(t, c); ack.Status != proto.HelloTranscriptMismatch {
			t.Fatalf("status %v, want transcript mismatch", ack.Status)
		}
		e2eExpectClosed(t, c)
	})
	t.Run("version", func(t *testing.T) {
		c, _ := extDial(t, gw)
		// HELLO with version 2: the rest does not matter.
		extSendRaw(t, c, proto.Frame{Type: proto.FrameHello, Value: []byte{2, 0, 0}})
		ack := extReadAck(t, c)
		if ack.Status != proto.HelloVersionUnsupported || ack.Version != proto.ExtVersion {
			t.Fatalf("HELLO_ACK %+v, want version unsupported, version 1", ack)
		}
		e2eExpectClosed(t, c)
	})
	t.Run("first frame not HELLO", func(t *testing.T) {
		c, _ := extDial(t, gw)
		extSend(t, c, proto.Ping{})
		extExpectClose(t, c, proto.ReplyMalformedRequest)
	})
	t.Run("oversized HELLO", func(t *testing.T) {
		c, _ := extDial(t, gw)
		// Length 20000 > 16384: refused from the header alone.
		c.Write([]byte{0x01, 0x80, 0x00, 0x4e, 0x20})
		extExpectClose(t, c, proto.ReplyMalformedRequest)
	})
}

func TestExtMalformed(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	_, gw := extGateway(t, server.Settings{}, &extStub{names: map[string][]netip.Addr{"slow.test": nil}})
	target := e2eAddr(t, echo)
	for _, tc := range []struct {
		name  string
		send  func(c net.Conn)
		check func(t *testing.T, c net.Conn)
	}{
		{"REPLY from the client", func(c net.Conn) {
			extSend(t, c, proto.ExtReply{ID: 1})
		}, nil},
		{"truncated PING", func(c net.Conn) {
			extSendRaw(t, c, proto.Frame{Type: proto.FramePing, Value: []byte{1, 2, 3}})
		}, nil},
		{"non-shortest varint", func(c net.Conn) {
			c.Write([]byte{0x40, 0x0a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0})
		}, nil},
		{"frame over the limit", func(c net.Conn) {
			c.Write([]byte{0x03, 0x80, 0x00, 0x40, 0x01}) // 16385
		}, nil},
		{"flags on CONNECT", func(c net.Conn) {
			extSendRaw(t, c, proto.Frame{Type: proto.FrameRequest, Value: []byte{1, byte(proto.CommandConnect), 1, 1, 127, 0, 0, 1, 0, 80}})
		}, nil},
		{"truncated DATAGRAM", func(c net.Conn) {
			extSendRaw(t, c, proto.Frame{Type: proto.FrameDatagram, Value: []byte{0}})
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := extHello(t, gw, "", "")
			tc.send(c)
			extExpectClose(t, c, proto.ReplyMalformedRequest)
		})
	}

	t.Run("unknown command and address type", func(t *testing.T) {
		c, _ := extHello(t, gw, "", "")
		defer c.Close()
		extSend(t, c, proto.ExtRequest{ID: 7, Command: 0x77})
		if r := extReply(t, c, 0x77); r.ID != 7 || r.Code != proto.ReplyCommandNotSupported {
			t.Fatalf("reply %+v, want ID 7, command not supported", r)
		}
		// Tor's 0xF0 is not a frame command.
		extSend(t, c, proto.ExtRequest{ID: 8, Command: 0xF0, Addr: proto.Addr{FQDN: "a.test"}})
		if r := extReply(t, c, 0xF0); r.ID != 8 || r.Code != proto.ReplyCommandNotSupported {
			t.Fatalf("reply %+v, want ID 8, command not supported", r)
		}
		// ATYP 9: the frame's length still delimits it.
		extSendRaw(t, c, proto.Frame{Type: proto.FrameRequest, Value: []byte{9, byte(proto.CommandResolve), 0, 9, 1, 2, 3}})
		if r := extReply(t, c, proto.CommandResolve); r.ID != 9 || r.Code != proto.ReplyAddressTypeNotSupported {
			t.Fatalf("reply %+v, want ID 9, address type not supported", r)
		}
		// The connection still works.
		extSend(t, c, proto.ExtRequest{ID: 10, Command: proto.CommandConnect, Addr: target})
		if r := extReply(t, c, proto.CommandConnect); r.Code != proto.ReplySucceeded {
			t.Fatalf("CONNECT after errors: %v", r.Code)
		}
		e2eEcho(t, c, "still framed correctly")
	})
}

func TestExtConnect(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	audit := e2eNewAudit()
	stub := &extStub{names: map[string][]netip.Addr{"echo.test": {echoAP.Addr()}}}
	s := &server.Server{HandshakeTimeout: e2eWait, Resolver: stub, Logger: audit.logger(),
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	gw := startGateway(t, s)

	c, _ := extHello(t, gw, "", "")
	// Optimistic data: sent with the request, before the reply.
	req, _ := proto.AppendFrame(nil, proto.ExtRequest{ID: 42, Command: proto.CommandConnect,
		Addr: proto.Addr{FQDN: "echo.test", Port: echoAP.Port()}, Options: proto.Options{proto.FamilyOption(proto.FamilyIPv4Only)}})
	c.Write(append(req, "early "...))
	r := extReply(t, c, proto.CommandConnect)
	if r.ID != 42 || r.Code != proto.ReplySucceeded {
		t.Fatalf("reply %+v", r)
	}
	got, ok := r.Options.Connected()
	if !ok || got.IP != echoAP.Addr() || got.Port != echoAP.Port() {
		t.Fatalf("CONNECTED %v %v, want %v", got, ok, echoAP)
	}
	if !r.Addr.IP.IsLoopback() || r.Addr.Port == 0 {
		t.Errorf("bound address %v", r.Addr)
	}
	buf := make([]byte, 6)
	c.SetReadDeadline(time.Now().Add(e2eWait))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "early " {
		t.Fatalf("optimistic data: %q %v", buf, err)
	}
	e2eEcho(t, c, "then raw bytes")
	c.Close()
	e2eSessionsDrop(t, s, 0)

	// FAMILY 4 (IPv6 only) leaves nothing to connect to: host unreachable.
	c, _ = extHello(t, gw, "", "")
	extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandConnect,
		Addr: proto.Addr{FQDN: "echo.test", Port: echoAP.Port()}, Options: proto.Options{proto.FamilyOption(proto.FamilyIPv6Only)}})
	if r := extReply(t, c, proto.CommandConnect); r.Code != proto.ReplyHostUnreachable {
		t.Fatalf("IPv6-only to an IPv4-only name: %v", r.Code)
	}
	e2eExpectClosed(t, c)

	// Extension codes in frames, their RFC 1928 mapping for plain clients.
	for _, tc := range []struct {
		name        string
		ext, plain5 proto.ReplyCode
	}{
		{"nx.test", proto.ReplyNameNotFound, proto.ReplyHostUnreachable},
		{"servfail.test", proto.ReplyNameServerFailure, proto.ReplyGeneralFailure},
	} {
		c, _ := extHello(t, gw, "", "")
		extSend(t, c, proto.ExtRequest{ID: 5, Command: proto.CommandConnect, Addr: proto.Addr{FQDN: tc.name, Port: 80}})
		r := extReply(t, c, proto.CommandConnect)
		if r.Code != tc.ext {
			t.Errorf("%s in a frame: %v, want %v", tc.name, r.Code, tc.ext)
		}
		if d, _ := r.Options.Diagnostic(); d == "" || strings.Contains(d, "127.0.0.1") {
			t.Errorf("%s: DIAGNOSTIC %q (want a text without addresses)", tc.name, d)
		}
		e2eExpectClosed(t, c)
		if got := e2eReplyCode(t, gw, "", "", tc.name+":80"); got != tc.plain5 {
			t.Errorf("%s to a plain client: %v, want %v", tc.name, got, tc.plain5)
		}
	}
	e2eSessionsDrop(t, s, 0)
	var found bool
	for _, rec := range audit.records(t) {
		if rec.Cmd == "connect" && rec.Target == "echo.test:"+strconv.Itoa(int(echoAP.Port())) {
			found = found || rec.Connected == echo
		}
	}
	if !found {
		t.Errorf("no audit record with connected=%s", echo)
	}
}

func TestExtResolve(t *testing.T) {
	e2eCheckLeaks(t)
	stub := &extStub{names: map[string][]netip.Addr{
		"dual.test": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
			netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")},
		"v4.test": {netip.MustParseAddr("192.0.2.7")},
	}}
	audit := e2eNewAudit()
	s := &server.Server{HandshakeTimeout: e2eWait, Resolver: stub, Logger: audit.logger()}
	gw := startGateway(t, s)
	c, _ := extHello(t, gw, "", "")
	defer c.Close()

	resolve := func(id uint64, name string, fam proto.Family) proto.ExtReply {
		t.Helper()
		req := proto.ExtRequest{ID: id, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: name}}
		if fam != 0 {
			req.Options = proto.Options{proto.FamilyOption(fam)}
		}
		extSend(t, c, req)
		r := extReply(t, c, proto.CommandResolve)
		if r.ID != id {
			t.Fatalf("reply ID %d, want %d", r.ID, id)
		}
		return r
	}
	str := func(as []proto.ResolveAnswer) string {
		var b strings.Builder
		for _, a := range as {
			b.WriteString(a.Addr.String() + "/" + strconv.Itoa(int(a.TTL)) + " ")
		}
		return strings.TrimSpace(b.String())
	}
	for _, tc := range []struct {
		name string
		fam  proto.Family
		want string
	}{
		{"dual.test", proto.FamilyAny, "2001:db8::1/102 192.0.2.1/100 2001:db8::2/103 192.0.2.2/101"},
		{"dual.test", proto.FamilyPreferIPv4, "192.0.2.1/100 2001:db8::1/102 192.0.2.2/101 2001:db8::2/103"},
		{"dual.test", proto.FamilyIPv4Only, "192.0.2.1/100 192.0.2.2/101"},
		{"dual.test", proto.FamilyIPv6Only, "2001:db8::1/102 2001:db8::2/103"},
		{"v4.test", proto.FamilyIPv6Only, ""}, // exists, no address of the family: Count 0
	} {
		r := resolve(1, tc.name, tc.fam)
		if r.Code != proto.ReplySucceeded || str(r.Answers) != tc.want {
			t.Errorf("RESOLVE %s %v: %v [%s], want [%s]", tc.name, tc.fam, r.Code, str(r.Answers), tc.want)
		}
	}
	if r := resolve(2, "nx.test", 0); r.Code != proto.ReplyNameNotFound {
		t.Errorf("NXDOMAIN: %v", r.Code)
	}
	if r := resolve(3, "servfail.test", 0); r.Code != proto.ReplyNameServerFailure {
		t.Errorf("SERVFAIL: %v", r.Code)
	}
	// An IP address is not a name.
	extSend(t, c, proto.ExtRequest{ID: 4, Command: proto.CommandResolve, Addr: proto.Addr{IP: netip.MustParseAddr("192.0.2.1")}})
	if r := extReply(t, c, proto.CommandResolve); r.Code != proto.ReplyAddressTypeNotSupported {
		t.Errorf("RESOLVE of an address: %v", r.Code)
	}

	// Several outstanding at once, on one connection; a duplicate ID is
	// malformed.
	var batch []byte
	for i := uint64(10); i < 20; i++ {
		batch, _ = proto.AppendFrame(batch, proto.ExtRequest{ID: i, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: "dual.test"}})
	}
	c.Write(batch)
	seen := map[uint64]bool{}
	for range 10 {
		r := extReply(t, c, proto.CommandResolve)
		if r.Code != proto.ReplySucceeded || len(r.Answers) != 4 || seen[r.ID] {
			t.Fatalf("batched reply %d: %v, %d answers", r.ID, r.Code, len(r.Answers))
		}
		seen[r.ID] = true
	}
	c.Close()
	e2eSessionsDrop(t, s, 0)
	n := 0
	for _, rec := range audit.records(t) {
		if rec.Msg == "resolve" {
			n++
		}
	}
	if n < 18 {
		t.Errorf("%d resolve audit records, want one per RESOLVE (18)", n)
	}
}

func TestExtResolvePolicy(t *testing.T) {
	stub := &extStub{names: map[string][]netip.Addr{"secret.test": {netip.MustParseAddr("192.0.2.9")}}}
	_, gw := extGateway(t, server.Settings{Policy: &server.Rules{Default: server.Allow, Rules: []server.Rule{
		{Action: server.Deny, Commands: []proto.Command{proto.CommandResolve}, Domains: []string{"secret.test"}},
	}}}, stub)
	c, _ := extHello(t, gw, "", "")
	defer c.Close()
	extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: "secret.test"}})
	if r := extReply(t, c, proto.CommandResolve); r.Code != proto.ReplyNotAllowed {
		t.Fatalf("denied RESOLVE: %v", r.Code)
	}
}

// Network rules apply to RESOLVE's answers as to a CONNECT: addresses the
// policy refuses are left out, and a name with only such addresses is
// refused, so that RESOLVE cannot map a network the client may not reach.
func TestExtResolvePolicyNets(t *testing.T) {
	stub := &extStub{names: map[string][]netip.Addr{
		"mixed.test":    {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.1")},
		"internal.test": {netip.MustParseAddr("10.0.0.2")},
	}}
	_, gw := extGateway(t, server.Settings{Policy: &server.Rules{Default: server.Allow, Rules: []server.Rule{
		{Action: server.Deny, Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	}}}, stub)
	c, _ := extHello(t, gw, "", "")
	defer c.Close()
	extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: "mixed.test"}})
	r := extReply(t, c, proto.CommandResolve)
	if r.Code != proto.ReplySucceeded || len(r.Answers) != 1 || r.Answers[0].Addr != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("RESOLVE mixed.test: %v %v, want only 192.0.2.1", r.Code, r.Answers)
	}
	extSend(t, c, proto.ExtRequest{ID: 2, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: "internal.test"}})
	if r := extReply(t, c, proto.CommandResolve); r.Code != proto.ReplyNotAllowed {
		t.Errorf("RESOLVE internal.test: %v %v, want not allowed", r.Code, r.Answers)
	}
}

// TestTorResolve: Tor's RESOLVE (0xF0) from a plain client gets the first
// address in BND.ADDR.
func TestTorResolve(t *testing.T) {
	e2eCheckLeaks(t)
	stub := &extStub{names: map[string][]netip.Addr{
		"dual.test": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}}}
	_, gw := extGateway(t, server.Settings{}, stub)
	c := e2eDial(t, gw)
	e2eGreet(t, c, "", "")
	r := e2eRequest(t, c, 0xF0, proto.Addr{FQDN: "dual.test"})
	if r.Code != proto.ReplySucceeded || r.Addr.IP != netip.MustParseAddr("2001:db8::1") {
		t.Fatalf("Tor RESOLVE: %v %v", r.Code, r.Addr)
	}
	e2eExpectClosed(t, c)
	c = e2eDial(t, gw)
	e2eGreet(t, c, "", "")
	if r := e2eRequest(t, c, 0xF0, proto.Addr{FQDN: "nx.test"}); r.Code != proto.ReplyHostUnreachable {
		t.Fatalf("Tor RESOLVE of a missing name: %v", r.Code)
	}
}

// TestHappyEyeballsFallback: the first address (IPv6) never answers; the
// second attempt starts after the 250 ms attempt delay, and it wins.
// (TestNetNSDualStack does this with a real blackhole route.)
func TestHappyEyeballsFallback(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	black := netip.MustParseAddr("2001:db8::dead")
	stub := &extStub{names: map[string][]netip.Addr{"he.test": {echoAP.Addr(), black}}}
	var mu sync.Mutex
	var order []string
	s := &server.Server{HandshakeTimeout: e2eWait, Resolver: stub,
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			order = append(order, addr)
			mu.Unlock()
			if strings.Contains(addr, "dead") {
				<-ctx.Done() // a SYN into a blackhole
				return nil, ctx.Err()
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	gw := startGateway(t, s)
	c, _ := extHello(t, gw, "", "")
	defer c.Close()
	start := time.Now()
	extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandConnect, Addr: proto.Addr{FQDN: "he.test", Port: echoAP.Port()}})
	r := extReply(t, c, proto.CommandConnect)
	el := time.Since(start)
	if r.Code != proto.ReplySucceeded {
		t.Fatalf("CONNECT: %v", r.Code)
	}
	if got, _ := r.Options.Connected(); got.IP != echoAP.Addr() {
		t.Errorf("CONNECTED %v, want the IPv4 address", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || !strings.Contains(order[0], "dead") {
		t.Errorf("attempts %v, want the IPv6 address first", order)
	}
	t.Logf("connected after %v (attempt delay 250ms)", el)
	if el < 200*time.Millisecond || el > 3*time.Second {
		t.Errorf("connected after %v: the second attempt should start after the 250 ms attempt delay", el)
	}
}

// TestHappyEyeballsResolutionDelay: when the A answer comes first, the
// gateway waits up to 50 ms for AAAA before connecting over IPv4.
func TestHappyEyeballsResolutionDelay(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echoAP := netip.MustParseAddrPort(echo)
	for _, tc := range []struct {
		name      string
		aaaaDelay time.Duration
		first     string // the family of the first attempt
	}{
		{"AAAA within the delay", 15 * time.Millisecond, "ip6"},
		{"AAAA too late", 400 * time.Millisecond, "ip4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v6 := netip.MustParseAddr("2001:db8::7")
			var mu sync.Mutex
			var attempts []string
			var firstAt time.Duration
			var start time.Time
			res := resolverFunc(func(ctx context.Context, network, host string) ([]resolver.Answer, error) {
				if network == "ip6" {
					select {
					case <-time.After(tc.aaaaDelay):
					case <-ctx.Done():
						return nil, ctx.Err()
					}
					return []resolver.Answer{{Addr: v6, TTL: 60}}, nil
				}
				return []resolver.Answer{{Addr: echoAP.Addr(), TTL: 60}}, nil
			})
			s := &server.Server{HandshakeTimeout: e2eWait, Resolver: res,
				Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}},
				Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					mu.Lock()
					if len(attempts) == 0 {
						firstAt = time.Since(start)
					}
					attempts = append(attempts, addr)
					mu.Unlock()
					if strings.HasPrefix(addr, "[2001:db8::7]") {
						return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
					}
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				}}
			gw := startGateway(t, s)
			c, _ := extHello(t, gw, "", "")
			defer c.Close()
			start = time.Now()
			extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandConnect, Addr: proto.Addr{FQDN: "rd.test", Port: echoAP.Port()}})
			if r := extReply(t, c, proto.CommandConnect); r.Code != proto.ReplySucceeded {
				t.Fatalf("CONNECT: %v", r.Code)
			}
			mu.Lock()
			defer mu.Unlock()
			got := "ip4"
			if strings.HasPrefix(attempts[0], "[") {
				got = "ip6"
			}
			t.Logf("attempts %v, first after %v", attempts, firstAt)
			if got != tc.first {
				t.Errorf("first attempt %s (%v), want %s", attempts[0], attempts, tc.first)
			}
			if tc.first == "ip4" && (firstAt < 40*time.Millisecond || firstAt > 300*time.Millisecond) {
				t.Errorf("IPv4 attempt started after %v, want after the 50 ms resolution delay", firstAt)
			}
		})
	}
}

// resolverFunc adapts a function to server.Resolver.
type resolverFunc func(ctx context.Context, network, host string) ([]resolver.Answer, error)

func (f resolverFunc) Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error) {
	return f(ctx, network, host)
}
