package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/socks6/socks6/proto"
)

// Sentinel errors. Callers test for them with errors.Is; the errors the
// package returns wrap them with details.
var (
	// ErrDowngrade reports that a Dialer whose Extensions is ExtRequire
	// got a method selection other than 0xC6 (draft-socks6-extensions-00,
	// "Downgrade Protection": the no-fallback rule), or other than 0xFF,
	// which refuses every method and is ErrAuth. The connection was
	// closed without sending anything more.
	ErrDowngrade = errors.New("socks: gateway did not select the extensions (downgrade refused)")
	// ErrNoExtensions reports that a feature needs the extensions and the
	// gateway did not negotiate them, or negotiated them without the
	// feature's bit, or the Dialer has them turned off.
	ErrNoExtensions = errors.New("socks: gateway does not offer the extensions this needs")
	// ErrAuth reports that the gateway refused the credentials (RFC 1929
	// status, or HELLO_ACK status 0x01), or accepts none of the
	// authentication methods the Dialer offered.
	ErrAuth = errors.New("socks: authentication failed")
	// ErrPrefetchBusy reports that a Session already has MaxPrefetches
	// Prefetch requests unanswered; nothing was sent.
	ErrPrefetchBusy = errors.New("socks: too many prefetches unanswered")
)

// A ReplyError is a gateway's refusal of a request: an RFC 1928 reply or
// a REPLY frame whose code is not "succeeded". Dial and Resolve return it
// inside a *net.OpError; use errors.As to get it.
type ReplyError struct {
	Command proto.Command   // the refused command: CONNECT, RESOLVE, …
	Target  string          // the request's destination or name, as the caller gave it
	Code    proto.ReplyCode // the gateway's reply code
	// Diagnostic is the text of the reply's DIAGNOSTIC option, if any.
	// It is meant for humans; do not act on its content.
	Diagnostic string
}

// Error returns, for example, "socks: CONNECT example.test:80: name not
// found (0xe6)", followed by the quoted diagnostic if there is one.
func (e *ReplyError) Error() string {
	s := "socks: " + strings.ToUpper(e.Command.String()) + " " + e.Target + ": " + codeString(e.Code)
	if e.Diagnostic != "" {
		s += ": " + strconv.Quote(e.Diagnostic)
	}
	return s
}

// Timeout reports whether the gateway's connection attempt timed out:
// code 0xE8, or 0x06 ("TTL expired"), which SOCKS5 servers use for
// timeouts. It makes a *net.OpError around e a timeout too.
func (e *ReplyError) Timeout() bool {
	return e.Code == proto.ReplyTimeout || e.Code == proto.ReplyTTLExpired
}

// A HelloError is a gateway's refusal of HELLO: a HELLO_ACK whose Status
// is not ok. The gateway closes the connection after sending it.
type HelloError struct {
	Status proto.HelloStatus
	// Version is the highest extension version the gateway supports when
	// Status is proto.HelloVersionUnsupported.
	Version    uint8
	Diagnostic string // the DIAGNOSTIC option, if any; for humans only
}

// Error names the status and the diagnostic.
func (e *HelloError) Error() string {
	s := fmt.Sprintf("socks: gateway refused HELLO: %s (0x%02x)", e.Status, uint8(e.Status))
	if e.Status == proto.HelloVersionUnsupported {
		s += ", gateway speaks version " + strconv.Itoa(int(e.Version))
	}
	if e.Diagnostic != "" {
		s += ": " + strconv.Quote(e.Diagnostic)
	}
	return s
}

// Unwrap returns ErrAuth for proto.HelloAuthFailed, so that errors.Is
// finds an authentication failure whichever way it was negotiated.
func (e *HelloError) Unwrap() error {
	if e.Status == proto.HelloAuthFailed {
		return ErrAuth
	}
	return nil
}

// A CloseError reports that the gateway ended a framed connection with a
// CLOSE frame (draft-socks6-extensions-00, "CLOSE").
type CloseError struct {
	Reason     proto.ReplyCode // proto.ReplySucceeded for a normal close
	Diagnostic string          // the DIAGNOSTIC option, if any; for humans only
}

// Error names the reason and the diagnostic.
func (e *CloseError) Error() string {
	s := "socks: gateway closed the session"
	if e.Reason != proto.ReplySucceeded {
		s += ": " + codeString(e.Reason)
	}
	if e.Diagnostic != "" {
		s += ": " + strconv.Quote(e.Diagnostic)
	}
	return s
}

func codeString(c proto.ReplyCode) string {
	return fmt.Sprintf("%s (0x%02x)", c, uint8(c))
}

// A protocolError is a violation of the protocol by the gateway. On a
// framed connection the client answers it with CLOSE 0xEB before closing
// (draft-socks6-extensions-00, "Error Handling").
type protocolError struct {
	what string // the message: "HELLO_ACK", "REPLY", "frame", …
	err  error  // a proto sentinel such as proto.ErrMalformed
}

func (e *protocolError) Error() string {
	return "socks: malformed " + e.what + " from gateway: " + e.err.Error()
}

func (e *protocolError) Unwrap() error { return e.err }

func malformed(what string, err error) error { return &protocolError{what: what, err: err} }

func isProtocolError(err error) bool {
	var pe *protocolError
	return errors.As(err, &pe)
}

// ctxErr returns the context's error if ctx ended, so that a read or
// write that failed because watch moved the deadline reports
// context.Canceled or context.DeadlineExceeded rather than a bare i/o
// timeout; otherwise it returns err.
func ctxErr(ctx context.Context, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded
		}
	}
	return err
}
