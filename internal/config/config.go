package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/resolver"
)

// DefaultListen is the address socks6d serves when the configuration names
// none: loopback only, so that a gateway started without thought is not an
// open proxy.
const DefaultListen = "127.0.0.1:1080"

// Log formats.
const (
	FormatText = "text" // slog's key=value lines
	FormatJSON = "json" // one JSON object per line
)

// A Config is socks6d's configuration. Start from [Default] or [Parse];
// the zero Config does not validate, because its timeouts are zero.
type Config struct {
	// Listen lists the TCP addresses to serve in cleartext, as host:port;
	// a port of 0 picks a free port. It may be empty only if TLS.Listen is
	// not.
	Listen []string
	// UsersFile is the htpasswd file with bcrypt hashes. When set,
	// clients must log in with a username and password; empty means no
	// authentication. Parse resolves a relative path against the
	// configuration file's directory.
	UsersFile string

	// LogFormat is FormatText or FormatJSON.
	LogFormat string
	// LogLevel is the least severe level logged; the file names it as
	// "debug", "info", "warn" or "error".
	LogLevel slog.Level

	// Timeouts bound the stages of a session and shutdown.
	Timeouts Timeouts
	// Limits cap concurrent sessions; zero fields mean the server's
	// defaults (see [server.Limits]).
	Limits server.Limits
	// Guard allows internal targets (loopback, link-local, the gateway's
	// own addresses), which are refused by default. Its Self field is
	// not configurable and stays nil.
	Guard server.Guard

	// Groups maps a group name to its member user names, for rules.
	Groups map[string][]string
	// Default decides requests that no rule matches.
	Default server.Action
	// Rules are tried in order; the first that matches a request decides.
	// Domains are lower case without leading or trailing dots, and Nets
	// and Clients are masked prefixes.
	Rules []server.Rule

	// Resolver configures the gateway's DNS resolver.
	Resolver Resolver
	// Listeners governs LISTEN (the [listeners] section); reloadable.
	Listeners server.ListenSettings
	// TLS configures SOCKS inside TLS (the [tls] section).
	TLS TLS
	// Upstreams are the gateways requests are forwarded to (the
	// [[upstream]] sections); reloadable.
	Upstreams []Upstream
	// PAC configures the proxy auto-configuration file (the [pac]
	// section).
	PAC PAC
	// MetricsListen lists the HTTP addresses of the Prometheus metrics
	// (the [metrics] section's listen); empty means none. Not
	// reloadable.
	MetricsListen []string

	src *source // where the values came from, for error positions
}

// TLS is the [tls] section: where the gateway serves SOCKS inside TLS
// (ALPN "socks6" and "socks5") and with which certificate.
type TLS struct {
	// Listen lists the TCP addresses to serve TLS on, as host:port. Empty
	// means no TLS. Not reloadable.
	Listen []string
	// CertFile is the PEM certificate chain, leaf first, and KeyFile its
	// PEM private key; both are required with Listen and are read again
	// on reload. Parse resolves relative paths against the configuration
	// file's directory.
	CertFile, KeyFile string
}

// PAC is the [pac] section: where socks6d serves its proxy
// auto-configuration file over HTTP, and what the file says.
type PAC struct {
	// Listen lists the HTTP addresses; empty means no PAC. Not
	// reloadable.
	Listen []string
	// Proxy lists the gateway addresses the file gives clients; empty
	// means the cleartext listen addresses that clients can reach (not
	// wildcard or loopback ones).
	Proxy []string
	// Nets and Domains are reached directly, besides loopback,
	// link-local addresses, plain host names, localhost and .local.
	Nets    []netip.Prefix
	Domains []string
}

// An Upstream is one [[upstream]] section: a gateway this one forwards
// the requests for some destinations to (chaining).
type Upstream struct {
	// Name names it in logs; default: the proxy URL's host:port.
	Name string
	// Proxy is its URL: socks5://, socks5h://, socks6:// or socks6s://
	// (TLS), with this gateway's own credentials in it if it needs any.
	Proxy string
	// TLSCA is a PEM file of the certificates to trust for it instead of
	// the system's roots (socks6s:// only); TLSName the name its
	// certificate must carry, if not the URL's host. Parse resolves a
	// relative TLSCA against the configuration file's directory.
	TLSCA, TLSName string
	// Nets and Domains are the destinations it serves; Default makes it
	// serve everything no other upstream's Nets or Domains match.
	Nets    []netip.Prefix
	Domains []string
	Default bool
}

