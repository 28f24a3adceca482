package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server/resolver"
)

// Happy Eyeballs v2 timing (RFC 8305 sections 3 and 5; the draft's
// "Connection Establishment at the Gateway").
const (
	// resolutionDelay is how long an answer of the second family waits
	// for the preferred family's before connecting starts.
	resolutionDelay = 50 * time.Millisecond
	// attemptDelay separates the starts of connection attempts.
	attemptDelay = 250 * time.Millisecond
)

// Errors for names that lead nowhere, with the codes the draft gives them.
var (
	errNoAddress     = &ReplyError{Code: proto.ReplyHostUnreachable, Err: errors.New("name has no address of an allowed family")}
	errNoAllowedAddr = &ReplyError{Code: proto.ReplyNotAllowed, Err: errors.New("no resolved address is allowed")}
)

// networks returns the resolver networks a FAMILY allows, preferred first.
func networks(f proto.Family) (first, second string) {
	switch f {
	case proto.FamilyPreferIPv4:
		return "ip4", "ip6"
	case proto.FamilyIPv4Only:
		return "ip4", ""
	case proto.FamilyIPv6Only:
		return "ip6", ""
	}
	return "ip6", "ip4"
}

// familyAllows reports whether an address literal may be used under f.
func familyAllows(f proto.Family, ip netip.Addr) bool {
	switch f {
	case proto.FamilyIPv4Only:
		return ip.Unmap().Is4()
	case proto.FamilyIPv6Only:
		return !ip.Unmap().Is4()
	}
	return true
}

// lookupDone is one family's answer.
type lookupDone struct {
	network string
	ans     []resolver.Answer
	err     error
}

// lookupFamilies starts the queries f allows, the preferred one first, and
// returns a channel that receives one lookupDone per query, and the
// number of queries.
func (s *Server) lookupFamilies(ctx context.Context, host string, f proto.Family) (<-chan lookupDone, int) {
	r := s.resolver()
	first, second := networks(f)
	n := 1
	if second != "" {
		n = 2
	}
	ch := make(chan lookupDone, n)
	if ar, ok := r.(*resolver.Resolver); ok {
		// No goroutine per query: the resolver hands each answer to ch
		// from the goroutine that got it.
		for _, nw := range []string{first, second}[:n] {
			ar.LookupAsync(ctx, nw, host, func(ans []resolver.Answer, err error) {
				ch <- lookupDone{nw, ans, err} // buffered: never blocks
			})
		}
		return ch, n
	}
	for _, nw := range []string{first, second}[:n] {
		go func() {
			ans, err := r.Lookup(ctx, nw, host)
			ch <- lookupDone{nw, ans, err}
		}()
	}
	return ch, n
}

// lookupError combines the errors of the queries for a name that gave no
// address: NXDOMAIN only if every query said so; a resolver failure if
// any failed (the name may exist); otherwise the name exists without
// addresses of the families asked for.
func lookupError(errs []error) error {
	var notFound, other error
	for _, err := range errs {
		switch {
		case err == nil:
		case isNotFound(err):
			notFound = err
		default:
			if other == nil {
				other = err
			}
		}
	}
	switch {
	case other != nil:
		return other
	case notFound != nil && len(errs) > 0 && countNil(errs) == 0:
		return notFound
	}
	return errNoAddress
}

func countNil(errs []error) int {
	n := 0
	for _, err := range errs {
		if err == nil {
			n++
		}
	}
	return n
}

