//go:build linux && amd64

package socksify

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readMem reads len(b) bytes at addr of thread tid's address space. A
// short read is EFAULT, as the kernel would have said.
func readMem(tid int, addr uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := unix.ProcessVMReadv(tid,
		[]unix.Iovec{{Base: &b[0], Len: uint64(len(b))}},
		[]unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return unix.EFAULT
	}
	return nil
}

// writeMem writes b at addr of thread tid's address space.
func writeMem(tid int, addr uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := unix.ProcessVMWritev(tid,
		[]unix.Iovec{{Base: &b[0], Len: uint64(len(b))}},
		[]unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return unix.EFAULT
	}
	return nil
}

// writeMem2 writes a at addrA and b at addrB of thread tid's address
// space, in one call.
func writeMem2(tid int, addrA uint64, a []byte, addrB uint64, b []byte) error {
	if len(a) == 0 {
		return writeMem(tid, addrB, b)
	}
	local := make([]byte, 0, len(a)+len(b))
	local = append(append(local, a...), b...)
	n, err := unix.ProcessVMWritev(tid,
		[]unix.Iovec{{Base: &local[0], Len: uint64(len(local))}},
		[]unix.RemoteIovec{{Base: uintptr(addrA), Len: len(a)}, {Base: uintptr(addrB), Len: len(b)}}, 0)
	if err != nil {
		return err
	}
	if n != len(local) {
		return unix.EFAULT
	}
	return nil
}

// gatherMem reads the remote iovecs iov (in the target) into one buffer
// of at most max bytes; more is EMSGSIZE.
func gatherMem(tid int, iov []unix.RemoteIovec, max int) ([]byte, error) {
	total := 0
	for _, v := range iov {
		total += v.Len
		if v.Len < 0 || total > max {
			return nil, unix.EMSGSIZE
		}
	}
	if total == 0 {
		return []byte{}, nil
	}
	b := make([]byte, total)
	n, err := unix.ProcessVMReadv(tid, []unix.Iovec{{Base: &b[0], Len: uint64(total)}}, iov, 0)
	if err != nil {
		return nil, err
	}
	if n != total {
		return nil, unix.EFAULT
	}
	return b, nil
}

// writeRecv stores a received datagram in the thread's memory with one
// process_vm_writev: the payload data scattered over iov and, if name is
// not 0, the source address raw (already cut to the caller's buffer) at
// name and its full length fullLen at lenAddr. It fails only when
// nothing could be written (process_vm_writev stops at the first bad
// address and reports what it wrote).
func writeRecv(tid int, iov []unix.RemoteIovec, data []byte, name uint64, raw []byte, lenAddr uint64, fullLen uint32) error {
	remote := make([]unix.RemoteIovec, 0, len(iov)+2)
	left := len(data)
	for _, v := range iov {
		if left == 0 {
			break
		}
		if l := min(v.Len, left); l > 0 {
			remote = append(remote, unix.RemoteIovec{Base: v.Base, Len: l})
			left -= l
		}
	}
	data = data[:len(data)-left]
	local := make([]unix.Iovec, 0, 3)
	if len(data) > 0 {
		local = append(local, unix.Iovec{Base: &data[0], Len: uint64(len(data))})
	}
	lb := put32(fullLen)
	if name != 0 {
		if len(raw) > 0 {
			local = append(local, unix.Iovec{Base: &raw[0], Len: uint64(len(raw))})
			remote = append(remote, unix.RemoteIovec{Base: uintptr(name), Len: len(raw)})
		}
		local = append(local, unix.Iovec{Base: &lb[0], Len: uint64(len(lb))})
		remote = append(remote, unix.RemoteIovec{Base: uintptr(lenAddr), Len: len(lb)})
	}
	if len(local) == 0 {
		return nil
	}
	_, err := unix.ProcessVMWritev(tid, local, remote, 0)
	return err
}

