//go:build linux && amd64

package socksify

// UDP through the gateway. When the gateway offers UDP in the stream
// (the SOCKS6 extensions' UDP feature, which socks6d has), each
// association is a session of its own whose datagrams travel inside the
// TCP connection as DATAGRAM frames (client.PacketConn): it works
// wherever the TCP connection works, across NAT and firewalls. Otherwise
// (a plain SOCKS5 gateway, socks5:// or ext=off) it is classic UDP
// ASSOCIATE (RFC 1928, section 7): a TCP control connection from the
// supervisor to the gateway, and datagrams between a supervisor socket
// and the gateway's relay address, each with the 10-byte (or, for a
// name, longer) header. Inside the supervisor datagrams carry that header
// either way; the in-stream path takes it off again.
//
// There is one association per program socket (keyed by socket inode,
// like everything else), created when the socket sends its first
// datagram, never at connect: glibc's and Go's resolvers connect a UDP
// socket to every address they got just to learn the source address
// they would use (RFC 6724 sorting), and those connects must stay cheap.
//
//   - Unconnected sockets (sendto, sendmsg, sendmmsg with an address):
//     the send is emulated. The supervisor makes sure the program's
//     socket has a local port (binding it to the wildcard address and
//     port 0, as the kernel's autobind would), wraps the datagram and
//     sends it from the association's socket; the program's call returns
//     the length. The first send waits for the association (one round
//     trip to the gateway) and fails with ENETUNREACH if it cannot be
//     made. Replies are sent to the program's port on loopback from a
//     supervisor socket that stands for the reply's origin ("down"
//     sockets, one per origin), so that recvfrom and recvmsg, which are
//     emulated for these sockets, can report the origin: the address the
//     program sent to (a fake address for a name; the gateway reports
//     the address the name resolved to, which is mapped back by port).
//   - Connected sockets: connect is redirected to the supervisor's
//     ingress socket on loopback (one per family), which costs a connect
//     and a getsockname and creates nothing else; the socket's source
//     address is recorded. Its send and write (not trapped) then reach
//     the ingress, which looks the source up and relays the datagram
//     through the socket's association, created at the first one.
//     Replies come from the ingress, the peer the socket is connected
//     to; getpeername and recvfrom report the address the program
//     connected to. If the association cannot be made, the first
//     datagram is already gone: the socket is then reconnected to a dead
//     end on loopback, so that its next call fails with ECONNREFUSED.
//
// An association ends when the gateway closes its control connection
// (the next datagram makes a new one) or when the program's socket is
// gone: a sweep every udpSweepEvery compares the inodes with those of
// /proc/self/net/udp and udp6 (the supervisor shares the program's
// network namespace).

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
	"golang.org/x/sys/unix"
)

const (
	udpSweepEvery   = 2 * time.Second
	udpFailHold     = time.Second // after a failed association, the socket's sends fail at once for this long
	udpQueueMax     = 64          // datagrams from the ingress held while an association is made
	udpMaxDowns     = 512         // down sockets (origins) kept at once
	udpMaxDests     = 1024        // destinations an association remembers
	udpMaxPayload   = 65507       // the largest UDP payload over IPv4
	udpRelayBufSize = proto.MaxUDPHeaderLen + 65535
	// udpStreamQueue is how many datagrams of an in-stream association
	// wait for its writer; more are dropped, as a full socket buffer
	// drops them, so that a sender (the notification loop among them)
	// never waits for the TCP connection to the gateway.
	udpStreamQueue = 64
)

var (
	errUDPRecentFailure = errors.New("socksify: the socket's UDP association failed a moment ago")
	errUDPExtRequired   = errors.New("socksify: the gateway's extensions carry no UDP, and ext=require forbids plain SOCKS5 UDP ASSOCIATE")
	errUDPRelayName     = errors.New("socksify: the gateway named its UDP relay by a host name")
	errUDPClosed        = errors.New("socksify: shutting down")
)

// A udpRelay carries one program tree's UDP through the gateway.
type udpRelay struct {
	sup *supervisor
	log *slog.Logger

	// noStream is set once the gateway turned out not to offer UDP in
	// the stream: later associations go straight to UDP ASSOCIATE.
	noStream atomic.Bool

	in4, in6     *net.UDPConn // ingress: connected sockets are connected here (in6 is nil without ::1)
	dead4, dead6 *net.UDPConn // dead ends: connected to themselves, so datagrams from anyone else are refused

	mu      sync.Mutex
	closed  bool
	assocs  map[uint64]*udpAssoc             // by socket inode
	conns   map[netip.AddrPort]*udpConnected // connected sockets, by their source address at the ingress
	byIno   map[uint64]*udpConnected         // the same, by inode
	failed  map[uint64]time.Time             // until when a socket's sends fail at once
	downs   map[downKey]*list.Element        // of *downSock
	downLRU list.List                        // most recently used first
	downBy  map[netip.AddrPort]netip.AddrPort

	stop chan struct{}
	wg   sync.WaitGroup
}

