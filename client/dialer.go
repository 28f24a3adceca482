package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/socks6/socks6/proto"
)

// An ExtMode says whether a Dialer uses the SOCKS6 extensions.
type ExtMode uint8

// Extension modes.
const (
	// ExtAuto offers the extensions (method 0xC6) and falls back to
	// plain SOCKS5 in the same connection if the gateway selects another
	// method (draft-socks6-extensions-00, "Fallback").
	ExtAuto ExtMode = iota
	// ExtOff speaks plain SOCKS5 (RFC 1928, RFC 1929) only.
	ExtOff
	// ExtRequire offers the extensions and fails with ErrDowngrade unless
	// the gateway selects them: the no-fallback rule of
	// draft-socks6-extensions-00 ("Downgrade Protection"), for a client
	// that knows from an authenticated source, such as its own
	// configuration, that the gateway speaks them.
	ExtRequire
)

// String returns "auto", "off" or "require".
func (m ExtMode) String() string {
	switch m {
	case ExtAuto:
		return "auto"
	case ExtOff:
		return "off"
	case ExtRequire:
		return "require"
	}
	return "ExtMode(" + strconv.Itoa(int(m)) + ")"
}

// defaultTimeout bounds a handshake whose context has no deadline.
const defaultTimeout = 30 * time.Second

// A Dialer connects through a SOCKS gateway. It implements the Dialer and
// ContextDialer interfaces of golang.org/x/net/proxy. Its zero value,
// given a ProxyAddress, offers the extensions without authentication and
// falls back to plain SOCKS5.
//
// A Dialer is safe for concurrent use; its fields must not change while
// it is in use.
type Dialer struct {
	// ProxyAddress is the gateway's host:port, such as "127.0.0.1:1080".
	ProxyAddress string

	// Username and Password authenticate to the gateway: RFC 1929 in
	// plain SOCKS5, Auth Method 0x02 in HELLO. An empty Username means no
	// authentication (the gateway may refuse that). Each is at most 255
	// bytes.
	//
	// The Dialer sends the credentials as configured, in cleartext unless
	// ProxyDial returns a TLS connection. draft-socks6-extensions-00
	// ("HELLO") lets a client send a password without TLS only when it
	// trusts the path to the gateway, such as loopback or a LAN it
	// controls; configuring a Username is taken as that decision.
	Username, Password string

	// Extensions says whether to offer the SOCKS6 extensions. The zero
	// value, ExtAuto, offers them and falls back to plain SOCKS5.
	Extensions ExtMode

	// Family is sent as a FAMILY option with CONNECT and RESOLVE when the
	// extensions are in use: which address families the gateway tries
	// for a name. Zero sends no option (the gateway's default, Happy
	// Eyeballs), except that DialContext with network "tcp4" or "tcp6"
	// then sends proto.FamilyIPv4Only or proto.FamilyIPv6Only.
	Family proto.Family

	// HopLimit, if not zero, is sent as a HOP_LIMIT option with CONNECT
	// and RESOLVE when the extensions are in use: how many more gateways
	// the request may cross (draft-socks6-extensions-00, "Chaining"). A
	// gateway that forwards requests to an upstream one sets it to what
	// it received, less one; other clients leave it zero, which the
	// gateway takes as 8. A plain SOCKS5 gateway cannot carry it.
	HopLimit uint8

	// ProxyDial opens the connection to the gateway. Nil means a zero
	// net.Dialer's DialContext. It may return a TLS connection, whose
	// ALPN protocol then decides as with TLSConfig.
	ProxyDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// TLSConfig, if not nil, makes the Dialer speak TLS to the gateway
	// over the connection ProxyDial returns (draft-socks6-extensions-00,
	// "TLS and ALPN"). It is cloned; an empty NextProtos offers "socks6"
	// (the extensions from the first byte) before "socks5" (RFC 1928
	// inside TLS), or "socks5" alone with ExtOff, and an empty ServerName
	// is the host of ProxyAddress. A connection that ProxyDial returns
	// is used as it is if it is a *tls.Conn already.
	// A session negotiated over TLS 1.3 is a TLS session: the callers
	// its listeners are offered are taken with a PROOF of its key. Set
	// ClientSessionCache to resume TLS sessions, which makes every
	// connection after the first much cheaper (FromURL does).
	TLSConfig *tls.Config

	// Timeout bounds each handshake (reaching the gateway, negotiation
	// and the request) when the caller's context has no deadline. Zero
	// means 30s; negative means no limit. Session writes use it too.
	Timeout time.Duration
}

