package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/socks6/socks6/proto"
)

// ServeTLS is Serve for SOCKS inside TLS (draft-socks6-extensions-00,
// "TLS and ALPN"): it accepts TCP connections on ln and runs a TLS
// handshake on each, within HandshakeTimeout, before the SOCKS one.
// config must hold a certificate (Certificates or GetCertificate); it is
// cloned, and an empty NextProtos becomes the ALPN protocols the gateway
// speaks: "socks6" (the extensions from the first byte) before "socks5"
// (RFC 1928 inside TLS, where the extensions are negotiated with method
// 0xC6 as in cleartext), or "socks5" alone with DisableExtensions. A
// client that negotiates no ALPN protocol speaks "socks5".
//
// A session whose HELLO_ACK went out on a TLS 1.3 connection is a TLS
// session: it has a session key, and the callers its listeners are
// offered can be taken only with a PROOF made with that key, on a TLS 1.3
// connection.
func (s *Server) ServeTLS(ln net.Listener, config *tls.Config) error {
	if config == nil || len(config.Certificates) == 0 && config.GetCertificate == nil && config.GetConfigForClient == nil {
		ln.Close()
		return errors.New("socks6: ServeTLS needs a tls.Config with a certificate")
	}
	cfg := config.Clone()
	alpn := []string{proto.ALPNSOCKS6, proto.ALPNSOCKS5}
	if s.DisableExtensions {
		alpn = []string{proto.ALPNSOCKS5}
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = alpn
	}
	if get := cfg.GetConfigForClient; get != nil {
		// crypto/tls uses the config this returns, not cfg.
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c != nil && len(c.NextProtos) == 0 {
				c = c.Clone()
				c.NextProtos = alpn
			}
			return c, err
		}
	}
	return s.Serve(tls.NewListener(ln, cfg))
}

// tlsHandshake completes the TLS handshake of a TLS session's
// connection (the caller's deadline bounds it) and reports whether the
// client chose the extensions from the first byte (ALPN "socks6").
func (ss *session) tlsHandshake(tc *tls.Conn) (socks6 bool, err error) {
	if err := tc.Handshake(); err != nil {
		return false, fmt.Errorf("TLS handshake: %w", err)
	}
	p := tc.ConnectionState().NegotiatedProtocol
	if p == proto.ALPNSOCKS6 && ss.s.DisableExtensions {
		// Only a tls.Config that lists "socks6" itself gets here.
		return false, errors.New("TLS: ALPN socks6 negotiated, but the extensions are disabled")
	}
	return p == proto.ALPNSOCKS6, nil
}

// exporter returns TLS-Exporter(label, id, 32) of the session's
// connection, if that is a TLS 1.3 connection.
func (ss *session) exporter(label string, id proto.SessionID) ([]byte, bool) {
	tc, ok := ss.c.(*tls.Conn)
	if !ok {
		return nil, false
	}
	cs := tc.ConnectionState()
	if !cs.HandshakeComplete || cs.Version < tls.VersionTLS13 {
		return nil, false
	}
	x, err := cs.ExportKeyingMaterial(label, id[:], proto.ExporterLen)
	if err != nil {
		return nil, false
	}
	return x, true
}

// deriveSessionKey makes the session a TLS session, with key generation
// 0, if its connection is TLS 1.3. hello calls it with the ID it sent in
// a successful HELLO_ACK.
func (ss *session) deriveSessionKey(id proto.SessionID) {
	ss.sessID = id
	if x, ok := ss.exporter(proto.ExporterSession, id); ok {
		copy(ss.key[:], x)
		clear(x)
		ss.tlsSession = true
	}
}

// takeAuthorized says whether this connection, which presents the token
// of an offer of owner's listener, may take it: with a valid PROOF on a
// TLS 1.3 connection if owner is a TLS session, else as owner's user.
func (ss *session) takeAuthorized(owner *session, ownerUser string) bool {
	if owner.tlsSession {
		if !ss.hasProof {
			return false
		}
		x, ok := ss.exporter(proto.ExporterResume, owner.sessID)
		if !ok {
			return false
		}
		return proto.ValidTakeProof(ss.proof, owner.key, ss.token, x)
	}
	return ss.user == ownerUser
}

// hardClose closes c, a TLS connection by closing the TCP connection
// under it: tls.Conn.Close first sends close_notify under the output
// lock, which a write that cannot finish may hold for ever (the TLS layer
// answers a client's KeyUpdate requests from Read, so a client that asks
// for them and never reads blocks that answer), and it waits up to 5 s
// for a peer that does not read. A session that ends cleanly has sent
// its close_notify already, with CloseWrite.
func hardClose(c net.Conn) error {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn().Close()
	}
	return c.Close()
}

// hardCloser closes its connection with hardClose.
type hardCloser struct{ c net.Conn }

func (h hardCloser) Close() error { return hardClose(h.c) }

// tcpConnOf returns the TCP connection under c, which may be a TLS one.
func tcpConnOf(c net.Conn) (*net.TCPConn, bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	return tcp, ok
}
