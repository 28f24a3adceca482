package server

import (
	"context"
	"net/netip"
	"strings"

	"github.com/socks6/socks6/proto"
)

// A Request describes what a client asked for, as policy sees it.
type Request struct {
	User    string         // authenticated user name; empty without authentication
	Client  netip.AddrPort // the client's address as the gateway sees it
	Command proto.Command
	Target  proto.Addr // as the client sent it: an IP or a domain name

	// AnyTarget is set when the request names no destination: a UDP
	// association being opened, whose datagrams are each checked later
	// with their own Target. A policy should allow it when some
	// destination could be allowed for this user and command.
	AnyTarget bool
}

// A Policy decides whether a request may proceed. Allow is called once per
// request with the target as sent (a domain name is not yet resolved);
// AllowIP is called for every address a request would reach, after
// resolution and before any packet is sent, so that a name cannot smuggle
// a forbidden address past the rules. Both return nil to allow, or an
// error, usually ErrNotAllowed, to refuse. Implementations must be safe for
// concurrent use.
//
// A name that the server forwards to an upstream gateway (Settings.
// Upstreams) is never resolved here, so AllowIP is never called for it:
// a Policy that defers names to AllowIP must also have a method
//
//	AllowUnresolved(ctx context.Context, r *Request) error
//
// to decide such requests ([Rules] has one); for a Policy without it,
// forwarded names are refused (ErrNotAllowed), never waved through.
type Policy interface {
	Allow(ctx context.Context, r *Request) error
	AllowIP(ctx context.Context, r *Request, ip netip.Addr) error
}

// An Action is what a matching rule does.
type Action uint8

// Rule actions.
const (
	Allow Action = iota
	Deny
)

// String returns "allow" or "deny".
func (a Action) String() string {
	if a == Deny {
		return "deny"
	}
	return "allow"
}

// A PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Contains reports whether p lies in r.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

// A Rule matches requests by who asks, which command, and where to. Empty
// lists match anything. A rule with Domains matches only requests whose
// target is a domain name equal to, or under, one of them; a rule with
// Nets matches only addresses inside them (a domain-name target is
// checked against Nets after resolution, address by address).
type Rule struct {
	Action   Action
	Users    []string // user names; "" does not match unauthenticated
	Groups   []string // group names, resolved through Rules.Groups
	Clients  []netip.Prefix
	Commands []proto.Command
	Nets     []netip.Prefix // destination networks
	Domains  []string       // destination domain suffixes, lower case, no trailing dot
	Ports    []PortRange    // destination ports
}

// Rules is the rule-list Policy: the first rule that matches decides;
// when none does, Default decides. The zero Rules allows everything (the
// gateway's own guard against internal targets still applies).
type Rules struct {
	Rules   []Rule
	Groups  map[string][]string // group name → member user names
	Default Action
}

func (p *Rules) inGroup(user, group string) bool {
	for _, m := range p.Groups[group] {
		if m == user {
			return true
		}
	}
	return false
}

// matchWhoAnyTarget checks users, groups, clients and commands.
func (p *Rules) matchWhoAnyTarget(rl *Rule, r *Request) bool {
	if len(rl.Ports) == 0 {
		return p.matchWho(rl, r)
	}
	q := *rl
	q.Ports = nil
	return p.matchWho(&q, r)
}

