package proto

import (
	"crypto/hmac"
	"crypto/sha256"
)

// TLS exporter labels (RFC 8446 Section 7.5) of the session key and of
// the value that binds a proof to one connection.
const (
	ExporterSession = "EXPORTER-socks6-session"
	ExporterResume  = "EXPORTER-socks6-resume"
)

// ExporterLen is the length of both exporter outputs.
const ExporterLen = 32

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
