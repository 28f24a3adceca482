package main_test

// End-to-end tests of socksify: real, unmodified programs (curl, python3,
// a static Go binary, a static musl binary, ssh, nc, dig, bash) run under
// the socksify binary, with the real socks6d gateway, inside network
// namespaces that each test creates.
//
//	┌──────────────────────── app (netns) ───────────────────────┐
//	│ lo: 127.0.0.1, ::1, 2001:db8:77::80                        │
//	│   socks6d 127.0.0.1:GW   (its resolver asks the DNS server │
//	│                           below; guard allows loopback)    │     ┌──── sink (netns) ────┐
//	│   DNS for the gateway, HTTP v4+v6, TCP echo [::1],         │     │ eth0 192.0.2.53      │
//	│   UDP echo 127.0.0.1, SSH banner 127.0.0.1                 │     │      2001:db8:5::53  │
//	│ leak0 192.0.2.2, 2001:db8:5::2 ── default routes ──────────┼─────┤ AF_PACKET counter    │
//	│ resolv.conf (ip netns exec): nameserver 192.0.2.53         │     └──────────────────────┘
//	└────────────────────────────────────────────────────────────┘
//
// The program runs as "ip netns exec app socksify -proxy 127.0.0.1:GW --
// PROGRAM …". Its resolv.conf names the sink, and its default routes lead
// there, so anything that escapes socksify — a DNS query, a connection to
// a fake or literal address — arrives at the sink. The sink counts the
// frames the app sends it with a packet socket, ignoring only IPv6
// neighbour discovery and MLD (the kernel's own link chatter; the
// neighbour entries are permanent, so no leak needs them) and IGMP; every
// test asserts that the count did not grow while the program ran. The
// count is read behind a barrier: a marker datagram that the test sends
// through the same link after the program has exited, so frames still in
// flight are counted before the check. The gateway shares the app's
// namespace, so its own outbound traffic would reach the sink too: every
// target in these tests is one the gateway reaches on the app's own
// addresses (loopback, or the literal address on lo).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/socks6/socks6/internal/socks6test"
	"golang.org/x/sys/unix"
)

// Binaries built by TestMain.
var (
	binDir      string
	socksifyBin string // empty if socksify could not be built
	socksifyErr string // why not: missing main package, or the compiler's output
	socks6dBin  string
	goclientBin string
	muslBin     string // empty without musl-gcc
	muslErr     string
	pythonBin   string // the real interpreter behind python3 (not a pyenv shim)
	testdataDir string // absolute path of testdata
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips: no need to build anything
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testdataDir, _ = filepath.Abs("testdata")
	if binDir, err = os.MkdirTemp("", "socksify-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	goTool := "go"
	if p, err := exec.LookPath("go"); err == nil {
		goTool = p
	} else if p := "/usr/local/go/bin/go"; fileExists(p) {
		goTool = p
	}
	build := func(out string, pkg string) error {
		cmd := exec.Command(goTool, "build", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return nil
	}
	var wg sync.WaitGroup
	var s6dErr, gcErr error
	wg.Go(func() {
		if !hasMainPackage(filepath.Join(root, "cmd", "socksify")) {
			socksifyErr = "socksify is not written yet: cmd/socksify has no non-test Go files (main.go missing)"
			return
		}
		p := filepath.Join(binDir, "socksify")
		if err := build(p, "./cmd/socksify"); err != nil {
			socksifyErr = err.Error()
			return
		}
		socksifyBin = p
	})
	wg.Go(func() {
		socks6dBin = filepath.Join(binDir, "socks6d")
		s6dErr = build(socks6dBin, "./cmd/socks6d")
	})
	wg.Go(func() {
		goclientBin = filepath.Join(binDir, "goclient")
		gcErr = build(goclientBin, "./cmd/socksify/testdata/goclient")
	})
	wg.Go(func() { muslBin, muslErr = buildMusl("musl") })
	wg.Go(func() {
		if p, err := exec.LookPath("python3"); err == nil {
			out, err := exec.Command(p, "-c", "import sys; print(sys.executable)").Output()
			if s := strings.TrimSpace(string(out)); err == nil && filepath.IsAbs(s) {
				pythonBin = s
			}
		}
	})
	wg.Wait()
	for _, err := range []error{s6dErr, gcErr} {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	code := m.Run()
	os.Remove("/etc/netns") // only if empty: labs remove their own entries
	return code
}

// buildMusl builds testdata/NAME.c with musl-gcc -static into binDir and
// returns the binary, or why it could not.
func buildMusl(name string) (bin, whyNot string) {
	cc, err := exec.LookPath("musl-gcc")
	if err != nil {
		return "", "musl-gcc not found: apt-get install musl-tools"
	}
	p := filepath.Join(binDir, name)
	out, err := exec.Command(cc, "-static", "-O2", "-Wall", "-o", p, filepath.Join(testdataDir, name+".c")).CombinedOutput()
	if err != nil {
		return "", fmt.Sprintf("musl-gcc -static %s.c: %v\n%s", name, err, out)
	}
	return p, ""
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func hasMainPackage(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			return true
		}
	}
	return false
}

// ---- preconditions -------------------------------------------------------

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("socksify end-to-end tests need root (network namespaces)")
	}
}

