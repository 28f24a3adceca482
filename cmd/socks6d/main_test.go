package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server/auth/htpasswd"
	"golang.org/x/net/proxy"
)

// binPath is the socks6d binary under test, built once by TestMain: each
// test runs it as a real process.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "socks6d-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "socks6d")
	args := []string{"build", "-o", binPath}
	// SOCKS6D_TEST_RACE=1 builds the daemon with the race detector too.
	// It is not the default: htpasswd computes a cost-10 bcrypt hash at
	// init, which takes seconds per process start under -race.
	if os.Getenv("SOCKS6D_TEST_RACE") == "1" {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building socks6d:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitTimeout bounds every wait for the daemon.
const waitTimeout = 10 * time.Second

// proc is a running socks6d process and the lines it wrote to stderr.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // from Wait, valid after done

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

// start runs socks6d with args and returns once it is running. It kills the
// process at the end of the test if it is still running, and logs its
// stderr if the test failed.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(binPath, args...), args)
}

// startCmd is start for a command that runs socks6d with args in some
// other way (in a network namespace).
func startCmd(t *testing.T, cmd *exec.Cmd, args []string) *proc {
	t.Helper()
	d := &proc{t: t, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			close(d.changed)
			d.changed = make(chan struct{})
			d.mu.Unlock()
		}
	}()
	go func() {
		<-read // Wait closes the pipe; read it all first
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("socks6d %s stderr:\n%s", strings.Join(args, " "), d.stderr())
		}
	})
	return d
}

func (d *proc) stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// waitLine waits for a stderr line, from the from'th on, for which match
// is true, and returns it and its index.
func (d *proc) waitLine(from int, what string, match func(line string) bool) (string, int) {
	d.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for i := from; ; {
		d.mu.Lock()
		lines, changed := d.lines, d.changed
		d.mu.Unlock()
		for ; i < len(lines); i++ {
			if match(lines[i]) {
				return lines[i], i
			}
		}
		select {
		case <-changed:
		case <-d.done:
			d.mu.Lock()
			more := len(d.lines) > i
			d.mu.Unlock()
			if !more {
				d.t.Fatalf("socks6d exited (%v) before logging %s", d.err, what)
			}
		case <-timer.C:
			d.t.Fatalf("timed out waiting for socks6d to log %s", what)
		}
	}
}

// record is one JSON log line.
type record map[string]any

func (r record) str(k string) string { s, _ := r[k].(string); return s }

// waitRecord waits for a JSON log record with message msg, from the
// from'th line on, that also satisfies match (nil matches any).
func (d *proc) waitRecord(from int, msg string, match func(record) bool) (record, int) {
	d.t.Helper()
	var rec record
	_, i := d.waitLine(from, fmt.Sprintf("%q", msg), func(line string) bool {
		rec = nil
		if json.Unmarshal([]byte(line), &rec) != nil || rec.str("msg") != msg {
			return false
		}
		return match == nil || match(rec)
	})
	return rec, i
}

// addr returns the address of the first "listening" record of a
// cleartext SOCKS listener (JSON logs).
func (d *proc) addr() string {
	d.t.Helper()
	rec, _ := d.waitRecord(0, "listening", func(r record) bool { return r["tls"] == nil && r["pac"] == nil && r["metrics"] == nil })
	return rec.str("addr")
}

// exitCode waits for the process to exit and returns its status.
func (d *proc) exitCode(within time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(within):
		d.t.Fatalf("socks6d still running after %v", within)
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	if d.err != nil {
		d.t.Fatalf("socks6d: %v", d.err)
	}
	return 0
}

func (d *proc) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
}

// runOnce runs socks6d to completion with stdin and returns its exit
// status and combined output.
func runOnce(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("socks6d %s: %v", strings.Join(args, " "), err)
	}
	return 0, string(out)
}

// echoServer serves TCP on loopback, echoing every byte back.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String()
}

// dialVia connects to target through the SOCKS5 gateway at gw with
// golang.org/x/net/proxy; auth may be nil.
func dialVia(t *testing.T, gw string, auth *proxy.Auth, target string) (net.Conn, error) {
	t.Helper()
	d, err := proxy.SOCKS5("tcp", gw, auth, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", target)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// roundTrip sends msg over c and expects it echoed back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write through gateway: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read through gateway: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echoed %q, want %q", buf, msg)
	}
}

