package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/socksify"
	"github.com/socks6/socks6/socksify/isolate"
)

// Exit statuses of socksify itself; otherwise it exits with the program's
// status (128+N when the program was killed by signal N).
const (
	exitUsage       = 2   // bad flags, or no gateway configured
	exitCannot      = 125 // socksify could not supervise (kernel, permissions)
	exitNotExec     = 126 // the program was found but cannot be executed
	exitNotFound    = 127 // the program was not found
	exitSignalFirst = 128
)

func main() {
	// The launcher mode comes first: Start re-executes this binary with
	// it, and it must do nothing else before installing the filter.
	if len(os.Args) > 1 && os.Args[1] == socksify.LauncherArg {
		err := socksify.Launch(os.Args[2:])
		fmt.Fprintln(os.Stderr, err)
		os.Exit(execFailureStatus(err))
	}
	os.Exit(run(os.Args[1:], os.Stderr, os.LookupEnv))
}

// options are the command line's settings.
type options struct {
	proxy     string
	user      string
	verbose   bool
	warm      bool
	noPreload bool
	isolate   bool
	// discover finds a gateway when none is configured (discover in
	// run; nil in tests of gateway alone).
	discover func() (addr, how string, ok bool)
	stderr   io.Writer
	direct   prefixList
	listen   portList
	argv     []string
	tlsCA    string // -tls-ca
	tlsName  string // -tls-name
}

// portList is the -listen flag: TCP ports, comma-separated and
// repeatable, or "all".
type portList struct {
	all   bool
	ports map[uint16]bool
}

func (l *portList) String() string {
	if l.all {
		return "all"
	}
	var s []string
	for p := range l.ports {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ",")
}

func (l *portList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			continue
		case strings.EqualFold(f, "all"):
			l.all = true
			continue
		}
		p, err := strconv.ParseUint(f, 10, 16)
		if err != nil || p == 0 {
			return fmt.Errorf("%q is not a port (1-65535) or \"all\"", f)
		}
		if l.ports == nil {
			l.ports = map[uint16]bool{}
		}
		l.ports[uint16(p)] = true
	}
	return nil
}

func (l *portList) set() bool { return l.all || len(l.ports) > 0 }

func (l *portList) selects(local netip.AddrPort) bool {
	return l.all || l.ports[local.Port()]
}

// prefixList is a flag that collects CIDR prefixes (or single
// addresses), comma-separated and repeatable.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	var s []string
	for _, p := range *l {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("%q is neither a CIDR prefix nor an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		*l = append(*l, p.Masked())
	}
	return nil
}