// Dial connects to address through the gateway; see DialContext.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects to address through the gateway with CONNECT and
// returns a *Conn. network is "tcp", "tcp4" or "tcp6"; address is
// host:port, where host is an IP address or a name that the gateway
// resolves (it is sent as ATYP 3, never resolved locally), and port is a
// number or a service name.
//
// ctx bounds the handshake only; once DialContext returns, cancelling
// ctx does not affect the connection. A refusal by the gateway is a
// *net.OpError wrapping a *ReplyError.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	target, family, err := d.prepare(ctx, network, address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := d.handshakeContext(ctx)
	defer cancel()
	c, err := d.dialGateway(ctx)
	if err != nil {
		return nil, d.opError("connect", network, address, err)
	}
	conn, err := d.handshakeOn(ctx, c, target, family, network, address)
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}

// handshakeContext applies Timeout to a ctx without a deadline.
func (d *Dialer) handshakeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	t := d.timeout()
	if t <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, t)
}

func (d *Dialer) timeout() time.Duration {
	if d.Timeout == 0 {
		return defaultTimeout
	}
	return d.Timeout
}

func (d *Dialer) checkCredentials() error {
	if len(d.Username) > proto.MaxUserPassLen || len(d.Password) > proto.MaxUserPassLen {
		return errors.New("socks: username or password longer than 255 bytes")
	}
	return nil
}

// dialGateway opens the connection to the gateway.
func (d *Dialer) dialGateway(ctx context.Context) (net.Conn, error) {
	if d.ProxyAddress == "" {
		return nil, errors.New("socks: Dialer has no ProxyAddress")
	}
	dial := d.ProxyDial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	c, err := dial(ctx, "tcp", d.ProxyAddress)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("socks: ProxyDial returned no connection")
	}
	if d.TLSConfig != nil {
		return d.startTLS(ctx, c)
	}
	return c, nil
}

// connect runs the handshake and CONNECT on c, whose deadline the caller
// manages. On error the caller closes c.
func (d *Dialer) connect(c net.Conn, target proto.Addr, family proto.Family, address string) (*Conn, error) {
	neg, err := d.negotiate(c, true)
	if err != nil {
		return nil, err
	}
	if !neg.ext {
		return connectPlain(c, target, address)
	}
	conn, err := connectExt(c, neg.ack, target, family, d.HopLimit, address)
	if err != nil {
		writeMalformedClose(c, err)
		return nil, err
	}
	return conn, nil
}

// connectPlain sends an RFC 1928 CONNECT and reads the reply.
func connectPlain(c net.Conn, target proto.Addr, address string) (*Conn, error) {
	if err := proto.Write(c, proto.Request{Command: proto.CommandConnect, Addr: target}); err != nil {
		return nil, fmt.Errorf("socks: writing request: %w", err)
	}
	hr := &headReader{r: c}
	rep, err := proto.ReadReply(hr)
	if err != nil {
		// A refusal is a refusal even when the BND.ADDR after it does
		// not parse or never comes (some gateways cut corners there):
		// the caller gets its code.
		if hr.n == len(hr.head) && hr.head[0] == proto.Version5 && proto.ReplyCode(hr.head[1]) != proto.ReplySucceeded {
			return nil, &ReplyError{Command: proto.CommandConnect, Target: address, Code: proto.ReplyCode(hr.head[1])}
		}
		return nil, err
	}
	if rep.Code != proto.ReplySucceeded {
		return nil, &ReplyError{Command: proto.CommandConnect, Target: address, Code: rep.Code}
	}
	return &Conn{Conn: c, bound: rep.Addr}, nil
}

