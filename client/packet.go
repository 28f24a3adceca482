package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socks6/socks6/proto"
)

// UDP in the stream (draft-socks6-extensions-00, "UDP in the Stream").
const (
	// packetQueue caps the datagrams a PacketConn holds that ReadFrom
	// has not returned; more are dropped, as a full socket buffer drops
	// them, so that a slow reader never stalls the session's reader.
	packetQueue = 256
	// maxPacketPayload is the largest payload WriteTo sends: what IPv4
	// carries (the gateway drops larger ones to IPv4 destinations).
	maxPacketPayload = 65507
)

// A PacketConn is a UDP association whose datagrams travel inside the
// session's control connection as DATAGRAM frames, so UDP works
// wherever the TCP (or TLS) connection to the gateway does. It
// implements net.PacketConn: WriteTo sends to a destination, an IP
// address or (with an address whose String is "name:port") a name the
// gateway resolves; ReadFrom returns what came back from destinations
// the association has sent to, with their addresses.
//
// The gateway maps the association to one external port for every
// destination (PublicAddrs says where peers see it) and passes on only
// datagrams from addresses and ports it sent to within the idle
// timeout. Datagrams may be dropped on either side under load, as UDP
// may drop them.
type PacketConn struct {
	s       *Session
	id      uint64
	own     bool // Close closes the session
	publics []netip.AddrPort
	idle    time.Duration

	mu     sync.Mutex
	queue  []proto.Datagram
	wake   chan struct{} // closed and replaced when something changes
	closed bool
	rdl    time.Time
	wdl    time.Time

	dropped atomic.Int64
}

// ListenPacket opens a UDP association on a session of its own, which
// Close ends. ctx (bounded by Timeout when it has no deadline) bounds
// opening the session and the association only.
func (d *Dialer) ListenPacket(ctx context.Context) (*PacketConn, error) {
	ctx, cancel := d.handshakeContext(ctx)
	defer cancel()
	s, err := d.OpenSession(ctx)
	if err != nil {
		return nil, relabel(err, "udp", "udp", "")
	}
	pc, err := s.ListenPacket(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	pc.own = true
	return pc, nil
}

// ListenPacket opens a UDP association on the session. It fails with
// ErrNoExtensions if the gateway does not offer UDP in the stream, and
// with a *ReplyError inside a *net.OpError if the gateway refuses, for
// example with proto.ReplyQuotaExceeded (0xE3) over its LIMITS or
// proto.ReplyNotAllowed when its policy forbids UDP.
//
// The association lives as long as the session, or until it has carried
// no datagram for its idle timeout (IdleTimeout); the protocol has no
// way to end one association alone, so Close of a PacketConn from this
// method stops its delivery here and leaves the gateway's side to the
// idle timeout. So does a call whose ctx ends before the gateway's
// answer: the association it may still make counts against the
// session's LIMITS until it idles out. Use Dialer.ListenPacket for an
// association that Close ends at once.
func (s *Session) ListenPacket(ctx context.Context) (*PacketConn, error) {
	if !s.ack.Features.Has(proto.FeatureUDP) {
		return nil, s.udpError(fmt.Errorf("%w: no UDP feature bit", ErrNoExtensions))
	}
	if lim, ok := s.Limits(); ok && lim.MaxUDPAssocs == 0 {
		return nil, s.udpError(fmt.Errorf("%w: LIMITS allow no UDP associations", ErrNoExtensions))
	}
	req := proto.ExtRequest{Command: proto.CommandUDP, Addr: proto.Addr{IP: netip.IPv4Unspecified()}}
	if s.family != 0 {
		req.Options = proto.Options{proto.FamilyOption(s.family)}
	}
	pc := &PacketConn{s: s, wake: make(chan struct{})}
	rep, err := s.roundTripCall(ctx, req, &call{cmd: proto.CommandUDP, pc: pc})
	if err != nil {
		pc.Close() // a late REPLY registers it closed
		return nil, s.udpError(err)
	}
	if rep.Code != proto.ReplySucceeded {
		diag, _ := rep.Options.Diagnostic()
		return nil, s.udpError(&ReplyError{Command: proto.CommandUDP, Code: rep.Code, Diagnostic: diag})
	}
	return pc, nil
}

func (s *Session) udpError(err error) error {
	e := s.opError("udp", "", err).(*net.OpError)
	e.Net = "udp"
	return e
}

// granted records the REPLY that created the association. The session's
// reader calls it before it reads the next frame.
func (pc *PacketConn) granted(rep proto.ExtReply) {
	pc.id = rep.AssocID
	for _, a := range rep.Options.PublicAddrs() {
		if a.FQDN == "" {
			pc.publics = append(pc.publics, netip.AddrPortFrom(a.IP, a.Port))
		}
	}
	pc.idle, _ = rep.Options.IdleTimeout()
}

// PublicAddrs returns where peers see the association: its external
// addresses and port at the gateway, one per address family, as the
// gateway reported them.
func (pc *PacketConn) PublicAddrs() []netip.AddrPort { return pc.publics }

// IdleTimeout returns the gateway's idle timeout for the association (0
// if it sent none).
func (pc *PacketConn) IdleTimeout() time.Duration { return pc.idle }

// Dropped returns how many datagrams from the gateway were dropped here
// because ReadFrom did not keep up.
func (pc *PacketConn) Dropped() int64 { return pc.dropped.Load() }

// deliver queues a datagram from the gateway; the session's reader calls
// it, and it never blocks.
func (pc *PacketConn) deliver(g proto.Datagram) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return
	}
	if len(pc.queue) >= packetQueue {
		pc.dropped.Add(1)
		return
	}
	pc.queue = append(pc.queue, g)
	pc.wakeLocked()
}

