//go:build linux && amd64

package socksify

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/relay"
	"golang.org/x/sys/unix"
)

// defaultHandshakeTimeout bounds reaching the gateway and the handshake
// when the Dialer's Timeout is zero (the Dialer's own default).
const defaultHandshakeTimeout = 30 * time.Second

// launchTimeout bounds the launcher's report when Start's ctx has no
// deadline.
const launchTimeout = 10 * time.Second

// A Process is a program running under a Supervisor.
type Process struct {
	// Pid is the program's process ID.
	Pid int

	mu    sync.Mutex // guards pidfd, which Wait closes (-1)
	pidfd int
	sup   *supervisor

	loopDone chan struct{} // closed when the listener hung up: every supervised task is gone
	reapDone chan struct{} // closed when the process has no children left
	status   syscall.WaitStatus
	reaped   bool // status is the program's
}

// Start runs the program path with arguments argv (argv[0] included) under
// supervision and returns at once. attr's Dir, Env, Files and Sys apply
// as for os.StartProcess; a nil attr, or nil Env or Files, means the
// supervisor's own working directory, environment and standard files.
// The program's environment also gets SupervisedEnv=1. path is not
// searched in PATH: use exec.LookPath first.
//
// Start re-executes Launcher in launcher mode (see Launch): the program
// runs with a seccomp filter whose user notifications the supervisor
// answers, which redirects its TCP connections through the gateway and
// answers its DNS queries with fake addresses. It needs Linux 5.19 or
// later on x86_64 (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV), pidfd_getfd
// and process_vm_readv on its own child (same user; Yama ptrace_scope 0
// or 1), and fails, running nothing, when it cannot supervise: the error
// then wraps errors.ErrUnsupported when the kernel lacks a feature.
//
// Start makes the calling process a child subreaper
// (PR_SET_CHILD_SUBREAPER), so that descendants the program leaves
// behind stay supervised and are reaped here, and from then on reaps
// every child of the process: run one supervisor per process and start
// no other children while it runs.
//
// ctx bounds the start (resolving the gateway's name and the launcher's
// setup); once Start returns, cancelling it has no effect.
func (s *Supervisor) Start(ctx context.Context, path string, argv []string, attr *os.ProcAttr) (*Process, error) {
	if s.Dialer == nil || s.Dialer.ProxyAddress == "" {
		return nil, errors.New("socksify: no gateway: Supervisor.Dialer.ProxyAddress is empty")
	}
	if len(argv) == 0 {
		argv = []string{path}
	}
	gws, err := resolveGateway(ctx, s.Dialer.ProxyAddress)
	if err != nil {
		return nil, err
	}
	launcher := s.Launcher
	if launcher == "" {
		if launcher, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("socksify: finding the launcher: %w", err)
		}
	}
	if attr == nil {
		attr = &os.ProcAttr{}
	}
	log := s.logger()
	sup := &supervisor{
		lfd:       -1,
		log:       log,
		dialer:    s.Dialer,
		pol:       policy{gateway: gws},
		gw:        gws,
		fake:      newFakeTable(0),
		onConnect: s.OnConnect,
		onListen:  s.OnListen,
		timeout:   s.Dialer.Timeout,
		plain:     s.Dialer.Extensions != client.ExtRequire && s.Dialer.Family == 0 && s.Dialer.TLSConfig == nil,
	}
	sup.fake.prefer6 = true
	for _, gw := range gws {
		if gw.Addr().Is4() {
			sup.fake.prefer6 = false // fake IPv4 addresses: their sockets reach the gateway
		}
	}
	for _, p := range s.Direct {
		sup.pol.direct = append(sup.pol.direct, netip.PrefixFrom(p.Addr().Unmap(), max(0, p.Bits()-unmapBits(p.Addr()))).Masked())
	}
	if sup.timeout == 0 {
		sup.timeout = defaultHandshakeTimeout
	}
	if !s.NoPreload && !s.Warm {
		sup.preload, err = startPreload(sup.fake.prefer6)
		switch {
		case err == nil:
			sup.fake.max, sup.fake.ext = preloadBase-1, sup.preload.name
		case errors.Is(err, errPreloadOff):
			log.Debug("socksify: names looked up through the fake DNS only", "why", err)
		default:
			log.Warn("socksify: the preload fast path is off", "err", err)
		}
	}
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sup.ctx, sup.cancel = base, cancel
	if sup.dns, err = startDNSServer(sup.fake, log, true); err != nil {
		sup.closePreload()
		cancel()
		return nil, fmt.Errorf("socksify: starting the fake DNS server: %w", err)
	}
	sup.dnsFDs, sup.dnsBuf = sup.dns.udpFDs(), make([]byte, 65535)
	if sup.udp, err = newUDPRelay(sup); err != nil {
		sup.dns.close()
		sup.closePreload()
		cancel()
		return nil, fmt.Errorf("socksify: opening the UDP relay's sockets: %w", err)
	}
	if s.Publish != nil {
		sup.lis = newListenMgr(sup, s.Publish)
	}
	if s.Warm {
		if sup.warm = newWarmer(base, s.Dialer, log); sup.warm != nil {
			sup.dns.onFake = sup.warm.name
		}
	}
	p, err := sup.launch(ctx, launcher, path, argv, attr)
	if err != nil {
		if sup.lis != nil {
			sup.lis.close()
		}
		sup.udp.close()
		sup.dns.close()
		sup.closePreload()
		cancel()
		if sup.warm != nil {
			sup.warm.wait()
		}
		return nil, err
	}
	return p, nil
}

