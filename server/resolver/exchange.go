package resolver

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size we advertise (the DNS Flag Day 2020
// value, which avoids IP fragmentation on almost every path).
const ednsSize = 1232

// maxCNAMEs bounds the CNAME chain followed inside one answer.
const maxCNAMEs = 16

// DNS over TLS connection reuse (RFC 7858 section 3.4): at most
// maxIdleTLS idle connections per server, each reused only within
// idleTLSTimeout of its last use (servers close idle ones soon).
const (
	maxIdleTLS     = 2
	idleTLSTimeout = 10 * time.Second
)

// An upstream is one name server.
type upstream struct {
	addr       string // "192.0.2.53:53", "[2001:db8::53]:853"
	tls        bool
	serverName string // for TLS
	label      string // for errors: addr, or "tls://" + addr

	mu     sync.Mutex
	idle   []idleConn // DNS over TLS connections, oldest first
	closed bool
}

type idleConn struct {
	c    net.Conn
	used time.Time
}

// parseServer parses one entry of Config.Servers.
func parseServer(s string) (*upstream, error) {
	bad := func(why string) error { return fmt.Errorf("resolver: bad server %q: %s", s, why) }
	u := &upstream{}
	rest, isTLS := strings.CutPrefix(s, "tls://")
	port := uint16(53)
	if isTLS {
		u.tls = true
		port = 853
		rest, u.serverName, _ = strings.Cut(rest, "#")
	} else if strings.Contains(s, "://") {
		return nil, bad("unknown scheme (want an address or tls://address)")
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		ip, err2 := netip.ParseAddr(rest)
		if err2 != nil {
			return nil, bad("want an IP address with an optional port")
		}
		ap = netip.AddrPortFrom(ip, port)
	}
	if ap.Port() == 0 {
		return nil, bad("port 0")
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() || ip.Zone() == "" {
		ap = netip.AddrPortFrom(ip, ap.Port())
	}
	u.addr = ap.String()
	u.label = u.addr
	if u.tls {
		u.label = "tls://" + u.addr
		if u.serverName == "" {
			u.serverName = ap.Addr().WithZone("").String()
		}
	}
	return u, nil
}

// exchange asks the servers q, each in turn for the configured number of
// rounds, and returns the first final answer (addresses, NODATA or
// NXDOMAIN) or the last failure.
func (r *Resolver) exchange(ctx context.Context, q dns.Question) result {
	var last result
	for range r.attempts {
		for _, u := range r.servers {
			if ctx.Err() != nil {
				return result{fail: &Error{Kind: Canceled, Err: context.Cause(ctx)}}
			}
			res := r.exchangeOne(ctx, u, q)
			if res.fail == nil || res.fail.Kind == NotFound || res.fail.Kind == Canceled {
				return res
			}
			last = res
		}
	}
	if last.fail == nil { // no servers
		last.fail = &Error{Kind: NoResponse, Err: errors.New("no name servers")}
	}
	last.cacheFor = failureTTL
	return last
}

// exchangeOne asks u the question q once (twice if a UDP answer was
// truncated) and turns the reply into a result.
func (r *Resolver) exchangeOne(ctx context.Context, u *upstream, q dns.Question) result {
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(q.Name, q.Qtype) // random ID, RD set
	m.SetEdns0(ednsSize, false)
	var resp *dns.Msg
	var err error
	if u.tls {
		resp, err = r.exchangeStream(actx, u, m)
	} else {
		var truncated bool
		resp, truncated, err = r.exchangeUDP(actx, u, m)
		if err == nil && truncated {
			r.tcpFallbacks.Add(1)
			resp, err = r.exchangeStream(actx, u, m)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return result{fail: &Error{Kind: Canceled, Err: context.Cause(ctx)}}
		}
		var be *badResponseError
		if errors.As(err, &be) {
			return result{fail: &Error{Kind: BadResponse, Server: u.label, Err: be.err}}
		}
		return result{fail: &Error{Kind: NoResponse, Server: u.label, Err: err}}
	}
	res := parseResponse(q, resp, r.maxTTL, r.negTTL)
	if res.fail != nil {
		res.fail.Server = u.label
	}
	return res
}

// A badResponseError wraps why a reply was refused.
type badResponseError struct{ err error }

func (e *badResponseError) Error() string { return e.err.Error() }

var (
	errIDMismatch       = errors.New("id mismatch")
	errQuestionMismatch = errors.New("question mismatch")
	errNotResponse      = errors.New("not a response")
)

var udpBufPool = sync.Pool{New: func() any { return new([65535]byte) }}

// exchangeUDP sends m to u over UDP and returns its reply. Datagrams that
// are not a reply to m (wrong ID or question, or unreadable) are ignored
// as possible forgeries, as the Go and glibc resolvers do; if only such
// datagrams came, the error says so. truncated reports a reply with TC=1,
// whose records are not to be used.
func (r *Resolver) exchangeUDP(ctx context.Context, u *upstream, m *dns.Msg) (resp *dns.Msg, truncated bool, err error) {
	req, err := m.Pack()
	if err != nil {
		return nil, false, err
	}
	c, err := r.dial(ctx, "udp", u.addr)
	if err != nil {
		return nil, false, err
	}
	r.queries.Add(1)
	defer c.Close()
	stop := watch(ctx, c)
	defer stop()
	if _, err := c.Write(req); err != nil {
		return nil, false, err
	}
	buf := udpBufPool.Get().(*[65535]byte)
	defer udpBufPool.Put(buf)
	var bad error
	for {
		n, err := c.Read(buf[:])
		if err != nil {
			if bad != nil && isTimeout(err) {
				// Only wrong answers came (the caller checks whether its
				// own context ended first).
				err = &badResponseError{bad}
			}
			return nil, false, err
		}
		p := buf[:n]
		if n < 12 || binary.BigEndian.Uint16(p) != m.Id || p[2]&0x80 == 0 {
			continue // not a reply to our query
		}
		if p[2]&0x02 != 0 { // TC
			return nil, true, nil
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(p); err != nil {
			bad = err
			continue
		}
		if err := checkResponse(m, resp); err != nil {
			bad = err
			continue
		}
		return resp, false, nil
	}
}

// exchangeStream sends m to u over TCP, or over TLS for a DNS over TLS
// server, and returns its reply. A TLS connection is reused if one is
// idle; if the server closed it meanwhile, one new connection is tried.
func (r *Resolver) exchangeStream(ctx context.Context, u *upstream, m *dns.Msg) (*dns.Msg, error) {
	req, err := m.Pack()
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 2+len(req))
	binary.BigEndian.PutUint16(msg, uint16(len(req)))
	copy(msg[2:], req)
	for try := 0; ; try++ {
		c, reused := u.getIdle(time.Now())
		if c == nil {
			if c, err = r.dialStream(ctx, u); err != nil {
				return nil, err
			}
		}
		r.queries.Add(1)
		resp, reusable, err := roundTrip(ctx, c, msg, m)
		if err == nil {
			if !u.tls || !reusable || !u.putIdle(c, time.Now()) {
				c.Close()
			}
			return resp, nil
		}
		c.Close()
		var be *badResponseError
		if reused && try == 0 && ctx.Err() == nil && !isTimeout(err) && !errors.As(err, &be) {
			continue // the server closed the idle connection
		}
		return nil, err
	}
}

// roundTrip writes the length-prefixed msg to c and reads one reply to m.
// reusable reports whether c is fit for another exchange (ctx did not
// touch its deadline).
func roundTrip(ctx context.Context, c net.Conn, msg []byte, m *dns.Msg) (resp *dns.Msg, reusable bool, err error) {
	stop := watch(ctx, c)
	defer func() { reusable = stop() && err == nil }()
	if _, err := c.Write(msg); err != nil {
		return nil, false, err
	}
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, false, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, false, err
	}
	resp = new(dns.Msg)
	if err := resp.Unpack(body); err != nil {
		return nil, false, &badResponseError{err}
	}
	if resp.Id != m.Id {
		return nil, false, &badResponseError{errIDMismatch}
	}
	if err := checkResponse(m, resp); err != nil {
		return nil, false, &badResponseError{err}
	}
	return resp, true, nil
}

// dialStream connects to u over TCP, and runs the TLS handshake for a DNS
// over TLS server.
func (r *Resolver) dialStream(ctx context.Context, u *upstream) (net.Conn, error) {
	c, err := r.dial(ctx, "tcp", u.addr)
	if err != nil || !u.tls {
		return c, err
	}
	var cfg *tls.Config
	if r.tlsConf != nil {
		cfg = r.tlsConf.Clone()
	} else {
		cfg = &tls.Config{}
	}
	cfg.ServerName = u.serverName
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"dot"} // RFC 7858's ALPN ID (IANA registry)
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// getIdle returns an idle TLS connection to u, if one is fresh enough.
func (u *upstream) getIdle(now time.Time) (net.Conn, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.idle) > 0 {
		ic := u.idle[len(u.idle)-1]
		u.idle = u.idle[:len(u.idle)-1]
		if now.Sub(ic.used) < idleTLSTimeout {
			return ic.c, true
		}
		ic.c.Close()
	}
	return nil, false
}

