package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/auth/htpasswd"
	"github.com/socks6/socks6/server/pac"
)

// Validate checks the configuration as a whole: listen addresses, log
// format, timeouts, groups, rules (including that every group a rule
// names is defined), and the users file, which must be readable and hold
// only bcrypt hashes. It reports every problem found, each as an *Error
// that names the file and line the value came from when it came from the
// file Parse read.
func (c *Config) Validate() error {
	_, err := c.check()
	return err
}

// Settings validates c and returns the server settings it describes: the
// users file loaded as the Authenticator (nil without one), the rules as a
// *server.Rules policy, the guard and the limits. The result shares no
// slices or maps with c.
func (c *Config) Settings() (server.Settings, error) {
	auth, err := c.check()
	if err != nil {
		return server.Settings{}, err
	}
	v := &validator{c: c}
	ups := v.upstreams()
	if len(v.errs) > 0 { // a CA file changed since check
		return server.Settings{}, joinSorted(v.errs)
	}
	groups := make(map[string][]string, len(c.Groups))
	for g, m := range c.Groups {
		groups[g] = slices.Clone(m)
	}
	rules := make([]server.Rule, len(c.Rules))
	for i, r := range c.Rules {
		rules[i] = server.Rule{
			Action:   r.Action,
			Users:    slices.Clone(r.Users),
			Groups:   slices.Clone(r.Groups),
			Clients:  slices.Clone(r.Clients),
			Commands: slices.Clone(r.Commands),
			Nets:     slices.Clone(r.Nets),
			Domains:  slices.Clone(r.Domains),
			Ports:    slices.Clone(r.Ports),
		}
	}
	ls := c.Listeners
	ls.Privileged = slices.Clone(ls.Privileged)
	ls.PublicAddrs = slices.Clone(ls.PublicAddrs)
	if ls.Reserved != nil {
		res := make(map[string][]uint16, len(ls.Reserved))
		for u, ports := range ls.Reserved {
			res[u] = slices.Clone(ports)
		}
		ls.Reserved = res
	}
	st := server.Settings{
		Policy:    &server.Rules{Rules: rules, Groups: groups, Default: c.Default},
		Guard:     c.Guard,
		Limits:    c.Limits,
		Listen:    ls,
		Upstreams: ups,
	}
	if auth != nil { // not a typed nil in the interface
		st.Auth = auth
	}
	return st, nil
}

// validator collects errors with positions.
type validator struct {
	c    *Config
	errs []error
}

// errorf records a problem with the value at path. fromFile says whether
// the value still is the one Parse read; only then is the file named.
func (v *validator) errorf(path string, fromFile bool, format string, args ...any) {
	e := &Error{Key: display(path), Err: fmt.Errorf(format, args...)}
	if s := v.c.src; s != nil && fromFile {
		e.File, e.Line = s.name, s.pos.line(path)
	}
	v.errs = append(v.errs, e)
}