// matchWho checks users, groups, clients, commands and ports.
func (p *Rules) matchWho(rl *Rule, r *Request) bool {
	if len(rl.Users) > 0 || len(rl.Groups) > 0 {
		ok := false
		if r.User != "" {
			for _, u := range rl.Users {
				if u == r.User {
					ok = true
					break
				}
			}
			for _, g := range rl.Groups {
				if ok {
					break
				}
				ok = p.inGroup(r.User, g)
			}
		}
		if !ok {
			return false
		}
	}
	if len(rl.Clients) > 0 && !prefixesContain(rl.Clients, r.Client.Addr().Unmap()) {
		return false
	}
	if len(rl.Commands) > 0 {
		ok := false
		for _, c := range rl.Commands {
			if c == r.Command {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(rl.Ports) > 0 {
		ok := false
		for _, pr := range rl.Ports {
			if pr.Contains(r.Target.Port) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func prefixesContain(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// domainMatch reports whether name is one of the suffixes or lies under one.
func domainMatch(suffixes []string, name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, s := range suffixes {
		if name == s || (strings.HasSuffix(name, s) && name[len(name)-len(s)-1] == '.') {
			return true
		}
	}
	return false
}

func (p *Rules) decide(a Action) error {
	if a == Deny {
		return ErrNotAllowed
	}
	return nil
}

// Allow implements Policy. Rules are tried in order and the first match
// decides. For a domain-name target, a rule that names networks cannot be
// judged before resolution: reaching one defers the decision to AllowIP,
// which repeats the walk with each resolved address.
func (p *Rules) Allow(ctx context.Context, r *Request) error {
	if p == nil {
		return nil
	}
	name := r.Target.FQDN
	for i := range p.Rules {
		rl := &p.Rules[i]
		if r.AnyTarget {
			if !p.matchWhoAnyTarget(rl, r) {
				continue
			}
			if len(rl.Nets) > 0 || len(rl.Domains) > 0 || len(rl.Ports) > 0 {
				if rl.Action == Allow {
					return nil // some destinations are allowed
				}
				continue // only some are denied
			}
			return p.decide(rl.Action)
		}
		if !p.matchWho(rl, r) {
			continue
		}
		if len(rl.Domains) > 0 && (name == "" || !domainMatch(rl.Domains, name)) {
			continue
		}
		if len(rl.Nets) > 0 {
			if name != "" {
				return nil // decided per address by AllowIP
			}
			if !prefixesContain(rl.Nets, r.Target.IP.Unmap()) {
				continue
			}
		}
		return p.decide(rl.Action)
	}
	return p.decide(p.Default)
}

// AllowUnresolved decides a request for a domain name that this gateway
// never resolves because it forwards the request to an upstream gateway,
// which resolves it. Rules that name networks cannot match such a name
// and are skipped; the rest are tried in order as by Allow.
func (p *Rules) AllowUnresolved(ctx context.Context, r *Request) error {
	if p == nil {
		return nil
	}
	if r.Target.FQDN == "" {
		return p.Allow(ctx, r)
	}
	for i := range p.Rules {
		rl := &p.Rules[i]
		if len(rl.Nets) > 0 || !p.matchWho(rl, r) {
			continue
		}
		if len(rl.Domains) > 0 && !domainMatch(rl.Domains, r.Target.FQDN) {
			continue
		}
		return p.decide(rl.Action)
	}
	return p.decide(p.Default)
}

// AllowIP implements Policy. For an IP target Allow has decided already;
// for a domain-name target the first rule that matches both the name and
// ip decides.
func (p *Rules) AllowIP(ctx context.Context, r *Request, ip netip.Addr) error {
	if p == nil || r.Target.FQDN == "" {
		return nil
	}
	ip = ip.Unmap()
	for i := range p.Rules {
		rl := &p.Rules[i]
		if !p.matchWho(rl, r) {
			continue
		}
		if len(rl.Domains) > 0 && !domainMatch(rl.Domains, r.Target.FQDN) {
			continue
		}
		if len(rl.Nets) > 0 && !prefixesContain(rl.Nets, ip) {
			continue
		}
		return p.decide(rl.Action)
	}
	return p.decide(p.Default)
}

// A Guard refuses targets inside the gateway itself: loopback, link-local,
// unspecified and multicast addresses and the gateway's own interface
// addresses, unless allowed. It stops a client from using the gateway to
// reach services bound to the router (server-side request forgery).
type Guard struct {
	AllowLoopback  bool
	AllowLinkLocal bool
	AllowSelf      bool // the gateway's own interface addresses
	// Self returns the gateway's own addresses. Nil means the host's
	// interface addresses, refreshed at most every few seconds.
	Self func() []netip.Addr
}

// check returns errInternalTarget if ip is internal and not allowed.
func (g *Guard) check(ip netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case ip.IsUnspecified(), ip.IsMulticast():
		return errInternalTarget
	case ip.IsLoopback():
		if !g.AllowLoopback {
			return errInternalTarget
		}
		return nil
	case ip.IsLinkLocalUnicast():
		if !g.AllowLinkLocal {
			return errInternalTarget
		}
		return nil
	}
	if !g.AllowSelf && g.Self != nil {
		for _, a := range g.Self() {
			if a.Unmap() == ip {
				return errInternalTarget
			}
		}
	}
	return nil
}
