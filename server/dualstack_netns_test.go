package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/resolver"
	"golang.org/x/net/proxy"
)

// Dual stack at the gateway, with real hosts: every host is a network
// namespace, the gateway's resolver asks a real DNS server over real
// sockets, and the gateway dials from inside its own namespace.
//
//	c4 (192.0.2.2, IPv6 disabled) ──┐                ┌── s4 (198.51.100.2, IPv4 only)
//	                                ├── gw ──────────┤
//	c6 (2001:db8:c6::2, no IPv4) ───┘   │            └── s6 (2001:db8:56::2, IPv6 only)
//	                                    │
//	         DNS server on 2001:db8:53::53 (lo)      drop (203.0.113.2, 2001:db8:d0::2,
//	         inside gw                                forwarding off: a silent blackhole)
//
// The gateway (an in-process server.Server) listens twice: inside gw, for
// the real clients (curl) that run in c4 and c6, and on the test's own
// loopback, for the framed clients this file writes by hand; it dials
// every target and every DNS upstream from inside gw.

// Addresses of the topology.
const (
	dsDNS      = "[2001:db8:53::53]:53"   // the DNS server, on gw's loopback interface
	dsDNSDead  = "[2001:db8:53::54]:53"   // on gw's loopback interface too; nothing listens
	dsDNSQuiet = "203.0.113.153:53"       // routed to drop, which says nothing
	dsBlackV6  = "2001:db8:dead::80"      // routed to drop: SYNs vanish
	dsS4       = "198.51.100.2"           // s4
	dsS6       = "2001:db8:56::2"         // s6
	dsNAT64Srv = "2001:db8:64::c633:6402" // 198.51.100.2 in 2001:db8:64::/96
)

// dsNet is one test's network: the gateway namespace with its DNS server,
// and whichever hosts the test added.
type dsNet struct {
	gw, c4, c6, s4, s6, drop *socks6test.NetNS
	dns                      *socks6test.DNSServer
	self                     []netip.Addr // gw's addresses, for Guard.Self
}

// dsNewNet creates gw and its DNS server. ipv4 false leaves gw without
// IPv4 except 127.0.0.1 on lo (the NAT64 test); the hosts added later
// bring their links.
func dsNewNet(t *testing.T) *dsNet {
	t.Helper()
	n := &dsNet{gw: socks6test.NewNetNS(t)}
	// No dummy interfaces here (the kernel may lack the module): the DNS
	// addresses live on lo, which takes any address.
	n.gw.IP(t, "addr", "add", "2001:db8:53::53/128", "dev", "lo", "nodad")
	n.gw.IP(t, "addr", "add", "2001:db8:53::54/128", "dev", "lo", "nodad")
	var pc net.PacketConn
	var ln net.Listener
	var perr, lerr error
	if err := n.gw.Do(func() {
		pc, perr = net.ListenPacket("udp", dsDNS)
		if perr == nil {
			ln, lerr = net.Listen("tcp", dsDNS)
		}
	}); err != nil {
		t.Fatalf("enter %s: %v", n.gw.Name, err)
	}
	if perr != nil || lerr != nil {
		t.Fatalf("DNS server sockets in %s: %v %v", n.gw.Name, perr, lerr)
	}
	n.dns = socks6test.NewDNSServerOn(t, pc, ln)
	return n
}

// link connects gw to a new host h with a veth pair ("h<name>" in gw,
// "eth0" in h) and gives both ends the addresses: gwAddrs in gw, hAddrs in
// h (CIDR notation; IPv6 ones without DAD, usable at once).
func (n *dsNet) link(t *testing.T, h *socks6test.NetNS, name string, gwAddrs, hAddrs []string) {
	t.Helper()
	socks6test.Veth(t, n.gw, "h"+name, h, "eth0")
	add := func(ns *socks6test.NetNS, dev, a string) {
		args := []string{"addr", "add", a, "dev", dev}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		ns.IP(t, args...)
	}
	for _, a := range gwAddrs {
		add(n.gw, "h"+name, a)
		n.self = append(n.self, netip.MustParsePrefix(a).Addr())
	}
	for _, a := range hAddrs {
		add(h, "eth0", a)
	}
}

// addC4 adds the IPv4-only client c4: 192.0.2.2/24, gw at 192.0.2.1, IPv6
// disabled before its interface arrives.
func (n *dsNet) addC4(t *testing.T) {
	t.Helper()
	n.c4 = socks6test.NewNetNS(t)
	n.c4.Sysctl(t, "net/ipv6/conf/default/disable_ipv6", "1")
	n.c4.Sysctl(t, "net/ipv6/conf/all/disable_ipv6", "1")
	n.link(t, n.c4, "c4", []string{"192.0.2.1/24"}, []string{"192.0.2.2/24"})
	var v []byte
	var err error
	n.c4.Do(func() { v, err = os.ReadFile("/proc/sys/net/ipv6/conf/eth0/disable_ipv6") })
	if err != nil || strings.TrimSpace(string(v)) != "1" {
		t.Fatalf("c4 eth0 disable_ipv6 = %q (%v), want 1", v, err)
	}
}

// addC6 adds the IPv6-only client c6: 2001:db8:c6::2/64, gw at ::1.
func (n *dsNet) addC6(t *testing.T) {
	t.Helper()
	n.c6 = socks6test.NewNetNS(t)
	n.link(t, n.c6, "c6", []string{"2001:db8:c6::1/64"}, []string{"2001:db8:c6::2/64"})
}

