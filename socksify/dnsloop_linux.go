//go:build linux && amd64

package socksify

import (
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// A loopUDP is one of the fake DNS server's UDP sockets when the
// notification loop serves them: a plain non-blocking socket, never
// registered with Go's netpoller.
type loopUDP struct {
	fd   int
	addr netip.AddrPort
}

// listenLoopUDP opens a loopUDP on ip, at a port the kernel picks; an
// IPv6 one is IPV6_V6ONLY, as net.ListenUDP("udp6") makes it.
func listenLoopUDP(ip netip.Addr) (loopUDP, error) {
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return loopUDP{}, os.NewSyscallError("socket", err)
	}
	if ip.Is6() {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return loopUDP{}, os.NewSyscallError("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sockaddrOf(netip.AddrPortFrom(ip, 0))); err != nil {
		unix.Close(fd)
		return loopUDP{}, os.NewSyscallError("bind", err)
	}
	ap, err := sockName(fd)
	if err != nil {
		unix.Close(fd)
		return loopUDP{}, os.NewSyscallError("getsockname", err)
	}
	return loopUDP{fd: fd, addr: netip.AddrPortFrom(ip, ap.Port())}, nil
}

func (u loopUDP) close() { unix.Close(u.fd) }

// udpFDs returns the descriptors of the fake DNS server's UDP sockets,
// which the notification loop serves (startDNSServer with udpByCaller).
// They stay valid until close.
func (d *dnsServer) udpFDs() []int {
	var fds []int
	for _, u := range d.loop {
		fds = append(fds, u.fd)
	}
	return fds
}

// serveUDPOnce answers the queries waiting on the UDP socket fd, up to a
// few, without blocking.
func (d *dnsServer) serveUDPOnce(fd int, buf []byte) {
	for range 16 {
		n, from, err := rawRecvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			return // EAGAIN: nothing more
		}
		resp, q, ok := answerDNS(buf[:min(n, len(buf))], d.fake)
		d.answered("udp", q, ok)
		if ok {
			rawSendto(fd, resp, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, from)
		}
	}
}