// needSocksify skips while socksify is not written, fails if it does not
// build, and skips where seccomp user notification is missing.
func needSocksify(t *testing.T) {
	t.Helper()
	needRoot(t)
	if socksifyBin == "" {
		if strings.HasPrefix(socksifyErr, "socksify is not written yet") {
			t.Skip(socksifyErr)
		}
		t.Fatalf("socksify does not build:\n%s", socksifyErr)
	}
	b, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	if err != nil || !strings.Contains(string(b), "user_notif") {
		t.Skipf("seccomp user notification unavailable (/proc/sys/kernel/seccomp/actions_avail: %q, %v)", strings.TrimSpace(string(b)), err)
	}
}

// needTool skips the test when name is not installed.
func needTool(t *testing.T, name, debPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: apt-get install %s", name, debPackage)
	}
	return p
}

func needPython(t *testing.T) string {
	t.Helper()
	if pythonBin == "" {
		t.Skip("python3 not found: apt-get install python3")
	}
	return pythonBin
}

func needMusl(t *testing.T) string {
	t.Helper()
	if muslBin == "" {
		t.Skip(muslErr)
	}
	return muslBin
}

var (
	udpOnce    sync.Once
	udpMissing string
)

// needUDP skips UDP tests only when socksify itself says that it does
// not carry UDP (in its -h output or its README).
func needUDP(t *testing.T) {
	t.Helper()
	udpOnce.Do(func() {
		out, _ := exec.Command(socksifyBin, "-h").CombinedOutput()
		text := string(out)
		if root, err := moduleRoot(); err == nil {
			b, _ := os.ReadFile(filepath.Join(root, "cmd", "socksify", "README.md"))
			text += "\n" + string(b)
		}
		text = strings.Join(strings.Fields(text), " ") // sentences wrap
		re := regexp.MustCompile(`(?i)\budp\b[^.]{0,80}?\b(not (yet )?supported|unsupported|not (yet )?implemented)[^.]*`)
		if m := re.FindString(text); m != "" {
			udpMissing = m
		}
	})
	if udpMissing != "" {
		t.Skipf("socksify says UDP is not supported: %q", udpMissing)
	}
}

// ---- the lab -------------------------------------------------------------

// Addresses of the topology.
const (
	appV4      = "192.0.2.2"
	appV6      = "2001:db8:5::2"
	sinkV4     = "192.0.2.53" // the app's name server (resolv.conf)
	sinkV6     = "2001:db8:5::53"
	literalV6  = "2001:db8:77::80" // on the app's lo; the HTTP server listens there too
	fakeV4Net  = "198.18.0.0/15"
	httpBanner = "hello from lab http"
	sshBanner  = "SSH-2.0-LabBanner_1.0"
)

// A lab is one test's network: the app namespace with the gateway and the
// fixture servers, and the leak sink.
type lab struct {
	t         *testing.T
	app, sink *socks6test.NetNS
	dir       string
	gw        *gateway
	dns       *socks6test.DNSServer // the gateway's name server
	sniff     *sniffer
	barrierN  int
	leaksSeen int // leaks already reported

	httpPort, echoPort, udpPort, sshPort, closedPort int
}

