package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/auth/htpasswd"
	"github.com/socks6/socks6/server/resolver"
	"golang.org/x/crypto/bcrypt"
)

// These tests throw malformed, truncated, oversized, slow and numerous
// clients at a gateway on loopback. The requirement they check: hostile
// input gets the right reply code or a closed connection, nothing else is
// affected, and there is never a panic, a leak or a stalled gateway.

var hostileDiscard = slog.New(slog.DiscardHandler)

const (
	hostileUser = "user"
	hostilePass = "pass"
)

// hostileServer returns a gateway that may reach loopback targets, logs
// nowhere (some tests open thousands of sessions), and authenticates
// hostileUser/hostilePass when auth is set.
func hostileServer(auth bool, handshake time.Duration) *server.Server {
	s := &server.Server{
		HandshakeTimeout: handshake,
		Logger:           hostileDiscard,
		Settings:         server.Settings{Guard: server.Guard{AllowLoopback: true}},
	}
	if auth {
		s.Settings.Auth = server.AuthenticatorFunc(func(ctx context.Context, user, password string) error {
			if user == hostileUser && password == hostilePass {
				return nil
			}
			return server.ErrBadCredentials
		})
	}
	return s
}

func hostileGreeting(methods ...proto.Method) []byte {
	b, err := proto.Greeting{Methods: methods}.AppendBinary(nil)
	if err != nil {
		panic(err) // constant inputs only
	}
	return b
}

