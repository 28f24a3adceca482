package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/socks6/socks6/proto"
)

// startTLS runs the client side of TLS over c, the connection to the
// gateway, with d.TLSConfig: ALPN "socks6" then "socks5" (only "socks5"
// with ExtOff) unless the config lists its own, and the gateway's host
// name from ProxyAddress unless the config names a ServerName. With
// ExtRequire, "socks5" is still offered (the draft says clients SHOULD):
// the extensions may then be negotiated inside it with 0xC6, and a
// gateway that does not select them is a downgrade as in cleartext. A c
// that is a TLS connection already (from ProxyDial) is returned as it
// is. startTLS closes c if the handshake fails.
func (d *Dialer) startTLS(ctx context.Context, c net.Conn) (*tls.Conn, error) {
	if tc, ok := c.(*tls.Conn); ok {
		return tc, nil
	}
	cfg := d.TLSConfig.Clone()
	if len(cfg.NextProtos) == 0 {
		if d.Extensions == ExtOff {
			cfg.NextProtos = []string{proto.ALPNSOCKS5}
		} else {
			cfg.NextProtos = []string{proto.ALPNSOCKS6, proto.ALPNSOCKS5}
		}
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(d.ProxyAddress); err == nil {
			cfg.ServerName = host
		}
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("socks: TLS handshake with the gateway: %w", err)
	}
	return tc, nil
}

// alpnSOCKS6 completes the TLS handshake of c if c is a TLS connection
// (one ProxyDial returned may not have run it yet) and reports whether
// the gateway selected ALPN "socks6": the extensions from the first
// byte, with no greeting.
func alpnSOCKS6(c net.Conn) (bool, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return false, nil
	}
	if err := tc.Handshake(); err != nil {
		return false, fmt.Errorf("socks: TLS handshake with the gateway: %w", err)
	}
	return tc.ConnectionState().NegotiatedProtocol == proto.ALPNSOCKS6, nil
}

// exporter returns TLS-Exporter(label, id, 32) of c if c is a TLS 1.3
// connection.
func exporter(c net.Conn, label string, id proto.SessionID) ([]byte, bool) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, false
	}
	cs := tc.ConnectionState()
	if !cs.HandshakeComplete || cs.Version < tls.VersionTLS13 {
		return nil, false
	}
	x, err := cs.ExportKeyingMaterial(label, id[:], proto.ExporterLen)
	return x, err == nil
}

// sessionKey returns the key of generation 0 of the session that ack
// opened on c, if c is a TLS 1.3 connection: such a session is a TLS
// session (draft-socks6-extensions-00, "Session Keys").
func sessionKey(c net.Conn, ack proto.HelloAck) (proto.SessionKey, bool) {
	var k proto.SessionKey
	x, ok := exporter(c, proto.ExporterSession, ack.SessionID)
	if ok {
		copy(k[:], x)
		clear(x)
	}
	return k, ok
}

// takeProof returns the PROOF option that a TAKE on c of a caller
// offered to the TLS session (id, key) must carry.
func takeProof(c net.Conn, id proto.SessionID, key proto.SessionKey, token proto.Token) (proto.Option, error) {
	x, ok := exporter(c, proto.ExporterResume, id)
	if !ok {
		return proto.Option{}, errors.New("socks: the listener's session uses TLS 1.3, so its callers can be taken only over TLS 1.3, with a PROOF")
	}
	return proto.ProofOption(proto.TakeProof(key, token, x)), nil
}