func (pc *PacketConn) wakeLocked() {
	close(pc.wake)
	pc.wake = make(chan struct{})
}

// ReadFrom returns the next datagram: its payload in p (truncated to p,
// as UDP truncates) and its source, a *net.UDPAddr.
func (pc *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		pc.mu.Lock()
		if pc.closed {
			pc.mu.Unlock()
			return 0, nil, pc.opError("read", net.ErrClosed)
		}
		if len(pc.queue) > 0 {
			g := pc.queue[0]
			pc.queue[0] = proto.Datagram{}
			pc.queue = pc.queue[1:]
			pc.mu.Unlock()
			n := copy(p, g.Payload)
			return n, net.UDPAddrFromAddrPort(netip.AddrPortFrom(g.Addr.IP.Unmap(), g.Addr.Port)), nil
		}
		dl, wake := pc.rdl, pc.wake
		pc.mu.Unlock()
		if err := pc.wait(dl, wake); err != nil {
			return 0, nil, pc.opError("read", err)
		}
	}
}

// wait waits until wake closes (something changed), the deadline dl
// passes, or the session ends with nothing left to read.
func (pc *PacketConn) wait(dl time.Time, wake <-chan struct{}) error {
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-wake:
	case <-timeout:
	case <-pc.s.done:
		pc.mu.Lock()
		empty := len(pc.queue) == 0
		pc.mu.Unlock()
		if empty {
			return pc.s.Err()
		}
	}
	return nil
}

