package main_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
)

// TestDiscoveryDHCP: with no gateway configured and none on loopback,
// socksify asks the network's DHCP server (dnsmasq, an independent
// implementation) and uses the gateway it advertises: a socks6d on the
// router at port 1090, where probing the router's port 1080 would find
// nothing. Two namespaces on a veth pair: the router (192.0.2.1: dnsmasq,
// socks6d, a web server on its loopback that only the gateway reaches)
// and the client (192.0.2.2).
func TestDiscoveryDHCP(t *testing.T) { testDiscoveryDHCP(t, false) }

// TestDiscoveryDHCPv6 is TestDiscoveryDHCP on an IPv6-only network: the
// client's default route is the router's link-local address, and the
// gateway, at [2001:db8::1]:1090, is advertised by DHCPv6 only.
func TestDiscoveryDHCPv6(t *testing.T) { testDiscoveryDHCP(t, true) }

func testDiscoveryDHCP(t *testing.T, v6 bool) {
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	router := socks6test.NewNetNS(t)
	cli := socks6test.NewNetNS(t)
	socks6test.Veth(t, router, "r0", cli, "c0")
	gwAddr := "192.0.2.1:1090"
	if v6 {
		router.IP(t, "addr", "add", "2001:db8::1/64", "dev", "r0", "nodad")
		router.IP(t, "addr", "add", "fe80::1/64", "dev", "r0", "nodad")
		cli.IP(t, "addr", "add", "2001:db8::2/64", "dev", "c0", "nodad")
		cli.IP(t, "-6", "route", "add", "default", "via", "fe80::1", "dev", "c0")
		gwAddr = "[2001:db8::1]:1090"
	} else {
		router.IP(t, "addr", "add", "192.0.2.1/24", "dev", "r0")
		cli.IP(t, "addr", "add", "192.0.2.2/24", "dev", "c0")
		cli.IP(t, "route", "add", "default", "via", "192.0.2.1")
	}

	ln := router.Listen(t, "tcp", "127.0.0.1:8080")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "behind the router: %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	cfg := filepath.Join(dir, "gw.toml")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 web.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := "listen = [\"" + gwAddr + "\"]\nlog_format = \"json\"\n[guard]\nallow_loopback = true\n" +
		"[resolver]\nhosts_file = \"" + hosts + "\"\nservers = [\"192.0.2.53\"]\nnat64_prefix = \"off\"\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	gwLog := router.Start(t, socks6dBin, "-config", cfg)
	opt, err := exec.Command(socks6dBin, "dhcp-option", gwAddr).Output()
	if err != nil {
		t.Fatalf("socks6d dhcp-option: %v", err)
	}
	var line string
	for _, l := range strings.Split(string(opt), "\n") {
		if strings.HasPrefix(l, "dhcp-option=224,") || strings.HasPrefix(l, "dhcp-option=vi-encap:") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no dnsmasq line in:\n%s", opt)
	}
	extra := []string{"--" + line}
	if v6 {
		extra = append(extra, "--dhcp-range=2001:db8::,static")
	}
	socks6test.Dnsmasq(t, router, "r0", extra...)
	if !socks6test.WaitFor(5*time.Second, func() bool { return strings.Contains(gwLog.String(), "listening") }) {
		t.Fatalf("socks6d did not start:\n%s", gwLog.String())
	}

	// web.test is only the gateway's name for its own loopback: the
	// client reaches it only through the gateway it discovers.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", cli.Name, socksifyBin, "-v", "--",
		curl, "-sS", "--max-time", "10", "http://web.test:8080/found")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var stdout, stderr socks6test.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stdout.String() != "behind the router: /found" {
		t.Fatalf("socksify curl: %v, stdout %q; stderr:\n%s\ngateway:\n%s", err, stdout.String(), stderr.String(), gwLog.String())
	}
	if !strings.Contains(stderr.String(), "advertised by DHCP "+gwAddr) {
		t.Errorf("socksify -v does not say the gateway came from DHCP:\n%s", stderr.String())
	}
	// The gateway writes the session's record when the relay ends, which
	// may be a moment after curl has exited.
	if !socks6test.WaitFor(5*time.Second, func() bool { return strings.Contains(gwLog.String(), `"target":"web.test:8080"`) }) {
		t.Errorf("the gateway logged no session to web.test:8080:\n%s", gwLog.String())
	}
}