// A udpConnected is a program socket connected to the ingress.
type udpConnected struct {
	ino    uint64
	src    netip.AddrPort // the socket's address as the ingress sees it (unmapped)
	in     *net.UDPConn   // the ingress it is connected to
	dst    netip.AddrPort // the address the program connected to
	target proto.Addr     // what the datagrams are sent to
	domain int
	v6only bool
	tid    int // the thread that connected, and its fd: to reach the socket if the association fails
	fd     int
	since  time.Time
}

type downKey struct {
	origin netip.AddrPort
	v6     bool
}

type downSock struct {
	key  downKey
	c    *net.UDPConn
	addr netip.AddrPort
}

// newUDPRelay opens the ingress and dead-end sockets on loopback and
// starts serving them.
func newUDPRelay(sup *supervisor) (*udpRelay, error) {
	r := &udpRelay{
		sup: sup, log: sup.log,
		assocs: map[uint64]*udpAssoc{}, conns: map[netip.AddrPort]*udpConnected{}, byIno: map[uint64]*udpConnected{},
		failed: map[uint64]time.Time{}, downs: map[downKey]*list.Element{}, downBy: map[netip.AddrPort]netip.AddrPort{},
		stop: make(chan struct{}),
	}
	var err error
	if r.in4, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	if r.dead4, err = deadEnd("udp4", net.IPv4(127, 0, 0, 1)); err != nil {
		r.in4.Close()
		return nil, err
	}
	if in6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err == nil {
		if d6, err := deadEnd("udp6", net.IPv6loopback); err == nil {
			r.in6, r.dead6 = in6, d6
		} else {
			in6.Close()
		}
	}
	for _, in := range []*net.UDPConn{r.in4, r.in6} {
		if in != nil {
			r.wg.Add(1)
			go r.serveIngress(in)
		}
	}
	r.wg.Add(1)
	go r.sweeper()
	return r, nil
}

// deadEnd opens a UDP socket on ip connected to itself: the kernel
// refuses (ICMP port unreachable) every datagram sent to it from any
// other address, and no one else can bind its port.
func deadEnd(network string, ip net.IP) (*net.UDPConn, error) {
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var cerr error
	rc.Control(func(fd uintptr) {
		self, err := unix.Getsockname(int(fd))
		if err != nil {
			cerr = err
			return
		}
		cerr = unix.Connect(int(fd), self)
	})
	if cerr != nil {
		c.Close()
		return nil, cerr
	}
	return c, nil
}

// close ends every association and closes the relay's sockets.
func (r *udpRelay) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	var as []*udpAssoc
	for _, a := range r.assocs {
		as = append(as, a)
	}
	for _, e := range r.downs {
		e.Value.(*downSock).c.Close()
	}
	clear(r.downs)
	clear(r.downBy)
	r.mu.Unlock()
	close(r.stop)
	for _, a := range as {
		a.close()
	}
	for _, c := range []*net.UDPConn{r.in4, r.in6, r.dead4, r.dead6} {
		if c != nil {
			c.Close()
		}
	}
	r.wg.Wait()
}

