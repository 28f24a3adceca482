package client

import (
	"errors"
	"net"
	"net/netip"

	"github.com/socks6/socks6/proto"
)

// A Conn is a connection through the gateway, as DialContext and
// Listener.Accept return it. After the handshake it carries the stream's
// bytes unchanged, so reads, writes, deadlines and Close go straight to
// the embedded connection to the gateway (a *net.TCPConn unless ProxyDial
// returned something else). LocalAddr is this end of that connection.
// RemoteAddr is the gateway's end for a dialled Conn, and the caller's
// address, as the gateway saw it, for one a Listener accepted. BoundAddr
// and Connected describe the gateway's connection to the target.
type Conn struct {
	net.Conn

	bound        proto.Addr
	connected    netip.AddrPort
	hasConnected bool
	ext          bool
	remote       net.Addr // the caller of a taken Conn; nil otherwise
}

// RemoteAddr returns the caller's address (a *net.TCPAddr) for a Conn
// that a Listener accepted, and the gateway's address otherwise.
func (c *Conn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// BoundAddr returns the gateway's address for its connection to the
// target: BND.ADDR and BND.PORT of the RFC 1928 reply, or the Address of
// the REPLY frame (for a Conn a Listener accepted, the REPLY to TAKE,
// which carries the caller's address).
func (c *Conn) BoundAddr() proto.Addr { return c.bound }

// Connected returns the address and port the gateway connected to, from
// the REPLY's CONNECTED option. ok is false in plain SOCKS5 and when the
// gateway sent no such option.
func (c *Conn) Connected() (ap netip.AddrPort, ok bool) { return c.connected, c.hasConnected }

// Extended reports whether the extensions were negotiated on this
// connection (the gateway selected method 0xC6).
func (c *Conn) Extended() bool { return c.ext }

// CloseWrite shuts down the writing side of the connection, so that the
// target reads EOF while the reverse direction keeps flowing. It needs a
// connection to the gateway that can half-close, such as *net.TCPConn.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return &net.OpError{Op: "close", Net: "tcp", Source: c.LocalAddr(), Addr: c.Conn.RemoteAddr(), Err: errors.ErrUnsupported}
}