// readIovecs reads n struct iovec at addr.
func readIovecs(tid int, addr uint64, n uint64) ([]unix.RemoteIovec, error) {
	const maxIov = 1024 // UIO_MAXIOV
	if n > maxIov {
		return nil, unix.EMSGSIZE
	}
	if n == 0 {
		return nil, nil
	}
	raw := make([]byte, 16*n)
	if err := readMem(tid, addr, raw); err != nil {
		return nil, err
	}
	iov := make([]unix.RemoteIovec, n)
	for i := range iov {
		base := le64(raw[16*i:])
		l := le64(raw[16*i+8:])
		if l > 1<<31 {
			return nil, unix.EINVAL
		}
		iov[i] = unix.RemoteIovec{Base: uintptr(base), Len: int(l)}
	}
	return iov, nil
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func put64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func put32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// A pidfdCache keeps a pidfd per thread ID, so that pidfd_getfd costs
// one syscall. A cached pidfd whose thread died (its TID may since have
// been reused) makes pidfd_getfd fail with ESRCH; it is then reopened. A
// pidfd whose thread is alive is the notifying thread's, since live
// threads have distinct IDs. Only the notification loop uses it.
type pidfdCache struct {
	m map[int]int
}

const maxCachedPidfds = 256

// getfd duplicates the program's fd of thread tid into the supervisor
// (close-on-exec). The dup shares the open file description, so the
// program's file status flags (O_NONBLOCK) must never be changed on it.
func (c *pidfdCache) getfd(tid, fd int) (int, error) {
	for try := 0; try < 2; try++ {
		pfd, err := c.pidfd(tid, try > 0)
		if err != nil {
			return -1, err
		}
		dup, err := unix.PidfdGetfd(pfd, fd, 0)
		if err == unix.ESRCH && try == 0 {
			continue
		}
		return dup, err
	}
	return -1, unix.ESRCH
}

func (c *pidfdCache) pidfd(tid int, reopen bool) (int, error) {
	if c.m == nil {
		c.m = map[int]int{}
	}
	if pfd, ok := c.m[tid]; ok {
		if !reopen {
			return pfd, nil
		}
		unix.Close(pfd)
		delete(c.m, tid)
	}
	pfd, err := openThreadPidfd(tid)
	if err != nil {
		return -1, err
	}
	if len(c.m) >= maxCachedPidfds {
		for t, f := range c.m {
			unix.Close(f)
			delete(c.m, t)
		}
	}
	c.m[tid] = pfd
	return pfd, nil
}

func (c *pidfdCache) close() {
	for t, f := range c.m {
		unix.Close(f)
		delete(c.m, t)
	}
}

// openThreadPidfd opens a pidfd for thread tid: PIDFD_THREAD (Linux 6.9)
// names the thread itself, whose file table pidfd_getfd then uses;
// before 6.9 it opens the thread group's leader, found in
// /proc/tid/status.
func openThreadPidfd(tid int) (int, error) {
	pfd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
	if err != unix.EINVAL {
		return pfd, err
	}
	tgid, err := procStatusField(tid, "Tgid")
	if err != nil {
		return -1, err
	}
	n, err := strconv.Atoi(tgid)
	if err != nil {
		return -1, unix.ESRCH
	}
	return unix.PidfdOpen(n, 0)
}

// procStatusField returns a field of /proc/tid/status.
func procStatusField(tid int, key string) (string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	prefix := []byte(key + ":")
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), prefix); ok {
			return string(bytes.TrimSpace(v)), nil
		}
	}
	return "", unix.ESRCH
}

// errRestartSys is the kernel's ERESTARTSYS, which never reaches a
// program: a call that returns it is restarted on the way back to user
// space if the signal's handler has SA_RESTART (or none runs), and fails
// with EINTR otherwise.
const errRestartSys = syscall.Errno(512)

// interruptErrno reports whether thread tid has a signal pending that it
// does not block, so that a blocking call the supervisor emulates must
// end for the handler to run, and the errno to end it with.
//
// ERESTARTSYS, when the kernel will deliver that signal to this very
// thread on its way back: a signal sent to the thread, or any signal of
// a single-threaded process. The kernel then restarts the call or fails
// it with EINTR by the handler's SA_RESTART, as for a call of its own
// (the restarted call comes back to the supervisor). A signal for a
// process of several threads may be taken by another thread, and then
// this one would return ERESTARTSYS with no signal to deliver: the
// program would see errno 512. Such a call fails with EINTR, which
// programs that block in calls while other threads take signals handle.
func interruptErrno(tid int) (syscall.Errno, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, false
	}
	var own, shared, blocked uint64
	threads := 0
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Threads":
			threads, _ = strconv.Atoi(string(v))
		case "SigPnd":
			own, _ = strconv.ParseUint(string(v), 16, 64)
		case "ShdPnd":
			shared, _ = strconv.ParseUint(string(v), 16, 64)
		case "SigBlk":
			blocked, _ = strconv.ParseUint(string(v), 16, 64)
		}
	}
	own &^= blocked
	shared &^= blocked
	switch {
	case own != 0 || (shared != 0 && threads == 1):
		return errRestartSys, true
	case shared != 0:
		return syscall.EINTR, true
	}
	return 0, false
}