func newLab(t *testing.T) *lab {
	t.Helper()
	needRoot(t)
	needTool(t, "ip", "iproute2")
	l := &lab{t: t, dir: t.TempDir()}
	l.app = socks6test.NewNetNS(t)
	l.sink = socks6test.NewNetNS(t)

	// Keep the app's link quiet: no router solicitations or DAD on the
	// veth (it inherits "default"). What is left (MLD reports) is ignored
	// by the sniffer.
	for _, kv := range [][2]string{
		{"net/ipv6/conf/default/accept_ra", "0"},
		{"net/ipv6/conf/default/router_solicitations", "0"},
		{"net/ipv6/conf/default/dad_transmits", "0"},
	} {
		l.app.Sysctl(t, kv[0], kv[1])
		l.sink.Sysctl(t, kv[0], kv[1])
	}
	socks6test.Veth(t, l.app, "leak0", l.sink, "eth0")
	l.app.IP(t, "addr", "add", appV4+"/24", "dev", "leak0")
	l.app.IP(t, "addr", "add", appV6+"/64", "dev", "leak0", "nodad")
	l.sink.IP(t, "addr", "add", sinkV4+"/24", "dev", "eth0")
	l.sink.IP(t, "addr", "add", sinkV6+"/64", "dev", "eth0", "nodad")
	l.app.IP(t, "addr", "add", literalV6+"/128", "dev", "lo", "nodad")
	appMAC, sinkMAC := l.mac(l.app, "leak0"), l.mac(l.sink, "eth0")
	l.app.IP(t, "neigh", "replace", sinkV4, "lladdr", sinkMAC.String(), "dev", "leak0", "nud", "permanent")
	l.app.IP(t, "neigh", "replace", sinkV6, "lladdr", sinkMAC.String(), "dev", "leak0", "nud", "permanent")
	l.sink.IP(t, "neigh", "replace", appV4, "lladdr", appMAC.String(), "dev", "eth0", "nud", "permanent")
	l.sink.IP(t, "neigh", "replace", appV6, "lladdr", appMAC.String(), "dev", "eth0", "nud", "permanent")
	l.app.IP(t, "route", "add", "default", "via", sinkV4, "dev", "leak0")
	l.app.IP(t, "-6", "route", "add", "default", "via", sinkV6, "dev", "leak0")

	// ip netns exec bind-mounts /etc/netns/<name>/resolv.conf over
	// /etc/resolv.conf for the programs it runs. A query that is not
	// answered within 2 s is sent once more, as resolvers do by default:
	// on a loaded machine one lookup in the stress tests' hundreds can
	// take that long (its datagram, or the answer, waiting for a CPU).
	etc := filepath.Join("/etc/netns", l.app.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+sinkV4+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	l.sniff = startSniffer(t, l.sink, "eth0", appMAC)
	l.startServers()
	l.startGateway()
	return l
}

func (l *lab) mac(ns *socks6test.NetNS, dev string) net.HardwareAddr {
	l.t.Helper()
	var ifi *net.Interface
	var err error
	if derr := ns.Do(func() { ifi, err = net.InterfaceByName(dev) }); derr != nil || err != nil {
		l.t.Fatalf("interface %s in %s: %v %v", dev, ns.Name, derr, err)
	}
	return ifi.HardwareAddr
}

// do runs fn inside the app namespace.
func (l *lab) do(fn func()) {
	l.t.Helper()
	if err := l.app.Do(fn); err != nil {
		l.t.Fatalf("enter %s: %v", l.app.Name, err)
	}
}

func port(a net.Addr) int {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	panic(fmt.Sprintf("port of %T", a))
}

// startServers starts the fixture servers and the gateway's DNS server
// inside app, all stopped when the test ends.
func (l *lab) startServers() {
	t := l.t
	// HTTP on one port at 127.0.0.1, ::1 and the literal address.
	var lns []net.Listener
	for attempt := 0; lns == nil; attempt++ {
		if attempt == 20 {
			t.Fatal("no port free on 127.0.0.1, ::1 and " + literalV6 + " at once")
		}
		var got []net.Listener
		var err error
		l.do(func() {
			var ln net.Listener
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				return
			}
			got = append(got, ln)
			p := strconv.Itoa(port(ln.Addr()))
			for _, h := range []string{"::1", literalV6} {
				if ln, err = net.Listen("tcp", net.JoinHostPort(h, p)); err != nil {
					return
				}
				got = append(got, ln)
			}
		})
		if err != nil {
			for _, ln := range got {
				ln.Close()
			}
			continue
		}
		lns = got
	}
	l.httpPort = port(lns[0].Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s; Host=%s; Path=%s\n", httpBanner, r.Host, r.URL.Path)
	})}
	for _, ln := range lns {
		go srv.Serve(ln)
	}
	t.Cleanup(func() { srv.Close() })

	// TCP echo on [::1] (six.test has only an AAAA record).
	echo := l.app.Listen(t, "tcp", "[::1]:0")
	l.echoPort = port(echo.Addr())
	socks6test.Serve(t, echo, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})

	// SSH banner on 127.0.0.1: enough for ssh -v to print the remote
	// version before the key exchange fails.
	ssh := l.app.Listen(t, "tcp", "127.0.0.1:0")
	l.sshPort = port(ssh.Addr())
	socks6test.Serve(t, ssh, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, sshBanner+"\r\n")
		bufio.NewReader(c).ReadString('\n') // the client's version line
	})

	// UDP echo on 127.0.0.1: "echo:" + the datagram.
	var pc net.PacketConn
	var err error
	l.do(func() { pc, err = net.ListenPacket("udp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	l.udpPort = port(pc.LocalAddr())
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()

	// A port where nothing listens, on either loopback address.
	for attempt := 0; l.closedPort == 0; attempt++ {
		if attempt == 20 {
			t.Fatal("no closed port found")
		}
		l.do(func() {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return
			}
			p := port(ln.Addr())
			ln6, err := net.Listen("tcp", "[::1]:"+strconv.Itoa(p))
			ln.Close()
			if err == nil {
				ln6.Close()
				l.closedPort = p
			}
		})
	}

	// The gateway's name server, on 127.0.0.1 inside app, UDP and TCP.
	for attempt := 0; l.dns == nil; attempt++ {
		if attempt == 20 {
			t.Fatal("dns server: no port free on both UDP and TCP")
		}
		var pc net.PacketConn
		var ln net.Listener
		var perr, lerr error
		l.do(func() {
			if pc, perr = net.ListenPacket("udp", "127.0.0.1:0"); perr == nil {
				ln, lerr = net.Listen("tcp", pc.LocalAddr().String())
			}
		})
		if perr != nil {
			t.Fatal(perr)
		}
		if lerr != nil {
			pc.Close()
			continue
		}
		l.dns = socks6test.NewDNSServerOn(t, pc, ln)
	}
	l.dns.SetA("example.test", 60, "127.0.0.1")
	l.dns.SetAAAA("example.test", 60, "::1")
	l.dns.SetA("six.test", 60)
	l.dns.SetAAAA("six.test", 60, "::1")
	l.dns.SetA("ssh.test", 60, "127.0.0.1")
	l.dns.SetAAAA("ssh.test", 60)
	l.dns.SetA("udp.test", 60, "127.0.0.1")
	l.dns.SetAAAA("udp.test", 60)
}

// ---- the gateway: socks6d inside app --------------------------------------

type gateway struct {
	addr string // 127.0.0.1:port inside app
	mu   sync.Mutex
	log  []string // stderr lines (JSON)
	more chan struct{}
}

func (l *lab) startGateway() { l.gw = l.startGatewayAt("127.0.0.1:0", "") }

// startGatewayAt starts a socks6d inside app listening on listen, with
// extra appended to its configuration.
func (l *lab) startGatewayAt(listen, extra string) *gateway {
	t := l.t
	t.Helper()
	cfg := filepath.Join(l.dir, fmt.Sprintf("socks6d-%d.toml", time.Now().UnixNano()))
	conf := fmt.Sprintf(`listen = [%q]
log_format = "json"

[timeouts]
shutdown = "0s"

[guard]
allow_loopback = true
allow_self = true

[resolver]
servers = ["%s"]
hosts_file = "-"
nat64_prefix = "off"
%s`, listen, l.dns.Addr, extra)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gateway{more: make(chan struct{})}
	cmd := exec.Command("ip", "netns", "exec", l.app.Name, socks6dBin, "-config", cfg)
	cmd.Env = baseEnv(l.dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			g.mu.Lock()
			g.log = append(g.log, sc.Text())
			close(g.more)
			g.more = make(chan struct{})
			g.mu.Unlock()
		}
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cmd.Wait()
		if t.Failed() {
			g.mu.Lock()
			lines := g.log
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("socks6d log (the end):\n%s", strings.Join(lines, "\n"))
			g.mu.Unlock()
		}
	})
	rec := g.wait(t, 10*time.Second, func(r map[string]any) bool { return r["msg"] == "listening" })
	if rec == nil {
		select {
		case <-done:
			t.Fatalf("socks6d exited at start:\n%s", strings.Join(g.lines(), "\n"))
		default:
			t.Fatalf("socks6d did not log \"listening\":\n%s", strings.Join(g.lines(), "\n"))
		}
	}
	g.addr, _ = rec["addr"].(string)
	return g
}

