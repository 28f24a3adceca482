package proto

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
)

// TLS exporter labels (RFC 8446 Section 7.5) of the session key and of
// the value that binds a proof to one connection.
const (
	ExporterSession = "EXPORTER-socks6-session"
	ExporterResume  = "EXPORTER-socks6-resume"
)

// ExporterLen is the length of both exporter outputs.
const ExporterLen = 32

// TLSExporter returns TLS-Exporter(label, id, ExporterLen) of the
// connection whose state is cs, if it completed a TLS 1.3 handshake: the
// draft's session keys and proofs are defined for TLS 1.3 only.
func TLSExporter(cs tls.ConnectionState, label string, id SessionID) ([]byte, bool) {
	if !cs.HandshakeComplete || cs.Version < tls.VersionTLS13 {
		return nil, false
	}
	x, err := cs.ExportKeyingMaterial(label, id[:], ExporterLen)
	if err != nil {
		return nil, false
	}
	return x, true
}

// A SessionKey is a TLS session's key of one generation:
// TLS-Exporter(ExporterSession, Session ID, 32) for generation 0. It is a
// secret, so its String and GoString methods hide it.
type SessionKey [32]byte

// String hides the key so that one printed by mistake leaks nothing.
func (SessionKey) String() string { return "REDACTED" }

// GoString hides the key from the %#v verb too.
func (SessionKey) GoString() string { return "proto.SessionKey{REDACTED}" }

// takeProofLabel prefixes the MAC input of a TAKE's PROOF.
const takeProofLabel = "socks6 take"

// TakeProof returns the PROOF option value of a TAKE:
// HMAC-SHA256(key, "socks6 take" || token || x), where key is the
// current key of the listener's session and x is
// TLS-Exporter(ExporterResume, that session's ID, 32) computed on the
// connection that carries the TAKE.
func TakeProof(key SessionKey, token Token, x []byte) Proof {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(takeProofLabel))
	m.Write(token[:])
	m.Write(x)
	var p Proof
	m.Sum(p[:0])
	return p
}

// ValidTakeProof reports, in constant time, whether p is the TAKE proof
// for key, token and x.
func ValidTakeProof(p Proof, key SessionKey, token Token, x []byte) bool {
	want := TakeProof(key, token, x)
	return hmac.Equal(p[:], want[:])
}