func udpAddrPort(c *net.UDPConn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// ingressFor returns the ingress for a socket of the given family, and
// its address as a socket address of that family: an AF_INET6 socket
// reaches the IPv4 ingress IPv4-mapped when there is no IPv6 one.
func (r *udpRelay) ingressFor(domain int, v6only bool) (*net.UDPConn, []byte, bool) {
	return r.pick(domain, v6only, r.in4, r.in6)
}

// deadFor returns the dead end's socket address for a socket of the
// given family.
func (r *udpRelay) deadFor(domain int, v6only bool) ([]byte, bool) {
	_, sa, ok := r.pick(domain, v6only, r.dead4, r.dead6)
	return sa, ok
}

func (r *udpRelay) pick(domain int, v6only bool, c4, c6 *net.UDPConn) (*net.UDPConn, []byte, bool) {
	c := c4
	switch {
	case domain == unix.AF_INET6 && c6 != nil:
		c = c6
	case domain == unix.AF_INET6 && v6only:
		return nil, nil, false
	}
	sa, err := appendSockaddr(nil, domain, udpAddrPort(c))
	return c, sa, err == nil
}

// isIngress reports whether ap is an ingress address.
func (r *udpRelay) isIngress(ap netip.AddrPort) bool {
	ap = unmapAP(ap)
	return ap == udpAddrPort(r.in4) || r.in6 != nil && ap == udpAddrPort(r.in6)
}

// originOf returns the origin that the down socket at ap stands for.
func (r *udpRelay) originOf(ap netip.AddrPort) (netip.AddrPort, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.downBy[unmapAP(ap)]
	return o, ok
}

// addConn records a socket connected to the ingress.
func (r *udpRelay) addConn(m *udpConnected) {
	r.mu.Lock()
	if old := r.byIno[m.ino]; old != nil && r.conns[old.src] == old {
		delete(r.conns, old.src)
	}
	r.conns[m.src] = m
	r.byIno[m.ino] = m
	a := r.assocs[m.ino]
	r.mu.Unlock()
	if a != nil {
		a.mu.Lock()
		a.conn = m
		a.mu.Unlock()
	}
}

// dropConn forgets that socket ino is connected to the ingress (it was
// disconnected or connected elsewhere).
func (r *udpRelay) dropConn(ino uint64) {
	r.mu.Lock()
	if old := r.byIno[ino]; old != nil {
		delete(r.byIno, ino)
		if r.conns[old.src] == old {
			delete(r.conns, old.src)
		}
	}
	a := r.assocs[ino]
	r.mu.Unlock()
	if a != nil {
		a.mu.Lock()
		a.conn = nil
		a.mu.Unlock()
	}
}

// assoc returns socket ino's association, starting to make one if it
// has none. It fails at once for a socket whose association failed a
// moment ago.
func (r *udpRelay) assoc(ino uint64, tid int, dst netip.AddrPort, target proto.Addr) (*udpAssoc, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errUDPClosed
	}
	if a := r.assocs[ino]; a != nil {
		r.mu.Unlock()
		return a, nil
	}
	if until, ok := r.failed[ino]; ok {
		if time.Now().Before(until) {
			r.mu.Unlock()
			return nil, errUDPRecentFailure
		}
		delete(r.failed, ino)
	}
	a := &udpAssoc{
		r: r, ino: ino, tid: tid, first: dst, firstTarget: target,
		ready: make(chan struct{}), start: time.Now(),
		conn: r.byIno[ino],
	}
	r.assocs[ino] = a
	r.wg.Add(1)
	r.mu.Unlock()
	if r.sup.onConnect != nil {
		a.comm = comm(tid) // while the thread is there; read by establish only
	}
	go a.establish()
	return a, nil
}

// down returns the socket that delivers replies from origin to program
// sockets on IPv4 (v6 false) or IPv6 loopback.
func (r *udpRelay) down(origin netip.AddrPort, v6 bool) *net.UDPConn {
	key := downKey{unmapAP(origin), v6}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if e, ok := r.downs[key]; ok {
		r.downLRU.MoveToFront(e)
		return e.Value.(*downSock).c
	}
	network, ip := "udp4", net.IPv4(127, 0, 0, 1)
	if v6 {
		network, ip = "udp6", net.IPv6loopback
	}
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		r.log.Debug("socksify: udp: opening a delivery socket", "err", err)
		return nil
	}
	ds := &downSock{key: key, c: c, addr: udpAddrPort(c)}
	r.downs[key] = r.downLRU.PushFront(ds)
	r.downBy[ds.addr] = key.origin
	for len(r.downs) > udpMaxDowns {
		e := r.downLRU.Back()
		old := e.Value.(*downSock)
		r.downLRU.Remove(e)
		delete(r.downs, old.key)
		delete(r.downBy, old.addr)
		old.c.Close()
	}
	return c
}

// serveIngress relays what connected sockets send to the ingress.
func (r *udpRelay) serveIngress(in *net.UDPConn) {
	defer r.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, src, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		src = unmapAP(src)
		r.mu.Lock()
		m := r.conns[src]
		r.mu.Unlock()
		if m == nil {
			continue // not (or no longer) a socket we connected here
		}
		a, err := r.assoc(m.ino, m.tid, m.dst, m.target)
		if err != nil {
			continue
		}
		framed, err := udpFrame(m.target, buf[:n])
		if err != nil {
			continue
		}
		a.noteDest(m.dst, m.target)
		a.sendOrQueue(framed)
	}
}

// udpFrame prefixes payload with the UDP request header for target.
func udpFrame(target proto.Addr, payload []byte) ([]byte, error) {
	b, err := proto.UDPHeader{Addr: target}.AppendBinary(make([]byte, 0, 4+target.EncodedLen()+len(payload)))
	if err != nil {
		return nil, err
	}
	if len(b)+len(payload) > udpMaxPayload {
		return nil, unix.EMSGSIZE
	}
	return append(b, payload...), nil
}

