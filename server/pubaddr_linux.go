package server

import "golang.org/x/sys/unix"

// ipv6PreferSrcPublic is IPV6_PREFER_SRC_PUBLIC of linux/in6.h.
const ipv6PreferSrcPublic = 0x0002

// preferPublicSource makes an IPv6 socket send from the host's stable
// (public) addresses rather than its temporary (privacy) ones: an
// association, and its PUBLIC_ADDR, may outlive a temporary address's
// preferred lifetime. It does nothing to an IPv4 socket.
func preferPublicSource(fd uintptr) {
	unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_ADDR_PREFERENCES, ipv6PreferSrcPublic)
}