func hostileUserPass(user, pass string) []byte {
	b, err := proto.UserPassRequest{Username: user, Password: pass}.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func hostileRequest(cmd proto.Command, a proto.Addr) []byte {
	b, err := proto.Request{Command: cmd, Addr: a}.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func hostileCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// hostileOut is what a gateway sent during a handshake. Absent parts are -1.
type hostileOut struct {
	method int // METHOD of the method selection
	status int // STATUS of the username/password reply
	rep    int // REP of the first reply
}

// hostileScan interprets a gateway's bytes: a method selection, then a
// username/password reply if that method was chosen and, if nothing
// failed, a reply. Anything else (bytes after a refusal, a wrong version)
// is an error.
// hostileScanFrames checks what the gateway sent after selecting the
// extensions: whole frames, HELLO_ACK or CLOSE first; a REPLY's code is
// recorded in rep.
func hostileScanFrames(r hostileOut, rest []byte) (hostileOut, error) {
	for i := 0; len(rest) > 0; i++ {
		f, n, err := proto.ParseFrame(rest)
		if err != nil {
			return r, fmt.Errorf("frame %d: %v", i, err)
		}
		rest = rest[n:]
		switch {
		case i == 0 && f.Type != proto.FrameHelloAck && f.Type != proto.FrameClose:
			return r, fmt.Errorf("first frame %v, want HELLO_ACK or CLOSE", f.Type)
		case f.Type == proto.FrameReply:
			rep, err := proto.ParseExtReply(f.Value, proto.CommandConnect)
			if err != nil {
				return r, fmt.Errorf("REPLY: %v", err)
			}
			r.rep = int(rep.Code)
		}
	}
	return r, nil
}

func hostileScan(out []byte) (hostileOut, error) {
	r := hostileOut{-1, -1, -1}
	if len(out) == 0 {
		return r, nil
	}
	if len(out) < 2 || out[0] != proto.Version5 {
		return r, fmt.Errorf("bad method selection % x", out[:min(len(out), 2)])
	}
	r.method = int(out[1])
	rest := out[2:]
	switch proto.Method(r.method) {
	case proto.MethodNoAcceptable:
		if len(rest) > 0 {
			return r, fmt.Errorf("%d bytes after refusing all methods", len(rest))
		}
		return r, nil
	case proto.MethodUserPass:
		if len(rest) == 0 {
			return r, nil
		}
		if len(rest) < 2 || rest[0] != proto.UserPassVersion {
			return r, fmt.Errorf("bad username/password reply % x", rest[:min(len(rest), 2)])
		}
		r.status = int(rest[1])
		rest = rest[2:]
		if r.status != proto.UserPassSuccess && len(rest) > 0 {
			return r, fmt.Errorf("%d bytes after an authentication failure", len(rest))
		}
	case proto.MethodNoAuth:
	case proto.MethodExtensions:
		return hostileScanFrames(r, rest)
	default:
		return r, fmt.Errorf("gateway selected method %#x", r.method)
	}
	if len(rest) == 0 {
		return r, nil
	}
	if len(rest) < 2 || rest[0] != proto.Version5 {
		return r, fmt.Errorf("bad reply % x", rest[:min(len(rest), 2)])
	}
	r.rep = int(rest[1])
	return r, nil
}

// hostileDrain reads until the gateway closes the connection or limit
// passes, and reports whether it closed (end of stream or a reset, as
// opposed to the limit running out). It keeps at most 64 KiB.
func hostileDrain(c net.Conn, limit time.Duration) (out []byte, closed bool) {
	c.SetReadDeadline(time.Now().Add(limit))
	var buf [4096]byte
	for {
		n, err := c.Read(buf[:])
		if len(out) < 64<<10 {
			out = append(out, buf[:n]...)
		}
		if err != nil {
			return out, !errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

func hostileDial(ctx context.Context, addr string) (*net.TCPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// hostileConnect runs a pipelined handshake (greeting, credentials if
// user is set, CONNECT) through the gateway at gw and returns the
// connection, ready to relay. It returns errors instead of failing the
// test so that goroutines may call it.
func hostileConnect(ctx context.Context, gw string, user, pass string, target string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		return nil, err
	}
	c, err := hostileDial(ctx, gw)
	if err != nil {
		return nil, err
	}
	if err := hostileHandshake(c, user, pass, proto.AddrFromAddrPort(ap)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func hostileHandshake(c net.Conn, user, pass string, target proto.Addr) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	msg := hostileGreeting(proto.MethodNoAuth)
	if user != "" {
		msg = hostileCat(hostileGreeting(proto.MethodUserPass), hostileUserPass(user, pass))
	}
	msg = hostileCat(msg, hostileRequest(proto.CommandConnect, target))
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("write handshake: %w", err)
	}
	var b [4 + 16 + 2]byte
	if _, err := io.ReadFull(c, b[:2]); err != nil {
		return fmt.Errorf("read method selection: %w", err)
	}
	want := proto.MethodNoAuth
	if user != "" {
		want = proto.MethodUserPass
	}
	if b[0] != proto.Version5 || proto.Method(b[1]) != want {
		return fmt.Errorf("method selection % x, want method %v", b[:2], want)
	}
	if user != "" {
		if _, err := io.ReadFull(c, b[:2]); err != nil {
			return fmt.Errorf("read username/password reply: %w", err)
		}
		if b[0] != proto.UserPassVersion || b[1] != proto.UserPassSuccess {
			return fmt.Errorf("username/password reply % x", b[:2])
		}
	}
	if _, err := io.ReadFull(c, b[:4]); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if b[0] != proto.Version5 || b[1] != byte(proto.ReplySucceeded) {
		return fmt.Errorf("reply % x, want success", b[:4])
	}
	n := 4 + 2
	switch proto.AddrType(b[3]) {
	case proto.AddrTypeIPv4:
	case proto.AddrTypeIPv6:
		n = 16 + 2
	default:
		return fmt.Errorf("reply with address type %#x", b[3])
	}
	if _, err := io.ReadFull(c, b[:n]); err != nil {
		return fmt.Errorf("read bound address: %w", err)
	}
	return nil
}

// hostileRoundTrip sends msg through an echo relay and checks it comes
// back.
func hostileRoundTrip(c net.Conn, msg []byte) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("write to echo: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read from echo: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo returned %q, want %q", got, msg)
	}
	return nil
}

// hostileCheckServes runs one normal CONNECT and echo round trip through
// gw, then checks that the gateway counts no sessions once it is done.
func hostileCheckServes(t *testing.T, s *server.Server, gw, user, pass, echo string) {
	t.Helper()
	c, err := hostileConnect(t.Context(), gw, user, pass, echo)
	if err != nil {
		t.Errorf("normal CONNECT after the hostile clients: %v", err)
		return
	}
	if err := hostileRoundTrip(c, []byte("still serving")); err != nil {
		t.Errorf("normal CONNECT after the hostile clients: %v", err)
	}
	c.Close()
	if !socks6test.WaitFor(5*time.Second, func() bool { return s.Sessions() == 0 }) {
		t.Errorf("Sessions() = %d after every client left, want 0", s.Sessions())
	}
}

// hostileWarmUp relays one session through a gateway of its own so that
// what the process sets up once and keeps (the relay's shared poller, the
// runtime's splice pipes) exists before a test counts open files and
// goroutines.
func hostileWarmUp(t *testing.T, echo string) {
	t.Helper()
	s := hostileServer(false, 5*time.Second)
	gw := startGateway(t, s)
	hostileCheckServes(t, s, gw, "", "", echo)
}

// hostileCheckFDs waits a few seconds for the open-file count to come back
// to within slack of base. It collects garbage while it waits: the
// runtime's pooled splice pipes are closed by finalizers.
func hostileCheckFDs(t *testing.T, base, slack int) {
	t.Helper()
	var now int
	if !socks6test.WaitFor(5*time.Second, func() bool {
		runtime.GC()
		now = socks6test.OpenFDs(t)
		return now <= base+slack
	}) {
		t.Errorf("open files: %d before the hostile clients, %d after (slack %d)", base, now, slack)
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			t.Logf("open: fd %s -> %s", e.Name(), l)
		}
	}
}

// hostileParallel runs f(i) for i in [0, n) on at most width goroutines
// and waits for all of them.
func hostileParallel(n, width int, f func(i int)) {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}

// hostileSequences returns every valid client byte sequence a truncation
// test cuts: the greeting alone, greeting and credentials, and a request
// for each command and address type after them. complete reports whether
// the sequence is a whole handshake (only its strict prefixes are
// truncations) or stops before the request (every prefix including the
// whole is one).
type hostileSeq struct {
	name     string
	msg      []byte
	complete bool
}

func hostileSequences(auth bool, echo netip.AddrPort) []hostileSeq {
	head := hostileGreeting(proto.MethodNoAuth)
	seqs := []hostileSeq{{name: "greeting", msg: head}}
	if auth {
		head = hostileGreeting(proto.MethodUserPass)
		seqs = []hostileSeq{{name: "greeting", msg: head}}
		head = hostileCat(head, hostileUserPass(hostileUser, hostilePass))
		seqs = append(seqs, hostileSeq{name: "greeting+userpass", msg: head})
	}
	addrs := []struct {
		name string
		a    proto.Addr
	}{
		{"ipv4", proto.AddrFromAddrPort(echo)},
		{"ipv6", proto.Addr{IP: netip.IPv6Loopback(), Port: echo.Port()}},
		{"fqdn", proto.Addr{FQDN: "localhost", Port: echo.Port()}},
	}
	for _, cmd := range []proto.Command{proto.CommandConnect, proto.CommandBind, proto.CommandUDPAssociate} {
		for _, a := range addrs {
			seqs = append(seqs, hostileSeq{
				name:     cmd.String() + "_" + a.name,
				msg:      hostileCat(head, hostileRequest(cmd, a.a)),
				complete: true,
			})
		}
	}
	return seqs
}

// hostilePrefixes returns the distinct truncations of seqs, each named by
// the first sequence and length that produce it.
func hostilePrefixes(seqs []hostileSeq) (names []string, prefixes [][]byte) {
	seen := make(map[string]bool)
	for _, s := range seqs {
		end := len(s.msg)
		if !s.complete {
			end++
		}
		for n := range end {
			p := s.msg[:n]
			if seen[string(p)] {
				continue
			}
			seen[string(p)] = true
			names = append(names, fmt.Sprintf("%s[:%d]", s.name, n))
			prefixes = append(prefixes, p)
		}
	}
	return names, prefixes
}

// TestHostileTruncation cuts every valid client message sequence at every
// byte. With the write side then closed, the gateway must close at once
// (the handshake timeout is 30s, so a close by timeout fails); with the
// connection left open, it must close when the handshake timeout passes.
// Neither may ever see a success reply, and the gateway must serve
// normally afterwards with nothing leaked.
func TestHostileTruncation(t *testing.T) {
	echo := socks6test.EchoServer(t)
	hostileWarmUp(t, echo)
	socks6test.CheckGoroutines(t, 5)
	echoAP := netip.MustParseAddrPort(echo)

	type gateway struct {
		name string
		auth bool
	}
	gateways := []gateway{{"noauth", false}, {"userpass", true}}

	run := func(t *testing.T, handshake time.Duration, closeWrite bool) {
		type gw struct {
			gateway
			s    *server.Server
			addr string
		}
		var gws []gw
		for _, g := range gateways {
			s := hostileServer(g.auth, handshake)
			gws = append(gws, gw{g, s, startGateway(t, s)})
		}
		base := socks6test.OpenFDs(t)
		total := 0
		start := time.Now()
		for _, g := range gws {
			names, prefixes := hostilePrefixes(hostileSequences(g.auth, echoAP))
			total += len(prefixes)
			hostileParallel(len(prefixes), 64, func(i int) {
				name := g.name + "/" + names[i]
				t0 := time.Now() // before the gateway can have accepted
				c, err := hostileDial(t.Context(), g.addr)
				if err != nil {
					t.Errorf("%s: dial gateway: %v", name, err)
					return
				}
				defer c.Close()
				if len(prefixes[i]) > 0 {
					if _, err := c.Write(prefixes[i]); err != nil {
						t.Errorf("%s: write: %v", name, err)
						return
					}
				}
				limit := handshake + 3*time.Second
				if closeWrite {
					c.CloseWrite()
					limit = 3 * time.Second
				}
				out, closed := hostileDrain(c, limit)
				took := time.Since(t0)
				if !closed {
					t.Errorf("%s: gateway did not close within %v", name, limit)
				}
				if !closeWrite && took < handshake-10*time.Millisecond {
					t.Errorf("%s: gateway closed after %v, before the %v handshake timeout", name, took, handshake)
				}
				r, err := hostileScan(out)
				if err != nil {
					t.Errorf("%s: gateway sent % x: %v", name, out, err)
				}
				if r.rep == int(proto.ReplySucceeded) {
					t.Errorf("%s: gateway sent a success reply to a truncated request", name)
				}
			})
		}
		t.Logf("%d truncations in %v", total, time.Since(start).Round(time.Millisecond))
		for _, g := range gws {
			user, pass := "", ""
			if g.auth {
				user, pass = hostileUser, hostilePass
			}
			hostileCheckServes(t, g.s, g.addr, user, pass, echo)
		}
		hostileCheckFDs(t, base, 0)
	}
	t.Run("close_write", func(t *testing.T) { run(t, 30*time.Second, true) })
	t.Run("left_open", func(t *testing.T) { run(t, 300*time.Millisecond, false) })
}

// hostileFailDial is a Dial hook that never connects anywhere.
func hostileFailDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// hostileFailResolver resolves nothing.
type hostileFailResolver struct{}

func (r hostileFailResolver) Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error) {
	return lookupFromNetIP(ctx, r, network, host)
}

func (hostileFailResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestHostileGarbage sends wrong versions, forbidden field values, random
// bytes and an oversized stream. Each must get the right reply code or a
// closed connection, never a success reply and never a hang; meanwhile
// and afterwards a normal client is served.
func TestHostileGarbage(t *testing.T) {
	echo := socks6test.EchoServer(t)
	hostileWarmUp(t, echo)
	socks6test.CheckGoroutines(t, 5)
	const handshake = 30 * time.Second // a close by timeout fails the test
	// The garbage gateways refuse every request by policy and cannot
	// dial or resolve, so random bytes cannot reach anything and no
	// success reply is ever right.
	newGW := func(auth bool) (*server.Server, string) {
		s := hostileServer(auth, handshake)
		s.Settings.Policy = &server.Rules{Default: server.Deny}
		s.Dial = hostileFailDial
		s.Resolver = hostileFailResolver{}
		return s, startGateway(t, s)
	}
	noauth, noauthAddr := newGW(false)
	auth, authAddr := newGW(true)
	normal := hostileServer(false, handshake)
	normalAddr := startGateway(t, normal)
	base := socks6test.OpenFDs(t)

	ip4 := proto.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}
	greet := hostileGreeting(proto.MethodNoAuth)
	tests := []struct {
		name      string
		auth      bool
		in        []byte
		keepOpen  bool // do not half-close: the gateway must close on its own
		wantRep   int  // reply code the gateway must send; -1: none, only a close
		wantOut   []byte
		checkOut  bool // compare the whole output with wantOut
		wantClose bool
	}{
		{name: "socks4_connect", in: []byte{0x04, 0x01, 0x00, 0x50, 192, 0, 2, 1, 'u', 0}, keepOpen: true, wantRep: -1, checkOut: true},
		{name: "socks4a", in: []byte{0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 0, 'x', '.', 'e', 'x', 0}, keepOpen: true, wantRep: -1, checkOut: true},
		{name: "http_get", in: []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), keepOpen: true, wantRep: -1, checkOut: true},
		{name: "http_connect", in: []byte("CONNECT example.com:443 HTTP/1.1\r\n\r\n"), keepOpen: true, wantRep: -1, checkOut: true},
		{name: "tls_client_hello", in: []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03}, keepOpen: true, wantRep: -1, checkOut: true},
		{name: "version_only_wrong", in: []byte{0x06}, keepOpen: true, wantRep: -1, checkOut: true},
		{name: "nmethods_zero", in: []byte{0x05, 0x00}, keepOpen: true, wantRep: -1, checkOut: true},
		{name: "nmethods_zero_then_request", in: hostileCat([]byte{0x05, 0x00}, hostileRequest(proto.CommandConnect, ip4)), keepOpen: true, wantRep: -1, checkOut: true},
		{name: "no_acceptable_method", in: hostileGreeting(proto.MethodGSSAPI, 0x80, 0xfe), keepOpen: true, wantRep: -1,
			checkOut: true, wantOut: []byte{0x05, 0xff}},
		{name: "userpass_only_to_noauth_gateway", in: hostileGreeting(proto.MethodUserPass), keepOpen: true, wantRep: -1,
			checkOut: true, wantOut: []byte{0x05, 0xff}},
		{name: "noauth_only_to_userpass_gateway", auth: true, in: greet, keepOpen: true, wantRep: -1,
			checkOut: true, wantOut: []byte{0x05, 0xff}},
		{name: "userpass_wrong_version", auth: true, in: hostileCat(hostileGreeting(proto.MethodUserPass), []byte{0x05, 1, 'u', 1, 'p'}),
			keepOpen: true, wantRep: -1, checkOut: true, wantOut: []byte{0x05, 0x02}},
		{name: "userpass_empty_fields", auth: true, in: hostileCat(hostileGreeting(proto.MethodUserPass), []byte{0x01, 0, 0}),
			keepOpen: true, wantRep: -1, checkOut: true, wantOut: []byte{0x05, 0x02, 0x01, 0x01}},
		{name: "userpass_wrong_then_request", auth: true,
			in:       hostileCat(hostileGreeting(proto.MethodUserPass), hostileUserPass(hostileUser, "nope"), hostileRequest(proto.CommandConnect, ip4)),
			keepOpen: true, wantRep: -1, checkOut: true, wantOut: []byte{0x05, 0x02, 0x01, 0x01}},
		{name: "request_wrong_version", in: hostileCat(greet, []byte{0x04, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0, 80}),
			keepOpen: true, wantRep: -1, checkOut: true, wantOut: []byte{0x05, 0x00}},
		{name: "fqdn_length_zero", in: hostileCat(greet, []byte{0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50}),
			keepOpen: true, wantRep: -1},
		{name: "atyp_0x02", in: hostileCat(greet, []byte{0x05, 0x01, 0x00, 0x02, 192, 0, 2, 1, 0, 80}),
			keepOpen: true, wantRep: int(proto.ReplyAddressTypeNotSupported)},
		{name: "atyp_0x00", in: hostileCat(greet, []byte{0x05, 0x01, 0x00, 0x00}),
			keepOpen: true, wantRep: int(proto.ReplyAddressTypeNotSupported)},
		{name: "atyp_0xff_authenticated", auth: true,
			in:       hostileCat(hostileGreeting(proto.MethodUserPass), hostileUserPass(hostileUser, hostilePass), []byte{0x05, 0x01, 0x00, 0xff}),
			keepOpen: true, wantRep: int(proto.ReplyAddressTypeNotSupported)},
		{name: "cmd_0x00", in: hostileCat(greet, hostileRequest(0x00, ip4)), keepOpen: true, wantRep: int(proto.ReplyCommandNotSupported)},
		{name: "cmd_0x04", in: hostileCat(greet, hostileRequest(0x04, ip4)), keepOpen: true, wantRep: int(proto.ReplyCommandNotSupported)},
		{name: "cmd_0xff", in: hostileCat(greet, hostileRequest(0xff, proto.Addr{FQDN: "example.com", Port: 1})), keepOpen: true, wantRep: int(proto.ReplyCommandNotSupported)},
		{name: "connect_refused_by_policy", in: hostileCat(greet, hostileRequest(proto.CommandConnect, ip4)), keepOpen: true, wantRep: int(proto.ReplyNotAllowed)},
		{name: "bind_refused_by_policy", in: hostileCat(greet, hostileRequest(proto.CommandBind, ip4)), keepOpen: true, wantRep: int(proto.ReplyNotAllowed)},
		{name: "udp_refused_by_policy", in: hostileCat(greet, hostileRequest(proto.CommandUDPAssociate, ip4)), keepOpen: true, wantRep: int(proto.ReplyNotAllowed)},
		{name: "request_then_garbage", in: hostileCat(greet, hostileRequest(proto.CommandConnect, ip4), bytes.Repeat([]byte{0xff}, 4000)),
			keepOpen: true, wantRep: int(proto.ReplyNotAllowed)},
		{name: "fqdn_255_nul_bytes", in: hostileCat(greet, []byte{0x05, 0x01, 0x00, 0x03, 0xff}, make([]byte, 255), []byte{0, 80}),
			keepOpen: true, wantRep: int(proto.ReplyNotAllowed)},
		{name: "oversize_0x05_stream", in: bytes.Repeat([]byte{0x05}, 1<<20), wantRep: -1},
		{name: "oversize_after_greeting", in: hostileCat(greet, bytes.Repeat([]byte{0x05}, 1<<20)),
			wantRep: int(proto.ReplyAddressTypeNotSupported)},
		{name: "oversize_userpass_stream", auth: true, in: hostileCat(hostileGreeting(proto.MethodUserPass), bytes.Repeat([]byte{0x01}, 1<<20)),
			wantRep: -1},
		{name: "oversize_zero_stream", in: make([]byte, 1<<20), wantRep: -1, checkOut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := noauthAddr
			if tt.auth {
				addr = authAddr
			}
			c, err := hostileDial(t.Context(), addr)
			if err != nil {
				t.Fatalf("dial gateway: %v", err)
			}
			defer c.Close()
			start := time.Now()
			// Write in the background: a gateway that has closed makes a
			// large write fail, which is fine.
			wrote := make(chan error, 1)
			go func() {
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, err := c.Write(tt.in)
				if err == nil && !tt.keepOpen {
					err = c.CloseWrite()
				}
				wrote <- err
			}()
			out, closed := hostileDrain(c, 5*time.Second)
			took := time.Since(start)
			if !closed {
				t.Errorf("gateway did not close within 5s (handshake timeout %v)", handshake)
			}
			werr := <-wrote
			if werr != nil && !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) && !errors.Is(werr, syscall.ENOTCONN) {
				t.Errorf("write: %v", werr)
			}
			r, err := hostileScan(out)
			if err != nil {
				t.Errorf("gateway sent % x: %v", out[:min(len(out), 64)], err)
			}
			if r.rep == int(proto.ReplySucceeded) {
				t.Errorf("gateway sent a success reply")
			}
			if r.rep != tt.wantRep {
				t.Errorf("reply code %d, want %d (output % x)", r.rep, tt.wantRep, out[:min(len(out), 64)])
			}
			if tt.checkOut && !bytes.Equal(out, tt.wantOut) {
				t.Errorf("gateway sent % x, want % x", out[:min(len(out), 64)], tt.wantOut)
			}
			t.Logf("closed after %v", took.Round(time.Millisecond))
		})
	}

	t.Run("random", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1928, 1929))
		const n = 200
		inputs := make([][]byte, n)
		valid := [][]byte{
			hostileCat(greet, hostileRequest(proto.CommandConnect, ip4)),
			hostileCat(greet, hostileRequest(proto.CommandBind, proto.Addr{FQDN: "example.com", Port: 21})),
			hostileCat(hostileGreeting(proto.MethodUserPass), hostileUserPass(hostileUser, hostilePass),
				hostileRequest(proto.CommandUDPAssociate, proto.Addr{IP: netip.IPv6Loopback(), Port: 53})),
		}
		for i := range inputs {
			switch i % 3 {
			case 0: // uniformly random bytes
				b := make([]byte, rng.IntN(600))
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				inputs[i] = b
			case 1: // random bytes behind a SOCKS5 version byte
				b := make([]byte, 1+rng.IntN(600))
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				b[0] = proto.Version5
				inputs[i] = b
			default: // a valid handshake with a few bytes flipped
				b := bytes.Clone(valid[rng.IntN(len(valid))])
				for range 1 + rng.IntN(3) {
					b[rng.IntN(len(b))] = byte(rng.Uint32())
				}
				if rng.IntN(2) == 0 {
					b = b[:rng.IntN(len(b)+1)] // and cut short
				}
				inputs[i] = b
			}
		}
		var succeeded atomic.Int32
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // a normal client, served while the garbage flows
			defer wg.Done()
			for range 5 {
				c, err := hostileConnect(t.Context(), normalAddr, "", "", echo)
				if err != nil {
					t.Errorf("normal client during garbage: %v", err)
					return
				}
				err = hostileRoundTrip(c, []byte("normal"))
				c.Close()
				if err != nil {
					t.Errorf("normal client during garbage: %v", err)
					return
				}
				succeeded.Add(1)
			}
		}()
		hostileParallel(n, 32, func(i int) {
			addr := noauthAddr
			if i%2 == 1 {
				addr = authAddr
			}
			c, err := hostileDial(t.Context(), addr)
			if err != nil {
				t.Errorf("input %d: dial gateway: %v", i, err)
				return
			}
			defer c.Close()
			if _, err := c.Write(inputs[i]); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Errorf("input %d: write: %v", i, err)
				return
			}
			c.CloseWrite()
			out, closed := hostileDrain(c, 5*time.Second)
			if !closed {
				t.Errorf("input %d (% x): gateway did not close within 5s", i, inputs[i][:min(len(inputs[i]), 32)])
			}
			r, err := hostileScan(out)
			if err != nil {
				t.Errorf("input %d: gateway sent % x: %v", i, out[:min(len(out), 64)], err)
			}
			if r.rep == int(proto.ReplySucceeded) {
				t.Errorf("input %d (% x): gateway sent a success reply", i, inputs[i][:min(len(inputs[i]), 64)])
			}
		})
		wg.Wait()
		if got := succeeded.Load(); got != 5 {
			t.Errorf("normal client completed %d of 5 sessions during the garbage", got)
		}
	})

	hostileCheckServes(t, normal, normalAddr, "", "", echo)
	for _, s := range []*server.Server{noauth, auth} {
		if !socks6test.WaitFor(5*time.Second, func() bool { return s.Sessions() == 0 }) {
			t.Errorf("Sessions() = %d after the garbage, want 0", s.Sessions())
		}
	}
	hostileCheckFDs(t, base, 0)
}