// Timeouts are the gateway's time bounds. They apply at startup only: a
// reload does not change them.
type Timeouts struct {
	// Handshake bounds each stage before the relay: greeting,
	// authentication, request and reply. It must be positive.
	Handshake time.Duration
	// Dial bounds resolving and connecting to a target. It must be
	// positive.
	Dial time.Duration
	// Bind bounds how long a BIND waits for the incoming connection. It
	// must be positive.
	Bind time.Duration
	// Idle ends a relay after no bytes have moved for this long; it
	// resets on progress. Zero means no idle timeout.
	Idle time.Duration
	// Shutdown is how long a graceful shutdown waits for running sessions
	// before it closes them. Zero closes them at once.
	Shutdown time.Duration
}

// ServerIdle returns Idle in [server.Server.IdleTimeout]'s terms, where
// zero means the default and negative means none.
func (t Timeouts) ServerIdle() time.Duration {
	if t.Idle == 0 {
		return -1
	}
	return t.Idle
}

// Resolver is the [resolver] section. It applies at startup only.
type Resolver struct {
	// Servers are the upstream name servers ("192.0.2.53",
	// "[2001:db8::53]:53", "tls://192.0.2.53:853#dns.example" for DNS
	// over TLS). Empty means the nameserver lines of /etc/resolv.conf.
	Servers []string
	// HostsFile is consulted before the DNS; "-" means none.
	HostsFile string
	// Timeout bounds one query to one server; Attempts is the number of
	// rounds over all servers. Zero means resolv.conf's or the default.
	Timeout  time.Duration
	Attempts int
	// CacheSize caps cached answers; negative disables the cache, zero
	// means the default.
	CacheSize int
	// MaxTTL caps how long an answer is cached; NegativeTTL how long
	// "no such name" and "no such record" are. Zero means the default.
	MaxTTL      time.Duration
	NegativeTTL time.Duration
	// NAT64Prefix is a fixed NAT64 prefix; DiscoverNAT64 looks for one
	// (RFC 7050) instead. The file's nat64_prefix sets one or the other:
	// "auto" (the default), "off", or a prefix.
	NAT64Prefix   netip.Prefix
	DiscoverNAT64 bool
}

// ResolverConfig returns the resolver's settings in its own terms.
func (r Resolver) ResolverConfig() resolver.Config {
	return resolver.Config{
		Servers:     r.Servers,
		HostsFile:   r.HostsFile,
		Timeout:     r.Timeout,
		Attempts:    r.Attempts,
		CacheSize:   r.CacheSize,
		MaxTTL:      r.MaxTTL,
		NegativeTTL: r.NegativeTTL,
	}
}

// source remembers the file a Config was parsed from.
type source struct {
	name      string
	pos       *positions
	listen    []string // values as parsed, to tell them from later overrides
	usersFile string
}

// Default returns the configuration socks6d runs with when it is given no
// file: serve 127.0.0.1:1080 without authentication, allow every request
// except to internal targets, default timeouts and limits, text logs at
// info level.
func Default() *Config {
	return &Config{
		Listen:    []string{DefaultListen},
		LogFormat: FormatText,
		LogLevel:  slog.LevelInfo,
		Timeouts: Timeouts{
			Handshake: 10 * time.Second,
			Dial:      10 * time.Second,
			Bind:      10 * time.Second,
			Idle:      5 * time.Minute,
			Shutdown:  30 * time.Second,
		},
		Default:  server.Allow,
		Resolver: Resolver{DiscoverNAT64: true},
	}
}

// Load reads the configuration file at path, parses it and validates it.
// It is Parse followed by Validate.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// The file model: what the TOML decoder fills. Values stay strings here
// and are converted, with their positions at hand, by Parse.
type file struct {
	Listen    *[]string           `toml:"listen"`
	UsersFile string              `toml:"users_file"`
	LogFormat string              `toml:"log_format"`
	LogLevel  string              `toml:"log_level"`
	Timeouts  fileTimeouts        `toml:"timeouts"`
	Limits    fileLimits          `toml:"limits"`
	Guard     fileGuard           `toml:"guard"`
	Groups    map[string][]string `toml:"groups"`
	Policy    filePolicy          `toml:"policy"`
	Rules     []fileRule          `toml:"rule"`
	Resolver  fileResolver        `toml:"resolver"`
	Listeners fileListen          `toml:"listeners"`
	TLS       fileTLS             `toml:"tls"`
	Upstreams []fileUpstream      `toml:"upstream"`
	PAC       filePAC             `toml:"pac"`
	Metrics   fileMetrics         `toml:"metrics"`
}

