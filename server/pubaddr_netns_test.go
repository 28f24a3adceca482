package server_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// TestNetNSStreamUDPPublicAddr checks that an association's PUBLIC_ADDR
// is where a peer on the far side reaches it, when the client reached
// the gateway at another address (here loopback, as a LAN client reaches
// a router at its LAN address):
//
//	client ─loopback─ gateway │ associations in gw (198.51.100.1,
//	                          │ 2001:db8:5::1) ──veth── peer (…2, …::2),
//	                          │ which is gw's default route
//
// The association sockets live in gw through the ListenUDP hook.
func TestNetNSStreamUDPPublicAddr(t *testing.T) {
	gwNS := socks6test.NewNetNS(t)
	peerNS := socks6test.NewNetNS(t)
	socks6test.Veth(t, gwNS, "v0", peerNS, "v1")
	gwNS.IP(t, "addr", "add", "198.51.100.1/24", "dev", "v0")
	gwNS.IP(t, "-6", "addr", "add", "2001:db8:5::1/64", "dev", "v0", "nodad")
	gwNS.IP(t, "route", "add", "default", "via", "198.51.100.2")
	gwNS.IP(t, "-6", "route", "add", "default", "via", "2001:db8:5::2")
	peerNS.IP(t, "addr", "add", "198.51.100.2/24", "dev", "v1")
	peerNS.IP(t, "-6", "addr", "add", "2001:db8:5::2/64", "dev", "v1", "nodad")

	s := &server.Server{HandshakeTimeout: e2eWait, Logger: socks6test.Logger(t), ListenUDP: gwNS.ListenUDP}
	gw := startGateway(t, s)
	d := &client.Dialer{ProxyAddress: gw, Extensions: client.ExtRequire}
	listenPacket := func(t *testing.T) *client.PacketConn {
		ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
		defer cancel()
		pc, err := d.ListenPacket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}

	// A peer in peerNS, on each family.
	peer := func(addr string) *net.UDPConn {
		var c *net.UDPConn
		var lerr error
		if err := peerNS.Do(func() { c, lerr = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))) }); err != nil || lerr != nil {
			t.Fatalf("peer socket on %s: %v %v", addr, err, lerr)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	peers := []*net.UDPConn{peer("198.51.100.2:0"), peer("[2001:db8:5::2]:0")}

	t.Run("host_source", func(t *testing.T) {
		pc := listenPacket(t)
		pubs := pc.PublicAddrs()
		if len(pubs) != 2 || pubs[0].Addr() != netip.MustParseAddr("198.51.100.1") || pubs[1].Addr() != netip.MustParseAddr("2001:db8:5::1") ||
			pubs[0].Port() == 0 || pubs[1].Port() != pubs[0].Port() {
			t.Fatalf("PUBLIC_ADDR %v, want 198.51.100.1 and 2001:db8:5::1 (gw's sources on its default routes) with the association's port, not the loopback address the client reached", pubs)
		}
		// Each peer sees the association's datagrams come from the
		// address PUBLIC_ADDR gave, and reaches it there.
		for i, p := range peers {
			paddr := p.LocalAddr().(*net.UDPAddr)
			if _, err := pc.WriteTo([]byte("hello"), paddr); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			p.SetReadDeadline(time.Now().Add(e2eWait))
			n, from, err := p.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("peer %v: %q, %v", paddr, buf[:n], err)
			}
			if from.Addr().Unmap() != pubs[i].Addr() || from.Port() != pubs[i].Port() {
				t.Fatalf("peer %v got the datagram from %v, but PUBLIC_ADDR said %v", paddr, from, pubs[i])
			}
			if _, err := p.WriteToUDPAddrPort([]byte("reply"), pubs[i]); err != nil {
				t.Fatal(err)
			}
			pc.SetReadDeadline(time.Now().Add(e2eWait))
			n, src, err := pc.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "reply" || src.String() != paddr.String() {
				t.Fatalf("client got %q from %v (%v), want reply from %v", buf[:n], src, err, paddr)
			}
		}
	})

	// UDP ASSOCIATE's socket toward the outside comes from the same
	// hook: the peer sees the datagram from gw's address.
	t.Run("classic_associate", func(t *testing.T) {
		pc := e2eListenUDP(t, "127.0.0.1")
		ctl, relay := e2eUDPAssociate(t, gw, pc.LocalAddr().String())
		defer ctl.Close()
		u := &e2eUDPClient{t: t, pc: pc, relay: relay}
		p := peers[0]
		paddr := p.LocalAddr().(*net.UDPAddr).AddrPort()
		u.send(proto.AddrFromAddrPort(paddr), 0, "classic")
		buf := make([]byte, 100)
		p.SetReadDeadline(time.Now().Add(e2eWait))
		n, from, err := p.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "classic" {
			t.Fatalf("peer: %q, %v", buf[:n], err)
		}
		if from.Addr().Unmap() != netip.MustParseAddr("198.51.100.1") {
			t.Fatalf("the peer got UDP ASSOCIATE's datagram from %v, want gw's 198.51.100.1 (the ListenUDP hook's socket)", from)
		}
		if _, err := p.WriteToUDPAddrPort([]byte("back"), from); err != nil {
			t.Fatal(err)
		}
		u.expect(paddr, "back")
	})

	// Configured public addresses replace the host's source in their
	// family only.
	t.Run("configured_ipv4", func(t *testing.T) {
		s.Reload(server.Settings{Listen: server.ListenSettings{PublicAddrs: []netip.Addr{netip.MustParseAddr("203.0.113.9")}}})
		defer s.Reload(server.Settings{})
		pc := listenPacket(t)
		var got []netip.Addr
		for _, p := range pc.PublicAddrs() {
			got = append(got, p.Addr())
		}
		if want := []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8:5::1")}; !slices.Equal(got, want) {
			t.Fatalf("PUBLIC_ADDR %v, want %v", pc.PublicAddrs(), want)
		}
	})
}

