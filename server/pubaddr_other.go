//go:build !linux

package server

// preferPublicSource does nothing where there is no
// IPV6_ADDR_PREFERENCES: the system picks the source as it will.
func preferPublicSource(fd uintptr) {}