// setPassword adds a user with a cheap bcrypt cost.
func setPassword(t *testing.T, path, user, password string) {
	t.Helper()
	if err := htpasswd.SetPassword(path, user, password, 4); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeDefault runs socks6d with its default (text) logs and no
// configuration, and relays a CONNECT to a loopback echo server.
func TestServeDefault(t *testing.T) {
	d := start(t, "-listen", "127.0.0.1:0", "-allow-loopback")
	line, _ := d.waitLine(0, "listening", func(l string) bool { return strings.Contains(l, "msg=listening") })
	m := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("listening line %q has no addr", line)
	}
	gw := m[1]
	if ap, err := netip.ParseAddrPort(gw); err != nil || ap.Port() == 0 || !ap.Addr().IsLoopback() {
		t.Fatalf("listening addr = %q, want 127.0.0.1 and the port picked", gw)
	}
	c, err := dialVia(t, gw, nil, echoServer(t))
	if err != nil {
		t.Fatalf("CONNECT through socks6d: %v", err)
	}
	roundTrip(t, c, "hello")
	roundTrip(t, c, "again")
	c.Close()
	rec, _ := d.waitLine(0, "session record", func(l string) bool { return strings.Contains(l, "msg=session") })
	for _, k := range []string{"client=", "user=", "cmd=connect", "target=", "bound=", "bytes_up=10", "bytes_down=10", "dur=", "reply=succeeded"} {
		if !strings.Contains(rec, k) {
			t.Errorf("session record %q lacks %q", rec, k)
		}
	}
	d.signal(syscall.SIGTERM)
	if code := d.exitCode(waitTimeout); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestGuardRefusesLoopback checks that without -allow-loopback a CONNECT
// to 127.0.0.1 is refused with reply 0x02 and audited.
func TestGuardRefusesLoopback(t *testing.T) {
	d := start(t, "-listen", "127.0.0.1:0", "-log-format", "json")
	c, err := net.DialTimeout("tcp", d.addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	if err := proto.Write(c, proto.Greeting{Methods: []proto.Method{proto.MethodNoAuth}}); err != nil {
		t.Fatal(err)
	}
	if sel, err := proto.ReadMethodSelection(c); err != nil || sel.Method != proto.MethodNoAuth {
		t.Fatalf("method selection = %+v, %v; want no-auth", sel, err)
	}
	target := netip.MustParseAddrPort(echoServer(t))
	if err := proto.Write(c, proto.Request{Command: proto.CommandConnect, Addr: proto.AddrFromAddrPort(target)}); err != nil {
		t.Fatal(err)
	}
	rep, err := proto.ReadReply(c)
	if err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	if rep.Code != proto.ReplyNotAllowed {
		t.Errorf("reply = %#02x (%v), want 0x02 (not allowed)", byte(rep.Code), rep.Code)
	}
	rec, _ := d.waitRecord(0, "session", nil)
	for _, k := range []string{"client", "user", "cmd", "target", "bound", "bytes_up", "bytes_down", "dur", "reply", "err"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("session record %v lacks key %q", rec, k)
		}
	}
	if rec.str("target") != target.String() || rec.str("reply") != proto.ReplyNotAllowed.String() {
		t.Errorf("session record %v, want target %s and reply %q", rec, target, proto.ReplyNotAllowed)
	}
}

func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.toml")
	writeFile(t, cfg, "listen = [\"127.0.0.1:0\"]\n\n[[rule]]\naction = \"deny\"\nnets = [\"10.0.0.0/33\"]\n")
	code, out := runOnce(t, "", "-config", cfg)
	if code != 2 {
		t.Errorf("exit status %d, want 2", code)
	}
	if want := cfg + ":5: rule[1].nets: bad network"; !strings.Contains(out, want) {
		t.Errorf("stderr = %q, want %q", out, want)
	}

	writeFile(t, cfg, "[timeouts]\nidle = \"5m\"\nidel = \"5m\"\n")
	if code, out := runOnce(t, "", "-config", cfg); code != 2 || !strings.Contains(out, cfg+":3: timeouts.idel: unknown key") {
		t.Errorf("unknown key: exit %d, stderr %q", code, out)
	}
	if code, out := runOnce(t, "", "-config", filepath.Join(dir, "missing.toml")); code != 2 || !strings.Contains(out, "missing.toml") {
		t.Errorf("missing config: exit %d, stderr %q", code, out)
	}
	if code, out := runOnce(t, "", "-log-level", "loud"); code != 2 || !strings.Contains(out, "-log-level") {
		t.Errorf("bad -log-level: exit %d, stderr %q", code, out)
	}
	if code, out := runOnce(t, "", "-users", filepath.Join(dir, "nobody.htpasswd")); code != 2 || !strings.Contains(out, "nobody.htpasswd") {
		t.Errorf("missing -users file: exit %d, stderr %q", code, out)
	}
	if code, _ := runOnce(t, "", "-bogus"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

func TestHelp(t *testing.T) {
	code, out := runOnce(t, "", "-h")
	if code != 0 {
		t.Errorf("-h: exit status %d, want 0", code)
	}
	for _, f := range []string{"-config", "-listen", "-users", "-log-format", "-log-level", "-allow-loopback", "-version",
		"passwd", "-cost", "SIGHUP", "SIGTERM"} {
		if !strings.Contains(out, f) {
			t.Errorf("-h output lacks %q:\n%s", f, out)
		}
	}
	code, out = runOnce(t, "", "-version")
	if code != 0 || !strings.HasPrefix(out, "socks6d ") {
		t.Errorf("-version: exit %d, output %q", code, out)
	}
}

// TestPasswd sets a password through the subcommand, then logs in with
// it through a running gateway.
func TestPasswd(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users.htpasswd")
	code, out := runOnce(t, "s3cret pass\n", "passwd", "-users", users, "-cost", "4", "alice")
	if code != 0 {
		t.Fatalf("passwd: exit %d: %s", code, out)
	}
	f, err := htpasswd.Load(users)
	if err != nil {
		t.Fatalf("htpasswd.Load after passwd: %v", err)
	}
	if got := f.Users(); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("users = %q, want [alice]", got)
	}
	if err := f.Authenticate(t.Context(), "alice", "s3cret pass"); err != nil {
		t.Fatalf("Authenticate: %v (the newline must not be part of the password)", err)
	}
	if fi, err := os.Stat(users); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode = %v, %v; want 0600", fi.Mode(), err)
	}

	// The default users file comes from -config's users_file.
	cfg := filepath.Join(dir, "socks6d.toml")
	writeFile(t, cfg, "users_file = \"users.htpasswd\"\nlisten = [\"127.0.0.1:0\"]\nlog_format = \"json\"\n[guard]\nallow_loopback = true\n")
	if code, out := runOnce(t, "other\n", "passwd", "-config", cfg, "-cost", "4", "bob"); code != 0 {
		t.Fatalf("passwd -config: exit %d: %s", code, out)
	}
	if f, err := htpasswd.Load(users); err != nil || len(f.Users()) != 2 {
		t.Fatalf("after passwd -config: %v, %v; want alice and bob", f, err)
	}

	if code, _ := runOnce(t, "", "passwd", "-users", users, "carol"); code == 0 {
		t.Error("passwd with an empty password succeeded")
	}
	if code, _ := runOnce(t, "x\n", "passwd", "-users", users); code != 2 {
		t.Error("passwd without USER: want exit 2")
	}

	d := start(t, "-config", cfg)
	gw, echo := d.addr(), echoServer(t)
	c, err := dialVia(t, gw, &proxy.Auth{User: "alice", Password: "s3cret pass"}, echo)
	if err != nil {
		t.Fatalf("CONNECT as alice: %v", err)
	}
	roundTrip(t, c, "ping")
	if _, err := dialVia(t, gw, &proxy.Auth{User: "alice", Password: "wrong"}, echo); err == nil {
		t.Error("CONNECT with a wrong password succeeded")
	}
	if _, err := dialVia(t, gw, nil, echo); err == nil {
		t.Error("CONNECT without a login succeeded")
	}
}

