package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/resolver"
	"golang.org/x/sys/unix"
)

// binPath is the socks6 binary under test, built once by TestMain for the
// tests that run it as a real process.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "socks6-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "socks6")
	cmd := exec.Command("go", "build", "-o", binPath, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building socks6:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitTimeout bounds every wait for a run, a process or a connection.
const waitTimeout = 20 * time.Second

// stubResolver answers from a table, with TTLs; a name not in it does not
// exist (NXDOMAIN).
type stubResolver map[string][]resolver.Answer

func (r stubResolver) Lookup(_ context.Context, network, host string) ([]resolver.Answer, error) {
	all, ok := r[strings.ToLower(strings.TrimSuffix(host, "."))]
	if !ok {
		return nil, &resolver.Error{Name: host, Kind: resolver.NotFound}
	}
	var out []resolver.Answer
	for _, a := range all {
		if a.Addr.Is4() == (network == "ip4") {
			out = append(out, a)
		}
	}
	return out, nil
}

func answer(addr string, ttl uint32) resolver.Answer {
	return resolver.Answer{Addr: netip.MustParseAddr(addr), TTL: ttl}
}

// names are the stub resolver's table.
var names = stubResolver{
	"dual.test":  {answer("192.0.2.1", 300), answer("2001:db8::1", 60), answer("192.0.2.2", 300), answer("2001:db8::2", 60)},
	"v4.test":    {answer("198.51.100.7", 42)},
	"empty.test": {},
	"lo.test":    {answer("127.0.0.1", 30)},
}

// gatewayOpts configure newGateway.
type gatewayOpts struct {
	plain  bool              // never select the extensions
	users  map[string]string // user → password; nil: no authentication
	public []netip.Addr      // server.ListenSettings.PublicAddrs
}

// loopbackListen opens the gateway's LISTEN sockets on loopback even when
// the client asks for all addresses, so that tests open no socket on
// the host's other interfaces.
func loopbackListen(ctx context.Context, network, addr string) (net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := ap.Addr(); ip.IsUnspecified() {
		lo := netip.IPv6Loopback()
		if ip.Is4() {
			lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		addr = netip.AddrPortFrom(lo, ap.Port()).String()
	} else if !ip.IsLoopback() {
		return nil, fmt.Errorf("test gateway: LISTEN on %s refused: loopback only", addr)
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, network, addr)
}

// newGateway serves a server.Server that may reach loopback targets on a
// loopback listener until the test ends, and returns its address.
func newGateway(t *testing.T, o gatewayOpts) string {
	t.Helper()
	_, addr := newGatewayServer(t, o)
	return addr
}

// newGatewayServer is newGateway that also returns the server.
func newGatewayServer(t *testing.T, o gatewayOpts) (*server.Server, string) {
	t.Helper()
	s := &server.Server{
		Settings:          server.Settings{Guard: server.Guard{AllowLoopback: true}},
		Resolver:          names,
		DisableExtensions: o.plain,
		ListenTCP:         loopbackListen,
		Logger:            socks6test.Logger(t),
	}
	s.Settings.Listen.PublicAddrs = o.public
	if o.users != nil {
		s.Settings.Auth = server.AuthenticatorFunc(func(_ context.Context, user, pass string) error {
			if want, ok := o.users[user]; ok && want == pass {
				return nil
			}
			return server.ErrBadCredentials
		})
	}
	return s, socks6test.ServeGateway(t, s)
}

// result is how a run of socks6 ended.
type result struct {
	code           int
	stdout, stderr string
}

// runIn runs the command in-process with stdin and the environment vars
// (nothing else of the process's environment).
func runIn(t *testing.T, stdin io.Reader, vars map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, env{stdin: stdin, stdout: &stdout, stderr: &stderr, lookup: func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}})
	if ctx.Err() != nil {
		t.Fatalf("socks6 %s: still running after %v; stderr:\n%s", strings.Join(args, " "), waitTimeout, stderr.String())
	}
	return result{code, stdout.String(), stderr.String()}
}

