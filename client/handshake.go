package client

import (
	"context"
	"errors"
	"net"

	"github.com/socks6/socks6/proto"
)

// Handshake runs the gateway handshake and a CONNECT to address over c, a
// connection to the gateway that the caller opened itself: method
// negotiation (the extensions, or plain SOCKS5 with RFC 1929 when the
// gateway does not select them, as Extensions says), then CONNECT, as
// DialContext does after it has reached the gateway. ProxyAddress only
// names the gateway in errors, and ProxyDial is not used. network and
// address are as for DialContext.
//
// Handshake reads exactly the gateway's messages and nothing after the
// reply, so bytes the target sends first stay unread in c. It is for
// callers that must use a particular socket, such as socksify, which
// runs the handshake on a supervised program's own socket.
//
// ctx (or Timeout, when ctx has no deadline) bounds the handshake
// through c's deadlines, which Handshake sets and clears again on
// success; c must implement them. Handshake never closes c. On success
// the returned *Conn wraps c. On error the caller closes c: its deadline
// may be in the past and its state is unknown. A refusal by the gateway
// is a *net.OpError wrapping a *ReplyError.
//
// Handshake is safe for concurrent use on different connections.
func (d *Dialer) Handshake(ctx context.Context, c net.Conn, network, address string) (*Conn, error) {
	if c == nil {
		return nil, d.opError("connect", network, address, errors.New("socks: Handshake needs a connection"))
	}
	target, family, err := d.prepare(ctx, network, address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := d.handshakeContext(ctx)
	defer cancel()
	return d.handshakeOn(ctx, c, target, family, network, address)
}

// prepare checks a CONNECT's arguments and the credentials, and returns
// the target and the address family to ask for.
func (d *Dialer) prepare(ctx context.Context, network, address string) (proto.Addr, proto.Family, error) {
	target, family, err := parseTarget(ctx, network, address)
	if err == nil {
		err = d.checkCredentials()
	}
	if err != nil {
		return proto.Addr{}, 0, d.opError("connect", network, address, err)
	}
	if d.Family != 0 {
		family = d.Family
	}
	return target, family, nil
}

// handshakeOn runs the handshake and the CONNECT on c, a connection to
// the gateway, within ctx (through c's deadlines, cleared on success).
// It does not close c.
func (d *Dialer) handshakeOn(ctx context.Context, c net.Conn, target proto.Addr, family proto.Family, network, address string) (*Conn, error) {
	stop := watch(ctx, c)
	conn, err := d.connect(c, target, family, address)
	if err != nil {
		err = ctxErr(ctx, err)
		stop()
		return nil, d.opError("connect", network, address, err)
	}
	if err := stop(); err != nil {
		return nil, d.opError("connect", network, address, err)
	}
	return conn, nil
}
