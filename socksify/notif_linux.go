//go:build linux && amd64

package socksify

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data.
type seccompData struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

// seccompNotif is struct seccomp_notif (80 bytes, as the size in
// SECCOMP_IOCTL_NOTIF_RECV says).
type seccompNotif struct {
	ID    uint64
	Pid   uint32 // the thread's ID in the supervisor's PID namespace
	Flags uint32
	Data  seccompData
}

// seccompNotifResp is struct seccomp_notif_resp.
type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// Compile-time size checks against the ioctl numbers' sizes.
var (
	_ [80 - unsafe.Sizeof(seccompNotif{})]byte
	_ [unsafe.Sizeof(seccompNotif{}) - 80]byte
	_ [24 - unsafe.Sizeof(seccompNotifResp{})]byte
	_ [unsafe.Sizeof(seccompNotifResp{}) - 24]byte
)

// notifRecv receives one notification. The kernel wants the struct
// zeroed.
func notifRecv(lfd int, n *seccompNotif) error {
	*n = seccompNotif{}
	return ioctlPtr(lfd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

// notifIDValid reports whether notification id is still pending: its
// thread has not been killed, so the thread and its memory and files are
// still the ones the notification named. Call it after reading anything
// of the target's.
func notifIDValid(lfd int, id uint64) bool {
	return ioctlPtr(lfd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)) == nil
}

// notifContinue lets the kernel run the call as the program made it.
func notifContinue(lfd int, id uint64) error {
	r := seccompNotifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
	return ioctlPtr(lfd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
}

// notifReturn makes the call return val, or fail with errno if errno is
// not 0.
func notifReturn(lfd int, id uint64, val int64, errno syscall.Errno) error {
	r := seccompNotifResp{ID: id, Val: val}
	if errno != 0 {
		r.Val, r.Error = 0, -int32(errno)
	}
	return ioctlPtr(lfd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
}

// seccompNotifAddfd is struct seccomp_notif_addfd.
type seccompNotifAddfd struct {
	ID         uint64
	Flags      uint32
	Srcfd      uint32
	Newfd      uint32
	NewfdFlags uint32
}

var (
	_ [24 - unsafe.Sizeof(seccompNotifAddfd{})]byte
	_ [unsafe.Sizeof(seccompNotifAddfd{}) - 24]byte
)

// notifAddFDSend installs a duplicate of the supervisor's fd src in the
// notifying process (close-on-exec if cloexec) and, in the same step,
// answers the notification with the new fd's number
// (SECCOMP_ADDFD_FLAG_SEND, Linux 5.14), which it returns.
func notifAddFDSend(lfd int, id uint64, src int, cloexec bool) (int, error) {
	a := seccompNotifAddfd{ID: id, Flags: unix.SECCOMP_ADDFD_FLAG_SEND, Srcfd: uint32(src)}
	if cloexec {
		a.NewfdFlags = unix.O_CLOEXEC
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(lfd), unix.SECCOMP_IOCTL_NOTIF_ADDFD, uintptr(unsafe.Pointer(&a)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// notifSetSyncWakeUp asks the kernel (6.6 and later) to wake the
// supervisor on the notifying thread's CPU and switch to it at once,
// which halves the cost of a notification handled inline.
func notifSetSyncWakeUp(lfd int) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(lfd), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	if e != 0 {
		return e
	}
	return nil
}

func ioctlPtr(fd int, req uint, p unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// installFilter loads prog as a seccomp filter on the calling thread
// only (no TSYNC) with flags NEW_LISTENER|WAIT_KILLABLE_RECV, and
// returns the listener. The thread must have no_new_privs set.
func installFilter(prog []bpfInsn) (int, error) {
	filt := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filt[i] = unix.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filt)), Filter: &filt[0]}
	fd, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_NEW_LISTENER|unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
		uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}
