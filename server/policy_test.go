package server_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

func TestRulesAllow(t *testing.T) {
	ip := func(s string) proto.Addr { return proto.AddrFromAddrPort(netip.MustParseAddrPort(s)) }
	name := func(host string, port uint16) proto.Addr { return proto.Addr{FQDN: host, Port: port} }
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	client := netip.MustParseAddrPort("192.0.2.10:40000")
	connect := func(user string, target proto.Addr) server.Request {
		return server.Request{User: user, Client: client, Command: proto.CommandConnect, Target: target}
	}
	groups := map[string][]string{"staff": {"alice", "bob"}, "interns": {"carol"}}

	tests := []struct {
		name  string
		rules server.Rules
		req   server.Request
		allow bool
	}{
		{"zero_allows", server.Rules{}, connect("", ip("198.51.100.1:80")), true},
		{"default_deny", server.Rules{Default: server.Deny}, connect("", ip("198.51.100.1:80")), false},
		{"user_match", server.Rules{Rules: []server.Rule{{Action: server.Deny, Users: []string{"bob"}}}},
			connect("bob", ip("198.51.100.1:80")), false},
		{"user_other", server.Rules{Rules: []server.Rule{{Action: server.Deny, Users: []string{"bob"}}}},
			connect("alice", ip("198.51.100.1:80")), true},
		{"user_rule_skips_anonymous", server.Rules{Rules: []server.Rule{{Action: server.Deny, Users: []string{""}}}},
			connect("", ip("198.51.100.1:80")), true},
		{"group_match", server.Rules{Groups: groups, Rules: []server.Rule{{Action: server.Deny, Groups: []string{"interns"}}}},
			connect("carol", ip("198.51.100.1:80")), false},
		{"group_other", server.Rules{Groups: groups, Rules: []server.Rule{{Action: server.Deny, Groups: []string{"interns"}}}},
			connect("alice", ip("198.51.100.1:80")), true},
		{"group_unknown", server.Rules{Groups: groups, Rules: []server.Rule{{Action: server.Deny, Groups: []string{"nobody"}}}},
			connect("alice", ip("198.51.100.1:80")), true},
		{"users_or_groups", server.Rules{Groups: groups, Default: server.Deny,
			Rules: []server.Rule{{Action: server.Allow, Users: []string{"dave"}, Groups: []string{"staff"}}}},
			connect("bob", ip("198.51.100.1:80")), true},
		{"client_prefix", server.Rules{Rules: []server.Rule{{Action: server.Deny, Clients: pfx("192.0.2.0/28")}}},
			connect("", ip("198.51.100.1:80")), false},
		{"client_prefix_other", server.Rules{Rules: []server.Rule{{Action: server.Deny, Clients: pfx("192.0.2.16/28")}}},
			connect("", ip("198.51.100.1:80")), true},
		{"command_match", server.Rules{Rules: []server.Rule{{Action: server.Deny, Commands: []proto.Command{proto.CommandBind}}}},
			server.Request{Client: client, Command: proto.CommandBind, Target: ip("0.0.0.0:0")}, false},
		{"command_other", server.Rules{Rules: []server.Rule{{Action: server.Deny, Commands: []proto.Command{proto.CommandBind}}}},
			connect("", ip("198.51.100.1:80")), true},
		{"port_low_edge", server.Rules{Rules: []server.Rule{{Action: server.Deny, Ports: []server.PortRange{{Lo: 25, Hi: 30}}}}},
			connect("", ip("198.51.100.1:25")), false},
		{"port_high_edge", server.Rules{Rules: []server.Rule{{Action: server.Deny, Ports: []server.PortRange{{Lo: 25, Hi: 30}}}}},
			connect("", ip("198.51.100.1:30")), false},
		{"port_outside", server.Rules{Rules: []server.Rule{{Action: server.Deny, Ports: []server.PortRange{{Lo: 25, Hi: 30}}}}},
			connect("", ip("198.51.100.1:31")), true},
		{"port_second_range", server.Rules{Rules: []server.Rule{{Action: server.Deny, Ports: []server.PortRange{{Lo: 1, Hi: 2}, {Lo: 443, Hi: 443}}}}},
			connect("", name("example.org", 443)), false},
		{"net_match", server.Rules{Rules: []server.Rule{{Action: server.Deny, Nets: pfx("198.51.100.0/24")}}},
			connect("", ip("198.51.100.7:80")), false},
		{"net_other", server.Rules{Rules: []server.Rule{{Action: server.Deny, Nets: pfx("198.51.100.0/24")}}},
			connect("", ip("203.0.113.7:80")), true},
		{"net_mapped_target", server.Rules{Rules: []server.Rule{{Action: server.Deny, Nets: pfx("198.51.100.0/24")}}},
			connect("", proto.Addr{IP: netip.MustParseAddr("::ffff:198.51.100.7"), Port: 80}), false},
		{"net_ipv6", server.Rules{Rules: []server.Rule{{Action: server.Deny, Nets: pfx("2001:db8::/32")}}},
			connect("", ip("[2001:db8::1]:80")), false},
		{"domain_exact", server.Rules{Rules: []server.Rule{{Action: server.Deny, Domains: []string{"example.org"}}}},
			connect("", name("example.org", 80)), false},
		{"domain_under", server.Rules{Rules: []server.Rule{{Action: server.Deny, Domains: []string{"example.org"}}}},
			connect("", name("www.example.org", 80)), false},
		{"domain_case_and_dot", server.Rules{Rules: []server.Rule{{Action: server.Deny, Domains: []string{"example.org"}}}},
			connect("", name("WWW.Example.ORG.", 80)), false},
		{"domain_not_label_boundary", server.Rules{Rules: []server.Rule{{Action: server.Deny, Domains: []string{"example.org"}}}},
			connect("", name("badexample.org", 80)), true},
		{"domain_parent_not_matched", server.Rules{Rules: []server.Rule{{Action: server.Deny, Domains: []string{"www.example.org"}}}},
			connect("", name("example.org", 80)), true},
		{"domain_rule_skips_ip", server.Rules{Rules: []server.Rule{{Action: server.Deny, Domains: []string{"example.org"}}}},
			connect("", ip("198.51.100.1:80")), true},
		{"first_match_wins", server.Rules{Rules: []server.Rule{
			{Action: server.Allow, Users: []string{"alice"}},
			{Action: server.Deny},
		}}, connect("alice", ip("198.51.100.1:80")), true},
		{"first_match_wins_deny", server.Rules{Rules: []server.Rule{
			{Action: server.Deny, Ports: []server.PortRange{{Lo: 80, Hi: 80}}},
			{Action: server.Allow, Users: []string{"alice"}},
		}}, connect("alice", ip("198.51.100.1:80")), false},
		{"all_conditions_must_match", server.Rules{Rules: []server.Rule{{Action: server.Deny,
			Users: []string{"alice"}, Ports: []server.PortRange{{Lo: 22, Hi: 22}}}}},
			connect("alice", ip("198.51.100.1:80")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rules.Allow(t.Context(), &tt.req)
			if tt.allow && err != nil {
				t.Fatalf("Allow(%+v) = %v, want nil", tt.req, err)
			}
			if !tt.allow && !errors.Is(err, server.ErrNotAllowed) {
				t.Fatalf("Allow(%+v) = %v, want ErrNotAllowed", tt.req, err)
			}
			// For an IP target Allow has decided; AllowIP agrees.
			if ap, ok := tt.req.Target.AddrPort(); ok {
				if err := tt.rules.AllowIP(t.Context(), &tt.req, ap.Addr()); err != nil {
					t.Fatalf("AllowIP for an IP target = %v, want nil", err)
				}
			}
		})
	}

	t.Run("nil_rules", func(t *testing.T) {
		var p *server.Rules
		r := connect("", ip("198.51.100.1:80"))
		if p.Allow(t.Context(), &r) != nil || p.AllowIP(t.Context(), &r, netip.MustParseAddr("198.51.100.1")) != nil {
			t.Fatal("nil *Rules refused")
		}
	})
}