func (g *gateway) lines() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.log...)
}

func (g *gateway) records() []map[string]any {
	var out []map[string]any
	for _, line := range g.lines() {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// wait returns the first log record for which match holds, waiting up to
// timeout for it; nil if none came.
func (g *gateway) wait(t *testing.T, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	deadline := time.After(timeout)
	for {
		g.mu.Lock()
		more := g.more
		g.mu.Unlock()
		for _, r := range g.records() {
			if match(r) {
				return r
			}
		}
		select {
		case <-more:
		case <-deadline:
			return nil
		}
	}
}

// sessions returns the audit records ("session") whose target is target.
func (g *gateway) sessions(target string) []map[string]any {
	var out []map[string]any
	for _, r := range g.records() {
		if r["msg"] == "session" && r["target"] == target {
			out = append(out, r)
		}
	}
	return out
}

// since counts the records that began at or after t0 (end time minus
// duration). A session is logged when it ends, so the record of an
// earlier subtest's session can arrive after a later one began; counting
// records from a "before" snapshot would then charge it to the later one.
func since(recs []map[string]any, t0 time.Time) int {
	n := 0
	for _, r := range recs {
		end, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["time"]))
		dur, ok := r["dur"].(float64)
		if err == nil && ok && !end.Add(-time.Duration(dur)).Before(t0) {
			n++
		}
	}
	return n
}

