//go:build linux && amd64

package socksify

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/relay"
	"github.com/socks6/socks6/proto"
	"golang.org/x/sys/unix"
)

// A call is one notification being answered. Exactly one answer goes
// out for it: CONTINUE, a return value or an errno.
type call struct {
	id    uint64
	tid   int
	nr    int32
	args  [6]uint64
	start time.Time
}

// handle answers n, inline or from a goroutine it starts.
func (sup *supervisor) handle(n *seccompNotif) {
	c := call{id: n.ID, tid: int(n.Pid), nr: n.Data.Nr, args: n.Data.Args}
	switch n.Data.Nr {
	case sysConnect:
		sup.connect(c)
	case sysSendto:
		sup.sendto(c)
	case sysSendmsg:
		sup.sendmsg(c)
	case sysSendmmsg:
		sup.sendmmsg(c)
	case sysRecvfrom:
		sup.recvfrom(c)
	case sysRecvmsg:
		sup.recvmsg(c, false)
	case sysRecvmmsg:
		sup.recvmsg(c, true)
	case sysGetpeername:
		sup.getpeername(c)
	case sysGetsockname:
		sup.getsockname(c)
	case sysListen:
		sup.listen(c)
	case sysAccept, sysAccept4:
		sup.accept(c)
	default:
		// bind runs as asked.
		sup.cont(c)
	}
}

// Answers.

func (sup *supervisor) cont(c call) {
	sup.sent(c, notifContinue(sup.lfd, c.id))
}

func (sup *supervisor) ret(c call, v int64) {
	sup.sent(c, notifReturn(sup.lfd, c.id, v, 0))
}

func (sup *supervisor) fail(c call, e syscall.Errno) {
	if e == 0 {
		e = syscall.EIO
	}
	sup.sent(c, notifReturn(sup.lfd, c.id, 0, e))
}

func (sup *supervisor) sent(c call, err error) {
	// ENOENT: the thread was killed while we worked; nobody waits for
	// the answer.
	if err != nil && err != unix.ENOENT {
		sup.log.Debug("socksify: SECCOMP_IOCTL_NOTIF_SEND", "syscall", c.nr, "tid", c.tid, "err", err)
	}
}

// valid reports whether c's thread still waits for its answer; after it
// returns true, what was read from the thread is known to be its.
func (sup *supervisor) valid(c call) bool { return notifIDValid(sup.lfd, c.id) }

// errnoOf returns err's errno, or EIO.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	return syscall.EIO
}

// An outcome says how to go on after reading a socket address.
type outcome uint8

const (
	goOn   outcome = iota // the address was read and decoded
	goCont                // answer CONTINUE: nothing for us (the kernel reports any error)
	goFail                // answer the errno
	goGone                // the thread is gone: answer nothing
)

// readSockaddr reads the socket address (addr, alen) of c's thread.
func (sup *supervisor) readSockaddr(c call, addr, alen uint64) (sockaddr, outcome, syscall.Errno) {
	if alen > maxSockaddrLen {
		return sockaddr{}, goFail, syscall.EINVAL
	}
	if alen < 2 {
		// Too short for any family: the kernel fails it, or takes it as
		// AF_UNSPEC; neither sends anything.
		return sockaddr{}, goCont, 0
	}
	b := make([]byte, alen)
	if err := readMem(c.tid, addr, b); err != nil {
		if !sup.valid(c) {
			return sockaddr{}, goGone, 0
		}
		return sockaddr{}, goFail, syscall.EFAULT
	}
	if !sup.valid(c) {
		return sockaddr{}, goGone, 0
	}
	sa, err := parseSockaddr(b)
	switch {
	case errors.Is(err, errSockaddrShort):
		return sa, goFail, syscall.EINVAL
	case err != nil:
		return sa, goCont, 0
	}
	return sa, goOn, 0
}

// sock duplicates c's fd (args[0]) and describes it. On error the dup is
// closed.
func (sup *supervisor) sock(c call) (int, sockInfo, error) {
	dup, err := sup.pidfds.getfd(c.tid, int(int32(c.args[0])))
	if err != nil {
		return -1, sockInfo{}, err
	}
	si, err := getSockInfo(dup)
	if err != nil {
		unix.Close(dup)
		return -1, sockInfo{}, err
	}
	return dup, si, nil
}

