package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/socksify"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const (
	nicID = 1
	// maxPendingSYN bounds the connections waiting for the gateway at
	// once; more SYNs are dropped (the program retransmits).
	maxPendingSYN = 1024
	// dialTimeout bounds one CONNECT when the Dialer has no Timeout.
	dialTimeout = 30 * time.Second
	// udpIdle ends a UDP flow (and its association) after this long
	// without a datagram either way; DNS flows end sooner.
	udpIdle = time.Minute
	dnsIdle = 10 * time.Second
)

// A netstack serves the TUN device: the program's TCP connections and UDP
// flows end here and go on through the gateway.
type netstack struct {
	cfg  Config
	fake *socksify.FakeDNS
	st   *stack.Stack
	tun  int
	ctx  context.Context
	stop context.CancelFunc
	open closers // connections and flows to close on teardown
	wg   sync.WaitGroup
	own  *owners // nil unless cfg.OnConnect is set
	fwd  *tcp.Forwarder
	syns synTable
	// noStream is set once the gateway has refused UDP in the stream
	// (a plain SOCKS5 gateway): flows then use UDP ASSOCIATE.
	noStream atomic.Bool

	// Handlers run on goroutines of the stack's; they count in wg from
	// enter on, so that close waits for them (and for what they start)
	// before it closes the TUN device they may write to.
	mu      sync.Mutex
	closing bool
}

// enter counts a handler in n.wg, unless n is closing.
func (n *netstack) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return false
	}
	n.wg.Add(1)
	return true
}

// handleSegment sees the TCP segments that no connection of the stack's
// took: it notes a SYN's sequence number (for an ICMP answer, see
// icmp_linux.go) and hands it to the forwarder.
func (n *netstack) handleSegment(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
	if h := header.TCP(pkt.TransportHeader().Slice()); len(h) >= header.TCPMinimumSize &&
		h.Flags()&(header.TCPFlagSyn|header.TCPFlagAck) == header.TCPFlagSyn {
		n.syns.note(synKey{src: toAddrPort(id.RemoteAddress, id.RemotePort), dst: toAddrPort(id.LocalAddress, id.LocalPort)}, h.SequenceNumber())
	}
	return n.fwd.HandlePacket(id, pkt)
}

func newNetstack(tun int, cfg Config, fake *socksify.FakeDNS, own *owners) (*netstack, error) {
	st := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	// Room for a fast gateway: the stack's default buffers are small.
	sack := tcpip.TCPSACKEnabled(true)
	st.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	st.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv)
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	st.SetTransportProtocolOption(tcp.ProtocolNumber, &snd)

	link, err := fdbased.New(&fdbased.Options{FDs: []int{tun}, MTU: uint32(cfg.MTU), RXChecksumOffload: true})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("the TUN link: %v", err)
	}
	if terr := st.CreateNIC(nicID, link); terr != nil {
		st.Close()
		return nil, fmt.Errorf("the stack's NIC: %v", terr)
	}
	// Every address is the stack's: it answers for whatever the program
	// connects to.
	st.SetPromiscuousMode(nicID, true)
	st.SetSpoofing(nicID, true)
	st.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	ctx, cancel := context.WithCancel(context.Background())
	n := &netstack{cfg: cfg, fake: fake, st: st, tun: tun, ctx: ctx, stop: cancel, own: own, open: closers{m: map[interface{ Close() error }]struct{}{}}}
	n.fwd = tcp.NewForwarder(st, 0, maxPendingSYN, n.handleTCP)
	st.SetTransportProtocolHandler(tcp.ProtocolNumber, n.handleSegment)
	st.SetTransportProtocolHandler(udp.ProtocolNumber, udp.NewForwarder(st, n.handleUDP).HandlePacket)
	return n, nil
}

// close ends every connection and flow and the stack, and closes the
// TUN device.
func (n *netstack) close() {
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	n.stop()
	n.open.closeAll()
	n.wg.Wait()
	n.st.Close()
	n.st.Wait()
	unix.Close(n.tun)
	if n.own != nil {
		n.own.close() // a lookup still running gets os.ErrClosed: no owner
	}
}

func toAddrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip.Unmap(), port)
}

// target returns what to ask the gateway for: the name behind a fake
// address, or the address.
func (n *netstack) target(dst netip.AddrPort) (proto.Addr, string, bool) {
	if socksify.IsFake(dst.Addr()) {
		name, ok := n.fake.Name(dst.Addr())
		if !ok {
			return proto.Addr{}, "", false
		}
		return proto.Addr{FQDN: name, Port: dst.Port()}, net.JoinHostPort(name, strconv.Itoa(int(dst.Port()))), true
	}
	return proto.AddrFromAddrPort(dst), dst.String(), true
}