// TestRulesAllowIP covers names that are judged after resolution, address
// by address.
func TestRulesAllowIP(t *testing.T) {
	rules := server.Rules{
		Rules: []server.Rule{
			{Action: server.Deny, Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			{Action: server.Allow, Domains: []string{"intranet.test"}, Nets: []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}},
			{Action: server.Deny, Nets: []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}},
			{Action: server.Deny, Domains: []string{"blocked.test"}},
		},
	}
	tests := []struct {
		name      string
		host      string
		ip        string
		allowName bool // Allow before resolution
		allowIP   bool
	}{
		{"public_address", "example.org", "198.51.100.1", true, true},
		{"into_denied_net", "sneaky.example.org", "10.1.2.3", true, false},
		{"into_denied_mapped", "sneaky.example.org", "::ffff:10.1.2.3", true, false},
		{"intranet_name_in_its_net", "wiki.intranet.test", "172.16.0.5", true, true},
		{"other_name_in_intranet_net", "example.org", "172.16.0.5", true, false},
		{"intranet_name_into_denied_net", "wiki.intranet.test", "10.0.0.1", true, false},
		{"blocked_name", "www.blocked.test", "198.51.100.1", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := server.Request{Command: proto.CommandConnect, Target: proto.Addr{FQDN: tt.host, Port: 443}}
			if err := rules.Allow(t.Context(), &r); (err == nil) != tt.allowName {
				t.Fatalf("Allow(%s) = %v, want allowed=%v", tt.host, err, tt.allowName)
			}
			err := rules.AllowIP(t.Context(), &r, netip.MustParseAddr(tt.ip))
			if tt.allowIP && err != nil {
				t.Fatalf("AllowIP(%s → %s) = %v, want nil", tt.host, tt.ip, err)
			}
			if !tt.allowIP && !errors.Is(err, server.ErrNotAllowed) {
				t.Fatalf("AllowIP(%s → %s) = %v, want ErrNotAllowed", tt.host, tt.ip, err)
			}
		})
	}
	t.Run("name_denied_before_resolution", func(t *testing.T) {
		// A domain rule that needs no address decides before any lookup.
		r := server.Rules{Rules: []server.Rule{{Action: server.Deny, Domains: []string{"blocked.test"}}}}
		req := server.Request{Command: proto.CommandConnect, Target: proto.Addr{FQDN: "blocked.test", Port: 80}}
		if err := r.Allow(t.Context(), &req); !errors.Is(err, server.ErrNotAllowed) {
			t.Fatalf("Allow = %v, want ErrNotAllowed", err)
		}
	})
}