// run is main without the exit.
func run(args []string, stderr io.Writer, getenv func(string) (string, bool)) int {
	var o options
	fs := flag.NewFlagSet("socksify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.proxy, "proxy", "", "the gateway: `host:port`, or a URL socks5://[user[:pass]@]host:port,\nsocks5h://…, socks6://…[?ext=require] or socks6s://… (over TLS)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "reach the gateway over TLS, trusting the PEM certificates in `FILE` instead of\nthe system's roots")
	fs.StringVar(&o.tlsName, "tls-name", "", "reach the gateway over TLS, checking that its certificate is for `NAME`\n(default: the gateway's host)")
	fs.StringVar(&o.user, "user", "", "authenticate to the gateway as `USER` (password from the URL or $SOCKS6_PASSWORD)")
	fs.BoolVar(&o.verbose, "v", false, "print one line per redirected connection to standard error")
	fs.BoolVar(&o.warm, "warm", false, "send each name the program looks up to the gateway's resolver at once,\nahead of its connect (RESOLVE; needs a SOCKS6 gateway)")
	fs.BoolVar(&o.noPreload, "no-preload", false, "look every name up through the fake DNS: do not load socksify's getaddrinfo\ninto dynamically linked programs (LD_PRELOAD)")
	fs.BoolVar(&o.isolate, "isolate", false, "strict mode: run the program in a network namespace of its own whose only way out\nis the gateway (a TUN device served by a user-space TCP/IP stack); needs root")
	fs.Var(&o.direct, "direct", "reach these `CIDR,…` ranges directly, not through the gateway (repeatable)")
	fs.Var(&o.listen, "listen", "publish the program's listening sockets on these TCP `PORT,…` (or all)\nat the gateway (LISTEN; needs the SOCKS6 extensions)")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	o.argv = fs.Args()
	if len(o.argv) == 0 {
		fmt.Fprintln(stderr, "socksify: no program to run (usage: socksify [flags] -- PROGRAM [ARGS…])")
		return exitUsage
	}
	env := os.Environ()

	// Inside a supervised program: the outer socksify already supervises
	// everything this process starts, and a second listener cannot be
	// added to the filter chain, so run the program as it is. The
	// variable alone proves nothing (it may have been exported by hand,
	// or leaked out of a supervised shell into a file or a service):
	// only a seccomp filter on this process does. Without one, this
	// socksify supervises as usual.
	if v, _ := getenv(socksify.SupervisedEnv); v == "1" && underSeccompFilter() {
		path, code := lookPath(o.argv[0], stderr)
		if code != 0 {
			return code
		}
		if o.verbose {
			fmt.Fprintf(stderr, "socksify: already supervised by an outer socksify; running %s directly\n", o.argv[0])
		}
		err := syscall.Exec(path, o.argv, env)
		fmt.Fprintf(stderr, "socksify: exec %s: %v\n", path, err)
		return execFailureStatus(err)
	}

	o.stderr = stderr
	o.discover = func() (string, string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return discover(ctx)
	}
	d, err := gateway(o, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "socksify: %v\n", err)
		return exitUsage
	}
	if o.isolate && (o.listen.set() || len(o.direct) > 0) {
		fmt.Fprintln(stderr, "socksify: -isolate sends everything through the gateway: -listen and -direct do not apply")
		return exitUsage
	}
	if o.listen.set() && d.Extensions == client.ExtOff {
		fmt.Fprintln(stderr, "socksify: -listen needs the SOCKS6 extensions (LISTEN), which a socks5:// gateway or ext=off does not offer; use host:port or socks6://")
		return exitUsage
	}
	path, code := lookPath(o.argv[0], stderr)
	if code != 0 {
		return code
	}

	// Catch the signals to pass on before the program can get any.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	// A -v line written to a closed pipe must not kill socksify, which
	// would fail the program's network calls: catching SIGPIPE turns it
	// into EPIPE. (Caught, not ignored: an ignored signal would stay
	// ignored in the program.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	level := slog.LevelWarn
	if v, _ := getenv("SOCKSIFY_DEBUG"); v == "1" {
		level = slog.LevelDebug
	}
	sup := &socksify.Supervisor{
		Dialer:    d,
		Direct:    o.direct,
		Warm:      o.warm,
		NoPreload: o.noPreload,
		Logger:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	var mu sync.Mutex // serialises lines on stderr
	if o.verbose {
		sup.OnConnect = func(ev socksify.Event) {
			line := eventLine(ev, d.ProxyAddress)
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(stderr, line)
		}
	}
	if o.listen.set() {
		sup.Publish = o.listen.selects
		sup.OnListen = func(ev socksify.ListenEvent) {
			if ev.Closed && !o.verbose {
				return
			}
			line := listenLine(ev)
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(stderr, line)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	attr := &os.ProcAttr{Env: programEnv(env)}
	var p process
	if o.isolate {
		p, err = isolate.Start(ctx, isolate.Config{Dialer: d, OnConnect: sup.OnConnect, Logger: sup.Logger}, path, o.argv, attr)
	} else {
		p, err = sup.Start(ctx, path, o.argv, attr)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitCannot
	}
	go forward(p, sigs, func(code int) { os.Exit(code) })
	ws, err := p.Wait()
	if err != nil {
		fmt.Fprintf(stderr, "socksify: %v\n", err)
		return exitCannot
	}
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return exitSignalFirst + int(ws.Signal())
	}
	return exitCannot
}

// lookPath finds the program, or says why not and returns the exit
// status.
// underSeccompFilter reports whether this process runs under a seccomp
// filter (Seccomp: 2 in /proc/self/status), as a program of an outer
// socksify does.
func underSeccompFilter() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			return strings.TrimSpace(v) == "2"
		}
	}
	return false
}