// kill points the connected socket m at the dead end, so that its
// calls fail with ECONNREFUSED: its association failed after its first
// datagram had already "gone out".
func (r *udpRelay) kill(m *udpConnected) {
	pfd, err := openThreadPidfd(m.tid)
	if err != nil {
		return
	}
	defer unix.Close(pfd)
	dup, err := unix.PidfdGetfd(pfd, m.fd, 0)
	if err != nil {
		return
	}
	defer unix.Close(dup)
	if ino, err := sockInode(dup); err != nil || ino != m.ino {
		return
	}
	sa, ok := r.deadFor(m.domain, m.v6only)
	if !ok || rawConnect(dup, sa) != nil {
		return
	}
	// An empty datagram to the dead end, from the program's socket: the
	// kernel's port unreachable sets the socket's error at once, so a
	// receive already waiting returns ECONNREFUSED now.
	rawSendto(dup, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil)
}

// sweeper ends the associations, and forgets the connected sockets,
// whose program sockets are gone.
func (r *udpRelay) sweeper() {
	defer r.wg.Done()
	t := time.NewTicker(udpSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.sweep()
	}
}

func (r *udpRelay) sweep() {
	r.mu.Lock()
	busy := len(r.assocs)+len(r.conns) > 0
	r.mu.Unlock()
	if !busy {
		return
	}
	snap := time.Now()
	live, err := udpInodes()
	if err != nil {
		r.log.Debug("socksify: udp: reading the socket table", "err", err)
		return
	}
	var gone []*udpAssoc
	r.mu.Lock()
	for ino, a := range r.assocs {
		if !live[ino] && a.start.Before(snap) {
			gone = append(gone, a)
		}
	}
	for src, m := range r.conns {
		if !live[m.ino] && m.since.Before(snap) {
			delete(r.conns, src)
			if r.byIno[m.ino] == m {
				delete(r.byIno, m.ino)
			}
		}
	}
	for ino, until := range r.failed {
		if snap.After(until) {
			delete(r.failed, ino)
		}
	}
	r.mu.Unlock()
	for _, a := range gone {
		r.log.Debug("socksify: udp: the program's socket is gone; ending its association", "ino", a.ino)
		a.close()
	}
}

// udpInodes returns the inodes of the UDP sockets of the supervisor's
// network namespace.
func udpInodes() (map[uint64]bool, error) {
	return sockInodes("/proc/self/net/udp", "/proc/self/net/udp6")
}