// unmapBits is how many bits of a prefix length an IPv4-mapped address
// spends on the ::ffff:0:0/96 part.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// resolveGateway returns the gateway's addresses.
func resolveGateway(ctx context.Context, hostport string) ([]netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("socksify: gateway address %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("socksify: gateway address %q: bad port", hostport)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), uint16(port))}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("socksify: resolving the gateway %s: %w", host, err)
	}
	var out []netip.AddrPort
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("socksify: resolving the gateway %s: no addresses", host)
	}
	return out, nil
}

// launch starts the launcher, takes its listener and lets it exec the
// program.
func (sup *supervisor) launch(ctx context.Context, launcher, path string, argv []string, attr *os.ProcAttr) (*Process, error) {
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusR.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		return nil, err
	}
	defer goW.Close()

	files := attr.Files
	if files == nil {
		files = []*os.File{os.Stdin, os.Stdout, os.Stderr}
	}
	files = append(files[:len(files):len(files)], statusW, goR)
	statusFD, goFD := len(files)-2, len(files)-1
	env := attr.Env
	if env == nil {
		env = os.Environ()
	}
	env = setEnv(env, SupervisedEnv, "1")
	if sup.preload != nil {
		env = sup.preload.env(env)
	}
	opts := filterOpts{getsockname: sup.lis != nil}
	largv := append([]string{launcher, LauncherArg, strconv.Itoa(statusFD), strconv.Itoa(goFD), opts.String(), path}, argv...)

	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		statusW.Close()
		goR.Close()
		return nil, fmt.Errorf("socksify: prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	proc, err := os.StartProcess(launcher, largv, &os.ProcAttr{Dir: attr.Dir, Env: env, Files: files, Sys: attr.Sys})
	statusW.Close()
	goR.Close()
	if err != nil {
		return nil, fmt.Errorf("socksify: starting the launcher: %w", err)
	}
	abort := func(err error) (*Process, error) {
		proc.Kill()
		proc.Wait()
		return nil, err
	}

	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(launchTimeout)
	}
	statusR.SetReadDeadline(dl)
	stopWatch := context.AfterFunc(ctx, func() { statusR.SetReadDeadline(time.Unix(1, 0)) })
	line, rerr := bufio.NewReader(statusR).ReadString('\n')
	stopWatch()
	if rerr != nil {
		if ctx.Err() != nil {
			rerr = ctx.Err()
		}
		return abort(fmt.Errorf("socksify: the launcher %s did not report (does its main call socksify.Launch?): %w", launcher, rerr))
	}
	lnum, err := parseLaunchStatus(line)
	if err != nil {
		return abort(err)
	}

	pidfd, err := unix.PidfdOpen(proc.Pid, 0)
	if err != nil {
		return abort(fmt.Errorf("socksify: pidfd_open: %w", err))
	}
	lfd, err := unix.PidfdGetfd(pidfd, lnum, 0)
	if err != nil {
		unix.Close(pidfd)
		return abort(fmt.Errorf("socksify: taking the seccomp listener with pidfd_getfd (ptrace access to the child is needed; see Yama's ptrace_scope): %w", err))
	}
	sup.lfd = lfd
	if err := notifSetSyncWakeUp(lfd); err != nil {
		sup.log.Debug("socksify: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable (Linux 6.6); notifications wake up asynchronously", "err", err)
	}
	if _, err := goW.Write([]byte{1}); err != nil {
		unix.Close(lfd)
		unix.Close(pidfd)
		return abort(fmt.Errorf("socksify: releasing the launcher: %w", err))
	}
	p := &Process{Pid: proc.Pid, pidfd: pidfd, sup: sup, loopDone: make(chan struct{}), reapDone: make(chan struct{})}
	go p.reap()
	go p.serve()
	return p, nil
}