func lookPath(name string, stderr io.Writer) (string, int) {
	path, err := exec.LookPath(name)
	if err != nil {
		fmt.Fprintf(stderr, "socksify: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return "", exitNotFound
		}
		return "", exitNotExec
	}
	return path, 0
}

// A process is a supervised program: socksify.Process or, with
// -isolate, isolate.Process.
type process interface {
	Signal(os.Signal) error
	Wait() (syscall.WaitStatus, error)
}

// forward passes signals on to the program. SIGINT and SIGQUIT are not
// passed on: a terminal sends them to the whole foreground process group,
// the program included, and socksify must outlive the program to keep
// serving it. Once the program itself has exited (socksify may still be
// serving processes it left behind), SIGINT, SIGQUIT, SIGTERM and SIGHUP
// end socksify through exit: what is left loses its network (its trapped
// calls fail), never its proxy.
func forward(p process, sigs <-chan os.Signal, exit func(int)) {
	for sig := range sigs {
		s, _ := sig.(syscall.Signal)
		var err error
		if s == syscall.SIGINT || s == syscall.SIGQUIT {
			err = p.Signal(syscall.Signal(0)) // only: is the program still there?
		} else {
			err = p.Signal(sig)
		}
		if errors.Is(err, os.ErrProcessDone) && s != syscall.SIGUSR1 && s != syscall.SIGUSR2 {
			exit(exitSignalFirst + int(s))
		}
	}
}

// gateway builds the client.Dialer from -proxy or the environment:
// $SOCKS6_PROXY, then $ALL_PROXY (or all_proxy) if its scheme is socks5,
// socks5h or socks6, then $SOCKS_SERVER. -user overrides the URL's user;
// the password comes from the URL or $SOCKS6_PASSWORD.
func gateway(o options, getenv func(string) (string, bool)) (*client.Dialer, error) {
	spec, from := o.proxy, "-proxy"
	var skipped []string
	if spec == "" {
		for _, k := range []string{"SOCKS6_PROXY", "ALL_PROXY", "all_proxy", "SOCKS_SERVER"} {
			v, _ := getenv(k)
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			if (k == "ALL_PROXY" || k == "all_proxy") && !socksURL(v) {
				skipped = append(skipped, k+" ("+schemeOf(v)+" is not a SOCKS scheme)")
				continue
			}
			spec, from = v, "$"+k
			break
		}
	}
	discovered := false
	if spec == "" && o.discover != nil {
		if o.user != "" {
			// Anyone on the link can advertise a gateway, or answer on
			// the router's port: a password goes only where it is sent
			// on purpose (the draft's "Discovery").
			return nil, errors.New("-user with no gateway configured: a discovered gateway is never sent a password; name it with -proxy (or SOCKS6_PROXY, ALL_PROXY, SOCKS_SERVER)")
		}
		if addr, how, ok := o.discover(); ok {
			spec, from, discovered = addr, "discovered "+how, true
			if o.verbose {
				fmt.Fprintf(o.stderr, "socksify: no gateway configured; using the SOCKS server %s %s\n", how, addr)
			}
		}
	}
	if spec == "" {
		msg := "no gateway configured, and none found on port 1080 of loopback or of the default router: give -proxy host:port (or a socks5://, socks5h://, socks6:// or socks6s:// URL), or set SOCKS6_PROXY, ALL_PROXY or SOCKS_SERVER; socksify never runs a program unproxied"
		if len(skipped) > 0 {
			msg += "; ignored " + strings.Join(skipped, ", ")
		}
		return nil, errors.New(msg)
	}
	d, err := parseProxy(spec)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", from, spec, err)
	}
	if o.user != "" && o.user != d.Username {
		// The URL's password, if any, was another user's.
		d.Username, d.Password = o.user, ""
	}
	if d.Username != "" && d.Password == "" && !discovered {
		d.Password, _ = getenv("SOCKS6_PASSWORD")
	}
	if len(d.Username) > 255 || len(d.Password) > 255 {
		return nil, errors.New("username or password longer than 255 bytes")
	}
	if o.tlsCA != "" || o.tlsName != "" {
		if d.TLSConfig == nil {
			d.TLSConfig = &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(0)}
		}
		d.TLSConfig.ServerName = o.tlsName
		if o.tlsCA != "" {
			pem, err := os.ReadFile(o.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("-tls-ca: %w", err)
			}
			d.TLSConfig.RootCAs = x509.NewCertPool()
			if !d.TLSConfig.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", o.tlsCA)
			}
		}
	}
	return d, nil
}

