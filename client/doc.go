// Package client is the Go client of socks6 gateways: it connects through
// a SOCKS5 gateway and uses the negotiated extensions of
// draft-socks6-extensions-00 ("SOCKS6") when the gateway offers them.
//
// A [Dialer] opens TCP connections through the gateway with CONNECT. It
// offers the extensions (method 0xC6 in the RFC 1928 greeting, section
// "Cleartext Negotiation with Method 0xC6"); a gateway that selects them
// gets a HELLO frame and a CONNECT in a REQUEST frame, whose REPLY may
// say which address the gateway connected to ([Conn.Connected]). Any
// other gateway selects a plain method and the Dialer continues as an
// RFC 1928 client in the same connection ("Fallback"), with RFC 1929
// username and password authentication. [ExtRequire] forbids that
// fallback ("Downgrade Protection"), and [ExtOff] never offers the
// extensions. Host names are sent to the gateway (ATYP 3) and resolved
// there, never locally ("Name Resolution and Dual Stack"). Either way
// the connection carries the stream's bytes unchanged after the reply.
//
// A [Session] is a control connection with the extensions negotiated.
// It carries control requests, several at a time: [Session.Resolve]
// (RESOLVE), [Session.Listen] (LISTEN) and [Session.ListenPacket]
// (UDP).
// [Session.Prefetch] sends a RESOLVE without waiting for its answer, to
// warm the gateway's resolver ahead of a CONNECT. [Dialer.Resolve] opens
// a session for one lookup.
//
// A [Listener] is a listening socket at the gateway ("Listening"):
// [Dialer.Listen] opens one on a session of its own, [Session.Listen]
// on an existing session. It implements net.Listener. The gateway
// offers each caller on the session (ACCEPT_OFFER); the Listener takes
// it in the background on a new connection to the gateway (TAKE, with
// the same credentials), or refuses it (REJECT_OFFER) when its Filter
// says so or too many taken callers wait for Accept. Tokens are never
// logged or printed.
//
// With [Dialer.TLSConfig] set, the Dialer speaks TLS to the gateway
// ("TLS and ALPN"): it offers ALPN "socks6", with which the extensions
// start at the first byte (HELLO, no greeting), and "socks5", RFC 1928
// inside TLS, for gateways that only wrap SOCKS5 in TLS. A session
// negotiated over TLS 1.3 is a TLS session with a session key ("Session
// Keys"); its Listener takes callers with a PROOF of that key, bound to
// the new connection, so a token that leaks is useless to others.
//
// *Dialer implements the Dialer and ContextDialer interfaces of
// golang.org/x/net/proxy, and the package registers the "socks6" and
// "socks6s" (TLS) URL schemes with proxy.RegisterDialerType (see
// [FromURL]).
//
// [DiscoverDHCPv4] and [DiscoverDHCPv6] ask the network's DHCP servers
// which gateways they advertise ("Discovery"): a hint to check, never a
// credential.
//
// A [PacketConn] is a UDP association carried inside a control
// connection ("UDP in the Stream"): a net.PacketConn whose datagrams
// travel as DATAGRAM frames, so UDP works wherever the connection to the
// gateway does. [Dialer.ListenPacket] opens one on a session of its own,
// which its Close ends; [Session.ListenPacket] on an existing session.
// WriteTo takes an IP address or a name for the gateway to resolve
// ([NamedAddr]);
// ReadFrom reports each datagram's source.
//
// Errors follow package net: a *net.OpError whose Err is a *[ReplyError]
// when the gateway refused a request, a *[HelloError] when it refused
// HELLO, a *[CloseError] when it sent CLOSE, or wraps [ErrDowngrade],
// [ErrNoExtensions] or [ErrAuth]. A gateway that breaks the protocol on
// a framed connection is answered with CLOSE 0xEB before the connection
// is closed ("Error Handling").
//
// Not implemented yet: BIND, UDP ASSOCIATE, TLS client certificates,
// routes, resumption, and discovery by PAC or DNS-SD; optimistic data after CONNECT; idle
// keepalive PINGs.
//
// A Dialer, a Conn, a Session and a Listener are safe for concurrent use
// as their documentation says. Contexts bound handshakes and single requests,
// never the life of a connection or session; the caller closes what it
// gets.
package client