// TestHostileSlowClients holds 500 connections that dribble a valid
// handshake one byte every 200ms while a normal client connects: the
// normal client must be served within 1s, and the slow ones must be cut
// by the 2s handshake timeout (their last byte would come at 2.4s).
func TestHostileSlowClients(t *testing.T) {
	const (
		slow      = 500
		handshake = 2 * time.Second
		interval  = 200 * time.Millisecond
	)
	echo := socks6test.EchoServer(t)
	hostileWarmUp(t, echo)
	socks6test.CheckGoroutines(t, 5)
	for round := range 3 {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			s := hostileServer(false, handshake)
			gw := startGateway(t, s)
			base := socks6test.OpenFDs(t)
			msg := hostileCat(hostileGreeting(proto.MethodNoAuth),
				hostileRequest(proto.CommandConnect, proto.AddrFromAddrPort(netip.MustParseAddrPort(echo))))
			if time.Duration(len(msg)-1)*interval <= handshake+interval {
				t.Fatalf("a %d-byte handshake at %v a byte would beat the timeout", len(msg), interval)
			}

			var connected, done sync.WaitGroup
			connected.Add(slow)
			done.Add(slow)
			for i := range slow {
				go func() {
					defer done.Done()
					t0 := time.Now() // before the gateway can have accepted
					c, err := hostileDial(t.Context(), gw)
					connected.Done()
					if err != nil {
						t.Errorf("slow client %d: dial: %v", i, err)
						return
					}
					defer c.Close()
					var out []byte
					var buf [64]byte
					closed := false
					// One byte, then wait an interval for the gateway's
					// answer or close; bounded by the message length.
				dribble:
					for _, b := range msg {
						if _, err := c.Write([]byte{b}); err != nil {
							closed = true
							break
						}
						c.SetReadDeadline(time.Now().Add(interval))
						for {
							n, err := c.Read(buf[:])
							out = append(out, buf[:n]...)
							if errors.Is(err, os.ErrDeadlineExceeded) {
								break
							}
							if err != nil {
								closed = true
								break dribble
							}
						}
					}
					if !closed { // all bytes sent: wait for the close
						var rest []byte
						rest, closed = hostileDrain(c, handshake)
						out = append(out, rest...)
					}
					took := time.Since(t0)
					switch {
					case !closed || took > handshake+2*time.Second:
						t.Errorf("slow client %d: closed=%v after %v, want closed by the %v handshake timeout", i, closed, took, handshake)
					case took < handshake-50*time.Millisecond:
						t.Errorf("slow client %d: closed after %v, before the %v handshake timeout", i, took, handshake)
					}
					if r, err := hostileScan(out); err != nil || r.rep != -1 {
						t.Errorf("slow client %d: gateway sent % x (%+v, %v), want only a method selection", i, out, r, err)
					}
				}()
			}
			connected.Wait()
			time.Sleep(3 * interval) // let the dribble get going

			start := time.Now()
			c, err := hostileConnect(t.Context(), gw, "", "", echo)
			if err == nil {
				err = hostileRoundTrip(c, []byte("not slow"))
				c.Close()
			}
			took := time.Since(start)
			if err != nil {
				t.Errorf("normal client among %d slow ones: %v", slow, err)
			}
			if took > time.Second {
				t.Errorf("normal client among %d slow ones took %v, want under 1s", slow, took)
			}
			t.Logf("normal client served in %v among %d slow clients", took.Round(time.Microsecond), slow)

			waited := make(chan struct{})
			go func() { done.Wait(); close(waited) }()
			select {
			case <-waited:
			case <-time.After(handshake + 10*time.Second):
				t.Fatalf("slow clients still running %v after the handshake timeout", 10*time.Second)
			}
			if !socks6test.WaitFor(5*time.Second, func() bool { return s.Sessions() == 0 }) {
				t.Errorf("Sessions() = %d, want 0", s.Sessions())
			}
			hostileCheckFDs(t, base, 0)
		})
	}
}