// command returns the binary with args, with the SOCKS6_ variables of
// this process's environment replaced by vars.
func command(ctx context.Context, vars map[string]string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binPath, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCKS6_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// runBin runs the binary to completion with stdin.
func runBin(t *testing.T, stdin io.Reader, vars map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := command(ctx, vars, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.Exited():
		return result{ee.ExitCode(), stdout.String(), stderr.String()}
	case err != nil:
		t.Fatalf("socks6 %s: %v; stderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return result{0, stdout.String(), stderr.String()}
}

// countServer serves TCP on loopback: it reads until EOF, then answers
// "got N bytes" and closes. It answers only after a half-close.
func countServer(t *testing.T) string {
	t.Helper()
	ln := socks6test.Listen(t)
	socks6test.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes\n", n)
	})
	return ln.Addr().String()
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln := socks6test.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestConnectEcho(t *testing.T) {
	socks6test.CheckGoroutines(t, 1) // the relay's shared poller may start
	echo := socks6test.EchoServer(t)
	for _, tt := range []struct {
		name string
		gw   gatewayOpts
		ext  string
	}{
		{"extensions", gatewayOpts{}, "require"},
		{"plain_gateway", gatewayOpts{plain: true}, "auto"},
		{"ext_off", gatewayOpts{}, "off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw := newGateway(t, tt.gw)
			in := "hello\nworld\n"
			r := runIn(t, strings.NewReader(in), nil, "-proxy", gw, "-ext", tt.ext, "connect", echo)
			if r.code != 0 || r.stdout != in {
				t.Errorf("connect: exit %d, stdout %q, want 0 and %q; stderr:\n%s", r.code, r.stdout, in, r.stderr)
			}
		})
	}
}

// TestConnectBinary runs the binary with a megabyte of random bytes
// through an echo server, and with -v.
func TestConnectBinary(t *testing.T) {
	gw, echo := newGateway(t, gatewayOpts{}), socks6test.EchoServer(t)
	in := make([]byte, 1<<20)
	rand.Read(in)
	r := runBin(t, bytes.NewReader(in), map[string]string{"SOCKS6_PROXY": gw}, "connect", "-v", echo)
	if r.code != 0 || r.stdout != string(in) {
		t.Fatalf("connect: exit %d, %d bytes out (equal: %v), want 0 and the %d bytes in; stderr:\n%s",
			r.code, len(r.stdout), r.stdout == string(in), len(in), r.stderr)
	}
	if want := "connected to " + echo + " through " + gw + " (SOCKS6 extensions, gateway connected to " + echo + ")"; !strings.Contains(r.stderr, want) {
		t.Errorf("-v: stderr %q lacks %q", r.stderr, want)
	}
}

// TestConnectHalfClose checks that the end of standard input half-closes
// the stream: the server answers only after reading EOF, and the answer
// still arrives.
func TestConnectHalfClose(t *testing.T) {
	gw, count := newGateway(t, gatewayOpts{}), countServer(t)
	in := strings.Repeat("x", 100000)
	if r := runIn(t, strings.NewReader(in), nil, "-proxy", gw, "connect", count); r.code != 0 || r.stdout != "got 100000 bytes\n" {
		t.Errorf("in-process: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// The binary, with standard input a pipe that stays open until the
	// answer arrives: the answer must not wait for the pipe.
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := command(ctx, nil, "-proxy", gw, "connect", count)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "four")
	stdin.Close()
	out, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil || string(out) != "got 4 bytes\n" {
		t.Errorf("binary: %v, stdout %q; stderr:\n%s", err, out, stderr.String())
	}
}

// TestConnectRefused checks the refusal message and status, with the
// extensions and without.
func TestConnectRefused(t *testing.T) {
	target := closedPort(t)
	for _, ext := range []string{"auto", "off"} {
		t.Run(ext, func(t *testing.T) {
			gw := newGateway(t, gatewayOpts{})
			r := runBin(t, strings.NewReader("x"), nil, "-proxy", gw, "-ext", ext, "connect", target)
			want := "socks6: CONNECT " + target + ": connection refused (0x05)"
			if r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
			}
		})
	}
}

// TestConnectReplyCodes checks that the codes of the extensions reach the
// user by name, and their SOCKS5 equivalents without the extensions.
func TestConnectReplyCodes(t *testing.T) {
	gw := newGateway(t, gatewayOpts{})
	for _, tt := range []struct {
		name, ext, target, want string
	}{
		{"nxdomain_ext", "require", "nx.test:80", "CONNECT nx.test:80: name not found (0xe6)"},
		{"nxdomain_plain", "off", "nx.test:80", "CONNECT nx.test:80: host unreachable (0x04)"},
		{"no_ipv6", "require", "v4.test:80", "CONNECT v4.test:80: host unreachable (0x04)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-proxy", gw, "-ext", tt.ext}
			if tt.name == "no_ipv6" {
				args = append(args, "-family", "ipv6-only")
			}
			r := runIn(t, nil, nil, append(args, "connect", tt.target)...)
			if r.code != 1 || r.stderr != "socks6: "+tt.want+"\n" {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, "socks6: "+tt.want)
			}
		})
	}
}

func TestConnectGatewayDown(t *testing.T) {
	gw := closedPort(t)
	r := runIn(t, nil, nil, "-proxy", gw, "connect", "example.test:80")
	want := "socks6: connect example.test:80: cannot reach the gateway " + gw + ": connection refused"
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}
}

