package main_test

// End-to-end tests of UDP through the gateway (UDP ASSOCIATE) and of
// listening sockets published through the gateway (-listen), in the lab
// of e2e_test.go.

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
)

// udpSessions returns the gateway's audit records of UDP associations.
func udpSessions(g *gateway) []map[string]any {
	return udpRecords(g, "")
}

// udpRecords returns the gateway's records of UDP associations that
// ended: "udp" records of in-stream associations (kind "stream"),
// "session" records of UDP ASSOCIATE (kind "classic"), or both ("").
func udpRecords(g *gateway, kind string) []map[string]any {
	var out []map[string]any
	for _, r := range g.records() {
		stream := r["msg"] == "udp" && r["assoc"] != nil
		classic := r["msg"] == "session" && r["cmd"] == "udp-associate"
		if stream && kind != "classic" || classic && kind != "stream" {
			out = append(out, r)
		}
	}
	return out
}

// udpEcho starts a UDP echo server ("echo:" + the datagram) at addr
// inside app and returns its port.
func (l *lab) udpEcho(addr string) int {
	l.t.Helper()
	var pc net.PacketConn
	var err error
	l.do(func() { pc, err = net.ListenPacket("udp", addr) })
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { pc.Close() })
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
	return port(pc.LocalAddr())
}

// startGatewayWith starts a second socks6d inside app whose configuration
// has extra appended (policy rules, say).
func (l *lab) startGatewayWith(extra string) *gateway {
	l.t.Helper()
	return l.startGatewayAt("127.0.0.1:0", extra)
}