// sockInodes returns the inodes of the sockets that the tables of
// /proc/self/net (tcp, tcp6, udp, udp6) list; a table other than the
// first may be missing (no IPv6).
func sockInodes(tables ...string) (map[uint64]bool, error) {
	live := map[uint64]bool{}
	for i, name := range tables {
		f, err := os.Open(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && i > 0 {
				continue
			}
			return nil, err
		}
		sc := bufio.NewScanner(f)
		first := true
		for sc.Scan() {
			if first {
				first = false
				continue
			}
			fields := bytes.Fields(sc.Bytes())
			if len(fields) < 10 {
				continue
			}
			if ino, err := strconv.ParseUint(string(fields[9]), 10, 64); err == nil {
				live[ino] = true
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return live, nil
}

// A udpAssoc is one program socket's UDP ASSOCIATE.
type udpAssoc struct {
	r           *udpRelay
	ino         uint64
	tid         int
	comm        string         // its command name, for the Event
	first       netip.AddrPort // what the first datagram was sent to, for the Event
	firstTarget proto.Addr
	start       time.Time
	ready       chan struct{} // closed when made, or failed

	// Set before ready is closed: pc for UDP in the stream, else ctrl,
	// up and relay for UDP ASSOCIATE.
	err      error
	pc       *client.PacketConn
	out      chan []byte   // in-stream: framed datagrams for writeStream
	stop     chan struct{} // in-stream: closed to end writeStream
	stopOnce sync.Once
	lastUse  atomic.Int64 // in-stream: unix ns of the last datagram either way
	ctrl     net.Conn
	up       *net.UDPConn
	relay    netip.AddrPort

	mu      sync.Mutex
	state   assocState
	queue   [][]byte
	conn    *udpConnected  // the socket is connected to the ingress: replies go there
	local   netip.AddrPort // else: the socket's address, where replies go
	domain  int
	v6only  bool
	literal map[netip.AddrPort]struct{} // address destinations
	byPort  map[uint16]netip.AddrPort   // the last fake address sent to, by port
}

type assocState uint8

const (
	assocPending assocState = iota
	assocUp
	assocFailed
	assocClosed
)

// status returns the association's state.
func (a *udpAssoc) status() assocState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// setLocal records where replies go for an unconnected socket.
func (a *udpAssoc) setLocal(local netip.AddrPort, domain int, v6only bool) {
	a.mu.Lock()
	a.local, a.domain, a.v6only = local, domain, v6only
	a.mu.Unlock()
}

// noteDest remembers a destination, to name the origin of replies.
func (a *udpAssoc) noteDest(dst netip.AddrPort, target proto.Addr) {
	dst = unmapAP(dst)
	a.mu.Lock()
	defer a.mu.Unlock()
	if target.FQDN != "" {
		if a.byPort == nil || len(a.byPort) >= udpMaxDests {
			a.byPort = map[uint16]netip.AddrPort{}
		}
		a.byPort[dst.Port()] = dst
		return
	}
	if _, ok := a.literal[dst]; ok {
		return
	}
	if a.literal == nil || len(a.literal) >= udpMaxDests {
		a.literal = map[netip.AddrPort]struct{}{}
	}
	a.literal[dst] = struct{}{}
}

// originLocked names the origin of a reply that the gateway says came
// from src: src itself if the socket sent to that address; else the
// fake address last sent to on src's port (the gateway resolved the
// name to src); else src.
func (a *udpAssoc) originLocked(src netip.AddrPort) netip.AddrPort {
	if !src.IsValid() {
		return a.first
	}
	src = unmapAP(src)
	if _, ok := a.literal[src]; ok {
		return src
	}
	if d, ok := a.byPort[src.Port()]; ok {
		return d
	}
	return src
}

// establish makes the association: the control connection, the UDP
// ASSOCIATE request, and the socket that talks to the relay.
func (a *udpAssoc) establish() {
	defer a.r.wg.Done()
	sup := a.r.sup
	ctx, cancel := sup.ctx, context.CancelFunc(func() {})
	if sup.timeout > 0 {
		ctx, cancel = context.WithTimeout(sup.ctx, sup.timeout)
	}
	err := a.handshake(ctx)
	cancel()
	var ev Event
	if sup.onConnect != nil {
		ev = Event{Pid: a.tid, Comm: a.comm, Network: "udp", Dest: a.first, Target: a.firstTarget.String(), Err: err, Duration: time.Since(a.start)}
	}
	if err != nil {
		a.err = err
		a.closeConns()
		a.mu.Lock()
		a.state = assocFailed
		a.queue = nil
		conn := a.conn
		a.mu.Unlock()
		r := a.r
		r.mu.Lock()
		if r.assocs[a.ino] == a {
			delete(r.assocs, a.ino)
		}
		r.failed[a.ino] = time.Now().Add(udpFailHold)
		r.mu.Unlock()
		close(a.ready)
		if conn != nil {
			r.kill(conn)
		}
		sup.log.Debug("socksify: udp: association failed", "dst", a.first, "target", a.firstTarget, "err", err)
		if sup.onConnect != nil {
			ev.Errno = syscall.ENETUNREACH
			sup.onConnect(ev)
		}
		return
	}
	a.mu.Lock()
	if a.state == assocClosed {
		a.mu.Unlock()
		a.closeConns()
		close(a.ready)
		return
	}
	a.state = assocUp
	q := a.queue
	a.queue = nil
	a.mu.Unlock()
	close(a.ready)
	for _, b := range q {
		a.send(b)
	}
	relay := a.relay.String()
	if a.pc != nil {
		relay = "in-stream, " + a.pc.LocalAddr().String()
		a.r.wg.Add(2)
		go a.readStream()
		go a.writeStream()
	} else {
		a.r.wg.Add(2)
		go a.readLoop()
		go a.watchControl()
	}
	sup.log.Debug("socksify: udp: association made", "dst", a.first, "target", a.firstTarget, "relay", relay, "dur", time.Since(a.start))
	if sup.onConnect != nil {
		sup.onConnect(ev)
	}
}

// closeConns closes whatever the handshake opened.
func (a *udpAssoc) closeConns() {
	if a.stop != nil {
		a.stopOnce.Do(func() { close(a.stop) })
	}
	if a.pc != nil {
		a.pc.Close()
	}
	if a.ctrl != nil {
		a.ctrl.Close()
	}
	if a.up != nil {
		a.up.Close()
	}
}

// handshake reaches the gateway and opens the association: UDP in the
// stream if the gateway offers it, else UDP ASSOCIATE, naming the
// address the datagrams will come from.
func (a *udpAssoc) handshake(ctx context.Context) error {
	sup := a.r.sup
	d := sup.dialer
	if d.Extensions != client.ExtOff && !a.r.noStream.Load() {
		pc, err := d.ListenPacket(ctx)
		if err == nil {
			a.pc = pc
			a.out = make(chan []byte, udpStreamQueue)
			a.stop = make(chan struct{})
			a.lastUse.Store(time.Now().UnixNano())
			return nil
		}
		if !errors.Is(err, client.ErrNoExtensions) {
			return err
		}
		if d.Extensions == client.ExtRequire {
			return errUDPExtRequired
		}
		// A plain SOCKS5 gateway, or extensions without UDP: asking
		// again would cost every association a refused session.
		a.r.noStream.Store(true)
	}
	if d.Extensions == client.ExtRequire {
		return errUDPExtRequired
	}
	if d.TLSConfig != nil {
		return errUDPOverTLS
	}
	var err error
	var nd net.Dialer
	for _, gw := range sup.gw {
		if a.ctrl, err = nd.DialContext(ctx, "tcp", gw.String()); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	local := a.ctrl.LocalAddr().(*net.TCPAddr).AddrPort()
	if a.up, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local.Addr(), 0))); err != nil {
		return err
	}
	a.up.SetReadBuffer(1 << 20)
	from := a.up.LocalAddr().(*net.UDPAddr).AddrPort()
	rep, err := socks5Request(ctx, a.ctrl, d.Username, d.Password, proto.CommandUDPAssociate, proto.AddrFromAddrPort(from))
	if err != nil {
		return err
	}
	relay, ok := rep.Addr.AddrPort()
	if !ok {
		return errUDPRelayName
	}
	if relay.Addr().IsUnspecified() {
		relay = netip.AddrPortFrom(a.ctrl.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(), relay.Port())
	}
	a.relay = unmapAP(relay)
	return nil
}

// wait waits until the association is made or failed, or ctx ends.
func (a *udpAssoc) wait(ctx context.Context) error {
	select {
	case <-a.ready:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends a framed datagram to the relay, or hands it to the
// in-stream writer; the association is up. It never waits for the
// gateway: an in-stream datagram that finds the writer's queue full is
// dropped.
func (a *udpAssoc) send(framed []byte) error {
	if a.pc == nil {
		_, err := a.up.WriteToUDPAddrPort(framed, a.relay)
		return err
	}
	a.lastUse.Store(time.Now().UnixNano())
	select {
	case a.out <- framed:
	default:
	}
	return nil
}

// writeStream writes the in-stream datagrams to the gateway, in order.
// A write waits as long as the session lets it (client.Dialer.Timeout);
// one that fails has broken the session, which readStream sees. It also
// closes the association a little before the gateway's idle timeout
// would end it there (the protocol cannot end one association alone, and
// the gateway tells nobody when it does): the next datagram then makes a
// new one, rather than going into an association that no longer exists.
func (a *udpAssoc) writeStream() {
	defer a.r.wg.Done()
	idle := a.pc.IdleTimeout()
	margin := max(idle/10, time.Second)
	var idleC <-chan time.Time
	var t *time.Timer
	if idle > margin {
		t = time.NewTimer(idle - margin)
		defer t.Stop()
		idleC = t.C
	}
	for {
		select {
		case <-a.stop:
			return
		case f := <-a.out:
			a.writeOne(f)
		case <-idleC:
			left := idle - margin - time.Since(time.Unix(0, a.lastUse.Load()))
			if left > 0 {
				t.Reset(left)
				continue
			}
			a.r.log.Debug("socksify: udp: closing an idle in-stream association before the gateway does", "dst", a.first, "idle", idle)
			a.close()
			return
		}
	}
}

// writeOne writes one framed datagram in the stream.
func (a *udpAssoc) writeOne(framed []byte) {
	h, hn, err := proto.ParseUDPHeader(framed)
	if err != nil {
		return
	}
	var to net.Addr
	if h.Addr.FQDN != "" {
		to = client.NamedAddr(h.Addr.String())
	} else {
		to = net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.Addr.IP, h.Addr.Port))
	}
	a.pc.WriteTo(framed[hn:], to)
}

// sendOrQueue sends a framed datagram, or holds it while the association
// is being made; it drops it if the association failed or ended.
func (a *udpAssoc) sendOrQueue(framed []byte) {
	a.mu.Lock()
	switch a.state {
	case assocPending:
		if len(a.queue) < udpQueueMax {
			a.queue = append(a.queue, framed)
		}
		a.mu.Unlock()
		return
	case assocUp:
		a.mu.Unlock()
		a.send(framed)
		return
	}
	a.mu.Unlock()
}

// readLoop delivers the gateway's datagrams to the program's socket.
func (a *udpAssoc) readLoop() {
	defer a.r.wg.Done()
	buf := make([]byte, udpRelayBufSize)
	for {
		n, src, err := a.up.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if unmapAP(src) != a.relay {
			continue
		}
		h, hn, err := proto.ParseUDPHeader(buf[:n])
		if err != nil || h.Frag != 0 {
			continue
		}
		from, _ := h.Addr.AddrPort()
		a.deliver(from, buf[hn:n])
	}
}

// readStream delivers the datagrams that come in the stream; it ends
// the association when the session ends.
func (a *udpAssoc) readStream() {
	defer a.r.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := a.pc.ReadFrom(buf)
		if err != nil {
			break
		}
		if ua, ok := from.(*net.UDPAddr); ok {
			a.lastUse.Store(time.Now().UnixNano())
			a.deliver(ua.AddrPort(), buf[:n])
		}
	}
	a.mu.Lock()
	closed := a.state == assocClosed
	a.mu.Unlock()
	if !closed {
		a.r.log.Debug("socksify: udp: the gateway ended the association", "dst", a.first)
	}
	a.close()
}

