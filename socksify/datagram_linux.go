//go:build linux && amd64

package socksify

import (
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/socks6/socks6/proto"
	"golang.org/x/sys/unix"
)

// Layouts of struct msghdr (56 bytes) and struct mmsghdr (64) on x86_64.
const (
	sizeofMsghdr    = 56
	sizeofMmsghdr   = 64
	offMsgName      = 0
	offMsgNamelen   = 8
	offMsgIov       = 16
	offMsgIovlen    = 24
	offMsgCtrl      = 32
	offMsgCtrllen   = 40
	offMsgFlags     = 48
	offMmsgLen      = 56
	maxDatagram     = 65535
	maxMmsgVlen     = 1024 // UIO_MAXIOV, the kernel's cap on vlen
	dnsIDsPerSocket = 64
	recvPollSlice   = 200 * time.Millisecond
)

// recvFlagsEmulated are the recv flags the emulation honours; a call
// with any other (MSG_ERRQUEUE, MSG_OOB, …) runs as asked.
const recvFlagsEmulated = unix.MSG_PEEK | unix.MSG_TRUNC | unix.MSG_DONTWAIT | unix.MSG_WAITALL | unix.MSG_CMSG_CLOEXEC | unix.MSG_WAITFORONE

// sendto(fd, buf, len, flags, addr, addrlen), trapped when addr is not
// NULL.
func (sup *supervisor) sendto(c call) {
	sa, oc, e := sup.sendDest(c, c.args[4], c.args[5])
	if sup.answered(c, oc, e) {
		return
	}
	if !sa.isIP() && sa.family != afUnspec {
		sup.cont(c)
		return
	}
	sup.sendDatagram(c, sa, int(c.args[3]), func() ([]byte, int, error) {
		if c.args[2] > maxDatagram {
			return nil, 0, unix.EMSGSIZE
		}
		b := make([]byte, c.args[2])
		return b, 0, readMem(c.tid, c.args[1], b)
	})
}

// sendmsg(fd, msg, flags): trapped always; only a msg_name matters.
func (sup *supervisor) sendmsg(c call) {
	hdr := make([]byte, sizeofMsghdr)
	if err := readMem(c.tid, c.args[1], hdr); err != nil {
		sup.memFailed(c)
		return
	}
	name, namelen := le64(hdr[offMsgName:]), msgNamelen(hdr)
	if name == 0 || namelen == 0 {
		sup.cont(c)
		return
	}
	sa, oc, e := sup.sendDest(c, name, namelen)
	if sup.answered(c, oc, e) {
		return
	}
	if !sa.isIP() && sa.family != afUnspec {
		sup.cont(c)
		return
	}
	sup.sendDatagram(c, sa, int(c.args[2]), func() ([]byte, int, error) {
		iov, err := readIovecs(c.tid, le64(hdr[offMsgIov:]), le64(hdr[offMsgIovlen:]))
		if err != nil {
			return nil, 0, err
		}
		b, err := gatherMem(c.tid, iov, maxDatagram)
		if err != nil {
			return nil, 0, err
		}
		return b, gsoSize(c.tid, le64(hdr[offMsgCtrl:]), le64(hdr[offMsgCtrllen:])), nil
	})
}

// gsoSize returns the segment size of a UDP_SEGMENT control message
// (UDP generic segmentation offload: the buffer is several datagrams of
// that size, the last maybe shorter) in the control data at ctrl, or 0.
func gsoSize(tid int, ctrl, ctrlLen uint64) int {
	const maxCtrl = 4096
	if ctrl == 0 || ctrlLen < 16 || ctrlLen > maxCtrl {
		return 0
	}
	b := make([]byte, ctrlLen)
	if readMem(tid, ctrl, b) != nil {
		return 0
	}
	for len(b) >= 16 {
		l := le64(b)
		if l < 16 || l > uint64(len(b)) {
			return 0
		}
		level, typ := int32(le32(b[8:])), int32(le32(b[12:]))
		if level == unix.SOL_UDP && typ == unix.UDP_SEGMENT && l >= 18 {
			return int(uint16(b[16]) | uint16(b[17])<<8)
		}
		next := (l + 7) &^ 7
		if next >= uint64(len(b)) {
			break
		}
		b = b[next:]
	}
	return 0
}