// waitSession waits for the audit record of a session to target and
// returns it; it fails the test if none comes.
func (l *lab) waitSession(target string) map[string]any {
	l.t.Helper()
	r := l.gw.wait(l.t, 10*time.Second, func(r map[string]any) bool {
		return r["msg"] == "session" && r["target"] == target
	})
	if r == nil {
		var targets []string
		for _, r := range l.gw.records() {
			if r["msg"] == "session" {
				targets = append(targets, fmt.Sprintf("%v (%v %v)", r["target"], r["cmd"], r["reply"]))
			}
		}
		l.t.Errorf("the gateway logged no session to %s; sessions: %q", target, targets)
	}
	return r
}

// expectNoSession fails the test if the gateway logs a session to target
// within a short wait.
func (l *lab) expectNoSession(target string) {
	l.t.Helper()
	r := l.gw.wait(l.t, 300*time.Millisecond, func(r map[string]any) bool {
		return r["msg"] == "session" && r["target"] == target
	})
	if r != nil {
		l.t.Errorf("the gateway logged a session to %s, which should have been reached directly: %v", target, r)
	}
}

// ---- running programs -------------------------------------------------------

func baseEnv(home string) []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"LC_ALL=C",
		"TERM=dumb",
		"GOTRACEBACK=all", // a stack dump (proc.dumpStacks) shows every goroutine
	}
}