// deliver sends a reply's payload to the program's socket: from the
// ingress to a connected socket, else from the down socket of its
// origin.
func (a *udpAssoc) deliver(from netip.AddrPort, payload []byte) {
	a.mu.Lock()
	conn, local, domain, v6only := a.conn, a.local, a.domain, a.v6only
	origin := a.originLocked(from)
	a.mu.Unlock()
	if conn != nil {
		conn.in.WriteToUDPAddrPort(payload, conn.src)
		return
	}
	to, ok := a.r.deliveryAddr(local, domain, v6only)
	if !ok {
		return
	}
	if d := a.r.down(origin, to.Addr().Is6()); d != nil {
		d.WriteToUDPAddrPort(payload, to)
	}
}

// deliveryAddr returns where replies reach a socket bound to local: its
// own address, or loopback for the wildcard address.
func (r *udpRelay) deliveryAddr(local netip.AddrPort, domain int, v6only bool) (netip.AddrPort, bool) {
	if !local.IsValid() || local.Port() == 0 {
		return netip.AddrPort{}, false
	}
	ip := local.Addr().Unmap()
	if !ip.IsUnspecified() {
		return netip.AddrPortFrom(ip.WithZone(local.Addr().Zone()), local.Port()), true
	}
	switch {
	case domain == unix.AF_INET:
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case r.in6 != nil:
		ip = netip.IPv6Loopback()
	case !v6only && local.Addr().Is6() && !local.Addr().Is4In6():
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, local.Port()), true
}