// msgNamelen returns the msg_namelen of the msghdr at the start of m,
// clamped to a sockaddr_storage as the kernel clamps it for sendmsg and
// sendmmsg (sendto's address length is refused instead when too long).
func msgNamelen(m []byte) uint64 {
	return min(uint64(le32(m[offMsgNamelen:])), maxSockaddrLen)
}

// sendDest reads the destination of a send (sendto, sendmsg, a message
// of sendmmsg) like readSockaddr, except that AF_UNSPEC with room for an
// IPv4 address comes back as goOn: an AF_INET UDP socket sends to it
// (udp_sendmsg takes AF_UNSPEC for AF_INET), so it must be routed, never
// let through. inetDest settles it once the socket is known.
func (sup *supervisor) sendDest(c call, addr, alen uint64) (sockaddr, outcome, syscall.Errno) {
	sa, oc, e := sup.readSockaddr(c, addr, alen)
	if oc == goCont && sa.family == afUnspec && sa.ap.IsValid() {
		oc = goOn
	}
	return sa, oc, e
}

// inetDest returns what socket si makes of destination sa: an AF_UNSPEC
// one is AF_INET on an IPv4 socket; on any other socket it is no
// destination (an IPv6 UDP socket sends to its connected peer, TCP
// ignores it), and ok is false, as for a family that is not IP.
func inetDest(sa sockaddr, si sockInfo) (_ sockaddr, ok bool) {
	if sa.family == afUnspec && sa.ap.IsValid() && si.domain == unix.AF_INET {
		sa.family = afInet
	}
	return sa, sa.isIP()
}

// memFailed answers a send whose arguments could not be read from the
// program's memory (EFAULT, or EPERM for a program that made itself
// non-dumpable): with EFAULT, never by letting it run, since where it
// sends is unknown.
func (sup *supervisor) memFailed(c call) {
	if sup.valid(c) {
		sup.fail(c, syscall.EFAULT)
	}
}

// answered answers c after readSockaddr, unless the address was read
// (goOn); it reports whether it did.
func (sup *supervisor) answered(c call, oc outcome, e syscall.Errno) bool {
	switch oc {
	case goCont:
		sup.cont(c)
	case goFail:
		sup.fail(c, e)
	case goGone:
	default:
		return false
	}
	return true
}

// sendDatagram handles a send with a destination: TCP ignores it (but
// MSG_FASTOPEN would connect: refused unless direct); a direct
// destination runs as asked; a DNS query goes to the fake DNS server
// from the program's own socket; UDP to anywhere else goes through the
// socket's association (sendUDP); other protocols fail with
// ENETUNREACH.
func (sup *supervisor) sendDatagram(c call, sa sockaddr, flags int, data func() (b []byte, gso int, err error)) {
	dup, si, err := sup.sock(c)
	if err != nil {
		sup.sockFailed(c, err)
		return
	}
	defer unix.Close(dup)
	sa, ok := inetDest(sa, si)
	if !si.inet() || !ok {
		sup.cont(c)
		return
	}
	if si.stream() {
		if flags&unix.MSG_FASTOPEN != 0 && sup.pol.route(true, sa.ap) != routeDirect {
			sup.fail(c, syscall.EOPNOTSUPP) // TCP Fast Open through the gateway is not implemented
			return
		}
		sup.cont(c)
		return
	}
	r := sup.routeOf(si, sa.ap)
	switch r {
	case routeDirect:
		sup.cont(c)
		return
	case routeDeny:
		sup.deny(c, si, sa.ap)
		return
	}
	b, gso, err := data()
	if err != nil {
		if sup.valid(c) {
			sup.fail(c, errnoOf(err))
		}
		return
	}
	if !sup.valid(c) {
		return
	}
	if r == routeProxy {
		sup.sendUDP(c, dup, si, sa.ap, b, gso)
		return
	}
	to, ok := sup.dnsEndpoint(si)
	if !ok {
		sup.fail(c, syscall.ENETUNREACH)
		return
	}
	sup.recordDNS(si.ino, sa.ap, b)
	n, err := rawSendto(dup, b, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, to)
	if err != nil {
		sup.fail(c, errnoOf(err))
		return
	}
	sup.serveDNSNow()
	sup.ret(c, int64(n))
}