// TestHostileParallelHandshakes runs 2,000 CONNECT handshakes at once, each
// with one echo round trip. All must succeed, and open files and
// goroutines must come back to where they were.
func TestHostileParallelHandshakes(t *testing.T) {
	echo := socks6test.EchoServer(t)
	hostileWarmUp(t, echo)
	socks6test.CheckGoroutines(t, 5)
	n := 2000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		// Each session holds four descriptors in this process: the
		// client's, the gateway's two, and the echo server's.
		fit := (int(lim.Cur) - socks6test.OpenFDs(t) - 256) / 4
		if fit < n {
			t.Logf("open-file limit %d fits %d sessions, not %d: scaling down", lim.Cur, fit, n)
			n = fit
		}
	}
	if n < 100 {
		t.Skipf("open-file limit too low for a meaningful run (%d sessions)", n)
	}
	s := hostileServer(false, 30*time.Second)
	gw := startGateway(t, s)
	base := socks6test.OpenFDs(t)
	baseG := runtime.NumGoroutine()

	// Each worker opens its share of connections and walks them through
	// the handshake together, so that every handshake overlaps the others
	// without a client goroutine per connection (the gateway and the echo
	// server already run three per session, close to the race detector's
	// limit of 8128 goroutines).
	const perWorker = 10
	workers := (n + perWorker - 1) / perWorker
	var failed atomic.Int32
	var maxSessions atomic.Int32
	fail := func(format string, args ...any) {
		if failed.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	start := time.Now()
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			first := w * perWorker
			last := min(first+perWorker, n)
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := first; i < last; i++ {
				c, err := hostileDial(t.Context(), gw)
				if err != nil {
					fail("session %d: dial gateway: %v", i, err)
					continue
				}
				conns = append(conns, c)
			}
			ap := netip.MustParseAddrPort(echo)
			live := conns[:0]
			for i, c := range conns {
				if err := hostileHandshake(c, "", "", proto.AddrFromAddrPort(ap)); err != nil {
					fail("session %d: %v", first+i, err)
					c.Close()
					continue
				}
				live = append(live, c)
			}
			for cur := int32(s.Sessions()); ; {
				seen := maxSessions.Load()
				if cur <= seen || maxSessions.CompareAndSwap(seen, cur) {
					break
				}
			}
			for i, c := range live {
				if err := hostileRoundTrip(c, fmt.Appendf(nil, "session %d", first+i)); err != nil {
					fail("session %d: %v", first+i, err)
				}
			}
		}()
	}
	close(gate)
	wg.Wait()
	t.Logf("%d sessions in %v (up to %d at once seen); %d failed", n, time.Since(start).Round(time.Millisecond),
		maxSessions.Load(), failed.Load())
	if !socks6test.WaitFor(5*time.Second, func() bool { return s.Sessions() == 0 }) {
		t.Errorf("Sessions() = %d after every client left, want 0", s.Sessions())
	}
	hostileCheckFDs(t, base, 0)
	var g int
	if !socks6test.WaitFor(5*time.Second, func() bool { g = runtime.NumGoroutine(); return g <= baseG+2 }) {
		t.Errorf("goroutines: %d before the sessions, %d after", baseG, g)
	}
}

