package proto

import "encoding/hex"

// A Token names one offered connection: the gateway sends it in
// ACCEPT_OFFER, and the client presents it in TAKE or REJECT_OFFER. It is
// a bearer credential, so its String and GoString methods hide it.
type Token [16]byte

// String hides the token so that one printed by mistake leaks nothing.
func (Token) String() string { return "REDACTED" }

// GoString hides the token from the %#v verb too.
func (Token) GoString() string { return "proto.Token{REDACTED}" }

// A SessionID names a session for resumption. It is not a secret (RESUME
// also needs a Proof, which needs the session key), so it prints in hex.
type SessionID [16]byte

// String returns the session ID in hex.
func (s SessionID) String() string { return hex.EncodeToString(s[:]) }

// A Proof is an HMAC-SHA256 value that proves possession of a session key
// (RESUME, and the PROOF option of TAKE). Its String and GoString methods
// hide it.
type Proof [32]byte

// String hides the proof so that one printed by mistake leaks nothing.
func (Proof) String() string { return "REDACTED" }

// GoString hides the proof from the %#v verb too.
func (Proof) GoString() string { return "proto.Proof{REDACTED}" }