// serveDNSNow answers the queries waiting at the fake DNS server's UDP
// sockets. The notification loop calls it after it has sent a program's
// queries there itself, before it lets the program's send return: the
// answers are then already queued when the program waits for them,
// where otherwise the loop would wake again for the queries, and the
// program for the answers. Only the loop's thread may call it (it uses
// the loop's buffer).
func (sup *supervisor) serveDNSNow() {
	for _, fd := range sup.dnsFDs {
		sup.dns.serveUDPOnce(fd, sup.dnsBuf)
	}
}

// dnsEndpoint returns the fake DNS server's UDP address as a socket
// address of si's family.
func (sup *supervisor) dnsEndpoint(si sockInfo) ([]byte, bool) {
	ep, ok := sup.dns.addr(false, si.domain == unix.AF_INET6, si.v6only)
	if !ok {
		return nil, false
	}
	raw, err := appendSockaddr(nil, si.domain, ep)
	return raw, err == nil
}

// recordDNS remembers that the socket ino sent query b to dst, so that
// the answer, which comes from the fake DNS server, can be reported as
// coming from dst (musl's resolver checks the source).
func (sup *supervisor) recordDNS(ino uint64, dst netip.AddrPort, b []byte) {
	sup.socks.update(ino, func(st *sockState) {
		st.dns, st.dnsLast = true, dst
		if id, ok := dnsQueryID(b); ok {
			if st.dnsByID == nil || len(st.dnsByID) >= dnsIDsPerSocket {
				st.dnsByID = map[uint16]netip.AddrPort{}
			}
			st.dnsByID[id] = dst
		}
	})
}

