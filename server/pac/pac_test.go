package pac

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// pacparser evaluates script for each host with pacparser (the PAC
// engine of python3-pacparser, an independent implementation of the
// browsers' PAC functions) and returns the answers.
func pacparser(t *testing.T, script string, hosts []string) []string {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import pacparser").Run(); err != nil {
		t.Skip("no python3-pacparser (.ci/run installs it)")
	}
	prog := `
import json, sys, pacparser
script, hosts = json.load(sys.stdin)
pacparser.init()
pacparser.parse_pac_string(script)
print(json.dumps([pacparser.find_proxy("http://%s/" % (("[%s]" % h) if ":" in h else h), h) for h in hosts]))
pacparser.cleanup()
`
	in, _ := json.Marshal([]any{script, hosts})
	cmd := exec.Command(py, "-W", "ignore", "-c", prog)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pacparser: %v\n%s", err, out)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("pacparser output %q: %v", out, err)
	}
	return got
}

func TestScript(t *testing.T) {
	c := Config{
		Proxies:       []string{"192.168.1.1:1080", "[2001:db8::1]:1080"},
		Direct:        []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.0.0.0/8")},
		DirectDomains: []string{"lan.example"},
	}
	script, err := c.Script()
	if err != nil {
		t.Fatal(err)
	}
	const proxy = "SOCKS5 192.168.1.1:1080; SOCKS 192.168.1.1:1080; SOCKS5 [2001:db8::1]:1080; SOCKS [2001:db8::1]:1080"
	for _, tc := range []struct{ host, want string }{
		{"example.com", proxy},
		{"www.example.com", proxy},
		{"192.0.2.7", proxy},
		{"192.168.1.20", "DIRECT"},
		{"192.168.2.20", proxy},
		{"10.1.2.3", "DIRECT"},
		{"127.0.0.1", "DIRECT"},
		{"169.254.1.1", "DIRECT"},
		{"intranet", "DIRECT"},
		{"localhost", "DIRECT"},
		{"printer.local", "DIRECT"},
		{"lan.example", "DIRECT"},
		{"nas.lan.example", "DIRECT"},
		{"notlan.example", proxy},
		{"NAS.LAN.EXAMPLE", "DIRECT"},
		{"::1", "DIRECT"},
		{"localhost.", "DIRECT"},
		{"printer.local.", "DIRECT"},
		{"NAS.LAN.EXAMPLE.", "DIRECT"},
		{"intranet.", "DIRECT"},
		{"example.com.", proxy},
		{"fe80::1", "DIRECT"},
		{"2001:db8:7::1", proxy},
	} {
		got := pacparser(t, script, []string{tc.host})
		if got[0] != tc.want {
			t.Errorf("%s: %q, want %q", tc.host, got[0], tc.want)
		}
	}
}

// TestScriptWithoutIsInNetEx: in an engine without Microsoft's IPv6
// extensions, IPv6 loopback and link-local addresses still go direct.
func TestScriptWithoutIsInNetEx(t *testing.T) {
	script, err := Config{Proxies: []string{"192.0.2.1:1080"}}.Script()
	if err != nil {
		t.Fatal(err)
	}
	script = "isInNetEx = undefined;\n" + script
	got := pacparser(t, script, []string{"::1", "fe80::1", "FE80::abcd", "2001:db8::1"})
	want := []string{"DIRECT", "DIRECT", "DIRECT", "SOCKS5 192.0.2.1:1080; SOCKS 192.0.2.1:1080"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %q, want %q", i, got[i], want[i])
		}
	}
}

func TestScriptRefusesUnsafe(t *testing.T) {
	for _, c := range []Config{
		{},
		{Proxies: []string{`gw.example:1080"); alert("x`}},
		{Proxies: []string{"gw.example"}},
		{Proxies: []string{"gw.example:1080"}, DirectDomains: []string{`a"b`}},
	} {
		if s, err := c.Script(); err == nil {
			t.Errorf("%+v: script %q, want an error", c, s)
		}
	}
}

func TestHandler(t *testing.T) {
	h, err := NewHandler(Config{Proxies: []string{"192.0.2.1:1080"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, path := range []string{"/proxy.pac", "/wpad.dat"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/x-ns-proxy-autoconfig" ||
			!strings.Contains(string(body), `return "SOCKS5 192.0.2.1:1080; SOCKS 192.0.2.1:1080";`) {
			t.Errorf("%s: %v %q %q", path, res.Status, res.Header.Get("Content-Type"), body)
		}
	}
	if res, err := http.Get(srv.URL + "/etc/passwd"); err != nil || res.StatusCode != 404 {
		t.Errorf("other path: %v %v", res.Status, err)
	}
	res, err := http.Post(srv.URL+"/proxy.pac", "text/plain", strings.NewReader("x"))
	if err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", res.Status, err)
	}
	// Set replaces the script; a bad config keeps the old one.
	if err := h.Set(Config{Proxies: []string{"192.0.2.9:1080"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Set(Config{}); err == nil {
		t.Error("Set(Config{}) took a config without proxies")
	}
	res, _ = http.Get(srv.URL + "/proxy.pac")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "192.0.2.9:1080") {
		t.Errorf("after Set: %q", body)
	}
}
