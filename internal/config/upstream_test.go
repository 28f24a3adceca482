package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socks6/socks6/internal/socks6test"
)

func TestLoadUpstreams(t *testing.T) {
	path := writeConfig(t, `[[upstream]]
name = "office"
proxy = "socks6s://branch1:secret@127.0.0.1:1443"
tls_ca = "office-ca.pem"
tls_name = "gw.office.example"
nets = ["10.20.0.0/16"]
domains = ["office.example"]

[[upstream]]
proxy = "socks5://192.0.2.1:1080"
default = true
`)
	cert := socks6test.NewCert(t, "gw.office.example")
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "office-ca.pem"), cert.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	st, err := c.Settings()
	if err != nil {
		t.Fatalf("Settings() = %v", err)
	}
	if len(st.Upstreams) != 2 {
		t.Fatalf("Upstreams = %+v", st.Upstreams)
	}
	o, d := st.Upstreams[0], st.Upstreams[1]
	switch {
	case o.Name != "office", o.Dialer.ProxyAddress != "127.0.0.1:1443", o.Dialer.Username != "branch1", o.Dialer.Password != "secret",
		o.Dialer.TLSConfig == nil, o.Dialer.TLSConfig.RootCAs == nil, o.Dialer.TLSConfig.ServerName != "gw.office.example",
		len(o.Nets) != 1 || o.Nets[0] != netip.MustParsePrefix("10.20.0.0/16"), len(o.Domains) != 1 || o.Domains[0] != "office.example", o.Default:
		t.Errorf("office upstream %+v, dialer %+v", o, o.Dialer)
	}
	if d.Name != "192.0.2.1:1080" || !d.Default || d.Dialer.TLSConfig != nil || strings.Contains(d.Name, "@") {
		t.Errorf("default upstream %+v", d)
	}
}

// TestUpstreamNotSelf: another gateway on this host, on another loopback
// address or family, is a fine upstream; the words of a bad URL never
// carry its password.
func TestUpstreamNotSelf(t *testing.T) {
	for _, proxy := range []string{"socks6://[::1]:1080", "socks6://127.0.0.2:1080", "socks6://127.0.0.1:1081"} {
		path := writeConfig(t, "listen = [\"127.0.0.1:1080\"]\n[[upstream]]\ndefault = true\nproxy = \""+proxy+"\"\n")
		if _, err := Load(path); err != nil {
			t.Errorf("%s: %v", proxy, err)
		}
	}
	for _, secret := range []string{"s3cr/etXq", "hunt#er9Z", "abZ%zzcdQ", "pQ9?wZz"} {
		path := writeConfig(t, "[[upstream]]\ndefault = true\nproxy = \"socks6://user:"+secret+"@gw.example:1080\"\n")
		_, err := Load(path)
		if err == nil {
			t.Errorf("password %q: accepted", secret)
			continue
		}
		for _, part := range strings.FieldsFunc(secret, func(r rune) bool { return strings.ContainsRune("/#%?", r) }) {
			if strings.Contains(err.Error(), part) {
				t.Errorf("password %q: the error shows %q: %v", secret, part, err)
			}
		}
	}
}
