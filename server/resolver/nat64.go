package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// nat64Name is the name RFC 7050 queries for: it has only A records
// (192.0.0.170 and 192.0.0.171), so an AAAA answer was synthesized by
// DNS64 and holds the NAT64 prefix.
const nat64Name = "ipv4only.arpa."

// nat64NoneTTL is how long "no NAT64 prefix" (and an answer without TTL)
// is remembered.
const nat64NoneTTL = 10 * time.Minute

// wellKnown are RFC 7050's well-known IPv4 addresses.
var wellKnown = [2]netip.Addr{
	netip.AddrFrom4([4]byte{192, 0, 0, 170}),
	netip.AddrFrom4([4]byte{192, 0, 0, 171}),
}

// nat64Lengths are the prefix lengths of RFC 6052 section 2.2, tried in
// this order.
var nat64Lengths = [...]int{96, 64, 56, 48, 40, 32}

// nat64State is the last NAT64 discovery result; guarded by Resolver.mu.
type nat64State struct {
	prefix  netip.Prefix
	ok      bool
	expires time.Time
}

// NAT64Prefix returns the network's NAT64 prefix, discovered as RFC 7050
// says: an AAAA query for ipv4only.arpa through the upstream servers (the
// hosts file and search list are not used), and the position of
// 192.0.0.170 or 192.0.0.171 in an answer, at any prefix length of RFC
// 6052 (32, 40, 48, 56, 64 or 96). ok is false when there is none. The
// result is remembered for the answer's TTL, or 10 minutes when the
// answer has none or there is no prefix; a failed query is not
// remembered. If the answer holds several prefixes, the first is used.
//
// ctx bounds the query. It is safe for concurrent use; concurrent calls
// share one query.
func (r *Resolver) NAT64Prefix(ctx context.Context) (netip.Prefix, bool) {
	r.mu.Lock()
	st := r.nat64
	r.mu.Unlock()
	if time.Now().Before(st.expires) {
		return st.prefix, st.ok
	}
	res := r.query(ctx, nat64Name, dns.TypeAAAA)
	if res.fail != nil && res.fail.Kind != NotFound {
		return netip.Prefix{}, false
	}
	p, ttl, ok := nat64Discover(res.answers)
	keep := nat64NoneTTL
	if ok && ttl > 0 {
		keep = time.Duration(ttl) * time.Second
	}
	r.mu.Lock()
	r.nat64 = nat64State{prefix: p, ok: ok, expires: time.Now().Add(keep)}
	r.mu.Unlock()
	return p, ok
}

// NAT64PrefixKnown is NAT64Prefix without a query: the remembered result
// if it has not expired, else ok false.
func (r *Resolver) NAT64PrefixKnown() (netip.Prefix, bool) {
	r.mu.Lock()
	st := r.nat64
	r.mu.Unlock()
	if time.Now().Before(st.expires) {
		return st.prefix, st.ok
	}
	return netip.Prefix{}, false
}

// nat64Discover finds the NAT64 prefix in the AAAA answers for
// ipv4only.arpa and returns it with its answer's TTL. An address in which
// a well-known address appears at more than one prefix length is
// ambiguous; it counts only at the lengths where another answer holds the
// other well-known address (RFC 7050 section 3).
func nat64Discover(ans []Answer) (netip.Prefix, uint32, bool) {
	type hit struct {
		p   netip.Prefix
		wka int
	}
	hits := make([][]hit, len(ans))
	for i, a := range ans {
		if !a.Addr.Is6() || a.Addr.Is4In6() {
			continue
		}
		for _, bits := range nat64Lengths {
			p := netip.PrefixFrom(a.Addr.WithZone(""), bits).Masked()
			v4, ok := Extract(p, a.Addr.WithZone(""))
			if !ok {
				continue
			}
			for w, wk := range wellKnown {
				if v4 == wk {
					hits[i] = append(hits[i], hit{p, w})
				}
			}
		}
	}
	other := func(h hit) bool {
		for _, hs := range hits {
			for _, o := range hs {
				if o.p == h.p && o.wka != h.wka {
					return true
				}
			}
		}
		return false
	}
	for i, hs := range hits {
		switch len(hs) {
		case 0:
			continue
		case 1:
			return hs[0].p, ans[i].TTL, true
		}
		var found []netip.Prefix
		for _, h := range hs {
			if other(h) {
				found = append(found, h.p)
			}
		}
		if len(found) == 1 {
			return found[0], ans[i].TTL, true
		}
	}
	return netip.Prefix{}, 0, false
}

// embedding returns the byte positions of the four IPv4 octets in an
// IPv4-embedded IPv6 address for a prefix of the given length (RFC 6052
// section 2.2): the octets follow the prefix, skipping byte 8 (bits
// 64-71, which stay zero).
func embedding(bits int) ([4]int, bool) {
	switch bits {
	case 32:
		return [4]int{4, 5, 6, 7}, true
	case 40:
		return [4]int{5, 6, 7, 9}, true
	case 48:
		return [4]int{6, 7, 9, 10}, true
	case 56:
		return [4]int{7, 9, 10, 11}, true
	case 64:
		return [4]int{9, 10, 11, 12}, true
	case 96:
		return [4]int{12, 13, 14, 15}, true
	}
	return [4]int{}, false
}

var errNotNAT64Prefix = errors.New("not an IPv6 prefix of length 32, 40, 48, 56, 64 or 96 with bits 64-71 zero")

// checkPrefix reports whether prefix can hold IPv4-embedded addresses.
func checkPrefix(prefix netip.Prefix) ([4]int, bool) {
	idx, ok := embedding(prefix.Bits())
	a := prefix.Addr()
	if !ok || !a.Is6() || a.Is4In6() {
		return idx, false
	}
	return idx, prefix.Masked().Addr().As16()[8] == 0
}

// Synthesize returns the IPv4-embedded IPv6 address of v4 under prefix,
// as RFC 6052 section 2.2 defines it: prefix lengths 32, 40, 48, 56, 64
// and 96, bits 64 to 71 zero, and a zero suffix. v4 may be an
// IPv4-mapped IPv6 address. [Extract] is the inverse.
func Synthesize(prefix netip.Prefix, v4 netip.Addr) (netip.Addr, error) {
	idx, ok := checkPrefix(prefix)
	if !ok {
		return netip.Addr{}, fmt.Errorf("resolver: synthesize: prefix %s: %w", prefix, errNotNAT64Prefix)
	}
	v4 = v4.Unmap()
	if !v4.Is4() {
		return netip.Addr{}, fmt.Errorf("resolver: synthesize: %s is not an IPv4 address", v4)
	}
	a := prefix.Masked().Addr().As16()
	b := v4.As4()
	for i, j := range idx {
		a[j] = b[i]
	}
	return netip.AddrFrom16(a), nil
}

// Extract returns the IPv4 address embedded in v6 under prefix (RFC 6052
// section 2.3), and false if v6 is not in prefix, its bits 64 to 71 are
// not zero, or prefix is not a length RFC 6052 allows. The suffix is not
// checked. It is the inverse of [Synthesize].
func Extract(prefix netip.Prefix, v6 netip.Addr) (netip.Addr, bool) {
	idx, ok := checkPrefix(prefix)
	if !ok || !v6.Is6() || v6.Is4In6() || !prefix.Contains(v6) {
		return netip.Addr{}, false
	}
	a := v6.As16()
	if a[8] != 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{a[idx[0]], a[idx[1]], a[idx[2]], a[idx[3]]}), true
}
