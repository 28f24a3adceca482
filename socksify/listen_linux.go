//go:build linux && amd64

package socksify

// Listening sockets published at the gateway (Supervisor.Publish).
//
// The program's listening socket stays a real local one: listen() runs
// as asked (the supervisor makes the call on its duplicate), and then
// the supervisor asks the gateway for a listener on the same port
// (LISTEN, through client.Dialer.ListenConfig; the gateway picks
// another port if that one is taken) before the program's listen
// returns. Each listener has a SOCKS6 extension session of its own,
// which the supervisor keeps: the protocol cannot close one listener of
// a session, and closing the session is how the gateway's socket goes
// when the program's does. Callers that connect to
// the gateway's listener are taken by the client library in the
// background; each is announced to the program by a "doorbell": a
// local connection from the supervisor to the program's listening
// socket, so that the socket becomes readable for select, poll and
// epoll like any listening socket with a caller waiting. accept and
// accept4 on a published socket are emulated: the supervisor accepts
// from the socket itself and, when what it got is a doorbell, closes it
// and installs the gateway connection in its place
// (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND, which also
// answers the call with the new fd's number), reporting the caller's
// address as the peer; a local caller is installed as it is. The data
// then flows between the program and the gateway with no copy in
// between, as for CONNECT. getpeername on an installed connection
// reports the caller, and getsockname on the listener and on its
// connections the gateway's public address.
//
// A published listener ends when the program's socket is gone (the
// same sweep as for UDP, of /proc/self/net/tcp and tcp6) or when the
// gateway's session ends.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/relay"
	"golang.org/x/sys/unix"
)

const (
	maxDoorbells   = 128 // callers one listener holds that the program has not accepted
	doorbellDial   = 5 * time.Second
	listenSweepGap = 2 * time.Second
)

// A listenMgr publishes the program's listening sockets at the gateway.
type listenMgr struct {
	sup     *supervisor
	publish func(netip.AddrPort) bool
	count   atomic.Int32 // published listeners
	used    atomic.Bool  // something was published: getsockname and getpeername look further

	mu     sync.Mutex
	closed bool
	byIno  map[uint64]*published
	bells  map[netip.AddrPort]*doorbell // by the doorbell's local address

	stop chan struct{}
	wg   sync.WaitGroup
}

// A published is one of the program's listening sockets with a listener
// at the gateway.
type published struct {
	ino     uint64
	local   netip.AddrPort // the program's listening address
	dial    netip.AddrPort // where doorbells connect to
	domain  int
	gl      *client.Listener
	public  netip.AddrPort
	pending int // doorbells not accepted yet; guarded by listenMgr.mu
	since   time.Time
	tid     int
	comm    string
}

// A doorbell is a caller taken at the gateway, announced to the program
// by a local connection to its listening socket.
type doorbell struct {
	pl     *published
	bell   net.Conn     // the supervisor's end of the local connection
	gw     *client.Conn // the caller, through the gateway
	caller netip.AddrPort
}

func newListenMgr(sup *supervisor, publish func(netip.AddrPort) bool) *listenMgr {
	m := &listenMgr{sup: sup, publish: publish, byIno: map[uint64]*published{},
		bells: map[netip.AddrPort]*doorbell{}, stop: make(chan struct{})}
	m.wg.Add(1)
	go m.sweeper()
	return m
}

// close ends every publication.
func (m *listenMgr) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	var pls []*published
	for _, pl := range m.byIno {
		pls = append(pls, pl)
	}
	for k, db := range m.bells {
		delete(m.bells, k)
		db.gw.Close()
		db.bell.Close()
	}
	m.mu.Unlock()
	close(m.stop)
	for _, pl := range pls {
		pl.gl.Close()
	}
	m.wg.Wait()
}

func (m *listenMgr) get(ino uint64) *published {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byIno[ino]
}

// listen(fd, backlog): run as asked, on the supervisor's duplicate; a
// TCP socket that Publish selects is then published at the gateway
// before the call returns.
func (sup *supervisor) listen(c call) {
	m := sup.lis
	if m == nil {
		sup.cont(c)
		return
	}
	dup, si, err := sup.sock(c)
	if err != nil {
		sup.cont(c)
		return
	}
	if !si.stream() || !si.inet() {
		unix.Close(dup)
		sup.cont(c)
		return
	}
	defer unix.Close(dup)
	if err := unix.Listen(dup, int(int32(c.args[1]))); err != nil {
		sup.fail(c, errnoOf(err))
		return
	}
	local, err := sockName(dup)
	if err != nil || m.get(si.ino) != nil || !m.publish(local) {
		sup.ret(c, 0)
		return
	}
	sup.wg.Add(1)
	go func() {
		defer sup.wg.Done()
		m.publishSocket(c, si, local)
	}()
}

