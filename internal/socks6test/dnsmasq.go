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
	log := ns.Start(t, append([]string{bin, "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=" + dev, "--bind-interfaces", "--dhcp-range=192.0.2.0,static,255.255.255.0",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--user=root", "--log-dhcp"}, extra...)...)
	if !WaitFor(5*time.Second, func() bool { return strings.Contains(log.String(), "static leases only") }) {
		t.Fatalf("dnsmasq did not start:\n%s", log.String())
	}
}