// watchControl ends the association when the gateway closes the control
// connection.
func (a *udpAssoc) watchControl() {
	defer a.r.wg.Done()
	var b [256]byte
	for {
		if _, err := a.ctrl.Read(b[:]); err != nil {
			break
		}
	}
	a.mu.Lock()
	closed := a.state == assocClosed
	a.mu.Unlock()
	if !closed {
		a.r.log.Debug("socksify: udp: the gateway ended the association", "dst", a.first)
	}
	a.close()
}

// close ends the association.
func (a *udpAssoc) close() {
	r := a.r
	r.mu.Lock()
	if r.assocs[a.ino] == a {
		delete(r.assocs, a.ino)
	}
	r.mu.Unlock()
	a.mu.Lock()
	prev := a.state
	a.state = assocClosed
	a.queue = nil
	a.mu.Unlock()
	if prev == assocUp {
		a.closeConns()
	}
	// A pending association closes its sockets when establish sees the
	// state; a failed one has none left.
}

// udpTarget returns what to ask the gateway for a datagram to dst: the
// name for a fake address, else the address.
func (sup *supervisor) udpTarget(dst netip.AddrPort) (proto.Addr, bool) {
	ip := dst.Addr().Unmap()
	if isFake(ip) {
		name, ok := sup.fake.name(ip)
		if !ok {
			return proto.Addr{}, false
		}
		return proto.Addr{FQDN: name, Port: dst.Port()}, true
	}
	return proto.Addr{IP: ip.WithZone(""), Port: dst.Port()}, true
}

// sockName returns fd's local address.
func sockName(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := sockaddrAP(sa)
	if !ap.IsValid() {
		return netip.AddrPort{}, unix.EAFNOSUPPORT
	}
	return ap, nil
}

