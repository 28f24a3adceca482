package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
)

// tlsAddr returns the address of the "listening" record with tls true.
func (d *proc) tlsAddr() string {
	d.t.Helper()
	rec, _ := d.waitRecord(0, "listening", func(r record) bool { return r["tls"] == true })
	return rec.str("addr")
}

// peerLeaf opens a TLS connection to addr trusting pool and returns the
// gateway's certificate.
func peerLeaf(t *testing.T, addr string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// TestTLS runs socks6d with a [tls] section: a TLS-only gateway (no
// cleartext listen address) with users, reached by the client library
// (ALPN socks6) and by OpenSSL's s_client speaking plain SOCKS5 inside
// TLS; then the certificate is renewed with SIGHUP, and a broken one is
// refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert := socks6test.NewCert(t, "127.0.0.1")
	writeFile(t, filepath.Join(dir, "gw.crt"), string(cert.CertPEM))
	writeFile(t, filepath.Join(dir, "gw.key"), string(cert.KeyPEM))
	users := filepath.Join(dir, "users.htpasswd")
	setPassword(t, users, "alice", "a-pass")
	cfg := filepath.Join(dir, "socks6d.toml")
	writeFile(t, cfg, "listen = []\nusers_file = \"users.htpasswd\"\nlog_format = \"json\"\n"+
		"[guard]\nallow_loopback = true\n[tls]\nlisten = [\"127.0.0.1:0\"]\ncert_file = \"gw.crt\"\nkey_file = \"gw.key\"\n")
	d := start(t, "-config", cfg)
	gw, echo := d.tlsAddr(), echoServer(t)

	dl := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "a-pass", TLSConfig: cert.ClientConfig()}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := dl.DialContext(ctx, "tcp", echo)
	if err != nil {
		t.Fatalf("CONNECT over TLS: %v", err)
	}
	if !c.(*client.Conn).Extended() {
		t.Error("the extensions were not negotiated over TLS (ALPN socks6)")
	}
	roundTrip(t, c, strings.Repeat("through TLS ", 5000))
	c.Close()

	t.Run("openssl_s_client", func(t *testing.T) {
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			t.Skip("no openssl (.ci/run installs it)")
		}
		banner := bannerServer(t, "hello from the target\n")
		// Pipelined RFC 1929 and RFC 1928 inside TLS, ALPN socks5: the
		// greeting, the credentials and the CONNECT in one write.
		var in bytes.Buffer
		proto.Write(&in, proto.Greeting{Methods: []proto.Method{proto.MethodUserPass}})
		proto.Write(&in, proto.UserPassRequest{Username: "alice", Password: "a-pass"})
		proto.Write(&in, proto.Request{Command: proto.CommandConnect, Addr: proto.AddrFromAddrPort(netip.MustParseAddrPort(banner))})
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		// -ign_eof: stay until the gateway closes, after the target's
		// banner.
		cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", gw, "-alpn", "socks5",
			"-CAfile", filepath.Join(dir, "gw.crt"), "-verify_return_error", "-quiet", "-ign_eof")
		cmd.Stdin = &in
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl s_client: %v\n%s", err, stderr.String())
		}
		// Method selection (05 02), auth success (01 00), a 10-byte
		// IPv4 reply with code 0, then the banner.
		if len(out) < 14 || !bytes.Equal(out[:4], []byte{5, 2, 1, 0}) || out[4] != 5 || out[5] != 0 ||
			string(out[14:]) != "hello from the target\n" {
			t.Fatalf("s_client read % x (%q)", out, out)
		}
	})

	// A renewed certificate: SIGHUP, and new connections get it.
	renewed := socks6test.NewCert(t, "127.0.0.1")
	writeFile(t, filepath.Join(dir, "gw.crt"), string(renewed.CertPEM))
	writeFile(t, filepath.Join(dir, "gw.key"), string(renewed.KeyPEM))
	d.signal(syscall.SIGHUP)
	_, from := d.waitRecord(0, "tls certificate loaded", nil)
	if leaf := peerLeaf(t, gw, renewed.Pool); !leaf.Equal(renewed.TLS.Leaf) {
		t.Fatalf("certificate after reload: serial %v, want the renewed %v", leaf.SerialNumber, renewed.TLS.Leaf.SerialNumber)
	}

	// A broken one is refused with its file named, and the renewed one
	// stays.
	writeFile(t, filepath.Join(dir, "gw.crt"), "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
	d.signal(syscall.SIGHUP)
	rec, _ := d.waitRecord(from, "reload failed; keeping the running configuration", nil)
	if !strings.Contains(rec.str("err"), cfg+":8: tls.cert_file:") {
		t.Errorf("reload error %q, want %s:8: tls.cert_file", rec.str("err"), cfg)
	}
	if leaf := peerLeaf(t, gw, renewed.Pool); !leaf.Equal(renewed.TLS.Leaf) {
		t.Fatal("the broken certificate replaced the running one")
	}
}

// TestTLSBadConfig: a [tls] section whose certificate cannot be used
// stops socks6d at start with the file, line and problem.
func TestTLSBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "socks6d.toml")
	writeFile(t, cfg, "listen = [\"127.0.0.1:0\"]\n\n[tls]\nlisten = [\"127.0.0.1:0\"]\ncert_file = \"missing.crt\"\nkey_file = \"missing.key\"\n")
	code, out := runOnce(t, "", "-config", cfg)
	if code != 2 || !strings.Contains(out, cfg+":5: tls.cert_file: certificate: open "+filepath.Join(dir, "missing.crt")) {
		t.Errorf("exit %d, stderr %q; want 2 and %s:5: tls.cert_file", code, out, cfg)
	}
}

// bannerServer accepts on loopback and writes banner to each caller, then
// closes.
func bannerServer(t *testing.T, banner string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socks6test.Serve(t, ln, func(c net.Conn) {
		c.Write([]byte(banner))
		c.Close()
	})
	return ln.Addr().String()
}
