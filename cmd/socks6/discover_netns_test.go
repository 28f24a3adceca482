package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
)

// TestDiscoverDHCP: socks6d dhcp-option prints the option, dnsmasq (an
// independent DHCP server) advertises it, and socks6 discover on a
// client of that network finds the gateways. Two namespaces on a veth
// pair: the router (192.0.2.1, dnsmasq) and the client (192.0.2.2).
func TestDiscoverDHCP(t *testing.T) {
	router := socks6test.NewNetNS(t) // skips unless root
	cli := socks6test.NewNetNS(t)
	socks6test.Veth(t, router, "r0", cli, "c0")
	router.IP(t, "addr", "add", "192.0.2.1/24", "dev", "r0")
	cli.IP(t, "addr", "add", "192.0.2.2/24", "dev", "c0")
	cli.IP(t, "route", "add", "default", "via", "192.0.2.1")

	dir := t.TempDir()
	gwBin := filepath.Join(dir, "socks6d")
	if out, err := exec.Command("go", "build", "-o", gwBin, "../socks6d").CombinedOutput(); err != nil {
		t.Fatalf("building socks6d: %v\n%s", err, out)
	}
	out, err := exec.Command(gwBin, "dhcp-option", "192.0.2.1:1080", "192.0.2.1:1443,tls,priority=20").Output()
	if err != nil {
		t.Fatalf("socks6d dhcp-option: %v", err)
	}
	opt := regexp.MustCompile(`(?m)^dhcp-option=(224,[0-9a-f:]+)$`).FindSubmatch(out)
	if opt == nil {
		t.Fatalf("no dnsmasq line in:\n%s", out)
	}

	discover := func(t *testing.T, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", cli.Name, binPath, "discover"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{code, stdout.String(), stderr.String()}
	}

	t.Run("advertised", func(t *testing.T) {
		socks6test.Dnsmasq(t, router, "r0", "--dhcp-option="+string(opt[1]))
		r := discover(t, "-wait", "10s")
		want := "socks6://192.0.2.1:1080 priority 10\nsocks6s://192.0.2.1:1443 priority 20 alpn socks6,socks5\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("discover: exit %d, stdout %q, want %q; stderr %q", r.code, r.stdout, want, r.stderr)
		}
		// Unicast to the server, on a named interface.
		if r := discover(t, "-iface", "c0", "-server", "192.0.2.1", "-wait", "10s"); r.code != 0 || r.stdout != want {
			t.Errorf("discover -server: exit %d, stdout %q; stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("dhcpv6", func(t *testing.T) {
		router.IP(t, "addr", "add", "2001:db8::1/64", "dev", "r0", "nodad")
		cli.IP(t, "addr", "add", "2001:db8::2/64", "dev", "c0", "nodad")
		out6, err := exec.Command(gwBin, "dhcp-option", "[2001:db8::1]:1080", "[2001:db8::1]:1443,tls,priority=20").Output()
		if err != nil {
			t.Fatalf("socks6d dhcp-option: %v", err)
		}
		line := regexp.MustCompile(`(?m)^dhcp-option=(vi-encap:.+)$`).FindSubmatch(out6)
		if line == nil {
			t.Fatalf("no dnsmasq DHCPv6 line in:\n%s", out6)
		}
		socks6test.Dnsmasq(t, router, "r0", "--dhcp-range=2001:db8::,static", "--dhcp-option="+string(line[1]))
		r := discover(t, "-6", "-iface", "c0", "-wait", "10s")
		want := "socks6://[2001:db8::1]:1080 priority 10\nsocks6s://[2001:db8::1]:1443 priority 20 alpn socks6,socks5\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("discover -6: exit %d, stdout %q, want %q; stderr %q", r.code, r.stdout, want, r.stderr)
		}
		if r := discover(t, "-6", "-iface", "c0", "-enterprise", "9", "-wait", "3s"); r.code != 1 || !strings.Contains(r.stderr, "no SOCKS gateway option") {
			t.Errorf("discover -6 -enterprise 9: exit %d, stderr %q; want 1 and no gateway option", r.code, r.stderr)
		}
	})
	t.Run("not_advertised", func(t *testing.T) {
		socks6test.Dnsmasq(t, router, "r0")
		if r := discover(t, "-wait", "10s"); r.code != 1 || !strings.Contains(r.stderr, "no SOCKS gateway option") {
			t.Errorf("discover: exit %d, stdout %q, stderr %q; want 1 and no gateway option", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("another_sites_224", func(t *testing.T) {
		// Code 224 is site-specific: this network uses it for a string.
		socks6test.Dnsmasq(t, router, "r0", "--dhcp-option=224,68:65:6c:6c:6f")
		if r := discover(t, "-wait", "10s"); r.code != 1 || !strings.Contains(r.stderr, "does not parse") {
			t.Errorf("discover: exit %d, stdout %q, stderr %q; want 1 and does not parse", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("no_server", func(t *testing.T) {
		start := time.Now()
		if r := discover(t, "-wait", "1500ms"); r.code != 1 || !strings.Contains(r.stderr, "no DHCP answer") {
			t.Errorf("discover: exit %d, stderr %q; want 1 and no DHCP answer", r.code, r.stderr)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("discover with nobody answering took %v", el)
		}
	})
	os.Remove(gwBin)
}
