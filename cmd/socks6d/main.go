package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/socks6/socks6/internal/config"
	"github.com/socks6/socks6/internal/procs"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/auth/htpasswd"
	"github.com/socks6/socks6/server/pac"
	"github.com/socks6/socks6/server/resolver"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); empty
// means the module version from the build information.
var version = ""

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure: a listener, the users file in passwd
	exitUsage   = 2 // bad flags or a bad configuration
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the exit, for reading. stdin is an *os.File because
// passwd needs to know whether it is a terminal.
func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "passwd" {
		return passwd(args[1:], stdin, stderr)
	}
	if len(args) > 0 && args[0] == "dhcp-option" {
		return dhcpOption(args[1:], stdout, stderr)
	}
	var o options
	fs := flag.NewFlagSet("socks6d", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "read the configuration from `FILE` (TOML); without it, built-in defaults apply")
	fs.Var(&o.listen, "listen", "serve on `ADDR` (host:port; port 0 picks a free one); repeat for several addresses;\noverrides listen in the configuration (default 127.0.0.1:1080)")
	fs.StringVar(&o.users, "users", "", "require username/password logins checked against the htpasswd `FILE` (bcrypt);\noverrides users_file in the configuration")
	fs.StringVar(&o.logFormat, "log-format", "", "write logs to standard error as `FORMAT` text or json; overrides log_format (default text)")
	fs.StringVar(&o.logLevel, "log-level", "", "log messages at `LEVEL` and above: debug, info, warn or error; overrides log_level (default info)")
	fs.BoolVar(&o.allowLoopback, "allow-loopback", false, "let clients reach the gateway host's loopback addresses (sets guard.allow_loopback);\nfor local testing")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "socks6d: unexpected argument %q (did you mean \"socks6d passwd\" or \"socks6d dhcp-option\"?)\n", fs.Arg(0))
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	// Catch signals before anything can send them: SIGHUP's default
	// action would end the process. Signals that come during startup wait
	// in the channel.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	cfg, st, err := o.load()
	if err != nil {
		// Each problem on its own line, starting with FILE:LINE.
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	d := &daemon{opts: &o, logs: &logs{w: stderr}}
	return d.serve(cfg, st, sigs)
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `Usage:
  socks6d [-config FILE] [-listen ADDR]... [-users FILE] [-log-format text|json]
          [-log-level LEVEL] [-allow-loopback]
  socks6d -version
  socks6d passwd [-config FILE] [-users FILE] [-cost N] USER
  socks6d dhcp-option [-code N] [-enterprise N] ADDR:PORT[,tls][,priority=N]...

socks6d is a SOCKS5 gateway (RFC 1928, with RFC 1929 username/password
logins). Without flags it serves 127.0.0.1:1080 without authentication and
refuses targets on the gateway host itself. Flags override the
configuration file.

Flags:
`)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Subcommand passwd sets USER's password in the users file, hashed with bcrypt,
creating the file (mode 0600) if needed. It reads the password twice from
the terminal without echo, or one line from standard input when that is not
a terminal. Send SIGHUP to a running socks6d to apply the change.
  -config FILE  take the users file from FILE's users_file
  -users FILE   the users file (default: users_file from -config, else ./users.htpasswd)
  -cost N       bcrypt cost, 4 to 31 (default 10)

Subcommand dhcp-option prints the DHCP option that advertises the gateway
(ADDR:PORT, ",tls" for a [tls] address) in dnsmasq's and ISC dhcpd's syntax,
for the router's DHCP server; see socks6d dhcp-option -h.

Signals:
  SIGHUP           reload the configuration and the users file; a broken one is
                   logged and the running configuration kept
  SIGTERM, SIGINT  stop accepting, let sessions finish for timeouts.shutdown,
                   then exit 0; a second signal closes all sessions at once

