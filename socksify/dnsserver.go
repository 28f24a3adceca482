package socksify

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// A dnsServer is the supervisor's fake DNS server: UDP and TCP sockets on
// 127.0.0.1 and, when the host has it, ::1. Queries the program sends to
// port 53 are redirected here (the program's own socket is connected or
// sends to it) and answered by answerDNS.
type dnsServer struct {
	fake *fakeTable
	log  *slog.Logger
	// onFake, if not nil, is called with the name of each query answered
	// with a fake address, before the answer is sent. It must not block.
	onFake func(name string)

	udp4, udp6 *net.UDPConn // served by goroutines; nil with udpByCaller
	loop       []loopUDP    // with udpByCaller: the UDP sockets, IPv4 first
	tcp4, tcp6 *net.TCPListener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// DNS-over-TCP limits: connections at once, and how long one may sit
// idle between queries.
const (
	maxDNSConns   = 64
	dnsIdleTimout = 10 * time.Second
)

// startDNSServer opens the server's sockets and serves them until close.
// IPv6 is optional: without ::1, AF_INET6 sockets are redirected to the
// IPv4-mapped 127.0.0.1. With udpByCaller, the UDP sockets are left to
// the caller, which serves them with serveUDPOnce (the supervisor's
// notification loop does, on its own thread: a query is then answered
// without waking a goroutine).
func startDNSServer(fake *fakeTable, log *slog.Logger, udpByCaller bool) (*dnsServer, error) {
	d := &dnsServer{fake: fake, log: log, conns: map[net.Conn]struct{}{}}
	var err error
	if udpByCaller {
		// Sockets of their own, outside Go's netpoller: registered there,
		// every query's arrival would wake an idle thread of the runtime
		// for nothing (the loop reads them).
		u4, err := listenLoopUDP(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
		if err != nil {
			return nil, err
		}
		d.loop = append(d.loop, u4)
		if u6, err := listenLoopUDP(netip.IPv6Loopback()); err == nil {
			d.loop = append(d.loop, u6)
		}
	} else {
		if d.udp4, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			return nil, err
		}
		d.udp6, _ = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	}
	if d.tcp4, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		d.close()
		return nil, err
	}
	if u6, ok := d.udpAddr(true); ok {
		// The same port as the UDP server if it is free; any otherwise.
		if t6, err := net.ListenTCP("tcp6", &net.TCPAddr{IP: net.IPv6loopback, Port: int(u6.Port())}); err == nil {
			d.tcp6 = t6
		} else if t6, err := net.ListenTCP("tcp6", &net.TCPAddr{IP: net.IPv6loopback}); err == nil {
			d.tcp6 = t6
		}
	}
	if d.tcp6 == nil { // no IPv6 server at all: AF_INET6 sockets get 127.0.0.1
		if d.udp6 != nil {
			d.udp6.Close()
			d.udp6 = nil
		}
		if len(d.loop) > 1 {
			d.loop[1].close()
			d.loop = d.loop[:1]
		}
	}
	for _, pc := range []*net.UDPConn{d.udp4, d.udp6} {
		if pc != nil {
			d.wg.Add(1)
			go d.serveUDP(pc)
		}
	}
	for _, ln := range []*net.TCPListener{d.tcp4, d.tcp6} {
		if ln != nil {
			d.wg.Add(1)
			go d.serveTCP(ln)
		}
	}
	return d, nil
}

// udpAddr returns the address of the IPv6 (v6) or IPv4 UDP server, if
// there is one.
func (d *dnsServer) udpAddr(v6 bool) (netip.AddrPort, bool) {
	pc := d.udp4
	if v6 {
		pc = d.udp6
	}
	if pc != nil {
		return pc.LocalAddr().(*net.UDPAddr).AddrPort(), true
	}
	for _, u := range d.loop {
		if u.addr.Addr().Is6() == v6 {
			return u.addr, true
		}
	}
	return netip.AddrPort{}, false
}