func (c *Config) check() (*htpasswd.File, error) {
	v := &validator{c: c}
	src := c.src
	if src == nil {
		src = &source{}
	}

	listenFromFile := slices.Equal(c.Listen, src.listen)
	if len(c.Listen) == 0 && len(c.TLS.Listen) == 0 {
		v.errorf("listen", listenFromFile, "no addresses to listen on (neither listen nor tls.listen)")
	}
	for i, a := range c.Listen {
		if err := checkListen(a); err != nil {
			v.errorf("listen."+strconv.Itoa(i), listenFromFile, "%w", err)
		}
	}

	if _, err := ParseFormat(c.LogFormat); err != nil {
		v.errorf("log_format", true, "%w", err)
	}

	t := c.Timeouts
	for _, d := range []struct {
		key    string
		d      time.Duration
		zeroOK bool // idle: no timeout; shutdown: close sessions at once
	}{
		{"handshake", t.Handshake, false},
		{"dial", t.Dial, false},
		{"bind", t.Bind, false},
		{"idle", t.Idle, true},
		{"shutdown", t.Shutdown, true},
	} {
		if d.d < 0 || (d.d == 0 && !d.zeroOK) {
			want := "positive"
			if d.zeroOK {
				want = "zero or positive"
			}
			v.errorf("timeouts."+d.key, true, "bad duration %v: must be %s", d.d, want)
		}
	}

	names := make([]string, 0, len(c.Groups))
	for g := range c.Groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		if g == "" {
			v.errorf("groups", true, "empty group name")
		}
		for i, u := range c.Groups[g] {
			if u == "" {
				v.errorf("groups."+g+"."+strconv.Itoa(i), true, "empty user name")
			}
		}
	}

	switch c.Default {
	case server.Allow, server.Deny:
	default:
		v.errorf("policy.default", true, "unknown action %d", c.Default)
	}
	for i := range c.Rules {
		v.rule("rule."+strconv.Itoa(i), &c.Rules[i])
	}

	v.listenConflicts(listenFromFile)
	if tl := c.TLS; len(tl.Listen) > 0 || tl.CertFile != "" || tl.KeyFile != "" {
		for i, a := range tl.Listen {
			if err := checkListen(a); err != nil {
				v.errorf("tls.listen."+strconv.Itoa(i), true, "%w", err)
			}
		}
		switch {
		case len(tl.Listen) == 0:
			v.errorf("tls", true, "cert_file and key_file are set but listen is empty: no TLS address to serve")
		case tl.CertFile == "":
			v.errorf("tls", true, "cert_file is missing: TLS needs a certificate")
		case tl.KeyFile == "":
			v.errorf("tls", true, "key_file is missing: TLS needs the certificate's private key")
		default:
			if _, err := c.TLSCertificate(); err != nil {
				key := "tls.cert_file"
				var ke *keyFileError
				if errors.As(err, &ke) {
					key = "tls.key_file"
				}
				v.errorf(key, true, "%w", err)
			}
		}
	}

	v.upstreams()
	for i, a := range c.MetricsListen {
		if err := checkListen(a); err != nil {
			v.errorf("metrics.listen."+strconv.Itoa(i), true, "%w", err)
		}
	}
	if len(c.PAC.Listen) > 0 || len(c.PAC.Proxy) > 0 || len(c.PAC.Nets) > 0 || len(c.PAC.Domains) > 0 {
		for i, a := range c.PAC.Listen {
			if err := checkListen(a); err != nil {
				v.errorf("pac.listen."+strconv.Itoa(i), true, "%w", err)
			}
		}
		if len(c.PAC.Listen) == 0 {
			v.errorf("pac", true, "listen is empty: no address to serve the PAC file on")
		} else if _, err := c.PACConfig(); err != nil {
			v.errorf("pac", true, "%w", err)
		}
	}

	var auth *htpasswd.File
	if c.UsersFile != "" {
		var err error
		auth, err = htpasswd.Load(c.UsersFile)
		if err != nil {
			// htpasswd names the users file and line itself.
			v.errorf("users_file", c.UsersFile == src.usersFile, "bad users file: %w", err)
		}
	}
	return auth, joinSorted(v.errs)
}

func (v *validator) rule(path string, r *server.Rule) {
	switch r.Action {
	case server.Allow, server.Deny:
	default:
		v.errorf(path+".action", true, "unknown action %d", r.Action)
	}
	for i, u := range r.Users {
		if u == "" {
			v.errorf(path+".users."+strconv.Itoa(i), true, "empty user name")
		}
	}
	for i, g := range r.Groups {
		if _, ok := v.c.Groups[g]; !ok {
			v.errorf(path+".groups."+strconv.Itoa(i), true, "unknown group %q: define it under [groups]", g)
		}
	}
	for i, cmd := range r.Commands {
		switch cmd {
		case proto.CommandConnect, proto.CommandBind, proto.CommandUDPAssociate,
			proto.CommandResolve, proto.CommandListen: // every command ParseCommand knows
		default:
			v.errorf(path+".commands."+strconv.Itoa(i), true, "unknown command %v", cmd)
		}
	}
	for i, p := range r.Clients {
		if !p.IsValid() {
			v.errorf(path+".clients."+strconv.Itoa(i), true, "bad network %v", p)
		}
	}
	for i, p := range r.Nets {
		if !p.IsValid() {
			v.errorf(path+".nets."+strconv.Itoa(i), true, "bad network %v", p)
		}
	}
	for i, d := range r.Domains {
		if n, err := ParseDomain(d); err != nil || n != d {
			v.errorf(path+".domains."+strconv.Itoa(i), true, "bad domain %q: want lower case without leading or trailing dots", d)
		}
	}
	for i, p := range r.Ports {
		if p.Lo > p.Hi {
			v.errorf(path+".ports."+strconv.Itoa(i), true, "bad port range %d-%d: first port is above the last", p.Lo, p.Hi)
		}
	}
}