type fileMetrics struct {
	Listen []string `toml:"listen"`
}

type filePAC struct {
	Listen  []string `toml:"listen"`
	Proxy   []string `toml:"proxy"`
	Nets    []string `toml:"nets"`
	Domains []string `toml:"domains"`
}

type fileUpstream struct {
	Name    string   `toml:"name"`
	Proxy   string   `toml:"proxy"`
	TLSCA   string   `toml:"tls_ca"`
	TLSName string   `toml:"tls_name"`
	Nets    []string `toml:"nets"`
	Domains []string `toml:"domains"`
	Default bool     `toml:"default"`
}

type fileTLS struct {
	Listen   []string `toml:"listen"`
	CertFile string   `toml:"cert_file"`
	KeyFile  string   `toml:"key_file"`
}

type fileListen struct {
	Enabled          *bool               `toml:"enabled"`
	OfferTimeout     string              `toml:"offer_timeout"`
	ListenersPerUser int                 `toml:"listeners_per_user"`
	OffersPerUser    int                 `toml:"offers_per_user"`
	PrivilegedUsers  []string            `toml:"privileged_users"`
	PublicAddresses  []string            `toml:"public_addresses"`
	Reserved         map[string][]uint16 `toml:"reserved"`
}

type fileResolver struct {
	Servers     []string `toml:"servers"`
	HostsFile   string   `toml:"hosts_file"`
	Timeout     string   `toml:"timeout"`
	Attempts    int      `toml:"attempts"`
	CacheSize   int      `toml:"cache_size"`
	MaxTTL      string   `toml:"max_ttl"`
	NegativeTTL string   `toml:"negative_ttl"`
	NAT64Prefix string   `toml:"nat64_prefix"`
}

type fileTimeouts struct {
	Handshake string `toml:"handshake"`
	Dial      string `toml:"dial"`
	Bind      string `toml:"bind"`
	Idle      string `toml:"idle"`
	Shutdown  string `toml:"shutdown"`
}

type fileLimits struct {
	Sessions   int `toml:"sessions"`
	PerUser    int `toml:"per_user"`
	PerClient  int `toml:"per_client"`
	Handshakes int `toml:"handshakes"`
}

type fileGuard struct {
	AllowLoopback  bool `toml:"allow_loopback"`
	AllowLinkLocal bool `toml:"allow_link_local"`
	AllowSelf      bool `toml:"allow_self"`
}

type filePolicy struct {
	Default string `toml:"default"`
}

type fileRule struct {
	Action   string   `toml:"action"`
	Users    []string `toml:"users"`
	Groups   []string `toml:"groups"`
	Clients  []string `toml:"clients"`
	Commands []string `toml:"commands"`
	Nets     []string `toml:"nets"`
	Domains  []string `toml:"domains"`
	Ports    []string `toml:"ports"`
}

// Parse decodes a configuration file's contents; name is the file's path,
// used in error messages and to resolve a relative users_file. Keys that
// are absent keep their [Default] values; unknown keys are errors. Parse
// checks the syntax of every value but not what Validate checks, so the
// result may still be invalid. All problems found are returned together,
// each as an *Error.
func Parse(name string, data []byte) (*Config, error) {
	d := Default()
	f := file{
		LogFormat: d.LogFormat,
		LogLevel:  "info",
		Timeouts: fileTimeouts{
			Handshake: d.Timeouts.Handshake.String(),
			Dial:      d.Timeouts.Dial.String(),
			Bind:      d.Timeouts.Bind.String(),
			Idle:      d.Timeouts.Idle.String(),
			Shutdown:  d.Timeouts.Shutdown.String(),
		},
		Policy:   filePolicy{Default: "allow"},
		Resolver: fileResolver{NAT64Prefix: "auto"},
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, decodeErrors(name, data, err)
	}
	pos, _ := index(data)
	p := parser{name: name, pos: pos}
	c := p.convert(&f)
	if len(p.errs) > 0 {
		return nil, joinSorted(p.errs)
	}
	files := []*string{&c.UsersFile, &c.TLS.CertFile, &c.TLS.KeyFile}
	for i := range c.Upstreams {
		files = append(files, &c.Upstreams[i].TLSCA)
	}
	for _, f := range files {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(filepath.Dir(name), *f)
		}
	}
	c.src = &source{name: name, pos: pos, listen: c.Listen, usersFile: c.UsersFile}
	return c, nil
}