// parseLaunchStatus reads the launcher's report: "ok FD" or "err ERRNO
// WHAT".
func parseLaunchStatus(line string) (int, error) {
	f := strings.Fields(line)
	if len(f) == 2 && f[0] == "ok" {
		if n, err := strconv.Atoi(f[1]); err == nil && n >= 0 {
			return n, nil
		}
	}
	if len(f) >= 3 && f[0] == "err" {
		n, _ := strconv.Atoi(f[1])
		errno := syscall.Errno(n)
		what := strings.Join(f[2:], " ")
		switch {
		case strings.HasPrefix(what, "seccomp") && errno == syscall.EINVAL:
			return -1, fmt.Errorf("socksify: the kernel (%s) refused a seccomp filter with NEW_LISTENER|WAIT_KILLABLE_RECV; socksify needs SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19 or later) and will not run the program unproxied: %w: %w",
				kernelRelease(), errors.ErrUnsupported, errno)
		case strings.HasPrefix(what, "seccomp") && errno == syscall.EBUSY:
			return -1, fmt.Errorf("socksify: the program would already be under another seccomp user-notification supervisor (one listener per filter chain): %w", errno)
		case strings.HasPrefix(what, "seccomp") && (errno == syscall.ENOSYS || errno == syscall.EOPNOTSUPP):
			return -1, fmt.Errorf("socksify: the kernel (%s) has no seccomp user notification: %w: %w", kernelRelease(), errors.ErrUnsupported, errno)
		}
		return -1, fmt.Errorf("socksify launcher: %s: %w", what, errno)
	}
	return -1, fmt.Errorf("socksify: unexpected report from the launcher: %q", strings.TrimSpace(line))
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// setEnv returns env with key=value, replacing any earlier settings.
func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// Signal sends sig to the program (not to its children). It returns
// os.ErrProcessDone once the program has exited and been reaped, or
// Wait has returned.
func (p *Process) Signal(sig os.Signal) error {
	ss, ok := sig.(syscall.Signal)
	if !ok {
		return errors.New("socksify: unsupported signal type")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd < 0 {
		return os.ErrProcessDone
	}
	err := unix.PidfdSendSignal(p.pidfd, unix.Signal(ss), nil, 0)
	if err == unix.ESRCH {
		return os.ErrProcessDone
	}
	return err
}

// Wait waits until every supervised process is gone (the program and all
// its descendants, daemons included) and returns the program's wait
// status. It releases the supervisor's resources. It must be called
// once.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	<-p.loopDone
	<-p.reapDone
	p.sup.shutdown()
	p.mu.Lock()
	unix.Close(p.pidfd)
	p.pidfd = -1
	p.mu.Unlock()
	if !p.reaped {
		return 0, errors.New("socksify: the program's exit status was lost")
	}
	return p.status, nil
}

// reap waits for children until there are none: the program, and the
// descendants that the subreaper inherits. Zombies must be reaped for
// the seccomp listener to hang up, since a zombie still holds the
// filter.
func (p *Process) reap() {
	defer close(p.reapDone)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // ECHILD: no children left
		}
		if pid == p.Pid {
			p.status, p.reaped = syscall.WaitStatus(ws), true
		}
	}
}

