//go:build !linux

package client

import "syscall"

// dhcpSockopts sets SO_BROADCAST; the interface is chosen by the route.
func dhcpSockopts(rc syscall.RawConn, ifname string) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		err = setBroadcast(fd)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// defaultRouteInterface is unknown here: the caller names the interface.
func defaultRouteInterface() string { return "" }
