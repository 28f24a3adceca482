package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// An Upstream is a gateway this one forwards requests to
// (draft-socks6-extensions-00, "Chaining"): a home gateway that passes
// everything to its provider's gateway, or an office gateway that sends
// a partner network's traffic to the partner's gateway. The server is a
// client of the upstream with the upstream's own Dialer: its own
// credentials, never the client's.
//
// Forwarded are CONNECTs, and RESOLVEs of names, whose destinations the
// upstream serves: names are passed on unresolved (the upstream
// resolves them), IP addresses as they are. Other commands (BIND, UDP,
// LISTEN) are served by this gateway.
type Upstream struct {
	// Name names the upstream in logs and audit records.
	Name string
	// Dialer reaches the upstream gateway. The server copies it for each
	// request, setting Family and HopLimit from the request; it must not
	// change after Serve.
	Dialer *client.Dialer
	// Nets are the IP destinations the upstream serves.
	Nets []netip.Prefix
	// Domains are the names it serves: each name and every name under
	// it, lower case without leading or trailing dots.
	Domains []string
	// Default makes it serve every destination that no upstream's Nets
	// or Domains match. The first default upstream is used.
	Default bool
}

// defaultHopLimit is the HOP_LIMIT of a request without one.
const defaultHopLimit = 8

// upstreamFor returns the upstream that serves target, or nil to serve it
// here: the most specific match (the longest prefix for an address, the
// longest domain for a name), else the first default upstream.
func (st *Settings) upstreamFor(target proto.Addr) *Upstream {
	if len(st.Upstreams) == 0 {
		return nil
	}
	target = literalTarget(target)
	var best *Upstream
	bestLen := -1
	if target.FQDN != "" {
		name := strings.TrimSuffix(strings.ToLower(target.FQDN), ".")
		for i := range st.Upstreams {
			u := &st.Upstreams[i]
			for _, d := range u.Domains {
				if len(d) > bestLen && domainMatch([]string{d}, name) {
					best, bestLen = u, len(d)
				}
			}
		}
	} else {
		ip := target.IP.Unmap()
		for i := range st.Upstreams {
			u := &st.Upstreams[i]
			for _, p := range u.Nets {
				if p.Bits() > bestLen && p.Contains(ip) {
					best, bestLen = u, p.Bits()
				}
			}
		}
	}
	if best != nil {
		return best
	}
	for i := range st.Upstreams {
		if st.Upstreams[i].Default {
			return &st.Upstreams[i]
		}
	}
	return nil
}

// literalTarget turns a name that is an IP address literal into that
// address, so that routing, the guard and network rules judge it as the
// address it is.
func literalTarget(t proto.Addr) proto.Addr {
	if t.FQDN == "" {
		return t
	}
	if ip, err := netip.ParseAddr(t.FQDN); err == nil && ip.Zone() == "" {
		return proto.Addr{IP: ip.Unmap(), Port: t.Port}
	}
	return t
}

func (u *Upstream) name() string {
	if u.Name != "" {
		return u.Name
	}
	return u.Dialer.ProxyAddress
}

var errHopLimit = &ReplyError{Code: proto.ReplyHopLimitExceeded, Err: errors.New("HOP_LIMIT reached 0")}

// hopLimit returns the HOP_LIMIT the session's request came with
// (defaultHopLimit without one, and for plain SOCKS5 clients).
func (ss *session) hopLimit() uint8 {
	if !ss.hasHops {
		return defaultHopLimit
	}
	return ss.hops
}

// upstreamDialer returns a copy of u's Dialer for a request with FAMILY
// fam and HOP_LIMIT hops: it sends fam, and hops less one. A request
// that may cross no further gateway is refused with 0xEA here rather
// than upstream.
func (ss *session) upstreamDialer(u *Upstream, fam proto.Family, hops uint8) (*client.Dialer, error) {
	if hops <= 1 {
		return nil, errHopLimit
	}
	d := *u.Dialer
	d.ProxyDial = ss.s.selfDial(d.ProxyDial)
	d.HopLimit = hops - 1
	if fam != 0 {
		d.Family = fam
	}
	if d.Timeout == 0 {
		d.Timeout = ss.s.dialTimeout()
	}
	return &d, nil
}

// upstreamErr turns an upstream's failure into what this gateway
// answers: the upstream's reply code as it is, and "general failure" when
// the upstream could not be reached or broke the protocol.
func upstreamErr(u *Upstream, err error) error {
	var re *client.ReplyError
	if errors.As(err, &re) {
		switch re.Code {
		case proto.ReplyMalformedRequest, proto.ReplyAuthRequired, proto.ReplyCommandNotSupported:
			// About this gateway as the upstream's client, not about
			// the destination: the client learns only that it failed
			// (a DIAGNOSTIC would repeat the upstream's words).
			return replyErr(proto.ReplyGeneralFailure, fmt.Errorf("upstream %s refused the forwarded request: %w", u.name(), err))
		}
		return replyErr(re.Code, fmt.Errorf("upstream %s: %w", u.name(), err))
	}
	return replyErr(proto.ReplyGeneralFailure, fmt.Errorf("upstream %s: %w", u.name(), err))
}