// sendmmsg(fd, msgvec, vlen, flags).
func (sup *supervisor) sendmmsg(c call) {
	vlen := min(c.args[2], maxMmsgVlen)
	if vlen == 0 {
		sup.cont(c)
		return
	}
	vec := make([]byte, vlen*sizeofMmsghdr)
	if err := readMem(c.tid, c.args[1], vec); err != nil {
		sup.memFailed(c)
		return
	}
	named := false
	for i := range vlen {
		if le64(vec[i*sizeofMmsghdr+offMsgName:]) != 0 {
			named = true
		}
	}
	if !named { // every message goes to the connected peer
		sup.sendmmsgConnected(c, vec)
		return
	}
	// Read and route every destination before sending anything.
	dests := make([]*mmsgDest, vlen)
	dup, si, err := sup.sock(c)
	if err != nil {
		sup.sockFailed(c, err)
		return
	}
	if !si.inet() || si.stream() {
		unix.Close(dup)
		sup.cont(c)
		return
	}
	allDirect := true
	var first *mmsgDest
	for i := range vlen {
		m := vec[i*sizeofMmsghdr:]
		name, namelen := le64(m[offMsgName:]), msgNamelen(m)
		if name == 0 || namelen == 0 {
			continue
		}
		sa, oc, e := sup.sendDest(c, name, namelen)
		switch oc {
		case goCont:
			// Not a destination (too short, AF_UNIX, …): the kernel
			// fails this message, after sending the ones before it. The
			// batch is not let through on its account, or those would
			// go out unrouted; emulated, it goes to the connected peer.
			continue
		case goFail, goGone:
			unix.Close(dup)
			sup.answered(c, oc, e)
			return
		}
		sa, ok := inetDest(sa, si)
		if !ok {
			continue
		}
		d := &mmsgDest{sa: sa, r: sup.routeOf(si, sa.ap)}
		dests[i] = d
		switch d.r {
		case routeDeny:
			unix.Close(dup)
			sup.deny(c, si, sa.ap)
			return
		case routeDNS:
			allDirect = false
		case routeProxy:
			allDirect = false
			var ok bool
			if d.target, ok = sup.udpTarget(sa.ap); !ok {
				unix.Close(dup)
				sup.failEvent(c, Event{Network: "udp", Dest: sa.ap, Errno: syscall.EHOSTUNREACH, Err: errStaleFake})
				return
			}
			if first == nil {
				first = d
			}
		}
	}
	if allDirect {
		unix.Close(dup)
		sup.cont(c)
		return
	}
	var a *udpAssoc
	if first != nil {
		local, err := udpLocal(dup, si)
		if err != nil {
			unix.Close(dup)
			sup.fail(c, errnoOf(err))
			return
		}
		if a, err = sup.udp.assoc(si.ino, c.tid, first.sa.ap, first.target); err != nil {
			unix.Close(dup)
			sup.fail(c, syscall.ENETUNREACH)
			return
		}
		a.setLocal(local, si.domain, si.v6only)
		sup.socks.update(si.ino, func(st *sockState) { st.udp = true })
		if a.status() == assocPending {
			sup.wg.Add(1)
			go func() {
				defer sup.wg.Done()
				defer unix.Close(dup)
				if err := a.wait(sup.ctx); err != nil {
					sup.fail(c, syscall.ENETUNREACH)
					return
				}
				sup.emulateMmsg(c, dup, si, vec, dests, a, false, false)
			}()
			return
		}
	}
	sup.emulateMmsg(c, dup, si, vec, dests, a, true, false)
	unix.Close(dup)
}

// sendmmsgConnected handles a sendmmsg without destinations. On a UDP
// socket connected to the fake DNS server (glibc's resolver sends its A
// and AAAA queries so) the supervisor sends the queries itself and
// answers them before the call returns (serveDNSNow); anything else runs
// as asked. Only calls of one or two messages are looked at, so that a
// program that batches datagrams on a connected socket (QUIC) does not
// pay for finding the socket.
func (sup *supervisor) sendmmsgConnected(c call, vec []byte) {
	if len(vec) > 2*sizeofMmsghdr {
		sup.cont(c)
		return
	}
	ino, dup, err := sup.sockIno(c)
	if err != nil {
		sup.cont(c)
		return
	}
	dns := false
	sup.socks.view(ino, func(st *sockState) { dns = st.dns && st.peer.IsValid() })
	var si sockInfo
	if dns {
		si, err = getSockInfo(dup)
	}
	if !dns || err != nil || !si.udp() {
		unix.Close(dup)
		sup.cont(c)
		return
	}
	sup.emulateMmsg(c, dup, si, vec, make([]*mmsgDest, len(vec)/sizeofMmsghdr), nil, true, true)
	unix.Close(dup)
}

// An mmsgDest is the destination of one message of a sendmmsg.
type mmsgDest struct {
	sa     sockaddr
	r      route
	target proto.Addr // routeProxy
}