// TestNetNSPublicAddrFallbacks: where the gateway's outside has no usable
// route toward the Internet in a family, PUBLIC_ADDR falls back to the
// address the client reached, in that family only; a link-local source
// is no usable route. A LISTEN socket on the unspecified address gets
// the host's source like an association.
func TestNetNSPublicAddrFallbacks(t *testing.T) {
	// IPv4: no default route. IPv6: a default route whose only source is
	// link-local.
	bareNS := socks6test.NewNetNS(t)
	otherNS := socks6test.NewNetNS(t)
	socks6test.Veth(t, bareNS, "v0", otherNS, "v1")
	bareNS.IP(t, "-6", "addr", "add", "fe80::5/64", "dev", "v0", "nodad")
	bareNS.IP(t, "-6", "route", "add", "default", "via", "fe80::6", "dev", "v0")
	// A host with default routes, for the LISTEN case.
	gwNS := socks6test.NewNetNS(t)
	peerNS := socks6test.NewNetNS(t)
	socks6test.Veth(t, gwNS, "v0", peerNS, "v1")
	gwNS.IP(t, "addr", "add", "198.51.100.1/24", "dev", "v0")
	gwNS.IP(t, "route", "add", "default", "via", "198.51.100.2")

	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("no_route", func(t *testing.T) {
		s := &server.Server{HandshakeTimeout: e2eWait, Logger: socks6test.Logger(t), ListenUDP: bareNS.ListenUDP}
		gw := startGateway(t, s)
		pc, err := (&client.Dialer{ProxyAddress: gw, Extensions: client.ExtRequire}).ListenPacket(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		pubs := pc.PublicAddrs()
		if len(pubs) != 1 || pubs[0].Addr() != netip.MustParseAddr("127.0.0.1") || pubs[0].Port() == 0 {
			t.Fatalf("PUBLIC_ADDR %v, want only 127.0.0.1 (the address the client reached) with the association's port: no IPv4 route, and IPv6 only link-local", pubs)
		}
	})

	t.Run("listen_unspecified", func(t *testing.T) {
		s := &server.Server{HandshakeTimeout: e2eWait, Logger: socks6test.Logger(t), ListenUDP: gwNS.ListenUDP, ListenTCP: gwNS.ListenTCP}
		gw := startGateway(t, s)
		ln, err := (&client.Dialer{ProxyAddress: gw, Extensions: client.ExtRequire}).Listen(ctx(t), "tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		if pubs := ln.PublicAddrs(); !slices.Equal(pubs, []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), uint16(port))}) {
			t.Fatalf("LISTEN's PUBLIC_ADDR %v, want 198.51.100.1:%d (gw's source on its default route)", pubs, port)
		}
	})
}