// addS4 adds the IPv4-only server s4 (198.51.100.2/24) with a web server
// on port 80.
func (n *dsNet) addS4(t *testing.T) {
	t.Helper()
	n.s4 = socks6test.NewNetNS(t)
	n.link(t, n.s4, "s4", []string{"198.51.100.1/24"}, []string{dsS4 + "/24"})
	dsWebServer(t, n.s4, net.JoinHostPort(dsS4, "80"), "s4 over IPv4")
}

// addS6 adds the IPv6-only server s6 (2001:db8:56::2/64, no IPv4 address)
// with a web server on port 80.
func (n *dsNet) addS6(t *testing.T) {
	t.Helper()
	n.s6 = socks6test.NewNetNS(t)
	n.link(t, n.s6, "s6", []string{"2001:db8:56::1/64"}, []string{dsS6 + "/64"})
	dsWebServer(t, n.s6, net.JoinHostPort(dsS6, "80"), "s6 over IPv6")
}

// addDrop adds the blackhole: gw routes 203.0.113.128/25 and
// 2001:db8:dead::/48 to drop, which has forwarding off and so discards
// what is not addressed to it without a word (no ICMP): a SYN or a DNS
// query sent there is never answered, and connect() hangs until its
// deadline.
//
// Not "ip route add blackhole": the kernel refuses to send on a blackhole
// route, so connect() fails at once with EINVAL instead of hanging (checked
// below), which is no test of the attempt delay.
func (n *dsNet) addDrop(t *testing.T) {
	t.Helper()
	n.drop = socks6test.NewNetNS(t)
	n.link(t, n.drop, "dr", []string{"203.0.113.1/30", "2001:db8:d0::1/64"}, []string{"203.0.113.2/30", "2001:db8:d0::2/64"})
	n.gw.IP(t, "route", "add", "203.0.113.128/25", "via", "203.0.113.2")
	n.gw.IP(t, "-6", "route", "add", "2001:db8:dead::/48", "via", "2001:db8:d0::2")
	// With a route back, drop takes the forwarding path for these packets
	// (no "no route" ICMP error), and forwarding off discards them there.
	n.drop.IP(t, "route", "add", "default", "via", "203.0.113.1")
	n.drop.IP(t, "-6", "route", "add", "default", "via", "2001:db8:d0::1")
	n.drop.Sysctl(t, "net/ipv4/ip_forward", "0")
	n.drop.Sysctl(t, "net/ipv6/conf/all/forwarding", "0")

	// The blackhole really holds a connect() until its deadline, where a
	// "blackhole" route fails at once.
	n.gw.IP(t, "-6", "route", "add", "blackhole", "2001:db8:bad::/48")
	for _, tc := range []struct {
		addr string
		hang bool
	}{{"[" + dsBlackV6 + "]:80", true}, {"[2001:db8:bad::80]:80", false}} {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		start := time.Now()
		c, err := n.gw.DialContext(ctx, "tcp", tc.addr)
		el := time.Since(start)
		cancel()
		if c != nil {
			c.Close()
		}
		if hung := err != nil && el >= 250*time.Millisecond; hung != tc.hang {
			t.Fatalf("connect to %s from gw: %v after %v; want hang=%v", tc.addr, err, el, tc.hang)
		}
		t.Logf("connect to %s: %v after %v", tc.addr, err, el.Round(time.Millisecond))
	}
}