// emulateMmsg sends every message of a sendmmsg the supervisor emulates,
// each its own way (dests[i] nil: to the connected peer), sets their
// msg_len and answers the call. a is the socket's association if some
// message goes through the gateway; peerDNS says the socket is connected
// to the fake DNS server. onLoop says the notification loop's thread runs
// it, which then answers the queries it sent to the fake DNS server
// before it answers the call (serveDNSNow).
func (sup *supervisor) emulateMmsg(c call, dup int, si sockInfo, vec []byte, dests []*mmsgDest, a *udpAssoc, onLoop, peerDNS bool) {
	var ep []byte
	toDNS := false
	sent := 0
	var firstErr error
	for i := range dests {
		m := vec[i*sizeofMmsghdr:]
		iov, err := readIovecs(c.tid, le64(m[offMsgIov:]), le64(m[offMsgIovlen:]))
		var b []byte
		if err == nil {
			b, err = gatherMem(c.tid, iov, maxDatagram)
		}
		if err != nil {
			firstErr = err
			break
		}
		if !onLoop && !sup.valid(c) {
			// Waited for the association: the thread may be gone, and
			// its id reused, since the bytes were read.
			return
		}
		var n int
		switch d := dests[i]; {
		case d == nil:
			n, err = rawSendto(dup, b, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil)
			toDNS = toDNS || peerDNS
		case d.r == routeProxy:
			var framed []byte
			if framed, err = udpFrame(d.target, b); err == nil {
				a.noteDest(d.sa.ap, d.target)
				err = a.send(framed)
				n = len(b)
			}
		case d.r == routeDNS:
			if ep == nil {
				var ok bool
				if ep, ok = sup.dnsEndpoint(si); !ok {
					err = syscall.ENETUNREACH
					break
				}
			}
			sup.recordDNS(si.ino, d.sa.ap, b)
			n, err = rawSendto(dup, b, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, ep)
			toDNS = true
		default:
			to, _ := appendSockaddr(nil, si.domain, d.sa.ap)
			n, err = rawSendto(dup, b, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, to)
		}
		if err != nil {
			firstErr = err
			break
		}
		if !sup.valid(c) {
			return
		}
		if err := writeMem(c.tid, c.args[1]+uint64(i)*sizeofMmsghdr+offMmsgLen, put32(uint32(n))); err != nil {
			firstErr = err
			break
		}
		sent++
	}
	if sent == 0 && firstErr != nil {
		sup.fail(c, errnoOf(firstErr))
		return
	}
	if onLoop && toDNS {
		sup.serveDNSNow()
	}
	sup.ret(c, int64(sent))
}

// A recvTarget says where an emulated receive puts what it got.
type recvTarget struct {
	iov         []unix.RemoteIovec // the data
	name        uint64             // the source address (0: nowhere)
	nameCap     uint32             // its capacity
	nameLenAddr uint64             // where the source address's length goes
	msgAddr     uint64             // recvmsg, recvmmsg: the msghdr, whose msg_controllen and msg_flags are set
	mmsg        bool               // recvmmsg: msg_len is set and the call returns 1
	flags       int
}

// recvfrom(fd, buf, len, flags, addr, addrlen), trapped when addr is not
// NULL. Only sockets that sent DNS queries or whose UDP goes through the
// gateway are emulated.
func (sup *supervisor) recvfrom(c call) {
	dup, si, ok := sup.dnsSocket(c, int(c.args[3]))
	if !ok {
		return
	}
	var lb [4]byte
	if err := readMem(c.tid, c.args[5], lb[:]); err != nil {
		unix.Close(dup)
		sup.fail(c, syscall.EFAULT)
		return
	}
	t := &recvTarget{
		iov:         []unix.RemoteIovec{{Base: uintptr(c.args[1]), Len: int(min(c.args[2], maxDatagram))}},
		name:        c.args[4],
		nameCap:     le32(lb[:]),
		nameLenAddr: c.args[5],
		flags:       int(c.args[3]),
	}
	sup.recv(c, dup, si, t)
}

