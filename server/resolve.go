package server

import (
	"context"
	"net/netip"

	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server/resolver"
)

// A Resolver looks up the addresses of a name. network is "ip4" (A
// records) or "ip6" (AAAA); a name that exists without addresses of that
// family gives no answers and no error. Errors that wrap
// resolver.ErrNotFound mean NXDOMAIN; others are resolver failures.
// *resolver.Resolver implements it.
type Resolver interface {
	Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error)
}

// resolver returns the Resolver field or the default resolver.
func (s *Server) resolver() Resolver {
	if s.Resolver != nil {
		return s.Resolver
	}
	s.defResolverOnce.Do(func() {
		r, err := resolver.New(resolver.Config{})
		if err != nil {
			s.logger().Error("system resolver settings unusable; resolving with defaults", "err", err)
			r, _ = resolver.New(resolver.Config{ResolvConf: "-", HostsFile: "-"})
		}
		s.defResolver = r
	})
	return s.defResolver
}

// commandTorResolve is Tor's RESOLVE (0xF0) in RFC 1928 requests: one
// address of a name in BND.ADDR. The draft does not assign it; the
// gateway accepts it from plain clients for compatibility.
const commandTorResolve proto.Command = 0xF0

// torResolve answers Tor's RESOLVE with the first address Happy Eyeballs
// would try, then ends the session. Policy treats it as RESOLVE.
func (ss *session) torResolve(ctx context.Context) error {
	r := ss.req
	r.Command = proto.CommandResolve
	if u := ss.resolveUpstreamFor(r.Target); u != nil {
		ss.upstream = u.name()
	}
	ans, err := ss.lookupFor(ctx, &r, proto.FamilyAny, defaultHopLimit)
	if err != nil {
		return err
	}
	if len(ans) == 0 {
		return errNoAddress
	}
	ss.bound = ans[0].Addr.String()
	return ss.writeReply(proto.ReplySucceeded, proto.AddrFromAddrPort(netip.AddrPortFrom(ans[0].Addr, 0)))
}

// cmdName names the session's command in its audit record.
func (ss *session) cmdName() string {
	switch {
	case ss.isControl:
		return "control"
	case ss.req.Command == commandTorResolve:
		return "tor-resolve"
	}
	return ss.req.Command.String()
}

// targetString is the audit record's target: none for a control
// connection, whose requests have records of their own.
func (ss *session) targetString() string {
	if ss.isControl {
		return ""
	}
	return ss.req.Target.String()
}

func connectedString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}