// parser converts the file model, collecting errors.
type parser struct {
	name string
	pos  *positions
	errs []error
}

func (p *parser) errorf(path, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.name, Line: p.pos.line(path), Key: display(path), Err: fmt.Errorf(format, args...)})
}

func (p *parser) convert(f *file) *Config {
	c := Default()
	if f.Listen != nil {
		c.Listen = append([]string(nil), *f.Listen...)
	}
	c.UsersFile = f.UsersFile
	var err error
	if c.LogFormat, err = ParseFormat(f.LogFormat); err != nil {
		p.errorf("log_format", "%w", err)
	}
	if c.LogLevel, err = ParseLevel(f.LogLevel); err != nil {
		p.errorf("log_level", "%w", err)
	}
	c.Timeouts = Timeouts{
		Handshake: p.duration("timeouts.handshake", f.Timeouts.Handshake),
		Dial:      p.duration("timeouts.dial", f.Timeouts.Dial),
		Bind:      p.duration("timeouts.bind", f.Timeouts.Bind),
		Idle:      p.duration("timeouts.idle", f.Timeouts.Idle),
		Shutdown:  p.duration("timeouts.shutdown", f.Timeouts.Shutdown),
	}
	c.Limits = server.Limits(f.Limits)
	c.Guard = server.Guard{
		AllowLoopback:  f.Guard.AllowLoopback,
		AllowLinkLocal: f.Guard.AllowLinkLocal,
		AllowSelf:      f.Guard.AllowSelf,
	}
	c.Groups = f.Groups
	c.Default = p.action("policy.default", f.Policy.Default)
	for i := range f.Rules {
		c.Rules = append(c.Rules, p.rule("rule."+strconv.Itoa(i), &f.Rules[i]))
	}
	c.Resolver = p.resolver(&f.Resolver)
	c.Listeners = p.listeners(&f.Listeners)
	c.TLS = TLS{Listen: f.TLS.Listen, CertFile: f.TLS.CertFile, KeyFile: f.TLS.KeyFile}
	for i := range f.Upstreams {
		c.Upstreams = append(c.Upstreams, p.upstream("upstream."+strconv.Itoa(i), &f.Upstreams[i]))
	}
	c.MetricsListen = f.Metrics.Listen
	c.PAC = PAC{Listen: f.PAC.Listen, Proxy: f.PAC.Proxy}
	for i, s := range f.PAC.Nets {
		if pr, err := ParsePrefix(s); err != nil {
			p.errorf("pac.nets."+strconv.Itoa(i), "%w", err)
		} else {
			c.PAC.Nets = append(c.PAC.Nets, pr)
		}
	}
	for i, s := range f.PAC.Domains {
		if d, err := ParseDomain(s); err != nil {
			p.errorf("pac.domains."+strconv.Itoa(i), "%w", err)
		} else {
			c.PAC.Domains = append(c.PAC.Domains, d)
		}
	}
	return c
}

func (p *parser) listeners(f *fileListen) server.ListenSettings {
	l := server.ListenSettings{
		Disabled:         f.Enabled != nil && !*f.Enabled,
		ListenersPerUser: f.ListenersPerUser,
		OffersPerUser:    f.OffersPerUser,
		Privileged:       f.PrivilegedUsers,
	}
	if f.OfferTimeout != "" {
		d := p.duration("listeners.offer_timeout", f.OfferTimeout)
		if d != 0 && (d < time.Second || d > time.Minute) {
			p.errorf("listeners.offer_timeout", "%s is outside 1s to 1m", d)
		}
		l.OfferTimeout = d
	}
	if f.ListenersPerUser < 0 {
		p.errorf("listeners.listeners_per_user", "negative limit %d (use enabled = false to turn LISTEN off)", f.ListenersPerUser)
	}
	if f.OffersPerUser < 0 {
		p.errorf("listeners.offers_per_user", "negative limit %d", f.OffersPerUser)
	}
	for i, a := range f.PublicAddresses {
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Zone() != "" {
			p.errorf("listeners.public_addresses."+strconv.Itoa(i), "bad address %q: want an IP address such as \"203.0.113.1\"", a)
			continue
		}
		l.PublicAddrs = append(l.PublicAddrs, ip.Unmap())
	}
	owner := map[uint16]string{}
	users := make([]string, 0, len(f.Reserved))
	for u := range f.Reserved {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		for i, port := range f.Reserved[u] {
			path := "listeners.reserved." + u + "." + strconv.Itoa(i)
			switch prev, dup := owner[port]; {
			case port == 0:
				p.errorf(path, "port 0 cannot be reserved")
			case dup && prev != u:
				p.errorf(path, "port %d is reserved for %q too", port, prev)
			default:
				owner[port] = u
			}
		}
	}
	l.Reserved = f.Reserved
	return l
}

