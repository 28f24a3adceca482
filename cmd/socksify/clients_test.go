package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLab checks the harness itself, without socksify: the sink sees a
// program that is not wrapped (its DNS query), and the gateway serves a
// proxy-aware client by name.
func TestLab(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl", "curl")
	l := newLab(t)

	p := l.plain(curl, "-sS", "--max-time", "5", l.url("example.test", l.httpPort, "/"))
	if p.code == 0 {
		t.Errorf("curl without socksify reached example.test: %s", p.stdout.String())
	}
	leaks := l.leaksSinceLast()
	if len(leaks) == 0 {
		t.Errorf("the sink saw nothing of an unwrapped curl; a leak would go unnoticed")
	}
	t.Logf("unwrapped curl, as the sink saw it:\n  %s", strings.Join(leaks, "\n  "))
	// Connections to addresses (a fake IPv4 one, an IPv6 one) reach it too.
	for _, host := range []string{"198.18.0.1", "[fd00:5eed::1]"} {
		l.plain(curl, "-sS", "-g", "--max-time", "0.5", "http://"+host+":80/")
		leaks := l.leaksSinceLast()
		if len(leaks) == 0 {
			t.Errorf("the sink saw nothing of an unwrapped curl to %s", host)
		}
		t.Logf("unwrapped curl to %s, as the sink saw it:\n  %s", host, strings.Join(leaks, "\n  "))
	}

	p = l.plain(curl, "-sS", "--max-time", "5", "--socks5-hostname", l.gw.addr, l.url("example.test", l.httpPort, "/"))
	expectExit(t, p, 0)
	expectContains(t, "curl --socks5-hostname", p.stdout.String(), wantBody(l.target("example.test", l.httpPort), "/"))
	l.waitSession(l.target("example.test", l.httpPort))
	l.checkNoLeak("curl --socks5-hostname")
}

func TestCurl(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	l := newLab(t)

	t.Run("by_name", func(t *testing.T) {
		target := l.target("example.test", l.httpPort)
		p := l.socksify(curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/"))
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(target, "/"))
		l.waitSession(target) // the gateway got the name, not an address
		// -v: one line per redirected connection, naming it.
		expectContains(t, "socksify -v", p.stderr.String(), "example.test")
	})
	t.Run("ipv6_literal", func(t *testing.T) {
		target := l.target(literalV6, l.httpPort)
		p := l.socksify(curl, "-sS", "-g", "--max-time", "10", l.url(literalV6, l.httpPort, "/v6"))
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(target, "/v6"))
		l.waitSession(target)
	})
	// Loopback and -direct ranges are reached without the gateway.
	t.Run("loopback_direct", func(t *testing.T) {
		p := l.socksify(curl, "-sS", "--max-time", "10", l.url("127.0.0.1", l.httpPort, "/lo"))
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(l.target("127.0.0.1", l.httpPort), "/lo"))
		l.expectNoSession(l.target("127.0.0.1", l.httpPort))
	})
	t.Run("direct_flag", func(t *testing.T) {
		target := l.target(literalV6, l.httpPort)
		t0 := time.Now()
		p := l.start(runOpts{}, socksifyBin, "-proxy", l.gw.addr, "-direct", literalV6+"/128", "--",
			curl, "-sS", "-g", "--max-time", "10", l.url(literalV6, l.httpPort, "/direct")).wait()
		l.checkNoLeak(p.desc)
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(target, "/direct"))
		time.Sleep(300 * time.Millisecond)
		if n := since(l.gw.sessions(target), t0); n != 0 {
			t.Errorf("the gateway logged %d sessions to %s, a -direct address", n, target)
		}
	})
	t.Run("closed_port", func(t *testing.T) {
		p := l.socksify(curl, "-sS", "--max-time", "10", l.url("example.test", l.closedPort, "/"))
		expectExit(t, p, 7)
		if r := l.waitSession(l.target("example.test", l.closedPort)); r != nil && r["reply"] != "connection refused" {
			t.Errorf("gateway reply %v, want connection refused", r["reply"])
		}
	})
}

