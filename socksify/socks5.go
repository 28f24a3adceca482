package socksify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// socks5Request runs a plain SOCKS5 handshake (RFC 1928, with RFC 1929
// when user is not empty) and one request (CONNECT or UDP ASSOCIATE) on
// c, and returns the gateway's reply. It reads exactly the gateway's
// messages, so bytes that follow the reply stay unread in c.
//
// Without credentials the greeting, which offers only "no
// authentication", and the request go out in one write: one round trip
// to the gateway instead of two (a gateway that picked another method
// would have to refuse, since it was offered none). With credentials
// the greeting offers both methods, as client.Dialer does, and the
// request follows the password in one write: two round trips.
//
// ctx bounds the exchange through c's deadlines, which are cleared
// again on success. A refusal is a *client.ReplyError; refused
// credentials wrap client.ErrAuth.
func socks5Request(ctx context.Context, c net.Conn, user, pass string, cmd proto.Command, target proto.Addr) (proto.Reply, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	rep, err := socks5Exchange(c, user, pass, cmd, target)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err() // the deadline that ended it was ctx's
		}
		return rep, err
	}
	c.SetDeadline(time.Time{})
	return rep, nil
}

var errSOCKS5Malformed = errors.New("socksify: malformed answer from the gateway")

func socks5Exchange(c net.Conn, user, pass string, cmd proto.Command, target proto.Addr) (proto.Reply, error) {
	req, err := proto.Request{Command: cmd, Addr: target}.AppendBinary(nil)
	if err != nil {
		return proto.Reply{}, err
	}
	var sel [2]byte
	if user == "" {
		b := append([]byte{proto.Version5, 1, byte(proto.MethodNoAuth)}, req...)
		if _, err := c.Write(b); err != nil {
			return proto.Reply{}, fmt.Errorf("socksify: writing the request: %w", err)
		}
		if _, err := io.ReadFull(c, sel[:]); err != nil {
			return proto.Reply{}, gatewayReadErr(err)
		}
		switch {
		case sel[0] != proto.Version5:
			return proto.Reply{}, fmt.Errorf("%w: version %d", errSOCKS5Malformed, sel[0])
		case sel[1] == byte(proto.MethodNoAcceptable):
			return proto.Reply{}, fmt.Errorf("%w: the gateway wants authentication (give a user)", client.ErrAuth)
		case sel[1] != byte(proto.MethodNoAuth):
			return proto.Reply{}, fmt.Errorf("%w: method %#02x, which was not offered", errSOCKS5Malformed, sel[1])
		}
	} else {
		g := []byte{proto.Version5, 2, byte(proto.MethodNoAuth), byte(proto.MethodUserPass)}
		if _, err := c.Write(g); err != nil {
			return proto.Reply{}, fmt.Errorf("socksify: writing the greeting: %w", err)
		}
		if _, err := io.ReadFull(c, sel[:]); err != nil {
			return proto.Reply{}, gatewayReadErr(err)
		}
		if sel[0] != proto.Version5 {
			return proto.Reply{}, fmt.Errorf("%w: version %d", errSOCKS5Malformed, sel[0])
		}
		switch proto.Method(sel[1]) {
		case proto.MethodNoAuth:
			if _, err := c.Write(req); err != nil {
				return proto.Reply{}, fmt.Errorf("socksify: writing the request: %w", err)
			}
		case proto.MethodUserPass:
			up, err := proto.UserPassRequest{Username: user, Password: pass}.AppendBinary(nil)
			if err != nil {
				return proto.Reply{}, err
			}
			if _, err := c.Write(append(up, req...)); err != nil {
				return proto.Reply{}, fmt.Errorf("socksify: writing the credentials: %w", err)
			}
			r, err := proto.ReadUserPassReply(c)
			if err != nil {
				return proto.Reply{}, gatewayReadErr(err)
			}
			if r.Status != proto.UserPassSuccess {
				return proto.Reply{}, fmt.Errorf("%w: the gateway refused user %q (status %#02x)", client.ErrAuth, user, r.Status)
			}
		case proto.MethodNoAcceptable:
			return proto.Reply{}, fmt.Errorf("%w: the gateway accepts none of the offered methods", client.ErrAuth)
		default:
			return proto.Reply{}, fmt.Errorf("%w: method %#02x, which was not offered", errSOCKS5Malformed, sel[1])
		}
	}
	rep, err := proto.ReadReply(c)
	if err != nil {
		return rep, gatewayReadErr(err)
	}
	if rep.Code != proto.ReplySucceeded {
		return rep, &client.ReplyError{Command: cmd, Target: target.String(), Code: rep.Code}
	}
	return rep, nil
}

// gatewayReadErr names a read error: the gateway closing the connection
// before it answered is io.ErrUnexpectedEOF.
func gatewayReadErr(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("socksify: reading the gateway's answer: %w", err)
}