// recvmsg(fd, msg, flags) and recvmmsg(fd, msgvec, vlen, flags,
// timeout); only those with a msg_name on sockets that dnsSocket picks
// are emulated. recvmmsg receives one message.
func (sup *supervisor) recvmsg(c call, mmsg bool) {
	flags := int(c.args[2])
	if mmsg {
		flags = int(c.args[3])
		if c.args[2] == 0 {
			sup.cont(c)
			return
		}
	}
	hdr := make([]byte, sizeofMsghdr)
	if err := readMem(c.tid, c.args[1], hdr); err != nil || le64(hdr[offMsgName:]) == 0 {
		sup.cont(c)
		return
	}
	dup, si, ok := sup.dnsSocket(c, flags)
	if !ok {
		return
	}
	iov, err := readIovecs(c.tid, le64(hdr[offMsgIov:]), le64(hdr[offMsgIovlen:]))
	if err != nil {
		unix.Close(dup)
		sup.fail(c, errnoOf(err))
		return
	}
	t := &recvTarget{
		iov:         iov,
		name:        le64(hdr[offMsgName:]),
		nameCap:     le32(hdr[offMsgNamelen:]),
		nameLenAddr: c.args[1] + offMsgNamelen,
		msgAddr:     c.args[1],
		mmsg:        mmsg,
		flags:       flags,
	}
	sup.recv(c, dup, si, t)
}

// dnsSocket returns a dup of c's socket if the receive must be emulated:
// a UDP socket that sent DNS queries or whose UDP goes through the
// gateway, and flags the emulation handles. Otherwise it answers
// CONTINUE.
func (sup *supervisor) dnsSocket(c call, flags int) (int, sockInfo, bool) {
	if flags&^recvFlagsEmulated != 0 {
		sup.cont(c)
		return -1, sockInfo{}, false
	}
	ino, dup, err := sup.sockIno(c)
	if err != nil {
		sup.cont(c)
		return -1, sockInfo{}, false
	}
	emulate := false
	sup.socks.view(ino, func(st *sockState) { emulate = st.dns || st.udp })
	if !emulate {
		unix.Close(dup)
		sup.cont(c)
		return -1, sockInfo{}, false
	}
	si, err := getSockInfo(dup)
	if err == nil {
		si, err = withNonblock(dup, si)
	}
	if err != nil || !si.udp() {
		unix.Close(dup)
		sup.cont(c)
		return -1, sockInfo{}, false
	}
	return dup, si, true
}

// recv emulates a receive: at once if a datagram is queued, or with
// EAGAIN for a non-blocking call, or else from a goroutine that waits.
// It owns dup.
func (sup *supervisor) recv(c call, dup int, si sockInfo, t *recvTarget) {
	if sup.tryRecv(c, dup, si, t) {
		unix.Close(dup)
		return
	}
	if si.nonblock || t.flags&unix.MSG_DONTWAIT != 0 {
		unix.Close(dup)
		sup.fail(c, syscall.EAGAIN)
		return
	}
	sup.wg.Add(1)
	go sup.blockingRecv(c, dup, si, t)
}

// blockingRecv waits for a datagram for a blocking receive. It honours
// SO_RCVTIMEO (EAGAIN), ends the call when the thread has a signal to
// handle (see block), and gives up when the thread is gone.
func (sup *supervisor) blockingRecv(c call, dup int, si sockInfo, t *recvTarget) {
	defer sup.wg.Done()
	defer unix.Close(dup)
	sup.block(c, dup, func() bool { return sup.tryRecv(c, dup, si, t) })
}

// block stands in for a program thread blocked in a call the supervisor
// emulates (a receive, an accept): it polls dup and calls try when dup is
// readable, until try has answered the call, the thread is gone, a
// signal is pending for it, the socket's SO_RCVTIMEO passes (EAGAIN) or
// the supervisor stops. For a signal the call is restarted or fails with
// EINTR as the kernel's own would (see interruptErrno): a handler with
// SA_RESTART finds the call waiting again when it returns, unless the
// socket has a receive timeout.
func (sup *supervisor) block(c call, dup int, try func() bool) {
	var deadline time.Time
	if tv, err := unix.GetsockoptTimeval(dup, unix.SOL_SOCKET, unix.SO_RCVTIMEO); err == nil && (tv.Sec != 0 || tv.Usec != 0) {
		deadline = time.Now().Add(time.Duration(tv.Nano()))
	}
	for {
		select {
		case <-sup.ctx.Done():
			return
		default:
		}
		rev, _ := pollFD(dup, unix.POLLIN, int(recvPollSlice/time.Millisecond))
		if rev != 0 && try() {
			return
		}
		if !sup.valid(c) {
			return
		}
		if e, ok := interruptErrno(c.tid); ok {
			if e == errRestartSys && !deadline.IsZero() {
				// The kernel does not restart a receive that has a
				// timeout either (sock_intr_errno).
				e = syscall.EINTR
			}
			sup.fail(c, e)
			return
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			sup.fail(c, syscall.EAGAIN)
			return
		}
	}
}

