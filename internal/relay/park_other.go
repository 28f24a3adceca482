//go:build !linux

package relay

import "errors"

// Parking needs epoll; elsewhere every direction keeps a goroutine and
// copies with a buffer.

func canPark() bool { return false }

func arm(d *direction) error { return errors.ErrUnsupported }

func unpark(d *direction) {}

func queuedBytes(fd int) int { return 0 }
