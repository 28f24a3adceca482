package isolate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/socksify"
	"golang.org/x/sys/unix"
)

// The namespace's interface and addresses.
const tunName = "s6tun0"

var (
	addr4 = netip.MustParsePrefix("192.0.0.8/32")         // RFC 7600: the IPv4 dummy address
	addr6 = netip.MustParsePrefix("fd00:5eed:0:1::1/128") // next to socksify's fake /64
)

// DefaultMTU is the TUN device's MTU when Config.MTU is 0: the largest
// the stack handles well; larger segments mean fewer packets, and the
// stack's cost is per packet.
const DefaultMTU = 65520

// Config configures the isolate mode.
type Config struct {
	// Dialer reaches the gateway; it is required. Every TCP connection
	// is one Dialer.DialContext, and every UDP flow one Dialer.ListenPacket
	// (UDP in the stream), or, with a gateway without it, one plain SOCKS5
	// UDP ASSOCIATE with its ProxyAddress and credentials.
	Dialer *client.Dialer

	// MTU is the TUN device's MTU; 0 means DefaultMTU.
	MTU int

	// OnConnect, if not nil, is called once for each TCP connection and
	// each UDP flow the program starts, after the gateway answered. Pid
	// and Comm name the process that holds the program's socket (0 and ""
	// if it is gone by then). It is called from several goroutines at
	// once.
	OnConnect func(socksify.Event)

	// Logger receives debug logs. Nil means slog.Default().
	Logger *slog.Logger
}

// A Process is a program running in an isolated namespace.
type Process struct {
	// Pid is the program's process ID.
	Pid int

	proc *os.Process
	n    *netstack
	dns  []func() // closes the loopback DNS servers
}

// Start runs the program path with arguments argv (argv[0] included) in
// a new network namespace whose traffic goes through the gateway, and
// returns at once. attr's Dir, Env, Files and Sys apply as for
// os.StartProcess (Sys must not ask for another network namespace).
// path is not searched in PATH. ctx bounds the start only.
func Start(ctx context.Context, cfg Config, path string, argv []string, attr *os.ProcAttr) (*Process, error) {
	if cfg.Dialer == nil || cfg.Dialer.ProxyAddress == "" {
		return nil, errors.New("socksify isolate: no gateway: Config.Dialer.ProxyAddress is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 1280 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("socksify isolate: MTU %d out of range 1280–65535", cfg.MTU)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(argv) == 0 {
		argv = []string{path}
	}
	if attr == nil {
		attr = &os.ProcAttr{}
	}
	a := *attr // the caller's stays as it was
	attr = &a
	if attr.Files == nil {
		attr.Files = []*os.File{os.Stdin, os.Stdout, os.Stderr}
	}
	fake := socksify.NewFakeDNS(false)
	loopNS := loopbackNameservers("/etc/resolv.conf")

	// The namespace is made on a thread of its own, which then starts
	// the program (a child starts in its parent thread's namespace,
	// capabilities and mount namespace) and opens the loopback DNS
	// sockets there. The thread stays locked and is discarded when the
	// goroutine returns: it is not fit for other goroutines any more.
	// It must not be the main thread, which Go keeps.
	type result struct {
		tun  int
		own  *owners
		proc *os.Process
		pcs  []net.PacketConn
		lns  []net.Listener
		err  error
	}
	ch := make(chan result, 1)
	setUp := func() {
		runtime.LockOSThread()
		r := result{tun: -1}
		defer func() { ch <- r }()
		fail := func(err error) {
			r.err = err
			if r.own != nil {
				r.own.close()
				r.own = nil
			}
			if r.tun >= 0 {
				unix.Close(r.tun)
				r.tun = -1
			}
			for _, pc := range r.pcs {
				pc.Close()
			}
			for _, ln := range r.lns {
				ln.Close()
			}
			r.pcs, r.lns = nil, nil
		}
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			fail(fmt.Errorf("socksify isolate: unshare(CLONE_NEWNET): %w (the isolate mode needs root: CAP_SYS_ADMIN and CAP_NET_ADMIN)", err))
			return
		}
		tun, err := openTUN(tunName)
		if err != nil {
			fail(fmt.Errorf("socksify isolate: %w", err))
			return
		}
		r.tun = tun
		if err := configure(cfg.MTU); err != nil {
			fail(fmt.Errorf("socksify isolate: setting up the namespace: %w", err))
			return
		}
		if cfg.OnConnect != nil {
			// Without the tables the events just name no process.
			if own, err := openOwners(); err == nil {
				r.own = own
			}
		}
		for _, ap := range loopNS {
			pc, err := net.ListenPacket("udp", ap.String())
			if err != nil {
				fail(fmt.Errorf("socksify isolate: DNS on the namespace's %s: %w", ap, err))
				return
			}
			r.pcs = append(r.pcs, pc)
			ln, err := net.Listen("tcp", ap.String())
			if err != nil {
				fail(fmt.Errorf("socksify isolate: DNS on the namespace's %s: %w", ap, err))
				return
			}
			r.lns = append(r.lns, ln)
		}
		// Last: the namespace is set up, and the sockets above needed
		// no capability left.
		if err := readOnlyKernelFiles(); err != nil {
			fail(fmt.Errorf("socksify isolate: %w", err))
			return
		}
		if err := dropCapabilities(); err != nil {
			fail(fmt.Errorf("socksify isolate: %w", err))
			return
		}
		proc, err := os.StartProcess(path, argv, attr)
		if err != nil {
			fail(fmt.Errorf("socksify isolate: %w", err))
			return
		}
		r.proc = proc
	}
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			setUp() // ends locked: the thread goes with the goroutine
			return
		}
		// The main thread, which Go never ends: the namespaces and the
		// reduced capabilities would stay with it, and so with the
		// process (its /proc entry and ptrace checks use the main
		// thread's credentials). setUp runs on another thread while
		// this goroutine holds this one, so it cannot land here.
		done := make(chan struct{})
		go func() {
			defer close(done)
			setUp()
		}()
		<-done
		runtime.UnlockOSThread()
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	n, err := newNetstack(r.tun, cfg, fake, r.own)
	if err != nil {
		if r.own != nil {
			r.own.close()
		}
		r.proc.Kill()
		r.proc.Wait()
		unix.Close(r.tun)
		return nil, fmt.Errorf("socksify isolate: %w", err)
	}
	p := &Process{Pid: r.proc.Pid, proc: r.proc, n: n}
	for _, pc := range r.pcs {
		p.dns = append(p.dns, n.serveDNSPacket(pc))
	}
	for _, ln := range r.lns {
		p.dns = append(p.dns, n.serveDNSStream(ln))
	}
	return p, nil
}