// who starts looking up the process behind a connection or flow from
// src to dst and returns what fills the event with it, waiting for the
// lookup. Call it before the program's socket can go (a refused
// connection's reset).
func (n *netstack) who(network string, src, dst netip.AddrPort) func(*socksify.Event) {
	if n.own == nil {
		return func(*socksify.Event) {}
	}
	type owner struct {
		pid  int
		comm string
	}
	ch := make(chan owner, 1)
	go func() {
		pid, comm := n.own.find(network, src, dst)
		ch <- owner{pid, comm}
	}()
	var o owner
	got := false
	return func(ev *socksify.Event) { // called once or more, from one goroutine
		if !got {
			o, got = <-ch, true
		}
		ev.Pid, ev.Comm = o.pid, o.comm
	}
}

func (n *netstack) event(ev socksify.Event) {
	if n.cfg.OnConnect != nil {
		n.cfg.OnConnect(ev)
	}
}

var errStaleFake = errors.New("socksify isolate: no name owns this fake address")

// handleTCP runs in a goroutine of the forwarder's for each SYN: the
// connection is accepted only once the gateway has connected it.
func (n *netstack) handleTCP(r *tcp.ForwarderRequest) {
	if !n.enter() {
		r.Complete(true)
		return
	}
	defer n.wg.Done()
	id := r.ID()
	dst := toAddrPort(id.LocalAddress, id.LocalPort)
	k := synKey{src: toAddrPort(id.RemoteAddress, id.RemotePort), dst: dst}
	if dst.Port() == 53 {
		n.syns.forget(k)
		n.acceptDNS(r) // DNS over TCP, to any address: answered here
		return
	}
	start := time.Now()
	ev := socksify.Event{Network: "tcp", Dest: dst}
	fill := n.who("tcp", k.src, dst)
	_, target, ok := n.target(dst)
	if !ok {
		fill(&ev)
		ev.Err = errStaleFake
		ev.Errno = n.refuse(r, k, syscall.EHOSTUNREACH)
		n.event(ev)
		return
	}
	ev.Target = target
	timeout := n.cfg.Dialer.Timeout
	if timeout <= 0 {
		timeout = dialTimeout
	}
	ctx, cancel := context.WithTimeout(n.ctx, timeout)
	gc, err := n.cfg.Dialer.DialContext(ctx, "tcp", target)
	cancel()
	ev.Duration = time.Since(start)
	fill(&ev)
	if err != nil {
		ev.Err = err
		ev.Errno = n.refuse(r, k, socksify.ConnectErrno(err))
		n.event(ev)
		return
	}
	n.syns.forget(k)
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		gc.Close()
		ev.Err, ev.Errno = fmt.Errorf("socksify isolate: accepting the program's connection: %v", terr), syscall.ECONNRESET
		n.event(ev)
		return
	}
	r.Complete(false)
	n.event(ev)
	pc := gonet.NewTCPConn(&wq, ep)
	if !n.open.add(pc) {
		pc.Close()
		gc.Close()
		return
	}
	n.open.add(gc)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if hc, ok := gc.(halfCloser); ok {
			relay(pc, hc)
		} else {
			relay(pc, closeBoth{gc})
		}
		n.open.remove(pc)
		n.open.remove(gc)
		pc.Close()
		gc.Close()
	}()
}

// Holding SYNs (a gateway timeout): at most maxHeld at once, each for
// at most heldFor, longer than Linux's default SYN retries (127 s).
const (
	maxHeld = 64
	heldFor = 3 * time.Minute
)

// refuse answers the program's SYN r of connection k, which could not be
// made because of errno (what the seccomp mode would return), and
// returns the errno the program's connect gets: errno itself where an
// ICMP error carries it (icmp_linux.go), ETIMEDOUT by leaving the SYN
// unanswered, else ECONNREFUSED, by a reset.
func (n *netstack) refuse(r *tcp.ForwarderRequest, k synKey, errno syscall.Errno) syscall.Errno {
	if errno == syscall.ETIMEDOUT && n.hold(r, k) {
		return errno
	}
	v6 := k.dst.Addr().Is6()
	if typ, code, ok := icmpCode(v6, errno); ok {
		if isn, ok := n.syns.take(k); ok {
			if _, err := unix.Write(n.tun, unreachable(k, isn, typ, code)); err == nil {
				r.Complete(false) // no reset: the ICMP error answered
				if errno == syscall.EACCES && !v6 {
					return syscall.EHOSTUNREACH // what Linux makes of code 13
				}
				return errno
			}
		}
	}
	n.syns.forget(k)
	r.Complete(true)
	return syscall.ECONNREFUSED
}

