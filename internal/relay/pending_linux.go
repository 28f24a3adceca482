package relay

import "golang.org/x/sys/unix"

// pending reports how many bytes are queued on socket fd without consuming
// them. It returns EAGAIN when nothing is queued and the stream is still
// open, and 0 at end of stream (or when an error is pending, which the
// following read reports).
func pending(fd int) (int, error) {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		if err == unix.EAGAIN {
			return 0, err
		}
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	q, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil || q < 1 {
		return 1, nil
	}
	return q, nil
}