// putIdle keeps c for reuse; false means the caller must close it.
func (u *upstream) putIdle(c net.Conn, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	if len(u.idle) >= maxIdleTLS {
		u.idle[0].c.Close()
		u.idle = append(u.idle[:0], u.idle[1:]...)
	}
	u.idle = append(u.idle, idleConn{c, now})
	return true
}

// closeIdle closes the idle connections and keeps new ones from idling.
func (u *upstream) closeIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	for _, ic := range u.idle {
		ic.c.Close()
	}
	u.idle = nil
}

// aLongTimeAgo is a deadline in the past, to unblock I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch makes blocking I/O on c honor ctx until stop is called. stop
// reports whether ctx left c alone; if not, c's deadline may be in the
// past and c must not be reused.
func watch(ctx context.Context, c net.Conn) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	cancel := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	return func() bool {
		if !cancel() {
			return false
		}
		c.SetDeadline(time.Time{})
		return true
	}
}

// checkResponse reports whether resp answers the query m: it is a
// response to a standard query with m's one question. The name is
// compared case-insensitively (RFC 4343; some servers randomize case).
func checkResponse(m, resp *dns.Msg) error {
	if !resp.Response || resp.Opcode != dns.OpcodeQuery {
		return errNotResponse
	}
	if len(resp.Question) != 1 {
		// A REFUSED or FORMERR reply may come without the question.
		if len(resp.Question) == 0 && resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
			return nil
		}
		return errQuestionMismatch
	}
	q, rq := m.Question[0], resp.Question[0]
	if q.Qtype != rq.Qtype || q.Qclass != rq.Qclass || !strings.EqualFold(q.Name, rq.Name) {
		return errQuestionMismatch
	}
	return nil
}

