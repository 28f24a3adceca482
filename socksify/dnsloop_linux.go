//go:build linux && amd64

package socksify

import (
	"net"

	"golang.org/x/sys/unix"
)

// udpFDs returns the descriptors of the fake DNS server's UDP sockets,
// which the notification loop serves (startDNSServer with udpByCaller).
// They stay valid until close.
func (d *dnsServer) udpFDs() []int {
	var fds []int
	for _, pc := range []*net.UDPConn{d.udp4, d.udp6} {
		if pc == nil {
			continue
		}
		rc, err := pc.SyscallConn()
		if err != nil {
			continue
		}
		rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) })
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