// A proc is a program started inside app.
type proc struct {
	t      *testing.T
	desc   string
	cmd    *exec.Cmd
	stdout socks6test.Buffer
	stderr socks6test.Buffer
	done   chan struct{}
	code   int // exit status; -1 if killed by a signal
	err    error
	logged atomic.Bool // wait logged the output
}

type runOpts struct {
	stdin   string
	timeout time.Duration // default 30s
}

// start runs argv inside app ("ip netns exec", which execs argv[0] in
// place, so the process ID is argv[0]'s) in a process group of its own,
// which is killed when the test ends or the timeout passes.
func (l *lab) start(o runOpts, argv ...string) *proc {
	t := l.t
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	p := &proc{t: t, desc: strings.Join(argv, " "), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.app.Name}, argv...)...)
	p.cmd.Env = baseEnv(l.dir)
	p.cmd.Dir = l.dir
	p.cmd.Stdin = strings.NewReader(o.stdin)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.Cancel = func() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }
	p.cmd.WaitDelay = 10 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.desc, err)
	}
	pgid := p.cmd.Process.Pid
	go func() {
		defer close(p.done)
		defer cancel()
		p.err = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if ctx.Err() != nil {
			p.err = fmt.Errorf("timed out after %v (killed): %w", o.timeout, p.err)
		}
	}()
	t.Cleanup(func() {
		if t.Failed() && !p.logged.Load() {
			p.dumpStacks()
		}
		syscall.Kill(-pgid, syscall.SIGKILL) // stragglers of the test's own process group
		<-p.done
		if t.Failed() && !p.logged.Load() {
			// A test that stopped early never waited for p: what p
			// printed is the best clue to why.
			t.Logf("$ %s (killed at the test's end)\n  stdout: %s\n  stderr (with the stacks): %s", p.desc,
				indent(p.stdout.String()), indentMax(p.stderr.String(), 0))
		}
	})
	return p
}

// dumpStacks asks a p that is still running, after a failure, where it
// is: socksify passes SIGUSR1 on to its program (the Python fixtures
// print their stacks on it, faulthandler), and then SIGABRT makes
// socksify itself, a Go program run with GOTRACEBACK=all, print every
// goroutine's stack and exit.
func (p *proc) dumpStacks() {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.cmd.Process.Pid
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) != "socksify" {
		return
	}
	syscall.Kill(pid, syscall.SIGUSR1)
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(pid, syscall.SIGABRT)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
	}
}

// wait waits for p to end and logs what it printed.
func (p *proc) wait() *proc {
	p.t.Helper()
	<-p.done
	p.logged.Store(true)
	p.t.Logf("$ %s\n  exit %d%s\n  stdout: %s\n  stderr: %s", p.desc, p.code, errSuffix(p.err),
		indent(p.stdout.String()), indent(p.stderr.String()))
	return p
}

func errSuffix(err error) string {
	var ee *exec.ExitError
	if err == nil || errors.As(err, &ee) && !strings.Contains(err.Error(), "timed out") {
		return ""
	}
	return " (" + err.Error() + ")"
}

// indent formats a program's output for the test log, shortened to its
// first and last lines when it is long (socksify -v under the stress
// test writes a line per connection).
func indent(s string) string { return indentMax(s, 30) }

// indentMax is indent shortening beyond max lines (0: never).
func indentMax(s string, max int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "(empty)"
	}
	lines := strings.Split(s, "\n")
	if max > 0 && len(lines) > max {
		lines = append(append(lines[:20:20], fmt.Sprintf("… %d lines …", len(lines)-25)), lines[len(lines)-5:]...)
	}
	return strings.Join(lines, "\n    ")
}

// waitOutput waits until p's stdout contains s.
func (p *proc) waitOutput(s string, timeout time.Duration) bool {
	return socks6test.WaitFor(timeout, func() bool { return strings.Contains(p.stdout.String(), s) })
}

// socksifyArgv is the command line that runs argv under socksify with
// this lab's gateway.
func (l *lab) socksifyArgv(argv ...string) []string {
	return append([]string{socksifyBin, "-proxy", l.gw.addr, "-v", "--"}, argv...)
}

