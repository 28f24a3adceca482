package resolver

import (
	"net"
	"net/netip"
	"slices"
	"time"
)

// LookupCached answers like [Resolver.Lookup] from what is at hand only:
// an address literal, the hosts file and the cache. It never waits and
// never queries: ok is false when the answer would need an upstream
// exchange, and the caller then uses Lookup. The gateway uses it to
// connect to a name whose families are both cached without starting a
// lookup per family.
func (r *Resolver) LookupCached(network, host string) (ans []Answer, ok bool, err error) {
	qtype, known := qtypeOf(network)
	if !known {
		return nil, true, net.UnknownNetworkError(network)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if familyOK(ip, qtype) {
			return []Answer{{Addr: ip}}, true, nil
		}
		return nil, true, nil
	}
	name, abs, err := normalize(host)
	if err != nil {
		return nil, true, err
	}
	if addrs, found := r.static(name); found {
		for _, a := range addrs {
			if familyOK(a, qtype) {
				ans = append(ans, Answer{Addr: a, TTL: hostsTTL})
			}
		}
		return ans, true, nil
	}
	var agg outcome
	now := time.Now()
	hits := uint64(0)
	for _, fqdn := range r.candidates(name, abs) {
		res, hit := r.cache.get(cacheKey{name: fqdn, qtype: qtype}, now)
		if !hit {
			return nil, false, nil
		}
		hits++
		if len(res.answers) > 0 {
			r.hits.Add(hits)
			return slices.Clone(res.answers), true, nil // res is shared
		}
		agg.add(res)
	}
	r.hits.Add(hits)
	if agg.nodata && agg.fail == nil {
		return nil, true, nil
	}
	return nil, true, agg.err(host)
}
