package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/socks6/socks6/proto"
)

var errNoAllowedAddr = &ReplyError{Code: proto.ReplyNotAllowed, Err: errors.New("no resolved address is allowed")}

// resolve returns the addresses for the request's target that guard and
// policy allow, in the resolver's order of preference.
func (ss *session) resolve(ctx context.Context) ([]netip.Addr, error) {
	t := ss.req.Target
	if t.FQDN == "" {
		return []netip.Addr{t.IP.Unmap()}, nil
	}
	var r interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	} = net.DefaultResolver
	if ss.s.Resolver != nil {
		r = ss.s.Resolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", t.FQDN)
	if err != nil {
		return nil, err
	}
	allowed := ips[:0]
	var refused error
	for _, ip := range ips {
		if err := ss.allowIP(ctx, ip); err != nil {
			refused = err
			continue
		}
		allowed = append(allowed, ip.Unmap())
	}
	if len(allowed) == 0 {
		if refused != nil {
			return nil, refused
		}
		return nil, errNoAllowedAddr
	}
	return allowed, nil
}

// dialTarget resolves and connects, trying each allowed address in turn
// with an equal share of the remaining time (as net.Dialer does). It has
// DialTimeout from now, whatever is left of the handshake's deadline;
// Close still cancels it.
func (ss *session) dialTarget() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ss.s.baseCtx, ss.s.dialTimeout())
	defer cancel()
	ips, err := ss.resolve(ctx)
	if err != nil {
		return nil, err
	}
	var first error
	for i, ip := range ips {
		actx := ctx
		if dl, ok := ctx.Deadline(); ok && len(ips)-i > 1 {
			share := time.Until(dl) / time.Duration(len(ips)-i)
			if share < 2*time.Second && time.Until(dl) > 2*time.Second {
				share = 2 * time.Second
			}
			var c context.CancelFunc
			actx, c = context.WithTimeout(ctx, share)
			defer c()
		}
		conn, err := ss.s.dial(actx, netip.AddrPortFrom(ip, ss.req.Target.Port))
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

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
	target, err := ss.dialTarget()
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
	if err := ss.writeReply(proto.ReplySucceeded, proto.AddrFromAddrPort(bound)); err != nil {
		target.Close()
		return err
	}
	return ss.startRelay(target, early)
}