// WriteTo sends p to addr: a *net.UDPAddr, or any other net.Addr (a
// NamedAddr, say) whose String is "host:port", where host may be a name
// that the gateway resolves. A payload over 65507 bytes
// fails. The write deadline (SetWriteDeadline), or the Dialer's Timeout,
// bounds the wait for the session's connection, other writers included;
// a write that fails after part of the frame went out ends the session.
func (pc *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	to, err := packetAddr(addr)
	if err != nil {
		return 0, pc.opError("write", err)
	}
	if len(p) > maxPacketPayload {
		return 0, pc.opError("write", fmt.Errorf("socks: datagram of %d bytes is over %d: %w", len(p), maxPacketPayload, proto.ErrTooLong))
	}
	pc.mu.Lock()
	closed, dl := pc.closed, pc.wdl
	pc.mu.Unlock()
	if closed {
		return 0, pc.opError("write", net.ErrClosed)
	}
	// A DATAGRAM may be up to proto.MaxFrameLen whatever Max Frame
	// Length says (the draft's DATAGRAM section).
	b, err := encodeFrame(proto.Datagram{AssocID: pc.id, Addr: to, Payload: p}, proto.MaxFrameLen)
	if err != nil {
		return 0, pc.opError("write", err)
	}
	if dl.IsZero() {
		dl = pc.s.writeDeadline()
	}
	if err := pc.s.writeFrame(b, dl, false); err != nil {
		return 0, pc.opError("write", err)
	}
	return len(p), nil
}

// A NamedAddr is a UDP destination given by name, "host:port", for
// PacketConn.WriteTo: the gateway resolves the host. (Any net.Addr whose
// String is "host:port" will do; this is the one to hand.)
type NamedAddr string

// Network returns "udp".
func (NamedAddr) Network() string { return "udp" }

// String returns the address as given.
func (a NamedAddr) String() string { return string(a) }

// packetAddr turns a WriteTo address into the DATAGRAM's Address.
func packetAddr(addr net.Addr) (proto.Addr, error) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		if a == nil {
			return proto.Addr{}, errors.New("socks: nil address")
		}
		ap := a.AddrPort()
		return proto.Addr{IP: ap.Addr().Unmap(), Port: ap.Port()}, nil
	case nil:
		return proto.Addr{}, errors.New("socks: nil address")
	}
	host, portStr, err := net.SplitHostPort(addr.String())
	if err != nil {
		return proto.Addr{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return proto.Addr{}, fmt.Errorf("socks: bad port %q", portStr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return proto.Addr{IP: ip.Unmap(), Port: uint16(port)}, nil
	}
	if host == "" || len(host) > proto.MaxFQDNLen {
		return proto.Addr{}, fmt.Errorf("socks: bad host %q", host)
	}
	return proto.Addr{FQDN: host, Port: uint16(port)}, nil
}

// Close stops the PacketConn: ReadFrom and WriteTo fail with
// net.ErrClosed. One from Dialer.ListenPacket also closes its session,
// which ends the association at the gateway; one from
// Session.ListenPacket leaves the association to its idle timeout.
func (pc *PacketConn) Close() error {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return nil
	}
	pc.closed = true
	pc.queue = nil
	pc.wakeLocked()
	pc.mu.Unlock()
	if pc.own {
		return pc.s.Close()
	}
	return nil
}

// LocalAddr returns the association's first external address at the
// gateway (the zero UDP address if the gateway reported none).
func (pc *PacketConn) LocalAddr() net.Addr {
	if len(pc.publics) > 0 {
		return net.UDPAddrFromAddrPort(pc.publics[0])
	}
	return &net.UDPAddr{}
}

// SetDeadline sets the read and write deadlines.
func (pc *PacketConn) SetDeadline(t time.Time) error {
	pc.SetReadDeadline(t)
	return pc.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline of ReadFrom, also of one waiting.
func (pc *PacketConn) SetReadDeadline(t time.Time) error {
	pc.mu.Lock()
	pc.rdl = t
	pc.wakeLocked()
	pc.mu.Unlock()
	return nil
}

// SetWriteDeadline sets the deadline of WriteTo: how long it may wait for
// the session's connection.
func (pc *PacketConn) SetWriteDeadline(t time.Time) error {
	pc.mu.Lock()
	pc.wdl = t
	pc.mu.Unlock()
	return nil
}

func (pc *PacketConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: pc.LocalAddr(), Err: err}
}