// sockFailed answers a connect or send whose socket sock could not look
// at. A bad fd or one that is not a socket gets the errno the kernel
// would give (EBADF, ENOTSOCK); any other cause (the supervisor out of
// fds, a thread whose fd table cannot be reached) fails the call too: it
// must not run unsupervised.
func (sup *supervisor) sockFailed(c call, err error) {
	if sup.valid(c) {
		sup.fail(c, errnoOf(err))
	}
}

// sockIno returns the socket inode of c's fd (args[0]).
func (sup *supervisor) sockIno(c call) (uint64, int, error) {
	dup, err := sup.pidfds.getfd(c.tid, int(int32(c.args[0])))
	if err != nil {
		return 0, -1, err
	}
	ino, err := sockInode(dup)
	if err != nil {
		unix.Close(dup)
		return 0, -1, err
	}
	return ino, dup, nil
}

// routeOf returns the route of dst for socket si. Protocols other than
// TCP and UDP (ICMP echo sockets, SCTP, UDP-Lite, …) are only direct or
// denied.
func (sup *supervisor) routeOf(si sockInfo, dst netip.AddrPort) route {
	switch {
	case si.stream():
		return sup.pol.route(true, dst)
	case si.udp():
		r := sup.pol.route(false, dst)
		if r == routeProxy && si.proto != unix.IPPROTO_UDP {
			return routeDeny // UDP-Lite: the gateway relays UDP
		}
		return r
	}
	if r := sup.pol.route(false, dst); r == routeDirect {
		return r
	}
	return routeDeny
}

// connect(fd, addr, addrlen).
func (sup *supervisor) connect(c call) {
	sa, oc, e := sup.readSockaddr(c, c.args[1], c.args[2])
	switch oc {
	case goCont:
		if sa.family == afUnspec {
			sup.disconnect(c)
			return
		}
		sup.cont(c)
		return
	case goFail:
		sup.fail(c, e)
		return
	case goGone:
		return
	}
	switch sa.family {
	case afUnix:
		if unixPathRefused(sa.path) {
			sup.log.Debug("socksify: connect refused: name service cache", "tid", c.tid, "path", sa.path)
			sup.fail(c, syscall.ECONNREFUSED)
			return
		}
		sup.cont(c)
		return
	case afInet, afInet6:
	default:
		sup.cont(c)
		return
	}
	dup, si, err := sup.sock(c)
	if err != nil {
		sup.sockFailed(c, err)
		return
	}
	if !si.inet() {
		unix.Close(dup)
		sup.cont(c)
		return
	}
	dst := sa.ap
	r := sup.routeOf(si, dst)
	sup.log.Debug("socksify: connect", "tid", c.tid, "dst", dst, "stream", si.stream(), "route", r)
	switch r {
	case routeDirect:
		sup.forgetPeer(si)
		unix.Close(dup)
		sup.cont(c)
	case routeDeny:
		// No Event: a UDP connect sends nothing, and glibc's and Go's
		// resolvers connect a UDP socket to every address they return
		// to choose among them (RFC 6724); failing is enough.
		unix.Close(dup)
		sup.fail(c, syscall.ENETUNREACH)
	case routeDNS:
		sup.connectDNS(c, dup, si, dst)
	case routeProxy:
		// TCP wants the socket's own family (tcp_v4_connect,
		// tcp_v6_connect); UDP over IPv6 takes an AF_INET address too
		// unless IPV6_V6ONLY (ip6_datagram_connect).
		v4on6 := si.udp() && sa.family == afInet && si.domain == unix.AF_INET6 && !si.v6only
		if int(sa.family) != si.domain && !v4on6 {
			unix.Close(dup)
			sup.fail(c, syscall.EAFNOSUPPORT)
			return
		}
		if si.udp() {
			sup.connectUDP(c, dup, si, dst)
			return
		}
		sup.connectProxy(c, dup, si, dst)
	}
}

// forgetPeer forgets where the socket si was connected through the
// supervisor: it is being connected elsewhere or disconnected.
func (sup *supervisor) forgetPeer(si sockInfo) {
	udp := false
	sup.socks.view(si.ino, func(st *sockState) { st.peer, udp = netip.AddrPort{}, st.udp })
	if udp {
		sup.udp.dropConn(si.ino)
	}
}

