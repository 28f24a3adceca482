package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/socks6/socks6/client"
)

// describe turns an error into the text after "socks6: ". A refusal by
// the gateway names the request and the reply code ("CONNECT
// example.test:80: name not found (0xe6)"); a gateway that cannot be
// reached is named as such.
func describe(err error) string {
	var re *client.ReplyError
	if errors.As(err, &re) {
		s := fmt.Sprintf("%s %s: %s (0x%02x)", strings.ToUpper(re.Command.String()), re.Target, re.Code, uint8(re.Code))
		// The gateway's diagnostic often just repeats the code's name.
		if re.Diagnostic != "" && re.Diagnostic != re.Code.String() {
			s += ": " + strconv.Quote(re.Diagnostic)
		}
		return s
	}
	var oe *net.OpError
	if errors.As(err, &oe) && strings.HasPrefix(oe.Op, "socks6 ") {
		op := strings.TrimPrefix(oe.Op, "socks6 ")
		if oe.Addr != nil {
			op += " " + oe.Addr.String()
		}
		gw := ""
		if oe.Source != nil {
			gw = oe.Source.String()
		}
		var dial *net.OpError
		if errors.As(oe.Err, &dial) && dial.Op == "dial" {
			return fmt.Sprintf("%s: cannot reach the gateway %s: %v", op, gw, unwrapSyscall(dial.Err))
		}
		return fmt.Sprintf("%s via %s: %s", op, gw, cause(oe.Err))
	}
	return err.Error()
}

// cause returns the text of what err reports, without the operation
// and addresses of a *net.OpError from package client around it.
func cause(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && strings.HasPrefix(oe.Op, "socks6 ") {
		err = oe.Err
	}
	return strings.TrimPrefix(err.Error(), "socks: ")
}

// unwrapSyscall drops the "connect: " of an *os.SyscallError.
func unwrapSyscall(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// logger writes the command's messages to standard error, one line each,
// prefixed "socks6: ". It is safe for concurrent use.
type logger struct {
	mu      sync.Mutex
	w       io.Writer
	verbose bool // -v: also the debugf lines
}

// printf writes a line always.
func (l *logger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "socks6: "+format+"\n", args...)
}

// debugf writes a line with -v.
func (l *logger) debugf(format string, args ...any) {
	if l.verbose {
		l.printf(format, args...)
	}
}