// TestConnectLogin logs in with the password from the environment, in
// both the extensions' HELLO and RFC 1929.
func TestConnectLogin(t *testing.T) {
	echo := socks6test.EchoServer(t)
	users := map[string]string{"alice": "s3cret"}
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprint("plain=", plain), func(t *testing.T) {
			gw := newGateway(t, gatewayOpts{plain: plain, users: users})
			r := runIn(t, strings.NewReader("hi"), map[string]string{"SOCKS6_PASSWORD": "s3cret"}, "-proxy", gw, "-user", "alice", "connect", echo)
			if r.code != 0 || r.stdout != "hi" {
				t.Errorf("good password: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
			}
			r = runIn(t, strings.NewReader("hi"), map[string]string{"SOCKS6_PASSWORD": "wrong"}, "-proxy", gw, "-user", "alice", "connect", echo)
			if r.code != 1 || !strings.Contains(r.stderr, "authentication failed") {
				t.Errorf("wrong password: exit %d, stderr %q; want 1 and \"authentication failed\"", r.code, r.stderr)
			}
			r = runIn(t, strings.NewReader("hi"), nil, "-proxy", gw, "connect", echo)
			if r.code != 1 {
				t.Errorf("no -user: exit %d, want 1; stderr %q", r.code, r.stderr)
			}
		})
	}
	// Without $SOCKS6_PASSWORD, and with standard input not a terminal,
	// there is no way to get the password.
	r := runBin(t, strings.NewReader("hi"), nil, "-proxy", "127.0.0.1:1", "-user", "alice", "connect", echo)
	if r.code != 2 || !strings.Contains(r.stderr, "-user alice: no password: set SOCKS6_PASSWORD") {
		t.Errorf("no password: exit %d, stderr %q; want 2 and a hint at SOCKS6_PASSWORD", r.code, r.stderr)
	}
}

// openPTY returns the two ends of a new pseudo-terminal, closed when the
// test ends; it skips the test where there are none.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestPasswordPrompt runs the binary with a terminal on standard input
// and no $SOCKS6_PASSWORD: it asks for the password there, then relays
// what is typed after it.
func TestPasswordPrompt(t *testing.T) {
	gw := newGateway(t, gatewayOpts{users: map[string]string{"alice": "s3cret"}})
	echo := socks6test.EchoServer(t)
	master, slave := openPTY(t)
	go io.Copy(io.Discard, master) // the terminal's echo

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := command(ctx, nil, "-proxy", gw, "-user", "alice", "connect", echo)
	cmd.Stdin = slave
	var stdout bytes.Buffer
	stderr := &socks6test.Buffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	prompt := "Password for alice at " + gw + ": "
	if !socks6test.WaitFor(waitTimeout, func() bool { return strings.Contains(stderr.String(), prompt) }) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no prompt %q; stderr %q", prompt, stderr.String())
	}
	// A line of input, then ^D at the start of a line: end of file.
	io.WriteString(master, "s3cret\n")
	io.WriteString(master, "typed\n")
	io.WriteString(master, "\x04")
	if err := cmd.Wait(); err != nil || stdout.String() != "typed\n" {
		t.Errorf("%v, stdout %q, want \"typed\\n\"; stderr %q", err, stdout.String(), stderr.String())
	}
}

// TestConnectInterrupted checks that a cancelled run (SIGINT) ends the
// relay and reports it, even while standard input is open.
func TestConnectInterrupted(t *testing.T) {
	gw, echo := newGateway(t, gatewayOpts{}), socks6test.EchoServer(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr socks6test.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-proxy", gw, "connect", echo}, env{stdin: pr, stdout: &stdout, stderr: &stderr, lookup: noEnv})
	}()
	io.WriteString(pw, "ping")
	if !socks6test.WaitFor(waitTimeout, func() bool { return stdout.String() == "ping" }) {
		t.Fatalf("echo never arrived; stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 1 || stderr.String() != "socks6: interrupted\n" {
			t.Errorf("exit %d, stderr %q; want 1 and \"socks6: interrupted\"", code, stderr.String())
		}
	case <-time.After(waitTimeout):
		t.Fatal("connect still running after cancel")
	}
}

func noEnv(string) (string, bool) { return "", false }

