package server

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server/resolver"
)

// A ReplyError is an error the gateway reports to the client as a reply
// code.
type ReplyError struct {
	Code proto.ReplyCode
	Err  error
}

// Error returns the reply code's meaning and the cause.
func (e *ReplyError) Error() string {
	if e.Err == nil {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ReplyError) Unwrap() error { return e.Err }

// replyErr wraps err with code.
func replyErr(code proto.ReplyCode, err error) error { return &ReplyError{Code: code, Err: err} }

// Errors that policy and limits return; each carries its reply code.
var (
	// ErrNotAllowed is returned by policies that refuse a request.
	ErrNotAllowed = &ReplyError{Code: proto.ReplyNotAllowed, Err: errors.New("refused by policy")}
	// errShuttingDown refuses requests that arrive while the gateway drains.
	errShuttingDown = &ReplyError{Code: proto.ReplyGeneralFailure, Err: errors.New("gateway shutting down")}
	// errInternalTarget refuses loopback, link-local and gateway-own targets.
	errInternalTarget = &ReplyError{Code: proto.ReplyNotAllowed, Err: errors.New("target is internal to the gateway")}
)

// replyCode maps any error to the code the client is sent, in the
// extension codes (writeReply maps them for plain SOCKS5 clients). Dial
// and lookup failures keep their distinctions; unknown errors are a
// general failure.
func replyCode(err error) proto.ReplyCode {
	var re *ReplyError
	if errors.As(err, &re) {
		return re.Code
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, resolver.ErrNotFound):
		return proto.ReplyNameNotFound
	case errors.Is(err, resolver.ErrServerFailure):
		return proto.ReplyNameServerFailure
	case errors.Is(err, syscall.ECONNREFUSED):
		return proto.ReplyConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return proto.ReplyNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EHOSTDOWN):
		return proto.ReplyHostUnreachable
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		// An administratively prohibited route or a local firewall.
		return proto.ReplyNotAllowed
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded):
		return proto.ReplyTimeout
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return proto.ReplyNameNotFound
		case dnsErr.IsTimeout:
			return proto.ReplyNameServerFailure
		}
		return proto.ReplyNameServerFailure
	}
	return proto.ReplyGeneralFailure
}
