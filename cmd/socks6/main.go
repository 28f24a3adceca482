package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); empty
// means the module version from the build information.
var version = ""

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure: the gateway refused, a connection broke
	exitUsage   = 2 // bad flags or arguments
)

// defaultProxy is the gateway when neither -proxy nor $SOCKS6_PROXY names
// one: what socks6d serves without arguments.
const defaultProxy = "127.0.0.1:1080"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, the default action comes back, so that a
	// second one ends a run whose cleanup hangs.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, lookup: os.LookupEnv})
	stop()
	os.Exit(code)
}

// env is what a run sees of its process: the standard files and the
// environment. Tests pass their own.
type env struct {
	stdin          io.Reader // an *os.File in the binary: the password prompt needs a terminal
	stdout, stderr io.Writer
	lookup         func(key string) (string, bool) // os.LookupEnv
}

// run is main without the exit: it parses args, runs the subcommand until
// it ends or ctx does (SIGINT, SIGTERM), and returns the exit status.
func run(ctx context.Context, args []string, e env) int {
	var g globalFlags
	fs := newFlagSet("socks6")
	g.define(fs)
	if err := fs.Parse(args); err != nil {
		return flagError(e.stderr, "socks6", err, usage)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "socks6: no subcommand; want connect, listen, resolve, udp, discover or version")
		fmt.Fprintln(e.stderr, "Run 'socks6 -h' for usage.")
		return exitUsage
	}
	name, args := fs.Arg(0), fs.Args()[1:]
	switch name {
	case "connect":
		return runConnect(ctx, args, &g, e)
	case "listen":
		return runListen(ctx, args, &g, e)
	case "resolve":
		return runResolve(ctx, args, &g, e)
	case "udp":
		return runUDP(ctx, args, &g, e)
	case "discover":
		return runDiscover(ctx, args, e)
	case "version":
		if len(args) > 0 {
			fmt.Fprintf(e.stderr, "socks6 version: unexpected argument %q\n", args[0])
			return exitUsage
		}
		fmt.Fprintln(e.stdout, versionString())
		return exitOK
	case "help":
		usage(e.stderr)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "socks6: unknown subcommand %q; want connect, listen, resolve, udp, discover or version\n", name)
	fmt.Fprintln(e.stderr, "Run 'socks6 -h' for usage.")
	return exitUsage
}

// runConnect is "socks6 connect HOST:PORT".
func runConnect(ctx context.Context, args []string, g *globalFlags, e env) int {
	fs := newFlagSet("socks6 connect")
	g.define(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(e.stderr, "socks6 connect", err, connectUsage)
	}
	if len(pos) != 1 {
		return usageError(e.stderr, "socks6 connect", "want one HOST:PORT argument")
	}
	if err := checkHostPort(pos[0]); err != nil {
		return usageError(e.stderr, "socks6 connect", err.Error())
	}
	d, code := g.dialer(e)
	if d == nil {
		return code
	}
	log := &logger{w: e.stderr, verbose: g.verbose}
	return exit(ctx, e.stderr, connect(ctx, d, pos[0], e.stdin, e.stdout, log))
}

// runUDP is "socks6 udp [-wait D] [-replies N] HOST:PORT".
func runUDP(ctx context.Context, args []string, g *globalFlags, e env) int {
	fs := newFlagSet("socks6 udp")
	g.define(fs)
	var o udpOptions
	o.define(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(e.stderr, "socks6 udp", err, udpUsage)
	}
	if len(pos) != 1 {
		return usageError(e.stderr, "socks6 udp", "want one HOST:PORT argument")
	}
	if err := checkHostPort(pos[0]); err != nil {
		return usageError(e.stderr, "socks6 udp", err.Error())
	}
	if o.wait < 0 || o.replies < 0 {
		return usageError(e.stderr, "socks6 udp", "-wait and -replies must not be negative")
	}
	if g.ext == extFlag(client.ExtOff) {
		return usageError(e.stderr, "socks6 udp", "-ext off: UDP in the stream needs the SOCKS6 extensions")
	}
	d, code := g.dialer(e)
	if d == nil {
		return code
	}
	log := &logger{w: e.stderr, verbose: g.verbose}
	return exit(ctx, e.stderr, udpExchange(ctx, d, pos[0], o, e.stdin, e.stdout, log))
}

// runResolve is "socks6 resolve [-4|-6] NAME".
func runResolve(ctx context.Context, args []string, g *globalFlags, e env) int {
	fs := newFlagSet("socks6 resolve")
	g.define(fs)
	var o resolveOptions
	o.define(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(e.stderr, "socks6 resolve", err, resolveUsage)
	}
	if len(pos) != 1 || pos[0] == "" {
		return usageError(e.stderr, "socks6 resolve", "want one NAME argument")
	}
	switch {
	case o.v4 && o.v6:
		return usageError(e.stderr, "socks6 resolve", "-4 and -6 exclude each other; leave both out for all addresses")
	case o.v4:
		g.family = familyFlag(proto.FamilyIPv4Only)
	case o.v6:
		g.family = familyFlag(proto.FamilyIPv6Only)
	}
	if g.ext == extFlag(client.ExtOff) {
		return usageError(e.stderr, "socks6 resolve", "-ext off: RESOLVE needs the SOCKS6 extensions")
	}
	d, code := g.dialer(e)
	if d == nil {
		return code
	}
	return exit(ctx, e.stderr, resolve(ctx, d, pos[0], g.timeout, e.stdout))
}

// runListen is "socks6 listen ... -to HOST:PORT".
func runListen(ctx context.Context, args []string, g *globalFlags, e env) int {
	fs := newFlagSet("socks6 listen")
	g.define(fs)
	var o listenOptions
	o.define(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(e.stderr, "socks6 listen", err, listenUsage)
	}
	if len(pos) > 0 {
		return usageError(e.stderr, "socks6 listen", fmt.Sprintf("unexpected argument %q (name the local service with -to)", pos[0]))
	}
	if err := o.validate(); err != nil {
		return usageError(e.stderr, "socks6 listen", err.Error())
	}
	if g.ext == extFlag(client.ExtOff) {
		return usageError(e.stderr, "socks6 listen", "-ext off: LISTEN needs the SOCKS6 extensions")
	}
	d, code := g.dialer(e)
	if d == nil {
		return code
	}
	log := &logger{w: e.stderr, verbose: g.verbose}
	return exit(ctx, e.stderr, listen(ctx, d, o, g.timeout, e.stdout, log))
}

// exit prints err, if any, and returns the exit status for it. An error
// after ctx ended (a signal) is reported as an interruption.
func exit(ctx context.Context, stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "socks6: interrupted")
		return exitFailure
	}
	fmt.Fprintln(stderr, "socks6: "+describe(err))
	return exitFailure
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
	return "socks6 " + v + " " + runtime.Version()
}
