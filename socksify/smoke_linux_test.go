//go:build linux && amd64

package socksify

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"golang.org/x/sys/unix"
)

// TestSmokeCurl runs "socksify -- curl -sS http://name.test:PORT/" with
// the library: a gateway and an HTTP server on loopback, and curl
// (glibc: nscd refused, UDP DNS to the resolv.conf server, RFC 6724
// probes, a non-blocking connect) under a Supervisor. The test binary is
// the launcher (TestMain). It all runs in a child of the test in a
// network namespace of its own with only lo up, so that a DNS query or
// connection that escaped the supervisor could not leave the machine:
// it would fail instead, and so would the test.
func TestSmokeCurl(t *testing.T) {
	if os.Getenv(envSmokeInner) == "1" {
		smokeInner(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("the smoke test needs root, to run in a network namespace of its own (CLONE_NEWNET)")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the smoke test needs curl")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestSmokeCurl$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envSmokeInner+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if m := regexp.MustCompile(`(?m)^\s*smoke_linux_test.go:\d+: SKIP: (.*)$`).FindSubmatch(out); m != nil {
		t.Skipf("%s", m[1])
	}
	if err != nil {
		t.Fatalf("inner test in a new network namespace: %v\n%s", err, out)
	}
	t.Logf("inner test:\n%s", out)
}

// smokeInner is the half of TestSmokeCurl that runs in the namespace.
func smokeInner(t *testing.T) {
	if err := loopbackUp(); err != nil {
		t.Fatalf("bringing lo up: %v", err)
	}
	// The HTTP server and the gateway, on 127.0.0.1.
	hln := socks6test.Listen(t)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s\n", r.Host, r.URL.Path)
	})}
	go hs.Serve(hln)
	t.Cleanup(func() { hs.Close() })
	hap := netip.MustParseAddrPort(hln.Addr().String())
	port := itoa16(hap.Port())
	r := &stubResolver{names: map[string]netip.Addr{"name.test": hap.Addr()}}
	gw := startGateway(t, r)

	var mu sync.Mutex
	var events []Event
	sup := &Supervisor{
		Dialer: &client.Dialer{ProxyAddress: gw},
		Logger: socks6test.Logger(t),
		OnConnect: func(ev Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
		},
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, args ...string) (stdout, stderr string, status syscall.WaitStatus) {
		t.Helper()
		outF, errF := tempFile(t), tempFile(t)
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer devnull.Close()
		argv := append([]string{"curl"}, args...)
		p, err := sup.Start(t.Context(), curl, argv, &os.ProcAttr{Files: []*os.File{devnull, outF, errF}})
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("SKIP: seccomp user notification unavailable: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				p.Signal(syscall.SIGKILL)
			}
		}()
		status, err = p.Wait()
		close(done)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := os.ReadFile(outF.Name())
		e, _ := os.ReadFile(errF.Name())
		t.Logf("$ %s\n  exit %d (signal %d)\n  stdout: %s\n  stderr: %s", strings.Join(argv, " "), status.ExitStatus(), status.Signal(), o, e)
		return string(o), string(e), status
	}

	t.Run("name through the gateway", func(t *testing.T) {
		out, _, st := run(t, "-sS", "--max-time", "10", "http://name.test:"+port+"/smoke")
		if !st.Exited() || st.ExitStatus() != 0 {
			t.Fatalf("curl: %v", st)
		}
		if want := "hello name.test:" + port + " /smoke"; !strings.Contains(out, want) {
			t.Errorf("output %q, want %q", out, want)
		}
		if !r.wasAsked("name.test") {
			t.Error("the gateway was not asked for name.test: the name did not reach it")
		}
		mu.Lock()
		defer mu.Unlock()
		found := false
		for _, ev := range events {
			if ev.Target == "name.test:"+port && ev.Err == nil && ev.Errno == 0 && isFake(ev.Dest.Addr()) && ev.Comm == "curl" {
				found = true
			}
		}
		if !found {
			t.Errorf("no successful event for name.test:%s in %+v", port, events)
		}
	})
	t.Run("name not found", func(t *testing.T) {
		_, errOut, st := run(t, "-sS", "--max-time", "10", "http://nx.test:"+port+"/")
		// curl: (7) Failed to connect: the gateway's NXDOMAIN is
		// EHOSTUNREACH at connect time.
		if !st.Exited() || st.ExitStatus() != 7 {
			t.Errorf("curl exit %v, want 7; stderr %q", st, errOut)
		}
	})
	t.Run("refused", func(t *testing.T) {
		closed := socks6test.Listen(t)
		cport := itoa16(netip.MustParseAddrPort(closed.Addr().String()).Port())
		closed.Close()
		r.mu.Lock()
		r.names["closed.test"] = hap.Addr()
		r.mu.Unlock()
		_, _, st := run(t, "-sS", "--max-time", "10", "http://closed.test:"+cport+"/")
		if !st.Exited() || st.ExitStatus() != 7 {
			t.Errorf("curl exit %v, want 7", st)
		}
		mu.Lock()
		defer mu.Unlock()
		found := false
		for _, ev := range events {
			if ev.Target == "closed.test:"+cport && ev.Errno == unix.ECONNREFUSED {
				found = true
			}
		}
		if !found {
			t.Errorf("no ECONNREFUSED event for closed.test:%s in %+v", cport, events)
		}
	})
	t.Run("loopback direct", func(t *testing.T) {
		out, _, st := run(t, "-sS", "--max-time", "10", "http://127.0.0.1:"+port+"/direct")
		if !st.Exited() || st.ExitStatus() != 0 || !strings.Contains(out, "/direct") {
			t.Errorf("curl: %v %q", st, out)
		}
	})
}

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// loopbackUp sets lo up in the current network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return err
	}
	// Wait for 127.0.0.1 to accept connections.
	deadline := time.Now().Add(2 * time.Second)
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			ln.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
