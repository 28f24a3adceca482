package server

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/socks6/socks6/proto"
)

// dial connects to ap through the Dial hook, or a plain net.Dialer.
func (s *Server) dial(ctx context.Context, ap netip.AddrPort) (net.Conn, error) {
	if s.Dial != nil {
		return s.Dial(ctx, "tcp", ap.String())
	}
	// Not Dialer.DialTCP: with a zero local address it still binds,
	// which costs a system call per connection. No keepalive probes while
	// the idle timeout ends dead sessions (see Listen).
	d := net.Dialer{}
	if s.idleTimeout() > 0 {
		d.KeepAlive = -1
	}
	return d.DialContext(ctx, "tcp", ap.String())
}

// connect serves CONNECT: dial, reply with the bound address, relay.
func (ss *session) connect(ctx context.Context, early []byte) error {
	target, connected, err := ss.dialTarget()
	// The reply, success or failure, is a stage of its own: the dial
	// may have outlasted the handshake's deadline.
	ss.c.SetDeadline(time.Now().Add(ss.s.handshakeTimeout()))
	if err != nil {
		return err
	}
	if ss.s.shutdown.Load() {
		target.Close() // shutdown began while dialing
		return errShuttingDown
	}
	bound := addrPortOf(target.LocalAddr())
	ss.bound = bound.String()
	ss.connected = connected
	if err := ss.writeReply(proto.ReplySucceeded, proto.AddrFromAddrPort(bound)); err != nil {
		target.Close()
		return err
	}
	return ss.startRelay(target, early)
}
