package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// External addresses of associations and listeners (PUBLIC_ADDR).
//
// Without configured public addresses, the address a peer on the
// Internet sees is, at best, the one the host sends from toward it: the
// kernel's choice of source on the route to the Internet. The address
// the client reached the gateway at is not it when the client is on the
// LAN side of the gateway (192.168.1.1, where peers see the WAN
// address) or on the same host (127.0.0.1). A gateway behind another
// NAT still needs public_addresses.

// sourceProbes stand for "the Internet" in a route lookup, one per
// family: well-known global unicast addresses (public DNS anycast),
// which no lab or bogon filter routes specially, unlike the
// documentation ranges. Connecting a UDP socket to them sends nothing.
var sourceProbes = [2]netip.AddrPort{
	netip.MustParseAddrPort("1.1.1.1:53"),
	netip.MustParseAddrPort("[2606:4700:4700::1111]:53"),
}

// sourcesFor is how long a probe's answer is reused: routes change
// rarely, and an association then costs no probe.
const sourcesFor = 30 * time.Second

// A sourceCache keeps the host's source address toward the Internet per
// family (0: IPv4, 1: IPv6), each with when it was probed.
type sourceCache struct {
	mu    sync.Mutex
	at    [2]time.Time
	addrs [2]netip.Addr // invalid: no usable route
}

// defaultSources returns the host's source addresses toward the Internet
// (IPv4, IPv6) for the families asked for, each invalid if the family
// has no usable one. A stale family is probed again outside the lock
// (several callers may probe at once); an answer is kept only if the
// probe could be made, since a failure to make a socket says nothing
// about the routes: the previous answer, if any, stands meanwhile.
func (s *Server) defaultSources(v4, v6 bool) [2]netip.Addr {
	c := &s.sources
	want := [2]bool{v4, v6}
	c.mu.Lock()
	addrs := c.addrs
	var stale [2]bool
	for i := range want {
		stale[i] = want[i] && (c.at[i].IsZero() || time.Since(c.at[i]) > sourcesFor)
	}
	c.mu.Unlock()
	if !stale[0] && !stale[1] {
		return addrs
	}
	ctx, cancel := context.WithTimeout(s.baseCtx, s.handshakeTimeout())
	defer cancel()
	for i, dst := range sourceProbes {
		if !stale[i] {
			continue
		}
		src, err := s.probeSource(ctx, dst)
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.addrs[i], c.at[i] = src, time.Now()
		c.mu.Unlock()
		addrs[i] = src
	}
	return addrs
}

// errNoSocket is a probe that could not make its socket.
var errNoSocket = errors.New("no probe socket")

// probeSource returns the source address the kernel picks for dst, from
// a UDP socket opened as the gateway's outside sockets are (ListenUDP)
// and connected to dst with a raw connect, which sends nothing. No
// route, or a source no peer elsewhere could use (loopback,
// link-local), is the invalid address and no error; an error means the
// probe could not be made.
func (s *Server) probeSource(ctx context.Context, dst netip.AddrPort) (netip.Addr, error) {
	network := "udp4"
	if dst.Addr().Is6() {
		network = "udp6"
	}
	conn, err := s.listenUDP(ctx, network)
	if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL) {
		return netip.Addr{}, nil // no such family on this host: a final answer
	}
	if err != nil {
		return netip.Addr{}, errNoSocket
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return netip.Addr{}, errNoSocket
	}
	var src netip.Addr
	rc.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if dst.Addr().Is4() {
			sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
		} else {
			preferPublicSource(fd) // as the associations' sockets
			sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: dst.Addr().As16()}
		}
		if unix.Connect(int(fd), sa) != nil {
			return // no route in this family
		}
		switch la, _ := unix.Getsockname(int(fd)); la := la.(type) {
		case *unix.SockaddrInet4:
			src = netip.AddrFrom4(la.Addr)
		case *unix.SockaddrInet6:
			src = netip.AddrFrom16(la.Addr)
		}
	})
	if !usableSource(src) {
		return netip.Addr{}, nil
	}
	return src, nil
}

// usableSource reports whether a peer elsewhere could reach a at all:
// not unspecified, loopback, link-local (no zone travels) or multicast.
func usableSource(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsMulticast()
}

// listenUDP opens one of the gateway's UDP sockets toward the outside
// through the ListenUDP hook, or with net.ListenUDP.
func (s *Server) listenUDP(ctx context.Context, network string) (*net.UDPConn, error) {
	if s.ListenUDP != nil {
		return s.ListenUDP(ctx, network)
	}
	return net.ListenUDP(network, nil)
}

// externalAddrs returns the external addresses of a socket bound to the
// unspecified address with port, for the families v4 and v6 it serves:
// in each, the configured public addresses of the family; without them,
// the host's source toward the Internet in that family; without one,
// the address the client reached the gateway at, if it is of that
// family. The client's own family comes first.
func (ss *session) externalAddrs(port uint16, v4, v6 bool) []netip.AddrPort {
	local := addrPortOf(ss.c.LocalAddr()).Addr().Unmap()
	var srcs [2]netip.Addr
	probed := false
	fams := []bool{true, false} // IPv4, IPv6
	if local.Is6() {
		fams = []bool{false, true}
	}
	var out []netip.AddrPort
	for _, is4 := range fams {
		if (is4 && !v4) || (!is4 && !v6) {
			continue
		}
		n := len(out)
		for _, a := range ss.st.Listen.PublicAddrs {
			if a.Is4() == is4 {
				out = append(out, netip.AddrPortFrom(a, port))
			}
		}
		if len(out) > n {
			continue
		}
		if !probed {
			srcs, probed = ss.s.defaultSources(v4, v6), true
		}
		src := srcs[1]
		if is4 {
			src = srcs[0]
		}
		switch {
		case src.IsValid():
			out = append(out, netip.AddrPortFrom(src, port))
		case local.IsValid() && !local.IsUnspecified() && local.Is4() == is4:
			out = append(out, netip.AddrPortFrom(local, port))
		}
	}
	return out
}

// boundFamilies returns the families a UDP socket bound to the
// unspecified address serves, and false if it is bound to a specific
// address.
func boundFamilies(c *net.UDPConn) (v4, v6, unspecified bool) {
	la := addrPortOf(c.LocalAddr()).Addr()
	if !la.Unmap().IsUnspecified() {
		return la.Unmap().Is4(), la.Is6() && !la.Is4In6(), false
	}
	if la.Unmap().Is4() { // 0.0.0.0, or ::ffff:0.0.0.0
		return true, false, true
	}
	v6only := true
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil {
				v6only = v != 0
			}
		})
	}
	return !v6only, true, true
}