// headReader remembers the first two bytes read through it (VER and REP
// of a reply).
type headReader struct {
	r    io.Reader
	head [2]byte
	n    int
}

func (h *headReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += copy(h.head[h.n:], p[:n])
	return n, err
}

// connectExt sends CONNECT in a REQUEST frame and reads frames until its
// REPLY. After a successful REPLY the connection carries the stream's
// bytes and no more frames (draft-socks6-extensions-00, "Connection
// Roles").
func connectExt(c net.Conn, ack proto.HelloAck, target proto.Addr, family proto.Family, hops uint8, address string) (*Conn, error) {
	req := proto.ExtRequest{Command: proto.CommandConnect, Addr: target}
	if family != 0 {
		req.Options = append(req.Options, proto.FamilyOption(family))
	}
	if hops != 0 {
		req.Options = append(req.Options, proto.HopLimitOption(hops))
	}
	rep, err := exchange(c, ack, req)
	if err != nil {
		return nil, err
	}
	if rep.Code != proto.ReplySucceeded {
		diag, _ := rep.Options.Diagnostic()
		return nil, &ReplyError{Command: proto.CommandConnect, Target: address, Code: rep.Code, Diagnostic: diag}
	}
	conn := &Conn{Conn: c, bound: rep.Addr, ext: true}
	if a, ok := rep.Options.Connected(); ok {
		conn.connected, conn.hasConnected = a.AddrPort()
	}
	return conn, nil
}

// exchange sends req, a connection-consuming request (CONNECT, TAKE),
// with Request ID 1 and reads frames until its REPLY, which it returns
// whatever its code. The REQUEST is the last frame the client sends on
// c: a successful REPLY makes c a data connection.
func exchange(c net.Conn, ack proto.HelloAck, req proto.ExtRequest) (proto.ExtReply, error) {
	const id = 1
	req.ID = id
	limit := int(ack.MaxFrameLen)
	b, err := encodeFrame(req, limit)
	if err != nil {
		return proto.ExtReply{}, err
	}
	if _, err := c.Write(b); err != nil {
		return proto.ExtReply{}, fmt.Errorf("socks: writing REQUEST: %w", err)
	}
	for {
		f, err := readFrame(c, limit)
		if err != nil {
			return proto.ExtReply{}, err
		}
		switch f.Type {
		case proto.FrameReply:
			rid, _, err := proto.ParseVarint(f.Value)
			if err != nil {
				return proto.ExtReply{}, malformed("REPLY", err)
			}
			if rid != id {
				return proto.ExtReply{}, malformed("REPLY", fmt.Errorf("request ID %d, want %d: %w", rid, id, proto.ErrMalformed))
			}
			rep, err := proto.ParseExtReply(f.Value, req.Command)
			if err != nil {
				return proto.ExtReply{}, malformed("REPLY", err)
			}
			return rep, nil
		case proto.FrameClose:
			return proto.ExtReply{}, closeError(f)
		case proto.FramePing, proto.FramePong, proto.FrameRoutes:
			// A PING is not answered here: the REQUEST is the last frame
			// the client may send on this connection, and bytes after it
			// are the stream's.
			if err := checkFrame(f); err != nil {
				return proto.ExtReply{}, err
			}
		default:
			if f.Type <= lastKnownFrame {
				return proto.ExtReply{}, wrongFrame(f, "before the REPLY to "+strings.ToUpper(req.Command.String()))
			}
			// Unknown types, GREASE included, are skipped
			// (draft-socks6-extensions-00, "Extensibility and GREASE").
		}
	}
}

// closeError turns a CLOSE frame into a *CloseError, or a malformed CLOSE
// into a protocol error.
func closeError(f proto.Frame) error {
	cl, err := proto.ParseClose(f.Value)
	if err != nil {
		return malformed("CLOSE", err)
	}
	diag, _ := cl.Options.Diagnostic()
	return &CloseError{Reason: cl.Reason, Diagnostic: diag}
}

