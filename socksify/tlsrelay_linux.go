//go:build linux && amd64

package socksify

// A gateway reached over TLS (a socks6s:// gateway) cannot take the
// program's own socket as its connection, the way the in-band CONNECT
// does: the bytes on it would have to be TLS records, which the program
// does not write. So a TLS gateway's connections end in the supervisor:
// the client library dials the gateway over TLS and runs the handshake
// and CONNECT; the program's socket is connected to a loopback listener
// the supervisor opens for just that connection, and a relay copies
// between the two. Taken callers of published listeners are installed in
// the program the same way, as the far end of a loopback connection.
// This costs a copy through the supervisor, which TLS needs anyway.

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// loopbackFor returns the loopback address a socket of the domain and
// v6only setting can connect to, and the network to listen on for it.
func loopbackFor(domain int, v6only bool) (network string, ip netip.Addr) {
	if domain == unix.AF_INET6 && v6only {
		return "tcp6", netip.IPv6Loopback()
	}
	return "tcp4", netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// connectLocal connects the socket fd (of domain; nonblock as its file
// description says) to a loopback listener opened for it alone, and
// returns the supervisor's end of that connection. Only a connection
// from fd's own local address is accepted: another local process that
// raced to the listener's port gets closed.
func connectLocal(ctx context.Context, fd, domain int, v6only, nonblock bool) (net.Conn, error) {
	network, ip := loopbackFor(domain, v6only)
	ln, err := net.ListenTCP(network, net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	at := ln.Addr().(*net.TCPAddr).AddrPort()
	if domain == unix.AF_INET6 && at.Addr().Is4() {
		at = netip.AddrPortFrom(netip.AddrFrom16(at.Addr().As16()), at.Port())
	}
	raw, err := appendSockaddr(nil, domain, at)
	if err != nil {
		return nil, err
	}
	if err := connectCtx(ctx, fd, raw, nonblock); err != nil {
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	from := unmapAP(sockaddrAP(sa))
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(5 * time.Second)
	}
	ln.SetDeadline(dl)
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			return nil, err
		}
		if unmapAP(c.RemoteAddr().(*net.TCPAddr).AddrPort()) == from {
			return c, nil
		}
		c.Close()
	}
}

// localPair makes a loopback TCP connection and returns a descriptor of
// one end, for the program, and the other end, for the supervisor.
func localPair(ctx context.Context) (int, net.Conn, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	c, err := connectLocal(ctx, s, unix.AF_INET, false, false)
	if err != nil {
		unix.Close(s)
		return -1, nil, err
	}
	return s, c, nil
}

var errUDPOverTLS = errors.New("socksify: over TLS, UDP needs the gateway's UDP in the stream (the SOCKS6 extensions); classic UDP ASSOCIATE would send the datagrams in the clear")