func TestPython(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	py := needPython(t)
	script := filepath.Join(testdataDir, "pyclient.py")
	l := newLab(t)

	t.Run("urllib_getpeername", func(t *testing.T) {
		p := l.socksify(py, script, "http", "example.test", strconv.Itoa(l.httpPort))
		expectExit(t, p, 0)
		out := p.stdout.String()
		expectContains(t, "python", out, "python urllib: "+wantBody(l.target("example.test", l.httpPort), "/py"))
		ga := regexp.MustCompile(`python getaddrinfo: (\S+)`).FindStringSubmatch(out)
		if ga == nil || !isFake(ga[1]) {
			t.Fatalf("getaddrinfo did not return a fake address (%s): %v", fakeV4Net, ga)
		}
		expectContains(t, "python getpeername == the fake address", out,
			"python getpeername: ('"+ga[1]+"', "+strconv.Itoa(l.httpPort)+")")
		expectContains(t, "python getpeername after connect(AF_UNSPEC)", out,
			"python getpeername after disconnect: ENOTCONN")
		l.waitSession(l.target("example.test", l.httpPort))
	})
	// getsockname reports the program's real end of its connection to
	// the gateway, in the socket's family (IPv4-mapped when an AF_INET6
	// socket reaches an IPv4 gateway), an address the program can bind
	// another socket to, as programs that keep to one local address do.
	t.Run("getsockname", func(t *testing.T) {
		for _, tc := range []struct{ family, host string }{{"4", "example.test"}, {"6", literalV6}} {
			p := l.socksify(py, script, "sockname", tc.family, tc.host, strconv.Itoa(l.httpPort))
			expectExit(t, p, 0)
			out := p.stdout.String()
			want := map[string]string{"4": "AF_INET", "6": "AF_INET6"}[tc.family]
			expectContains(t, "getsockname", out, "python sockname family: "+want+"\n")
			if tc.family == "6" {
				// The gateway is on 127.0.0.1: the socket reaches it
				// IPv4-mapped.
				expectContains(t, "getsockname", out, "python sockname address: ::ffff:127.0.0.1\n")
			}
			expectContains(t, "bind to getsockname's address", out, "python sockname bind: ok")
			l.waitSession(l.target(tc.host, l.httpPort))
		}
	})
	t.Run("refused", func(t *testing.T) {
		p := l.socksify(py, script, "refused", "example.test", strconv.Itoa(l.closedPort))
		expectExit(t, p, 0)
		expectContains(t, "python", p.stdout.String(), "python refused: ConnectionRefusedError")
	})
	t.Run("errno", func(t *testing.T) { l.connectErrnos(t, false) })
	t.Run("udp", func(t *testing.T) {
		needUDP(t)
		p := l.socksify(py, script, "udp", "udp.test", strconv.Itoa(l.udpPort), "ping-from-python")
		expectExit(t, p, 0)
		out := p.stdout.String()
		expectContains(t, "python udp", out, "python udp: b'echo:ping-from-python' from ('")
		// recvfrom reports the address the program sent to.
		m := regexp.MustCompile(`from \('([^']+)', (\d+)\)\s+python udp resolved: (\S+)`).FindStringSubmatch(out)
		if m == nil || m[1] != m[3] || m[2] != strconv.Itoa(l.udpPort) || !isFake(m[3]) {
			t.Errorf("recvfrom source %v, want the fake address of udp.test and port %d", m, l.udpPort)
		}
	})
}

