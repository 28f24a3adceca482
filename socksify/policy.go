package socksify

import (
	"net/netip"
)

// A route is what happens to a program's connection or datagram.
type route uint8

const (
	routeDirect route = iota // the kernel does it as asked (CONTINUE)
	routeProxy               // TCP: CONNECT through the gateway, in-band; UDP: UDP ASSOCIATE
	routeDNS                 // port 53: answered by the fake DNS server
	routeDeny                // fails with ENETUNREACH: it would leak
)

func (r route) String() string {
	switch r {
	case routeDirect:
		return "direct"
	case routeProxy:
		return "proxy"
	case routeDNS:
		return "dns"
	case routeDeny:
		return "deny"
	}
	return "route?"
}

// A policy decides the route of each destination.
type policy struct {
	direct  []netip.Prefix   // the user's direct ranges (unmapped)
	gateway []netip.AddrPort // the gateway's addresses: a proxy-aware program reaches it directly
}

// route returns the route of a TCP (stream) or UDP (datagram)
// destination:
//
//  1. port 53, to any address: DNS (no query may leave the machine, so
//     even a local resolver such as 127.0.0.53 is answered by us);
//  2. loopback and the unspecified address (which means loopback):
//     direct;
//  3. the gateway itself: direct (for UDP, any port of the gateway's
//     address: a proxy-aware program sends its own UDP ASSOCIATE
//     datagrams to the gateway's relay port);
//  4. a fake address: proxied by name;
//  5. a direct range: direct;
//  6. UDP to a multicast or broadcast address: denied (a gateway relays
//     unicast only, and sending it direct would leak);
//  7. anything else: proxied (TCP by CONNECT, UDP by UDP ASSOCIATE).
func (p *policy) route(stream bool, dst netip.AddrPort) route {
	ip := dst.Addr().Unmap().WithZone("")
	if dst.Port() == 53 {
		return routeDNS
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return routeDirect
	}
	for _, gw := range p.gateway {
		if gw.Addr() == ip && (!stream || gw.Port() == dst.Port()) {
			return routeDirect
		}
	}
	if isFake(ip) {
		return routeProxy
	}
	for _, pr := range p.direct {
		if pr.Contains(ip) {
			return routeDirect
		}
	}
	if !stream && (ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return routeDeny
	}
	return routeProxy
}

// unixPathRefused reports whether a connect to the AF_UNIX path p fails
// with ECONNREFUSED: the name service caches (nscd, and
// systemd-resolved's varlink socket) would resolve names outside the
// fake DNS; refused, glibc's NSS falls back to its dns module, which
// sends its queries to port 53.
func unixPathRefused(p string) bool {
	switch p {
	case "/var/run/nscd/socket", "/run/nscd/socket",
		"/run/systemd/resolve/io.systemd.Resolve", "/var/run/systemd/resolve/io.systemd.Resolve":
		return true
	}
	return false
}