func TestUDP(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	needUDP(t)
	py := needPython(t)
	script := filepath.Join(testdataDir, "udpclient.py")
	l := newLab(t)
	var mu sync.Mutex // the subtests count the gateway's UDP sessions one at a time

	// Unconnected and connected sockets, by name and to a literal
	// address: every source the program sees is the address it sent to.
	// Both ways to the gateway: UDP in the stream, which socks6d offers
	// and socksify prefers, and classic UDP ASSOCIATE, which a plain
	// SOCKS5 gateway (here: socks5://) leaves.
	v6port := l.udpEcho("[" + literalV6 + "]:0")
	for _, tc := range []struct {
		name, host string
		port       int
		fake       bool
		kind       string // of the associations: "stream" or "classic"
	}{
		{"by_name", "udp.test", l.udpPort, true, "stream"},
		{"literal_v6", literalV6, v6port, false, "stream"},
		{"classic_by_name", "udp.test", l.udpPort, true, "classic"},
		{"classic_literal_v6", literalV6, v6port, false, "classic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			defer mu.Unlock()
			t0 := time.Now()
			proxy := l.gw.addr
			if tc.kind == "classic" {
				proxy = "socks5://" + l.gw.addr
			}
			p := l.start(runOpts{}, socksifyBin, "-proxy", proxy, "-v", "--", py, script, "assoc", tc.host, strconv.Itoa(tc.port)).wait()
			l.checkNoLeak(p.desc)
			expectExit(t, p, 0)
			out := p.stdout.String()
			m := regexp.MustCompile(`resolved: (\S+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no address resolved: %q", out)
			}
			addr := m[1]
			if tc.fake != isFake(addr) {
				t.Errorf("resolved to %s; fake: %v, want %v", addr, isFake(addr), tc.fake)
			}
			src := addr + " " + strconv.Itoa(tc.port)
			for _, want := range []string{
				"recvfrom: echo:unconnected-0 from " + src,
				"recvfrom: echo:unconnected-1 from " + src,
				"recvmsg: echo:msg-parts from " + src + " ancillary 0",
				"gso: echo:aaaaa echo:bbbbb echo:cc",
				"getpeername: " + src,
				"recv: echo:connected-send",
				"connected recvfrom: echo:connected-recvfrom from " + src,
			} {
				expectContains(t, "udpclient assoc", out, want)
			}
			// One association per socket, of the kind asked for: two,
			// which end (the sweep notices the closed sockets) and are
			// logged.
			if !socks6test.WaitFor(5*time.Second, func() bool { return since(udpRecords(l.gw, tc.kind), t0) >= 2 }) {
				t.Errorf("the gateway logged %d %s UDP associations, want 2", since(udpRecords(l.gw, tc.kind), t0), tc.kind)
			}
			time.Sleep(200 * time.Millisecond)
			if n, all := since(udpRecords(l.gw, tc.kind), t0), since(udpSessions(l.gw), t0); n != 2 || all != 2 {
				t.Errorf("the gateway logged %d %s UDP associations (%d of any kind), want 2", n, tc.kind, all)
			}
			if n := strings.Count(p.stderr.String(), " udp "); n != 2 {
				t.Errorf("socksify -v printed %d udp lines, want 2:\n%s", n, p.stderr.String())
			}
		})
	}

	// Destinations the kernel takes that are easy to miss: an IPv4 UDP
	// socket sends to an AF_UNSPEC address as if it were AF_INET, and a
	// sendmmsg sends the messages before one with an unusable name. Both
	// go through the gateway (the echo answers), nothing leaks (l.socksify
	// checks the sink).
	t.Run("unspec_and_short_names", func(t *testing.T) {
		mu.Lock()
		defer mu.Unlock()
		p := l.socksify(py, script, "unspec", "udp.test", strconv.Itoa(l.udpPort))
		expectExit(t, p, 0)
		out := p.stdout.String()
		m := regexp.MustCompile(`resolved: (\S+)`).FindStringSubmatch(out)
		if m == nil || !isFake(m[1]) {
			t.Fatalf("udp.test did not resolve to a fake address: %q", out)
		}
		src := m[1] + " " + strconv.Itoa(l.udpPort)
		for _, want := range []string{
			"recvfrom: echo:unspec from " + src,
			"sendmmsg: 1\n",
			"recvfrom: echo:mmsg-ok from " + src,
			"sendmsg long name: 9\n",
			"recvfrom: echo:long-name from " + src,
		} {
			expectContains(t, "udpclient unspec", out, want)
		}
	})

	// A signal interrupts a receive the supervisor emulates as it would
	// the kernel's: with SA_RESTART the handler runs and the receive
	// goes on (and gets the echo of what the handler sent); without it
	// the receive fails with EINTR.
	t.Run("signal_restart", func(t *testing.T) {
		bin := needMuslProgram(t, "sigrestart")
		mu.Lock()
		defer mu.Unlock()
		for mode, want := range map[string]string{
			"restart":   "blocked: echo:late (handler ran: 1)",
			"interrupt": "blocked: EINTR (handler ran: 1)",
		} {
			p := l.socksify(bin, "udp.test", strconv.Itoa(l.udpPort), mode)
			expectExit(t, p, 0)
			expectContains(t, "sigrestart "+mode, p.stdout.String(), "first: echo:first")
			expectContains(t, "sigrestart "+mode, p.stdout.String(), want)
		}
	})

	// sendmmsg and recvmmsg from a static musl program.
	t.Run("mmsg_musl", func(t *testing.T) {
		bin := needMmsg(t)
		mu.Lock()
		defer mu.Unlock()
		p := l.socksify(bin, "udp.test", strconv.Itoa(l.udpPort))
		expectExit(t, p, 0)
		out := p.stdout.String()
		expectContains(t, "mmsg", out, "sent: 2 (6, 6 bytes)")
		m := regexp.MustCompile(`reply: echo:mmsg-0 from (\S+) (\d+)`).FindStringSubmatch(out)
		if m == nil || !isFake(m[1]) || m[2] != strconv.Itoa(l.udpPort) {
			t.Errorf("first reply's source %v, want udp.test's fake address and port %d", m, l.udpPort)
		} else {
			expectContains(t, "mmsg", out, "reply: echo:mmsg-1 from "+m[1]+" "+m[2])
		}
	})

	// glibc's resolver sends its A and AAAA queries in one sendmmsg on
	// a socket connected to the name server. The supervisor answers
	// them before that call returns, so the answers are already queued.
	t.Run("dns_answers_queued", func(t *testing.T) {
		bin := needMmsg(t)
		mu.Lock()
		defer mu.Unlock()
		for i := range 3 {
			p := l.socksify(bin, "-dns", sinkV4, "queued"+strconv.Itoa(i)+".test")
			expectExit(t, p, 0)
			expectContains(t, "mmsg -dns", p.stdout.String(), "queued: 2\nanswers: 2\n")
		}
	})

	// A resolver's address sort connects UDP sockets and sends nothing:
	// no association. (The lookup gets one fake address, IPv4: the AAAA
	// query that follows the A query gets no data, see pairWindow.)
	t.Run("connect_only", func(t *testing.T) {
		mu.Lock()
		defer mu.Unlock()
		t0 := time.Now()
		p := l.socksify(py, script, "probe", "udp.test", strconv.Itoa(l.udpPort))
		expectExit(t, p, 0)
		expectContains(t, "udpclient probe", p.stdout.String(), "probes: 1")
		if strings.Contains(p.stderr.String(), " udp ") {
			t.Errorf("socksify made an association for sockets that sent nothing:\n%s", p.stderr.String())
		}
		time.Sleep(2500 * time.Millisecond) // a sweep would have ended one
		if n := since(udpSessions(l.gw), t0); n != 0 {
			t.Errorf("the gateway logged %d UDP associations, want none", n)
		}
	})

	// The association ends when the program closes its socket, while the
	// program still runs.
	t.Run("ends_on_close", func(t *testing.T) {
		mu.Lock()
		defer mu.Unlock()
		t0 := time.Now()
		p := l.start(runOpts{}, l.socksifyArgv(py, script, "hold", "udp.test", strconv.Itoa(l.udpPort), "6")...)
		if !p.waitOutput("closed", 10*time.Second) {
			p.wait()
			t.Fatal("the program did not get its reply")
		}
		closed := time.Now()
		ended := socks6test.WaitFor(4*time.Second, func() bool { return since(udpSessions(l.gw), t0) > 0 })
		select {
		case <-p.done:
			t.Errorf("the program exited before the check")
		default:
		}
		if !ended {
			t.Errorf("the association did not end within 4s of the socket's close")
		} else {
			t.Logf("the association ended %v after the socket's close", time.Since(closed).Round(10*time.Millisecond))
		}
		p.wait()
		l.checkNoLeak(p.desc)
		expectExit(t, p, 0)
	})

	// A gateway that refuses UDP ASSOCIATE: sendto fails with
	// ENETUNREACH; a connected socket's datagram was already accepted, so
	// its receive fails with ECONNREFUSED. Nothing leaks.
	t.Run("refused", func(t *testing.T) {
		g2 := l.startGatewayWith("\n[[rule]]\naction = \"deny\"\ncommands = [\"udp\"]\n")
		p := l.start(runOpts{}, socksifyBin, "-proxy", g2.addr, "-v", "--", py, script, "fail", "udp.test", strconv.Itoa(l.udpPort)).wait()
		l.checkNoLeak(p.desc)
		expectExit(t, p, 0)
		out := p.stdout.String()
		expectContains(t, "sendto", out, fmt.Sprintf("sendto: OSError %d", syscall.ENETUNREACH))
		expectContains(t, "connected send", out, "connected send: ok")
		expectContains(t, "connected recv", out, fmt.Sprintf("connected recv: ConnectionRefusedError %d", syscall.ECONNREFUSED))
		expectContains(t, "socksify -v", p.stderr.String(), "not allowed")
	})
}

var (
	mmsgOnce sync.Once
	mmsgBin  string
	mmsgErr  string
)

// needMmsg builds testdata/mmsg.c with musl-gcc -static.
func needMmsg(t *testing.T) string {
	t.Helper()
	mmsgOnce.Do(func() { mmsgBin, mmsgErr = buildMusl("mmsg") })
	if mmsgBin == "" {
		if strings.HasPrefix(mmsgErr, "musl-gcc not found") {
			t.Skip(mmsgErr)
		}
		t.Fatal(mmsgErr)
	}
	return mmsgBin
}

var muslBins sync.Map // name → func() (bin, whyNot string), built once

// needMuslProgram builds testdata/NAME.c with musl-gcc -static, once per run.
func needMuslProgram(t *testing.T, name string) string {
	t.Helper()
	f, _ := muslBins.LoadOrStore(name, sync.OnceValues(func() (string, string) { return buildMusl(name) }))
	bin, whyNot := f.(func() (string, string))()
	if bin == "" {
		if strings.HasPrefix(whyNot, "musl-gcc not found") {
			t.Skip(whyNot)
		}
		t.Fatal(whyNot)
	}
	return bin
}

// freePort returns a TCP port that nothing listens on inside app, on
// IPv4 and IPv6 loopback.
func (l *lab) freePort() int {
	l.t.Helper()
	var p int
	l.do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return
		}
		p = port(ln.Addr())
		ln.Close()
	})
	if p == 0 {
		l.t.Fatal("no free port")
	}
	return p
}

var publishedRE = regexp.MustCompile(`socksify: (\S+) listening on (\S+) is published at (\S+)`)

// published waits for socksify's line announcing the publication of the
// program's listening socket and returns the public address.
func published(t *testing.T, p *proc) string {
	t.Helper()
	var m []string
	if !socks6test.WaitFor(15*time.Second, func() bool {
		m = publishedRE.FindStringSubmatch(p.stderr.String())
		return m != nil
	}) {
		p.cmd.Cancel()
		p.wait()
		t.Fatal("socksify did not announce a published listener")
	}
	t.Logf("%s listening on %s is published at %s", m[1], m[2], m[3])
	return m[3]
}

// call connects to addr from inside app, sends a line and returns the
// answer and the connection's local address.
func (l *lab) call(addr, line string) (string, string, error) {
	var answer, local string
	var err error
	l.do(func() {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
			return
		}
		defer c.Close()
		local = c.LocalAddr().String()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err = io.WriteString(c, line+"\n"); err != nil {
			return
		}
		var b []byte
		b, err = io.ReadAll(c)
		answer = strings.TrimSpace(string(b))
	})
	return answer, local, err
}

func TestListen(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	py := needPython(t)
	l := newLab(t)

	// python3 -m http.server under "socksify -listen PORT", fetched with
	// curl from outside through the gateway's listener; on 127.0.0.1, and
	// on ::1, where the caller's doorbell is an IPv6 connection.
	for _, bind := range []string{"127.0.0.1", "::1"} {
		name := "http_server"
		if bind == "::1" {
			name = "http_server_v6"
		}
		t.Run(name, func(t *testing.T) {
			curl := needTool(t, "curl", "curl")
			www := filepath.Join(l.dir, "www")
			os.MkdirAll(www, 0o755)
			if err := os.WriteFile(filepath.Join(www, "hello.txt"), []byte("hello through the gateway\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			pt := l.freePort()
			p := l.start(runOpts{timeout: 60 * time.Second}, socksifyBin, "-proxy", l.gw.addr, "-listen", strconv.Itoa(pt), "--",
				py, "-m", "http.server", strconv.Itoa(pt), "--bind", bind, "--directory", www)
			local := net.JoinHostPort(bind, strconv.Itoa(pt))
			pub := published(t, p)
			expectContains(t, "published line", p.stderr.String(), "python3 listening on "+local+" is published at ")
			for i := range 3 {
				c := l.plain(curl, "-sS", "--max-time", "10", "http://"+pub+"/hello.txt")
				expectExit(t, c, 0)
				expectContains(t, fmt.Sprintf("curl %d through the gateway", i), c.stdout.String(), "hello through the gateway")
			}
			// The program still listens locally too.
			c := l.plain(curl, "-sS", "--max-time", "10", "http://"+local+"/hello.txt")
			expectExit(t, c, 0)
			expectContains(t, "curl to the local port", c.stdout.String(), "hello through the gateway")
			if r := l.gw.wait(t, 5*time.Second, func(r map[string]any) bool { return r["msg"] == "session" && r["cmd"] == "take" }); r == nil {
				t.Errorf("the gateway logged no TAKE")
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.wait()
			l.checkNoLeak(p.desc)
			// The served requests came from the callers, as the program saw
			// them (http.server logs the client address).
			expectContains(t, "http.server log", p.stderr.String(), `"GET /hello.txt HTTP/1.1" 200`)
		})
	}

	// A blocking accept() and a selectors (epoll) loop: accept's address
	// and getpeername are the caller's, getsockname the public address;
	// a local caller is served as before; when the program closes its
	// socket, the gateway's listener goes too.
	for _, mode := range []string{"accept", "selectors"} {
		t.Run(mode, func(t *testing.T) {
			pt := l.freePort()
			p := l.start(runOpts{timeout: 60 * time.Second}, socksifyBin, "-proxy", l.gw.addr, "-listen", strconv.Itoa(pt), "-v", "--",
				py, filepath.Join(testdataDir, "server.py"), mode, "127.0.0.1", strconv.Itoa(pt), "3", "5")
			pub := published(t, p)
			pubAP := netipMust(t, pub)
			if !p.waitOutput("listening:", 10*time.Second) {
				t.Fatal("the server did not start")
			}
			expectContains(t, "getsockname of the listener", p.stdout.String(),
				fmt.Sprintf("listening: %s %d", pubAP.Addr(), pubAP.Port()))
			for i := range 2 {
				answer, local, err := l.call(pub, fmt.Sprintf("gw%d", i))
				if err != nil {
					t.Fatalf("call %d through %s: %v", i, pub, err)
				}
				if answer != fmt.Sprintf("hello gw%d", i) {
					t.Errorf("call %d: answer %q", i, answer)
				}
				la := netipMust(t, local)
				want := fmt.Sprintf("accepted: %s %d peer %s %d local %s %d", la.Addr(), la.Port(), la.Addr(), la.Port(), pubAP.Addr(), pubAP.Port())
				if !p.waitOutput(want, 5*time.Second) {
					t.Errorf("the program's view of gateway caller %d: missing %q in:\n%s", i, want, p.stdout.String())
				}
			}
			answer, local, err := l.call("127.0.0.1:"+strconv.Itoa(pt), "local")
			if err != nil || answer != "hello local" {
				t.Fatalf("local call: %q, %v", answer, err)
			}
			la := netipMust(t, local)
			want := fmt.Sprintf("accepted: %s %d peer %s %d local 127.0.0.1 %d", la.Addr(), la.Port(), la.Addr(), la.Port(), pt)
			if !p.waitOutput(want, 5*time.Second) {
				t.Errorf("a local caller: missing %q in:\n%s", want, p.stdout.String())
			}
			if !p.waitOutput("closed", 10*time.Second) {
				t.Fatal("the server did not close its listener")
			}
			// Within a sweep (2s), the gateway's listener is gone.
			gone := false
			for deadline := time.Now().Add(4 * time.Second); !gone && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				l.do(func() {
					c, err := net.DialTimeout("tcp", pub, time.Second)
					if err != nil {
						gone = true
						return
					}
					c.Close()
				})
			}
			if !gone {
				t.Errorf("the gateway still listens at %s after the program closed its socket", pub)
			}
			p.wait()
			l.checkNoLeak(p.desc)
			expectExit(t, p, 0)
			expectContains(t, "socksify -v", p.stderr.String(), "publication at "+pub+" ended")
		})
	}
}

// A static Go server under "-listen all": Go's listener (accept4 on a
// non-blocking socket, epoll) sees the caller, and its addresses.
func TestListenGo(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	l := newLab(t)
	pt := l.freePort()
	p := l.start(runOpts{timeout: 60 * time.Second}, socksifyBin, "-proxy", l.gw.addr, "-listen", "all", "--",
		goclientBin, "serve", "127.0.0.1:"+strconv.Itoa(pt), "2")
	pub := published(t, p)
	expectContains(t, "published line", p.stderr.String(), "goclient listening on 127.0.0.1:"+strconv.Itoa(pt)+" is published at "+pub)
	if !p.waitOutput("listening: "+pub, 10*time.Second) {
		t.Errorf("the Go listener's Addr is not the public address %s: %q", pub, p.stdout.String())
	}
	for i := range 2 {
		answer, local, err := l.call(pub, fmt.Sprintf("go%d", i))
		if err != nil || answer != fmt.Sprintf("hello go%d", i) {
			t.Fatalf("call %d: %q, %v", i, answer, err)
		}
		want := fmt.Sprintf("accepted: %s local %s", netipMust(t, local), pub)
		if !p.waitOutput(want, 5*time.Second) {
			t.Errorf("missing %q in:\n%s", want, p.stdout.String())
		}
	}
	p.wait()
	l.checkNoLeak(p.desc)
	expectExit(t, p, 0)
}

func netipMust(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