// dsWebServer serves HTTP on addr inside ns until the test ends. The body
// names the server and the peer it saw.
func dsWebServer(t *testing.T, ns *socks6test.NetNS, addr, who string) {
	t.Helper()
	ln := ns.Listen(t, "tcp", addr)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s; you are %s\n", who, r.RemoteAddr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// dsGateway is one gateway in gw.
type dsGateway struct {
	s     *server.Server
	r     *resolver.Resolver
	addr  string // the listener on the test's loopback
	port  string // the port of the listener inside gw, on every address
	audit *dsAudit
}

// startGateway starts a gateway whose resolver asks servers (dsDNS if
// none) from inside gw. tune may change the server and resolver settings
// before they are used.
func (n *dsNet) startGateway(t *testing.T, servers []string, tune func(*server.Server, *resolver.Config)) *dsGateway {
	t.Helper()
	if servers == nil {
		servers = []string{dsDNS}
	}
	rc := filepath.Join(t.TempDir(), "resolv.conf") // no search list, ndots 1
	if err := os.WriteFile(rc, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := resolver.Config{
		Servers:    servers,
		ResolvConf: rc,
		HostsFile:  "-",
		Dial:       n.gw.DialContext,
	}
	audit := &dsAudit{t: t}
	self := slices.Clone(n.self)
	s := &server.Server{
		Dial:             n.gw.DialContext,
		HandshakeTimeout: e2eWait,
		Logger:           audit.logger(),
		Settings: server.Settings{Guard: server.Guard{Self: func() []netip.Addr {
			return self
		}}},
	}
	if tune != nil {
		tune(s, &cfg)
	}
	r, err := resolver.New(cfg)
	if err != nil {
		t.Fatalf("resolver.New: %v", err)
	}
	s.Resolver = r
	inside := n.gw.Listen(t, "tcp", ":0")
	outside := socks6test.Listen(t)
	done := make(chan error, 2)
	go func() { done <- s.Serve(inside) }()
	go func() { done <- s.Serve(outside) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
		<-done
		r.Close()
		if t.Failed() {
			lines := strings.SplitAfter(audit.text(), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("gateway log (the end):\n%s", strings.Join(lines, ""))
		}
	})
	_, port, _ := net.SplitHostPort(inside.Addr().String())
	return &dsGateway{s: s, r: r, addr: outside.Addr().String(), port: port, audit: audit}
}

// dsAudit collects the gateway's log records as JSON objects.
type dsAudit struct {
	t *testing.T
	socks6test.Buffer
}

func (a *dsAudit) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(a, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (a *dsAudit) text() string { return a.String() }

// records returns the records with message msg so far.
func (a *dsAudit) records(msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(a.text()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			a.t.Errorf("log line %q: %v", line, err)
			continue
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// wait waits for a record with message msg for which match holds.
func (a *dsAudit) wait(t *testing.T, msg string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	socks6test.WaitFor(e2eWait, func() bool {
		for _, r := range a.records(msg) {
			if match(r) {
				got = r
				return true
			}
		}
		return false
	})
	if got == nil {
		t.Fatalf("no %q record matched; log:\n%s", msg, a.text())
	}
	return got
}

// dsTarget matches records whose target is target.
func dsTarget(target string) func(map[string]any) bool {
	return func(r map[string]any) bool { return r["target"] == target }
}

// dsClientIP returns the client address of a record, unmapped.
func dsClientIP(r map[string]any) string {
	ap, err := netip.ParseAddrPort(fmt.Sprint(r["client"]))
	if err != nil {
		return fmt.Sprint(r["client"])
	}
	return ap.Addr().Unmap().String()
}

// dsCurl runs curl in ns through the gateway at proxyAddr and returns
// what it printed. It skips the test when curl is missing.
func dsCurl(t *testing.T, ns *socks6test.NetNS, proxyAddr, url string) string {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("this test runs a real client, curl, which is not installed: apt-get install curl")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name,
		curl, "-sS", "--max-time", "10", "--socks5-hostname", proxyAddr, url)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no *_proxy from the environment
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ip netns exec %s curl --socks5-hostname %s %s: %v\n%s", ns.Name, proxyAddr, url, err, stderr.Bytes())
	}
	t.Logf("curl in %s via %s: %q in %v", ns.Name, proxyAddr, out, time.Since(start).Round(time.Millisecond))
	return string(out)
}

// dsConnect opens a framed CONNECT to target (with a FAMILY option unless
// fam is nil) and returns the connection, the REPLY and how long the
// REPLY took after the REQUEST was sent.
func dsConnect(t *testing.T, gw string, target proto.Addr, fam *proto.Family) (net.Conn, proto.ExtReply, time.Duration) {
	t.Helper()
	c, ack := extHello(t, gw, "", "")
	if ack.Status != proto.HelloOK {
		t.Fatalf("HELLO_ACK status %v", ack.Status)
	}
	req := proto.ExtRequest{ID: 1, Command: proto.CommandConnect, Addr: target}
	if fam != nil {
		req.Options = proto.Options{proto.FamilyOption(*fam)}
	}
	start := time.Now()
	extSend(t, c, req)
	r := extReply(t, c, proto.CommandConnect)
	return c, r, time.Since(start)
}

// dsConnected returns the CONNECTED option of r as a string.
func dsConnected(r proto.ExtReply) string {
	a, ok := r.Options.Connected()
	if !ok {
		return "(none)"
	}
	return a.String()
}

// dsGET sends an HTTP request for host over the tunnel c and returns the
// body.
func dsGET(t *testing.T, c net.Conn, host string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(e2eWait))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("HTTP through the tunnel: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTP through the tunnel: %v %q %v", resp.Status, b, err)
	}
	return string(b)
}

// dsFam returns a pointer to f, for dsConnect.
func dsFam(f proto.Family) *proto.Family { return &f }

// TestNetNSIPv4ClientReachesIPv6OnlyServer: curl on an IPv4-only host
// fetches a page that only an IPv6-only host serves, naming it through the
// gateway, which resolves the name and connects over IPv6.
func TestNetNSIPv4ClientReachesIPv6OnlyServer(t *testing.T) {
	n := dsNewNet(t)
	n.addC4(t)
	n.addS6(t)
	n.dns.SetAAAA("v6only.test", 60, dsS6)
	n.dns.SetA("v6only.test", 60) // exists, no A record
	g := n.startGateway(t, nil, nil)

	body := dsCurl(t, n.c4, "192.0.2.1:"+g.port, "http://v6only.test/")
	if want := "hello from s6 over IPv6; you are [2001:db8:56::1]:"; !strings.HasPrefix(body, want) {
		t.Errorf("body %q, want %q…", body, want)
	}
	rec := g.audit.wait(t, "session", dsTarget("v6only.test:80"))
	// The listener inside gw is dual-stack, so the client may be logged
	// in its IPv4-mapped form ([::ffff:192.0.2.2]:port).
	if rec["cmd"] != "connect" || rec["connected"] != "[2001:db8:56::2]:80" || rec["reply"] != proto.ReplySucceeded.String() ||
		dsClientIP(rec) != "192.0.2.2" {
		t.Errorf("audit record %v, want cmd connect from 192.0.2.2 connected=[2001:db8:56::2]:80", rec)
	}
}

// TestNetNSIPv6ClientReachesIPv4OnlyServer is the reverse: curl on an
// IPv6-only host reaches an IPv4-only server by name.
func TestNetNSIPv6ClientReachesIPv4OnlyServer(t *testing.T) {
	n := dsNewNet(t)
	n.addC6(t)
	n.addS4(t)
	n.dns.SetA("v4only.test", 60, dsS4)
	n.dns.SetAAAA("v4only.test", 60)
	g := n.startGateway(t, nil, nil)

	body := dsCurl(t, n.c6, "[2001:db8:c6::1]:"+g.port, "http://v4only.test/")
	if want := "hello from s4 over IPv4; you are 198.51.100.1:"; !strings.HasPrefix(body, want) {
		t.Errorf("body %q, want %q…", body, want)
	}
	rec := g.audit.wait(t, "session", dsTarget("v4only.test:80"))
	if rec["cmd"] != "connect" || rec["connected"] != "198.51.100.2:80" || rec["reply"] != proto.ReplySucceeded.String() ||
		dsClientIP(rec) != "2001:db8:c6::2" {
		t.Errorf("audit record %v, want cmd connect from [2001:db8:c6::2] connected=198.51.100.2:80", rec)
	}
}

// dsSNMP6 returns a counter of /proc/net/snmp6 as ns sees it.
func dsSNMP6(t *testing.T, ns *socks6test.NetNS, name string) int {
	t.Helper()
	var b []byte
	var err error
	ns.Do(func() { b, err = os.ReadFile("/proc/thread-self/net/snmp6") })
	if err != nil {
		t.Fatalf("snmp6 in %s: %v", ns.Name, err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	t.Fatalf("no %s in snmp6", name)
	return 0
}

// TestNetNSHappyEyeballsBlackhole: dual.test's IPv6 address is a
// blackhole. The gateway tries it first, starts IPv4 after the 250 ms
// attempt delay, and IPv4 wins.
func TestNetNSHappyEyeballsBlackhole(t *testing.T) {
	n := dsNewNet(t)
	n.addS4(t)
	n.addDrop(t)
	n.dns.SetAAAA("dual.test", 60, dsBlackV6)
	n.dns.SetA("dual.test", 60, dsS4)
	g := n.startGateway(t, nil, func(s *server.Server, _ *resolver.Config) { s.DialTimeout = time.Second })
	target := proto.Addr{FQDN: "dual.test", Port: 80}
	const wantConnected = "198.51.100.2:80"

	t.Run("framed", func(t *testing.T) {
		dropped := dsSNMP6(t, n.drop, "Ip6InAddrErrors")
		c, r, el := dsConnect(t, g.addr, target, nil)
		t.Logf("CONNECT dual.test (no FAMILY): %v after %v, CONNECTED %s", r.Code, el.Round(time.Millisecond), dsConnected(r))
		if r.Code != proto.ReplySucceeded || dsConnected(r) != wantConnected {
			t.Fatalf("reply %v, CONNECTED %s; want success over IPv4 (%s)", r.Code, dsConnected(r), wantConnected)
		}
		if el < 200*time.Millisecond || el >= time.Second {
			t.Errorf("connected after %v, want 250 ms attempt delay + RTT (200 ms to 1 s)", el)
		}
		if d := dsSNMP6(t, n.drop, "Ip6InAddrErrors") - dropped; d < 1 {
			t.Errorf("the blackhole dropped %d IPv6 packets: the IPv6 attempt never left", d)
		}
		if body := dsGET(t, c, "dual.test"); !strings.HasPrefix(body, "hello from s4") {
			t.Errorf("body %q", body)
		}
	})

	t.Run("plain SOCKS5", func(t *testing.T) {
		d, err := proxy.SOCKS5("tcp", g.addr, nil, proxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
		defer cancel()
		start := time.Now()
		c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", "dual.test:80")
		el := time.Since(start)
		if err != nil {
			t.Fatalf("x/net/proxy SOCKS5 dial dual.test:80: %v", err)
		}
		defer c.Close()
		t.Logf("plain SOCKS5 CONNECT dual.test: connected after %v", el.Round(time.Millisecond))
		if el < 200*time.Millisecond || el >= time.Second {
			t.Errorf("connected after %v, want 250 ms attempt delay + RTT (200 ms to 1 s)", el)
		}
		if body := dsGET(t, c, "dual.test"); !strings.HasPrefix(body, "hello from s4") {
			t.Errorf("body %q", body)
		}
		client := c.LocalAddr().String()
		c.Close()
		rec := g.audit.wait(t, "session", func(r map[string]any) bool {
			return r["target"] == "dual.test:80" && r["client"] == client
		})
		if rec["connected"] != wantConnected {
			t.Errorf("audit record %v, want connected=%s", rec, wantConnected)
		}
	})

	t.Run("IPv6 only", func(t *testing.T) {
		_, r, el := dsConnect(t, g.addr, target, dsFam(proto.FamilyIPv6Only))
		d, _ := r.Options.Diagnostic()
		t.Logf("CONNECT dual.test FAMILY=ipv6-only: %v (%q) after %v", r.Code, d, el.Round(time.Millisecond))
		if r.Code != proto.ReplyTimeout {
			t.Errorf("reply %v (%#x), want Timeout (0xE8)", r.Code, uint8(r.Code))
		}
		if el < 900*time.Millisecond || el > 3*time.Second {
			t.Errorf("failed after %v, want at DialTimeout (1 s)", el)
		}
	})

	t.Run("prefer IPv4", func(t *testing.T) {
		c, r, el := dsConnect(t, g.addr, target, dsFam(proto.FamilyPreferIPv4))
		t.Logf("CONNECT dual.test FAMILY=prefer-ipv4: %v after %v, CONNECTED %s", r.Code, el.Round(time.Millisecond), dsConnected(r))
		if r.Code != proto.ReplySucceeded || dsConnected(r) != wantConnected {
			t.Fatalf("reply %v, CONNECTED %s; want success over IPv4", r.Code, dsConnected(r))
		}
		if el >= 200*time.Millisecond {
			t.Errorf("connected after %v, want at once (< 200 ms): IPv4 goes first", el)
		}
		if body := dsGET(t, c, "dual.test"); !strings.HasPrefix(body, "hello from s4") {
			t.Errorf("body %q", body)
		}
	})
}

// TestNetNSResolverFailures: NXDOMAIN, SERVFAIL and upstreams that refuse
// or never answer, for CONNECT (framed and plain) and RESOLVE.
func TestNetNSResolverFailures(t *testing.T) {
	n := dsNewNet(t)
	n.addS4(t)
	n.addDrop(t)
	n.dns.SetRcode("servfail.test", dns.RcodeServerFailure)
	good := n.startGateway(t, nil, nil)
	// Nothing listens on the second DNS address: each query gets an ICMP
	// port unreachable, so the upstream fails fast ("connection refused").
	refused := n.startGateway(t, []string{dsDNSDead}, nil)
	// The third upstream is in the blackhole: the query is never answered.
	quiet := n.startGateway(t, []string{dsDNSQuiet}, func(s *server.Server, c *resolver.Config) {
		c.Timeout, c.Attempts = 1500*time.Millisecond, 1
	})

	// The upstream addresses must not reach the client.
	internal := []string{"2001:db8:53:", "203.0.113."}
	checkDiag := func(t *testing.T, what string, r proto.ExtReply) string {
		t.Helper()
		d, ok := r.Options.Diagnostic()
		if !ok || d == "" {
			t.Errorf("%s: no DIAGNOSTIC", what)
		}
		for _, a := range internal {
			if strings.Contains(d, a) {
				t.Errorf("%s: DIAGNOSTIC %q names an upstream", what, d)
			}
		}
		return d
	}
	resolve := func(t *testing.T, gw, name string) proto.ExtReply {
		t.Helper()
		c, _ := extHello(t, gw, "", "")
		defer c.Close()
		extSend(t, c, proto.ExtRequest{ID: 7, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: name}})
		r := extReply(t, c, proto.CommandResolve)
		if r.ID != 7 {
			t.Fatalf("REPLY ID %d, want 7", r.ID)
		}
		return r
	}

	cases := []struct {
		name      string
		gw        *dsGateway
		ext, sock proto.ReplyCode
		errHas    string // in the audit record's err
	}{
		{"nx.test", good, proto.ReplyNameNotFound, proto.ReplyHostUnreachable, "NXDOMAIN"},
		{"servfail.test", good, proto.ReplyNameServerFailure, proto.ReplyGeneralFailure, "SERVFAIL"},
		{"refused.test", refused, proto.ReplyNameServerFailure, proto.ReplyGeneralFailure, "connection refused"},
	}
	errs := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := proto.Addr{FQDN: tc.name, Port: 80}
			_, r, el := dsConnect(t, tc.gw.addr, target, nil)
			d := checkDiag(t, "CONNECT", r)
			t.Logf("CONNECT %s: %v (%q) after %v", tc.name, r.Code, d, el.Round(time.Millisecond))
			if r.Code != tc.ext {
				t.Errorf("CONNECT %s in a frame: %v (%#x), want %v (%#x)", tc.name, r.Code, uint8(r.Code), tc.ext, uint8(tc.ext))
			}
			if got := e2eReplyCode(t, tc.gw.addr, "", "", tc.name+":80"); got != tc.sock {
				t.Errorf("CONNECT %s from a plain client: %v (%#x), want %v (%#x)", tc.name, got, uint8(got), tc.sock, uint8(tc.sock))
			}
			rr := resolve(t, tc.gw.addr, tc.name)
			checkDiag(t, "RESOLVE", rr)
			if rr.Code != tc.ext || len(rr.Answers) != 0 {
				t.Errorf("RESOLVE %s: %v (%#x) %v, want %v", tc.name, rr.Code, uint8(rr.Code), rr.Answers, tc.ext)
			}
			rec := tc.gw.audit.wait(t, "session", dsTarget(tc.name+":80"))
			errs[tc.name] = fmt.Sprint(rec["err"])
			if !strings.Contains(errs[tc.name], tc.errHas) {
				t.Errorf("audit err %q, want it to say %q", rec["err"], tc.errHas)
			}
			rec = tc.gw.audit.wait(t, "resolve", dsTarget(tc.name))
			if e := fmt.Sprint(rec["err"]); !strings.Contains(e, tc.errHas) {
				t.Errorf("resolve audit err %q, want it to say %q", e, tc.errHas)
			}
		})
	}

	t.Run("silent upstream", func(t *testing.T) {
		// A CONNECT and a RESOLVE wait on the silent upstream…
		hung, _ := extHello(t, quiet.addr, "", "")
		ctl, _ := extHello(t, quiet.addr, "", "")
		start := time.Now()
		extSend(t, hung, proto.ExtRequest{ID: 1, Command: proto.CommandConnect, Addr: proto.Addr{FQDN: "hang.test", Port: 80}})
		extSend(t, ctl, proto.ExtRequest{ID: 2, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: "hang2.test"}})
		time.Sleep(100 * time.Millisecond)

		// …while another client's CONNECT to an address goes through.
		c, r, el := dsConnect(t, quiet.addr, proto.Addr{IP: netip.MustParseAddr(dsS4), Port: 80}, nil)
		t.Logf("CONNECT %s while lookups hang: %v after %v", dsS4, r.Code, el.Round(time.Millisecond))
		if r.Code != proto.ReplySucceeded || el >= time.Second {
			t.Errorf("CONNECT to an address while a lookup hangs: %v after %v, want success within 1 s", r.Code, el)
		} else if body := dsGET(t, c, dsS4); !strings.HasPrefix(body, "hello from s4") {
			t.Errorf("body %q", body)
		}

		r = extReply(t, hung, proto.CommandConnect)
		el = time.Since(start)
		d := checkDiag(t, "CONNECT", r)
		t.Logf("CONNECT hang.test: %v (%q) after %v", r.Code, d, el.Round(time.Millisecond))
		if r.Code != proto.ReplyNameServerFailure {
			t.Errorf("CONNECT with a silent upstream: %v (%#x), want NameServerFailure (0xE7)", r.Code, uint8(r.Code))
		}
		if el < 1200*time.Millisecond {
			t.Errorf("failed after %v, before the resolver's 1.5 s timeout: the upstream was not silent", el)
		}
		rr := extReply(t, ctl, proto.CommandResolve)
		checkDiag(t, "RESOLVE", rr)
		if rr.ID != 2 || rr.Code != proto.ReplyNameServerFailure {
			t.Errorf("RESOLVE with a silent upstream: ID %d %v (%#x), want NameServerFailure (0xE7)", rr.ID, rr.Code, uint8(rr.Code))
		}
		rec := quiet.audit.wait(t, "session", dsTarget("hang.test:80"))
		errs["hang.test"] = fmt.Sprint(rec["err"])
		if !strings.Contains(errs["hang.test"], "no response") || !strings.Contains(errs["hang.test"], "timeout") {
			t.Errorf("audit err %q, want no response (timeout)", errs["hang.test"])
		}
	})

	// The three kinds of resolver failure are one code to the client but
	// three different stories in the log.
	t.Logf("audit errs: %q", errs)
	for _, a := range []string{"servfail.test", "refused.test", "hang.test"} {
		for _, b := range []string{"servfail.test", "refused.test", "hang.test"} {
			ea := strings.ReplaceAll(errs[a], a, "NAME")
			eb := strings.ReplaceAll(errs[b], b, "NAME")
			if a < b && ea == eb {
				t.Errorf("audit err for %s and %s is the same: %q", a, b, ea)
			}
		}
	}
}