// publishSocket asks the gateway for a listener for the program's
// socket si, listening at local, and answers the program's listen.
func (m *listenMgr) publishSocket(c call, si sockInfo, local netip.AddrPort) {
	sup := m.sup
	ctx, cancel := sup.ctx, context.CancelFunc(func() {})
	if sup.timeout > 0 {
		ctx, cancel = context.WithTimeout(sup.ctx, sup.timeout)
	}
	defer cancel()
	ev := ListenEvent{Pid: c.tid, Comm: comm(c.tid), Local: local}
	gl, err := sup.dialer.ListenConfig(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(int(local.Port()))), client.ListenConfig{DualStack: true})
	if err != nil {
		sup.ret(c, 0) // the socket listens locally all the same
		sup.log.Debug("socksify: listen: not published", "local", local, "err", err)
		ev.Err = err
		m.report(ev)
		return
	}
	pl := &published{ino: si.ino, local: local, dial: doorbellAddr(local, si), domain: si.domain,
		gl: gl, public: m.publicAddr(gl), since: time.Now(), tid: c.tid, comm: ev.Comm}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		gl.Close()
		sup.ret(c, 0)
		return
	}
	m.byIno[si.ino] = pl
	m.count.Add(1)
	m.used.Store(true)
	m.wg.Add(1)
	m.mu.Unlock()
	go m.acceptLoop(pl)
	sup.ret(c, 0)
	sup.log.Debug("socksify: listen: published", "local", local, "public", pl.public)
	ev.Public = pl.public
	m.report(ev)
}

func (m *listenMgr) report(ev ListenEvent) {
	if m.sup.onListen != nil {
		m.sup.onListen(ev)
	}
}

// publicAddr returns where callers reach gl: its first public address,
// else its bound address, with the gateway's own address for the
// unspecified one.
func (m *listenMgr) publicAddr(gl *client.Listener) netip.AddrPort {
	if pub := gl.PublicAddrs(); len(pub) > 0 {
		return pub[0]
	}
	ap := gl.Addr().(*net.TCPAddr).AddrPort()
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() && len(m.sup.gw) > 0 {
		ip = m.sup.gw[0].Addr()
	}
	return netip.AddrPortFrom(ip, ap.Port())
}