// disconnect handles connect(AF_UNSPEC), which the kernel runs as asked:
// a socket that was connected through the supervisor forgets its peer
// (getpeername then fails with ENOTCONN, as the kernel's would), and a
// UDP socket's association is dropped.
func (sup *supervisor) disconnect(c call) {
	dup, si, err := sup.sock(c)
	if err == nil {
		if si.inet() {
			sup.forgetPeer(si)
		}
		unix.Close(dup)
	}
	sup.cont(c)
}

// deny fails a datagram the program may not send with ENETUNREACH and
// reports it.
func (sup *supervisor) deny(c call, si sockInfo, dst netip.AddrPort) {
	sup.log.Debug("socksify: denied", "tid", c.tid, "dst", dst, "udp", si.udp())
	if sup.onConnect == nil {
		sup.fail(c, syscall.ENETUNREACH)
		return
	}
	network := "udp"
	if !si.udp() {
		network = "ip proto " + strconv.Itoa(si.proto)
	}
	ev := Event{Pid: c.tid, Comm: comm(c.tid), Network: network, Dest: dst, Errno: syscall.ENETUNREACH, Err: errNoUDP}
	sup.fail(c, syscall.ENETUNREACH)
	sup.onConnect(ev)
}

// failEvent fails c with ev.Errno and then reports ev.
func (sup *supervisor) failEvent(c call, ev Event) {
	if sup.onConnect == nil {
		sup.fail(c, ev.Errno)
		return
	}
	ev.Pid, ev.Comm = c.tid, comm(c.tid)
	sup.fail(c, ev.Errno)
	sup.onConnect(ev)
}

var errNoUDP = errors.New("socksify: only TCP and unicast UDP go through the gateway; other traffic to non-direct destinations is refused")

// connectDNS connects the program's socket to the fake DNS server, which
// answers as the server the program asked for. The answer is that of
// the real connect: 0, or EINPROGRESS for a non-blocking TCP socket.
func (sup *supervisor) connectDNS(c call, dup int, si sockInfo, dst netip.AddrPort) {
	defer unix.Close(dup)
	ep, ok := sup.dns.addr(si.stream(), si.domain == unix.AF_INET6, si.v6only)
	if !ok {
		sup.fail(c, syscall.ENETUNREACH)
		return
	}
	raw, _ := appendSockaddr(nil, si.domain, ep)
	err := rawConnect(dup, raw)
	if err == nil || err == unix.EINPROGRESS {
		sup.socks.update(si.ino, func(st *sockState) {
			st.peer, st.domain = dst, si.domain
			if si.udp() {
				st.dns, st.dnsLast = true, dst
			}
		})
	}
	if err != nil {
		sup.fail(c, errnoOf(err))
		return
	}
	sup.ret(c, 0)
}

// connectProxy starts the in-band CONNECT: the program's own socket is
// connected to the gateway and the handshake runs on it, while the
// program's thread waits in connect. The data then flows between the
// program and the gateway with no copy in between.
func (sup *supervisor) connectProxy(c call, dup int, si sockInfo, dst netip.AddrPort) {
	c.start = time.Now()
	var target string
	var taddr proto.Addr
	ip := dst.Addr().Unmap()
	if isFake(ip) {
		name, ok := sup.fake.name(ip)
		if !ok {
			unix.Close(dup)
			sup.log.Debug("socksify: connect to a fake address no name owns", "tid", c.tid, "dst", dst)
			sup.failEvent(c, Event{Network: "tcp", Dest: dst, Errno: syscall.EHOSTUNREACH, Err: errStaleFake})
			return
		}
		target = net.JoinHostPort(name, strconv.Itoa(int(dst.Port())))
		taddr = proto.Addr{FQDN: name, Port: dst.Port()}
	} else {
		ap := netip.AddrPortFrom(ip, dst.Port())
		target, taddr = ap.String(), proto.AddrFromAddrPort(ap)
	}
	gw, ok := sup.gatewayFor(si)
	if !ok {
		unix.Close(dup)
		sup.failEvent(c, Event{Network: "tcp", Dest: dst, Target: target, Errno: syscall.ENETUNREACH, Err: errGatewayFamily})
		return
	}
	si, err := withNonblock(dup, si)
	if err != nil {
		unix.Close(dup)
		sup.fail(c, errnoOf(err))
		return
	}
	if sup.plain && sup.dialer.Username == "" && si.nonblock {
		sup.startInband(c, dup, si, dst, target, taddr, gw)
		return
	}
	sup.wg.Add(1)
	go sup.handshake(c, dup, si, dst, target, taddr, gw)
}