// keyFileError is a problem with the key file rather than the
// certificate, so that Validate names key_file.
type keyFileError struct{ err error }

func (e *keyFileError) Error() string { return e.err.Error() }
func (e *keyFileError) Unwrap() error { return e.err }

// TLSCertificate loads the [tls] certificate and key and checks that the
// certificate is valid now.
func (c *Config) TLSCertificate() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(c.TLS.CertFile)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.TLS.KeyFile)
	if err != nil {
		return nil, &keyFileError{fmt.Errorf("key: %w", err)}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		err = fmt.Errorf("certificate %s with key %s: %w", c.TLS.CertFile, c.TLS.KeyFile, err)
		if !strings.Contains(err.Error(), "certificate input") {
			err = &keyFileError{err} // a key that does not parse, or does not match
		}
		return nil, err
	}
	now := time.Now()
	if leaf := cert.Leaf; leaf != nil && (now.Before(leaf.NotBefore) || now.After(leaf.NotAfter)) {
		return nil, fmt.Errorf("certificate %s is valid from %s to %s, not now", c.TLS.CertFile,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// upstreams checks the [[upstream]] sections and returns the
// server.Upstreams they describe, each with a client.Dialer of its own.
func (v *validator) upstreams() []server.Upstream {
	var out []server.Upstream
	defaults := 0
	for i, u := range v.c.Upstreams {
		path := "upstream." + strconv.Itoa(i)
		if u.Proxy == "" {
			v.errorf(path, true, "proxy is missing: the upstream gateway's URL, such as \"socks6s://user:pass@gw.example:1443\"")
			continue
		}
		if len(u.Nets) == 0 && len(u.Domains) == 0 && !u.Default {
			v.errorf(path, true, "serves nothing: give nets, domains or default = true")
		}
		if u.Default {
			if defaults++; defaults == 2 {
				v.errorf(path+".default", true, "a second default upstream: only the first would be used")
			}
		}
		pu, err := url.Parse(u.Proxy)
		if err == nil && (pu.Fragment != "" || pu.Opaque != "" || pu.Path != "" && pu.Path != "/") {
			err = errors.New("has a path or fragment")
		}
		if err != nil {
			// Neither the URL nor the parser's words, which quote parts
			// of it: it may hold a password.
			v.errorf(path+".proxy", true, "bad URL (not shown, as it may hold a password): want scheme://[user:password@]host:port; "+
				"escape /, ?, # and %% in the user or password as %%2F, %%3F, %%23 and %%25")
			continue
		}
		pd, err := client.FromURL(pu, nil)
		if err != nil {
			v.errorf(path+".proxy", true, "%s: %w", pu.Redacted(), err)
			continue
		}
		d := pd.(*client.Dialer)
		if (u.TLSCA != "" || u.TLSName != "") && d.TLSConfig == nil {
			key := path + ".tls_ca"
			if u.TLSCA == "" {
				key = path + ".tls_name"
			}
			v.errorf(key, true, "tls_ca and tls_name need a socks6s:// proxy")
			continue
		}
		if u.TLSName != "" {
			d.TLSConfig.ServerName = u.TLSName
		}
		if u.TLSCA != "" {
			pem, err := os.ReadFile(u.TLSCA)
			if err != nil {
				v.errorf(path+".tls_ca", true, "%w", err)
				continue
			}
			d.TLSConfig.RootCAs = x509.NewCertPool()
			if !d.TLSConfig.RootCAs.AppendCertsFromPEM(pem) {
				v.errorf(path+".tls_ca", true, "no PEM certificate in %s", u.TLSCA)
				continue
			}
		}
		if a := v.selfListen(d.ProxyAddress); a != "" {
			v.errorf(path+".proxy", true, "%s is this gateway's own address %s: a gateway must not forward to itself", d.ProxyAddress, a)
		}
		name := u.Name
		if name == "" {
			name = d.ProxyAddress
		}
		out = append(out, server.Upstream{Name: name, Dialer: d, Nets: slices.Clone(u.Nets),
			Domains: slices.Clone(u.Domains), Default: u.Default})
	}
	return out
}

// selfListen returns the listen or tls.listen address that hostport
// obviously names, if any: the same host or address on the same port, or
// loopback (or localhost) for a wildcard listen address on that port. It
// is a convenience: the server refuses, when it connects, any upstream
// connection that arrives at one of its own listeners.
func (v *validator) selfListen(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	parse := func(h string) netip.Addr {
		ip, _ := netip.ParseAddr(h)
		return ip.Unmap()
	}
	loop := func(h string) bool { return h == "localhost" || parse(h).IsLoopback() }
	canonLoop := func(h string) bool { // what localhost is
		ip := parse(h)
		return ip == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || ip == netip.IPv6Loopback()
	}
	ip := parse(host)
	for _, a := range append(slices.Clone(v.c.Listen), v.c.TLS.Listen...) {
		lh, lp, err := net.SplitHostPort(a)
		if err != nil || lp != port {
			continue
		}
		lip := parse(lh)
		switch {
		case lh == host, ip.IsValid() && lip == ip:
			return a
		case (lh == "" || lip.IsUnspecified()) && loop(host):
			return a
		case lh == "localhost" && canonLoop(host), host == "localhost" && canonLoop(lh):
			return a
		}
	}
	return ""
}

// PACConfig returns what the PAC file says: the [pac] proxy addresses,
// else the cleartext listen addresses clients can reach (neither
// wildcard nor loopback).
func (c *Config) PACConfig() (pac.Config, error) {
	pc := pac.Config{Proxies: slices.Clone(c.PAC.Proxy), Direct: slices.Clone(c.PAC.Nets), DirectDomains: slices.Clone(c.PAC.Domains)}
	if len(pc.Proxies) == 0 {
		for _, a := range c.Listen {
			host, _, err := net.SplitHostPort(a)
			ip, perr := netip.ParseAddr(host)
			if err == nil && host != "" && host != "localhost" && (perr != nil || !ip.IsUnspecified() && !ip.IsLoopback()) {
				pc.Proxies = append(pc.Proxies, a)
			}
		}
		if len(pc.Proxies) == 0 {
			return pac.Config{}, errors.New("proxy is empty and no listen address is one that clients reach (wildcard and loopback are not): give proxy = [\"GATEWAY:PORT\"]")
		}
	}
	if _, err := pc.Script(); err != nil {
		return pac.Config{}, err
	}
	return pc, nil
}

// listenConflicts reports listen and tls.listen addresses that cannot
// all be bound: the same address twice, or an IPv4 and an IPv6 wildcard
// on one port, where "[::]:PORT" already takes IPv4 too (a dual-stack
// socket).
func (v *validator) listenConflicts(listenFromFile bool) {
	type entry struct {
		path string
		addr string
	}
	seen := map[string]entry{}
	wild := map[string]entry{} // port → the first wildcard on it
	add := func(path string, fromFile bool, a string) {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return // checkListen reports it
		}
		canon := net.JoinHostPort(host, port)
		if ip, err := netip.ParseAddr(host); err == nil {
			canon = netip.AddrPortFrom(ip, 0).String() + "/" + port
			if ip.IsUnspecified() && port != "0" {
				if w, ok := wild[port]; ok && w.addr != a {
					v.errorf(path, fromFile, "%q and %q cannot both be bound: \"[::]:%s\" serves IPv4 too (a dual-stack socket), so list only it", w.addr, a, port)
					return
				}
				wild[port] = entry{path, a}
			}
		}
		if port == "0" {
			return
		}
		if e, ok := seen[canon]; ok {
			v.errorf(path, fromFile, "%q is listed twice (also as %s)", a, display(e.path))
			return
		}
		seen[canon] = entry{path, a}
	}
	for i, a := range v.c.Listen {
		add("listen."+strconv.Itoa(i), listenFromFile, a)
	}
	for i, a := range v.c.TLS.Listen {
		add("tls.listen."+strconv.Itoa(i), true, a)
	}
	for i, a := range v.c.PAC.Listen {
		add("pac.listen."+strconv.Itoa(i), true, a)
	}
	for i, a := range v.c.MetricsListen {
		add("metrics.listen."+strconv.Itoa(i), true, a)
	}
}

// checkListen checks a listen address: host:port with a numeric port.
func checkListen(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("bad listen address %q: want host:port, such as \"127.0.0.1:1080\" or \"[::1]:1080\"", a)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("bad listen address %q: port must be a number from 0 to 65535", a)
	}
	return nil
}
