package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// sinks are the local endpoints the proxies connect to, all on 127.0.0.1
// in this process:
//
//   - sink: reads and discards, counting bytes (bulk);
//   - closer: accepts and closes at once (conn);
//   - hold: accepts and keeps the connection open until released (idle);
//   - echo: echoes TCP (rtt);
//   - udpEcho: echoes UDP datagrams (udp).
type sinks struct {
	sinkLn, echoLn  *net.TCPListener
	closeLn, holdLn *os.File // raw listening sockets (see rawListen)
	udpEcho         *net.UDPConn

	sinkAddr, closeAddr, holdAddr, echoAddr endpoint
	udpAddr                                 netip.AddrPort

	sinkBytes atomic.Int64
	sinkConns atomic.Int64

	holdMu  sync.Mutex
	holdFds []int
}

func listenLoopback() (*net.TCPListener, netip.AddrPort, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return ln, ln.Addr().(*net.TCPAddr).AddrPort(), nil
}

func startSinks() (*sinks, error) {
	s := &sinks{}
	var err error
	var ap netip.AddrPort
	if s.sinkLn, ap, err = listenLoopback(); err != nil {
		return nil, err
	}
	s.sinkAddr = newEndpoint(ap)
	if s.echoLn, ap, err = listenLoopback(); err != nil {
		return nil, err
	}
	s.echoAddr = newEndpoint(ap)
	if s.closeLn, ap, err = rawListen(); err != nil {
		return nil, err
	}
	s.closeAddr = newEndpoint(ap)
	if s.holdLn, ap, err = rawListen(); err != nil {
		return nil, err
	}
	s.holdAddr = newEndpoint(ap)
	s.udpEcho, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	s.udpAddr = s.udpEcho.LocalAddr().(*net.UDPAddr).AddrPort()
	s.udpEcho.SetReadBuffer(4 << 20)
	s.udpEcho.SetWriteBuffer(4 << 20)

	go s.serveSink()
	go rawAcceptLoop(s.closeLn, func(fd int) { syscall.Close(fd) })
	go rawAcceptLoop(s.holdLn, func(fd int) {
		s.holdMu.Lock()
		s.holdFds = append(s.holdFds, fd)
		s.holdMu.Unlock()
	})
	go s.serveEcho()
	go s.serveUDPEcho()
	return s, nil
}

// rawListen opens a non-blocking listening socket on 127.0.0.1 as an
// *os.File, which the runtime poller serves through SyscallConn().Read (a
// *net.TCPListener's raw connection does not support Read).
func rawListen() (*os.File, netip.AddrPort, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	fail := func(err error) (*os.File, netip.AddrPort, error) {
		syscall.Close(fd)
		return nil, netip.AddrPort{}, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail(err)
	}
	if err := syscall.Listen(fd, 4096); err != nil {
		return fail(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return fail(err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		return fail(errors.New("listen: not IPv4"))
	}
	return os.NewFile(uintptr(fd), "listener"), netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)), nil
}

// rawAcceptLoop accepts with accept4(2) directly, without creating
// net.Conn values: the closer and hold endpoints only need descriptors.
func rawAcceptLoop(ln *os.File, onFd func(int)) {
	rc, err := ln.SyscallConn()
	if err != nil {
		panic(err)
	}
	for {
		var aerr syscall.Errno
		err := rc.Read(func(lfd uintptr) bool {
			for {
				nfd, _, e := syscall.Syscall6(syscall.SYS_ACCEPT4, lfd, 0, 0, syscall.SOCK_CLOEXEC, 0, 0)
				switch e {
				case 0:
					onFd(int(nfd))
				case syscall.EAGAIN:
					return false
				case syscall.EINTR, syscall.ECONNABORTED:
				default:
					aerr = e
					return true
				}
			}
		})
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			panic(fmt.Sprintf("accept loop: %v", err))
		}
		if aerr != 0 {
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
		}
	}
}

// heldCount returns how many connections the hold endpoint keeps.
func (s *sinks) heldCount() int {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	return len(s.holdFds)
}

// releaseHeld closes every connection the hold endpoint keeps.
func (s *sinks) releaseHeld() {
	s.holdMu.Lock()
	fds := s.holdFds
	s.holdFds = nil
	s.holdMu.Unlock()
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

var sinkBufPool = sync.Pool{New: func() any { return new([256 << 10]byte) }}

func (s *sinks) serveSink() {
	for {
		c, err := s.sinkLn.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.sinkConns.Add(1)
		go func() {
			defer s.sinkConns.Add(-1)
			defer c.Close()
			bp := sinkBufPool.Get().(*[256 << 10]byte)
			defer sinkBufPool.Put(bp)
			for {
				n, err := c.Read(bp[:])
				if n > 0 {
					s.sinkBytes.Add(int64(n))
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (s *sinks) serveEcho() {
	for {
		c, err := s.echoLn.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.SetNoDelay(true)
		go func() {
			defer c.Close()
			var buf [4096]byte
			for {
				n, err := c.Read(buf[:])
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (s *sinks) serveUDPEcho() {
	var buf [65536]byte
	for {
		n, from, err := s.udpEcho.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.udpEcho.WriteToUDPAddrPort(buf[:n], from)
	}
}