// negotiation is what a method negotiation established.
type negotiation struct {
	ext bool           // the gateway selected 0xC6 and HELLO succeeded
	ack proto.HelloAck // when ext
	// key is the session key when ext on a TLS 1.3 connection (tls).
	key proto.SessionKey
	tls bool
}

// methods returns the methods d offers in its greeting, in order.
func (d *Dialer) methods() []proto.Method {
	ms := make([]proto.Method, 0, 3)
	if d.Extensions != ExtOff {
		ms = append(ms, proto.MethodExtensions)
	}
	ms = append(ms, proto.MethodNoAuth)
	if d.Username != "" {
		ms = append(ms, proto.MethodUserPass)
	}
	return ms
}

// negotiate sends the greeting and completes the method the gateway
// selects: HELLO for 0xC6, RFC 1929 for 0x02. With plainOK false, a
// selection other than 0xC6 fails with ErrNoExtensions before any
// sub-negotiation. A protocol error after HELLO has already been
// answered with CLOSE.
func (d *Dialer) negotiate(c net.Conn, plainOK bool) (negotiation, error) {
	socks6, err := alpnSOCKS6(c)
	if err != nil {
		return negotiation{}, err
	}
	if socks6 {
		if d.Extensions == ExtOff {
			return negotiation{}, errors.New("socks: the gateway selected ALPN socks6, but Dialer.Extensions is off")
		}
		// No greeting: HELLO comes first, with no Methods.
		return d.helloNegotiation(c, nil)
	}
	methods := d.methods()
	if err := proto.Write(c, proto.Greeting{Methods: methods}); err != nil {
		return negotiation{}, fmt.Errorf("socks: writing greeting: %w", err)
	}
	sel, err := proto.ReadMethodSelection(c)
	if err != nil {
		return negotiation{}, err
	}
	m := sel.Method
	if m != proto.MethodNoAcceptable && !(proto.Greeting{Methods: methods}).Offers(m) {
		return negotiation{}, malformed("method selection", fmt.Errorf("%v, which was not offered: %w", m, proto.ErrMalformed))
	}
	if m == proto.MethodExtensions {
		return d.helloNegotiation(c, methods)
	}
	if m == proto.MethodNoAcceptable {
		// Every method offered was refused, the extensions too: an
		// authentication failure whatever was required, not a downgrade.
		return negotiation{}, fmt.Errorf("%w: gateway accepts none of the offered methods", ErrAuth)
	}
	if d.Extensions == ExtRequire {
		return negotiation{}, fmt.Errorf("%w: it selected %v", ErrDowngrade, m)
	}
	if !plainOK {
		return negotiation{}, fmt.Errorf("%w: gateway selected %v", ErrNoExtensions, m)
	}
	switch m {
	case proto.MethodUserPass:
		up := proto.UserPassRequest{Username: d.Username, Password: d.Password}
		if err := proto.Write(c, up); err != nil {
			return negotiation{}, fmt.Errorf("socks: writing credentials: %w", err)
		}
		r, err := proto.ReadUserPassReply(c)
		if err != nil {
			return negotiation{}, err
		}
		if r.Status != proto.UserPassSuccess {
			return negotiation{}, fmt.Errorf("%w: gateway refused user %q (status 0x%02x)", ErrAuth, d.Username, r.Status)
		}
	}
	return negotiation{}, nil
}

// helloNegotiation runs HELLO and, on a TLS 1.3 connection, derives the
// session key.
func (d *Dialer) helloNegotiation(c net.Conn, methods []proto.Method) (negotiation, error) {
	ack, err := d.hello(c, methods)
	if err != nil {
		writeMalformedClose(c, err)
		return negotiation{}, err
	}
	neg := negotiation{ext: true, ack: ack}
	neg.key, neg.tls = sessionKey(c, ack)
	return neg, nil
}

