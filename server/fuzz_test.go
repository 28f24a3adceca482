package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/resolver"
)

// FuzzHandshake feeds arbitrary bytes to a gateway as a client's whole
// input, then end of stream. The first byte picks the gateway (with or
// without username/password authentication) and how the input is split
// into reads; the rest is what the client sends. The gateway has a policy,
// a Dial hook that always fails and a resolver that never touches the
// network. The fuzz target checks that it does not panic, that it answers
// and closes the connection promptly, that it counts no session
// afterwards, and that it never signals success where it must not: a
// success reply for a request the policy refuses, for CONNECT (nothing can
// be dialled), or for wrong credentials.
//
// The client side is an in-memory connection (hostilePipeConn) rather than
// net.Pipe or a socket: it can end its input with EOF like a half-close
// and costs no file descriptor or port per input. BIND and UDP ASSOCIATE
// still open their sockets on loopback.
func FuzzHandshake(f *testing.F) {
	ip4 := proto.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}
	ten := proto.Addr{IP: netip.MustParseAddr("10.1.2.3"), Port: 80}
	ip6 := proto.Addr{IP: netip.MustParseAddr("2001:db8::1"), Port: 443}
	name := proto.Addr{FQDN: "example.com", Port: 80}
	denied := proto.Addr{FQDN: "www.denied.example", Port: 80}
	tenName := proto.Addr{FQDN: "host.ten.example", Port: 80}
	noauth := hostileGreeting(proto.MethodNoAuth)
	userpass := hostileCat(hostileGreeting(proto.MethodUserPass), hostileUserPass(hostileUser, hostilePass))
	mallory := hostileCat(hostileGreeting(proto.MethodUserPass), hostileUserPass("mallory", hostilePass))
	for mode := range byte(16) {
		head := noauth
		if mode&1 == 1 {
			head = userpass
		}
		for _, cmd := range []proto.Command{proto.CommandConnect, proto.CommandBind, proto.CommandUDPAssociate, 0x09} {
			for _, a := range []proto.Addr{ip4, ten, ip6, name, denied, tenName, {IP: netip.IPv4Unspecified()}} {
				if mode > 3 && a != ip4 {
					continue
				}
				f.Add(hostileCat([]byte{mode}, head, hostileRequest(cmd, a)))
			}
		}
	}
	f.Add(hostileCat([]byte{1}, mallory, hostileRequest(proto.CommandBind, ip4)))
	f.Add(hostileCat([]byte{1}, hostileGreeting(proto.MethodUserPass), hostileUserPass(hostileUser, "wrong"), hostileRequest(proto.CommandBind, ip4)))
	f.Add(hostileCat([]byte{0}, noauth, hostileRequest(proto.CommandBind, proto.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 21})))
	f.Add(hostileCat([]byte{0}, noauth, []byte{0x05, 0x01, 0x00, 0x02, 1, 2, 3, 4, 0, 80}))
	f.Add(hostileCat([]byte{0}, noauth, []byte{0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50}))
	f.Add(hostileCat([]byte{0}, noauth, hostileRequest(proto.CommandConnect, name), []byte("GET / HTTP/1.0\r\n\r\n")))
	f.Add([]byte{0, 0x04, 0x01, 0x00, 0x50, 192, 0, 2, 1, 0})
	f.Add(append([]byte{0}, "GET / HTTP/1.1\r\n\r\n"...))
	f.Add([]byte{0, 0x05, 0x00})
	f.Add([]byte{0})
	f.Add([]byte{})

	gws := [2]*hostileFuzzGateway{newHostileFuzzGateway(f, false, false), newHostileFuzzGateway(f, true, false)}

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		mode, in := data[0], data[1:]
		gw := gws[mode&1]
		chunk := []int{0, 1, 2, 3, 5, 7, 64, 513}[mode>>1&7]
		out := gw.feed(t, in, in, chunk)
		r, err := hostileScan(out)
		if err != nil {
			t.Fatalf("gateway sent % x: %v", out, err)
		}
		gw.check(t, in, r)
	})
}

