package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
)

// TestTLSGateway runs programs under socksify through a socks6d reached
// over TLS (socks6s://, the gateway's [tls] address), in the lab with
// its leak sink: curl by name, UDP (in the stream, inside TLS), a
// published python server, and a gateway whose certificate does not
// match, which must fail closed.
func TestTLSGateway(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	l := newLab(t)
	cert := socks6test.NewCert(t, "127.0.0.1")
	ca := filepath.Join(l.dir, "gw-ca.pem")
	for name, b := range map[string][]byte{"gw.crt": cert.CertPEM, "gw.key": cert.KeyPEM, "gw-ca.pem": cert.CertPEM} {
		if err := os.WriteFile(filepath.Join(l.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	g := l.startGatewayAt("127.0.0.1:0", fmt.Sprintf("\n[tls]\nlisten = [\"127.0.0.1:0\"]\ncert_file = %q\nkey_file = %q\n",
		filepath.Join(l.dir, "gw.crt"), filepath.Join(l.dir, "gw.key")))
	rec := g.wait(t, 10*time.Second, func(r map[string]any) bool { return r["msg"] == "listening" && r["tls"] == true })
	if rec == nil {
		t.Fatal("socks6d logged no TLS listener")
	}
	l.gw = g
	proxy := "socks6s://" + rec["addr"].(string)
	run := func(t *testing.T, o runOpts, extra []string, argv ...string) *proc {
		t.Helper()
		args := append([]string{socksifyBin, "-proxy", proxy, "-tls-ca", ca, "-v"}, extra...)
		p := l.start(o, append(append(args, "--"), argv...)...).wait()
		l.checkNoLeak(p.desc)
		return p
	}

	t.Run("curl_by_name", func(t *testing.T) {
		target := l.target("example.test", l.httpPort)
		p := run(t, runOpts{}, nil, curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/tls"))
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(target, "/tls"))
		l.waitSession(target)
	})
	t.Run("wrong_name", func(t *testing.T) {
		// The certificate is for 127.0.0.1: the program's connect fails,
		// and nothing goes anywhere else.
		t0 := time.Now()
		p := run(t, runOpts{}, []string{"-tls-name", "gw.example"}, curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/wrong"))
		if p.code == 0 {
			t.Fatalf("curl succeeded through a gateway whose certificate is not for gw.example:\n%s", p.stdout.String())
		}
		expectContains(t, "socksify -v", p.stderr.String(), "gw.example")
		time.Sleep(200 * time.Millisecond)
		if n := since(l.gw.sessions(l.target("example.test", l.httpPort)), t0); n != 0 {
			t.Errorf("the gateway logged %d sessions", n)
		}
	})
	t.Run("udp_in_stream", func(t *testing.T) {
		needUDP(t)
		py := needPython(t)
		t0 := time.Now()
		p := run(t, runOpts{}, nil, py, filepath.Join(testdataDir, "udpclient.py"), "assoc", "udp.test", strconv.Itoa(l.udpPort))
		expectExit(t, p, 0)
		m := regexp.MustCompile(`resolved: (\S+)`).FindStringSubmatch(p.stdout.String())
		if m == nil {
			t.Fatalf("no address resolved: %q", p.stdout.String())
		}
		expectContains(t, "udpclient", p.stdout.String(), "recvfrom: echo:unconnected-0 from "+m[1]+" "+strconv.Itoa(l.udpPort))
		if !socks6test.WaitFor(5*time.Second, func() bool { return since(udpRecords(l.gw, "stream"), t0) >= 2 }) {
			t.Errorf("the gateway logged %d stream UDP associations, want 2", since(udpRecords(l.gw, "stream"), t0))
		}
	})
	t.Run("isolate", func(t *testing.T) {
		// The strict mode's stack dials each connection with the client
		// library, TLS included; its UDP (classic UDP ASSOCIATE) is
		// refused rather than sent outside TLS.
		target := l.target("example.test", l.httpPort)
		p := run(t, runOpts{}, []string{"-isolate"}, curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/iso-tls"))
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(target, "/iso-tls"))
		l.waitSession(target)
		// Its UDP goes in the stream, inside TLS.
		needUDP(t)
		p = run(t, runOpts{}, []string{"-isolate"}, goclientBin, "udp", l.target("udp.test", l.udpPort), "tls-isolate")
		expectExit(t, p, 0)
		expectContains(t, "udp echo", p.stdout.String(), `"echo:tls-isolate"`)
	})
	t.Run("published_server", func(t *testing.T) {
		py := needPython(t)
		www := filepath.Join(l.dir, "www-tls")
		os.MkdirAll(www, 0o755)
		if err := os.WriteFile(filepath.Join(www, "hello.txt"), []byte("published over TLS\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		pt := l.freePort()
		p := l.start(runOpts{timeout: 60 * time.Second}, socksifyBin, "-proxy", proxy, "-tls-ca", ca, "-listen", strconv.Itoa(pt), "--",
			py, "-m", "http.server", strconv.Itoa(pt), "--bind", "127.0.0.1", "--directory", www)
		pub := published(t, p)
		for i := range 2 {
			c := l.plain(curl, "-sS", "--max-time", "10", "http://"+pub+"/hello.txt")
			expectExit(t, c, 0)
			expectContains(t, fmt.Sprintf("curl %d through the gateway", i), c.stdout.String(), "published over TLS")
		}
		if r := l.gw.wait(t, 5*time.Second, func(r map[string]any) bool { return r["msg"] == "session" && r["cmd"] == "take" }); r == nil {
			t.Errorf("the gateway logged no TAKE")
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.wait()
		l.checkNoLeak(p.desc)
	})
}
