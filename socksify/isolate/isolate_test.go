//go:build linux

package isolate

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/socks6/socks6/client"
)

func writeConf(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoopbackNameservers(t *testing.T) {
	p := writeConf(t, `# comment
nameserver 127.0.0.53
nameserver 192.0.2.53
nameserver ::1
nameserver 127.0.0.53
nameserver ::ffff:127.0.0.1
nameserver fe80::1%eth0
nameserver bogus
options edns0 trust-ad
search example.test
`)
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.53:53"),
		netip.MustParseAddrPort("[::1]:53"),
		netip.MustParseAddrPort("127.0.0.1:53"),
	}
	if got := loopbackNameservers(p); !slices.Equal(got, want) {
		t.Errorf("loopbackNameservers = %v, want %v", got, want)
	}
	if got := loopbackNameservers(filepath.Join(t.TempDir(), "missing")); got != nil {
		t.Errorf("missing file: %v, want none", got)
	}
}

func FuzzLoopbackNameservers(f *testing.F) {
	f.Add("nameserver 127.0.0.53\nnameserver ::1\n")
	f.Add("nameserver\nnameserver 999.1.1.1\n\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		for _, ap := range loopbackNameservers(writeConf(t, s)) {
			if !ap.Addr().IsLoopback() || ap.Port() != 53 || ap.Addr().Is4In6() {
				t.Fatalf("%v from %q", ap, s)
			}
		}
	})
}

func TestStartNeedsGateway(t *testing.T) {
	if _, err := Start(context.Background(), Config{}, "/bin/true", nil, nil); err == nil {
		t.Error("Start without a Dialer succeeded")
	}
	cfg := Config{Dialer: &client.Dialer{ProxyAddress: "127.0.0.1:1080"}, MTU: 100}
	if _, err := Start(context.Background(), cfg, "/bin/true", nil, nil); err == nil {
		t.Error("Start with MTU 100 succeeded")
	}
}
