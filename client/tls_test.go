package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"golang.org/x/net/proxy"
)

// tlsGatewayFor serves s over TLS with a fresh certificate for
// 127.0.0.1 and returns its address and a client configuration that
// trusts it.
func tlsGatewayFor(t testing.TB, s *server.Server) (string, *tls.Config) {
	t.Helper()
	cert := socks6test.NewCert(t, "127.0.0.1")
	return socks6test.ServeGatewayTLS(t, s, cert.ServerConfig()), cert.ClientConfig()
}

// alpnRecorder returns cfg with a VerifyConnection hook that records the
// ALPN protocol of each handshake.
type alpnRecorder struct {
	mu  sync.Mutex
	got []string
}

func (r *alpnRecorder) config(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		r.mu.Lock()
		r.got = append(r.got, cs.NegotiatedProtocol)
		r.mu.Unlock()
		return nil
	}
	return cfg
}

func (r *alpnRecorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return "(no handshake)"
	}
	return r.got[len(r.got)-1]
}

func TestTLSDial(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	users := map[string]string{"alice": "wonderland"}
	s, _ := newGateway(t, gatewayOpts{users: users})
	gw, ccfg := tlsGatewayFor(t, s)
	echo := socks6test.EchoServer(t)

	for _, tc := range []struct {
		name     string
		ext      client.ExtMode
		alpn     string
		extended bool
	}{
		{"auto", client.ExtAuto, proto.ALPNSOCKS6, true},
		{"require", client.ExtRequire, proto.ALPNSOCKS6, true},
		{"off", client.ExtOff, proto.ALPNSOCKS5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec alpnRecorder
			d := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "wonderland",
				Extensions: tc.ext, TLSConfig: rec.config(ccfg)}
			c, err := d.DialContext(testCtx(t), "tcp", echo)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if p := rec.last(); p != tc.alpn {
				t.Errorf("ALPN %q, want %q", p, tc.alpn)
			}
			if got := c.(*client.Conn).Extended(); got != tc.extended {
				t.Errorf("Extended() = %v, want %v", got, tc.extended)
			}
			checkEcho(t, c, 100000)
		})
	}

	t.Run("x_net_proxy_over_tls", func(t *testing.T) {
		// An independent SOCKS5 client, x/net/proxy, with a TLS forward
		// dialer that offers no ALPN: RFC 1928 inside TLS.
		fw := &tls.Dialer{Config: ccfg}
		p, err := proxy.SOCKS5("tcp", gw, &proxy.Auth{User: "alice", Password: "wonderland"}, fw)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.(proxy.ContextDialer).DialContext(testCtx(t), "tcp", echo)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := strings.Repeat("x/net/proxy inside TLS ", 1000)
		go io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("echo: %d bytes, %v", len(got), err)
		}
	})

	t.Run("url", func(t *testing.T) {
		u, _ := url.Parse("socks6s://alice:wonderland@" + gw)
		pd, err := proxy.FromURL(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := pd.(*client.Dialer)
		if !ok || d.TLSConfig == nil {
			t.Fatalf("FromURL(socks6s) = %T with TLSConfig %v", pd, d.TLSConfig)
		}
		// The system's roots do not know the test certificate.
		if _, err := d.DialContext(testCtx(t), "tcp", echo); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("dial with the system's roots: %v, want a certificate error", err)
		}
		d.TLSConfig.RootCAs = ccfg.RootCAs
		c, err := d.DialContext(testCtx(t), "tcp", echo)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		checkEcho(t, c, 1000)
	})

	t.Run("wrong_name", func(t *testing.T) {
		cfg := ccfg.Clone()
		cfg.ServerName = "gateway.example"
		d := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "wonderland", TLSConfig: cfg}
		_, err := d.DialContext(testCtx(t), "tcp", echo)
		var herr x509.HostnameError
		if !errors.As(err, &herr) {
			t.Fatalf("dial: %v, want a host name mismatch", err)
		}
	})

	t.Run("bad_password", func(t *testing.T) {
		d := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "queen", TLSConfig: ccfg}
		_, err := d.DialContext(testCtx(t), "tcp", echo)
		if !errors.Is(err, client.ErrAuth) {
			t.Fatalf("dial: %v, want ErrAuth", err)
		}
	})
}