// TestGuard checks which targets the gateway's guard refuses. A Dial hook
// answers "connection refused" for everything the guard lets through, so
// no packet leaves and the reply code tells the two apart.
func TestGuard(t *testing.T) {
	self := netip.MustParseAddr("192.0.2.10")
	tests := []struct {
		target  string
		allowed server.Guard // the guard setting that lets target through; zero: none does
		always  bool         // allowed even by the zero Guard
	}{
		{"198.51.100.1:80", server.Guard{}, true},
		{"[2001:db8::1]:80", server.Guard{}, true},
		{"127.0.0.1:80", server.Guard{AllowLoopback: true}, false},
		{"127.200.0.1:80", server.Guard{AllowLoopback: true}, false},
		{"[::1]:80", server.Guard{AllowLoopback: true}, false},
		{"[::ffff:127.0.0.1]:80", server.Guard{AllowLoopback: true}, false},
		{"169.254.169.254:80", server.Guard{AllowLinkLocal: true}, false},
		{"[fe80::1]:80", server.Guard{AllowLinkLocal: true}, false},
		{"192.0.2.10:80", server.Guard{AllowSelf: true}, false},
		{"[::ffff:192.0.2.10]:80", server.Guard{AllowSelf: true}, false},
		{"0.0.0.0:80", server.Guard{}, false},
		{"[::]:80", server.Guard{}, false},
		{"224.0.0.1:80", server.Guard{}, false},
		{"[ff02::1]:80", server.Guard{}, false},
	}
	selfFn := func() []netip.Addr { return []netip.Addr{self} }
	all := server.Guard{AllowLoopback: true, AllowLinkLocal: true, AllowSelf: true}
	for _, tt := range tests {
		guards := []struct {
			name  string
			g     server.Guard
			allow bool
		}{
			{"zero", server.Guard{}, tt.always},
			{"all_allowed", all, tt.always || e2eGuardOpens(tt.allowed)},
		}
		if e2eGuardOpens(tt.allowed) {
			guards = append(guards, struct {
				name  string
				g     server.Guard
				allow bool
			}{"only_its_own", tt.allowed, true})
		}
		for _, g := range guards {
			t.Run(tt.target+"/"+g.name, func(t *testing.T) {
				g.g.Self = selfFn
				s := &server.Server{
					Settings: server.Settings{Guard: g.g},
					Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
						return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
					},
				}
				gw := startGateway(t, s)
				want := proto.ReplyNotAllowed
				if g.allow {
					want = proto.ReplyConnectionRefused
				}
				if code := e2eReplyCode(t, gw, "", "", tt.target); code != want {
					t.Fatalf("CONNECT %s with %+v: %v, want %v", tt.target, g.g, code, want)
				}
			})
		}
	}

	t.Run("host_addresses_by_default", func(t *testing.T) {
		// With Self nil the guard refuses the host's own interface
		// addresses. Find one that is neither loopback nor link-local.
		var own netip.Addr
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				if ip := p.Addr(); !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
					own = ip
					break
				}
			}
		}
		if !own.IsValid() {
			t.Skip("the host has no address besides loopback and link-local")
		}
		var dialed atomic.Bool
		s := &server.Server{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed.Store(true)
			return nil, syscall.ECONNREFUSED
		}}
		gw := startGateway(t, s)
		target := netip.AddrPortFrom(own, 80).String()
		if code := e2eReplyCode(t, gw, "", "", target); code != proto.ReplyNotAllowed {
			t.Fatalf("CONNECT to the host's own %s: %v, want not allowed", target, code)
		}
		if dialed.Load() {
			t.Fatal("the guard let the gateway dial its own address")
		}
	})
}