// TestReloadUsers adds a user and reloads with SIGHUP: the new user can
// log in, and a session relayed before the reload keeps flowing.
func TestReloadUsers(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users.htpasswd")
	setPassword(t, users, "alice", "a-pass")
	cfg := filepath.Join(dir, "socks6d.toml")
	writeFile(t, cfg, "users_file = \"users.htpasswd\"\nlisten = [\"127.0.0.1:0\"]\nlog_format = \"json\"\n[guard]\nallow_loopback = true\n")
	d := start(t, "-config", cfg)
	gw, echo := d.addr(), echoServer(t)

	old, err := dialVia(t, gw, &proxy.Auth{User: "alice", Password: "a-pass"}, echo)
	if err != nil {
		t.Fatalf("CONNECT as alice: %v", err)
	}
	roundTrip(t, old, "before")
	if _, err := dialVia(t, gw, &proxy.Auth{User: "bob", Password: "b-pass"}, echo); err == nil {
		t.Fatal("bob logged in before being added")
	}

	setPassword(t, users, "bob", "b-pass")
	d.signal(syscall.SIGHUP)
	d.waitRecord(0, "reloaded", func(r record) bool { return r["users"] == 2.0 })

	c, err := dialVia(t, gw, &proxy.Auth{User: "bob", Password: "b-pass"}, echo)
	if err != nil {
		t.Fatalf("CONNECT as bob after reload: %v", err)
	}
	roundTrip(t, c, "new user")
	roundTrip(t, old, "after") // the old session is untouched
}

