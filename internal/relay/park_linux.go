//go:build linux

package relay

import (
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// The parking poller: one epoll instance, one goroutine blocked in
// epoll_wait, shared by all sessions. A parked direction is registered
// with EPOLLONESHOT and has no goroutine; its socket becoming readable
// (data, EOF or error) wakes it in a new goroutine. Go's own netpoller
// still owns the sockets for the actual I/O; a socket may sit in two
// epoll sets. Registrations disappear by themselves when a socket is
// closed.
type poller struct {
	epfd int
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
		thePoll = &poller{epfd: fd, m: make(map[uint64]*direction)}
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
	if d.fd == 0 {
		rc, err := d.src.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		if err := rc.Control(func(fd uintptr) { d.fd = int(fd) }); err != nil {
			return err
		}
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
	err := unix.EpollCtl(p.epfd, op, d.fd, &ev)
	switch {
	case err == unix.ENOENT && op == unix.EPOLL_CTL_MOD:
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, d.fd, &ev)
	case err == unix.EEXIST && op == unix.EPOLL_CTL_ADD:
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, d.fd, &ev)
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
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
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
