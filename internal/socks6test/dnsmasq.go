package socks6test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Dnsmasq runs dnsmasq (Debian's dnsmasq-base) as the DHCPv4 server of
// ns on dev, for the hosts of 192.0.2.0/24 (static leases only, which
// is enough to answer DHCPINFORM), with no DNS service and extra
// options, until the test ends; it skips the test without dnsmasq.
func Dnsmasq(t testing.TB, ns *NetNS, dev string, extra ...string) {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Skip("no dnsmasq (.ci/run installs dnsmasq-base)")
	}
	dir := t.TempDir()
	args := append([]string{"netns", "exec", ns.Name, bin, "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=" + dev, "--bind-interfaces", "--dhcp-range=192.0.2.0,static,255.255.255.0",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--user=root", "--log-dhcp"}, extra...)
	cmd := exec.Command("ip", args...)
	var log Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", log.String())
		}
	})
	if !WaitFor(5*time.Second, func() bool { return strings.Contains(log.String(), "static leases only") }) {
		t.Fatalf("dnsmasq did not start:\n%s", log.String())
	}
}