// parseProxy turns host:port or a SOCKS URL into a Dialer.
func parseProxy(spec string) (*client.Dialer, error) {
	if !strings.Contains(spec, "://") {
		host, port, err := net.SplitHostPort(spec)
		if err != nil {
			return nil, err
		}
		if host == "" {
			return nil, errors.New("no host")
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("bad port %q", port)
		}
		return &client.Dialer{ProxyAddress: spec}, nil
	}
	if !socksURL(spec) {
		return nil, fmt.Errorf("scheme %q: want socks5, socks5h, socks6 or socks6s", schemeOf(spec))
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, err
	}
	pd, err := client.FromURL(u, nil)
	if err != nil {
		return nil, err
	}
	d, ok := pd.(*client.Dialer)
	if !ok {
		return nil, errors.New("not a socks6 client.Dialer")
	}
	return d, nil
}

func socksURL(s string) bool {
	switch schemeOf(s) {
	case "socks5", "socks5h", "socks6", "socks6s":
		return true
	}
	return false
}

func schemeOf(s string) string {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return ""
	}
	return strings.ToLower(scheme)
}

// withoutEnv returns env without key: the program need not see the
// gateway password.
// programEnv is the program's environment: socksify's own, without the
// gateway's password. SOCKS6_PASSWORD goes, and so does any proxy
// variable (SOCKS6_PROXY, ALL_PROXY, all_proxy, SOCKS_SERVER) whose URL
// carries a password: the program's connections go through the gateway
// without it, and a proxy-aware program left without the variable
// simply connects directly, which socksify then proxies.
func programEnv(env []string) []string {
	env = withoutEnv(env, "SOCKS6_PASSWORD")
	out := env[:0:0]
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "SOCKS6_PROXY", "ALL_PROXY", "all_proxy", "SOCKS_SERVER":
			if u, err := url.Parse(v); err == nil && u.User != nil {
				if _, has := u.User.Password(); has {
					continue
				}
			}
		}
		out = append(out, kv)
	}
	return out
}

func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}

// eventLine formats a -v line:
//
//	socksify: curl[812] tcp example.test:8080 [198.18.0.1] via 127.0.0.1:1080: succeeded (1.2ms)
//	socksify: curl[812] tcp example.test:9 [198.18.0.1] via 127.0.0.1:1080: connection refused (0x05) -> ECONNREFUSED (0.9ms)
//	socksify: ntpdate[90] udp ntp.test:123 [198.18.0.4] via 127.0.0.1:1080: succeeded (0.8ms)
//	socksify: avahi[91] udp 224.0.0.251:5353: refused -> ENETUNREACH: …
func eventLine(ev socksify.Event, gw string) string {
	var b strings.Builder
	if ev.Pid != 0 {
		fmt.Fprintf(&b, "socksify: %s[%d] %s ", ev.Comm, ev.Pid, ev.Network)
	} else {
		fmt.Fprintf(&b, "socksify: %s ", ev.Network) // -isolate, when the socket was gone before it was found
	}
	dest := netip.AddrPortFrom(ev.Dest.Addr().Unmap(), ev.Dest.Port())
	if ev.Target != "" {
		b.WriteString(ev.Target)
		if ev.Target != dest.String() {
			fmt.Fprintf(&b, " [%s]", dest.Addr())
		}
		fmt.Fprintf(&b, " via %s", gw)
	} else {
		b.WriteString(dest.String())
	}
	b.WriteString(": ")
	var re *client.ReplyError
	switch {
	case ev.Err == nil && ev.Errno == 0:
		b.WriteString("succeeded")
	case errors.As(ev.Err, &re):
		fmt.Fprintf(&b, "%s (0x%02x) -> %s", re.Code, uint8(re.Code), errnoName(ev.Errno))
	case ev.Target == "" || ev.Network != "tcp":
		fmt.Fprintf(&b, "refused -> %s: %v", errnoName(ev.Errno), ev.Err)
	default:
		fmt.Fprintf(&b, "%v -> %s", ev.Err, errnoName(ev.Errno))
	}
	if ev.Duration > 0 {
		fmt.Fprintf(&b, " (%s)", roundDuration(ev.Duration))
	}
	return b.String()
}

