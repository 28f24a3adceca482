package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/socks6/socks6/proto"
)

var errBindPeer = errors.New("incoming connection from an unexpected address")

// bind serves BIND (RFC 1928 section 4): listen on the address the client
// reached us on, send the first reply with that address, wait for one
// incoming connection, send the second reply with the caller's address,
// then relay. When DST.ADDR names an IP, only a caller from that IP is
// accepted, as the RFC suggests; others are closed and waiting goes on.
func (ss *session) bind(ctx context.Context) error {
	local := addrPortOf(ss.c.LocalAddr())
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(local.Addr().Unmap().String(), "0"))
	if err != nil {
		return err
	}
	defer ln.Close()
	tl := ln.(*net.TCPListener)
	bound := addrPortOf(ln.Addr())
	ss.bound = bound.String()
	if err := ss.writeReply(proto.ReplySucceeded, proto.AddrFromAddrPort(bound)); err != nil {
		return err
	}

	// While waiting, a closed control connection ends the wait: watch it
	// with a one-byte read that the accept below cancels. A client that
	// sends data before the second reply breaks the protocol; if the read
	// sees it first the session ends, if an accept wins the race the byte
	// goes to the caller with the rest.
	deadline := time.Now().Add(ss.s.bindTimeout())
	ss.c.SetDeadline(time.Time{})
	watchDone := make(chan error, 1)
	var early [1]byte
	var earlyN int
	go func() {
		n, err := ss.c.Read(early[:])
		earlyN = n
		if err == nil {
			err = errors.New("client sent data before the second reply")
		}
		tl.Close()
		watchDone <- err
	}()
	stopWatch := func() error {
		ss.c.SetReadDeadline(time.Unix(1, 0))
		err := <-watchDone
		ss.c.SetReadDeadline(time.Time{})
		return err
	}

	tl.SetDeadline(deadline)
	want := ss.req.Target.IP.Unmap()
	var peer net.Conn
	for {
		c, err := tl.AcceptTCP()
		if err != nil {
			werr := stopWatch()
			if werr != nil && !errors.Is(werr, os.ErrDeadlineExceeded) && earlyN == 0 {
				return werr // the client went away
			}
			return ss.secondReplyFail(err)
		}
		p := addrPortOf(c.RemoteAddr()).Addr().Unmap()
		if ss.req.Target.FQDN == "" && want.IsValid() && !want.IsUnspecified() && p != want {
			c.Close()
			continue
		}
		if !ss.bindPeerAllowed(p) {
			c.Close()
			continue
		}
		peer = c
		break
	}
	if err := stopWatch(); earlyN > 0 {
		peer.Close()
		return err
	}
	pa := addrPortOf(peer.RemoteAddr())
	if err := ss.writeReply(proto.ReplySucceeded, proto.AddrFromAddrPort(pa)); err != nil {
		peer.Close()
		return err
	}
	ln.Close()
	return ss.startRelay(peer, nil)
}

// bindPeerAllowed applies the policy to a caller when the request could
// not be judged for it before it came. When the client named the expected
// peer by domain name, Allow could not judge network rules before an
// address was known (see Rules.Allow), so, as for CONNECT, AllowIP with
// the address decides. When it accepted any peer (an unspecified
// address), the request is judged again as if it had named this caller.
// An expected peer given as an address was judged by Allow, and only it
// is accepted. The check gets a deadline of its own: the peer may come
// after the handshake's has passed (BindTimeout).
func (ss *session) bindPeerAllowed(peer netip.Addr) bool {
	p := ss.st.Policy
	t := ss.req.Target
	if p == nil || t.FQDN == "" && t.IP.IsValid() && !t.IP.Unmap().IsUnspecified() {
		return true
	}
	ctx, cancel := context.WithTimeout(ss.s.baseCtx, ss.s.handshakeTimeout())
	defer cancel()
	if t.FQDN == "" {
		q := ss.req
		q.Target = proto.Addr{IP: peer, Port: t.Port}
		return p.Allow(ctx, &q) == nil
	}
	return p.AllowIP(ctx, &ss.req, peer) == nil
}

// secondReplyFail sends the second BIND reply as a failure.
func (ss *session) secondReplyFail(err error) error {
	code := replyCode(err)
	if errors.Is(err, net.ErrClosed) {
		code = proto.ReplyGeneralFailure
	}
	if werr := ss.writeReply(code, proto.Addr{}); werr != nil {
		return errors.Join(err, werr)
	}
	return replyErr(code, err)
}
