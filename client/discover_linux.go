package client

import (
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// dhcpSockopts prepares the DHCP client socket: broadcasts allowed, the
// port shared with a DHCP client daemon that holds it on the wildcard
// address, and the socket tied to the interface when allowed (else the
// broadcast leaves by the route to 255.255.255.255).
func dhcpSockopts(rc syscall.RawConn, ifname string) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		if err == nil {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		}
		if err == nil {
			unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname) // best effort
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// defaultRouteInterface returns the interface of the first IPv4 default
// route in /proc/net/route, or "".
func defaultRouteInterface() string {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// Iface Destination Gateway Flags RefCnt Use Metric Mask …
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return f[0]
		}
	}
	return ""
}