var errForwardToSelf = errors.New("the upstream is this gateway itself (check the [[upstream]] address)")

// selfDial wraps a Dialer's way to the upstream so that a connection that
// arrives at one of this server's own listeners is refused: forwarding to
// itself would loop, and through a plain SOCKS5 hop no HOP_LIMIT would end
// the loop. The check runs on the connected socket, so host names, wildcard
// listeners and reloads are all covered.
func (s *Server) selfDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if s.isOwnListener(addrPortOf(c.RemoteAddr())) {
			c.Close()
			return nil, errForwardToSelf
		}
		return c, nil
	}
}

// isOwnListener reports whether ap is where one of the server's listeners
// accepts: its address, or any local address on a wildcard listener's
// port.
func (s *Server) isOwnListener(ap netip.AddrPort) bool {
	if !ap.IsValid() {
		return false
	}
	ip := ap.Addr().Unmap()
	s.mu.Lock()
	var las []netip.AddrPort
	for ln := range s.listeners {
		las = append(las, addrPortOf((*ln).Addr()))
	}
	s.mu.Unlock()
	for _, la := range las {
		if la.Port() != ap.Port() {
			continue
		}
		lip := la.Addr().Unmap()
		if lip == ip {
			return true
		}
		if lip.IsUnspecified() && (ip.IsLoopback() || slices.Contains(s.selfAddrs(), ip)) {
			return true
		}
	}
	return false
}

// connectUpstream serves a CONNECT through u: the upstream connects, its
// reply code and CONNECTED address are passed on, and the relay runs
// between the client and the upstream connection.
func (ss *session) connectUpstream(u *Upstream, early []byte) error {
	d, err := ss.upstreamDialer(u, ss.family, ss.hopLimit())
	if err != nil {
		return err
	}
	ss.upstream = u.name()
	ctx, cancel := context.WithTimeout(ss.s.baseCtx, ss.s.dialTimeout())
	defer cancel()
	t := ss.req.Target
	target := net.JoinHostPort(t.FQDN, fmt.Sprint(t.Port))
	if t.FQDN == "" {
		target = netip.AddrPortFrom(t.IP, t.Port).String()
	}
	c, err := d.DialContext(ctx, "tcp", target)
	ss.c.SetDeadline(time.Now().Add(ss.s.handshakeTimeout()))
	if err != nil {
		return upstreamErr(u, err)
	}
	if ss.s.shutdown.Load() {
		c.Close()
		return errShuttingDown
	}
	cc := c.(*client.Conn)
	if ap, ok := cc.Connected(); ok {
		ss.connected = ap
	}
	// The address the destination sees is the upstream's; where it has
	// none to give, ours toward the upstream.
	bound, ok := cc.BoundAddr().AddrPort()
	if !ok || bound.Addr().IsUnspecified() {
		bound = addrPortOf(cc.LocalAddr())
	}
	ss.bound = bound.String()
	if err := ss.writeReply(proto.ReplySucceeded, proto.AddrFromAddrPort(bound)); err != nil {
		c.Close()
		return err
	}
	// The client library reads nothing past the reply, so the bare
	// connection under it can be relayed (and spliced, if it is TCP).
	return ss.startRelay(cc.Conn, early)
}

// resolveUpstreamFor returns the upstream that resolves name for
// RESOLVE, or nil: an IP literal is answered here.
func (ss *session) resolveUpstreamFor(name proto.Addr) *Upstream {
	if name.FQDN == "" || literalTarget(name).FQDN == "" {
		return nil
	}
	return ss.st.upstreamFor(name)
}

// resolveUpstream answers a RESOLVE through u with a session of its own.
func (ss *session) resolveUpstream(ctx context.Context, u *Upstream, name string, fam proto.Family, hops uint8) ([]proto.ResolveAnswer, error) {
	d, err := ss.upstreamDialer(u, fam, hops)
	if err != nil {
		return nil, err
	}
	ans, err := d.Resolve(ctx, name)
	if err != nil {
		return nil, upstreamErr(u, err)
	}
	return ans, nil
}

// allowUnresolved applies the policy to a request for a name this
// gateway never resolves, because an upstream does: a Policy that
// distinguishes that case (Rules does: its network rules cannot match
// such a name) decides it so. Any other is asked with Allow, but since
// AllowIP, to which it may defer, will never come, the request is then
// refused (see Policy).
func (ss *session) allowUnresolved(ctx context.Context, r *Request) error {
	p := ss.st.Policy
	if p == nil {
		return nil
	}
	if pu, ok := p.(interface {
		AllowUnresolved(ctx context.Context, r *Request) error
	}); ok {
		return pu.AllowUnresolved(ctx, r)
	}
	if err := p.Allow(ctx, r); err != nil {
		return err
	}
	return replyErr(proto.ReplyNotAllowed, errors.New("a name forwarded upstream, and the policy has no AllowUnresolved to judge it"))
}