// listenLine formats what happened to a listening socket:
//
//	socksify: python3 listening on 127.0.0.1:8000 is published at 203.0.113.1:8000
//	socksify: python3 listening on 127.0.0.1:8000 is not published at the gateway: …
//	socksify: python3 listening on 127.0.0.1:8000: publication at 203.0.113.1:8000 ended: … (-v)
func listenLine(ev socksify.ListenEvent) string {
	local := netip.AddrPortFrom(ev.Local.Addr().Unmap(), ev.Local.Port())
	switch {
	case ev.Closed:
		return fmt.Sprintf("socksify: %s listening on %s: publication at %s ended: %v", ev.Comm, local, ev.Public, ev.Err)
	case ev.Err != nil:
		return fmt.Sprintf("socksify: %s listening on %s is not published at the gateway: %v", ev.Comm, local, ev.Err)
	}
	return fmt.Sprintf("socksify: %s listening on %s is published at %s", ev.Comm, local, ev.Public)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

var errnoNames = map[syscall.Errno]string{
	syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.ENETUNREACH:  "ENETUNREACH",
	syscall.EHOSTUNREACH: "EHOSTUNREACH",
	syscall.ETIMEDOUT:    "ETIMEDOUT",
	syscall.EACCES:       "EACCES",
	syscall.EOPNOTSUPP:   "EOPNOTSUPP",
	syscall.EAFNOSUPPORT: "EAFNOSUPPORT",
	syscall.ECONNRESET:   "ECONNRESET",
	syscall.EISCONN:      "EISCONN",
	syscall.EALREADY:     "EALREADY",
}

func errnoName(e syscall.Errno) string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return "errno " + strconv.Itoa(int(e))
}

// execFailureStatus is the shell's status for a failed exec: 126 when
// the file cannot be executed, 127 otherwise.
func execFailureStatus(err error) int {
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOEXEC) || errors.Is(err, syscall.EPERM) {
		return exitNotExec
	}
	return exitNotFound
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `Usage:
  socksify [-proxy host:port|URL] [-user USER] [-v] [-direct CIDR,...] [-listen PORT,...|all] [--] PROGRAM [ARGS...]

socksify runs PROGRAM with its network traffic sent through a SOCKS gateway:
every TCP connection becomes a CONNECT on the program's own socket, every
DNS query (UDP or TCP, port 53) is answered locally with a fake address that
socksify turns back into the name for the gateway, and other UDP goes through
a UDP ASSOCIATE per socket (a datagram that cannot go through the gateway
fails with ENETUNREACH; it is never sent unproxied). Loopback, the gateway and
the -direct ranges are reached directly. With -listen, the program's listening
sockets on those ports are also published at the gateway: its callers reach
the program as if they had connected to it (socksify prints the public
address).

The gateway comes from -proxy, else $SOCKS6_PROXY, $ALL_PROXY (socks5://,
socks5h://, socks6:// or socks6s:// only) or $SOCKS_SERVER (host:port);
socks6s:// (or -tls-ca, -tls-name) reaches it over TLS. Without one,
socksify exits with status 2 and runs nothing. The password comes from the URL
or $SOCKS6_PASSWORD; the program sees neither (a proxy variable with a password
is left out of its environment).

Needs Linux 5.19 or later on x86_64 (seccomp user notification). It exits
with the program's status, 128+N if the program died of signal N, 2 for usage
errors, 125 if it cannot supervise, 126/127 if the program cannot be run.

Flags:
`)
	fs.PrintDefaults()
}