func isNotFound(err error) bool {
	if errors.Is(err, resolver.ErrNotFound) {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// interleave orders addresses as RFC 8305 section 4 says: alternate the
// families, the preferred family first.
func interleave[T any](pref, other []T) []T {
	out := make([]T, 0, len(pref)+len(other))
	for i := 0; i < len(pref) || i < len(other); i++ {
		if i < len(pref) {
			out = append(out, pref[i])
		}
		if i < len(other) {
			out = append(out, other[i])
		}
	}
	return out
}

// attemptDone is the end of one connection attempt.
type attemptDone struct {
	ap   netip.AddrPort
	conn net.Conn
	err  error
}

// dialFailure collects the failures of the attempts for one target and
// turns them into the reply code the draft asks for.
type dialFailure struct {
	refused, timedOut, other error
	attempts                 int
}

func (d *dialFailure) add(err error) {
	d.attempts++
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		if d.refused == nil {
			d.refused = err
		}
	case isTimeout(err):
		if d.timedOut == nil {
			d.timedOut = err
		}
	default:
		if d.other == nil {
			d.other = err
		}
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded)
}

// err returns the failure to report: refused if any attempt was refused,
// else a timeout if any timed out, else what the network said.
func (d *dialFailure) err() error {
	switch {
	case d.refused != nil:
		return d.refused
	case d.timedOut != nil:
		return replyErr(proto.ReplyTimeout, d.timedOut)
	case d.other != nil:
		return d.other
	}
	return nil
}

// heDial is one Happy Eyeballs run: the candidate addresses, the attempts
// in flight and what failed.
type heDial struct {
	ss      *session
	port    uint16
	fam     proto.Family
	pref    string // the preferred network, "ip6" or "ip4"
	queue   []netip.Addr
	tried   map[netip.Addr]bool
	refused error // the last guard or policy refusal
	fail    dialFailure
	nat64   bool // a synthesized address was queued already
}

// add queues newly resolved addresses after checking them against guard
// and policy, keeping the queue interleaved by family.
func (h *heDial) add(ctx context.Context, ips []netip.Addr) {
	var pref, other []netip.Addr
	for _, ip := range h.queue {
		if (ip.Is6() && h.pref == "ip6") || (ip.Is4() && h.pref == "ip4") {
			pref = append(pref, ip)
		} else {
			other = append(other, ip)
		}
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		if h.tried[ip] || !familyAllows(h.fam, ip) {
			continue
		}
		if err := h.ss.allowIP(ctx, ip); err != nil {
			h.refused = err
			continue
		}
		h.tried[ip] = true
		if (ip.Is6() && h.pref == "ip6") || (ip.Is4() && h.pref == "ip4") {
			pref = append(pref, ip)
		} else {
			other = append(other, ip)
		}
	}
	h.queue = interleave(pref, other)
}

// dialTarget connects to the request's target and returns the connection
// and the address it reached. An IP target gets one attempt (and a NAT64
// retry, see nat64Retry); a name is resolved and raced by Happy Eyeballs
// v2 within DialTimeout from now, whatever is left of the handshake's
// deadline. Close still cancels it.
func (ss *session) dialTarget() (net.Conn, netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ss.s.baseCtx, ss.s.dialTimeout())
	defer cancel()
	t := ss.req.Target
	h := &heDial{ss: ss, port: t.Port, fam: ss.family, tried: map[netip.Addr]bool{}}
	h.pref, _ = networks(ss.family)
	if t.FQDN == "" {
		// checkPolicy has vetted the address; FAMILY does not apply.
		return h.dialOne(ctx, t.IP.Unmap())
	}
	if conn, ap, err, done := h.fromCache(ctx, t.FQDN); done {
		return conn, ap, err
	}
	ch, n := ss.s.lookupFamilies(ctx, t.FQDN, ss.family)
	return h.run(ctx, ch, n)
}

// fromCache connects to a name whose allowed families are all answered
// from the resolver's cache or hosts file: no lookup goroutines, and no
// race when one address remains. done is false when a family needs a
// query; the caller then runs the full Happy Eyeballs.
func (h *heDial) fromCache(ctx context.Context, host string) (net.Conn, netip.AddrPort, error, bool) {
	cr, ok := h.ss.s.resolver().(*resolver.Resolver)
	if !ok {
		return nil, netip.AddrPort{}, nil, false
	}
	first, second := networks(h.fam)
	a1, ok1, err1 := cr.LookupCached(first, host)
	if !ok1 {
		return nil, netip.AddrPort{}, nil, false
	}
	var a2 []resolver.Answer
	var err2 error
	errs := []error{err1}
	if second != "" {
		var ok2 bool
		a2, ok2, err2 = cr.LookupCached(second, host)
		if !ok2 {
			return nil, netip.AddrPort{}, nil, false
		}
		errs = append(errs, err2)
	}
	ips := make([]netip.Addr, 0, len(a1)+len(a2))
	for _, a := range a1 {
		ips = append(ips, a.Addr)
	}
	h.add(ctx, ips)
	ips = ips[:0]
	for _, a := range a2 {
		ips = append(ips, a.Addr)
	}
	h.add(ctx, ips)
	switch len(h.queue) {
	case 0:
		return nil, netip.AddrPort{}, h.result(ctx, errs), true
	case 1:
		ip := h.queue[0]
		h.queue = nil
		c, ap, err := h.dialOne(ctx, ip)
		if err != nil && h.refused != nil && h.fail.attempts == 0 {
			err = h.refused
		}
		return c, ap, err, true
	}
	c, ap, err := h.run(ctx, nil, 0)
	return c, ap, err, true
}

