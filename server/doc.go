// Package server is the socks6 gateway: it accepts SOCKS5 connections
// (RFC 1928, with username/password authentication from RFC 1929) and
// serves CONNECT, BIND and UDP ASSOCIATE.
//
// A session runs accept → greeting → authentication → request → policy
// and limits → command → relay, each stage before the relay under a
// deadline. Command handlers return errors; one boundary in the session
// turns an error into the reply code the client sees (see [ReplyError])
// and writes one audit record per session through log/slog.
//
// [Server.ServeTLS] serves SOCKS inside TLS: ALPN "socks6" starts the
// extensions at the first byte, "socks5" (or no ALPN) is RFC 1928 inside
// TLS. A session negotiated on TLS 1.3 has a session key, and the callers
// its listeners are offered can only be taken with a PROOF of that key.
//
// Settings.Upstreams forward the CONNECTs and RESOLVEs for chosen
// destinations to other gateways ([Upstream]), as a client of them with
// credentials of their own, carrying the extensions' hop limit.
//
// Users, policy and limits live in a snapshot that [Server.Reload] swaps
// atomically: sessions already running keep the snapshot they started
// with, new sessions get the new one.
//
// The package reads no files, flags or environment; cmd/socks6d does that
// and hands the result to a [Server]. A Server's methods are safe for
// concurrent use. Serve owns the connections it accepts and closes them.
package server
