package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
	"golang.org/x/term"
)

// globalFlags are the flags every subcommand takes, before or after its
// name.
type globalFlags struct {
	proxy   string
	user    string
	ext     extFlag
	family  familyFlag
	timeout time.Duration
	verbose bool
	tls     bool   // reach the gateway over TLS
	tlsCA   string // PEM file of the certificates to trust instead of the system's
	tlsName string // the name the gateway's certificate must carry
	set     bool   // define has run once, so the fields hold values
}

// define adds the global flags to fs. The first call sets the defaults;
// later calls (a subcommand's flag set) keep what the earlier parse set.
func (g *globalFlags) define(fs *flag.FlagSet) {
	if !g.set {
		g.timeout = 30 * time.Second
		g.set = true
	}
	fs.StringVar(&g.proxy, "proxy", g.proxy, "the gateway's `HOST:PORT` (default $SOCKS6_PROXY, else "+defaultProxy+")")
	fs.StringVar(&g.user, "user", g.user, "log in as `NAME`; the password comes from $SOCKS6_PASSWORD, or is asked\non the terminal when standard input is one")
	fs.Var(&g.ext, "ext", "use the SOCKS6 extensions as `MODE` says: auto (offer them, fall back to plain\nSOCKS5; the default), require (fail unless the gateway speaks them) or off\n(plain SOCKS5 only)")
	fs.Var(&g.family, "family", "have the gateway try these address `FAMILIES` for names: any (Happy\nEyeballs, the default), prefer-ipv4, prefer-ipv6, ipv4-only or ipv6-only;\ntakes effect with the extensions only")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound reaching the gateway and each request (CONNECT, RESOLVE, LISTEN) by `D`;\n0 means no limit; relayed streams have none")
	fs.BoolVar(&g.verbose, "v", g.verbose, "log the connection, and each caller and offer of listen, to standard error")
	fs.BoolVar(&g.tls, "tls", g.tls, "reach the gateway over TLS (ALPN socks6, then socks5), checking its certificate\nagainst the system's roots")
	fs.StringVar(&g.tlsCA, "tls-ca", g.tlsCA, "with TLS (implied), trust the PEM certificates in `FILE` instead of the\nsystem's roots")
	fs.StringVar(&g.tlsName, "tls-name", g.tlsName, "with TLS (implied), the `NAME` the gateway's certificate must carry (default:\nthe host of -proxy)")
}

