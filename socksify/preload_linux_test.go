//go:build linux && amd64

package socksify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPreloadLibSource: the committed library was built from the
// committed source (preload/build.sh puts the source's SHA-256 in it).
func TestPreloadLibSource(t *testing.T) {
	src, err := os.ReadFile("preload/preload.c")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(src)
	want := "socksify-preload-source:" + hex.EncodeToString(sum[:])
	if !bytes.Contains(preloadLib, []byte(want)) {
		t.Fatalf("preload/socksify-preload.so was not built from preload/preload.c (no %q in it): run sh socksify/preload/build.sh", want)
	}
}

func newTestPreload(t *testing.T) *preloadTable {
	t.Helper()
	tab, err := newPreloadTable(false, 1)
	if err != nil {
		t.Fatalf("newPreloadTable: %v", err)
	}
	t.Cleanup(tab.close)
	return tab
}

// TestCheckLibc: this system's C library is one the library loads with
// (the test machines run glibc 2.36 or musl).
func TestCheckLibc(t *testing.T) {
	if err := checkLibc(); err != nil {
		t.Fatal(err)
	}
}

// TestPreloadTable: the supervisor's reading of slots, as the library
// writes them, and of slots a program scribbled on.
func TestPreloadTable(t *testing.T) {
	tab := newTestPreload(t)
	fill := func(i int, state uint32, name string) {
		s := make([]byte, preloadSlotSize)
		s[0], s[1], s[2], s[3] = byte(state), byte(state>>8), byte(state>>16), byte(state>>24)
		s[8] = byte(len(name))
		copy(s[9:], name)
		if _, err := tab.f.WriteAt(s, int64(preloadHdrSize+i*preloadSlotSize)); err != nil {
			t.Fatal(err)
		}
	}
	fill(0, 2, "www.example.com")
	fill(1, 3, "busy.example.com")  // being written
	fill(2, 4, "Upper.Example.com") // not what the library writes
	fill(3, 6, "10.1")              // numeric
	fill(4, 0, "empty.example.com") // never taken
	fill(5, 8, "a.b\x00c")          // a NUL inside
	for i, want := range []string{"www.example.com", "", "", "", "", ""} {
		got, ok := tab.name(preloadBase + uint32(i))
		if got != want || ok != (want != "") {
			t.Errorf("slot %d: name = %q, %v; want %q", i, got, ok, want)
		}
	}
	if _, ok := tab.name(preloadBase - 1); ok {
		t.Errorf("an index below the table has a name")
	}
	// The slot's use is recorded, for the library's reuse rule.
	var used [4]byte
	tab.f.ReadAt(used[:], preloadHdrSize+4)
	if used == [4]byte{} {
		t.Errorf("reading slot 0 did not mark it used")
	}
	// A program may shorten the table: no name, and no SIGBUS.
	if err := os.Truncate(tab.mp, preloadHdrSize+100); err != nil {
		t.Fatal(err)
	}
	if name, ok := tab.name(preloadBase + 10); ok {
		t.Errorf("a shortened table gave %q", name)
	}
	dir := tab.dir
	tab.close()
	if _, ok := tab.name(preloadBase); ok {
		t.Errorf("a closed table still answers")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("close left %s: %v", dir, err)
	}
	// The program's environment: the library first, an outer socksify's
	// library out, the program's own libraries kept.
	tab = newTestPreload(t)
	env := tab.env([]string{"A=1", "LD_PRELOAD=/x/libfoo.so:/tmp/socksify-1/socksify-preload.so /y/libbar.so"})
	if got := envValue(env, "LD_PRELOAD"); got != tab.lib+" /x/libfoo.so /y/libbar.so" {
		t.Errorf("LD_PRELOAD = %q", got)
	}
	if got := envValue(env, preloadMapEnv); got != tab.mp {
		t.Errorf("%s = %q, want %q", preloadMapEnv, got, tab.mp)
	}
}

// preloadProbe resolves each case with Python's getaddrinfo (a
// dynamically linked C library caller) in a network namespace of its
// own, with the library loaded: the lookups the library leaves to the C
// library fail there without sending anything anywhere.
const preloadProbe = `
import json, socket, sys, threading
out = {}
def gai(key, host, fam=0, flags=0, port="http"):
    try:
        r = socket.getaddrinfo(host.encode(), port, fam, socket.SOCK_STREAM, 0, flags)
        out[key] = [a[4][0] + " " + str(a[4][1]) for a in r]
    except (socket.gaierror, UnicodeError):
        out[key] = "error"
gai("plain", "Www.Example.COM")
gai("again", "www.example.com.")
gai("v6", "www.example.com", socket.AF_INET6)
gai("port", "www.example.com", port="8080")
for k in ["localhost", "10.1", "single", "printer.local", "x.localhost", "4.3.2.1.in-addr.arpa", "a..b", "-x-.example.com", "x-.example.com", "under_score.example.com", "x y.example.com"]:
    gai("fallback " + k, k)
gai("canon", "canon.example.com", flags=socket.AI_CANONNAME)
gai("addrconfig", "addrconfig.example.com", flags=socket.AI_ADDRCONFIG)
gai("fallback localhost.localdomain", "localhost.localdomain")
gai("fallback x.localhost.localdomain", "x.localhost.localdomain")
gai("numerichost", "numeric.example.com", flags=socket.AI_NUMERICHOST)
def many(n):
    for i in range(50):
        gai("many %d %d" % (n, i), "h%d-%d.many.example" % (n, i))
ts = [threading.Thread(target=many, args=(n,)) for n in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
json.dump(out, sys.stdout)
`

