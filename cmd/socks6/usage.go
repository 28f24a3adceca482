package main

import (
	"flag"
	"fmt"
	"io"
)

// printFlags prints the flags that define adds, in the flag package's
// format.
func printFlags(w io.Writer, define func(fs *flag.FlagSet)) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(w)
	define(fs)
	fs.PrintDefaults()
}

func printGlobalFlags(w io.Writer) {
	var g globalFlags
	printFlags(w, g.define)
}

const usageTail = `
Environment:
  SOCKS6_PROXY     the gateway when -proxy is not given (host:port)
  SOCKS6_PASSWORD  the password for -user

Exit status: 0 on success; 1 on a runtime failure, such as a refusal by the
gateway (printed with its reply code, e.g. "connection refused (0x05)" or
"name not found (0xe6)") or a broken connection; 2 for bad flags or
arguments.
`

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  socks6 [global flags] connect HOST:PORT
  socks6 [global flags] listen [-exact] [-port N] [-bind ADDR] [-dual-stack]
         [-offer-timeout D] [-allow CIDR,...] -to HOST:PORT
  socks6 [global flags] resolve [-4|-6] NAME
  socks6 [global flags] udp [-wait D] [-replies N] HOST:PORT
  socks6 discover [-iface NAME] [-server ADDR] [-code N] [-wait D]
  socks6 version

socks6 is the client of a SOCKS5 gateway such as socks6d, using the SOCKS6
extensions when the gateway offers them. Run 'socks6 CMD -h' for the
details of a subcommand.

Subcommands:
  connect  connect to HOST:PORT through the gateway and relay standard input
           to it and its bytes to standard output, like netcat
  listen   publish the local service -to HOST:PORT through the gateway, like
           ssh -R: the gateway listens, and each caller is connected to -to;
           the public address is printed to standard output
  resolve  print every address of NAME as the gateway resolves it, with TTLs
  udp      send each line of standard input to HOST:PORT as a UDP datagram,
           inside the connection to the gateway, and print the replies
  discover ask the network's DHCP server which SOCKS gateways it advertises
  version  print the version

Global flags (before or after the subcommand):
`)
	printGlobalFlags(w)
	fmt.Fprint(w, usageTail)
}

func connectUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: socks6 [global flags] connect HOST:PORT

Connects to HOST:PORT through the gateway (CONNECT; a name is resolved by
the gateway) and relays: standard input to the stream, the stream to
standard output. At the end of standard input the sending side is shut
down (half-close) and the reply keeps coming; socks6 exits when both
directions have ended. HOST may be a name, an IPv4 address or an IPv6
address in brackets; PORT a number or a service name.

Global flags (before or after the subcommand):
`)
	printGlobalFlags(w)
	fmt.Fprint(w, usageTail)
}

func resolveUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: socks6 [global flags] resolve [-4|-6] NAME

Asks the gateway for every address of NAME (RESOLVE, a SOCKS6 extension)
and prints one line per address, "ADDR ttl=SECONDS", in the order the
gateway would try them. A name that does not exist, or has no address of
the families asked for, exits 1.

Flags:
`)
	printFlags(w, new(resolveOptions).define)
	fmt.Fprint(w, "\nGlobal flags (before or after the subcommand):\n")
	printGlobalFlags(w)
	fmt.Fprint(w, usageTail)
}

func udpUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: socks6 [global flags] udp [-wait D] [-replies N] HOST:PORT

Opens a UDP association inside the connection to the gateway (UDP in the
stream, a SOCKS6 extension: it works wherever TCP to the gateway does),
sends each line of standard input, newline included, to HOST:PORT as one
datagram, and writes the payload of every datagram that comes back to
standard output (with -v, its size and source to standard error). HOST
may be a name, which the gateway resolves, or an IP address. After the
end of standard input socks6 waits -wait for replies, then exits 0, or
exits 0 as soon as -replies datagrams have come back (and 1 if fewer
than -replies came back within -wait). Only datagrams from HOST:PORT, or
other destinations sent to, come back: the gateway filters like a NAT.

Flags:
`)
	printFlags(w, new(udpOptions).define)
	fmt.Fprint(w, "\nGlobal flags (before or after the subcommand):\n")
	printGlobalFlags(w)
	fmt.Fprint(w, usageTail)
}

func listenUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: socks6 [global flags] listen [-exact] [-port N] [-bind ADDR] [-dual-stack]
         [-offer-timeout D] [-allow CIDR,...] -to HOST:PORT

Publishes a local service through the gateway, like ssh -R: asks the
gateway to listen (LISTEN, a SOCKS6 extension), prints

  listening on PUBLIC -> HOST:PORT

to standard error and the bare PUBLIC address (host:port) as one line to
standard output, for scripts. PUBLIC is the address the gateway reports
for callers, or the gateway's host from -proxy when it listens on all
addresses. Each caller the gateway offers is taken and connected to
HOST:PORT, dialed from this machine, and the bytes are relayed both ways
with half-close. Callers outside -allow are refused. socks6 runs until
SIGINT or SIGTERM, then closes the listener and the relayed connections
and exits 0; it exits 1 if the gateway ends the session.

Flags:
`)
	printFlags(w, new(listenOptions).define)
	fmt.Fprint(w, "\nGlobal flags (before or after the subcommand):\n")
	printGlobalFlags(w)
	fmt.Fprint(w, usageTail)
}