// parseResponse turns resp, a checked reply to q, into a result: the
// addresses of q's type at the end of the CNAME chain that starts at q's
// name, with TTLs capped by the chain's and by maxTTL; NODATA or NXDOMAIN
// with the negative TTL of RFC 2308 capped by negTTL (negative: not
// cached); or a failure for any other rcode. It never modifies resp and
// accepts any message.
func parseResponse(q dns.Question, resp *dns.Msg, maxTTL, negTTL time.Duration) result {
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return result{
			fail:     &Error{Kind: NotFound, Rcode: dns.RcodeNameError},
			cacheFor: negativeTTL(resp, negTTL),
		}
	default:
		return result{fail: &Error{Kind: ServerFailure, Rcode: resp.Rcode}, cacheFor: failureTTL}
	}

	maxSecs := uint32(min(maxTTL/time.Second, 1<<31-1))
	name := q.Name
	chainTTL := maxSecs
	seen := 0
	var ans []Answer
	for {
		var cname string
		for _, rr := range resp.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, name) {
				continue
			}
			var a netip.Addr
			switch v := rr.(type) {
			case *dns.A:
				if q.Qtype == dns.TypeA {
					a, _ = netip.AddrFromSlice(v.A.To4())
				}
			case *dns.AAAA:
				if q.Qtype == dns.TypeAAAA && len(v.AAAA) == net.IPv6len {
					a, _ = netip.AddrFromSlice(v.AAAA)
				}
			case *dns.CNAME:
				if cname == "" {
					cname = v.Target
					chainTTL = min(chainTTL, h.Ttl)
				}
				continue
			}
			if a.IsValid() && !containsAnswer(ans, a) {
				ans = append(ans, Answer{Addr: a, TTL: min(h.Ttl, chainTTL)})
			}
		}
		if len(ans) > 0 || cname == "" || seen >= maxCNAMEs {
			break
		}
		seen++
		name = cname
	}
	if len(ans) == 0 {
		if len(resp.Answer) == 0 && !resp.Authoritative && !resp.RecursionAvailable && soa(resp) == nil {
			// A referral from a server that does not recurse for us.
			return result{fail: &Error{Kind: BadResponse, Err: errors.New("lame referral")}, cacheFor: failureTTL}
		}
		return result{cacheFor: negativeTTL(resp, negTTL)} // NODATA
	}
	ttl := ans[0].TTL
	for _, a := range ans {
		ttl = min(ttl, a.TTL)
	}
	return result{answers: ans, cacheFor: time.Duration(ttl) * time.Second}
}

func containsAnswer(ans []Answer, a netip.Addr) bool {
	for _, x := range ans {
		if x.Addr == a {
			return true
		}
	}
	return false
}

// soa returns the SOA record of resp's authority section, if any.
func soa(resp *dns.Msg) *dns.SOA {
	for _, rr := range resp.Ns {
		if s, ok := rr.(*dns.SOA); ok {
			return s
		}
	}
	return nil
}

// negativeTTL is how long to cache a negative answer (RFC 2308 section 5):
// the smaller of the SOA's TTL and its MINIMUM field, or noSOATTL without
// an SOA; at most limit, and zero if limit is negative.
func negativeTTL(resp *dns.Msg, limit time.Duration) time.Duration {
	if limit < 0 {
		return 0
	}
	ttl := noSOATTL
	if s := soa(resp); s != nil {
		ttl = time.Duration(min(s.Hdr.Ttl, s.Minttl)) * time.Second
	}
	return min(ttl, limit)
}
