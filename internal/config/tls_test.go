package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socks6/socks6/internal/socks6test"
)

func TestLoadTLS(t *testing.T) {
	path := writeConfig(t, "[tls]\nlisten = [\"127.0.0.1:1443\", \"[::1]:1443\"]\ncert_file = \"gw.crt\"\nkey_file = \"keys/gw.key\"\n")
	dir := filepath.Dir(path)
	cert := socks6test.NewCert(t, "127.0.0.1")
	other := socks6test.NewCert(t, "127.0.0.1")
	os.Mkdir(filepath.Join(dir, "keys"), 0o700)
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("gw.crt", cert.CertPEM)
	write("keys/gw.key", cert.KeyPEM)
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if c.TLS.CertFile != filepath.Join(dir, "gw.crt") || c.TLS.KeyFile != filepath.Join(dir, "keys/gw.key") {
		t.Errorf("TLS files %q %q, want them relative to the config file", c.TLS.CertFile, c.TLS.KeyFile)
	}
	if len(c.TLS.Listen) != 2 {
		t.Errorf("TLS.Listen = %v", c.TLS.Listen)
	}
	got, err := c.TLSCertificate()
	if err != nil || !got.Leaf.Equal(cert.TLS.Leaf) {
		t.Fatalf("TLSCertificate() = %v, %v", got, err)
	}

	// A key that does not belong to the certificate names both files.
	write("keys/gw.key", other.KeyPEM)
	_, err = Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":4: tls.key_file: ") || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Load() with another key = %v, want %s:4: tls.key_file: … does not match", err, path)
	}
	// Garbage instead of PEM.
	write("keys/gw.key", cert.KeyPEM)
	write("gw.crt", []byte("not a certificate\n"))
	if _, err = Load(path); err == nil || !strings.HasPrefix(err.Error(), path+":3: tls.cert_file: ") || !strings.Contains(err.Error(), "gw.crt") {
		t.Errorf("Load() with a garbage certificate = %v, want %s:3: tls.cert_file", err, path)
	}
}

// TestExampleTLS uncomments the example's [tls] section: with the two
// files next to it, it loads.
func TestExampleTLS(t *testing.T) {
	text, err := os.ReadFile("../../socks6d.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	for _, l := range []string{"[tls]", "listen = [\"[::]:1443\"", "cert_file = ", "key_file = "} {
		if !strings.Contains(s, "# "+l) {
			t.Fatalf("example lacks %q", "# "+l)
		}
		s = strings.Replace(s, "# "+l, l, 1)
	}
	path := writeConfig(t, s)
	cert := socks6test.NewCert(t, "gateway.example")
	os.WriteFile(filepath.Join(filepath.Dir(path), "gateway.crt"), cert.CertPEM, 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(path), "gateway.key"), cert.KeyPEM, 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(example with [tls]) = %v", err)
	}
	if len(c.TLS.Listen) != 1 {
		t.Errorf("TLS.Listen = %v", c.TLS.Listen)
	}
}
