package pac

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// Config describes the PAC file.
type Config struct {
	// Proxies are the gateway's addresses as clients reach them
	// (host:port, host an IP address or a name), in order of preference.
	Proxies []string
	// Direct are networks reached without the gateway, besides loopback
	// and link-local addresses, which always are. Addresses only match
	// when the URL names an address: a PAC file that resolved names would
	// make the browser wait for DNS on every URL.
	Direct []netip.Prefix
	// DirectDomains are names reached without the gateway: each, and
	// every name under it (lower case, no leading or trailing dot).
	// Plain host names (no dot), "localhost" and names under "local"
	// (mDNS) always are.
	DirectDomains []string
}

// Script returns the PAC file for c.
func (c Config) Script() (string, error) {
	if len(c.Proxies) == 0 {
		return "", errors.New("pac: no proxy address")
	}
	var proxies []string
	for _, p := range c.Proxies {
		host, port, err := net.SplitHostPort(p)
		if err != nil || !safe(host, ".:-") || !safe(port, "") || host == "" || port == "" {
			return "", fmt.Errorf("pac: proxy %q: want host:port", p)
		}
		// Browsers take "SOCKS5"; older ones only "SOCKS", which they
		// speak as SOCKS4 or 5.
		hp := net.JoinHostPort(host, port)
		proxies = append(proxies, "SOCKS5 "+hp, "SOCKS "+hp)
	}
	domains := []string{"localhost", "local"}
	for _, d := range c.DirectDomains {
		if d == "" || !safe(d, ".-_") {
			return "", fmt.Errorf("pac: direct domain %q", d)
		}
		domains = append(domains, strings.ToLower(strings.Trim(d, ".")))
	}
	nets := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fe80::/10"),
	}
	nets = append(nets, c.Direct...)

	var b strings.Builder
	b.WriteString("// Proxy auto-configuration written by socks6d: what the gateway serves goes\n")
	b.WriteString("// through it (SOCKS5), the local network and this machine directly.\n")
	b.WriteString("function FindProxyForURL(url, host) {\n")
	b.WriteString("\thost = host.toLowerCase();\n")
	b.WriteString("\tif (host.charAt(0) == \"[\") host = host.substring(1, host.length - 1);\n")
	b.WriteString("\tif (host.charAt(host.length - 1) == \".\") host = host.substring(0, host.length - 1); // a fully qualified name\n")
	ret := fmt.Sprintf("return %q;", strings.Join(proxies, "; "))
	// Addresses first: an IPv6 address has no dot, which isPlainHostName
	// would take for a plain name.
	b.WriteString("\tif (host.indexOf(\":\") >= 0) {\n")
	// Loopback and link-local without isInNetEx, which only some
	// engines have; the configured IPv6 networks need it.
	b.WriteString("\t\tif (host == \"::1\" || /^fe[89ab][0-9a-f]:/.test(host)) return \"DIRECT\";\n")
	b.WriteString("\t\tif (typeof isInNetEx == \"function\") {\n")
	for _, p := range nets {
		if p.Addr().Is6() && !p.Addr().Is4In6() {
			fmt.Fprintf(&b, "\t\t\tif (isInNetEx(host, %q)) return \"DIRECT\";\n", p.Masked())
		}
	}
	fmt.Fprintf(&b, "\t\t}\n\t\t%s\n\t}\n", ret)
	b.WriteString("\tif (/^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$/.test(host)) {\n")
	for _, p := range nets {
		p = p.Masked()
		if p.Addr().Is4() || p.Addr().Is4In6() {
			a := p.Addr().Unmap()
			mask := net.CIDRMask(p.Bits()-(p.Addr().BitLen()-32), 32)
			fmt.Fprintf(&b, "\t\tif (isInNet(host, %q, %q)) return \"DIRECT\";\n", a, net.IP(mask).String())
		}
	}
	fmt.Fprintf(&b, "\t\t%s\n\t}\n", ret)
	b.WriteString("\tif (isPlainHostName(host)) return \"DIRECT\";\n")
	for _, d := range domains {
		fmt.Fprintf(&b, "\tif (host == %q || dnsDomainIs(host, %q)) return \"DIRECT\";\n", d, "."+d)
	}
	fmt.Fprintf(&b, "\t%s\n}\n", ret)
	return b.String(), nil
}

// safe reports whether s has only letters, digits and the bytes in
// extra: what may appear inside the script's string literals.
func safe(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// A Handler serves the PAC file at /proxy.pac and /wpad.dat (the name
// WPAD asks for). Its script can be replaced while it serves, for a
// configuration reload.
type Handler struct {
	script atomic.Pointer[string]
}

// NewHandler returns a Handler that serves c's script.
func NewHandler(c Config) (*Handler, error) {
	h := &Handler{}
	return h, h.Set(c)
}

// Set replaces the script with c's. A c that does not make a script
// leaves the old one.
func (h *Handler) Set(c Config) error {
	s, err := c.Script()
	if err != nil {
		return err
	}
	h.script.Store(&s)
	return nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/proxy.pac" && r.URL.Path != "/wpad.dat" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := h.script.Load()
	w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
	w.Header().Set("Cache-Control", "max-age=300")
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(*s))
}

// Server returns an http.Server for h with the timeouts a service on the
// LAN needs: slow or silent clients cannot hold it.
func Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
}
