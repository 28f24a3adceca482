//go:build linux && amd64

package socksify

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/socks6/socks6/server/resolver"
	"golang.org/x/sys/unix"
)

// Environment variables that select what a re-executed test binary does.
const (
	envFilterChild = "SOCKSIFY_TEST_FILTER_CHILD" // run filterChild and exit
	envSmokeInner  = "SOCKSIFY_TEST_SMOKE_INNER"  // TestSmokeCurl runs its inner half
)

// TestMain lets the test binary be its own launcher, as cmd/socksify is:
// Supervisor.Start re-executes os.Executable() with LauncherArg.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == LauncherArg {
		err := Launch(os.Args[2:])
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	if os.Getenv(envFilterChild) == "1" {
		os.Exit(filterChild())
	}
	os.Exit(m.Run())
}

// filterChild installs the filter on its thread and checks what the
// kernel does with it: the calls refused in BPF, the calls that are let
// through, and, once the listener is closed (as when the supervisor
// dies), that trapped calls fail instead of running. It runs only
// untrapped calls while the listener is open: nobody answers them.
func filterChild() int {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("prctl:", err)
		return 2
	}
	prog, err := buildFilter(filterOpts{})
	if err != nil {
		fmt.Println("build:", err)
		return 2
	}
	lfd, err := installFilter(prog)
	if err != nil {
		fmt.Println("seccomp:", err)
		if err == unix.EINVAL || err == unix.ENOSYS {
			return 3 // unsupported
		}
		return 2
	}
	failed := false
	check := func(what string, got, want syscall.Errno) {
		status := "ok"
		if got != want {
			status, failed = "FAIL", true
		}
		fmt.Printf("%s: %s: got %v (%d), want %v (%d)\n", status, what, got, int(got), want, int(want))
	}
	socket := func(domain, typ, proto int) syscall.Errno {
		fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(domain), uintptr(typ), uintptr(proto))
		if e == 0 {
			unix.Close(int(fd))
		}
		return e
	}
	check("socket(AF_PACKET, SOCK_RAW)", socket(unix.AF_PACKET, unix.SOCK_RAW, 0x300), unix.EPERM)
	check("socket(AF_INET, SOCK_RAW|SOCK_CLOEXEC, ICMP)", socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP), unix.EPERM)
	check("socket(AF_INET6, SOCK_RAW, ICMPV6)", socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6), unix.EPERM)
	check("socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)", socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP), unix.EPERM)
	check("socket(AF_INET6, SOCK_SEQPACKET, IPPROTO_SCTP)", socket(unix.AF_INET6, unix.SOCK_SEQPACKET, unix.IPPROTO_SCTP), unix.EPERM)
	check("socket(AF_INET, SOCK_PACKET)", socket(unix.AF_INET, unix.SOCK_PACKET, 0x300), unix.EPERM)
	check("socket(AF_RDS, SOCK_SEQPACKET)", socket(unix.AF_RDS, unix.SOCK_SEQPACKET, 0), unix.EPERM)
	check("socket(AF_NETLINK, SOCK_RAW)", socket(unix.AF_NETLINK, unix.SOCK_RAW, 0), 0)
	check("socket(AF_INET, SOCK_STREAM)", socket(unix.AF_INET, unix.SOCK_STREAM, 0), 0)
	var params [120]byte
	_, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
	check("io_uring_setup", e, unix.ENOSYS)
	udp, _, _ := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM, 0)
	msg := []byte("x")
	_, _, e = unix.RawSyscall6(unix.SYS_SENDTO, udp, uintptr(unsafe.Pointer(&msg[0])), 1, 0, 0, 0)
	check("sendto(NULL address) is not trapped", e, unix.EDESTADDRREQ)

	// The supervisor goes away: trapped calls fail.
	unix.Close(lfd)
	sa := []byte{2, 0, 0, 1, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	tcp, _, _ := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, 0)
	_, _, e = unix.RawSyscall(unix.SYS_CONNECT, tcp, uintptr(unsafe.Pointer(&sa[0])), uintptr(len(sa)))
	check("connect without a supervisor", e, unix.ENOSYS)
	_, _, e = unix.RawSyscall6(unix.SYS_SENDTO, udp, uintptr(unsafe.Pointer(&msg[0])), 1, 0, uintptr(unsafe.Pointer(&sa[0])), uintptr(len(sa)))
	check("sendto(address) without a supervisor", e, unix.ENOSYS)
	if failed {
		return 1
	}
	return 0
}

// TestFilterInKernel loads the filter in a child process.
func TestFilterInKernel(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envFilterChild+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", out)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 3:
		t.Skip("the kernel refuses seccomp filters with NEW_LISTENER|WAIT_KILLABLE_RECV (before Linux 5.19?)")
	default:
		t.Fatalf("child: %v", err)
	}
	if !strings.Contains(string(out), "connect without a supervisor") {
		t.Error("the child did not run every check")
	}
}

// stubResolver is the test gateway's resolver: fixed names, NXDOMAIN for
// the others, and a record of the names asked for.
type stubResolver struct {
	mu    sync.Mutex
	names map[string]netip.Addr
	asked []string
}

func (r *stubResolver) Lookup(ctx context.Context, network, host string) ([]resolver.Answer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	ip, ok := r.names[host]
	if !ok {
		return nil, &resolver.Error{Name: host, Kind: resolver.NotFound}
	}
	if (network == "ip4") != ip.Is4() {
		return nil, nil
	}
	return []resolver.Answer{{Addr: ip, TTL: 60}}, nil
}

func (r *stubResolver) wasAsked(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.asked {
		if n == name {
			return true
		}
	}
	return false
}

// The launcher's reports: a kernel without WAIT_KILLABLE_RECV refuses the
// filter with EINVAL, which must stop Start with errors.ErrUnsupported.
func TestParseLaunchStatus(t *testing.T) {
	if n, err := parseLaunchStatus("ok 7\n"); err != nil || n != 7 {
		t.Errorf("ok 7: %d, %v", n, err)
	}
	_, err := parseLaunchStatus("err 22 seccomp(SECCOMP_SET_MODE_FILTER)\n")
	if !errors.Is(err, errors.ErrUnsupported) || !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "WAIT_KILLABLE_RECV") {
		t.Errorf("EINVAL: %v", err)
	}
	_, err = parseLaunchStatus("err 16 seccomp(SECCOMP_SET_MODE_FILTER)\n")
	if errors.Is(err, errors.ErrUnsupported) || !errors.Is(err, unix.EBUSY) {
		t.Errorf("EBUSY: %v", err)
	}
	_, err = parseLaunchStatus("err 1 prctl(PR_SET_NO_NEW_PRIVS)\n")
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("EPERM: %v", err)
	}
	for _, bad := range []string{"", "ok\n", "ok -1\n", "hello\n"} {
		if _, err := parseLaunchStatus(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