// dialOne connects to a single address in the session's own goroutine
// (an IP target, or a name with one usable address): nothing to race, so
// no attempt goroutine and no timer. An IPv4 address without a route is
// retried at its NAT64 form.
func (h *heDial) dialOne(ctx context.Context, ip netip.Addr) (net.Conn, netip.AddrPort, error) {
	for {
		ap := netip.AddrPortFrom(ip, h.port)
		c, err := h.ss.s.dial(ctx, ap)
		if err == nil {
			return c, ap, nil
		}
		h.fail.add(err)
		h.nat64Retry(ctx, ip, err)
		if len(h.queue) == 0 || ctx.Err() != nil {
			return nil, netip.AddrPort{}, h.result(ctx, nil)
		}
		ip = h.queue[0]
		h.queue = h.queue[1:]
	}
}

// run races connection attempts over the queue, taking in DNS answers as
// they arrive on ch (n of them outstanding).
func (h *heDial) run(ctx context.Context, ch <-chan lookupDone, n int) (net.Conn, netip.AddrPort, error) {
	ss := h.ss
	var lookupErrs []error
	gotPref := false
	var early []netip.Addr // the other family's addresses, held back during the resolution delay
	take := func(d lookupDone) {
		n--
		lookupErrs = append(lookupErrs, d.err)
		ips := make([]netip.Addr, 0, len(d.ans))
		for _, a := range d.ans {
			ips = append(ips, a.Addr)
		}
		if d.network == h.pref {
			gotPref = true
			h.add(ctx, ips)
			h.add(ctx, early)
			early = nil
		} else if !gotPref && n > 0 {
			early = ips
		} else {
			h.add(ctx, ips)
		}
	}

	// Resolution: wait for the preferred family, or for the other one
	// plus the resolution delay.
	if n > 0 {
		var delay <-chan time.Time
	resolving:
		for n > 0 && !gotPref {
			select {
			case d := <-ch:
				take(d)
				if !gotPref && len(early) > 0 && delay == nil {
					t := time.NewTimer(resolutionDelay)
					defer t.Stop()
					delay = t.C
				}
			case <-delay:
				h.add(ctx, early)
				early = nil
				break resolving
			case <-ctx.Done():
				return nil, netip.AddrPort{}, ctx.Err()
			}
		}
		if len(early) > 0 { // both queries ended
			h.add(ctx, early)
			early = nil
		}
		if n == 0 && len(h.queue) == 1 {
			// Resolution is over and left one address (a name with one
			// A record, say): nothing to race, so no attempt goroutine.
			ip := h.queue[0]
			h.queue = nil
			return h.dialOne(ctx, ip)
		}
	}

	results := make(chan attemptDone)
	inflight := 0
	var timer *time.Timer
	var next <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	attemptCtx, cancelAttempts := context.WithCancel(ctx)
	defer func() {
		cancelAttempts()
		// Losers still connecting are closed as they finish.
		for ; inflight > 0; inflight-- {
			if r := <-results; r.conn != nil {
				r.conn.Close()
			}
		}
	}()
	start := func() {
		ip := h.queue[0]
		h.queue = h.queue[1:]
		ap := netip.AddrPortFrom(ip, h.port)
		inflight++
		go func() {
			c, err := ss.s.dial(attemptCtx, ap)
			results <- attemptDone{ap, c, err}
		}()
		if timer == nil {
			timer = time.NewTimer(attemptDelay)
		} else {
			timer.Reset(attemptDelay)
		}
		next = timer.C
	}

	for {
		if len(h.queue) > 0 && (inflight == 0 || next == nil) {
			start()
		}
		if inflight == 0 && n == 0 {
			break
		}
		select {
		case r := <-results:
			inflight--
			if r.err == nil {
				return r.conn, r.ap, nil
			}
			if attemptCtx.Err() == nil || !errors.Is(r.err, context.Canceled) {
				h.fail.add(r.err)
			}
			h.nat64Retry(ctx, r.ap.Addr(), r.err)
			next = nil // start the next attempt now
		case <-next:
			next = nil
		case d := <-ch:
			take(d)
		case <-ctx.Done():
			if inflight > 0 || h.fail.attempts > 0 {
				h.fail.add(ctx.Err())
			}
			return nil, netip.AddrPort{}, h.result(ctx, lookupErrs)
		}
	}
	return nil, netip.AddrPort{}, h.result(ctx, lookupErrs)
}