func TestResolve(t *testing.T) {
	gw := newGateway(t, gatewayOpts{})
	// The gateway's order, as the library reports it.
	want := func(t *testing.T, family proto.Family, name string) string {
		t.Helper()
		d := &client.Dialer{ProxyAddress: gw, Family: family}
		ans, err := d.Resolve(t.Context(), name)
		if err != nil {
			t.Fatalf("client Resolve: %v", err)
		}
		var b strings.Builder
		for _, a := range ans {
			fmt.Fprintf(&b, "%s ttl=%d\n", a.Addr, a.TTL)
		}
		return b.String()
	}
	for _, tt := range []struct {
		name   string
		flags  []string
		family proto.Family
		lines  []string // in any order
	}{
		{"all", nil, 0, []string{"192.0.2.1 ttl=300", "192.0.2.2 ttl=300", "2001:db8::1 ttl=60", "2001:db8::2 ttl=60"}},
		{"ipv4", []string{"-4"}, proto.FamilyIPv4Only, []string{"192.0.2.1 ttl=300", "192.0.2.2 ttl=300"}},
		{"ipv6", []string{"-6"}, proto.FamilyIPv6Only, []string{"2001:db8::1 ttl=60", "2001:db8::2 ttl=60"}},
		{"family_flag", []string{"-family", "ipv6-only"}, proto.FamilyIPv6Only, []string{"2001:db8::1 ttl=60", "2001:db8::2 ttl=60"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-proxy", gw, "resolve"}, tt.flags...)
			r := runIn(t, nil, nil, append(args, "dual.test")...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
			}
			got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if !slices.Equal(slices.Sorted(slices.Values(got)), tt.lines) {
				t.Errorf("lines %q, want %q in some order", got, tt.lines)
			}
			if w := want(t, tt.family, "dual.test"); r.stdout != w {
				t.Errorf("stdout %q, want the gateway's order %q", r.stdout, w)
			}
		})
	}

	// The binary, flags after the name.
	if r := runBin(t, nil, nil, "-proxy", gw, "resolve", "v4.test", "-4"); r.code != 0 || r.stdout != "198.51.100.7 ttl=42\n" {
		t.Errorf("binary: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"missing", []string{"resolve", "nx.test"}, "socks6: RESOLVE nx.test: name not found (0xe6)\n"},
		{"no_ipv6", []string{"resolve", "-6", "v4.test"}, "socks6: RESOLVE v4.test: the name has no IPv6 addresses\n"},
		{"no_addresses", []string{"resolve", "empty.test"}, "socks6: RESOLVE empty.test: the name has no addresses\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runIn(t, nil, nil, append([]string{"-proxy", gw}, tt.args...)...)
			if r.code != 1 || r.stderr != tt.want || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing and %q", r.code, r.stdout, r.stderr, tt.want)
			}
		})
	}

	// A plain SOCKS5 gateway has no RESOLVE.
	plain := newGateway(t, gatewayOpts{plain: true})
	if r := runIn(t, nil, nil, "-proxy", plain, "resolve", "dual.test"); r.code != 1 || !strings.Contains(r.stderr, "does not offer the extensions") {
		t.Errorf("plain gateway: exit %d, stderr %q; want 1 and a word on the extensions", r.code, r.stderr)
	}
}