func (p *parser) resolver(f *fileResolver) Resolver {
	r := Resolver{
		Servers:   f.Servers,
		HostsFile: f.HostsFile,
		Attempts:  f.Attempts,
		CacheSize: f.CacheSize,
	}
	for i, srv := range f.Servers {
		if err := resolver.CheckServer(srv); err != nil {
			p.errorf("resolver.servers."+strconv.Itoa(i), "%w", err)
		}
	}
	opt := func(path, s string) time.Duration {
		if s == "" {
			return 0
		}
		d := p.duration(path, s)
		if d < 0 {
			p.errorf(path, "negative duration %q", s)
		}
		return d
	}
	r.Timeout = opt("resolver.timeout", f.Timeout)
	r.MaxTTL = opt("resolver.max_ttl", f.MaxTTL)
	r.NegativeTTL = opt("resolver.negative_ttl", f.NegativeTTL)
	if f.Attempts < 0 {
		p.errorf("resolver.attempts", "negative attempts %d", f.Attempts)
	}
	switch f.NAT64Prefix {
	case "auto":
		r.DiscoverNAT64 = true
	case "off", "":
	default:
		pr, err := netip.ParsePrefix(f.NAT64Prefix)
		switch {
		case err != nil:
			p.errorf("resolver.nat64_prefix", "want \"auto\", \"off\" or an IPv6 prefix: %v", err)
		case !pr.Addr().Is6() || pr.Addr().Is4In6():
			p.errorf("resolver.nat64_prefix", "%s is not an IPv6 prefix", f.NAT64Prefix)
		default:
			switch pr.Bits() {
			case 32, 40, 48, 56, 64, 96:
				r.NAT64Prefix = pr.Masked()
			default:
				p.errorf("resolver.nat64_prefix", "prefix length /%d: RFC 6052 allows /32, /40, /48, /56, /64 and /96", pr.Bits())
			}
		}
	}
	return r
}

func (p *parser) duration(path, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(path, "bad duration %q: want a Go duration such as \"10s\" or \"5m\"", s)
	}
	return d
}

func (p *parser) action(path, s string) server.Action {
	switch s {
	case "allow":
		return server.Allow
	case "deny":
		return server.Deny
	case "":
		p.errorf(path, "missing action: want \"allow\" or \"deny\"")
	default:
		p.errorf(path, "unknown action %q: want \"allow\" or \"deny\"", s)
	}
	return server.Deny
}

func (p *parser) upstream(path string, f *fileUpstream) Upstream {
	u := Upstream{Name: f.Name, Proxy: f.Proxy, TLSCA: f.TLSCA, TLSName: f.TLSName, Default: f.Default}
	for i, s := range f.Nets {
		if pr, err := ParsePrefix(s); err != nil {
			p.errorf(path+".nets."+strconv.Itoa(i), "%w", err)
		} else {
			u.Nets = append(u.Nets, pr)
		}
	}
	for i, s := range f.Domains {
		if d, err := ParseDomain(s); err != nil {
			p.errorf(path+".domains."+strconv.Itoa(i), "%w", err)
		} else {
			u.Domains = append(u.Domains, d)
		}
	}
	return u
}

