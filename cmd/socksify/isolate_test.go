package main_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"golang.org/x/sys/unix"
)

// isolate runs argv under socksify -isolate inside app, waits for it, and
// checks that nothing reached the leak sink meanwhile.
func (l *lab) isolate(o runOpts, argv ...string) *proc {
	l.t.Helper()
	p := l.start(o, append([]string{socksifyBin, "-isolate", "-proxy", l.gw.addr, "-v", "--"}, argv...)...).wait()
	l.checkNoLeak(p.desc)
	return p
}

// fullListener returns the port of a listener inside app whose accept
// queue is full (backlog 0, one connection waiting), so that it drops
// further SYNs: a connect to it hangs until the connecting side gives up.
func (l *lab) fullListener(t *testing.T) int {
	t.Helper()
	var port, fd int
	var err error
	l.do(func() {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return
		}
		if err = unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return
		}
		if err = unix.Listen(fd, 0); err != nil {
			return
		}
		var sa unix.Sockaddr
		if sa, err = unix.Getsockname(fd); err != nil {
			return
		}
		port = sa.(*unix.SockaddrInet4).Port
		var c net.Conn
		if c, err = net.Dial("tcp", l.target("127.0.0.1", port)); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	})
	if fd > 0 {
		t.Cleanup(func() { unix.Close(fd) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestIsolate runs real programs in socksify's strict mode: a network
// namespace of their own whose only way out is the TUN device that
// socksify's user-space stack serves.
func TestIsolate(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	l := newLab(t)

	t.Run("curl_by_name", func(t *testing.T) {
		target := l.target("example.test", l.httpPort)
		p := l.isolate(runOpts{}, curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/iso"))
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(target, "/iso"))
		// -v names the process, found by its socket in the namespace.
		if !regexp.MustCompile(`socksify: curl\[\d+\] tcp example\.test:` + strconv.Itoa(l.httpPort)).MatchString(p.stderr.String()) {
			t.Errorf("socksify -v: no line naming curl for example.test in:\n%s", p.stderr.String())
		}
		l.waitSession(target) // the gateway got the name
	})
	t.Run("curl_ipv6_literal", func(t *testing.T) {
		target := l.target(literalV6, l.httpPort)
		p := l.isolate(runOpts{}, curl, "-sS", "-g", "--max-time", "10", l.url(literalV6, l.httpPort, "/iso6"))
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(target, "/iso6"))
		l.waitSession(target)
	})
	t.Run("closed_port", func(t *testing.T) {
		p := l.isolate(runOpts{}, curl, "-sS", "--max-time", "10", l.url("example.test", l.closedPort, "/"))
		expectExit(t, p, 7) // ECONNREFUSED: the stack resets what the gateway refused
		expectContains(t, "socksify -v", p.stderr.String(), "connection refused (0x05) -> ECONNREFUSED")
	})
	// The gateway's reason reaches the program as the errno its connect
	// returns, as in the seccomp mode: an ICMP error answers the SYN.
	t.Run("errno", func(t *testing.T) { l.connectErrnos(t, true) })
	// A gateway timeout has no ICMP form: the SYN stays unanswered, so the
	// program times out on its own, and its SYN retransmissions do not
	// make the gateway try again.
	t.Run("timeout", func(t *testing.T) {
		py := needPython(t)
		port := l.fullListener(t)
		l.dns.SetA("hang.test", 60, "127.0.0.1")
		target := l.target("hang.test", port)
		start := time.Now()
		p := l.isolate(runOpts{}, py, "-c", `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(13)
try:
    s.connect((socket.gethostbyname("hang.test"), `+strconv.Itoa(port)+`))
    print("connected?!")
except OSError as e:
    print("python:", type(e).__name__)
`)
		expectExit(t, p, 0)
		expectContains(t, "python", p.stdout.String(), "python: TimeoutError")
		if el := time.Since(start); el < 12*time.Second {
			t.Errorf("the connect failed after %v, before the program's own 13 s timeout", el)
		}
		expectContains(t, "socksify -v", p.stderr.String(), "-> ETIMEDOUT")
		if n := len(l.gw.sessions(target)); n != 1 {
			t.Errorf("the gateway was asked %d times for %s, want once", n, target)
		}
	})
	// Loopback is the namespace's own: the host's services there are
	// out of reach, and nothing goes around the gateway.
	t.Run("own_loopback", func(t *testing.T) {
		p := l.isolate(runOpts{}, curl, "-sS", "--max-time", "5", l.url("127.0.0.1", l.httpPort, "/lo"))
		expectExit(t, p, 7)
		l.expectNoSession(l.target("127.0.0.1", l.httpPort))
	})
	// A root program keeps only the capabilities that reach no further
	// than its namespace or its files, and the kernel's files that the
	// kernel acts on outside every namespace are read-only: it cannot
	// join another network namespace (socksify's own, its parent's, the
	// way out), nor have the kernel run a helper for it outside.
	t.Run("contained_root", func(t *testing.T) {
		py := needPython(t)
		p := l.isolate(runOpts{}, py, "-c", `
import ctypes, os
for line in open("/proc/self/status"):
    if line.startswith("Cap"):
        print(line.strip())
libc = ctypes.CDLL(None, use_errno=True)
try:
    fd = os.open("/proc/%d/ns/net" % os.getppid(), os.O_RDONLY)
    print("setns:", libc.setns(fd, 0x40000000), ctypes.get_errno())
except OSError as e:
    print("setns: open", e.errno)
for f in ["/proc/sys/kernel/core_pattern", "/sys/kernel/uevent_helper", "/proc/sysrq-trigger"]:
    try:
        open(f, "r+").close() # opened for writing: nothing written
        print("writable:", f)
    except OSError as e:
        print("write", f, e.errno)
for d in ["/proc/sys", "/sys", "/sys/fs/cgroup"]:
    if os.path.ismount(d) or d == "/proc/sys":
        st = os.statvfs(d)
        print("mount %s ro %d nosuid %d" % (d, st.f_flag & os.ST_RDONLY, (st.f_flag & os.ST_NOSUID) // os.ST_NOSUID))
print("uid:", os.getuid())
`)
		expectExit(t, p, 0)
		out := p.stdout.String()
		// CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, KILL,
		// SETGID, SETUID, SETPCAP (bits 0-8), NET_BIND_SERVICE (10),
		// NET_RAW (13), SYS_CHROOT (18), AUDIT_WRITE (29); root starts
		// with no inheritable capabilities.
		for _, set := range []string{"CapPrm:\t00000000200425ff", "CapEff:\t00000000200425ff", "CapBnd:\t00000000200425ff", "CapInh:\t0000000000000000", "CapAmb:\t0000000000000000"} {
			expectContains(t, "the program's capabilities", out, set)
		}
		// Without CAP_SYS_PTRACE the namespace file of a process with
		// more capabilities cannot even be opened (EACCES); setns would
		// fail without CAP_SYS_ADMIN (EPERM).
		if !strings.Contains(out, "setns: open 13\n") && !strings.Contains(out, "setns: -1 1\n") {
			t.Errorf("joining socksify's network namespace did not fail with EACCES or EPERM:\n%s", out)
		}
		expectContains(t, "core_pattern", out, "write /proc/sys/kernel/core_pattern 30\n") // EROFS
		if strings.Contains(out, "writable:") {
			t.Errorf("a kernel file is writable in the namespace:\n%s", out)
		}
		// Read-only, with the flags the host has on them kept (a remount
		// that dropped nosuid would loosen the mount).
		for _, d := range []string{"/proc/sys", "/sys", "/sys/fs/cgroup"} {
			var st unix.Statfs_t
			if unix.Statfs(d, &st) != nil {
				continue
			}
			nosuid := 0
			if st.Flags&unix.ST_NOSUID != 0 {
				nosuid = 1
			}
			want := fmt.Sprintf("mount %s ro 1 nosuid %d\n", d, nosuid)
			if d == "/sys/fs/cgroup" && !strings.Contains(out, "mount "+d+" ") {
				continue // not a mount point here
			}
			expectContains(t, "mount flags", out, want)
		}
	})
	t.Run("static_go_stress", func(t *testing.T) {
		l.stress(t, 200, func(argv ...string) *proc {
			return l.isolate(runOpts{timeout: 45 * time.Second}, argv...)
		})
	})
	t.Run("dig_udp_and_tcp", func(t *testing.T) {
		dig := needTool(t, "dig", "dnsutils")
		answer := regexp.MustCompile(`(?m)^example\.test\.\s+\d+\s+IN\s+A\s+(\S+)$`)
		for _, mode := range []string{"+notcp", "+tcp"} {
			p := l.isolate(runOpts{}, dig, mode, "+time=3", "+tries=1", "example.test", "A")
			expectExit(t, p, 0)
			if m := answer.FindStringSubmatch(p.stdout.String()); m == nil || !isFake(m[1]) {
				t.Errorf("dig %s: answer %v, want a fake address", mode, m)
			}
		}
	})
	// A nameserver on loopback (systemd-resolved's 127.0.0.53) is served
	// inside the namespace, whose loopback is its own.
	t.Run("loopback_nameserver", func(t *testing.T) {
		dig := needTool(t, "dig", "dnsutils")
		conf := filepath.Join("/etc/netns", l.app.Name, "resolv.conf")
		old, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, []byte("nameserver 127.0.0.53\noptions timeout:2 attempts:1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(conf, old, 0o644)
		p := l.isolate(runOpts{}, dig, "+time=3", "+tries=1", "loop.test", "A")
		expectExit(t, p, 0)
		expectContains(t, "dig", p.stdout.String(), "SERVER: 127.0.0.53#53")
		if m := regexp.MustCompile(`(?m)^loop\.test\.\s+\d+\s+IN\s+A\s+(\S+)$`).FindStringSubmatch(p.stdout.String()); m == nil || !isFake(m[1]) {
			t.Errorf("dig via 127.0.0.53: answer %v, want a fake address", m)
		}
		target := l.target("example.test", l.httpPort)
		p = l.isolate(runOpts{}, curl, "-sS", "--max-time", "10", l.url("example.test", l.httpPort, "/lo-ns"))
		expectExit(t, p, 0)
		expectContains(t, "curl", p.stdout.String(), wantBody(target, "/lo-ns"))
	})
	// UDP in the stream (socks6d offers it), and classic UDP ASSOCIATE
	// with a plain SOCKS5 gateway (socks5://).
	t.Run("udp", func(t *testing.T) {
		needUDP(t)
		t0 := time.Now()
		p := l.isolate(runOpts{}, goclientBin, "udp", l.target("udp.test", l.udpPort), "ping-from-isolate")
		expectExit(t, p, 0)
		if !strings.Contains(p.stdout.String(), `"echo:ping-from-isolate"`) {
			t.Errorf("no UDP echo in %q", p.stdout.String())
		}
		if !socks6test.WaitFor(5*time.Second, func() bool { return since(udpRecords(l.gw, "stream"), t0) >= 1 }) {
			t.Errorf("the gateway logged no UDP association in the stream")
		}
	})
	t.Run("udp_classic", func(t *testing.T) {
		needUDP(t)
		t0 := time.Now()
		p := l.start(runOpts{}, socksifyBin, "-isolate", "-proxy", "socks5://"+l.gw.addr, "-v", "--",
			goclientBin, "udp", l.target("udp.test", l.udpPort), "classic-from-isolate").wait()
		l.checkNoLeak(p.desc)
		expectExit(t, p, 0)
		if !strings.Contains(p.stdout.String(), `"echo:classic-from-isolate"`) {
			t.Errorf("no UDP echo in %q", p.stdout.String())
		}
		if !socks6test.WaitFor(5*time.Second, func() bool { return since(udpRecords(l.gw, "classic"), t0) >= 1 }) {
			t.Errorf("the gateway logged no UDP ASSOCIATE")
		}
	})
	// Raw sockets cannot go around the gateway: the namespace has no
	// other way out. (The seccomp mode refuses them instead.)
	t.Run("raw_socket_contained", func(t *testing.T) {
		py := needPython(t)
		p := l.isolate(runOpts{}, py, "-c", `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
pkt = bytes([0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00]) + b"leak"
try:
    s.sendto(pkt, ("`+sinkV4+`", 0))
    print("raw sent")
except OSError as e:
    print("raw refused", e.errno)
`)
		expectExit(t, p, 0)
		// Sent (root may open raw sockets in its namespace), into the TUN
		// device: checkNoLeak proves it went nowhere else.
		expectContains(t, "raw socket", p.stdout.String(), "raw sent")
	})
	// Without the capabilities to make a namespace, socksify -isolate
	// says so and runs nothing.
	t.Run("without_privileges", func(t *testing.T) {
		setpriv := needTool(t, "setpriv", "util-linux")
		marker := filepath.Join(l.dir, "iso-ran")
		p := l.start(runOpts{}, setpriv, "--bounding-set=-sys_admin,-net_admin", "--inh-caps=-all", "--",
			socksifyBin, "-isolate", "-proxy", l.gw.addr, "--", "touch", marker).wait()
		if p.code != 125 {
			t.Errorf("exit status %d, want 125", p.code)
		}
		expectContains(t, "socksify", p.stderr.String(), "needs root")
		if fileExists(marker) {
			t.Errorf("socksify -isolate ran the program without its namespace")
		}
	})
	// Killing socksify takes the TUN device with it: the program's next
	// connection fails instead of going out another way.
	t.Run("supervisor_killed", func(t *testing.T) { l.killBetweenFetches(t, "-isolate") })

}