// configure brings up loopback and the TUN device, gives the device its
// addresses and routes everything to it. It runs in the new namespace.
func configure(mtu int) error {
	if _, err := linkUp("lo", 0); err != nil {
		return err
	}
	idx, err := linkUp(tunName, mtu)
	if err != nil {
		return err
	}
	for _, p := range []netip.Prefix{addr4, addr6} {
		if err := addAddr(idx, p); err != nil {
			return err
		}
	}
	if err := addDefaultRoute(idx, unix.AF_INET); err != nil {
		return err
	}
	return addDefaultRoute(idx, unix.AF_INET6)
}

// loopbackNameservers returns the nameservers in the resolv.conf file
// that are loopback addresses (127.0.0.53 for systemd-resolved, ::1,
// …), port 53: the namespace's loopback is its own, so socksify serves
// DNS there itself. Other nameservers are reached through the TUN
// device, where the stack answers them.
func loopbackNameservers(file string) []netip.AddrPort {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.AddrPort
	seen := map[netip.Addr]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		ip, err := netip.ParseAddr(fields[1])
		if err != nil || !ip.Unmap().IsLoopback() || ip.Zone() != "" || seen[ip.Unmap()] {
			continue
		}
		seen[ip.Unmap()] = true
		out = append(out, netip.AddrPortFrom(ip.Unmap(), 53))
	}
	return out
}

// Signal sends sig to the program. It returns os.ErrProcessDone once the
// program has exited.
func (p *Process) Signal(sig os.Signal) error { return p.proc.Signal(sig) }

// Wait waits for the program to exit and returns its wait status; it then
// tears the stack down, which removes the TUN device: whatever the
// program left running in the namespace loses its network. It must be
// called once.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	st, err := p.proc.Wait()
	for _, stop := range p.dns {
		stop()
	}
	p.n.close()
	if err != nil {
		return 0, err
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	return ws, nil
}

// closers tracks what a server goroutine must close when it stops.
type closers struct {
	mu sync.Mutex
	m  map[interface{ Close() error }]struct{}
}

func (c *closers) add(x interface{ Close() error }) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		return false
	}
	c.m[x] = struct{}{}
	return true
}

func (c *closers) remove(x interface{ Close() error }) {
	c.mu.Lock()
	delete(c.m, x)
	c.mu.Unlock()
}

func (c *closers) closeAll() {
	c.mu.Lock()
	m := c.m
	c.m = nil
	c.mu.Unlock()
	for x := range m {
		x.Close()
	}
}