// TestPreloadLibrary runs the library in a real program.
func TestPreloadLibrary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the probe runs in a network namespace of its own, so that the lookups left to the C library send nothing")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	tab := newTestPreload(t)
	cmd := exec.Command(py, "-c", preloadProbe)
	cmd.Env = tab.env([]string{"PATH=/usr/bin:/bin"})
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("probe output %q: %v", b, err)
	}
	// addr returns the one address of key and its table name.
	addr := func(key string) (netip.Addr, string, string) {
		t.Helper()
		l, ok := got[key].([]any)
		if !ok || len(l) != 1 {
			t.Errorf("%s: %v, want one address", key, got[key])
			return netip.Addr{}, "", ""
		}
		ip, port, _ := strings.Cut(l[0].(string), " ")
		a, err := netip.ParseAddr(ip)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			return netip.Addr{}, "", ""
		}
		idx, ok := fakeIndex(a)
		if !ok || idx < preloadBase {
			t.Errorf("%s: %s is not a preload address", key, a)
			return a, "", port
		}
		name, _ := tab.name(idx)
		return a, name, port
	}
	a, name, port := addr("plain")
	if !a.Is4() || name != "www.example.com" || port != "80" {
		t.Errorf("plain: %s port %s, table name %q; want an IPv4 preload address, port 80, www.example.com", a, port, name)
	}
	if b, _, _ := addr("again"); b != a {
		t.Errorf("the same name (case, final dot) got %s, then %s", a, b)
	}
	v6, name6, _ := addr("v6")
	if !v6.Is6() || name6 != "www.example.com" {
		t.Errorf("AF_INET6: %s (%q), want the name's IPv6 preload address", v6, name6)
	}
	if _, _, p := addr("port"); p != "8080" {
		t.Errorf("port: %s, want 8080", p)
	}
	for key, v := range got {
		if !strings.HasPrefix(key, "fallback ") && key != "canon" && key != "numerichost" && key != "addrconfig" {
			continue
		}
		// Left to the C library: an answer of its own (localhost,
		// the numeric 10.1), or a failure in this empty namespace.
		if l, ok := v.([]any); ok {
			for _, s := range l {
				ip, _, _ := strings.Cut(s.(string), " ")
				if a, err := netip.ParseAddr(ip); err == nil && isFake(a) {
					t.Errorf("%s: the library answered %s", key, a)
				}
			}
		}
	}
	if l, ok := got["fallback 10.1"].([]any); !ok || len(l) != 1 || l[0] != "10.0.0.1 80" {
		t.Errorf("10.1: %v, want the C library's 10.0.0.1", got["fallback 10.1"])
	}
	// 200 names from four threads at once: 200 addresses, each slot
	// naming its own name.
	seen := map[netip.Addr]string{}
	for n := 0; n < 4; n++ {
		for i := 0; i < 50; i++ {
			key := "many " + strconv.Itoa(n) + " " + strconv.Itoa(i)
			a, name, _ := addr(key)
			want := "h" + strconv.Itoa(n) + "-" + strconv.Itoa(i) + ".many.example"
			if name != want {
				t.Errorf("%s: %s holds %q, want %q", key, a, name, want)
			}
			if prev, dup := seen[a]; dup {
				t.Errorf("%s and %s share %s", prev, want, a)
			}
			seen[a] = want
		}
	}
}

// TestPreloadLibraryEnv: with LOCALDOMAIN or RES_OPTIONS set (the
// program's own search list or ndots), the library leaves every name to
// the C library.
func TestPreloadLibraryEnv(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the probe runs in a network namespace of its own")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	tab := newTestPreload(t)
	for _, kv := range []string{"LOCALDOMAIN=corp.example", "RES_OPTIONS=ndots:3"} {
		cmd := exec.Command(py, "-c", `import socket
try:
    print(socket.getaddrinfo(b"www.example.com", 80, 0, socket.SOCK_STREAM)[0][4][0])
except socket.gaierror:
    print("error")`)
		cmd.Env = tab.env([]string{"PATH=/usr/bin:/bin", kv})
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", kv, err, out)
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(string(out))); err == nil && isFake(a) {
			t.Errorf("with %s the library answered %s", kv, a)
		}
	}
}

// TestRemoveStalePreloadDirs: the directory of a socksify that was killed
// (its pid file names a process that is gone) is removed by the next
// one; a live one's stays.
func TestRemoveStalePreloadDirs(t *testing.T) {
	live := newTestPreload(t)
	stale := newTestPreload(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale.dir+"/pid", []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	next := newTestPreload(t)
	if _, err := os.Stat(stale.dir); !os.IsNotExist(err) {
		t.Errorf("the stale directory %s is still there (%v)", stale.dir, err)
	}
	for _, d := range []string{live.dir, next.dir} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
}

// TestMonoSeconds: the supervisor's clock is the library's
// (CLOCK_MONOTONIC seconds).
func TestMonoSeconds(t *testing.T) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	if got := monoSeconds(); got < uint32(ts.Sec) || got > uint32(ts.Sec)+1 {
		t.Errorf("monoSeconds() = %d, CLOCK_MONOTONIC %d", got, ts.Sec)
	}
}
