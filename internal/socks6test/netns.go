package socks6test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// A NetNS is a network namespace created for one test: a test host with
// its own interfaces, addresses and routes. The test's process stays in
// its own namespace; Do, DialContext and Listen run single socket
// operations inside n on a thread that enters it and leaves again.
type NetNS struct {
	Name string
	fd   *os.File // /run/netns/Name, held open while the test runs
}

var netnsSeq atomic.Int64

// NewNetNS creates a network namespace whose loopback interface is up and
// removes it, with every interface inside, when the test ends. It skips the
// test when it cannot: not root, no ip(8), or namespaces unsupported.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespace tests need ip(8) from iproute2: apt-get install iproute2")
	}
	name := fmt.Sprintf("s6t-%d-%d", os.Getpid(), netnsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace (ip netns add %s: %v: %s)", name, err, strings.TrimSpace(string(out)))
	}
	n := &NetNS{Name: name}
	t.Cleanup(func() {
		if n.fd != nil {
			n.fd.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
	})
	fd, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		t.Fatalf("open network namespace %s: %v", name, err)
	}
	n.fd = fd
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// IP runs "ip -n <n> args…" and fails the test if it fails.
func (n *NetNS) IP(t testing.TB, args ...string) {
	t.Helper()
	args = append([]string{"-n", n.Name}, args...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// Veth connects a and b with a veth pair whose ends are named aName in a
// and bName in b, and sets both ends up. The pair is created inside the
// namespaces, so the names cannot collide with the host's interfaces, and
// it goes away with them.
func Veth(t testing.TB, a *NetNS, aName string, b *NetNS, bName string) {
	t.Helper()
	a.IP(t, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
	a.IP(t, "link", "set", aName, "up")
	b.IP(t, "link", "set", bName, "up")
}

// Sysctl writes value to /proc/sys/<key> as seen inside n, for per-namespace
// settings such as "net/ipv4/ip_forward".
func (n *NetNS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	var werr error
	if err := n.Do(func() {
		werr = os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0)
	}); err != nil {
		t.Fatalf("enter %s: %v", n.Name, err)
	}
	if werr != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, n.Name, werr)
	}
}

// Do runs fn on an OS thread that has entered n, then returns the thread
// to the namespace it came from. Sockets that fn creates belong to n for
// their whole life; fn must not start goroutines that create sockets.
//
// If the thread cannot return to its namespace, Do leaves it locked to
// the calling goroutine, so that the runtime ends the thread with the
// goroutine instead of reusing it, and returns an error.
func (n *NetNS) Do(fn func()) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(int(n.fd.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", n.Name, err)
	}
	fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns back from %s: %w (thread left locked)", n.Name, err)
	}
	runtime.UnlockOSThread()
	return nil
}

// DialContext dials from inside n. It has the signature of
// server.Server.Dial, so an in-process gateway can reach n's networks.
// addr must be an IP address and port: a name would be resolved by
// goroutines outside n.
func (n *NetNS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := n.Do(func() {
		var d net.Dialer
		c, derr = d.DialContext(ctx, network, addr)
	}); err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	return c, derr
}

// ListenTCP listens on addr inside n. It has the signature of
// server.Server.ListenTCP, so an in-process gateway's LISTEN sockets
// can live in n.
func (n *NetNS) ListenTCP(ctx context.Context, network, addr string) (net.Listener, error) {
	var ln net.Listener
	var lerr error
	if err := n.Do(func() { ln, lerr = net.Listen(network, addr) }); err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	return ln, lerr
}

// ListenUDP opens a UDP socket on the unspecified address inside n. It
// has the signature of server.Server.ListenUDP, so an in-process
// gateway's UDP sockets toward the outside can live in n.
func (n *NetNS) ListenUDP(ctx context.Context, network string) (*net.UDPConn, error) {
	var c *net.UDPConn
	var lerr error
	if err := n.Do(func() { c, lerr = net.ListenUDP(network, nil) }); err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	return c, lerr
}

// Listen listens on addr ("198.51.100.2:0") inside n; the listener is
// closed when the test ends.
func (n *NetNS) Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var lerr error
	if err := n.Do(func() { ln, lerr = net.Listen(network, addr) }); err != nil {
		t.Fatalf("enter %s: %v", n.Name, err)
	}
	if lerr != nil {
		t.Fatalf("listen on %s in %s: %v", addr, n.Name, lerr)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Start runs argv inside n (ip netns exec) in the background, with its
// standard error in the returned Buffer, and kills it when the test
// ends, logging that output if the test failed.
func (n *NetNS) Start(t testing.TB, argv ...string) *Buffer {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, argv...)...)
	log := new(Buffer)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s in %s: %v", argv[0], n.Name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(argv[0]), log.String())
		}
	})
	return log
}