// TestNetNSCache: the gateway's resolver answers repeated names from its
// cache, with TTLs counting down, and stays bounded under a flood.
func TestNetNSCache(t *testing.T) {
	n := dsNewNet(t)
	n.addS4(t)
	n.dns.SetA("cache.test", 300, dsS4)
	n.dns.SetA("short.test", 1, dsS4)
	const flood = 2000
	for i := 0; i < flood; i += 2 { // odd names do not exist
		n.dns.SetA(fmt.Sprintf("n%d.flood.test", i), 300, dsS4)
	}
	g := n.startGateway(t, nil, func(_ *server.Server, c *resolver.Config) { c.CacheSize = 100 })
	target := proto.Addr{FQDN: "cache.test", Port: 80}
	queries := func(name string) string {
		return fmt.Sprintf("A %d AAAA %d", n.dns.Queries(name, dns.TypeA), n.dns.Queries(name, dns.TypeAAAA))
	}

	ctl, _ := extHello(t, g.addr, "", "")
	id := uint64(100)
	resolve := func(name string) proto.ExtReply {
		t.Helper()
		id++
		extSend(t, ctl, proto.ExtRequest{ID: id, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: name}})
		r := extReply(t, ctl, proto.CommandResolve)
		if r.ID != id {
			t.Fatalf("REPLY ID %d, want %d", r.ID, id)
		}
		return r
	}

	c, r, _ := dsConnect(t, g.addr, target, nil)
	if r.Code != proto.ReplySucceeded {
		t.Fatalf("CONNECT cache.test: %v", r.Code)
	}
	c.Close()
	if got := queries("cache.test"); got != "A 1 AAAA 1" {
		t.Fatalf("after the first CONNECT the DNS server saw %s, want A 1 AAAA 1", got)
	}
	c, r, _ = dsConnect(t, g.addr, target, nil)
	if r.Code != proto.ReplySucceeded {
		t.Fatalf("second CONNECT cache.test: %v", r.Code)
	}
	c.Close()
	r1 := resolve("cache.test")
	if got := queries("cache.test"); got != "A 1 AAAA 1" {
		t.Errorf("after a second CONNECT and a RESOLVE the DNS server saw %s, want no new query", got)
	}
	if r1.Code != proto.ReplySucceeded || len(r1.Answers) != 1 || r1.Answers[0].TTL > 300 {
		t.Fatalf("RESOLVE cache.test: %v %v", r1.Code, r1.Answers)
	}
	s1 := resolve("short.test")
	if s1.Code != proto.ReplySucceeded || len(s1.Answers) != 1 || s1.Answers[0].TTL > 1 {
		t.Fatalf("RESOLVE short.test: %v %v, want one answer with TTL ≤ 1", s1.Code, s1.Answers)
	}
	if got := n.dns.Queries("short.test", dns.TypeA); got != 1 {
		t.Fatalf("short.test: %d A queries, want 1", got)
	}

	time.Sleep(1500 * time.Millisecond)
	r2 := resolve("cache.test")
	if r2.Code != proto.ReplySucceeded || len(r2.Answers) != 1 || r2.Answers[0].TTL >= r1.Answers[0].TTL || r2.Answers[0].TTL < r1.Answers[0].TTL-3 {
		t.Errorf("RESOLVE cache.test 1.5 s later: %v, TTL was %d; want it 1 to 3 s lower", r2.Answers, r1.Answers[0].TTL)
	}
	if got := queries("cache.test"); got != "A 1 AAAA 1" {
		t.Errorf("RESOLVE within the TTL queried upstream: %s", got)
	}
	if s2 := resolve("short.test"); s2.Code != proto.ReplySucceeded || len(s2.Answers) != 1 {
		t.Errorf("RESOLVE short.test again: %v %v", s2.Code, s2.Answers)
	}
	if got := n.dns.Queries("short.test", dns.TypeA); got != 2 {
		t.Errorf("short.test (TTL 1 s) 1.5 s later: %d A queries in all, want 2", got)
	}
	t.Logf("TTLs: cache.test %d then %d; stats %+v", r1.Answers[0].TTL, r2.Answers[0].TTL, g.r.Stats())

	// The flood: distinct names, at most 16 outstanding (the gateway's
	// limit per connection), answered in any order.
	const window = 16
	start := time.Now()
	name := func(id uint64) string { return fmt.Sprintf("n%d.flood.test", id-1) }
	next := uint64(1) // flood IDs are 1..flood; the name is n<ID-1>
	outstanding := 0
	var batch []byte
	for ; outstanding < window; outstanding++ {
		batch, _ = proto.AppendFrame(batch, proto.ExtRequest{ID: next, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: name(next)}})
		next++
	}
	ctl.Write(batch)
	seen := make(map[uint64]bool, flood)
	quota := 0
	for len(seen) < flood {
		r := extReply(t, ctl, proto.CommandResolve)
		if r.ID < 1 || r.ID > flood || seen[r.ID] {
			t.Fatalf("flood: REPLY for ID %d", r.ID)
		}
		seen[r.ID] = true
		outstanding--
		even := (r.ID-1)%2 == 0
		switch {
		case r.Code == proto.ReplyQuotaExceeded:
			quota++
		case even && (r.Code != proto.ReplySucceeded || len(r.Answers) != 1):
			t.Errorf("flood: RESOLVE %s: %v %v, want one address", name(r.ID), r.Code, r.Answers)
		case !even && r.Code != proto.ReplyNameNotFound:
			t.Errorf("flood: RESOLVE %s: %v, want NameNotFound", name(r.ID), r.Code)
		}
		if cl := g.r.Stats().CacheLen; cl > 100 {
			t.Fatalf("flood: cache holds %d entries, CacheSize is 100", cl)
		}
		if next <= flood {
			extSend(t, ctl, proto.ExtRequest{ID: next, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: name(next)}})
			next++
			outstanding++
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	st := g.r.Stats()
	t.Logf("flood of %d RESOLVEs in %v: %d upstream queries in all, stats %+v", flood, time.Since(start).Round(time.Millisecond), n.dns.QueriesTotal(), st)
	if quota > 0 {
		t.Errorf("flood: %d of %d RESOLVEs answered QuotaExceeded although at most %d were outstanding", quota, flood, window)
	}
	if st.CacheLen > 100 || st.CacheLen == 0 {
		t.Errorf("after the flood the cache holds %d entries, want 1 to 100", st.CacheLen)
	}

	// A Request ID is free again once its REPLY has arrived (the draft:
	// a client must not reuse an ID "still outstanding"), so a client
	// may reuse it at once, and a new request after a REPLY never
	// exceeds the limit.
	t.Run("ID reuse after REPLY", func(t *testing.T) {
		c, _ := extHello(t, g.addr, "", "")
		defer c.Close()
		for i := range 300 {
			extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandResolve, Addr: proto.Addr{FQDN: "cache.test"}})
			f := extReadFrame(t, c)
			switch f.Type {
			case proto.FrameReply:
				r, err := proto.ParseExtReply(f.Value, proto.CommandResolve)
				if err != nil || r.ID != 1 || r.Code != proto.ReplySucceeded {
					t.Fatalf("round %d: REPLY %+v %v, want ID 1 succeeded", i, r, err)
				}
			case proto.FrameClose:
				cl, _ := proto.ParseClose(f.Value)
				d, _ := cl.Options.Diagnostic()
				t.Fatalf("round %d: RESOLVE with ID 1 right after the REPLY for ID 1: CLOSE %v (%q)", i, cl.Reason, d)
			default:
				t.Fatalf("round %d: %v frame", i, f.Type)
			}
		}
	})

	// Still answering, on the same connection and on new ones.
	if r := resolve("cache.test"); r.Code != proto.ReplySucceeded || len(r.Answers) != 1 {
		t.Errorf("RESOLVE after the flood: %v %v", r.Code, r.Answers)
	}
	c, r, el := dsConnect(t, g.addr, target, nil)
	if r.Code != proto.ReplySucceeded || el >= time.Second {
		t.Fatalf("CONNECT after the flood: %v after %v", r.Code, el)
	}
	if body := dsGET(t, c, "cache.test"); !strings.HasPrefix(body, "hello from s4") {
		t.Errorf("body %q", body)
	}
}

