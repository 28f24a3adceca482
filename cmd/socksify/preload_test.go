package main_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The preload fast path's addresses: fake indexes 0x1c000 and up
// (socksify/preload.go), 198.19.192.0/18 and fd00:5eed::1:c000 up.
func isPreloadAddr(s string) bool {
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return false
	}
	a = a.Unmap()
	if a.Is4() {
		return netip.MustParsePrefix("198.19.192.0/18").Contains(a)
	}
	b := a.As16()
	return netip.MustParsePrefix("fd00:5eed::/64").Contains(a) && b[8]|b[9]|b[10]|b[11]|b[12] == 0 &&
		uint32(b[13])<<16|uint32(b[14])<<8|uint32(b[15]) >= 0x1c000
}

// preloadProbe prints what getaddrinfo (Python's, the C library's)
// gives each name, and the program's LD_PRELOAD.
const preloadProbe = `
import os, socket, sys
for h in sys.argv[1:]:
    try:
        print(h, socket.getaddrinfo(h.encode(), 80, 0, socket.SOCK_STREAM)[0][4][0])
    except Exception as e:
        print(h, "error", type(e).__name__)
print("LD_PRELOAD=" + os.environ.get("LD_PRELOAD", ""))
`

// TestPreload: the getaddrinfo fast path (socksify/preload.go) in the
// lab, with the leak sink at 0: curl's names are given addresses by the
// library and still reach the gateway as names; names in /etc/hosts, names
// the search list decides and -no-preload go the old way.
func TestPreload(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	py := needPython(t)
	l := newLab(t)
	etc := filepath.Join("/etc/netns", l.app.Name)
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// ip netns exec bind-mounts these over /etc/hosts and
	// /etc/nsswitch.conf, for socksify and its programs alike: the test
	// does not depend on the machine's name service configuration.
	write("hosts", "127.0.0.1 localhost\n127.0.0.9 hosted.example.test alias.example.test # comment\n")
	write("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
	resolv, err := os.ReadFile(filepath.Join(etc, "resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// probe runs the probe under socksify (with extra flags) and
	// returns name → first address (or "error").
	probe := func(flags []string, names ...string) (map[string]string, string) {
		t.Helper()
		argv := append([]string{socksifyBin, "-proxy", l.gw.addr}, flags...)
		argv = append(append(argv, "--", py, "-c", preloadProbe), names...)
		p := l.start(runOpts{}, argv...).wait()
		l.checkNoLeak(p.desc)
		expectExit(t, p, 0)
		got, preload := map[string]string{}, ""
		for _, line := range strings.Split(strings.TrimSpace(p.stdout.String()), "\n") {
			if v, ok := strings.CutPrefix(line, "LD_PRELOAD="); ok {
				preload = v
				continue
			}
			k, v, _ := strings.Cut(line, " ")
			got[k] = v
		}
		return got, preload
	}

	t.Run("curl", func(t *testing.T) {
		target := l.target("example.test", l.httpPort)
		p := l.socksify(curl, "-sS", "--max-time", "10", "-w", "\nremote %{remote_ip}\n", l.url("example.test", l.httpPort, "/preload"))
		expectExit(t, p, 0)
		out := p.stdout.String()
		expectContains(t, "curl", out, wantBody(target, "/preload"))
		m := regexp.MustCompile(`remote (\S+)`).FindStringSubmatch(out)
		if m == nil || !isPreloadAddr(m[1]) {
			t.Errorf("curl connected to %v, want an address of the preload library's", m)
		}
		l.waitSession(target) // the gateway got the name
	})
	t.Run("names", func(t *testing.T) {
		got, preload := probe(nil, "a.preload.test", "A.Preload.TEST.", "hosted.example.test", "ALIAS.example.test", "alias.example.test.",
			"under_score.preload.test", "localhost", "10.1")
		if !strings.Contains(preload, "socksify-preload.so") {
			t.Errorf("LD_PRELOAD=%q, want socksify's library", preload)
		}
		if a := got["a.preload.test"]; !isPreloadAddr(a) || got["A.Preload.TEST."] != a {
			t.Errorf("a.preload.test: %q, A.Preload.TEST.: %q; want the same preload address", a, got["A.Preload.TEST."])
		}
		for _, n := range []string{"hosted.example.test", "ALIAS.example.test"} {
			if got[n] != "127.0.0.9" {
				t.Errorf("%s: %q, want 127.0.0.9 from /etc/hosts", n, got[n])
			}
		}
		// glibc's files module does not match a name with a final dot,
		// so DNS answers it; the library leaves it to them.
		if a := got["alias.example.test."]; !isFake(a) || isPreloadAddr(a) {
			t.Errorf("alias.example.test.: %q, want a fake address of the fake DNS", a)
		}
		// Not a host name: the fake DNS answers it, as before.
		if a := got["under_score.preload.test"]; !isFake(a) || isPreloadAddr(a) {
			t.Errorf("under_score.preload.test: %q, want a fake address of the fake DNS", a)
		}
		if got["localhost"] != "127.0.0.1" || got["10.1"] != "10.0.0.1" {
			t.Errorf("localhost: %q, 10.1: %q", got["localhost"], got["10.1"])
		}
	})
	t.Run("ndots", func(t *testing.T) {
		// With a search list and ndots:2, glibc asks for a one-dot
		// name with the search domain first: the fake DNS decides.
		write("resolv.conf", string(resolv)+"search corp.test\noptions ndots:2\n")
		defer write("resolv.conf", string(resolv))
		got, _ := probe(nil, "b.test", "a.b.test")
		if a := got["b.test"]; !isFake(a) || isPreloadAddr(a) {
			t.Errorf("b.test: %q, want a fake address of the fake DNS", a)
		}
		if a := got["a.b.test"]; !isPreloadAddr(a) {
			t.Errorf("a.b.test: %q, want a preload address", a)
		}
	})
	// getpeername on a socket connected to a fake address: the
	// library answers it, with what the supervisor would (which logs
	// each one it answers); with -no-preload the supervisor does.
	t.Run("getpeername", func(t *testing.T) {
		script := `
import socket, sys
s = socket.create_connection(("example.test", int(sys.argv[1])))
print("peer", s.getpeername()[0], s.getpeername()[1])
s.close()
`
		for _, flags := range [][]string{nil, {"-no-preload"}} {
			argv := append([]string{"env", "SOCKSIFY_DEBUG=1", socksifyBin, "-proxy", l.gw.addr}, flags...)
			p := l.start(runOpts{}, append(argv, "--", py, "-c", script, strconv.Itoa(l.httpPort))...).wait()
			l.checkNoLeak(p.desc)
			expectExit(t, p, 0)
			m := regexp.MustCompile(`peer (\S+) (\d+)`).FindStringSubmatch(p.stdout.String())
			if m == nil || !isFake(m[1]) || m[2] != strconv.Itoa(l.httpPort) {
				t.Errorf("%v: getpeername %v, want a fake address and port %d", flags, m, l.httpPort)
				continue
			}
			trapped := strings.Count(p.stderr.String(), `msg="socksify: getpeername"`)
			if flags == nil && (trapped != 0 || !isPreloadAddr(m[1])) {
				t.Errorf("getpeername of %s reached the supervisor %d times; want the library's answer", m[1], trapped)
			}
			if flags != nil && trapped != 2 {
				t.Errorf("-no-preload: the supervisor answered getpeername %d times, want 2", trapped)
			}
		}
	})
	t.Run("no_preload", func(t *testing.T) {
		got, preload := probe([]string{"-no-preload"}, "c.preload.test")
		if preload != "" {
			t.Errorf("-no-preload: LD_PRELOAD=%q", preload)
		}
		if a := got["c.preload.test"]; !isFake(a) || isPreloadAddr(a) {
			t.Errorf("-no-preload: c.preload.test: %q, want a fake address of the fake DNS", a)
		}
	})
}