// TestReloadBroken checks that a broken configuration is logged with its
// file and line and the running settings stay.
func TestReloadBroken(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "socks6d.toml")
	good := "listen = [\"127.0.0.1:0\"]\nlog_format = \"json\"\n[guard]\nallow_loopback = true\n"
	writeFile(t, cfg, good)
	d := start(t, "-config", cfg)
	gw, echo := d.addr(), echoServer(t)
	old, err := dialVia(t, gw, nil, echo)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, old, "x")

	// Would deny everything, were it valid.
	writeFile(t, cfg, good+"[policy]\ndefault = \"deny\"\n[[rule]]\naction = \"deny\"\nports = [\"99999\"]\n")
	d.signal(syscall.SIGHUP)
	rec, _ := d.waitRecord(0, "reload failed; keeping the running configuration", nil)
	if rec.str("level") != "ERROR" || !strings.Contains(rec.str("err"), cfg+":9: rule[1].ports: bad port range") {
		t.Errorf("reload error record = %v, want level ERROR and %s:9", rec, cfg)
	}
	c, err := dialVia(t, gw, nil, echo)
	if err != nil {
		t.Fatalf("CONNECT after a failed reload: %v (old settings should stay)", err)
	}
	roundTrip(t, c, "still allowed")
	roundTrip(t, old, "y")

	// A fixed file reloads, and now applies.
	writeFile(t, cfg, good+"[policy]\ndefault = \"deny\"\n")
	d.signal(syscall.SIGHUP)
	d.waitRecord(0, "reloaded", nil)
	if _, err := dialVia(t, gw, nil, echo); err == nil {
		t.Error("CONNECT allowed after reloading default = \"deny\"")
	}
}

// TestShutdownDrains checks that SIGTERM stops new sessions, lets a relayed
// session finish, and exits 0 once it has.
func TestShutdownDrains(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "socks6d.toml")
	writeFile(t, cfg, "listen = [\"127.0.0.1:0\"]\nlog_format = \"json\"\n[guard]\nallow_loopback = true\n[timeouts]\nshutdown = \"8s\"\n")
	d := start(t, "-config", cfg)
	gw, echo := d.addr(), echoServer(t)
	c, err := dialVia(t, gw, nil, echo)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "before")

	d.signal(syscall.SIGTERM)
	d.waitRecord(0, "shutting down", func(r record) bool { return r["sessions"] == 1.0 })
	roundTrip(t, c, "during shutdown")
	if _, err := dialVia(t, gw, nil, echo); err == nil {
		t.Error("new CONNECT accepted during shutdown")
	}
	select {
	case <-d.done:
		t.Fatal("socks6d exited while a session was running")
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	c.Close()
	if code := d.exitCode(waitTimeout); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("exit took %v after the last session ended", el)
	}
	d.waitRecord(0, "session", func(r record) bool { return r.str("reply") == "succeeded" })
}

// TestShutdownTimeout checks that sessions are cut when the shutdown
// timeout passes, and that a second signal cuts them at once.
func TestShutdownTimeout(t *testing.T) {
	for _, tt := range []struct {
		name    string
		timeout string
		second  bool
	}{
		{"timeout", "300ms", false},
		{"second_signal", "1m", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "socks6d.toml")
			writeFile(t, cfg, "listen = [\"127.0.0.1:0\"]\nlog_format = \"json\"\n[guard]\nallow_loopback = true\n[timeouts]\nshutdown = \""+tt.timeout+"\"\n")
			d := start(t, "-config", cfg)
			c, err := dialVia(t, d.addr(), nil, echoServer(t))
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, c, "x")
			d.signal(syscall.SIGTERM)
			_, i := d.waitRecord(0, "shutting down", nil)
			if tt.second {
				d.signal(syscall.SIGINT)
				d.waitRecord(i, "second signal; closing all sessions now", nil)
			} else {
				d.waitRecord(i, "shutdown timeout reached; closed the remaining sessions", nil)
			}
			if code := d.exitCode(waitTimeout); code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Errorf("session still open after exit (read %d bytes)", n)
			}
		})
	}
}

// TestListenFails checks that an address that cannot be served ends the
// start with status 1.
func TestListenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, out := runOnce(t, "", "-listen", ln.Addr().String())
	if code != 1 || !strings.Contains(out, "listen failed") {
		t.Errorf("exit %d, output %q; want 1 and \"listen failed\"", code, out)
	}
}
