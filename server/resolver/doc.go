// Package resolver is the gateway's own DNS stub resolver: it looks up the
// A and AAAA records of the names clients ask the gateway to reach, with
// their TTLs, so that the gateway can race IPv6 and IPv4 connections
// (Happy Eyeballs, RFC 8305), return every address with its TTL to a
// RESOLVE request, and bridge IPv4-only and IPv6-only networks through
// NAT64 (DESIGN.md, "Dual-stack").
//
// A lookup consults, in order: IP address literals; the hosts file (re-read
// when it changes) and the RFC 6761 "localhost" names; a bounded LRU cache
// that honors TTLs and caches negative answers as RFC 2308 says; and the
// upstream name servers, over UDP with EDNS0 (falling back to TCP when an
// answer is truncated, RFC 7766) or over TLS (RFC 7858). Short names get
// the search list of resolv.conf(5). Concurrent lookups of one name and
// type share one upstream exchange. NAT64 prefix discovery follows RFC
// 7050, and address synthesis and extraction follow RFC 6052.
//
// It does not recurse from the root, validate DNSSEC, look up record types
// other than A and AAAA, or do reverse lookups, and it does not resolve
// the names of its own upstream servers (they are IP addresses).
//
// Errors are [*Error] values; [ErrNotFound] and [ErrServerFailure] tell an
// NXDOMAIN from a failure that says nothing about the name.
//
// Concurrency and ownership: a [Resolver] is safe for concurrent use. Every
// blocking method takes a context that bounds it. The only goroutines a
// Resolver starts are its shared upstream exchanges; each ends once its
// answer is in, or as soon as no lookup waits for it, and [Resolver.Close]
// ends them all and waits for them.
package resolver