// result is the error for a run in which nothing connected.
func (h *heDial) result(ctx context.Context, lookupErrs []error) error {
	if err := h.fail.err(); err != nil {
		return err
	}
	if h.refused != nil {
		return h.refused
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return lookupError(lookupErrs)
}

// nat64Retry queues the NAT64 form of an IPv4 address that the gateway
// has no route to, when it knows a NAT64 prefix (configured, or found by
// RFC 7050 discovery): an IPv6-only gateway behind NAT64 still reaches
// IPv4-only destinations, by literal or by a name without AAAA records.
// The guard and policy have vetted the IPv4 address, which is what the
// translator reaches; the synthesized one is not checked again.
func (h *heDial) nat64Retry(ctx context.Context, ip netip.Addr, err error) {
	if h.nat64 || !ip.Is4() || h.fam == proto.FamilyIPv4Only || !errors.Is(err, syscall.ENETUNREACH) {
		return
	}
	prefix, ok := h.ss.s.nat64Prefix(ctx)
	if !ok {
		return
	}
	v6, serr := resolver.Synthesize(prefix, ip)
	if serr != nil || h.tried[v6] {
		return
	}
	h.nat64 = true
	h.tried[v6] = true
	h.queue = append([]netip.Addr{v6}, h.queue...)
}

// nat64Prefix returns the configured NAT64 prefix or, with DiscoverNAT64,
// the one the resolver finds.
func (s *Server) nat64Prefix(ctx context.Context) (netip.Prefix, bool) {
	if s.NAT64Prefix.IsValid() {
		return s.NAT64Prefix, true
	}
	if !s.DiscoverNAT64 {
		return netip.Prefix{}, false
	}
	d, ok := s.resolver().(interface {
		NAT64Prefix(context.Context) (netip.Prefix, bool)
	})
	if !ok {
		return netip.Prefix{}, false
	}
	return d.NAT64Prefix(ctx)
}

// resolveAll looks up every address of host that f allows, in the order
// Happy Eyeballs would try them, with TTLs. It is RESOLVE's answer, and
// also picks datagram destinations and Tor's RESOLVE reply.
func (s *Server) resolveAll(ctx context.Context, host string, f proto.Family) ([]resolver.Answer, error) {
	ch, n := s.lookupFamilies(ctx, host, f)
	pref, _ := networks(f)
	var a, b []resolver.Answer
	var errs []error
	for ; n > 0; n-- {
		select {
		case d := <-ch:
			errs = append(errs, d.err)
			if d.network == pref {
				a = d.ans
			} else {
				b = d.ans
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := interleave(a, b)
	if len(out) == 0 {
		if err := lookupError(errs); err != errNoAddress {
			return nil, err
		}
	}
	return out, nil
}

// resolveFor returns the addresses for r's target that guard and policy
// allow, in Happy Eyeballs order. UDP datagrams use it.
func (ss *session) resolveFor(ctx context.Context, r *Request) ([]netip.Addr, error) {
	t := r.Target
	if t.FQDN == "" {
		return []netip.Addr{t.IP.Unmap()}, nil
	}
	ans, err := ss.s.resolveAll(ctx, t.FQDN, ss.family)
	if err != nil {
		return nil, err
	}
	if len(ans) == 0 {
		return nil, errNoAddress
	}
	allowed := make([]netip.Addr, 0, len(ans))
	var refused error
	for _, a := range ans {
		ip := a.Addr.Unmap()
		if err := ss.allowIPFor(ctx, r, ip); err != nil {
			refused = err
			continue
		}
		allowed = append(allowed, ip)
	}
	if len(allowed) == 0 {
		if refused != nil {
			return nil, refused
		}
		return nil, errNoAllowedAddr
	}
	return allowed, nil
}
