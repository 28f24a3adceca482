// Package socks6test holds helpers for tests that cross real sockets:
// loopback listeners, echo and sink servers, a gateway started on
// loopback, open-file and goroutine leak checks, network-namespace test
// hosts, and a DNS server (on github.com/miekg/dns) whose answers,
// failures, delays and truncation each test sets.
//
// Everything here registers its own cleanup with t.Cleanup and never uses
// fixed ports. It is imported only by tests.
package socks6test