// hold leaves the program's SYN r unanswered, as a host that does not
// answer would, until the program gives up (ETIMEDOUT) or heldFor has
// passed. While r is pending the stack ignores the SYN's
// retransmissions, so the gateway is not asked again (and a new SYN on
// the same four-tuple, from a program that reuses its source port, is
// ignored as well until then). It reports false when maxHeld SYNs are
// held already.
func (n *netstack) hold(r *tcp.ForwarderRequest, k synKey) bool {
	t := &n.syns
	t.mu.Lock()
	if t.hold >= maxHeld {
		t.mu.Unlock()
		return false
	}
	t.hold++
	t.mu.Unlock()
	n.wg.Add(1) // the caller, a handler, counts in wg: not zero here
	go func() {
		defer n.wg.Done()
		timer := time.NewTimer(heldFor)
		select {
		case <-timer.C:
		case <-n.ctx.Done():
		}
		timer.Stop()
		r.Complete(false)
		t.forget(k) // retransmissions noted it again meanwhile
		t.mu.Lock()
		t.hold--
		t.mu.Unlock()
	}()
	return true
}

type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// closeBoth stands in for a connection without half-close: the end of
// one direction ends both.
type closeBoth struct{ net.Conn }

func (c closeBoth) CloseWrite() error { return c.Close() }

// relay copies both ways until both directions are done, passing on each
// end of stream as a half-close.
func relay(a, b halfCloser) {
	done := make(chan struct{})
	go func() {
		io.Copy(b, a)
		b.CloseWrite()
		close(done)
	}()
	io.Copy(a, b)
	a.CloseWrite()
	<-done
}

// handleUDP runs on the stack's goroutine for the first datagram of each
// flow; the endpoint must be created here, before the next datagram.
func (n *netstack) handleUDP(r *udp.ForwarderRequest) bool {
	if !n.enter() {
		return true // closing: dropped
	}
	defer n.wg.Done()
	id := r.ID()
	dst := toAddrPort(id.LocalAddress, id.LocalPort)
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		n.cfg.Logger.Debug("socksify isolate: UDP endpoint", "dst", dst, "err", terr.String())
		return true
	}
	uc := gonet.NewUDPConn(&wq, ep)
	if !n.open.add(uc) {
		uc.Close()
		return true
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.open.remove(uc)
		defer uc.Close()
		if dst.Port() == 53 {
			n.serveDNSFlow(uc)
			return
		}
		n.relayUDP(uc, toAddrPort(id.RemoteAddress, id.RemotePort), dst)
	}()
	return true
}

// serveDNSFlow answers the queries of one flow to port 53.
func (n *netstack) serveDNSFlow(uc *gonet.UDPConn) {
	buf := make([]byte, 65535)
	for {
		uc.SetReadDeadline(time.Now().Add(dnsIdle))
		k, err := uc.Read(buf)
		if err != nil {
			return
		}
		if resp, _, ok := n.fake.Answer(buf[:k]); ok {
			uc.Write(resp)
		}
	}
}

// serveDNSPacket answers DNS on a UDP socket in the namespace until the
// returned function is called.
func (n *netstack) serveDNSPacket(pc net.PacketConn) func() {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.fake.ServePacket(pc)
	}()
	return func() { pc.Close() }
}

// serveDNSStream answers DNS over TCP (RFC 7766 framing) on a listener
// in the namespace until the returned function is called.
func (n *netstack) serveDNSStream(ln net.Listener) func() {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if !n.goServeDNS(c) {
				return
			}
		}
	}()
	return func() { ln.Close() }
}

// acceptDNS accepts a TCP connection to port 53 and answers its queries.
func (n *netstack) acceptDNS(r *tcp.ForwarderRequest) {
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		return
	}
	r.Complete(false)
	n.goServeDNS(gonet.NewTCPConn(&wq, ep))
}

// goServeDNS answers DNS over TCP on c in a goroutine of its own, which
// closes c at the end; it reports false, having closed c, when the stack
// is closing.
func (n *netstack) goServeDNS(c net.Conn) bool {
	if !n.open.add(c) {
		c.Close()
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.open.remove(c)
		defer c.Close()
		n.fake.ServeStream(c)
	}()
	return true
}

