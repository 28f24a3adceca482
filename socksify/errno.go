package socksify

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// replyErrno maps a gateway's reply code to the errno the program's
// connect returns:
//
//	0x01 general failure                 ECONNREFUSED
//	0x02 not allowed by ruleset          EACCES ("Permission denied": the
//	                                     gateway's policy said no; connect(2)
//	                                     documents EACCES for a firewall rule)
//	0x03 network unreachable             ENETUNREACH
//	0x04 host unreachable                EHOSTUNREACH
//	0x05 connection refused              ECONNREFUSED
//	0x06 TTL expired                     ETIMEDOUT (SOCKS5 servers use it for timeouts)
//	0x07 command not supported           EOPNOTSUPP
//	0x08 address type not supported      EAFNOSUPPORT
//	0xE0 authentication required         EACCES
//	0xE5 destination not served          ENETUNREACH
//	0xE6 name not found (NXDOMAIN)       EHOSTUNREACH (a fake IP hid the
//	                                     failed lookup; this is what is left)
//	0xE7 name server failure             EHOSTUNREACH
//	0xE8 connection attempt timed out    ETIMEDOUT
//	0xEA hop limit exceeded              ENETUNREACH
//	anything else                        ECONNREFUSED
func replyErrno(code proto.ReplyCode) syscall.Errno {
	switch code {
	case proto.ReplyNotAllowed, proto.ReplyAuthRequired:
		return syscall.EACCES
	case proto.ReplyNetworkUnreachable, proto.ReplyNotServed, proto.ReplyHopLimitExceeded:
		return syscall.ENETUNREACH
	case proto.ReplyHostUnreachable, proto.ReplyNameNotFound, proto.ReplyNameServerFailure:
		return syscall.EHOSTUNREACH
	case proto.ReplyTTLExpired, proto.ReplyTimeout:
		return syscall.ETIMEDOUT
	case proto.ReplyCommandNotSupported:
		return syscall.EOPNOTSUPP
	case proto.ReplyAddressTypeNotSupported:
		return syscall.EAFNOSUPPORT
	}
	return syscall.ECONNREFUSED
}

// handshakeErrno maps the error of a failed handshake with the gateway
// to the program's errno: the reply code's (replyErrno) when the gateway
// refused the request; EACCES when it refused the credentials; ETIMEDOUT
// when the handshake ran out of time; the errno itself when reaching the
// gateway failed with one (ECONNREFUSED when it is down, ENETUNREACH, …);
// ECONNREFUSED for anything else (a protocol error, the gateway closing
// the connection).
func handshakeErrno(err error) syscall.Errno {
	var re *client.ReplyError
	var he *client.HelloError
	var ce *client.CloseError
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &re):
		return replyErrno(re.Code)
	case errors.Is(err, client.ErrAuth), errors.As(err, &he):
		return syscall.EACCES
	case errors.As(err, &ce):
		return replyErrno(ce.Reason)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return syscall.ETIMEDOUT
	case errors.As(err, &errno):
		return errno
	}
	return syscall.ECONNREFUSED
}

// ConnectErrno returns the errno a program's connect gets, in the
// seccomp mode, when the gateway's CONNECT failed with err (an error of
// client.Dialer): the reply code's errno (see replyErrno), EACCES for
// refused credentials, ETIMEDOUT when time ran out, the system's errno
// when the gateway could not be reached, else ECONNREFUSED. The isolate
// mode answers the program's SYN to match.
func ConnectErrno(err error) syscall.Errno { return handshakeErrno(err) }