// recvBufPool holds tryRecv's buffers: a recvfrom into 64 KiB (glibc's
// resolver asks for that much) would otherwise allocate and clear one per
// call.
var recvBufPool = sync.Pool{New: func() any { return new([maxDatagram]byte) }}

// tryRecv receives one datagram without blocking and, if there was one,
// writes it and its source into the thread's memory and answers;
// answers from the fake DNS server are reported as coming from the
// server the query was sent to, and datagrams from the gateway as
// coming from their origin. It reports whether c was answered (or
// its thread is gone).
func (sup *supervisor) tryRecv(c call, dup int, si sockInfo, t *recvTarget) bool {
	total := 0
	for _, v := range t.iov {
		total += v.Len
	}
	bp := recvBufPool.Get().(*[maxDatagram]byte)
	defer recvBufPool.Put(bp)
	buf := bp[:min(total, maxDatagram)]
	n, from, err := rawRecvfrom(dup, buf, t.flags&unix.MSG_PEEK|unix.MSG_TRUNC|unix.MSG_DONTWAIT)
	if err == unix.EAGAIN || err == unix.EINTR {
		return false
	}
	if err != nil {
		sup.fail(c, errnoOf(err))
		return true
	}
	got := min(n, len(buf))
	src := netip.AddrPort{}
	if sa, err := parseSockaddr(from); err == nil && sa.isIP() {
		src = sa.ap
	}
	switch {
	case !src.IsValid():
	case sup.dns.isServer(src):
		sup.socks.view(si.ino, func(st *sockState) {
			src = st.dnsLast
			if id, ok := dnsQueryID(buf[:got]); ok {
				if d, ok := st.dnsByID[id]; ok {
					src = d
				}
			}
		})
	case sup.udp.isIngress(src):
		// From the gateway, to a socket connected through the ingress.
		sup.socks.view(si.ino, func(st *sockState) {
			if st.peer.IsValid() {
				src = st.peer
			}
		})
	default:
		if o, ok := sup.udp.originOf(src); ok {
			src = o
		}
	}
	if !sup.valid(c) {
		return true
	}
	var name uint64
	var raw []byte
	var rawLen uint32
	if t.name != 0 && src.IsValid() {
		if r, err := appendSockaddr(nil, si.domain, src); err == nil {
			name, raw, rawLen = t.name, r[:min(int(t.nameCap), len(r))], uint32(len(r))
		}
	}
	// The payload, the source and its length in one system call.
	if err := writeRecv(c.tid, t.iov, buf[:got], name, raw, t.nameLenAddr, rawLen); err != nil {
		sup.fail(c, syscall.EFAULT)
		return true
	}
	if t.msgAddr != 0 {
		writeMem(c.tid, t.msgAddr+offMsgCtrllen, put64(0)) // ancillary data is dropped
		var mflags uint32
		if n > got {
			mflags |= unix.MSG_TRUNC
		}
		writeMem(c.tid, t.msgAddr+offMsgFlags, put32(mflags))
	}
	switch {
	case t.mmsg:
		writeMem(c.tid, t.msgAddr+offMmsgLen, put32(uint32(got)))
		sup.ret(c, 1)
	case t.flags&unix.MSG_TRUNC != 0:
		sup.ret(c, int64(n))
	default:
		sup.ret(c, int64(got))
	}
	return true
}