// relayUDP carries one UDP flow through its own association.
func (n *netstack) relayUDP(uc *gonet.UDPConn, src, dst netip.AddrPort) {
	start := time.Now()
	ev := socksify.Event{Network: "udp", Dest: dst}
	fill := n.who("udp", src, dst)
	taddr, target, ok := n.target(dst)
	if !ok {
		fill(&ev)
		ev.Err, ev.Errno = errStaleFake, syscall.EHOSTUNREACH
		n.event(ev)
		return
	}
	ev.Target = target
	f, err := n.openFlow(taddr, target)
	ev.Duration = time.Since(start)
	fill(&ev)
	if err != nil {
		ev.Err, ev.Errno = err, syscall.ECONNREFUSED
		n.event(ev)
		return
	}
	n.event(ev)
	if !n.open.add(f) {
		f.Close()
		return
	}
	defer n.open.remove(f)
	defer f.Close()

	var idleMu sync.Mutex
	last := time.Now()
	touch := func() { idleMu.Lock(); last = time.Now(); idleMu.Unlock() }
	idleFor := func() time.Duration { idleMu.Lock(); defer idleMu.Unlock(); return time.Since(last) }

	// Gateway → program, until the flow ends (its association does).
	go func() {
		buf := make([]byte, 65535)
		for {
			k, err := f.recv(buf)
			if err != nil {
				uc.Close()
				return
			}
			touch()
			uc.Write(buf[:k])
		}
	}()
	// Program → gateway.
	buf := make([]byte, 65535)
	for {
		uc.SetReadDeadline(time.Now().Add(udpIdle))
		k, err := uc.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && idleFor() < udpIdle {
				continue // traffic the other way keeps the flow
			}
			return
		}
		touch()
		f.send(buf[:k])
	}
}

// A udpFlow carries one flow's datagrams to and from its destination
// through the gateway.
type udpFlow interface {
	send(b []byte) error          // a datagram to the destination
	recv(buf []byte) (int, error) // the next datagram from it; an error once the flow is over
	Close() error
}

// openFlow opens a flow to taddr (target as text): UDP in the stream,
// whose datagrams travel inside the TCP (or TLS) connection to the
// gateway, when the gateway offers it; else a UDP ASSOCIATE, except
// through a TLS gateway, whose datagrams would then travel outside TLS.
func (n *netstack) openFlow(taddr proto.Addr, target string) (udpFlow, error) {
	d := n.cfg.Dialer
	if d.Extensions != client.ExtOff && !n.noStream.Load() {
		ctx := n.ctx
		if d.Timeout <= 0 {
			// The Dialer bounds nothing then: the default, as for TCP.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, dialTimeout)
			defer cancel()
		}
		pc, err := d.ListenPacket(ctx)
		if err == nil {
			return &streamFlow{pc: pc, to: client.NamedAddr(target)}, nil
		}
		if !errors.Is(err, client.ErrNoExtensions) || d.Extensions == client.ExtRequire {
			return nil, err
		}
		n.noStream.Store(true) // a plain gateway: do not ask again
	}
	a, err := associate(n.ctx, d)
	if err != nil {
		return nil, err
	}
	hdr, err := proto.UDPHeader{Addr: taddr}.AppendBinary(nil)
	if err != nil {
		a.Close()
		return nil, err
	}
	// The association ends with its TCP connection.
	go func() {
		io.Copy(io.Discard, a.ctrl)
		a.udp.Close()
	}()
	return &classicFlow{a: a, hdr: hdr, out: make([]byte, 0, len(hdr)+65535)}, nil
}

// streamFlow is a flow through UDP in the stream.
type streamFlow struct {
	pc *client.PacketConn
	to net.Addr
}

func (f *streamFlow) send(b []byte) error {
	_, err := f.pc.WriteTo(b, f.to)
	return err
}

func (f *streamFlow) recv(buf []byte) (int, error) {
	n, _, err := f.pc.ReadFrom(buf)
	return n, err
}

func (f *streamFlow) Close() error { return f.pc.Close() }

// classicFlow is a flow through a UDP ASSOCIATE.
type classicFlow struct {
	a   *association
	hdr []byte
	out []byte // the send buffer: hdr, then the datagram (one sender)
}

func (f *classicFlow) send(b []byte) error {
	f.out = append(append(f.out[:0], f.hdr...), b...)
	_, err := f.a.udp.Write(f.out)
	return err
}