var (
	errStaleFake     = errors.New("socksify: no name owns this fake address (evicted, or never handed out)")
	errGatewayFamily = errors.New("socksify: the gateway has no address of this socket's family")
)

// gatewayFor returns the gateway's address as a socket address of si's
// family: an IPv4 gateway serves AF_INET6 sockets IPv4-mapped, unless
// they are IPV6_V6ONLY.
func (sup *supervisor) gatewayFor(si sockInfo) ([]byte, bool) {
	var mapped netip.AddrPort
	for _, gw := range sup.gw {
		switch {
		case si.domain == unix.AF_INET && gw.Addr().Is4():
			b, err := appendSockaddr(nil, afInet, gw)
			return b, err == nil
		case si.domain == unix.AF_INET6 && gw.Addr().Is6():
			b, err := appendSockaddr(nil, afInet6, gw)
			return b, err == nil
		case si.domain == unix.AF_INET6 && !si.v6only && !mapped.IsValid():
			mapped = gw
		}
	}
	if mapped.IsValid() {
		b, err := appendSockaddr(nil, afInet6, mapped)
		return b, err == nil
	}
	return nil, false
}

// handshake connects the program's socket to the gateway, runs the SOCKS
// handshake and CONNECT on it, and answers the program's connect: 0 on
// success (also for a non-blocking socket: its connect returns only now,
// one gateway round trip later, already connected), else the errno of
// the failure. It runs on a goroutine: for blocking sockets, with
// credentials, and with the extensions (see startInband for the rest).
func (sup *supervisor) handshake(c call, dup int, si sockInfo, dst netip.AddrPort, target string, taddr proto.Addr, gw []byte) {
	defer sup.wg.Done()
	ctx, cancel := sup.ctx, context.CancelFunc(func() {})
	if sup.timeout > 0 {
		ctx, cancel = context.WithTimeout(sup.ctx, sup.timeout)
	}
	defer cancel()
	if sup.dialer.TLSConfig != nil {
		sup.handshakeTLS(ctx, c, dup, si, dst, target)
		return
	}
	connected := false
	err := connectCtx(ctx, dup, gw, si.nonblock)
	if err == nil {
		connected = true
		if sup.plain {
			d := sup.dialer
			_, err = socks5Request(ctx, newFDConn(dup), d.Username, d.Password, proto.CommandConnect, taddr)
		} else {
			_, err = sup.dialer.Handshake(ctx, newFDConn(dup), "tcp", target)
		}
	}
	sup.answerConnect(c, dup, si, dst, target, err, connected)
}

// handshakeTLS is handshake for a gateway reached over TLS: the client
// library dials it and runs the handshake and CONNECT, and the program's
// socket is then connected to the supervisor, which relays
// (tlsrelay_linux.go).
func (sup *supervisor) handshakeTLS(ctx context.Context, c call, dup int, si sockInfo, dst netip.AddrPort, target string) {
	gc, err := sup.dialer.DialContext(ctx, "tcp", target)
	connected := false
	if err == nil {
		var local net.Conn
		local, err = connectLocal(ctx, dup, si.domain, si.v6only, si.nonblock)
		if err != nil {
			connected = true // perhaps: answerConnect disconnects it
			gc.Close()
		} else {
			// The TLS connection itself, which the relay closes under
			// crypto/tls (client.Conn reads nothing past the reply).
			sup.tlsRel.Start(local, gc.(*client.Conn).Conn, relay.Options{}, nil)
		}
	}
	sup.answerConnect(c, dup, si, dst, target, err, connected)
}