// TestNetNSNAT64: a gateway on an IPv6-only network reaches IPv4-only
// destinations through NAT64, with the prefix discovered by RFC 7050. The
// translator is simulated: the server that s4 would be holds the
// synthesized address 2001:db8:64::c633:6402 (198.51.100.2 in
// 2001:db8:64::/96), routed from gw.
func TestNetNSNAT64(t *testing.T) {
	n := dsNewNet(t) // gw has no IPv4 but 127.0.0.1 on lo
	srv := socks6test.NewNetNS(t)
	n.link(t, srv, "n64", []string{"2001:db8:6464::1/64"}, []string{"2001:db8:6464::2/64"})
	srv.IP(t, "addr", "add", dsNAT64Srv+"/128", "dev", "eth0", "nodad")
	n.gw.IP(t, "-6", "route", "add", "2001:db8:64::/96", "via", "2001:db8:6464::2")
	dsWebServer(t, srv, net.JoinHostPort(dsNAT64Srv, "80"), "198.51.100.2 through NAT64")
	// DNS64 answers for the well-known name (RFC 7050 section 2.2: the
	// addresses 192.0.0.170 and 192.0.0.171 in the prefix).
	n.dns.SetAAAA("ipv4only.arpa", 300, "2001:db8:64::c000:aa", "2001:db8:64::c000:ab")
	n.dns.SetA("v4only.test", 60, dsS4)
	n.dns.SetAAAA("v4only.test", 60)
	const want = "[" + dsNAT64Srv + "]:80"

	t.Run("discover", func(t *testing.T) {
		g := n.startGateway(t, nil, func(s *server.Server, _ *resolver.Config) {
			s.DiscoverNAT64 = true
			s.DialTimeout = 3 * time.Second
		})
		for _, target := range []proto.Addr{
			{IP: netip.MustParseAddr(dsS4), Port: 80},
			{FQDN: "v4only.test", Port: 80},
		} {
			c, r, el := dsConnect(t, g.addr, target, nil)
			d, _ := r.Options.Diagnostic()
			t.Logf("CONNECT %v: %v %q after %v, CONNECTED %s", target, r.Code, d, el.Round(time.Millisecond), dsConnected(r))
			if r.Code != proto.ReplySucceeded || dsConnected(r) != want {
				t.Errorf("CONNECT %v: %v (%#x), CONNECTED %s; want success, CONNECTED %s", target, r.Code, uint8(r.Code), dsConnected(r), want)
				continue
			}
			if body := dsGET(t, c, "v4only.test"); !strings.HasPrefix(body, "hello from 198.51.100.2 through NAT64; you are [2001:db8:6464::1]:") {
				t.Errorf("body %q", body)
			}
			c.Close() // the session, and its audit record, end
			rec := g.audit.wait(t, "session", dsTarget(target.String()))
			if rec["connected"] != want {
				t.Errorf("audit record %v, want connected=%s", rec, want)
			}
		}
		if q := n.dns.Queries("ipv4only.arpa", dns.TypeAAAA); q != 1 {
			t.Errorf("ipv4only.arpa AAAA asked %d times, want once (the prefix is kept for its TTL)", q)
		}
	})

	t.Run("no NAT64", func(t *testing.T) {
		before := n.dns.Queries("ipv4only.arpa", dns.TypeAAAA)
		g := n.startGateway(t, nil, nil)
		_, r, _ := dsConnect(t, g.addr, proto.Addr{IP: netip.MustParseAddr(dsS4), Port: 80}, nil)
		if r.Code != proto.ReplyNetworkUnreachable {
			t.Errorf("CONNECT %s without NAT64: %v (%#x), want NetworkUnreachable (0x03)", dsS4, r.Code, uint8(r.Code))
		}
		if got := e2eReplyCode(t, g.addr, "", "", dsS4+":80"); got != proto.ReplyNetworkUnreachable {
			t.Errorf("plain CONNECT %s without NAT64: %v, want NetworkUnreachable (0x03)", dsS4, got)
		}
		if q := n.dns.Queries("ipv4only.arpa", dns.TypeAAAA); q != before {
			t.Errorf("DiscoverNAT64 false, yet ipv4only.arpa was asked")
		}
	})
}