// serve runs the notification loop on a locked OS thread until the
// listener hangs up (POLLHUP: no task uses the filter any more). Fast
// decisions (CONTINUE, errors, redirections to loopback) are made and
// answered inline, without handing the notification to a goroutine
// (which would cost several times the inline path); so is an in-band
// CONNECT while no other notification waits (see startInband). Only
// calls that block otherwise (gateway handshakes, blocking receives) get
// a goroutine, which answers when it is done. The loop also answers the
// fake DNS server's UDP queries, on the same thread: a program's query
// then needs no goroutine to wake.
func (p *Process) serve() {
	defer close(p.loopDone)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sup := p.sup
	var n seccompNotif
	fds := []unix.PollFd{{Fd: int32(sup.lfd), Events: unix.POLLIN}}
	for _, fd := range sup.dnsFDs {
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	for {
		for i := range fds {
			fds[i].Revents = 0
		}
		if _, err := pollHeld(fds, nil); err != nil {
			if err == unix.EINTR {
				continue
			}
			sup.log.Error("socksify: polling the seccomp listener", "err", err)
			return
		}
		for _, f := range fds[1:] {
			if f.Revents != 0 {
				sup.dns.serveUDPOnce(int(f.Fd), sup.dnsBuf)
			}
		}
		rev := fds[0].Revents
		if rev&unix.POLLIN != 0 {
			if err := notifRecv(sup.lfd, &n); err != nil {
				// ENOENT: the thread was killed before we got its
				// notification.
				if err != unix.ENOENT {
					sup.log.Debug("socksify: SECCOMP_IOCTL_NOTIF_RECV", "err", err)
				}
				if rev&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) == 0 {
					continue
				}
			} else {
				sup.handle(&n)
				continue
			}
		}
		if rev&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			return
		}
	}
}

// A supervisor answers one program tree's notifications.
type supervisor struct {
	lfd     int // the seccomp listener
	log     *slog.Logger
	dialer  *client.Dialer
	pol     policy
	gw      []netip.AddrPort // the gateway's addresses
	fake    *fakeTable
	dns     *dnsServer
	dnsFDs  []int         // the fake DNS server's UDP sockets, served by the loop
	dnsBuf  []byte        // the loop's buffer for them
	preload *preloadTable // nil when the fast path is off
	// Inline waits for the gateway (inband_linux.go): for the
	// connection, the method selection and the reply.
	spinConnect, spinSelection, spinReply spinEstimate
	udp                                   *udpRelay
	warm                                  *warmer    // nil if off
	lis                                   *listenMgr // nil unless Supervisor.Publish is set
	socks                                 sockTable
	pidfds                                pidfdCache // the notification loop's only
	onConnect                             func(Event)
	onListen                              func(ListenEvent)
	timeout                               time.Duration // bounds reaching the gateway plus the handshake; negative: none
	plain                                 bool          // CONNECT in plain SOCKS5, pipelined (socks5Request); else client.Dialer.Handshake
	tlsRel                                relay.Group   // connections to a TLS gateway, relayed (tlsrelay_linux.go)

	ctx    context.Context // parent of the handshakes' contexts; cancelled by shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines that answer notifications
}

// shutdown waits for the goroutines that answer notifications and
// releases everything. The loop has ended.
func (sup *supervisor) shutdown() {
	sup.cancel()
	sup.wg.Wait()
	sup.tlsRel.Close()
	if sup.warm != nil {
		sup.warm.wait()
	}
	sup.pidfds.close()
	unix.Close(sup.lfd)
	if sup.lis != nil {
		sup.lis.close()
	}
	sup.udp.close()
	sup.dns.close()
	sup.closePreload()
}

// closePreload closes the preload table, if any, after the fake DNS
// server, whose PTR answers read it.
func (sup *supervisor) closePreload() {
	if sup.preload != nil {
		sup.preload.close()
	}
}