func (p *parser) rule(path string, f *fileRule) server.Rule {
	r := server.Rule{Action: p.action(path+".action", f.Action)}
	r.Users = append(r.Users, f.Users...)
	r.Groups = append(r.Groups, f.Groups...)
	for i, s := range f.Clients {
		if pr, err := ParsePrefix(s); err != nil {
			p.errorf(path+".clients."+strconv.Itoa(i), "%w", err)
		} else {
			r.Clients = append(r.Clients, pr)
		}
	}
	for i, s := range f.Commands {
		if cmd, err := ParseCommand(s); err != nil {
			p.errorf(path+".commands."+strconv.Itoa(i), "%w", err)
		} else {
			r.Commands = append(r.Commands, cmd)
		}
	}
	for i, s := range f.Nets {
		if pr, err := ParsePrefix(s); err != nil {
			p.errorf(path+".nets."+strconv.Itoa(i), "%w", err)
		} else {
			r.Nets = append(r.Nets, pr)
		}
	}
	for i, s := range f.Domains {
		if d, err := ParseDomain(s); err != nil {
			p.errorf(path+".domains."+strconv.Itoa(i), "%w", err)
		} else {
			r.Domains = append(r.Domains, d)
		}
	}
	for i, s := range f.Ports {
		if pr, err := ParsePorts(s); err != nil {
			p.errorf(path+".ports."+strconv.Itoa(i), "%w", err)
		} else {
			r.Ports = append(r.Ports, pr)
		}
	}
	return r
}

// ParseFormat checks a log format name: "text" or "json".
func ParseFormat(s string) (string, error) {
	switch s {
	case FormatText, FormatJSON:
		return s, nil
	}
	return "", fmt.Errorf("unknown log format %q: want \"text\" or \"json\"", s)
}

// ParseLevel parses a log level name: "debug", "info", "warn" or "error".
func ParseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q: want \"debug\", \"info\", \"warn\" or \"error\"", s)
}

// ParseCommand parses a command name: "connect", "bind", "udp" (also
// written "udp-associate") or "resolve" (RESOLVE, and Tor's RESOLVE from
// plain clients) or "listen" (LISTEN; its TAKEs follow from it).
func ParseCommand(s string) (proto.Command, error) {
	switch s {
	case "connect":
		return proto.CommandConnect, nil
	case "bind":
		return proto.CommandBind, nil
	case "udp", "udp-associate":
		return proto.CommandUDPAssociate, nil
	case "resolve":
		return proto.CommandResolve, nil
	case "listen":
		return proto.CommandListen, nil
	}
	return 0, fmt.Errorf("unknown command %q: want \"connect\", \"bind\", \"udp\", \"resolve\" or \"listen\"", s)
}

// ParsePrefix parses a network in CIDR notation, or a single address,
// which stands for itself (/32 or /128). Host bits are cleared.
// IPv4-mapped IPv6 networks and zones are refused: the gateway matches
// IPv4 addresses in their IPv4 form, so such a rule would never match.
func ParsePrefix(s string) (netip.Prefix, error) {
	var pr netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if pr, err = netip.ParsePrefix(s); err != nil {
			return pr, fmt.Errorf("bad network %q: want CIDR such as \"10.0.0.0/8\" or a single address", s)
		}
	} else {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return pr, fmt.Errorf("bad network %q: want CIDR such as \"10.0.0.0/8\" or a single address", s)
		}
		pr = netip.PrefixFrom(ip, ip.BitLen())
	}
	if pr.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("bad network %q: IPv4-mapped IPv6 never matches; write the IPv4 network", s)
	}
	return pr.Masked(), nil
}

// ParseDomain normalizes a domain suffix for a rule: lower case, without
// a leading or trailing dot. A suffix matches itself and every name under
// it, so "example.com" covers "www.example.com"; wildcards are not needed
// and not accepted.
func ParseDomain(s string) (string, error) {
	d := strings.ToLower(s)
	d = strings.TrimPrefix(d, ".")
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return "", fmt.Errorf("bad domain %q", s)
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "", fmt.Errorf("bad domain %q: an address belongs in nets", s)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("bad domain %q: empty or over-long label", s)
		}
		for _, r := range label {
			switch {
			case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '-', r == '_':
			case r == '*':
				return "", fmt.Errorf("bad domain %q: no wildcards; \"example.com\" already matches its subdomains", s)
			default:
				return "", fmt.Errorf("bad domain %q: invalid character %q (write internationalized names in their xn-- form)", s, r)
			}
		}
	}
	return d, nil
}

// ParsePorts parses a port ("80") or an inclusive range ("8000-8999") of
// ports from 0 to 65535.
func ParsePorts(s string) (server.PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil {
		return server.PortRange{}, fmt.Errorf("bad port range %q: want a port (\"443\") or range (\"8000-8999\") within 0-65535", s)
	}
	if l > h {
		return server.PortRange{}, fmt.Errorf("bad port range %q: first port is above the last", s)
	}
	return server.PortRange{Lo: uint16(l), Hi: uint16(h)}, nil
}
