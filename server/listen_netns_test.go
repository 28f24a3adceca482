package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/server"
)

// TestNetNSListenCurl publishes a local HTTP server through the gateway
// with client.Listen and fetches it with curl from another host:
//
//	caller (203.0.113.2) ──veth── gw (203.0.113.1): the gateway's LISTEN sockets
//
// The gateway process and the publishing client run in the test's own
// namespace and talk over loopback; only the listening sockets live in gw,
// so the caller can reach nothing but them.
func TestNetNSListenCurl(t *testing.T) {
	gwNS := socks6test.NewNetNS(t)
	callerNS := socks6test.NewNetNS(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("this test runs curl as the caller, which is not installed: apt-get install curl")
	}
	socks6test.Veth(t, gwNS, "v0", callerNS, "v1")
	gwNS.IP(t, "addr", "add", "203.0.113.1/24", "dev", "v0")
	callerNS.IP(t, "addr", "add", "203.0.113.2/24", "dev", "v1")

	audit := e2eNewAudit()
	s := &server.Server{HandshakeTimeout: e2eWait, Logger: audit.logger(),
		Settings: server.Settings{Listen: server.ListenSettings{PublicAddrs: []netip.Addr{netip.MustParseAddr("203.0.113.1")}}},
		ListenTCP: func(ctx context.Context, network, addr string) (net.Listener, error) {
			var ln net.Listener
			var lerr error
			if err := gwNS.Do(func() { ln, lerr = net.Listen(network, addr) }); err != nil {
				return nil, err
			}
			return ln, lerr
		}}
	gw := startGateway(t, s)

	d := &client.Dialer{ProxyAddress: gw, Extensions: client.ExtRequire}
	ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
	defer cancel()
	ln, err := d.Listen(ctx, "tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatalf("Listen through the gateway: %v", err)
	}
	defer ln.Close()
	pubs := ln.PublicAddrs()
	if len(pubs) == 0 || pubs[0].Addr() != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("public addresses %v, want 203.0.113.1:port", pubs)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "published through the gateway; you are %s\n", r.RemoteAddr)
	}), ReadHeaderTimeout: e2eWait}
	go srv.Serve(ln)
	defer srv.Close()

	url := fmt.Sprintf("http://%s/", pubs[0])
	for i := range 3 { // a few fetches: each caller is a new offer
		start := time.Now()
		out, err := exec.Command("ip", "netns", "exec", callerNS.Name, "curl", "-sS", "--max-time", "10", url).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s from %s: %v: %s", url, callerNS.Name, err, out)
		}
		if !strings.Contains(string(out), "you are 203.0.113.2:") {
			t.Fatalf("fetch %d: %q, want the caller's address 203.0.113.2", i, out)
		}
		t.Logf("curl from 203.0.113.2 → %s: %q in %v", url, strings.TrimSpace(string(out)), time.Since(start).Round(time.Millisecond))
	}
	st := ln.Stats()
	if st.Taken < 3 {
		t.Errorf("listener stats %+v, want 3 taken", st)
	}
}