// sockaddrAP returns an AF_INET or AF_INET6 address as an AddrPort (the
// zero AddrPort for other families).
func sockaddrAP(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// sockaddrOf is ap as a sockaddr of its own family: AF_INET for an IPv4
// address, AF_INET6 (with no scope) otherwise.
func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr(); a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

// udpLocal returns the local address of the program's UDP socket (dup),
// binding it first, as the kernel's autobind would, if it has no port
// yet: replies are sent to it.
func udpLocal(dup int, si sockInfo) (netip.AddrPort, error) {
	ap, err := sockName(dup)
	if err != nil || ap.Port() != 0 {
		return ap, err
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{}
	if si.domain == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{}
	}
	if err := unix.Bind(dup, sa); err != nil && err != unix.EINVAL { // EINVAL: bound meanwhile
		return ap, err
	}
	return sockName(dup)
}

// connectUDP connects the program's UDP socket to the ingress and
// records what it connected to. Nothing is asked of the gateway yet.
func (sup *supervisor) connectUDP(c call, dup int, si sockInfo, dst netip.AddrPort) {
	defer unix.Close(dup)
	target, ok := sup.udpTarget(dst)
	if !ok {
		sup.fail(c, syscall.EHOSTUNREACH)
		return
	}
	in, sa, ok := sup.udp.ingressFor(si.domain, si.v6only)
	if !ok {
		sup.fail(c, syscall.ENETUNREACH)
		return
	}
	if err := rawConnect(dup, sa); err != nil {
		sup.fail(c, errnoOf(err))
		return
	}
	src, err := sockName(dup)
	if err != nil {
		sup.fail(c, errnoOf(err))
		return
	}
	sup.udp.addConn(&udpConnected{
		ino: si.ino, src: unmapAP(src), in: in, dst: dst, target: target,
		domain: si.domain, v6only: si.v6only, tid: c.tid, fd: int(int32(c.args[0])), since: time.Now(),
	})
	sup.socks.update(si.ino, func(st *sockState) { st.peer, st.domain, st.udp = dst, si.domain, true })
	sup.ret(c, 0)
}

// sendUDP emulates a send of the datagram b to dst through the socket's
// association: at once when it is up, else from a goroutine that waits
// for it. gso is the segment size of UDP generic segmentation offload
// (a UDP_SEGMENT control message, else the socket's option), which
// makes b several datagrams. dup is not kept.
func (sup *supervisor) sendUDP(c call, dup int, si sockInfo, dst netip.AddrPort, b []byte, gso int) {
	target, ok := sup.udpTarget(dst)
	if !ok {
		sup.failEvent(c, Event{Network: "udp", Dest: dst, Errno: syscall.EHOSTUNREACH, Err: errStaleFake})
		return
	}
	if gso == 0 {
		gso, _ = unix.GetsockoptInt(dup, unix.SOL_UDP, unix.UDP_SEGMENT)
	}
	var framed [][]byte
	for rest := b; ; {
		seg := rest
		if gso > 0 && len(seg) > gso {
			seg = rest[:gso]
		}
		f, err := udpFrame(target, seg)
		if err != nil {
			sup.fail(c, errnoOf(err))
			return
		}
		framed = append(framed, f)
		if rest = rest[len(seg):]; len(rest) == 0 {
			break
		}
	}
	local, err := udpLocal(dup, si)
	if err != nil {
		sup.fail(c, errnoOf(err))
		return
	}
	a, err := sup.udp.assoc(si.ino, c.tid, dst, target)
	if err != nil {
		sup.fail(c, syscall.ENETUNREACH)
		return
	}
	a.setLocal(local, si.domain, si.v6only)
	a.noteDest(dst, target)
	sup.socks.update(si.ino, func(st *sockState) { st.udp = true })
	switch a.status() {
	case assocUp:
		sup.answerSend(c, a, framed, len(b))
		return
	case assocPending:
	default:
		sup.fail(c, syscall.ENETUNREACH)
		return
	}
	sup.wg.Add(1)
	go func() {
		defer sup.wg.Done()
		if err := a.wait(sup.ctx); err != nil {
			sup.fail(c, syscall.ENETUNREACH)
			return
		}
		sup.answerSend(c, a, framed, len(b))
	}()
}

// answerSend sends the framed datagrams through a and answers c with n
// or the error.
func (sup *supervisor) answerSend(c call, a *udpAssoc, framed [][]byte, n int) {
	if a.status() != assocUp {
		sup.fail(c, syscall.ENETUNREACH)
		return
	}
	for _, f := range framed {
		if err := a.send(f); err != nil {
			sup.fail(c, errnoOf(err))
			return
		}
	}
	sup.ret(c, int64(n))
}