// hello sends HELLO, whose Methods repeat the greeting exactly (the
// gateway's transcript check), and reads HELLO_ACK.
func (d *Dialer) hello(c net.Conn, methods []proto.Method) (proto.HelloAck, error) {
	h := proto.Hello{Methods: methods, Auth: proto.MethodNoAuth}
	if d.Username != "" {
		h.Auth, h.Username, h.Password = proto.MethodUserPass, d.Username, d.Password
	}
	if err := proto.WriteFrame(c, h); err != nil {
		return proto.HelloAck{}, fmt.Errorf("socks: writing HELLO: %w", err)
	}
	// Until HELLO_ACK takes effect, it may be up to 16384 bytes long.
	f, err := readFrame(c, proto.DefaultMaxFrameLen)
	if err != nil {
		return proto.HelloAck{}, err
	}
	if f.Type != proto.FrameHelloAck {
		// Even a frame of an unknown type is malformed here.
		return proto.HelloAck{}, malformed("first frame", fmt.Errorf("%v instead of HELLO_ACK: %w", f.Type, proto.ErrMalformed))
	}
	ack, err := proto.ParseHelloAck(f.Value)
	if err != nil {
		return proto.HelloAck{}, malformed("HELLO_ACK", err)
	}
	if ack.Status != proto.HelloOK {
		// The gateway closes the connection; whatever follows is
		// ignored.
		diag, _ := ack.Options.Diagnostic()
		return proto.HelloAck{}, &HelloError{Status: ack.Status, Version: ack.Version, Diagnostic: diag}
	}
	return ack, nil
}

// parseTarget turns a DialContext network and address into a SOCKS
// address, and returns the FAMILY that network implies.
func parseTarget(ctx context.Context, network, address string) (proto.Addr, proto.Family, error) {
	var family proto.Family
	switch network {
	case "tcp":
	case "tcp4":
		family = proto.FamilyIPv4Only
	case "tcp6":
		family = proto.FamilyIPv6Only
	default:
		return proto.Addr{}, 0, net.UnknownNetworkError(network)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return proto.Addr{}, 0, err
	}
	port, err := parsePort(ctx, network, portStr)
	if err != nil {
		return proto.Addr{}, 0, err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return proto.Addr{}, 0, fmt.Errorf("socks: address %q: a zone cannot be sent to the gateway", address)
		}
		ip = ip.Unmap()
		if network == "tcp4" && !ip.Is4() || network == "tcp6" && !ip.Is6() {
			return proto.Addr{}, 0, &net.AddrError{Err: "address family does not match network " + network, Addr: address}
		}
		return proto.Addr{IP: ip, Port: port}, family, nil
	}
	name, err := fqdn(host)
	if err != nil {
		return proto.Addr{}, 0, err
	}
	return proto.Addr{FQDN: name, Port: port}, family, nil
}

func parsePort(ctx context.Context, network, s string) (uint16, error) {
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return uint16(n), nil
	}
	p, err := net.DefaultResolver.LookupPort(ctx, network, s)
	if err != nil {
		return 0, err
	}
	return uint16(p), nil
}

// fqdn checks a domain name for ATYP 3: 1 to 255 bytes, without the
// trailing dot (draft-socks6-extensions-00, "Addresses").
func fqdn(host string) (string, error) {
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > proto.MaxFQDNLen {
		return "", &net.DNSError{Err: "name must be 1 to 255 bytes", Name: host, IsNotFound: true}
	}
	return name, nil
}

// sockAddr is a net.Addr for error messages: the gateway or a target.
type sockAddr struct{ network, addr string }

func (a sockAddr) Network() string { return a.network }
func (a sockAddr) String() string  { return a.addr }

// opError wraps err the way package net does: "socks6 connect tcp
// gateway->target: err".
func (d *Dialer) opError(op, network, target string, err error) error {
	e := &net.OpError{Op: "socks6 " + op, Net: network, Source: sockAddr{"tcp", d.ProxyAddress}, Err: err}
	if target != "" {
		e.Addr = sockAddr{network, target}
	}
	return e
}
