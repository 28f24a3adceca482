// Package socks6test holds helpers for tests that cross real sockets:
// loopback listeners, echo and sink servers, a gateway started on
// loopback, open-file and goroutine leak checks, and network-namespace
// test hosts.
//
// Everything here registers its own cleanup with t.Cleanup and never uses
// fixed ports. It is imported only by tests.
package socks6test