// TestTLSListen runs LISTEN on a TLS 1.3 session: every caller is taken
// on a new TLS connection with the PROOF the gateway requires.
func TestTLSListen(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	s, _ := newGateway(t, gatewayOpts{users: map[string]string{"alice": "wonderland"}})
	gw, ccfg := tlsGatewayFor(t, s)
	d := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "wonderland", TLSConfig: ccfg}
	ln, err := d.Listen(testCtx(t), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const callers = 5
	errc := make(chan error, callers)
	for range callers {
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			if _, err := io.WriteString(c, "ping"); err != nil {
				errc <- err
				return
			}
			b := make([]byte, 4)
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "pong" {
				errc <- errors.New("caller got " + string(b))
				return
			}
			errc <- nil
		}()
	}
	accepted := make(chan error, callers)
	go func() {
		for range callers {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			b := make([]byte, 4)
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
				accepted <- errors.New("taken caller sent " + string(b))
				c.Close()
				return
			}
			io.WriteString(c, "pong")
			c.Close()
		}
	}()
	// A caller whose TAKE the gateway refuses is reset, so its error
	// ends the test before Accept would wait for ever.
	timeout := time.After(testWait)
	for range callers {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("caller: %v", err)
			}
		case err := <-accepted:
			t.Fatalf("accept over TLS: %v", err)
		case <-timeout:
			t.Fatal("callers not served")
		}
	}
}

// BenchmarkDial measures CONNECTs through the gateway on loopback, each
// a new connection closed after the reply, in cleartext and over TLS
// (a full TLS 1.3 handshake each, ECDSA P-256 and X25519, or a resumed
// one with a session cache).
func BenchmarkDial(b *testing.B) {
	s, plainGW := newGateway(b, gatewayOpts{})
	tlsGW, ccfg := tlsGatewayFor(b, s)
	target := socks6test.EchoServer(b)
	resuming := ccfg.Clone()
	resuming.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	for _, bc := range []struct {
		name string
		d    *client.Dialer
	}{
		{"cleartext", &client.Dialer{ProxyAddress: plainGW}},
		{"tls", &client.Dialer{ProxyAddress: tlsGW, TLSConfig: ccfg}},
		{"tls_resumed", &client.Dialer{ProxyAddress: tlsGW, TLSConfig: resuming}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := testCtx(b)
			for b.Loop() {
				c, err := bc.d.DialContext(ctx, "tcp", target)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
		})
	}
}

// BenchmarkBulk measures one stream's throughput through the gateway to
// a sink on loopback, in cleartext and over TLS (AES-GCM or ChaCha20 as
// the CPU prefers).
func BenchmarkBulk(b *testing.B) {
	s, plainGW := newGateway(b, gatewayOpts{})
	tlsGW, ccfg := tlsGatewayFor(b, s)
	ln := socks6test.Listen(b)
	socks6test.Serve(b, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(io.Discard, c)
	})
	for _, bc := range []struct {
		name string
		d    *client.Dialer
	}{
		{"cleartext", &client.Dialer{ProxyAddress: plainGW}},
		{"tls", &client.Dialer{ProxyAddress: tlsGW, TLSConfig: ccfg}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := bc.d.DialContext(testCtx(b), "tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestTLSRequireDowngrade: with ExtRequire, a TLS gateway that speaks
// only plain SOCKS5 inside TLS (ALPN socks5) is a downgrade, reported as
// such, as in cleartext.
func TestTLSRequireDowngrade(t *testing.T) {
	s, _ := newGateway(t, gatewayOpts{plain: true})
	gw, ccfg := tlsGatewayFor(t, s)
	var rec alpnRecorder
	d := &client.Dialer{ProxyAddress: gw, Extensions: client.ExtRequire, TLSConfig: rec.config(ccfg)}
	_, err := d.DialContext(testCtx(t), "tcp", socks6test.EchoServer(t))
	if !errors.Is(err, client.ErrDowngrade) {
		t.Fatalf("dial: %v, want ErrDowngrade", err)
	}
	if p := rec.last(); p != proto.ALPNSOCKS5 {
		t.Errorf("ALPN %q, want socks5 (offered after socks6)", p)
	}
}

// TestTLSGetConfigForClient: a server configuration that picks its
// config per client still selects ALPN socks6.
func TestTLSGetConfigForClient(t *testing.T) {
	s, _ := newGateway(t, gatewayOpts{})
	cert := socks6test.NewCert(t, "127.0.0.1")
	inner := cert.ServerConfig()
	outer := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return inner, nil }}
	gw := socks6test.ServeGatewayTLS(t, s, outer)
	var rec alpnRecorder
	d := &client.Dialer{ProxyAddress: gw, TLSConfig: rec.config(cert.ClientConfig())}
	c, err := d.DialContext(testCtx(t), "tcp", socks6test.EchoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if p := rec.last(); p != proto.ALPNSOCKS6 {
		t.Errorf("ALPN %q, want socks6", p)
	}
}
