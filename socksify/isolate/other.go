//go:build !linux

package isolate

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/socksify"
)

// DefaultMTU is the TUN device's MTU when Config.MTU is 0.
const DefaultMTU = 65520

// Config configures the isolate mode (Linux only).
type Config struct {
	Dialer    *client.Dialer
	MTU       int
	OnConnect func(socksify.Event)
	Logger    *slog.Logger
}

// A Process is a program running in an isolated namespace.
type Process struct{ Pid int }

// Start fails: the isolate mode needs Linux network namespaces.
func Start(ctx context.Context, cfg Config, path string, argv []string, attr *os.ProcAttr) (*Process, error) {
	return nil, errors.ErrUnsupported
}

// Signal fails: there is no such process.
func (p *Process) Signal(sig os.Signal) error { return errors.ErrUnsupported }

// Wait fails: there is no such process.
func (p *Process) Wait() (syscall.WaitStatus, error) { return 0, errors.ErrUnsupported }