// TestProxyEnv checks that $SOCKS6_PROXY names the gateway when -proxy
// does not, and that -proxy wins.
func TestProxyEnv(t *testing.T) {
	gw := newGateway(t, gatewayOpts{})
	if r := runIn(t, nil, map[string]string{"SOCKS6_PROXY": gw}, "resolve", "v4.test"); r.code != 0 || r.stdout != "198.51.100.7 ttl=42\n" {
		t.Errorf("$SOCKS6_PROXY: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runIn(t, nil, map[string]string{"SOCKS6_PROXY": closedPort(t)}, "-proxy", gw, "resolve", "v4.test"); r.code != 0 {
		t.Errorf("-proxy over $SOCKS6_PROXY: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runIn(t, nil, map[string]string{"SOCKS6_PROXY": "nonsense"}, "resolve", "v4.test"); r.code != 2 || !strings.Contains(r.stderr, "$SOCKS6_PROXY \"nonsense\"") {
		t.Errorf("bad $SOCKS6_PROXY: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no_subcommand", nil, "no subcommand"},
		{"unknown_subcommand", []string{"bind"}, `unknown subcommand "bind"`},
		{"unknown_flag", []string{"-bogus", "version"}, "-bogus"},
		{"unknown_sub_flag", []string{"connect", "-bogus", "a:1"}, "-bogus"},
		{"bad_ext", []string{"-ext", "maybe", "connect", "a:1"}, "-ext"},
		{"bad_family", []string{"-family", "ipv5", "connect", "a:1"}, "-family"},
		{"bad_timeout", []string{"-timeout", "soon", "connect", "a:1"}, "-timeout"},
		{"negative_timeout", []string{"-timeout", "-1s", "connect", "a:1"}, "-timeout"},
		{"bad_proxy", []string{"-proxy", "nowhere", "connect", "a:1"}, "-proxy"},
		{"connect_no_target", []string{"connect"}, "HOST:PORT"},
		{"connect_two_targets", []string{"connect", "a:1", "b:2"}, "HOST:PORT"},
		{"connect_no_port", []string{"connect", "example.org"}, "HOST:PORT"},
		{"resolve_no_name", []string{"resolve"}, "NAME"},
		{"resolve_4_and_6", []string{"resolve", "-4", "-6", "x.test"}, "-4 and -6"},
		{"resolve_ext_off", []string{"-ext", "off", "resolve", "x.test"}, "-ext off"},
		{"listen_no_to", []string{"listen"}, "-to"},
		{"listen_bad_to", []string{"listen", "-to", "3000"}, "-to"},
		{"listen_bad_port", []string{"listen", "-port", "70000", "-to", "a:1"}, "-port"},
		{"listen_exact_no_port", []string{"listen", "-exact", "-to", "a:1"}, "-exact"},
		{"listen_bad_bind", []string{"listen", "-bind", "gw.example", "-to", "a:1"}, "-bind"},
		{"listen_bad_allow", []string{"listen", "-allow", "10.0.0.0/33", "-to", "a:1"}, "-allow"},
		{"listen_negative_offer_timeout", []string{"listen", "-offer-timeout", "-1s", "-to", "a:1"}, "-offer-timeout"},
		{"listen_argument", []string{"listen", "-to", "a:1", "extra"}, `"extra"`},
		{"listen_ext_off", []string{"-ext", "off", "listen", "-to", "a:1"}, "-ext off"},
		{"version_argument", []string{"version", "x"}, `"x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runIn(t, nil, nil, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("socks6 %s: exit %d, stderr %q; want 2 and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
			}
		})
	}
	// The binary too.
	if r := runBin(t, nil, nil, "connect", "-ext", "sometimes", "a:1"); r.code != 2 || !strings.Contains(r.stderr, "-ext") {
		t.Errorf("binary: exit %d, stderr %q; want 2 and -ext", r.code, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	global := []string{"-proxy", "-user", "-ext", "-family", "-timeout", "-v", "-tls", "-tls-ca", "-tls-name", "SOCKS6_PROXY", "SOCKS6_PASSWORD", "Exit status"}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"-h"}, append([]string{"connect", "listen", "resolve", "version"}, global...)},
		{[]string{"connect", "-h"}, append([]string{"HOST:PORT", "half-close"}, global...)},
		{[]string{"resolve", "-h"}, append([]string{"-4", "-6", "ttl="}, global...)},
		{[]string{"listen", "-h"}, append([]string{"-exact", "-port", "-bind", "-dual-stack", "-offer-timeout", "-allow", "-to", "SIGTERM"}, global...)},
	} {
		r := runBin(t, nil, nil, tt.args...)
		if r.code != 0 {
			t.Errorf("socks6 %s: exit %d, want 0", strings.Join(tt.args, " "), r.code)
		}
		for _, w := range tt.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("socks6 %s: output lacks %q:\n%s", strings.Join(tt.args, " "), w, r.stderr)
			}
		}
	}
	if r := runBin(t, nil, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "socks6 ") {
		t.Errorf("version: exit %d, stdout %q", r.code, r.stdout)
	}
}

// listenProc is a running "socks6 listen".
type listenProc struct {
	cmd    *exec.Cmd
	addr   string // the public address from its standard output
	stderr *socks6test.Buffer
	done   chan struct{} // closed when it has exited
	err    error         // from Wait, after done
}

// startListen runs "socks6 listen" with args and reads the public address
// from its standard output. It skips the test when the binary or the
// gateway does not support LISTEN yet.
func startListen(t *testing.T, gw string, args ...string) *listenProc {
	t.Helper()
	p := &listenProc{stderr: &socks6test.Buffer{}, done: make(chan struct{})}
	p.cmd = command(t.Context(), nil, append([]string{"-proxy", gw, "-v", "listen"}, args...)...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, stdout)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("socks6 listen stderr:\n%s", p.stderr.String())
		}
	})
	select {
	case l, ok := <-line:
		if !ok {
			<-p.done
			probeListen(t, p.stderr.String())
			t.Fatalf("socks6 listen exited (%v) without an address; stderr:\n%s", p.err, p.stderr.String())
		}
		p.addr = l
	case <-time.After(waitTimeout):
		t.Fatalf("no address from socks6 listen after %v; stderr:\n%s", waitTimeout, p.stderr.String())
	}
	return p
}

// probeListen skips the test if stderr says that LISTEN is not there yet:
// the client package without ListenConfig, or a gateway without LISTEN.
func probeListen(t *testing.T, stderr string) {
	t.Helper()
	for _, s := range []string{"listen: not available yet", "command not supported", "no LISTEN feature", "does not offer the extensions"} {
		if strings.Contains(stderr, s) {
			t.Skipf("LISTEN not available yet (client.Dialer.ListenConfig or the gateway's LISTEN): %s", strings.TrimSpace(stderr))
		}
	}
}

// waitStderr waits until the process has written want to stderr.
func (p *listenProc) waitStderr(t *testing.T, want string) {
	t.Helper()
	if !socks6test.WaitFor(waitTimeout, func() bool { return strings.Contains(p.stderr.String(), want) }) {
		t.Errorf("stderr lacks %q after %v:\n%s", want, waitTimeout, p.stderr.String())
	}
}

// exitCode sends sig and waits for the process to exit.
func (p *listenProc) exitCode(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatalf("socks6 listen still running %v after %v", waitTimeout, sig)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("socks6 listen: %v", p.err)
	}
	return 0
}

// webServer serves an HTTP page on loopback and returns its address.
func webServer(t *testing.T, body string) string {
	t.Helper()
	ln := socks6test.Listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// fetch gets http://addr/ with net/http, without any proxy.
func fetch(addr string) (string, error) {
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: waitTimeout}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// curl gets http://addr/ with curl; it skips the test without curl.
func curl(t *testing.T, addr string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-sS", "--noproxy", "*", "--max-time", "10", "http://"+addr+"/").CombinedOutput()
	return string(out), err
}

// TestListen publishes a local web server through the gateway and fetches
// it at the printed public address with net/http and curl, then ends the
// listener with SIGTERM.
func TestListen(t *testing.T) {
	gw := newGateway(t, gatewayOpts{})
	const body = "hello from behind the gateway\n"
	web := webServer(t, body)
	p := startListen(t, gw, "-to", web)
	gwHost, _, _ := net.SplitHostPort(gw)
	host, _, err := net.SplitHostPort(p.addr)
	if err != nil || host != gwHost {
		t.Errorf("public address %q: want the gateway's host %s and a port (%v)", p.addr, gwHost, err)
	}
	p.waitStderr(t, "socks6: listening on "+p.addr+" -> "+web)
	for i := range 3 {
		if got, err := fetch(p.addr); err != nil || got != body {
			t.Fatalf("net/http fetch %d: %q, %v; want %q", i, got, err, body)
		}
	}
	if got, err := curl(t, p.addr); err != nil || got != body {
		t.Errorf("curl: %q, %v; want %q", got, err, body)
	}
	p.waitStderr(t, "socks6: caller 127.0.0.1:")
	if code := p.exitCode(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if _, err := fetch(p.addr); err == nil {
		t.Error("the public address still serves after socks6 listen ended")
	}
}

// TestListenHalfClose checks that a caller's half-close reaches the local
// service and the answer still comes back.
func TestListenHalfClose(t *testing.T) {
	gw, count := newGateway(t, gatewayOpts{}), countServer(t)
	p := startListen(t, gw, "-to", count)
	c, err := net.DialTimeout("tcp", p.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	io.WriteString(c, strings.Repeat("y", 5000))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got 5000 bytes\n" {
		t.Errorf("answer %q, %v; want \"got 5000 bytes\"", got, err)
	}
	if code := p.exitCode(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit status %d after SIGINT, want 0", code)
	}
}

// TestListenAllow checks that -allow refuses callers outside its networks
// and takes those inside.
func TestListenAllow(t *testing.T) {
	gw := newGateway(t, gatewayOpts{})
	const body = "allowed\n"
	web := webServer(t, body)

	p := startListen(t, gw, "-allow", "192.0.2.0/24,2001:db8::/32", "-to", web)
	if got, err := fetch(p.addr); err == nil {
		t.Errorf("net/http fetch from 127.0.0.1 outside -allow succeeded: %q", got)
	}
	if got, err := curl(t, p.addr); err == nil {
		t.Errorf("curl from 127.0.0.1 outside -allow succeeded: %q", got)
	}
	p.waitStderr(t, "refused: not in -allow")
	if code := p.exitCode(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}

	p = startListen(t, gw, "-allow", "192.0.2.0/24", "-allow", "127.0.0.0/8", "-to", web)
	if got, err := fetch(p.addr); err != nil || got != body {
		t.Errorf("fetch from inside -allow: %q, %v; want %q", got, err, body)
	}
}

// TestListenUnreachableTarget checks that a caller whose local service is
// down is closed and logged, and the listener goes on.
func TestListenUnreachableTarget(t *testing.T) {
	gw := newGateway(t, gatewayOpts{})
	to := closedPort(t)
	p := startListen(t, gw, "-to", to)
	if _, err := fetch(p.addr); err == nil {
		t.Error("fetch succeeded with the local service down")
	}
	p.waitStderr(t, "cannot reach "+to)
	select {
	case <-p.done:
		t.Fatalf("socks6 listen exited: %v", p.err)
	default:
	}
}

func TestPublicAddr(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, tt := range []struct {
		name   string
		public []string
		addr   net.Addr
		proxy  string
		want   string
	}{
		{"public_first", []string{"192.0.2.1:8080", "[2001:db8::1]:8080"}, tcp("0.0.0.0:8080"), "10.0.0.1:1080", "192.0.2.1:8080"},
		{"bound", nil, tcp("10.0.0.1:8080"), "gw.example:1080", "10.0.0.1:8080"},
		{"unspecified_v4", nil, tcp("0.0.0.0:8080"), "gw.example:1080", "gw.example:8080"},
		{"unspecified_v6", nil, tcp("[::]:8080"), "[2001:db8::9]:1080", "[2001:db8::9]:8080"},
		{"unspecified_public", []string{"0.0.0.0:9"}, nil, "10.0.0.1:1080", "10.0.0.1:9"},
		{"mapped", []string{"[::ffff:192.0.2.7]:80"}, nil, "10.0.0.1:1080", "192.0.2.7:80"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var public []netip.AddrPort
			for _, p := range tt.public {
				public = append(public, netip.MustParseAddrPort(p))
			}
			if got := publicAddr(public, tt.addr, tt.proxy); got != tt.want {
				t.Errorf("publicAddr(%v, %v, %q) = %q, want %q", public, tt.addr, tt.proxy, got, tt.want)
			}
		})
	}
}

// TestListenAddresses checks what listen asks for and prints: a
// configured public address, -bind, and -exact -port.
func TestListenAddresses(t *testing.T) {
	web := webServer(t, "x")
	t.Run("public_addr", func(t *testing.T) {
		gw := newGateway(t, gatewayOpts{public: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
		p := startListen(t, gw, "-to", web)
		if ap, err := netip.ParseAddrPort(p.addr); err != nil || ap.Addr().String() != "192.0.2.1" || ap.Port() == 0 {
			t.Errorf("printed %q, want the gateway's public address 192.0.2.1 and a port", p.addr)
		}
	})
	t.Run("bind", func(t *testing.T) {
		gw := newGateway(t, gatewayOpts{})
		p := startListen(t, gw, "-bind", "127.0.0.1", "-to", web)
		if ap, err := netip.ParseAddrPort(p.addr); err != nil || ap.Addr().String() != "127.0.0.1" {
			t.Errorf("printed %q, want 127.0.0.1:PORT", p.addr)
		}
		if got, err := fetch(p.addr); err != nil || got != "x" {
			t.Errorf("fetch: %q, %v", got, err)
		}
	})
	t.Run("exact", func(t *testing.T) {
		gw := newGateway(t, gatewayOpts{})
		free := socks6test.Listen(t)
		port := free.Addr().(*net.TCPAddr).Port
		free.Close()
		p := startListen(t, gw, "-exact", "-port", fmt.Sprint(port), "-offer-timeout", "5s", "-to", web)
		if want := fmt.Sprintf("127.0.0.1:%d", port); p.addr != want {
			t.Errorf("printed %q, want %q", p.addr, want)
		}
		// The port is taken now: a second -exact fails with the code.
		r := runIn(t, nil, nil, "-proxy", gw, "listen", "-exact", "-port", fmt.Sprint(port), "-to", web)
		if r.code != 1 || !strings.Contains(r.stderr, "port unavailable (0xe2)") {
			t.Errorf("second -exact: exit %d, stderr %q; want 1 and \"port unavailable (0xe2)\"", r.code, r.stderr)
		}
	})
}

// TestListenEnds checks the two ways an in-process listen ends: its
// context (a signal), status 0, and the gateway's end, status 1.
func TestListenEnds(t *testing.T) {
	socks6test.CheckGoroutines(t, 2) // the relay's shared poller may stay
	web := webServer(t, "x")
	srv, gw := newGatewayServer(t, gatewayOpts{})
	start := func(ctx context.Context) (*socks6test.Buffer, *socks6test.Buffer, chan int) {
		var stdout, stderr socks6test.Buffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"-proxy", gw, "listen", "-to", web}, env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, lookup: noEnv})
		}()
		if !socks6test.WaitFor(waitTimeout, func() bool { return strings.HasSuffix(stdout.String(), "\n") }) {
			t.Fatalf("no address printed; stderr:\n%s", stderr.String())
		}
		probeListen(t, stderr.String())
		return &stdout, &stderr, done
	}
	wait := func(done chan int) int {
		select {
		case code := <-done:
			return code
		case <-time.After(waitTimeout):
			t.Fatal("listen still running")
			return -1
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr, done := start(ctx)
	addr := strings.TrimSpace(stdout.String())
	if got, err := fetch(addr); err != nil || got != "x" {
		t.Errorf("fetch: %q, %v", got, err)
	}
	cancel()
	if code := wait(done); code != 0 {
		t.Errorf("cancelled: exit %d, want 0; stderr:\n%s", code, stderr.String())
	}

	stdout, stderr, done = start(t.Context())
	addr = strings.TrimSpace(stdout.String())
	srv.Close()
	if code := wait(done); code != 1 || !strings.Contains(stderr.String(), "socks6: the listener on "+addr+" ended: ") {
		t.Errorf("gateway closed: exit %d, stderr %q; want 1 and \"the listener on %s ended\"", code, stderr.String(), addr)
	}
}

func TestUDP(t *testing.T) {
	socks6test.CheckGoroutines(t, 1)
	echo := socks6test.UDPEchoServer(t)
	gw := newGateway(t, gatewayOpts{})
	in := "one\ntwo\nthree\n"
	for _, target := range []string{echo.String(), net.JoinHostPort("lo.test", fmt.Sprint(echo.Port))} {
		t.Run(target, func(t *testing.T) {
			r := runIn(t, strings.NewReader(in), nil, "-proxy", gw, "udp", "-replies", "3", "-wait", "20s", target)
			got := strings.SplitAfter(r.stdout, "\n")
			slices.Sort(got)
			if r.code != 0 || strings.Join(got, "") != "one\nthree\ntwo\n" {
				t.Errorf("exit %d, stdout %q, want 0 and the three lines back; stderr:\n%s", r.code, r.stdout, r.stderr)
			}
		})
	}
	t.Run("binary", func(t *testing.T) {
		// The real process, with -v: every datagram is reported with its
		// source.
		r := runBin(t, strings.NewReader("ping\n"), map[string]string{"SOCKS6_PROXY": gw}, "udp", "-v", "-replies", "1", "-wait", "20s", echo.String())
		if r.code != 0 || r.stdout != "ping\n" || !strings.Contains(r.stderr, "5 bytes from "+echo.String()) {
			t.Errorf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("wait", func(t *testing.T) {
		// Nothing answers: socks6 exits 0 after -wait.
		silent := closedUDPPort(t)
		start := time.Now()
		r := runIn(t, strings.NewReader("x\n"), nil, "-proxy", gw, "udp", "-wait", "200ms", silent)
		if r.code != 0 || r.stdout != "" || time.Since(start) < 200*time.Millisecond {
			t.Errorf("exit %d after %v, stdout %q; stderr:\n%s", r.code, time.Since(start), r.stdout, r.stderr)
		}
	})
	t.Run("replies", func(t *testing.T) {
		// -replies 1 prints one reply, however many come back; fewer
		// than asked for within -wait exits 1.
		r := runIn(t, strings.NewReader("a\nb\nc\nd\n"), nil, "-proxy", gw, "udp", "-replies", "1", "-wait", "20s", echo.String())
		if r.code != 0 || len(r.stdout) != 2 {
			t.Errorf("-replies 1: exit %d, stdout %q, want 0 and one line; stderr:\n%s", r.code, r.stdout, r.stderr)
		}
		r = runIn(t, strings.NewReader("x\n"), nil, "-proxy", gw, "udp", "-replies", "1", "-wait", "200ms", closedUDPPort(t))
		if r.code != 1 || !strings.Contains(r.stderr, "0 of 1 replies") {
			t.Errorf("-replies 1 with no answer: exit %d, stderr %q, want 1 and a count", r.code, r.stderr)
		}
	})
	t.Run("plain_gateway", func(t *testing.T) {
		plain := newGateway(t, gatewayOpts{plain: true})
		r := runIn(t, strings.NewReader("x\n"), nil, "-proxy", plain, "udp", echo.String())
		if r.code != 1 || !strings.Contains(r.stderr, "extensions") {
			t.Errorf("exit %d, stderr %q: want 1 and a word on the extensions", r.code, r.stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"udp"}, {"udp", "nohost"}, {"udp", "-wait", "-1s", "a:1"}, {"-ext", "off", "udp", "a:1"}} {
			if r := runIn(t, nil, nil, args...); r.code != 2 {
				t.Errorf("socks6 %v: exit %d, want 2; stderr:\n%s", args, r.code, r.stderr)
			}
		}
	})
}

// closedUDPPort returns a loopback UDP address that nothing reads.
func closedUDPPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}
