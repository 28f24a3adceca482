package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
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
		Settings:  server.Settings{Listen: server.ListenSettings{PublicAddrs: []netip.Addr{netip.MustParseAddr("203.0.113.1")}}},
		ListenTCP: gwNS.ListenTCP}
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

// TestNetNSListenFamilies: listeners on IPv6 and dual-stack, in a gateway
// namespace with both families; IPv4 callers of a dual-stack listener are
// reported with IPv4 addresses.
func TestNetNSListenFamilies(t *testing.T) {
	gwNS := socks6test.NewNetNS(t)
	callerNS := socks6test.NewNetNS(t)
	socks6test.Veth(t, gwNS, "v0", callerNS, "v1")
	gwNS.IP(t, "addr", "add", "203.0.113.1/24", "dev", "v0")
	gwNS.IP(t, "addr", "add", "2001:db8:5::1/64", "dev", "v0", "nodad")
	callerNS.IP(t, "addr", "add", "203.0.113.2/24", "dev", "v1")
	callerNS.IP(t, "addr", "add", "2001:db8:5::2/64", "dev", "v1", "nodad")
	s := &server.Server{HandshakeTimeout: e2eWait,
		ListenTCP: gwNS.ListenTCP}
	gw := startGateway(t, s)
	ctl, _ := extHello(t, gw, "", "")
	defer ctl.Close()

	call := func(addr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
		defer cancel()
		c, err := callerNS.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("caller dial %s: %v", addr, err)
		}
		defer c.Close()
		o := readOffer(t, ctl)
		want := netip.MustParseAddrPort(c.LocalAddr().String())
		if got := netip.AddrPortFrom(o.Caller.IP, o.Caller.Port); got != want {
			t.Errorf("offer for a call to %s: caller %v, want %v (IPv4 callers as IPv4)", addr, got, want)
		}
		extSend(t, ctl, proto.RejectOffer{Token: o.Token})
	}
	// IPv6 only.
	r := listenReq(t, ctl, 1, "[2001:db8:5::1]:0", false)
	if r.Code != proto.ReplySucceeded || !r.Addr.IP.Is6() {
		t.Fatalf("LISTEN on IPv6: %v %v", r.Code, r.Addr)
	}
	call(fmt.Sprintf("[2001:db8:5::1]:%d", r.Addr.Port))
	// Dual stack on one port: both families reach it.
	extSend(t, ctl, proto.ExtRequest{ID: 2, Command: proto.CommandListen, DualStack: true, Addr: proto.Addr{IP: netip.IPv4Unspecified()}})
	r = extReply(t, ctl, proto.CommandListen)
	if r.Code != proto.ReplySucceeded {
		t.Fatalf("dual-stack LISTEN: %v", r.Code)
	}
	call(fmt.Sprintf("203.0.113.1:%d", r.Addr.Port))
	call(fmt.Sprintf("[2001:db8:5::1]:%d", r.Addr.Port))
	// IPv4 only: an IPv6 caller finds nothing on that port.
	r = listenReq(t, ctl, 3, "0.0.0.0:0", false)
	call(fmt.Sprintf("203.0.113.1:%d", r.Addr.Port))
	ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
	defer cancel()
	if c, err := callerNS.DialContext(ctx, "tcp", fmt.Sprintf("[2001:db8:5::1]:%d", r.Addr.Port)); err == nil {
		c.Close()
		t.Error("an IPv4 listener accepted an IPv6 caller")
	}
}
