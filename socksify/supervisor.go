package socksify

import (
	"log/slog"
	"net/netip"
	"syscall"
	"time"

	"github.com/socks6/socks6/client"
)

// LauncherArg is os.Args[1] of the launcher mode: a program that embeds
// a Supervisor calls Launch first thing in main when it sees it.
const LauncherArg = "__socksify-launch"

// SupervisedEnv is the environment variable Start sets to "1" for the
// supervised program. A seccomp filter chain can have only one listener,
// so a socksify run inside a supervised program cannot supervise again:
// it sees the variable and runs its program directly, still under the
// outer supervisor.
const SupervisedEnv = "SOCKSIFY_SUPERVISED"

// A Supervisor runs programs with their network traffic sent through a
// SOCKS gateway. It must have a Dialer; its other fields may be zero.
// Its fields must not change after Start is called.
type Supervisor struct {
	// Dialer reaches the gateway; it is required. Its ProxyAddress names
	// the gateway (a host name is resolved once, when Start is called);
	// its credentials, Extensions and Timeout apply to every connection.
	// CONNECT and UDP ASSOCIATE speak plain SOCKS5 (RFC 1928, RFC 1929),
	// which CONNECT needs nothing more of, and which pipelines: without
	// credentials the greeting and the request go out together, one round
	// trip to the gateway. With Extensions ExtRequire, or a Family,
	// CONNECT runs client.Dialer.Handshake with the extensions instead
	// (three round trips), and UDP fails. Publish needs the extensions
	// (LISTEN). ProxyDial is not used: the handshake runs on the
	// program's own socket, which the supervisor connects to the gateway.
	Dialer *client.Dialer

	// Direct lists the address ranges the program reaches directly,
	// without the gateway. Loopback and the gateway's own address are
	// always direct. Port 53 never is: DNS is always answered by the
	// fake DNS server.
	Direct []netip.Prefix

	// OnConnect, if not nil, is called once for each TCP connection the
	// program makes through the gateway, after the program's connect has
	// returned. It is called from several goroutines at once.
	OnConnect func(Event)

	// Publish, if not nil, selects the program's TCP listening sockets
	// to publish at the gateway, by the address each listens on: the
	// gateway opens a listener (LISTEN, which needs a gateway that speaks
	// the SOCKS6 extensions) on the same port if it is free, another
	// otherwise, and its callers are accepted by the program as if they
	// had connected to its own socket, which also keeps listening
	// locally. It is called from the notification loop and must return
	// quickly. With Publish set, getsockname is trapped too.
	Publish func(local netip.AddrPort) bool

	// OnListen, if not nil, is called when a listening socket that
	// Publish selected is published at the gateway (or could not be),
	// and when its publication ends. It is called from several
	// goroutines at once.
	OnListen func(ListenEvent)

	// Warm turns on warming the gateway's resolver: each name the
	// program is given a fake address for is also sent to the gateway at
	// once (RESOLVE, on one extension session, written by the call that
	// answers the DNS query, the answer dropped; a gateway without the
	// extensions turns it off), so that the gateway's DNS lookup overlaps
	// the rest of the program's lookup rather than starting at its
	// connect. It is off by default: the gateway then also resolves
	// names the program never connects to, and on two cores the gain
	// (990 against 928 fresh-name URLs/s for curl, bench/micro/sfyrate.sh)
	// is within the spread of make bench.
	Warm bool

	// NoPreload turns off the preload fast path (preload.go): a
	// dynamically linked program's getaddrinfo then reaches the fake DNS
	// for every name, as a static program's does. Warm turns it off too:
	// names the library fakes never reach the supervisor before the
	// connect.
	NoPreload bool

	// Launcher is the executable Start runs in launcher mode (see
	// Launch). Empty means os.Executable(): the running program, whose
	// main must then call Launch when os.Args[1] is LauncherArg.
	Launcher string

	// Logger receives debug logs of the supervisor's decisions. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// An Event describes one connection redirected through the gateway, or
// one destination the program was refused because reaching it would
// bypass the gateway (UDP other than DNS, for now).
type Event struct {
	Pid      int            // the ID of the program's thread that connected
	Comm     string         // that thread's command name (/proc/PID/comm)
	Network  string         // "tcp", "udp", or "ip proto N" for other protocols
	Dest     netip.AddrPort // the address the program connected to (a fake IP for a name)
	Target   string         // what the gateway was asked for: name:port or address:port
	Err      error          // nil if the gateway connected; else why not (a *net.OpError wrapping, for a refusal, a *client.ReplyError)
	Errno    syscall.Errno  // what the program's connect returned: 0 or the errno
	Duration time.Duration  // from the program's connect to its return
}

func (s *Supervisor) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// A ListenEvent reports what happened to one of the program's listening
// sockets that Supervisor.Publish selected.
type ListenEvent struct {
	Pid    int            // the ID of the program's thread that called listen
	Comm   string         // its command name
	Local  netip.AddrPort // the program's listening address
	Public netip.AddrPort // where callers reach it through the gateway (when Err is nil)
	Err    error          // why the gateway did not publish it, or why publishing ended
	Closed bool           // publishing ended: the program closed the socket, or the gateway's session ended
}
