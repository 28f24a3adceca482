package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socks6/socks6/internal/socks6test"
)

// TestChainOffice is the office network behind a gateway: a home
// network (a socks6d on its loopback) that reaches an office's private
// network only through the office's socks6d, which its [[upstream]]
// names for that network and its domain. Three namespaces:
//
//	home 192.0.2.2 ── 192.0.2.1 office 198.51.100.1 ── 198.51.100.2 web
//
// home has no route to 198.51.100.0/24, and no way to resolve
// web.office.example; the office gateway has both (a hosts file). curl in
// home, proxy-aware, reaches the web server by name and by address; the
// office gateway sees the home gateway's user, never curl's; what the
// upstream does not serve is served (here: refused) at home.
func TestChainOffice(t *testing.T) {
	home := socks6test.NewNetNS(t) // skips unless root
	office := socks6test.NewNetNS(t)
	web := socks6test.NewNetNS(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl (.ci/run installs it)")
	}
	socks6test.Veth(t, home, "h0", office, "o0")
	socks6test.Veth(t, office, "o1", web, "w0")
	home.IP(t, "addr", "add", "192.0.2.2/24", "dev", "h0")
	office.IP(t, "addr", "add", "192.0.2.1/24", "dev", "o0")
	office.IP(t, "addr", "add", "198.51.100.1/24", "dev", "o1")
	web.IP(t, "addr", "add", "198.51.100.2/24", "dev", "w0")

	ln := web.Listen(t, "tcp", "198.51.100.2:8080")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "office intranet: %s %s", r.Host, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, text)
		return p
	}
	setPassword(t, filepath.Join(dir, "office-users"), "home-gw", "h0me")
	setPassword(t, filepath.Join(dir, "home-users"), "alice", "a-pass")
	hosts := write("office-hosts", "198.51.100.2 web.office.example\n")
	officeCfg := write("office.toml", `listen = ["192.0.2.1:1080"]
users_file = "office-users"
log_format = "json"
[resolver]
hosts_file = "`+hosts+`"
servers = ["198.51.100.53"]
nat64_prefix = "off"
`)
	homeCfg := write("home.toml", `listen = ["127.0.0.1:1080"]
users_file = "home-users"
log_format = "json"
[resolver]
hosts_file = "-"
servers = ["192.0.2.53"]
nat64_prefix = "off"
[[upstream]]
name = "office"
proxy = "socks6://home-gw:h0me@192.0.2.1:1080"
nets = ["198.51.100.0/24"]
domains = ["office.example"]
`)
	og := startIn(t, office, "-config", officeCfg)
	og.waitRecord(0, "listening", nil)
	hg := startIn(t, home, "-config", homeCfg)
	hg.waitRecord(0, "listening", nil)

	get := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", home.Name, curl, "-sS", "--max-time", "10"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct{ proxy, url, want string }{
		{"--socks5-hostname", "http://web.office.example:8080/by-name", "office intranet: web.office.example:8080 /by-name"},
		{"--socks5", "http://198.51.100.2:8080/by-address", "office intranet: 198.51.100.2:8080 /by-address"},
	} {
		out, err := get(tc.proxy, "alice:a-pass@127.0.0.1:1080", tc.url)
		if err != nil || out != tc.want {
			t.Errorf("curl %s %s: %q, %v; want %q", tc.proxy, tc.url, out, err, tc.want)
		}
	}
	// Without the gateways, home cannot reach the office network.
	if out, err := get("http://198.51.100.2:8080/"); err == nil {
		t.Errorf("home reached the office network directly: %q", out)
	}
	// A destination the upstream does not serve is the home gateway's
	// own, and it has no route there.
	if out, err := get("--socks5", "alice:a-pass@127.0.0.1:1080", "http://203.0.113.9:8080/"); err == nil {
		t.Errorf("curl to 203.0.113.9 through home: %q, want a failure", out)
	}

	// The office gateway saw the home gateway's user; home audited alice
	// with the upstream.
	rec, _ := og.waitRecord(0, "session", func(r record) bool { return r.str("target") == "web.office.example:8080" })
	if rec.str("user") != "home-gw" {
		t.Errorf("office session by %q, want home-gw", rec.str("user"))
	}
	rec, _ = hg.waitRecord(0, "session", func(r record) bool { return r.str("target") == "198.51.100.2:8080" })
	if rec.str("user") != "alice" || rec.str("upstream") != "office" {
		t.Errorf("home session %v, want alice via office", rec)
	}
	if n := strings.Count(og.stderr(), `"user":"alice"`); n != 0 {
		t.Errorf("alice's name reached the office gateway %d times", n)
	}
}

// startIn runs socks6d with args inside ns, as start does outside.
func startIn(t *testing.T, ns *socks6test.NetNS, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command("ip", append([]string{"netns", "exec", ns.Name, binPath}, args...)...), args)
}
