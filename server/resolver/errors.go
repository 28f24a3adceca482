package resolver

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/miekg/dns"
)

// Sentinels for [errors.Is]; every error the resolver returns for a name
// is an [*Error] that matches at most one of them.
var (
	// ErrNotFound matches an NXDOMAIN answer (from every family asked
	// for) and a name that cannot exist.
	ErrNotFound = errors.New("no such host")
	// ErrServerFailure matches a SERVFAIL, REFUSED, FORMERR or other error
	// rcode, an upstream that did not answer or could not be reached, and
	// a malformed or mismatched response: the name may exist.
	ErrServerFailure = errors.New("server failure")
)

// errInvalidName is the cause of a NotFound error for a name that is not
// a syntactically valid domain name.
var errInvalidName = errors.New("invalid domain name")

// errClosed is the cause of a lookup that Close ended.
var errClosed = errors.New("resolver closed")

// An ErrorKind says why a lookup failed.
type ErrorKind uint8

// The kinds of [Error].
const (
	// NotFound: the name does not exist (NXDOMAIN) or is not a valid
	// domain name. It matches [ErrNotFound].
	NotFound ErrorKind = iota + 1
	// ServerFailure: an upstream answered with an error rcode other than
	// NXDOMAIN (Rcode says which). It matches [ErrServerFailure].
	ServerFailure
	// NoResponse: no upstream answered in time, or none could be reached
	// (Err says why). It matches [ErrServerFailure].
	NoResponse
	// BadResponse: an upstream's answer was malformed, answered another
	// question, or was a lame referral. It matches [ErrServerFailure].
	BadResponse
	// NoAddress: the name exists but has no address of the families asked
	// for. Only LookupNetIP returns it; Lookup returns no answers and no
	// error instead.
	NoAddress
	// Canceled: the caller's context ended (Err is its error) or the
	// resolver was closed.
	Canceled
)

var kindNames = [...]string{
	NotFound:      "not found",
	ServerFailure: "server failure",
	NoResponse:    "no response",
	BadResponse:   "bad response",
	NoAddress:     "no address",
	Canceled:      "canceled",
}

// String returns a short lowercase name of k.
func (k ErrorKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "ErrorKind(" + strconv.Itoa(int(k)) + ")"
}

// An Error reports a failed lookup of Name.
type Error struct {
	Name   string    // the name as the caller gave it
	Kind   ErrorKind // why the lookup failed
	Server string    // the upstream that answered last ("127.0.0.1:53", "tls://…"), if any
	Rcode  int       // the response code (dns.RcodeNameError, dns.RcodeServerFailure, …), if any
	Err    error     // the underlying cause (a net error, the context's error), if any
}

// Error reads like "lookup example.test: NXDOMAIN" or "lookup x.test: no
// response from 127.0.0.1:5353 (timeout)".
func (e *Error) Error() string {
	s := "lookup " + printableName(e.Name) + ": "
	switch e.Kind {
	case NotFound:
		if e.Err != nil {
			return s + e.Err.Error()
		}
		return s + "NXDOMAIN"
	case ServerFailure:
		return s + rcodeString(e.Rcode) + e.from()
	case NoResponse:
		return s + "no response" + e.from() + " (" + reason(e.Err) + ")"
	case BadResponse:
		s += "bad response" + e.from()
		if e.Err != nil {
			s += " (" + e.Err.Error() + ")"
		}
		return s
	case NoAddress:
		return s + "no address records"
	case Canceled:
		if e.Err != nil {
			return s + e.Err.Error()
		}
		return s + "canceled"
	}
	return s + e.Kind.String()
}

func (e *Error) from() string {
	if e.Server == "" {
		return ""
	}
	return " from " + e.Server
}

// Unwrap returns the underlying cause, so that errors.Is(err,
// context.DeadlineExceeded) holds when the caller's deadline ended the
// lookup.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether e matches [ErrNotFound] or [ErrServerFailure].
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Kind == NotFound
	case ErrServerFailure:
		return e.Kind == ServerFailure || e.Kind == NoResponse || e.Kind == BadResponse
	}
	return false
}

// Timeout reports whether the lookup failed because an upstream did not
// answer in time or the caller's deadline passed.
func (e *Error) Timeout() bool {
	switch e.Kind {
	case NoResponse:
		return isTimeout(e.Err)
	case Canceled:
		return errors.Is(e.Err, context.DeadlineExceeded)
	}
	return false
}

// isTimeout reports whether err is an I/O deadline or timeout.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// reason says briefly why an upstream gave no response.
func reason(err error) string {
	switch {
	case err == nil:
		return "unknown"
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	}
	return err.Error()
}

func rcodeString(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rcode)
}

// printableName returns name for an error message: quoted if it holds
// anything but printable ASCII, and cut short if long, so that a client's
// bytes never reach a log at length.
func printableName(name string) string {
	const max = 260
	cut := false
	if len(name) > max {
		name, cut = name[:max], true
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e || c == '"' {
			name = strconv.QuoteToASCII(name)
			break
		}
	}
	if cut {
		name += "..."
	}
	return name
}