// e2eGuardOpens reports whether g allows any kind of internal target.
func e2eGuardOpens(g server.Guard) bool { return g.AllowLoopback || g.AllowLinkLocal || g.AllowSelf }

// TestPolicyDenials runs rule-list policies end to end: each case starts
// a gateway with rules and checks which requests get through.
func TestPolicyDenials(t *testing.T) {
	e2eCheckLeaks(t)
	echo := socks6test.EchoServer(t)
	echo6 := e2eEchoServer6(t)
	echoPort := e2eAddr(t, echo).Port
	echo6Port := e2eAddr(t, echo6).Port
	port := func(host string, p uint16) string { return net.JoinHostPort(host, strconv.Itoa(int(p))) }
	users := e2eUsers(t, "alice", "wonderland", "bob", "builder", "carol", "intern")
	groups := map[string][]string{"interns": {"carol"}}
	resolver := e2eStubResolver(map[string][]netip.Addr{
		"www.blocked.test": {netip.MustParseAddr("127.0.0.1")},
		"ok.test":          {netip.MustParseAddr("127.0.0.1")},
		"sneaky.test":      {netip.MustParseAddr("127.0.0.1")},
		"fine.test":        {netip.MustParseAddr("::1")},
		"mixed.test":       {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
	})
	v4 := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	type probe struct {
		user, src string
		cmd       proto.Command
		target    string
		want      proto.ReplyCode
	}
	tests := []struct {
		name   string
		rules  server.Rules
		probes []probe
	}{
		{"by_user", server.Rules{Rules: []server.Rule{{Action: server.Deny, Users: []string{"bob"}}}}, []probe{
			{"bob", "127.0.0.1", proto.CommandConnect, echo, proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, echo, proto.ReplySucceeded},
		}},
		{"by_group", server.Rules{Groups: groups, Rules: []server.Rule{{Action: server.Deny, Groups: []string{"interns"}}}}, []probe{
			{"carol", "127.0.0.1", proto.CommandConnect, echo, proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, echo, proto.ReplySucceeded},
		}},
		{"default_deny_allow_user", server.Rules{Default: server.Deny, Rules: []server.Rule{{Action: server.Allow, Users: []string{"alice"}}}}, []probe{
			{"alice", "127.0.0.1", proto.CommandConnect, echo, proto.ReplySucceeded},
			{"bob", "127.0.0.1", proto.CommandConnect, echo, proto.ReplyNotAllowed},
		}},
		{"by_command", server.Rules{Rules: []server.Rule{{Action: server.Deny, Commands: []proto.Command{proto.CommandBind, proto.CommandUDPAssociate}}}}, []probe{
			{"alice", "127.0.0.1", proto.CommandBind, "127.0.0.1:0", proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandUDPAssociate, "0.0.0.0:0", proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, echo, proto.ReplySucceeded},
		}},
		{"by_client", server.Rules{Rules: []server.Rule{{Action: server.Deny, Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}}}, []probe{
			{"alice", "127.0.0.2", proto.CommandConnect, echo, proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, echo, proto.ReplySucceeded},
		}},
		{"by_cidr", server.Rules{Rules: []server.Rule{{Action: server.Deny, Nets: v4}}}, []probe{
			{"alice", "127.0.0.1", proto.CommandConnect, echo, proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, echo6, proto.ReplySucceeded},
		}},
		{"by_domain_suffix", server.Rules{Rules: []server.Rule{{Action: server.Deny, Domains: []string{"blocked.test"}}}}, []probe{
			{"alice", "127.0.0.1", proto.CommandConnect, port("www.blocked.test", echoPort), proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, port("ok.test", echoPort), proto.ReplySucceeded},
		}},
		{"by_port_range", server.Rules{Rules: []server.Rule{{Action: server.Deny, Ports: []server.PortRange{{Lo: echoPort, Hi: echoPort}}}}}, []probe{
			{"alice", "127.0.0.1", proto.CommandConnect, echo, proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, port("ok.test", echoPort), proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, echo6, proto.ReplySucceeded},
		}},
		{"name_into_denied_cidr", server.Rules{Rules: []server.Rule{{Action: server.Deny, Nets: v4}}}, []probe{
			{"alice", "127.0.0.1", proto.CommandConnect, port("sneaky.test", echoPort), proto.ReplyNotAllowed},
			{"alice", "127.0.0.1", proto.CommandConnect, port("fine.test", echo6Port), proto.ReplySucceeded},
			// Of a name's addresses, the denied one is skipped and the
			// allowed one used.
			{"alice", "127.0.0.1", proto.CommandConnect, port("mixed.test", echo6Port), proto.ReplySucceeded},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var dialed []string
			rules := tt.rules
			s := &server.Server{
				Resolver: resolver,
				Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					mu.Lock()
					dialed = append(dialed, addr)
					mu.Unlock()
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				},
				Settings: server.Settings{Auth: users, Policy: &rules, Guard: server.Guard{AllowLoopback: true}},
			}
			gw := startGateway(t, s)
			pass := map[string]string{"alice": "wonderland", "bob": "builder", "carol": "intern"}
			for _, p := range tt.probes {
				c := e2eDialFrom(t, gw, p.src)
				e2eGreet(t, c, p.user, pass[p.user])
				rep := e2eRequest(t, c, p.cmd, e2eAddr(t, p.target))
				if rep.Code != p.want {
					t.Errorf("%s from %s as %s: %v %s: %v, want %v", tt.name, p.src, p.user, p.cmd, p.target, rep.Code, p.want)
				}
				c.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range dialed {
				if ap := netip.MustParseAddrPort(d); slices.ContainsFunc(rules.Rules, func(r server.Rule) bool {
					return r.Action == server.Deny && len(r.Users)+len(r.Groups)+len(r.Clients)+len(r.Commands)+len(r.Domains)+len(r.Ports) == 0 &&
						slices.ContainsFunc(r.Nets, func(p netip.Prefix) bool { return p.Contains(ap.Addr()) })
				}) {
					t.Errorf("the gateway dialed %s, inside a denied network", d)
				}
			}
		})
	}
}

// An address in a NAT64 prefix reaches the IPv4 address it embeds, so
// the guard and the policy judge that one too: 64:ff9b::127.0.0.1 is
// loopback to the guard, and a rule denying 10.0.0.0/8 denies
// 64:ff9b::10.0.0.1 and an address in the configured prefix.
func TestGuardNAT64Embedded(t *testing.T) {
	e2eCheckLeaks(t)
	// No address here is reachable, and none may be tried: the dial
	// only records the attempt (a regression must not send packets).
	var dialed atomic.Int32
	s := &server.Server{HandshakeTimeout: e2eWait, DialTimeout: 2 * time.Second,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed.Add(1)
			t.Errorf("dialed %s", addr)
			return nil, syscall.ENETUNREACH
		},
		NAT64Prefix: netip.MustParsePrefix("2001:db8:64::/96"),
		Settings: server.Settings{Policy: &server.Rules{Default: server.Allow, Rules: []server.Rule{
			{Action: server.Deny, Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		}}}}
	gw := startGateway(t, s)
	for _, target := range []string{
		"[64:ff9b::7f00:1]:80",      // 127.0.0.1: the guard
		"[64:ff9b::a9fe:a9fe]:80",   // 169.254.169.254: the guard
		"[64:ff9b::a00:1]:80",       // 10.0.0.1: the policy
		"[2001:db8:64::a00:1]:80",   // 10.0.0.1 in the configured prefix
		"[2001:db8:64::7f00:1]:443", // 127.0.0.1 in the configured prefix
	} {
		if _, rep := e2eOpen(t, gw, "", "", proto.CommandConnect, target); rep.Code != proto.ReplyNotAllowed {
			t.Errorf("CONNECT %s: %v, want not allowed", target, rep.Code)
		}
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("%d dials, want none", n)
	}
}
