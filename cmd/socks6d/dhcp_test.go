package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dnsmasqTest checks the dnsmasq lines of out with dnsmasq --test, when
// dnsmasq is there.
func dnsmasqTest(t *testing.T, out string) {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Log("no dnsmasq: its syntax check is skipped (.ci/run installs dnsmasq-base)")
		return
	}
	var conf []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "dhcp-option=") {
			conf = append(conf, l)
		}
	}
	f := filepath.Join(t.TempDir(), "dnsmasq.conf")
	if err := os.WriteFile(f, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "--test", "--conf-file="+f).CombinedOutput(); err != nil || !strings.Contains(string(b), "syntax check OK") {
		t.Errorf("dnsmasq --test on %q: %v\n%s", conf, err, b)
	}
}

// TestDHCPOption: socks6d dhcp-option prints the option bytes of the
// draft's figure for dnsmasq and ISC dhcpd, and names what is wrong in a
// bad gateway argument. (cmd/socks6's TestDiscoverDHCP hands the output
// to dnsmasq and discovers it.)
func TestDHCPOption(t *testing.T) {
	code, out := runOnce(t, "", "dhcp-option", "192.0.2.1:1080", "192.0.2.1:1443,tls,priority=20")
	const v = "00:0a:04:38:00:c0:00:02:01:00:14:05:a3:0e:06:73:6f:63:6b:73:36:06:73:6f:63:6b:73:35:c0:00:02:01"
	if code != 0 || !strings.Contains(out, "\ndhcp-option=224,"+v+"\n") || !strings.Contains(out, "\noption socks-gateway "+v+";\n") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	dnsmasqTest(t, out)
	code, out = runOnce(t, "", "dhcp-option", "-code", "250", "[2001:db8::1]:1080")
	if code != 0 || !strings.Contains(out, "dhcp-option=vi-encap:32473,option6:1,00:0a:04:38:00:20:01:0d:b8:") || strings.Contains(out, "dhcp-option=250") {
		t.Errorf("IPv6: exit %d, output:\n%s", code, out)
	}
	dnsmasqTest(t, out)
	// Over 255 bytes: ISC dhcpd splits it (RFC 3396), dnsmasq cannot.
	var many []string
	for i := range 30 {
		many = append(many, fmt.Sprintf("192.0.2.%d:1443,tls", i+1))
	}
	code, out = runOnce(t, "", append([]string{"dhcp-option"}, many...)...)
	if code != 0 || strings.Contains(out, "\ndhcp-option=224") || !strings.Contains(out, "dnsmasq: not possible") || !strings.Contains(out, "option socks-gateway 00:0a:05:a3") {
		t.Errorf("30 gateways: exit %d, output:\n%s", code, out)
	}
	for _, bad := range []struct{ arg, want string }{
		{"gw.example:1080", "ADDR:PORT"},
		{"192.0.2.1:0", "ADDR:PORT"},
		{"0.0.0.0:1080", "own address"},
		{"192.0.2.1:1080,quic", `unknown "quic"`},
		{"192.0.2.1:1080,priority=x", "0 to 65535"},
	} {
		if code, out := runOnce(t, "", "dhcp-option", bad.arg); code != 2 || !strings.Contains(out, bad.want) {
			t.Errorf("%s: exit %d, %q; want 2 and %q", bad.arg, code, out, bad.want)
		}
	}
	if code, _ := runOnce(t, "", "dhcp-option"); code != 2 {
		t.Errorf("no gateway: exit %d, want 2", code)
	}
}
