package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socks6/socks6/internal/socks6test"
)

// tlsGateway serves a test gateway over TLS with a certificate for
// 127.0.0.1, and returns its address and the certificate's PEM file.
func tlsGateway(t *testing.T, o gatewayOpts) (gw, caFile string) {
	t.Helper()
	s, _ := newGatewayServer(t, o)
	cert := socks6test.NewCert(t, "127.0.0.1")
	caFile = filepath.Join(t.TempDir(), "gw.pem")
	if err := os.WriteFile(caFile, cert.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return socks6test.ServeGatewayTLS(t, s, cert.ServerConfig()), caFile
}

func TestTLS(t *testing.T) {
	users := map[string]string{"alice": "wonderland"}
	gw, ca := tlsGateway(t, gatewayOpts{users: users})
	pw := map[string]string{"SOCKS6_PASSWORD": "wonderland"}
	echo := socks6test.EchoServer(t)

	t.Run("connect", func(t *testing.T) {
		for _, ext := range []string{"require", "off"} {
			in := "over TLS\n"
			r := runIn(t, strings.NewReader(in), pw, "-proxy", gw, "-user", "alice", "-tls-ca", ca, "-ext", ext, "connect", echo)
			if r.code != 0 || r.stdout != in {
				t.Errorf("-ext %s: exit %d, stdout %q; stderr:\n%s", ext, r.code, r.stdout, r.stderr)
			}
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		r := runIn(t, strings.NewReader("x"), pw, "-proxy", gw, "-user", "alice", "-tls", "connect", echo)
		if r.code == 0 || !strings.Contains(r.stderr, "certificate") {
			t.Errorf("system roots: exit %d, stderr %q; want a certificate error", r.code, r.stderr)
		}
		r = runIn(t, strings.NewReader("x"), pw, "-proxy", gw, "-user", "alice", "-tls-ca", ca, "-tls-name", "gw.example", "connect", echo)
		if r.code == 0 || !strings.Contains(r.stderr, "gw.example") {
			t.Errorf("-tls-name gw.example: exit %d, stderr %q; want a name mismatch", r.code, r.stderr)
		}
	})
	t.Run("bad_ca_file", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "empty.pem")
		os.WriteFile(bad, []byte("nothing here\n"), 0o600)
		r := runIn(t, nil, pw, "-proxy", gw, "-tls-ca", bad, "connect", echo)
		if r.code != exitUsage || !strings.Contains(r.stderr, "-tls-ca "+bad+": no PEM certificate") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("listen", func(t *testing.T) {
		// Each caller is taken over TLS 1.3 with the session's PROOF,
		// which the gateway requires of a TLS session's listeners.
		gw, ca := tlsGateway(t, gatewayOpts{})
		const body = "published over TLS\n"
		web := webServer(t, body)
		p := startListen(t, gw, "-tls-ca", ca, "-to", web)
		for i := range 3 {
			if got, err := fetch(p.addr); err != nil || got != body {
				t.Fatalf("fetch %d: %q, %v; want %q", i, got, err, body)
			}
		}
	})
}