// tlsConfig returns the TLS configuration the flags ask for, nil for
// none.
func (g *globalFlags) tlsConfig() (*tls.Config, error) {
	if !g.tls && g.tlsCA == "" && g.tlsName == "" {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: g.tlsName, ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	if g.tlsCA != "" {
		pem, err := os.ReadFile(g.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", g.tlsCA)
		}
	}
	return cfg, nil
}

// dialer checks the global flags and returns the Dialer they describe. On
// a problem it prints it and returns nil and the exit status.
func (g *globalFlags) dialer(e env) (*client.Dialer, int) {
	proxy, from := g.proxy, "-proxy"
	if proxy == "" {
		if v, ok := e.lookup("SOCKS6_PROXY"); ok && v != "" {
			proxy, from = v, "$SOCKS6_PROXY"
		} else {
			proxy = defaultProxy
		}
	}
	if err := checkHostPort(proxy); err != nil {
		fmt.Fprintf(e.stderr, "socks6: %s %q: %v\n", from, proxy, err)
		return nil, exitUsage
	}
	if g.timeout < 0 {
		fmt.Fprintf(e.stderr, "socks6: -timeout %v: must not be negative\n", g.timeout)
		return nil, exitUsage
	}
	d := &client.Dialer{
		ProxyAddress: proxy,
		Extensions:   client.ExtMode(g.ext),
		Family:       proto.Family(g.family),
		Timeout:      g.timeout,
	}
	if g.timeout == 0 {
		d.Timeout = -1 // no limit
	}
	tc, err := g.tlsConfig()
	if err != nil {
		fmt.Fprintf(e.stderr, "socks6: %v\n", err)
		return nil, exitUsage
	}
	d.TLSConfig = tc
	if g.user != "" {
		if len(g.user) > proto.MaxUserPassLen {
			fmt.Fprintf(e.stderr, "socks6: -user: longer than %d bytes\n", proto.MaxUserPassLen)
			return nil, exitUsage
		}
		pw, err := password(g.user, proxy, e)
		if err != nil {
			fmt.Fprintf(e.stderr, "socks6: -user %s: %v\n", g.user, err)
			return nil, exitUsage
		}
		d.Username, d.Password = g.user, pw
	}
	return d, exitOK
}

// password returns the password of user: $SOCKS6_PASSWORD, else one read
// without echo from the terminal on standard input.
func password(user, proxy string, e env) (string, error) {
	pw, ok := e.lookup("SOCKS6_PASSWORD")
	if !ok {
		f, isFile := e.stdin.(*os.File)
		if !isFile || !term.IsTerminal(int(f.Fd())) {
			return "", errors.New("no password: set SOCKS6_PASSWORD (standard input is not a terminal to ask on)")
		}
		fmt.Fprintf(e.stderr, "Password for %s at %s: ", user, proxy)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		pw = string(b)
	}
	if pw == "" || len(pw) > proto.MaxUserPassLen {
		return "", fmt.Errorf("the password must be 1 to %d bytes", proto.MaxUserPassLen)
	}
	return pw, nil
}

// extFlag is -ext.
type extFlag client.ExtMode

func (f *extFlag) String() string { return client.ExtMode(*f).String() }
func (f *extFlag) Set(s string) error {
	for _, m := range []client.ExtMode{client.ExtAuto, client.ExtRequire, client.ExtOff} {
		if s == m.String() {
			*f = extFlag(m)
			return nil
		}
	}
	return errors.New("want auto, require or off")
}

// familyFlag is -family.
type familyFlag proto.Family

func (f *familyFlag) String() string { return proto.Family(*f).String() }
func (f *familyFlag) Set(s string) error {
	for _, fam := range []proto.Family{proto.FamilyAny, proto.FamilyPreferIPv4, proto.FamilyPreferIPv6, proto.FamilyIPv4Only, proto.FamilyIPv6Only} {
		if s == fam.String() {
			*f = familyFlag(fam)
			return nil
		}
	}
	return errors.New("want any, prefer-ipv4, prefer-ipv6, ipv4-only or ipv6-only")
}

// resolveOptions are the flags of resolve.
type resolveOptions struct{ v4, v6 bool }

func (o *resolveOptions) define(fs *flag.FlagSet) {
	fs.BoolVar(&o.v4, "4", false, "IPv4 addresses only (A records); sets -family ipv4-only")
	fs.BoolVar(&o.v6, "6", false, "IPv6 addresses only (AAAA records); sets -family ipv6-only")
}

// listenOptions are the flags of listen.
type listenOptions struct {
	exact        bool
	dualStack    bool
	port         int
	bind         string
	offerTimeout time.Duration
	allow        prefixList
	to           string
}

func (o *listenOptions) define(fs *flag.FlagSet) {
	fs.BoolVar(&o.exact, "exact", false, "fail unless the gateway gives exactly -port (LISTEN flag EXACT)")
	fs.IntVar(&o.port, "port", 0, "ask the gateway for port `N`; 0 lets it choose (without -exact it may choose\nanother port when N is taken)")
	fs.StringVar(&o.bind, "bind", "", "listen on the gateway's address `ADDR`, an IP address of the gateway\n(default 0.0.0.0, or :: with -dual-stack: all addresses)")
	fs.BoolVar(&o.dualStack, "dual-stack", false, "listen on IPv4 and IPv6 with the same port (LISTEN flag DUAL_STACK)")
	fs.DurationVar(&o.offerTimeout, "offer-timeout", 0, "ask that callers wait up to `D` to be taken; 0 means the gateway's default\n(10s; gateways keep it within 1s to 60s)")
	fs.Var(&o.allow, "allow", "take only callers from `CIDR,...` (such as 192.0.2.0/24,2001:db8::/32, or single\naddresses); others are refused with REJECT_OFFER; repeatable")
	fs.StringVar(&o.to, "to", "", "required: connect each caller to `HOST:PORT`, dialed from this machine")
}

func (o *listenOptions) validate() error {
	if o.to == "" {
		return errors.New("-to HOST:PORT is required: the local service to publish")
	}
	if err := checkHostPort(o.to); err != nil {
		return fmt.Errorf("-to %q: %v", o.to, err)
	}
	if o.port < 0 || o.port > 65535 {
		return fmt.Errorf("-port %d: want 0 to 65535", o.port)
	}
	if o.exact && o.port == 0 {
		return errors.New("-exact needs -port N: port 0 means any port")
	}
	if o.bind == "" {
		o.bind = "0.0.0.0"
		if o.dualStack {
			o.bind = "::"
		}
	}
	if ip, err := netip.ParseAddr(o.bind); err != nil || ip.Zone() != "" {
		return fmt.Errorf("-bind %q: want an IP address of the gateway, such as 0.0.0.0 or 192.0.2.1", o.bind)
	}
	if o.offerTimeout < 0 {
		return fmt.Errorf("-offer-timeout %v: must not be negative", o.offerTimeout)
	}
	return nil
}

// prefixList is -allow: networks, comma-separated and repeatable.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			ip, aerr := netip.ParseAddr(s)
			if aerr != nil || ip.Zone() != "" {
				return fmt.Errorf("bad network %q: want CIDR such as 192.0.2.0/24 or a single address", s)
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		if p.Addr().Is4In6() {
			return fmt.Errorf("bad network %q: write IPv4 networks in IPv4 form", s)
		}
		*l = append(*l, p.Masked())
	}
	return nil
}

// contains reports whether ip is in one of the networks.
func (l prefixList) contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// checkHostPort checks a host:port argument: a host and a port number or
// service name.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if ae, ok := err.(*net.AddrError); ok {
			return errors.New(ae.Err + "; want HOST:PORT (IPv6 addresses in brackets)")
		}
		return err
	}
	if host == "" {
		return errors.New("no host; want HOST:PORT")
	}
	if port == "" {
		return errors.New("no port; want HOST:PORT")
	}
	if n, err := strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
		return fmt.Errorf("port %d out of range", n)
	}
	return nil
}

// newFlagSet returns a flag set that reports errors to its caller instead
// of printing them.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseInterleaved parses args with fs, allowing flags after positional
// arguments ("socks6 connect example.org:80 -v"), and returns the
// positional arguments. After "--" everything is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagError reports a failed parse: for -h the usage, on standard error,
// with status 0; otherwise the problem and status 2.
func flagError(stderr io.Writer, cmd string, err error, usage func(io.Writer)) int {
	if errors.Is(err, flag.ErrHelp) {
		usage(stderr)
		return exitOK
	}
	return usageError(stderr, cmd, err.Error())
}

func usageError(stderr io.Writer, cmd, msg string) int {
	fmt.Fprintf(stderr, "%s: %s\nRun '%s -h' for usage.\n", cmd, msg, cmd)
	return exitUsage
}