// answerConnect answers the program's connect after the handshake: 0 if
// err is nil, else the errno of the failure, and then closes dup. A
// failed socket that was connected to the gateway is disconnected
// (connect AF_UNSPEC), so the gateway's connection does not linger in
// it.
func (sup *supervisor) answerConnect(c call, dup int, si sockInfo, dst netip.AddrPort, target string, err error, connected bool) {
	defer unix.Close(dup)
	errno := handshakeErrno(err)
	name := ""
	if sup.onConnect != nil {
		name = comm(c.tid) // while the thread still waits
	}
	if errno == 0 {
		sup.socks.update(si.ino, func(st *sockState) { st.peer, st.domain = dst, si.domain })
		sup.ret(c, 0)
	} else {
		if connected {
			rawConnect(dup, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // AF_UNSPEC: disconnect
		}
		sup.fail(c, errno)
	}
	if sup.log.Enabled(sup.ctx, slog.LevelDebug) {
		sup.log.Debug("socksify: connect through the gateway", "tid", c.tid, "dst", dst, "target", target, "errno", errno, "err", err, "dur", time.Since(c.start))
	}
	if sup.onConnect != nil {
		sup.onConnect(Event{Pid: c.tid, Comm: name, Network: "tcp", Dest: dst, Target: target, Err: err, Errno: errno, Duration: time.Since(c.start)})
	}
}

// connectCtx connects fd to sa within ctx. A non-blocking socket is
// waited for with poll; a blocking one blocks in connect, and ctx's end
// aborts it with shutdown (a socket still connecting is then reset to
// unconnected).
func connectCtx(ctx context.Context, fd int, sa []byte, nonblock bool) error {
	var aborted bool
	var stop func() bool
	var ran chan struct{} // closed when the abort has finished
	if !nonblock {
		ran = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			unix.Shutdown(fd, unix.SHUT_RDWR)
			close(ran)
		})
	}
	err := rawConnect(fd, sa)
	if stop != nil {
		if aborted = !stop(); aborted {
			// The shutdown has started: let it finish before the caller
			// closes fd, whose number another socket could then reuse.
			<-ran
		}
	}
	if aborted {
		return ctx.Err()
	}
	switch err {
	case nil:
		return nil
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
	default:
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rev, err := pollFD(fd, unix.POLLOUT, int(pollSlice/time.Millisecond))
		if err != nil && err != unix.EINTR {
			return err
		}
		if rev == 0 {
			continue
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soerr != 0 {
			return syscall.Errno(soerr)
		}
		return nil
	}
}

// getpeername(fd, addr, addrlen*): the address the program connected to
// for a socket the supervisor redirected.
func (sup *supervisor) getpeername(c call) {
	ino, dup, err := sup.sockIno(c)
	if err != nil {
		sup.cont(c)
		return
	}
	var peer netip.AddrPort
	var domain int
	sup.socks.view(ino, func(st *sockState) { peer, domain = st.peer, st.domain })
	if !peer.IsValid() {
		unix.Close(dup)
		sup.cont(c)
		return
	}
	if domain == 0 {
		if domain, err = unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
			unix.Close(dup)
			sup.cont(c)
			return
		}
	}
	unix.Close(dup)
	raw, err := appendSockaddr(nil, domain, peer)
	if err != nil {
		sup.cont(c)
		return
	}
	sup.log.Debug("socksify: getpeername", "tid", c.tid, "peer", peer)
	sup.writeAddr(c, raw, c.args[1], c.args[2])
}

// writeAddr stores raw at addr (truncated to *lenp bytes) and its length
// at lenp, as getpeername and recvfrom do, and answers 0.
func (sup *supervisor) writeAddr(c call, raw []byte, addr, lenp uint64) {
	e, gone := sup.writeAddrMem(c, raw, addr, lenp)
	switch {
	case gone:
	case e != 0:
		sup.fail(c, e)
	default:
		sup.ret(c, 0)
	}
}

// writeAddrMem stores raw at addr (truncated to *lenp bytes) and its
// length at lenp, and returns the errno the call would fail with, or
// gone if the thread is gone.
func (sup *supervisor) writeAddrMem(c call, raw []byte, addr, lenp uint64) (e syscall.Errno, gone bool) {
	var lb [4]byte
	if err := readMem(c.tid, lenp, lb[:]); err != nil {
		return syscall.EFAULT, false
	}
	l := int32(le32(lb[:]))
	if l < 0 {
		return syscall.EINVAL, false
	}
	if !sup.valid(c) {
		return 0, true
	}
	if err := writeMem2(c.tid, addr, raw[:min(int(l), len(raw))], lenp, put32(uint32(len(raw)))); err != nil {
		return syscall.EFAULT, false
	}
	return 0, false
}