// comm returns thread tid's command name, for logs. Names are cached
// for commCacheFor: a program that connects often is not read from /proc
// each time (a thread that renames itself may show its old name a
// moment longer).
func comm(tid int) string {
	now := time.Now()
	commCache.mu.Lock()
	if e, ok := commCache.m[tid]; ok && now.Sub(e.at) < commCacheFor {
		commCache.mu.Unlock()
		return e.name
	}
	commCache.mu.Unlock()
	name := "?"
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/comm"); err == nil {
		name = string(bytes.TrimSpace(b))
	}
	commCache.mu.Lock()
	if commCache.m == nil || len(commCache.m) >= 1024 {
		commCache.m = map[int]commEntry{}
	}
	commCache.m[tid] = commEntry{name, now}
	commCache.mu.Unlock()
	return name
}

const commCacheFor = time.Second

type commEntry struct {
	name string
	at   time.Time
}

var commCache struct {
	mu sync.Mutex
	m  map[int]commEntry
}

// A sockInfo describes one of the program's sockets, through a dup.
type sockInfo struct {
	ino      uint64
	domain   int
	typ      int
	proto    int
	nonblock bool // O_NONBLOCK on the shared open file description (withNonblock sets it)
	v6only   bool // IPV6_V6ONLY, for AF_INET6
}

// stream reports whether the socket is TCP (or MPTCP).
func (si sockInfo) stream() bool {
	return si.typ == unix.SOCK_STREAM && (si.proto == unix.IPPROTO_TCP || si.proto == unix.IPPROTO_MPTCP)
}

// udp reports whether the socket is UDP (or UDP-Lite).
func (si sockInfo) udp() bool {
	return si.typ == unix.SOCK_DGRAM && (si.proto == unix.IPPROTO_UDP || si.proto == unix.IPPROTO_UDPLITE)
}

func (si sockInfo) inet() bool { return si.domain == unix.AF_INET || si.domain == unix.AF_INET6 }

// sockInode returns the socket inode of fd, or ENOTSOCK.
func sockInode(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return 0, unix.ENOTSOCK
	}
	return st.Ino, nil
}

// getSockInfo describes the socket fd, with as few calls as it can: the
// protocol says the type for TCP and UDP. nonblock is left for
// withNonblock.
func getSockInfo(fd int) (sockInfo, error) {
	var si sockInfo
	var err error
	if si.ino, err = sockInode(fd); err != nil {
		return si, err
	}
	if si.domain, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return si, err
	}
	if si.proto, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil {
		return si, err
	}
	switch si.proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_MPTCP:
		si.typ = unix.SOCK_STREAM
	case unix.IPPROTO_UDP, unix.IPPROTO_UDPLITE:
		si.typ = unix.SOCK_DGRAM
	default:
		if si.typ, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
			return si, err
		}
	}
	if si.domain == unix.AF_INET6 {
		v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		si.v6only = err == nil && v != 0
	}
	return si, nil
}

// withNonblock returns si with nonblock set from fd's file status flags
// (O_NONBLOCK, which the program's descriptor shares).
func withNonblock(fd int, si sockInfo) (sockInfo, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return si, err
	}
	si.nonblock = fl&unix.O_NONBLOCK != 0
	return si, nil
}

// Raw socket calls on a dup, with explicit flags and raw socket
// addresses: MSG_DONTWAIT makes one call non-blocking without touching
// the shared O_NONBLOCK flag.

func rawConnect(fd int, sa []byte) error {
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa[0])), uintptr(len(sa)))
	return errnoErr(e)
}

func rawSendto(fd int, b []byte, flags int, to []byte) (int, error) {
	var p, tp unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	if len(to) > 0 {
		tp = unsafe.Pointer(&to[0])
	}
	n, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), uintptr(flags), uintptr(tp), uintptr(len(to)))
	return int(n), errnoErr(e)
}