// feed sends input to the gateway as one client's whole stream (in chunk
// sized reads), waits for the gateway to close the connection and to
// count no session, and returns what it sent back. in is the part of
// the input to show in failure messages.
func (gw *hostileFuzzGateway) feed(t *testing.T, input, in []byte, chunk int) []byte {
	c := newHostilePipeConn(input, chunk)
	select {
	case gw.ln.conns <- c:
	case <-time.After(5 * time.Second):
		t.Fatalf("gateway did not accept within 5s")
	}
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("gateway did not close the connection within 5s of the input's end (input % x)", in[:min(len(in), 64)])
	}
	// The session releases its count just after closing the connection.
	if !hostileSpinFor(5*time.Second, func() bool { return gw.s.Sessions() == 0 }) {
		t.Errorf("Sessions() = %d after the only session ended", gw.s.Sessions())
	}
	return c.output()
}

// hostileFuzzGateway is one gateway the fuzz target feeds, with what it
// needs to judge the answers.
type hostileFuzzGateway struct {
	s      *server.Server
	ln     *hostileChanListener
	auth   bool
	policy server.Policy
}

func newHostileFuzzGateway(f *testing.F, auth, ext bool) *hostileFuzzGateway {
	policy := &server.Rules{
		Rules: []server.Rule{
			{Action: server.Deny, Users: []string{"mallory"}},
			{Action: server.Deny, Domains: []string{"denied.example"}},
			{Action: server.Deny, Commands: []proto.Command{proto.CommandBind}, Ports: []server.PortRange{{Lo: 1, Hi: 1023}}},
			{Action: server.Deny, Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			// In-stream UDP associations open, but no datagram of the
			// fuzzer's may leave the machine: every UDP destination is
			// refused.
			{Action: server.Deny, Commands: []proto.Command{proto.CommandUDPAssociate},
				Nets: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}},
		},
		Default: server.Allow,
	}
	s := &server.Server{
		HandshakeTimeout: 5 * time.Second,
		DialTimeout:      time.Second,
		BindTimeout:      time.Second,
		IdleTimeout:      time.Second,
		Logger:           hostileDiscard,
		Dial:             hostileFailDial,
		Resolver:         hostileFuzzResolver{},
		Settings:         server.Settings{Policy: policy},
		// FuzzExtHandshake covers the extensions; here the checks are
		// the RFC 1928 ones.
		DisableExtensions: !ext,
	}
	if auth {
		s.Settings.Auth = server.AuthenticatorFunc(func(ctx context.Context, user, password string) error {
			if (user == hostileUser || user == "mallory") && password == hostilePass {
				return nil
			}
			return server.ErrBadCredentials
		})
	}
	ln := &hostileChanListener{conns: make(chan net.Conn), done: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	f.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			f.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return &hostileFuzzGateway{s: s, ln: ln, auth: auth, policy: policy}
}

// check judges the gateway's answers r to the client input in.
func (gw *hostileFuzzGateway) check(t *testing.T, in []byte, r hostileOut) {
	want := proto.MethodNoAuth
	if gw.auth {
		want = proto.MethodUserPass
	}
	if r.method != -1 && r.method != int(want) && r.method != int(proto.MethodNoAcceptable) {
		t.Fatalf("gateway selected method %#x, want %v or no acceptable method", r.method, want)
	}
	if r.status != int(proto.UserPassSuccess) && r.rep == -1 {
		return
	}
	// Parse the input as the gateway should have.
	g, n, err := proto.ParseGreeting(in)
	if err != nil {
		t.Fatalf("gateway answered a greeting that does not parse (%v)", err)
	}
	if !g.Offers(want) {
		t.Fatalf("gateway went past a greeting that does not offer %v", want)
	}
	in = in[n:]
	user := ""
	if gw.auth {
		up, n, err := proto.ParseUserPassRequest(in)
		if err != nil {
			t.Fatalf("gateway answered credentials that do not parse (%v)", err)
		}
		if r.status == int(proto.UserPassSuccess) &&
			!((up.Username == hostileUser || up.Username == "mallory") && up.Password == hostilePass) {
			t.Fatalf("gateway accepted user %q with a wrong password", up.Username)
		}
		if r.status != int(proto.UserPassSuccess) {
			return
		}
		user = up.Username
		in = in[n:]
	}
	if r.rep == -1 {
		return
	}
	req, _, err := proto.ParseRequest(in)
	if err != nil {
		if errors.Is(err, proto.ErrAddressType) {
			if r.rep != int(proto.ReplyAddressTypeNotSupported) {
				t.Fatalf("reply %#x to an unknown address type, want %#x", r.rep, proto.ReplyAddressTypeNotSupported)
			}
			return
		}
		t.Fatalf("gateway replied %#x to a request that does not parse (%v)", r.rep, err)
	}
	switch req.Command {
	case proto.CommandConnect, proto.CommandBind, proto.CommandUDPAssociate:
	default:
		if r.rep != int(proto.ReplyCommandNotSupported) {
			t.Fatalf("reply %#x to command %v, want %#x", r.rep, req.Command, proto.ReplyCommandNotSupported)
		}
		return
	}
	if r.rep != int(proto.ReplySucceeded) {
		return
	}
	if req.Command == proto.CommandConnect {
		t.Fatalf("CONNECT to %v succeeded although nothing can be dialled", req.Addr)
	}
	preq := &server.Request{User: user, Client: hostilePipeRemote.AddrPort(), Command: req.Command, Target: req.Addr}
	if req.Command == proto.CommandUDPAssociate {
		// DST.ADDR of UDP ASSOCIATE is where the client sends from; the
		// policy judges the association for any destination.
		preq.Target, preq.AnyTarget = proto.Addr{}, true
	}
	if err := gw.policy.Allow(context.Background(), preq); err != nil {
		t.Fatalf("%v to %v by %q succeeded although the policy refuses it (%v)", req.Command, req.Addr, user, err)
	}
}

// hostileSpinFor is WaitFor with a short poll interval, for a fuzz
// target's hot loop: it reports whether cond held within timeout.
func hostileSpinFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
	return true
}