func (f *classicFlow) recv(buf []byte) (int, error) {
	for {
		k, err := f.a.udp.Read(buf)
		if err != nil {
			return 0, err
		}
		h, off, err := proto.ParseUDPHeader(buf[:k])
		if err != nil || h.Frag != 0 {
			continue
		}
		return copy(buf, buf[off:k]), nil
	}
}

func (f *classicFlow) Close() error { return f.a.Close() }

// An association is one plain SOCKS5 UDP ASSOCIATE: its TCP connection
// and a UDP socket connected to the gateway's relay.
type association struct {
	ctrl net.Conn
	udp  *net.UDPConn
}

func (a *association) Close() error {
	a.udp.Close()
	return a.ctrl.Close()
}

var errUDPOverTLS = errors.New("socksify isolate: UDP does not go through a gateway reached over TLS in -isolate mode (classic UDP ASSOCIATE would travel outside TLS)")

// associate opens an association with the gateway (RFC 1928 UDP
// ASSOCIATE, with username/password if the Dialer has them).
func associate(ctx context.Context, d *client.Dialer) (*association, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = dialTimeout
	}
	if d.TLSConfig != nil {
		// Classic UDP ASSOCIATE would speak cleartext to the TLS port,
		// and its datagrams would travel outside TLS.
		return nil, errUDPOverTLS
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", d.ProxyAddress)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	rep, err := udpAssociate(c, d.Username, d.Password)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	relayAP, ok := rep.Addr.AddrPort()
	if !ok {
		c.Close()
		return nil, fmt.Errorf("socksify isolate: the gateway's UDP relay address %v is not an IP address", rep.Addr)
	}
	if relayAP.Addr().IsUnspecified() {
		gw := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		relayAP = netip.AddrPortFrom(gw.Addr(), relayAP.Port())
	}
	uconn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(relayAP))
	if err != nil {
		c.Close()
		return nil, err
	}
	return &association{ctrl: c, udp: uconn}, nil
}

// udpAssociate runs the SOCKS5 exchange for UDP ASSOCIATE on c.
func udpAssociate(c net.Conn, user, pass string) (proto.Reply, error) {
	method := proto.MethodNoAuth
	if user != "" {
		method = proto.MethodUserPass
	}
	if _, err := c.Write([]byte{proto.Version5, 1, byte(method)}); err != nil {
		return proto.Reply{}, err
	}
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return proto.Reply{}, err
	}
	if sel[0] != proto.Version5 || sel[1] != byte(method) {
		return proto.Reply{}, fmt.Errorf("socksify isolate: the gateway selected method %#02x", sel[1])
	}
	if user != "" {
		b := append([]byte{1, byte(len(user))}, user...)
		b = append(append(b, byte(len(pass))), pass...)
		if _, err := c.Write(b); err != nil {
			return proto.Reply{}, err
		}
		var st [2]byte
		if _, err := io.ReadFull(c, st[:]); err != nil {
			return proto.Reply{}, err
		}
		if st[1] != 0 {
			return proto.Reply{}, client.ErrAuth
		}
	}
	req, err := proto.Request{Command: proto.CommandUDPAssociate, Addr: proto.AddrFromAddrPort(netip.AddrPortFrom(netip.IPv4Unspecified(), 0))}.AppendBinary(nil)
	if err != nil {
		return proto.Reply{}, err
	}
	if _, err := c.Write(req); err != nil {
		return proto.Reply{}, err
	}
	rep, err := readReply(c)
	if err != nil {
		return rep, err
	}
	if rep.Code != proto.ReplySucceeded {
		return rep, &client.ReplyError{Command: proto.CommandUDPAssociate, Code: rep.Code}
	}
	return rep, nil
}

// readReply reads exactly one SOCKS5 reply.
func readReply(c net.Conn) (proto.Reply, error) {
	var b [4 + 1 + 255 + 2]byte
	if _, err := io.ReadFull(c, b[:5]); err != nil {
		return proto.Reply{}, err
	}
	need := 0
	switch proto.AddrType(b[3]) {
	case proto.AddrTypeIPv4:
		need = 4 + 4 + 2
	case proto.AddrTypeIPv6:
		need = 4 + 16 + 2
	case proto.AddrTypeFQDN:
		need = 4 + 1 + int(b[4]) + 2
	default:
		return proto.Reply{}, fmt.Errorf("socksify isolate: address type %d in the gateway's reply", b[3])
	}
	if _, err := io.ReadFull(c, b[5:need]); err != nil {
		return proto.Reply{}, err
	}
	rep, _, err := proto.ParseReply(b[:need])
	return rep, err
}