// rawRecvfrom receives into b and returns the length (the datagram's
// full length with MSG_TRUNC) and the sender's raw address.
func rawRecvfrom(fd int, b []byte, flags int) (int, []byte, error) {
	var from [maxSockaddrLen]byte
	fromLen := uint32(len(from))
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(p), uintptr(len(b)), uintptr(flags),
		uintptr(unsafe.Pointer(&from[0])), uintptr(unsafe.Pointer(&fromLen)))
	if e != 0 {
		return 0, nil, e
	}
	if fromLen > uint32(len(from)) {
		fromLen = uint32(len(from))
	}
	return int(n), from[:fromLen], nil
}

func errnoErr(e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// pollFD waits up to timeoutMs for events on fd and returns the revents.
func pollFD(fd int, events int16, timeoutMs int) (int16, error) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	n, err := unix.Poll(pfd, timeoutMs)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return pfd[0].Revents, nil
}

// pollHeld is ppoll(2) for the notification loop's thread, made with
// RawSyscall so that the Go scheduler does not see the thread enter a
// system call: the loop's goroutine keeps its P while it waits. The
// loop is locked to its thread and never yields, so a wait made the
// usual way lets sysmon, every 10 ms, take the P away in the middle of
// the system call (the thread then needs a P back to go on) and poll
// every 20 µs for a millisecond after: perf showed sysmon at 19% of the
// supervisor's CPU time under a connection-heavy program. Held this way,
// sysmon instead signals the thread after 10 ms; the signal interrupts
// the wait (EINTR), the caller waits again, and its next function call
// is where the scheduler (a stop-the-world included) takes over. A nil
// ts waits without a timeout. With a single P (GOMAXPROCS=1) holding it
// would starve every other goroutine for 10 ms at a time, so there the
// wait is an ordinary system call.
func pollHeld(fds []unix.PollFd, ts *unix.Timespec) (int, error) {
	if !holdP {
		return unix.Ppoll(fds, ts, nil)
	}
	r, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)), uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// holdP says whether pollHeld may keep the loop's P: only when another P
// is left for the other goroutines.
var holdP = runtime.GOMAXPROCS(0) > 1

// A sockTable holds what the supervisor knows about the program's
// sockets, keyed by socket inode: an inode survives dup, fork and fd
// passing, where an fd number does not. close is not trapped, so entries
// are not removed when a socket closes; the table keeps the most recent
// entries (two generations of maxSockStates) and drops older ones. Socket
// inode numbers are not reused before the kernel's 32-bit counter wraps.
type sockTable struct {
	mu       sync.Mutex
	cur, old map[uint64]*sockState
}

const maxSockStates = 1 << 15

// A sockState is the supervisor's view of one socket.
type sockState struct {
	peer    netip.AddrPort // if valid, what getpeername reports instead of the real peer
	local   netip.AddrPort // if valid, what getsockname reports (a caller installed at accept)
	domain  int            // the family peer and local are reported in (0: the socket's own)
	dns     bool           // it sent queries to the fake DNS server: rewrite sources of what it receives
	udp     bool           // its UDP goes through the gateway: rewrite sources of what it receives
	dnsLast netip.AddrPort // the server the last query was addressed to
	dnsByID map[uint16]netip.AddrPort
}

// get returns ino's state, creating it if create is set.
func (t *sockTable) get(ino uint64, create bool) *sockState {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st, ok := t.cur[ino]; ok {
		return st
	}
	if st, ok := t.old[ino]; ok {
		delete(t.old, ino)
		t.putLocked(ino, st)
		return st
	}
	if !create {
		return nil
	}
	st := &sockState{}
	t.putLocked(ino, st)
	return st
}

func (t *sockTable) putLocked(ino uint64, st *sockState) {
	if t.cur == nil {
		t.cur = map[uint64]*sockState{}
	}
	if len(t.cur) >= maxSockStates {
		t.old, t.cur = t.cur, map[uint64]*sockState{}
	}
	t.cur[ino] = st
}

// update runs fn on ino's state under the table's lock.
func (t *sockTable) update(ino uint64, fn func(*sockState)) {
	st := t.get(ino, true)
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(st)
}

// view runs fn on ino's state under the table's lock, without creating
// it; ok is false when there is none.
func (t *sockTable) view(ino uint64, fn func(*sockState)) (ok bool) {
	st := t.get(ino, false)
	if st == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(st)
	return true
}
