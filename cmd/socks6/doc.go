// Command socks6 is the client of a SOCKS5 gateway such as socks6d, using
// the SOCKS6 extensions of draft-socks6-extensions-00 when the gateway
// offers them (package client negotiates them and falls back to plain
// SOCKS5 unless -ext require).
//
// Subcommands:
//
//	connect HOST:PORT   netcat through the gateway: standard input to the
//	                    stream, the stream to standard output, half-close
//	                    at the end of standard input (CONNECT)
//	listen -to HOST:PORT
//	                    publish a local service through the gateway, like
//	                    ssh -R: LISTEN, print the public address, take each
//	                    caller and connect it to HOST:PORT
//	resolve NAME        every address of NAME with its TTL (RESOLVE)
//	udp HOST:PORT       each line of standard input as a datagram to
//	                    HOST:PORT inside the connection to the gateway
//	                    (UDP in the stream), the replies to standard output
//	version             the version
//
// main.go turns the command line into a client.Dialer and the options of
// a subcommand; the work is done by connect, listen, resolve and udpExchange, which
// take a context and the standard files as io.Reader and io.Writer so
// that tests run them in-process. Only this package reads flags and the
// environment (SOCKS6_PROXY, SOCKS6_PASSWORD), handles SIGINT and
// SIGTERM, and exits: 0 on success, 1 on a runtime failure (with the
// gateway's reply code), 2 for bad usage.
//
// See README.md in this directory for the flags and examples.
package main