func TestStaticGo(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	l := newLab(t)

	t.Run("http_by_name", func(t *testing.T) {
		target := l.target("example.test", l.httpPort)
		p := l.socksify(goclientBin, "http", l.url("example.test", l.httpPort, "/go"))
		expectExit(t, p, 0)
		expectContains(t, "goclient", p.stdout.String(), "go-static got: "+wantBody(target, "/go"))
		l.waitSession(target)
	})
	t.Run("http_six", func(t *testing.T) { // a name the gateway reaches over IPv6 only
		target := l.target("six.test", l.httpPort)
		p := l.socksify(goclientBin, "http", l.url("six.test", l.httpPort, "/six"))
		expectExit(t, p, 0)
		expectContains(t, "goclient", p.stdout.String(), "go-static got: "+wantBody(target, "/six"))
		l.waitSession(target)
	})
	t.Run("resolve", func(t *testing.T) {
		p := l.socksify(goclientBin, "resolve", "example.test")
		expectExit(t, p, 0)
		addrs := strings.Fields(p.stdout.String())
		if len(addrs) == 0 {
			t.Fatal("no addresses")
		}
		for _, a := range addrs {
			if !isFake(a) {
				t.Errorf("example.test resolved to %s, not a fake address", a)
			}
		}
	})
	t.Run("stress", func(t *testing.T) {
		l.stress(t, 500, func(argv ...string) *proc {
			return l.socksifyOpts(runOpts{timeout: 45 * time.Second}, argv...)
		})
	})
	t.Run("udp", func(t *testing.T) {
		needUDP(t)
		p := l.socksify(goclientBin, "udp", l.target("udp.test", l.udpPort), "ping-from-go")
		expectExit(t, p, 0)
		out := p.stdout.String()
		m := regexp.MustCompile(`go-static udp reply "echo:ping-from-go" from (\S+) \(sent to (\S+)\)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no UDP reply in %q", out)
		}
		if m[1] != m[2] {
			t.Errorf("reply came from %s, want the address the program sent to, %s", m[1], m[2])
		}
	})
}

func TestStaticMusl(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	bin := needMusl(t)
	l := newLab(t)
	target := l.target("example.test", l.httpPort)
	p := l.socksify(bin, "example.test", strconv.Itoa(l.httpPort))
	expectExit(t, p, 0)
	out := p.stdout.String()
	expectContains(t, "musl", out, "body: "+wantBody(target, "/musl"))
	m := regexp.MustCompile(`resolved example.test -> (\S+)\s+getpeername=(\S+)`).FindStringSubmatch(out)
	if m == nil || !isFake(m[1]) || m[1] != m[2] {
		t.Errorf("resolved address and peer %v, want the same fake address", m)
	}
	l.waitSession(target)
}

func TestSSH(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	ssh := needTool(t, "ssh", "openssh-client")
	l := newLab(t)
	p := l.socksify(ssh, "-v", "-F", "/dev/null",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=10", "-p", strconv.Itoa(l.sshPort), "user@ssh.test", "true")
	errOut := p.stderr.String()
	expectContains(t, "ssh -v", errOut, "Remote protocol version 2.0, remote software version LabBanner_1.0")
	if m := regexp.MustCompile(`Connecting to ssh.test \[([^\]]+)\]`).FindStringSubmatch(errOut); m == nil || !isFake(m[1]) {
		t.Errorf("ssh connected to %v, want a fake address", m)
	}
	l.waitSession(l.target("ssh.test", l.sshPort))
}

func TestNetcat(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	nc := needTool(t, "nc", "netcat-openbsd")
	l := newLab(t)

	t.Run("tcp6", func(t *testing.T) {
		p := l.socksifyOpts(runOpts{stdin: "hi-nc6\n"}, nc, "-6", "-N", "-w", "10", "six.test", strconv.Itoa(l.echoPort))
		expectExit(t, p, 0)
		expectContains(t, "nc -6", p.stdout.String(), "hi-nc6")
		l.waitSession(l.target("six.test", l.echoPort))
	})
	t.Run("udp", func(t *testing.T) {
		needUDP(t)
		p := l.socksifyOpts(runOpts{stdin: "hi-ncu\n"}, nc, "-u", "-w", "2", "udp.test", strconv.Itoa(l.udpPort))
		expectContains(t, "nc -u", p.stdout.String(), "echo:hi-ncu")
	})
}

func TestDig(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	dig := needTool(t, "dig", "dnsutils")
	l := newLab(t)
	answer := regexp.MustCompile(`(?m)^example\.test\.\s+\d+\s+IN\s+A\s+(\S+)$`)
	for _, mode := range []string{"+notcp", "+tcp"} {
		t.Run(strings.TrimPrefix(mode, "+"), func(t *testing.T) {
			p := l.socksify(dig, mode, "+time=3", "+tries=1", "example.test", "A")
			expectExit(t, p, 0)
			out := p.stdout.String()
			expectContains(t, "dig", out, "status: NOERROR")
			expectContains(t, "dig", out, "SERVER: "+sinkV4+"#53") // dig believes the sink answered
			if m := answer.FindStringSubmatch(out); m == nil || !isFake(m[1]) || !strings.HasPrefix(m[1], "198.1") {
				t.Errorf("dig %s: answer %v, want an A record in %s", mode, m, fakeV4Net)
			}
		})
	}
	t.Run("getent", func(t *testing.T) {
		// A lookup of both families gets one fake address, IPv4 (the
		// gateway has one): the AAAA query that follows the A query gets
		// no data, so glibc has nothing to sort.
		p := l.socksify("getent", "ahosts", "both.test")
		expectExit(t, p, 0)
		f := strings.Fields(p.stdout.String())
		if len(f) == 0 || !isFake(f[0]) || strings.Contains(f[0], ":") {
			t.Errorf("getent ahosts both.test: %q, want one fake IPv4 address", p.stdout.String())
		}
		for _, s := range f {
			if isFake(s) && s != f[0] {
				t.Errorf("getent ahosts both.test: second fake address %s in %q", s, p.stdout.String())
			}
		}
		// An IPv6 lookup alone gets a fake IPv6 address.
		p = l.socksify("getent", "ahostsv6", "six.test")
		expectExit(t, p, 0)
		f = strings.Fields(p.stdout.String())
		if len(f) == 0 || !isFake(f[0]) || !strings.Contains(f[0], ":") {
			t.Errorf("getent ahostsv6 six.test: %q, want a fake IPv6 address", p.stdout.String())
		}
	})
	// With -warm socksify also sends each name it hands out a fake
	// address for to the gateway's resolver (RESOLVE), so that the
	// gateway's lookup overlaps the rest of the program's: the name
	// server is asked by the gateway, never by the program.
	t.Run("warms_gateway", func(t *testing.T) {
		// The program stays a while after its lookup: warming is done in
		// the background and stops with the program (a dig that exits at
		// once can end socksify before the RESOLVE went out).
		bash := needTool(t, "bash", "bash")
		p := l.start(runOpts{}, socksifyBin, "-proxy", l.gw.addr, "-warm", "--",
			bash, "-c", dig+" +time=3 +tries=1 warm.test A && sleep 2").wait()
		l.checkNoLeak(p.desc)
		expectExit(t, p, 0)
		r := l.gw.wait(t, 5*time.Second, func(r map[string]any) bool {
			return r["msg"] == "resolve" && fmt.Sprint(r["target"]) == "warm.test"
		})
		if r == nil {
			t.Errorf("the gateway logged no RESOLVE of warm.test")
		}
	})
	t.Run("no_warm", func(t *testing.T) {
		before := l.dns.QueriesTotal()
		p := l.start(runOpts{}, socksifyBin, "-proxy", l.gw.addr, "--", dig, "+time=3", "+tries=1", "cold.test", "A").wait()
		l.checkNoLeak(p.desc)
		expectExit(t, p, 0)
		time.Sleep(300 * time.Millisecond)
		if n := l.dns.QueriesTotal() - before; n != 0 {
			t.Errorf("the gateway's name server got %d queries; without -warm dig is answered by socksify alone", n)
		}
	})
}

// TestShellTree runs a shell whose children and grandchildren fetch: the
// filter is inherited across fork and exec.
func TestShellTree(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	bash := needTool(t, "bash", "bash")
	l := newLab(t)
	u := func(path string) string { return l.url("example.test", l.httpPort, path) }
	script := curl + " -sS --max-time 10 " + u("/child") + "; " +
		"(sleep 0.1; " + curl + " -sS --max-time 10 " + u("/grandchild") + ") & wait"
	target := l.target("example.test", l.httpPort)
	t.Run("grandchild", func(t *testing.T) {
		t0 := time.Now()
		p := l.socksify(bash, "-c", script)
		expectExit(t, p, 0)
		expectContains(t, "child", p.stdout.String(), wantBody(target, "/child"))
		expectContains(t, "grandchild", p.stdout.String(), wantBody(target, "/grandchild"))
		if !waitSessions(l, target, t0, 2) {
			t.Errorf("the gateway logged %d sessions to %s, want 2", since(l.gw.sessions(target), t0), target)
		}
	})
	// A grandchild that outlives the program: socksify keeps serving it,
	// and still exits with the program's status.
	t.Run("orphan", func(t *testing.T) {
		p := l.socksify(bash, "-c", "(sleep 0.3; "+curl+" -sS --max-time 10 "+u("/orphan")+") & echo parent-exits; exit 3")
		expectExit(t, p, 3)
		expectContains(t, "parent", p.stdout.String(), "parent-exits")
		expectContains(t, "orphan", p.stdout.String(), wantBody(target, "/orphan"))
	})
}

// stress runs the static Go client's "stress N" (N fetches of
// example.test) with run, and checks that all succeeded and that the
// gateway logged N sessions for them.
func (l *lab) stress(t *testing.T, n int, run func(argv ...string) *proc) {
	t.Helper()
	target := l.target("example.test", l.httpPort)
	t0 := time.Now()
	p := run(goclientBin, "stress", strconv.Itoa(n), l.url("example.test", l.httpPort, "/stress"))
	expectExit(t, p, 0)
	if !strings.Contains(p.stdout.String(), strconv.Itoa(n)+" requests, 0 failures") {
		// The program's errors are among socksify's -v lines, which the
		// log shortens: show them on their own.
		errs := regexp.MustCompile(`(?m)^request \d+: .*$`).FindAllString(p.stderr.String(), -1)
		var other []string // socksify -v lines of connections that did not succeed
		ok := 0
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			switch {
			case !strings.HasPrefix(line, "socksify: "):
			case strings.Contains(line, ": succeeded"):
				ok++
			default:
				other = append(other, line)
			}
		}
		t.Errorf("goclient stress: %q; its errors:\n%s\nsocksify -v: %d connections succeeded; the others:\n%s",
			strings.TrimSpace(p.stdout.String()), strings.Join(errs, "\n"), ok, strings.Join(other, "\n"))
	}
	if !waitSessions(l, target, t0, n) {
		t.Errorf("the gateway logged %d sessions to %s, want %d", since(l.gw.sessions(target), t0), target, n)
	}
}

// waitSessions waits until the gateway logged n sessions to target that
// began at or after t0.
func waitSessions(l *lab, target string, t0 time.Time, n int) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if since(l.gw.sessions(target), t0) >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// connectErrnos connects python3 under socksify (-isolate if isolate is
// set), through a gateway of its own that denies two names, to names the
// gateway refuses for different reasons, over IPv4 and IPv6 fake
// addresses, and checks the errno each connect returns: the reply code's
// errno (EHOSTUNREACH for a name that does not exist, EACCES for a denied
// one). In the isolate mode an ICMP error carries it, and for IPv4 Linux
// reports "administratively prohibited" as EHOSTUNREACH.
func (l *lab) connectErrnos(t *testing.T, isolate bool) {
	t.Helper()
	py := needPython(t)
	gw := l.startGatewayAt("127.0.0.1:0", "\n[[rule]]\naction = \"deny\"\ndomains = [\"denied.test\", \"denied6.test\"]\n")
	denied4 := syscall.EACCES
	if isolate {
		denied4 = syscall.EHOSTUNREACH
	}
	for _, c := range []struct {
		family, host string
		want         syscall.Errno
	}{
		{"4", "nosuch.test", syscall.EHOSTUNREACH}, // NXDOMAIN at the gateway
		{"6", "nosuch6.test", syscall.EHOSTUNREACH},
		{"4", "denied.test", denied4}, // not allowed by ruleset
		{"6", "denied6.test", syscall.EACCES},
	} {
		argv := []string{socksifyBin, "-proxy", gw.addr, "-v"}
		if isolate {
			argv = append(argv, "-isolate")
		}
		argv = append(argv, "--", py, filepath.Join(testdataDir, "pyclient.py"), "errno", c.family, c.host, "80")
		p := l.start(runOpts{}, argv...).wait()
		l.checkNoLeak(p.desc)
		expectExit(t, p, 0)
		expectContains(t, "python", p.stdout.String(), fmt.Sprintf("python errno: %s %s %d", c.family, c.host, int(c.want)))
		if !regexp.MustCompile(`socksify: python3?\[\d+\] tcp ` + regexp.QuoteMeta(c.host) + `:80`).MatchString(p.stderr.String()) {
			t.Errorf("socksify -v: no line naming python for %s in:\n%s", c.host, p.stderr.String())
		}
	}
}

// TestSupervisorKilled kills socksify with SIGKILL while its program
// sleeps between two fetches: the second fetch must fail (fail closed),
// and nothing may reach the sink.
func TestSupervisorKilled(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	l := newLab(t)
	l.killBetweenFetches(t, "-v")
}

// killBetweenFetches runs a shell under socksify (with flags) that
// fetches once, waits, and fetches again; it SIGKILLs socksify in
// between. The second fetch must fail (fail closed) and nothing may
// reach the sink.
func (l *lab) killBetweenFetches(t *testing.T, flags ...string) {
	t.Helper()
	curl := needTool(t, "curl", "curl")
	bash := needTool(t, "bash", "bash")
	flag := filepath.Join(t.TempDir(), "go-on")
	script := curl + " -sS --max-time 5 " + l.url("example.test", l.httpPort, "/first") + "; echo first-done; " +
		"i=0; while [ ! -e " + flag + " ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; " +
		curl + " -sS --max-time 5 " + l.url("example.test", l.httpPort, "/second") + "; echo second-exit=$?"
	argv := append(append([]string{socksifyBin, "-proxy", l.gw.addr}, flags...), "--", bash, "-c", script)
	t0 := time.Now()
	p := l.start(runOpts{}, argv...)
	if !p.waitOutput("first-done", 15*time.Second) {
		p.wait()
		t.Fatal("the first fetch did not finish")
	}
	pid := p.cmd.Process.Pid
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) != "socksify" {
		t.Fatalf("process %d is %q, not socksify", pid, comm)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := p.waitOutput("second-exit=", 20*time.Second)
	p.wait()
	out := p.stdout.String()
	expectContains(t, "first fetch", out, wantBody(l.target("example.test", l.httpPort), "/first"))
	if strings.Contains(out, "Path=/second") {
		t.Errorf("the second fetch succeeded after socksify was killed")
	}
	switch {
	case !got:
		t.Logf("the program did not reach its second fetch (killed with the supervisor?)")
	case strings.Contains(out, "second-exit=0"):
		t.Errorf("the second curl exited 0 after socksify was killed")
	}
	l.checkNoLeak("fetch after socksify was killed")
	if n := since(l.gw.sessions(l.target("example.test", l.httpPort)), t0); n > 1 {
		t.Errorf("the gateway logged %d sessions, want only the first fetch's", n)
	}
}

// TestNoGateway: without a gateway socksify exits 2 and does not run the
// program.
func TestNoGateway(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	// In a lab: discovery probes port 1080 of loopback and of the default
	// router (here the sink), where nothing listens.
	l := newLab(t)
	marker := filepath.Join(l.dir, "ran")
	p := l.start(runOpts{}, socksifyBin, "--", "touch", marker).wait()
	if p.code != 2 {
		t.Errorf("exit status %d, want 2", p.code)
	}
	if fileExists(marker) {
		t.Errorf("socksify ran the program without a gateway")
	}
	expectContains(t, "socksify", p.stderr.String(), "no gateway configured")
}

// TestDiscovery: with no gateway configured, socksify uses a SOCKS
// server on port 1080 of loopback (a socks6d on the same machine).
func TestDiscovery(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	l := newLab(t)
	g := l.startGatewayAt("127.0.0.1:1080", "")
	target := l.target("example.test", l.httpPort)
	p := l.start(runOpts{}, socksifyBin, "-v", "--", curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/found")).wait()
	l.checkNoLeak(p.desc)
	expectExit(t, p, 0)
	expectContains(t, "curl", p.stdout.String(), wantBody(target, "/found"))
	expectContains(t, "socksify -v", p.stderr.String(), "using the SOCKS server on loopback 127.0.0.1:1080")
	if r := g.wait(t, 5*time.Second, func(r map[string]any) bool { return r["msg"] == "session" && r["target"] == target }); r == nil {
		t.Errorf("the gateway on 127.0.0.1:1080 logged no session to %s", target)
	}
}

// TestSupervisedEnvAlone: SOCKSIFY_SUPERVISED=1 without an outer
// socksify's seccomp filter (exported by hand, or leaked out of a
// supervised shell) is not trusted: the program is supervised as usual,
// and its connection goes through the gateway, not out directly.
func TestSupervisedEnvAlone(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	l := newLab(t)
	target := l.target("example.test", l.httpPort)
	argv := append([]string{"env", "SOCKSIFY_SUPERVISED=1"}, l.socksifyArgv(curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/env-alone"))...)
	p := l.start(runOpts{}, argv...).wait()
	l.checkNoLeak(p.desc)
	expectExit(t, p, 0)
	expectContains(t, "curl with SOCKSIFY_SUPERVISED=1 alone", p.stdout.String(), wantBody(target, "/env-alone"))
	l.waitSession(target)
}

// TestNested: socksify under socksify runs the program (once supervised).
func TestNested(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	l := newLab(t)
	target := l.target("example.test", l.httpPort)
	p := l.socksify(l.socksifyArgv(curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/nested"))...)
	expectExit(t, p, 0)
	expectContains(t, "nested curl", p.stdout.String(), wantBody(target, "/nested"))
	l.waitSession(target)
}

// The same through the binary: a program under socksify prints its
// environment, and the password is not in it. No gateway is contacted.
func TestProgramEnvBinary(t *testing.T) {
	needSocksify(t)
	cmd := exec.Command(socksifyBin, "--", "env")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "ALL_PROXY=socks5://u:secret@127.0.0.1:1", "SOCKS6_PASSWORD=secret2"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("socksify -- env: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "secret") || !strings.Contains(string(out), "SOCKSIFY_SUPERVISED=1") {
		t.Errorf("the program's environment:\n%s", out)
	}
}
