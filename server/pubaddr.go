package server

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// External addresses of associations and listeners (PUBLIC_ADDR).
//
// Without configured public addresses, the address a peer on the
// Internet sees is the one the host sends from toward it: the kernel's
// choice of source on the default route. The address the client
// reached the gateway at is not it when the client is on the LAN side
// of a router (192.168.1.1, where peers see the WAN address) or on the
// same host (127.0.0.1).

// sourceProbes are destinations whose route gives the host's source
// address toward the Internet, one per family: documentation addresses
// (RFC 5737, RFC 3849), which follow the default route as any global
// address does. Connecting a UDP socket to them sends nothing.
var sourceProbes = [2]netip.AddrPort{
	netip.MustParseAddrPort("192.0.2.1:9"),
	netip.MustParseAddrPort("[2001:db8::1]:9"),
}

// sourcesFor is how long a probe's result is reused: routes change
// rarely, and an association costs no probe then.
const sourcesFor = 30 * time.Second

type sourceCache struct {
	mu    sync.Mutex
	at    time.Time
	addrs [2]netip.Addr // IPv4, IPv6; invalid: no route
}

// defaultSources returns the host's source addresses toward the Internet
// (IPv4, IPv6), each invalid if the family has no route there.
func (s *Server) defaultSources(ctx context.Context) [2]netip.Addr {
	c := &s.sources
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); c.at.IsZero() || now.Sub(c.at) > sourcesFor {
		for i, dst := range sourceProbes {
			c.addrs[i] = s.probeSource(ctx, dst)
		}
		c.at = now
	}
	return c.addrs
}

// probeSource returns the source address the kernel picks for dst, from
// a UDP socket opened as the associations' are (the ListenUDP hook)
// and connected to dst with a raw connect, which sends nothing.
func (s *Server) probeSource(ctx context.Context, dst netip.AddrPort) netip.Addr {
	network := "udp4"
	if dst.Addr().Is6() {
		network = "udp6"
	}
	conn, err := s.listenUDP(ctx, network)
	if err != nil {
		return netip.Addr{}
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return netip.Addr{}
	}
	var src netip.Addr
	rc.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if dst.Addr().Is4() {
			sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
		} else {
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
	if !src.IsValid() || src.IsUnspecified() {
		return netip.Addr{}
	}
	return src
}

// listenUDP opens a UDP socket of an association in the stream through
// the ListenUDP hook, or with net.ListenUDP.
func (s *Server) listenUDP(ctx context.Context, network string) (*net.UDPConn, error) {
	if s.ListenUDP != nil {
		return s.ListenUDP(ctx, network)
	}
	return net.ListenUDP(network, nil)
}

// externalAddrs returns the external addresses of a socket bound to the
// unspecified address with port, one or more per family in fams (the
// families the socket serves): the configured public addresses of the
// family, or else the host's source toward the Internet in that family,
// or else the address the client reached the gateway at if it is of
// that family. The client's own family comes first.
func (ss *session) externalAddrs(port uint16, v4, v6 bool) []netip.AddrPort {
	local := addrPortOf(ss.c.LocalAddr()).Addr().Unmap()
	srcs := ss.s.defaultSources(ss.s.baseCtx)
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
