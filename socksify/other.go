//go:build !linux || !amd64

package socksify

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"syscall"
)

var errPlatform = fmt.Errorf("socksify: supervision needs Linux on x86_64, not %s/%s: %w", runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)

// A Process is a program running under a Supervisor. On this platform
// there are none.
type Process struct {
	// Pid is the program's process ID.
	Pid int
}

// Start fails on this platform: supervision needs Linux on x86_64.
func (s *Supervisor) Start(ctx context.Context, path string, argv []string, attr *os.ProcAttr) (*Process, error) {
	return nil, errPlatform
}

// Signal fails on this platform.
func (p *Process) Signal(sig os.Signal) error { return errPlatform }

// Wait fails on this platform.
func (p *Process) Wait() (syscall.WaitStatus, error) { return 0, errPlatform }

// Launch fails on this platform.
func Launch(args []string) error { return errPlatform }

// A loopUDP is a fake DNS server socket that the notification loop
// serves; there is no loop on this platform.
type loopUDP struct {
	addr netip.AddrPort
}

func listenLoopUDP(ip netip.Addr) (loopUDP, error) { return loopUDP{}, errPlatform }

func (u loopUDP) close() {}