// TestHostileHandshakeLimit fills all ten handshake slots with silent
// clients: an eleventh client must wait (backpressure) and be served once
// a silent one times out, not be refused.
func TestHostileHandshakeLimit(t *testing.T) {
	const handshake = 500 * time.Millisecond
	echo := socks6test.EchoServer(t)
	hostileWarmUp(t, echo)
	socks6test.CheckGoroutines(t, 5)
	s := hostileServer(false, handshake)
	s.Settings.Limits = server.Limits{Handshakes: 10}
	gw := startGateway(t, s)
	base := socks6test.OpenFDs(t)

	start := time.Now()
	var silent []*net.TCPConn
	for i := range 10 {
		c, err := hostileDial(t.Context(), gw)
		if err != nil {
			t.Fatalf("silent client %d: %v", i, err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// The kernel accepts the eleventh connection into the backlog; the
	// gateway takes it only when a slot frees.
	c, err := hostileConnect(t.Context(), gw, "", "", echo)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("eleventh client: %v", err)
	}
	if err := hostileRoundTrip(c, []byte("eleventh")); err != nil {
		t.Errorf("eleventh client: %v", err)
	}
	c.Close()
	t.Logf("eleventh client served after %v", took.Round(time.Millisecond))
	if took < handshake-50*time.Millisecond {
		t.Errorf("eleventh client served after %v, before any of 10 silent clients could time out (%v): no handshake limit", took, handshake)
	}
	if took > handshake+3*time.Second {
		t.Errorf("eleventh client served after %v, long after the silent ones timed out (%v)", took, handshake)
	}
	for i, c := range silent {
		out, closed := hostileDrain(c, 3*time.Second)
		if !closed || len(out) != 0 {
			t.Errorf("silent client %d: closed=%v, got % x; want closed without a word", i, closed, out)
		}
		c.Close()
	}
	hostileCheckServes(t, s, gw, "", "", echo)
	hostileCheckFDs(t, base, 0)
}

// hostileFlakyListener fails Accept with EMFILE while fails is positive,
// then passes through to the real listener.
type hostileFlakyListener struct {
	net.Listener
	fails atomic.Int32
	mu    sync.Mutex
	calls []time.Time // when each failing Accept was called
}

func (l *hostileFlakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		l.mu.Lock()
		l.calls = append(l.calls, time.Now())
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func (l *hostileFlakyListener) failTimes() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.calls...)
}

// TestHostileAcceptEMFILE: running out of file descriptors at accept must
// make Serve back off and carry on, not return or spin; Shutdown still
// ends it with ErrServerClosed, even in the middle of a backoff.
func TestHostileAcceptEMFILE(t *testing.T) {
	echo := socks6test.EchoServer(t)
	hostileWarmUp(t, echo)
	socks6test.CheckGoroutines(t, 5)

	t.Run("recovers", func(t *testing.T) {
		s := hostileServer(false, 5*time.Second)
		ln := &hostileFlakyListener{Listener: socks6test.Listen(t)}
		ln.fails.Store(5)
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()

		c, err := hostileConnect(t.Context(), ln.Addr().String(), "", "", echo)
		if err != nil {
			t.Fatalf("CONNECT after EMFILE: %v", err)
		}
		if err := hostileRoundTrip(c, []byte("after EMFILE")); err != nil {
			t.Errorf("CONNECT after EMFILE: %v", err)
		}
		c.Close()
		calls := ln.failTimes()
		if len(calls) != 5 {
			t.Errorf("Accept failed %d times, want 5", len(calls))
		}
		for i := 1; i < len(calls); i++ {
			gap := calls[i].Sub(calls[i-1])
			if gap < 4*time.Millisecond {
				t.Errorf("accept retry %d came %v after the previous failure: no backoff", i, gap)
			}
		}
		if len(calls) == 5 {
			t.Logf("5 EMFILE failures over %v", calls[4].Sub(calls[0]).Round(time.Millisecond))
		}

		// Fail again while the gateway runs: it must recover again.
		ln.fails.Store(3)
		// The loop is blocked in the real Accept; this connection ends
		// that Accept, and the next three fail.
		for i := range 2 {
			c, err := hostileConnect(t.Context(), ln.Addr().String(), "", "", echo)
			if err != nil {
				t.Fatalf("CONNECT %d after a second EMFILE burst: %v", i, err)
			}
			if err := hostileRoundTrip(c, []byte("again")); err != nil {
				t.Errorf("CONNECT after a second EMFILE burst: %v", err)
			}
			c.Close()
		}

		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve did not return within 5s of Shutdown")
		}
	})

	t.Run("shutdown_during_backoff", func(t *testing.T) {
		s := hostileServer(false, 5*time.Second)
		ln := &hostileFlakyListener{Listener: socks6test.Listen(t)}
		ln.fails.Store(1 << 20)
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		// Wait for the backoff to reach its 1s cap: 5ms doubling takes
		// eight failures.
		if !socks6test.WaitFor(5*time.Second, func() bool { return len(ln.failTimes()) >= 9 }) {
			t.Fatalf("Serve made only %d accept attempts in 5s", len(ln.failTimes()))
		}
		if n := len(ln.failTimes()); n > 12 {
			t.Errorf("Serve made %d accept attempts; the backoff does not grow", n)
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve did not return within 5s of Shutdown")
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("Serve took %v to return after Shutdown during a backoff", took)
		}
	})
}

