// Command socksify runs an unmodified program with its network traffic
// sent through a SOCKS gateway (socks6d, or any SOCKS5 server):
//
//	socksify [-proxy host:port|URL] [-user USER] [-v] [-warm] [-direct CIDR,...] [-listen PORT,...|all] [--] PROGRAM [ARGS...]
//	socksify -isolate [-proxy host:port|URL] [-user USER] [-v] [--] PROGRAM [ARGS...]
//
// The work is done by package socksify (a seccomp user-notification
// supervisor; see its documentation for the mechanism and its limits)
// or, with -isolate, by package socksify/isolate (a network namespace
// whose only way out is a TUN device served by a user-space TCP/IP
// stack; it needs root). This command finds the gateway (-proxy, else
// $SOCKS6_PROXY, $ALL_PROXY with a socks5, socks5h or socks6 scheme, or
// $SOCKS_SERVER; the password from the URL or $SOCKS6_PASSWORD; else a
// SOCKS5 server on port 1080 of loopback or of a default router, see
// discover.go), refuses to run anything without one (exit 2), starts the
// program, passes SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 on to it, and
// exits with its status (128+N for a death by signal N; 125 when it
// cannot supervise, 126 and 127 when the program cannot be run). With -v
// it prints one line per connection and UDP association through the
// gateway to standard error, naming the process, the destination and the
// gateway's reply. With -listen it publishes the program's listening
// sockets on those ports at the gateway and prints where each is
// published.
//
// Its main also serves the launcher mode: when os.Args[1] is
// socksify.LauncherArg, it calls socksify.Launch and nothing else. Inside
// a supervised program ($SOCKSIFY_SUPERVISED=1) it execs the program
// directly, since the outer supervisor already covers it.
//
// Only this package reads flags and the environment, handles signals and
// exits. See README.md in this directory for the flags and examples.
package main