// doorbellAddr returns where to connect to reach a socket listening at
// local: loopback for the wildcard address.
func doorbellAddr(local netip.AddrPort, si sockInfo) netip.AddrPort {
	ip := local.Addr().Unmap()
	if ip.IsUnspecified() {
		if si.domain == unix.AF_INET6 && si.v6only {
			ip = netip.IPv6Loopback()
		} else {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	return netip.AddrPortFrom(ip, local.Port())
}

// acceptLoop rings the doorbell for every caller the gateway's listener
// takes, until it ends.
func (m *listenMgr) acceptLoop(pl *published) {
	defer m.wg.Done()
	for {
		c, err := pl.gl.AcceptContext(context.Background())
		if err != nil {
			m.unpublish(pl, err)
			return
		}
		m.ring(pl, c)
	}
}

// ring announces the caller gw to the program: a local connection to its
// listening socket, registered by its source address before it
// connects, so that an accept that gets it finds it.
func (m *listenMgr) ring(pl *published, gw *client.Conn) {
	caller := netip.AddrPort{}
	if a, ok := gw.RemoteAddr().(*net.TCPAddr); ok {
		caller = unmapAP(a.AddrPort())
	}
	db := &doorbell{pl: pl, gw: gw, caller: caller}
	m.mu.Lock()
	if m.closed || m.byIno[pl.ino] != pl || pl.pending >= maxDoorbells {
		m.mu.Unlock()
		gw.Close()
		return
	}
	pl.pending++
	m.mu.Unlock()
	var key netip.AddrPort
	d := net.Dialer{Timeout: doorbellDial, Control: func(network, address string, rc syscall.RawConn) error {
		var err error
		cerr := rc.Control(func(fd uintptr) {
			if err = unix.Bind(int(fd), sockaddrOf(netip.AddrPortFrom(pl.dial.Addr(), 0))); err != nil {
				return
			}
			var ap netip.AddrPort
			if ap, err = sockName(int(fd)); err != nil {
				return
			}
			key = unmapAP(ap)
			m.mu.Lock()
			m.bells[key] = db
			m.mu.Unlock()
		})
		if cerr != nil {
			return cerr
		}
		return err
	}}
	network := "tcp4"
	if pl.dial.Addr().Is6() {
		network = "tcp6"
	}
	bell, err := d.Dial(network, pl.dial.String())
	if err != nil {
		m.sup.log.Debug("socksify: listen: ringing the program's socket", "local", pl.local, "err", err)
		m.drop(key, db)
		if errors.Is(err, syscall.ECONNREFUSED) {
			m.unpublish(pl, errListenerClosed) // nothing listens there any more
		}
		return
	}
	m.mu.Lock()
	db.bell = bell
	if m.bells[key] != db { // taken already, or dropped
		m.mu.Unlock()
		bell.Close()
		return
	}
	m.mu.Unlock()
	m.wg.Add(1)
	go m.watch(key, db)
}

// watch waits for the doorbell's end: the program's accept took it (and
// the supervisor closed the program's end), or the program's socket
// closed with the doorbell still queued (reset): then the caller is
// dropped.
func (m *listenMgr) watch(key netip.AddrPort, db *doorbell) {
	defer m.wg.Done()
	var b [1]byte
	for {
		if _, err := db.bell.Read(b[:]); err != nil {
			break
		}
	}
	m.drop(key, db)
}

// drop forgets db unless an accept took it, and then closes its caller;
// the doorbell connection is closed in any case.
func (m *listenMgr) drop(key netip.AddrPort, db *doorbell) {
	m.mu.Lock()
	untaken := key.IsValid() && m.bells[key] == db
	if untaken {
		delete(m.bells, key)
	}
	if untaken || !key.IsValid() {
		db.pl.pending--
	}
	bell := db.bell
	m.mu.Unlock()
	if untaken || !key.IsValid() {
		db.gw.Close()
	}
	if bell != nil {
		bell.Close()
	}
}

// takeDoorbell returns and forgets the doorbell whose local address is
// peer, if any.
func (m *listenMgr) takeDoorbell(peer netip.AddrPort) *doorbell {
	m.mu.Lock()
	defer m.mu.Unlock()
	db := m.bells[peer]
	if db != nil {
		delete(m.bells, peer)
		db.pl.pending--
	}
	return db
}

// detach returns a duplicate of the caller's socket, which the
// supervisor owns, and closes the client library's; for a caller taken
// over TLS, the far end of a loopback connection that rel relays to it.
func (db *doorbell) detach(rel *relay.Group) (int, error) {
	if _, ok := db.gw.Conn.(*tls.Conn); ok {
		// A TLS stream cannot be handed over: the program gets a
		// loopback connection to the supervisor, which relays.
		ctx, cancel := context.WithTimeout(context.Background(), doorbellDial)
		defer cancel()
		fd, local, err := localPair(ctx)
		if err != nil {
			db.gw.Close()
			return -1, err
		}
		rel.Start(local, db.gw.Conn, relay.Options{}, nil)
		return fd, nil
	}
	sc, ok := db.gw.Conn.(syscall.Conn)
	if !ok {
		db.gw.Close()
		return -1, errors.New("socksify: the gateway connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		db.gw.Close()
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	db.gw.Close()
	if cerr != nil {
		return -1, cerr
	}
	return fd, err
}

// unpublish ends pl's publication: its listener at the gateway closes
// and the callers not accepted yet are dropped.
func (m *listenMgr) unpublish(pl *published, why error) {
	m.mu.Lock()
	if m.byIno[pl.ino] != pl {
		m.mu.Unlock()
		pl.gl.Close()
		return
	}
	delete(m.byIno, pl.ino)
	m.count.Add(-1)
	var dbs []*doorbell
	for k, db := range m.bells {
		if db.pl == pl {
			delete(m.bells, k)
			dbs = append(dbs, db)
		}
	}
	closed := m.closed
	m.mu.Unlock()
	pl.gl.Close()
	for _, db := range dbs {
		db.gw.Close()
		if db.bell != nil {
			db.bell.Close()
		}
	}
	if !closed {
		m.sup.log.Debug("socksify: listen: publication ended", "local", pl.local, "public", pl.public, "err", why)
		m.report(ListenEvent{Pid: pl.tid, Comm: pl.comm, Local: pl.local, Public: pl.public, Err: why, Closed: true})
	}
}

var errListenerClosed = errors.New("socksify: the program closed its listening socket")

// sweeper ends the publications whose program sockets are gone.
func (m *listenMgr) sweeper() {
	defer m.wg.Done()
	t := time.NewTicker(listenSweepGap)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		if m.count.Load() == 0 {
			continue
		}
		snap := time.Now()
		live, err := sockInodes("/proc/self/net/tcp", "/proc/self/net/tcp6")
		if err != nil {
			continue
		}
		var gone []*published
		m.mu.Lock()
		for ino, pl := range m.byIno {
			if !live[ino] && pl.since.Before(snap) {
				gone = append(gone, pl)
			}
		}
		m.mu.Unlock()
		for _, pl := range gone {
			m.unpublish(pl, errListenerClosed)
		}
	}
}

// accept(fd, addr, addrlen) and accept4(fd, addr, addrlen, flags): on a
// published socket, emulated (see the top of this file); otherwise run
// as asked.
func (sup *supervisor) accept(c call) {
	m := sup.lis
	if m == nil || m.count.Load() == 0 {
		sup.cont(c)
		return
	}
	ino, dup, err := sup.sockIno(c)
	if err != nil {
		sup.cont(c)
		return
	}
	pl := m.get(ino)
	if pl == nil {
		unix.Close(dup)
		sup.cont(c)
		return
	}
	flags := 0
	if c.nr == sysAccept4 {
		flags = int(int32(c.args[3]))
	}
	if flags&^(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC) != 0 {
		unix.Close(dup)
		sup.fail(c, syscall.EINVAL)
		return
	}
	if sup.tryAccept(c, dup, pl, flags) {
		unix.Close(dup)
		return
	}
	fl, err := unix.FcntlInt(uintptr(dup), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK != 0 {
		unix.Close(dup)
		sup.fail(c, syscall.EAGAIN)
		return
	}
	sup.wg.Add(1)
	go sup.blockingAccept(c, dup, pl, flags)
}

// blockingAccept waits for a caller for a blocking accept, as
// blockingRecv does for a datagram.
func (sup *supervisor) blockingAccept(c call, dup int, pl *published, flags int) {
	defer sup.wg.Done()
	defer unix.Close(dup)
	sup.block(c, dup, func() bool { return sup.tryAccept(c, dup, pl, flags) })
}

// tryAccept accepts a connection from the program's listening socket
// without blocking and, if there was one, installs it, or the caller its
// doorbell announced, in the program. It reports whether c was answered
// (or its thread is gone).
func (sup *supervisor) tryAccept(c call, dup int, pl *published, flags int) bool {
	nfd, sa, err := unix.Accept4(dup, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	switch err {
	case nil:
	case unix.EAGAIN, unix.EINTR, unix.ECONNABORTED:
		return false
	default:
		sup.fail(c, errnoOf(err))
		return true
	}
	src, peer := nfd, sockaddrAP(sa)
	if db := sup.lis.takeDoorbell(unmapAP(peer)); db != nil {
		unix.Close(nfd) // the doorbell's watcher sees EOF and closes its end
		gfd, err := db.detach(&sup.tlsRel)
		if err != nil {
			sup.fail(c, syscall.ECONNABORTED)
			return true
		}
		src, peer = gfd, db.caller
		if gino, err := sockInode(gfd); err == nil {
			sup.socks.update(gino, func(st *sockState) { st.peer, st.local, st.domain = db.caller, pl.public, pl.domain })
		}
	}
	defer unix.Close(src)
	if fl, err := unix.FcntlInt(uintptr(src), unix.F_GETFL, 0); err == nil {
		want := fl &^ unix.O_NONBLOCK
		if flags&unix.SOCK_NONBLOCK != 0 {
			want |= unix.O_NONBLOCK
		}
		if want != fl {
			unix.FcntlInt(uintptr(src), unix.F_SETFL, want)
		}
	}
	if addr := c.args[1]; addr != 0 && peer.IsValid() {
		raw, err := appendSockaddr(nil, pl.domain, peer)
		if err != nil {
			raw, _ = appendSockaddr(nil, unix.AF_INET6, peer) // an IPv6 caller of an IPv4 socket
		}
		if e, gone := sup.writeAddrMem(c, raw, addr, c.args[2]); gone || e != 0 {
			if !gone {
				sup.fail(c, e)
			}
			return true
		}
	}
	if _, err := notifAddFDSend(sup.lfd, c.id, src, flags&unix.SOCK_CLOEXEC != 0); err != nil && err != unix.ENOENT {
		sup.fail(c, errnoOf(err))
	}
	return true
}

// getsockname(fd, addr, addrlen*), trapped only when Publish is set: a
// published listening socket, and a connection installed from it,
// report the gateway's public address.
func (sup *supervisor) getsockname(c call) {
	m := sup.lis
	if m == nil || !m.used.Load() {
		sup.cont(c)
		return
	}
	ino, dup, err := sup.sockIno(c)
	if err != nil {
		sup.cont(c)
		return
	}
	defer unix.Close(dup)
	var addr netip.AddrPort
	if pl := m.get(ino); pl != nil {
		addr = pl.public
	} else {
		sup.socks.view(ino, func(st *sockState) { addr = st.local })
	}
	if !addr.IsValid() {
		sup.cont(c)
		return
	}
	domain, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		sup.cont(c)
		return
	}
	raw, err := appendSockaddr(nil, domain, addr)
	if err != nil {
		sup.cont(c)
		return
	}
	sup.writeAddr(c, raw, c.args[1], c.args[2])
}