// TestHostileAuthBruteForce sends 50 concurrent wrong passwords for a real
// user against an htpasswd file: each gets status 0x01 and a close, and a
// correct login meanwhile is served.
func TestHostileAuthBruteForce(t *testing.T) {
	const user, pass = "alice", "correct horse battery staple"
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := htpasswd.Parse("users", strings.NewReader(user+":"+string(hash)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	echo := socks6test.EchoServer(t)
	hostileWarmUp(t, echo)
	socks6test.CheckGoroutines(t, 5)
	s := hostileServer(false, 10*time.Second)
	s.Settings.Auth = users
	gw := startGateway(t, s)
	base := socks6test.OpenFDs(t)

	const attempts = 50
	start := time.Now()
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			c, err := hostileDial(t.Context(), gw)
			if err != nil {
				t.Errorf("attempt %d: dial: %v", i, err)
				return
			}
			defer c.Close()
			msg := hostileCat(hostileGreeting(proto.MethodUserPass),
				hostileUserPass(user, fmt.Sprintf("guess %d", i)),
				hostileRequest(proto.CommandConnect, proto.AddrFromAddrPort(netip.MustParseAddrPort(echo))))
			if _, err := c.Write(msg); err != nil {
				t.Errorf("attempt %d: write: %v", i, err)
				return
			}
			out, closed := hostileDrain(c, 5*time.Second)
			if !closed {
				t.Errorf("attempt %d: gateway did not close within 5s", i)
			}
			if want := []byte{0x05, 0x02, 0x01, 0x01}; !bytes.Equal(out, want) {
				t.Errorf("attempt %d: gateway sent % x, want % x", i, out, want)
			}
		}()
	}
	wg.Add(1)
	var okTook time.Duration
	go func() {
		defer wg.Done()
		<-gate
		t0 := time.Now()
		c, err := hostileConnect(t.Context(), gw, user, pass, echo)
		if err != nil {
			t.Errorf("correct login among wrong ones: %v", err)
			return
		}
		defer c.Close()
		if err := hostileRoundTrip(c, []byte("let me in")); err != nil {
			t.Errorf("correct login among wrong ones: %v", err)
		}
		okTook = time.Since(t0)
	}()
	close(gate)
	wg.Wait()
	t.Logf("%d wrong passwords and one right one in %v; the right one took %v", attempts,
		time.Since(start).Round(time.Millisecond), okTook.Round(time.Millisecond))
	hostileCheckServes(t, s, gw, user, pass, echo)
	hostileCheckFDs(t, base, 0)
}