// socksify runs argv under socksify inside app, waits for it, and checks
// that nothing reached the leak sink meanwhile.
func (l *lab) socksify(argv ...string) *proc {
	l.t.Helper()
	return l.socksifyOpts(runOpts{}, argv...)
}

func (l *lab) socksifyOpts(o runOpts, argv ...string) *proc {
	l.t.Helper()
	p := l.start(o, l.socksifyArgv(argv...)...).wait()
	l.checkNoLeak(p.desc)
	return p
}

// plain runs argv inside app without socksify.
func (l *lab) plain(argv ...string) *proc {
	l.t.Helper()
	return l.start(runOpts{}, argv...).wait()
}

func (l *lab) url(host string, port int, path string) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + path
}

func (l *lab) target(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// wantBody is the HTTP fixture's answer for a request with this Host
// header and path.
func wantBody(host string, path string) string {
	return fmt.Sprintf("%s; Host=%s; Path=%s", httpBanner, host, path)
}

func expectContains(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%s: missing %q in:\n%s", what, want, got)
	}
}

func expectExit(t *testing.T, p *proc, want int) {
	t.Helper()
	if p.code != want {
		t.Errorf("%s: exit status %d%s, want %d", p.desc, p.code, errSuffix(p.err), want)
	}
}

var fakeV4 = netip.MustParsePrefix(fakeV4Net)

// isFake reports whether s is a socksify fake address: in 198.18.0.0/15,
// or an IPv6 unique local address (fc00::/7).
func isFake(s string) bool {
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return false
	}
	a = a.Unmap()
	return fakeV4.Contains(a) || netip.MustParsePrefix("fc00::/7").Contains(a)
}

// ---- the leak sink --------------------------------------------------------

// A sniffer counts the frames that arrive at the sink from the app.
type sniffer struct {
	fd     int
	appMAC net.HardwareAddr
	stop   atomic.Bool
	done   chan struct{}

	mu      sync.Mutex
	leaks   []string
	barrier int // the highest barrier number seen
}

const barrierMagic = "socksify-e2e-barrier-"

func startSniffer(t *testing.T, ns *socks6test.NetNS, dev string, appMAC net.HardwareAddr) *sniffer {
	t.Helper()
	s := &sniffer{appMAC: appMAC, done: make(chan struct{})}
	var err error
	if derr := ns.Do(func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(dev); err != nil {
			return
		}
		proto := int(htons(unix.ETH_P_ALL))
		if s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return
		}
		if err = unix.Bind(s.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(s.fd)
			return
		}
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		err = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}); derr != nil {
		t.Fatal(derr)
	}
	if err != nil {
		t.Fatalf("leak sink: packet socket on %s in %s: %v", dev, ns.Name, err)
	}
	go s.loop()
	t.Cleanup(func() {
		s.stop.Store(true)
		<-s.done
		unix.Close(s.fd)
	})
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *sniffer) loop() {
	defer close(s.done)
	buf := make([]byte, 65536)
	for !s.stop.Load() {
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			continue // EAGAIN after SO_RCVTIMEO, EINTR
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		f := buf[:n]
		if len(f) < 14 || !bytes.Equal(f[6:12], s.appMAC) {
			continue
		}
		desc, ignore, barrier := classify(f)
		s.mu.Lock()
		switch {
		case barrier > 0:
			s.barrier = max(s.barrier, barrier)
		case !ignore:
			s.leaks = append(s.leaks, desc)
		}
		s.mu.Unlock()
	}
}

