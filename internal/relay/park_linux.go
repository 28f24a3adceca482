//go:build linux

package relay

import (
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The parking poller: one epoll instance, one goroutine waiting for it
// (in Go's netpoller), shared by all sessions. A parked direction is registered
// with EPOLLONESHOT and has no goroutine; its socket becoming readable
// (data, EOF or error) wakes it in a new goroutine. Go's own netpoller
// still owns the sockets for the actual I/O; a socket may sit in two
// epoll sets. Registrations disappear by themselves when a socket is
// closed.
type poller struct {
	epfd int
	f    *os.File        // epfd, kept open (and out of the GC's reach)
	rc   syscall.RawConn // waits for epfd in Go's netpoller
	mu   sync.Mutex
	next uint64
	m    map[uint64]*direction
}

var (
	pollOnce sync.Once
	thePoll  *poller
)

func getPoller() *poller {
	pollOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		// The epoll set is itself watched by Go's netpoller (an epoll
		// descriptor is readable while it has events), so that the loop
		// waits as a parked goroutine, not as a thread blocked in
		// epoll_wait: a thread in a long system call makes sysmon take
		// its P away every 10 ms and then poll every 20 µs for a while,
		// and every wake needs a thread switch.
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return
		}
		f := os.NewFile(uintptr(fd), "relay-epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			return
		}
		thePoll = &poller{epfd: fd, f: f, rc: rc, m: make(map[uint64]*direction)}
		go thePoll.loop()
	})
	return thePoll
}

// canPark reports whether directions can park on this system.
func canPark() bool {
	return getPoller() != nil
}

// arm registers d's source for one readiness event. The caller holds
// d.s.mu.
func arm(d *direction) error {
	p := getPoller()
	if d.rc == nil {
		rc, err := d.src.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		d.rc = rc
	}
	p.mu.Lock()
	if d.id == 0 {
		p.next++
		d.id = p.next
	}
	p.m[d.id] = d
	p.mu.Unlock()
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(d.id),
		Pad:    int32(d.id >> 32),
	}
	op := unix.EPOLL_CTL_ADD
	if d.registered {
		op = unix.EPOLL_CTL_MOD
	}
	// Inside Control, which holds the socket open: the fd number cannot
	// be closed and reused by another socket while it is registered.
	var err error
	if cerr := d.rc.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.epfd, op, int(fd), &ev)
		switch {
		case err == unix.ENOENT && op == unix.EPOLL_CTL_MOD:
			err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		case err == unix.EEXIST && op == unix.EPOLL_CTL_ADD:
			err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		}
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		unpark(d)
		return err
	}
	d.registered = true
	return nil
}

// unpark forgets d's registration (its socket is about to close).
func unpark(d *direction) {
	p := getPoller()
	if p == nil || d.id == 0 {
		return
	}
	p.mu.Lock()
	delete(p.m, d.id)
	p.mu.Unlock()
}

func (p *poller) loop() {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr == unix.EINTR {
				return false
			}
			return n > 0 || werr != nil // nothing ready: wait in the netpoller
		})
		if err != nil || werr != nil {
			return
		}
		for i := range n {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			p.mu.Lock()
			d := p.m[id]
			delete(p.m, id)
			p.mu.Unlock()
			if d != nil {
				d.wake()
			}
		}
	}
}

// queuedBytes reports how many bytes wait in socket fd's receive queue.
func queuedBytes(fd int) int {
	q, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return 0
	}
	return q
}