// addr returns where to redirect a query from a socket of the given
// family (v6 for AF_INET6) and kind: ::1 when there is an IPv6 server,
// else 127.0.0.1, which an AF_INET6 socket reaches IPv4-mapped unless it
// is IPV6_V6ONLY (ok is then false).
func (d *dnsServer) addr(stream, v6, v6only bool) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	if u6, ok := d.udpAddr(true); v6 && !stream && ok {
		ap = u6
	} else {
		switch {
		case v6 && stream && d.tcp6 != nil:
			ap = d.tcp6.Addr().(*net.TCPAddr).AddrPort()
		case v6 && v6only:
			return netip.AddrPort{}, false
		case stream:
			ap = d.tcp4.Addr().(*net.TCPAddr).AddrPort()
		default:
			ap, _ = d.udpAddr(false)
		}
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if v6 && ap.Addr().Is4() {
		ap = netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	return ap, true
}

// isServer reports whether ap is one of the server's UDP addresses: the
// source of an answer whose real sender the program must not see.
func (d *dnsServer) isServer(ap netip.AddrPort) bool {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	for _, v6 := range []bool{false, true} {
		if a, ok := d.udpAddr(v6); ok && a == ap {
			return true
		}
	}
	return false
}

func (d *dnsServer) serveUDP(pc *net.UDPConn) {
	defer d.wg.Done()
	serveDNSPacket(pc, func(m []byte) ([]byte, bool) {
		resp, q, ok := answerDNS(m, d.fake)
		d.answered("udp", q, ok)
		return resp, ok
	})
}

// serveDNSPacket answers the queries that come to pc with answer until pc
// is closed.
func serveDNSPacket(pc net.PacketConn, answer func(msg []byte) ([]byte, bool)) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp, ok := answer(buf[:n]); ok {
			pc.WriteTo(resp, from)
		}
	}
}

func (d *dnsServer) serveTCP(ln *net.TCPListener) {
	defer d.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		d.mu.Lock()
		if len(d.conns) >= maxDNSConns {
			d.mu.Unlock()
			c.Close()
			continue
		}
		d.conns[c] = struct{}{}
		d.wg.Add(1)
		d.mu.Unlock()
		go d.serveTCPConn(c)
	}
}

// serveTCPConn answers length-prefixed queries (RFC 1035, section 4.2.2)
// until EOF or dnsIdleTimout.
func (d *dnsServer) serveTCPConn(c net.Conn) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
		c.Close()
	}()
	serveDNSStream(c, func(m []byte) ([]byte, bool) {
		resp, q, ok := answerDNS(m, d.fake)
		d.answered("tcp", q, ok)
		return resp, ok
	})
}

// serveDNSStream answers length-prefixed queries (RFC 1035, section
// 4.2.2) on c with answer until EOF, dnsIdleTimout without a query, or a
// message that gets no answer. It does not close c.
func serveDNSStream(c net.Conn, answer func(msg []byte) ([]byte, bool)) {
	buf := make([]byte, 2+65535)
	for {
		c.SetDeadline(time.Now().Add(dnsIdleTimout))
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(buf))
		if _, err := io.ReadFull(c, buf[2:2+n]); err != nil {
			return
		}
		resp, ok := answer(buf[2 : 2+n])
		if !ok {
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// answered logs a query and reports a fake answer to onFake; call it
// before sending the answer.
func (d *dnsServer) answered(network string, q dnsQuery, ok bool) {
	if !ok {
		d.log.Debug("dns: message ignored", "net", network)
		return
	}
	if q.fake && d.onFake != nil {
		d.onFake(q.name)
	}
	d.log.Debug("dns query", "net", network, "name", q.name, "type", q.qtype, "fake", q.fake)
}

// close stops the server and waits for its goroutines.
func (d *dnsServer) close() {
	for _, pc := range []*net.UDPConn{d.udp4, d.udp6} {
		if pc != nil {
			pc.Close()
		}
	}
	for _, u := range d.loop {
		u.close()
	}
	for _, ln := range []*net.TCPListener{d.tcp4, d.tcp6} {
		if ln != nil {
			ln.Close()
		}
	}
	d.mu.Lock()
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}