Exit status: 0 after a shutdown, 1 if serving failed, 2 for bad flags or a
bad configuration (printed as FILE:LINE: problem).
`)
}

func versionString() string {
	v := version
	if v == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			v = bi.Main.Version
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return "socks6d " + v + " " + runtime.Version()
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// options are the command line settings that the configuration file is
// read with, at startup and on every reload.
type options struct {
	config        string
	listen        listFlag
	users         string
	logFormat     string
	logLevel      string
	allowLoopback bool
}

// load reads the configuration file (or the defaults), applies the flags
// and validates the result.
func (o *options) load() (*config.Config, server.Settings, error) {
	cfg := config.Default()
	if o.config != "" {
		data, err := os.ReadFile(o.config)
		if err != nil {
			return nil, server.Settings{}, err
		}
		if cfg, err = config.Parse(o.config, data); err != nil {
			return nil, server.Settings{}, err
		}
	}
	if len(o.listen) > 0 {
		cfg.Listen = slices.Clone(o.listen)
	}
	if o.users != "" {
		cfg.UsersFile = o.users
	}
	if o.logFormat != "" {
		f, err := config.ParseFormat(o.logFormat)
		if err != nil {
			return nil, server.Settings{}, fmt.Errorf("-log-format: %w", err)
		}
		cfg.LogFormat = f
	}
	if o.logLevel != "" {
		l, err := config.ParseLevel(o.logLevel)
		if err != nil {
			return nil, server.Settings{}, fmt.Errorf("-log-level: %w", err)
		}
		cfg.LogLevel = l
	}
	if o.allowLoopback {
		cfg.Guard.AllowLoopback = true
	}
	st, err := cfg.Settings()
	if err != nil {
		return nil, server.Settings{}, err
	}
	return cfg, st, nil
}

// logs is the process's slog setup. The level and the format follow the
// configuration on reload; the server logs through slog.Default.
type logs struct {
	w      io.Writer
	level  slog.LevelVar
	format string
}

func (l *logs) apply(cfg *config.Config) {
	l.level.Set(cfg.LogLevel)
	if cfg.LogFormat == l.format {
		return
	}
	l.format = cfg.LogFormat
	opts := &slog.HandlerOptions{Level: &l.level}
	var h slog.Handler = slog.NewTextHandler(l.w, opts)
	if l.format == config.FormatJSON {
		h = slog.NewJSONHandler(l.w, opts)
	}
	slog.SetDefault(slog.New(h))
}

// daemon is a running gateway.
type daemon struct {
	opts *options
	logs *logs
	srv  *server.Server

	// cert is the [tls] certificate, replaced on reload.
	cert atomic.Pointer[tls.Certificate]
	// pac serves the [pac] file, replaced on reload; nil without one.
	pac *pac.Handler

	// What a reload cannot change, as the gateway started with it.
	listen        []string
	tlsListen     []string
	metricsListen []string
	pacListen     []string
	timeouts      config.Timeouts
	handshakes    int
}

// serve listens, serves until a signal on sigs ends it, and returns the
// exit status.
func (d *daemon) serve(cfg *config.Config, st server.Settings, sigs <-chan os.Signal) int {
	d.logs.apply(cfg)
	d.listen, d.tlsListen, d.timeouts, d.handshakes = cfg.Listen, cfg.TLS.Listen, cfg.Timeouts, cfg.Limits.Handshakes
	d.metricsListen, d.pacListen = cfg.MetricsListen, cfg.PAC.Listen
	d.srv = &server.Server{
		Settings:         st,
		HandshakeTimeout: cfg.Timeouts.Handshake,
		DialTimeout:      cfg.Timeouts.Dial,
		BindTimeout:      cfg.Timeouts.Bind,
		IdleTimeout:      cfg.Timeouts.ServerIdle(),
		NAT64Prefix:      cfg.Resolver.NAT64Prefix,
		DiscoverNAT64:    cfg.Resolver.DiscoverNAT64,
	}
	res, err := resolver.New(cfg.Resolver.ResolverConfig())
	if err != nil {
		slog.Error("resolver", "err", err)
		return exitFailure
	}
	defer res.Close()
	d.srv.Resolver = res

	var tlsConfig *tls.Config
	if len(cfg.TLS.Listen) > 0 {
		cert, err := cfg.TLSCertificate()
		if err != nil {
			slog.Error("tls", "err", err)
			return exitFailure
		}
		d.cert.Store(cert)
		tlsConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return d.cert.Load(), nil
		}}
	}
	// Open every listener before serving any, so that one bad address
	// fails the start as a whole.
	var lns []net.Listener
	isTLS := map[net.Listener]bool{}
	for i, a := range append(slices.Clone(cfg.Listen), cfg.TLS.Listen...) {
		ln, err := server.Listen(context.Background(), "tcp", a)
		if err != nil {
			slog.Error("listen failed", "addr", a, "tls", i >= len(cfg.Listen), "err", err)
			for _, ln := range lns {
				ln.Close()
			}
			return exitFailure
		}
		lns = append(lns, ln)
		isTLS[ln] = i >= len(cfg.Listen)
	}
	var metricsLns []net.Listener
	for _, a := range cfg.MetricsListen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			slog.Error("listen failed", "addr", a, "metrics", true, "err", err)
			for _, ln := range append(lns, metricsLns...) {
				ln.Close()
			}
			return exitFailure
		}
		metricsLns = append(metricsLns, ln)
	}
	if len(metricsLns) > 0 {
		m := newMetrics(d.srv)
		d.srv.OnSession = m.record
		hs := m.server()
		hs.ErrorLog = slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug)
		for _, ln := range metricsLns {
			slog.Info("listening", "addr", ln.Addr().String(), "metrics", true)
			go hs.Serve(ln)
		}
		defer hs.Close()
	}
	var pacLns []net.Listener
	if len(cfg.PAC.Listen) > 0 {
		pc, err := cfg.PACConfig()
		if err == nil {
			d.pac, err = pac.NewHandler(pc)
		}
		if err != nil {
			slog.Error("pac", "err", err)
			return exitFailure
		}
	}
	for _, a := range cfg.PAC.Listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			slog.Error("listen failed", "addr", a, "pac", true, "err", err)
			for _, ln := range append(append(lns, pacLns...), metricsLns...) {
				ln.Close()
			}
			return exitFailure
		}
		pacLns = append(pacLns, ln)
	}
	slog.Info("starting", "version", versionString(), "config", d.opts.config,
		"users_file", cfg.UsersFile, "rules", len(cfg.Rules), "upstreams", len(cfg.Upstreams))
	// One P while one CPU carries the load, all of them under load
	// (internal/procs says why); a GOMAXPROCS the environment sets is
	// left alone.
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			procs.Adapt(ctx, procs.Config{Log: slog.Default()})
		}()
		defer func() { stop(); <-done }()
	}
	served := make(chan error, len(lns))
	for _, ln := range lns {
		if isTLS[ln] {
			slog.Info("listening", "addr", ln.Addr().String(), "tls", true)
			go func() { served <- d.srv.ServeTLS(ln, tlsConfig) }()
			continue
		}
		slog.Info("listening", "addr", ln.Addr().String())
		go func() { served <- d.srv.Serve(ln) }()
	}

	if d.pac != nil {
		hs := pac.Server(d.pac)
		hs.ErrorLog = slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug)
		for _, ln := range pacLns {
			slog.Info("listening", "addr", ln.Addr().String(), "pac", true)
			go hs.Serve(ln)
		}
		defer hs.Close()
	}

	running := len(lns)
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload()
				continue
			}
			d.shutdown(sig, sigs)
			for ; running > 0; running-- {
				<-served
			}
			slog.Info("stopped")
			return exitOK
		case err := <-served:
			running--
			slog.Error("listener stopped", "err", err)
			if running == 0 {
				d.srv.Close()
				return exitFailure
			}
		}
	}
}

// shutdown stops accepting and waits for sessions until the shutdown
// timeout, or until a second SIGTERM or SIGINT, then closes the rest.
func (d *daemon) shutdown(sig os.Signal, sigs <-chan os.Signal) {
	slog.Info("shutting down", "signal", sig.String(), "sessions", d.srv.Sessions(),
		"timeout", d.timeouts.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), d.timeouts.Shutdown)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.srv.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				slog.Warn("shutdown timeout reached; closed the remaining sessions", "timeout", d.timeouts.Shutdown)
			}
			return
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				slog.Info("shutting down; ignoring SIGHUP")
				continue
			}
			slog.Warn("second signal; closing all sessions now", "signal", sig.String(), "sessions", d.srv.Sessions())
			d.srv.Close()
		}
	}
}

// reload re-reads the configuration and the users file and hands the new
// settings to the server. A broken configuration changes nothing.
func (d *daemon) reload() {
	cfg, st, err := d.opts.load()
	if err != nil {
		slog.Error("reload failed; keeping the running configuration", "err", err)
		return
	}
	if !slices.Equal(cfg.Listen, d.listen) {
		slog.Warn("listen addresses are not reloadable; restart to apply", "running", d.listen, "configured", cfg.Listen)
	}
	if d.pac != nil && len(cfg.PAC.Listen) > 0 {
		// The default proxy addresses come from the running listen
		// addresses, which a reload does not change.
		running := *cfg
		running.Listen = d.listen
		if pc, err := running.PACConfig(); err == nil && d.pac.Set(pc) == nil {
			slog.Info("pac reloaded", "proxy", pc.Proxies)
		}
	}
	if !slices.Equal(cfg.MetricsListen, d.metricsListen) {
		slog.Warn("metrics.listen is not reloadable; restart to apply", "running", d.metricsListen, "configured", cfg.MetricsListen)
	}
	if !slices.Equal(cfg.PAC.Listen, d.pacListen) {
		slog.Warn("pac.listen is not reloadable; restart to apply", "running", d.pacListen, "configured", cfg.PAC.Listen)
	}
	if !slices.Equal(cfg.TLS.Listen, d.tlsListen) {
		slog.Warn("tls.listen addresses are not reloadable; restart to apply", "running", d.tlsListen, "configured", cfg.TLS.Listen)
	}
	if len(d.tlsListen) > 0 && len(cfg.TLS.Listen) > 0 {
		// The configuration validated, so the certificate loads; a
		// renewal takes effect for new connections.
		if cert, err := cfg.TLSCertificate(); err == nil {
			d.cert.Store(cert)
			slog.Info("tls certificate loaded", "cert_file", cfg.TLS.CertFile, "not_after", cert.Leaf.NotAfter)
		} else {
			// Changed between the validation and now.
			slog.Error("tls certificate not reloaded; keeping the running one", "err", err)
		}
	}
	if cfg.Timeouts != d.timeouts {
		slog.Warn("timeouts are not reloadable; restart to apply")
	}
	if cfg.Limits.Handshakes != d.handshakes {
		slog.Warn("limits.handshakes is not reloadable; restart to apply", "running", d.handshakes, "configured", cfg.Limits.Handshakes)
	}
	d.srv.Reload(st)
	d.logs.apply(cfg)
	users := 0
	if f, ok := st.Auth.(*htpasswd.File); ok {
		users = len(f.Users())
	}
	slog.Info("reloaded", "config", d.opts.config, "users_file", cfg.UsersFile, "users", users, "rules", len(cfg.Rules), "upstreams", len(cfg.Upstreams))
}

// passwd is the "socks6d passwd" subcommand.
func passwd(args []string, stdin *os.File, stderr io.Writer) int {
	fs := flag.NewFlagSet("socks6d passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "take the users file from `FILE`'s users_file")
	users := fs.String("users", "", "the users `FILE` (default: users_file from -config, else ./users.htpasswd)")
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost, 4 to 31")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: socks6d passwd [-config FILE] [-users FILE] [-cost N] USER

Sets USER's password in the users file, hashed with bcrypt, creating the file
(mode 0600) if needed. The password is read twice from the terminal without
echo, or as one line from standard input when that is not a terminal.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	user := fs.Arg(0)
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "socks6d passwd: -cost %d: must be from %d to %d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return exitUsage
	}
	path := *users
	if path == "" && *configPath != "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			fmt.Fprintf(stderr, "socks6d passwd: %v\n", err)
			return exitUsage
		}
		cfg, err := config.Parse(*configPath, data)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
		if cfg.UsersFile == "" {
			fmt.Fprintf(stderr, "socks6d passwd: %s sets no users_file; name the file with -users\n", *configPath)
			return exitUsage
		}
		path = cfg.UsersFile
	}
	if path == "" {
		path = "users.htpasswd"
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "socks6d passwd: %v\n", err)
		return exitFailure
	}
	if err := htpasswd.SetPassword(path, user, pw, *cost); err != nil {
		fmt.Fprintf(stderr, "socks6d passwd: %s: %v\n", path, err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "socks6d passwd: set the password of %q in %s; send SIGHUP to a running socks6d to apply\n", user, path)
	return exitOK
}

// readPassword reads a new password: twice without echo from a terminal,
// or one line from anything else.
func readPassword(in *os.File, prompt io.Writer) (string, error) {
	fd := int(in.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprint(prompt, "New password: ")
		p1, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		fmt.Fprint(prompt, "Retype new password: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(p1, p2) {
			return "", errors.New("passwords do not match")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	return line, nil
}