// classify describes an Ethernet frame from the app. ignore is true for
// the kernel's own IPv6 link chatter (neighbour and router discovery,
// MLD) and IGMP; barrier is the number of a barrier datagram, else 0.
func classify(f []byte) (desc string, ignore bool, barrier int) {
	etype := binary.BigEndian.Uint16(f[12:14])
	p := f[14:]
	switch etype {
	case 0x0800:
		if len(p) < 20 {
			return "short IPv4 packet", false, 0
		}
		ihl := int(p[0]&0x0f) * 4
		proto := p[9]
		src, _ := netip.AddrFromSlice(p[12:16])
		dst, _ := netip.AddrFromSlice(p[16:20])
		if proto == 2 {
			return "IGMP", true, 0
		}
		if ihl > len(p) {
			ihl = len(p)
		}
		return describeL4("IPv4", proto, src, dst, p[ihl:])
	case 0x86dd:
		if len(p) < 40 {
			return "short IPv6 packet", false, 0
		}
		nh := p[6]
		src, _ := netip.AddrFromSlice(p[8:24])
		dst, _ := netip.AddrFromSlice(p[24:40])
		l4 := p[40:]
		if nh == 0 && len(l4) >= 8 { // hop-by-hop options (MLD carries router alert)
			nh = l4[0]
			hl := (int(l4[1]) + 1) * 8
			if hl > len(l4) {
				hl = len(l4)
			}
			l4 = l4[hl:]
		}
		if nh == 58 && len(l4) > 0 {
			switch typ := l4[0]; {
			case typ >= 130 && typ <= 137, typ == 143:
				return fmt.Sprintf("ICMPv6 type %d", typ), true, 0
			}
		}
		return describeL4("IPv6", nh, src, dst, l4)
	case 0x0806:
		if len(p) >= 28 {
			tpa, _ := netip.AddrFromSlice(p[24:28])
			spa, _ := netip.AddrFromSlice(p[14:18])
			return fmt.Sprintf("ARP who-has %s tell %s", tpa, spa), false, 0
		}
		return "ARP", false, 0
	}
	return fmt.Sprintf("ethertype %#04x, %d bytes", etype, len(f)), false, 0
}

func describeL4(fam string, proto byte, src, dst netip.Addr, l4 []byte) (string, bool, int) {
	switch proto {
	case 6, 17:
		if len(l4) < 8 {
			break
		}
		sp, dp := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		name := "TCP"
		extra := ""
		if proto == 17 {
			name = "UDP"
			payload := l4[8:]
			if s, ok := strings.CutPrefix(string(payload), barrierMagic); ok {
				if n, err := strconv.Atoi(s); err == nil {
					return "barrier", false, n
				}
			}
			if dp == 53 {
				var m dns.Msg
				if m.Unpack(payload) == nil && len(m.Question) > 0 {
					extra = " DNS query " + m.Question[0].String()
				}
			}
		} else if len(l4) >= 14 && l4[13]&0x02 != 0 {
			extra = " SYN"
		}
		return fmt.Sprintf("%s %s %s → %s%s", fam, name,
			netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp), extra), false, 0
	}
	return fmt.Sprintf("%s protocol %d %s → %s", fam, proto, src, dst), false, 0
}

// checkNoLeak fails the test if frames from the app reached the sink since
// the last check, naming them.
func (l *lab) checkNoLeak(during string) {
	l.t.Helper()
	leaks := l.leaksSinceLast()
	if len(leaks) > 0 {
		l.t.Errorf("LEAK: %d frame(s) reached the sink during %q:\n  %s", len(leaks), during, strings.Join(leaks, "\n  "))
	}
}

// leaksSinceLast returns the frames that reached the sink since the last
// call, read behind a barrier.
func (l *lab) leaksSinceLast() []string {
	l.t.Helper()
	l.barrierN++
	n := l.barrierN
	var err error
	l.do(func() {
		var c net.Conn
		if c, err = net.Dial("udp4", net.JoinHostPort(sinkV4, "9")); err == nil {
			_, err = c.Write([]byte(barrierMagic + strconv.Itoa(n)))
			c.Close()
		}
	})
	if err != nil {
		l.t.Fatalf("leak sink barrier: %v", err)
	}
	if !socks6test.WaitFor(5*time.Second, func() bool {
		l.sniff.mu.Lock()
		defer l.sniff.mu.Unlock()
		return l.sniff.barrier >= n
	}) {
		l.t.Fatalf("leak sink: barrier %d never arrived; the sink does not see the app's frames", n)
	}
	l.sniff.mu.Lock()
	defer l.sniff.mu.Unlock()
	leaks := l.sniff.leaks[l.leaksSeen:]
	l.leaksSeen = len(l.sniff.leaks)
	return leaks
}