// hostileFuzzResolver answers every name without the network: names with
// a "ten" label resolve into 10.0.0.0/8 (which the policy refuses), "nx"
// labels do not exist, others resolve into a documentation range.
type hostileFuzzResolver struct{}

func (r hostileFuzzResolver) Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error) {
	return lookupFromNetIP(ctx, r, network, host)
}

func (hostileFuzzResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	for label := range strings.SplitSeq(host, ".") {
		switch label {
		case "ten":
			return []netip.Addr{netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("10.1.1.1")}, nil
		case "nx":
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
	}
	return []netip.Addr{netip.MustParseAddr("192.0.2.99"), netip.MustParseAddr("2001:db8::99")}, nil
}

// hostileChanListener hands the gateway connections sent on conns.
type hostileChanListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *hostileChanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *hostileChanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *hostileChanListener) Addr() net.Addr { return hostilePipeLocal }

var (
	hostilePipeLocal  = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1080}
	hostilePipeRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
)

// hostilePipeConn is the gateway's end of an in-memory connection whose
// client has sent in and then half-closed: reads return in (at most chunk
// bytes each, or all at once if chunk is 0) and then io.EOF; writes are
// collected. Reads never block, so deadlines have nothing to do.
type hostilePipeConn struct {
	mu     sync.Mutex
	in     []byte
	chunk  int
	out    []byte
	done   bool
	closed chan struct{}
}

func newHostilePipeConn(in []byte, chunk int) *hostilePipeConn {
	return &hostilePipeConn{in: in, chunk: chunk, closed: make(chan struct{})}
}

func (c *hostilePipeConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return 0, net.ErrClosed
	}
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := len(c.in)
	if c.chunk > 0 && n > c.chunk {
		n = c.chunk
	}
	n = copy(b, c.in[:n])
	c.in = c.in[n:]
	return n, nil
}

func (c *hostilePipeConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return 0, net.ErrClosed
	}
	if len(c.out)+len(b) > 64<<10 {
		return 0, syscall.ECONNRESET // a client that stopped reading
	}
	c.out = append(c.out, b...)
	return len(b), nil
}

func (c *hostilePipeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return net.ErrClosed
	}
	c.done = true
	close(c.closed)
	return nil
}

func (c *hostilePipeConn) output() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.out...)
}

func (c *hostilePipeConn) LocalAddr() net.Addr                { return hostilePipeLocal }
func (c *hostilePipeConn) RemoteAddr() net.Addr               { return hostilePipeRemote }
func (c *hostilePipeConn) SetDeadline(t time.Time) error      { return c.deadlineErr() }
func (c *hostilePipeConn) SetReadDeadline(t time.Time) error  { return c.deadlineErr() }
func (c *hostilePipeConn) SetWriteDeadline(t time.Time) error { return c.deadlineErr() }

func (c *hostilePipeConn) deadlineErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return os.ErrClosed
	}
	return nil
}
