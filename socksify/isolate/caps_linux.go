package isolate

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// keptCapabilities are the capabilities a program in the namespace keeps,
// if it had them: those whose network reach is the program's own
// namespace (raw sockets and ports below 1024 there, which lead nowhere
// but the TUN device), and those a root program or daemon needs to act
// as root on its files and to drop its own privileges (chroot, setuid,
// capability sets: sshd's privilege separation). Every other one goes,
// among them CAP_SYS_ADMIN (setns into another namespace, mounts),
// CAP_NET_ADMIN (moving an interface in from outside), CAP_SYS_PTRACE
// (taking over a process with more capabilities), CAP_SYS_MODULE,
// CAP_BPF and CAP_MKNOD (a device node of the host's disk).
var keptCapabilities = []int{
	unix.CAP_NET_RAW, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH, unix.CAP_FOWNER,
	unix.CAP_FSETID, unix.CAP_KILL, unix.CAP_SETUID, unix.CAP_SETGID,
	unix.CAP_SETPCAP, unix.CAP_SYS_CHROOT, unix.CAP_AUDIT_WRITE,
}

// dropCapabilities reduces the calling thread's capability sets
// (bounding, inheritable, permitted, effective) to keptCapabilities and
// clears the ambient set, so that a program it then starts has no other
// capability, even as root and even through a setuid or file-capability
// binary.
//
// Capabilities are per thread on Linux: Start calls it on the locked
// thread that made the namespace and starts the program, a thread that
// is discarded afterwards, so the rest of the process keeps its own.
func dropCapabilities() error {
	var keep [2]uint32
	for _, c := range keptCapabilities {
		keep[c/32] |= 1 << (c % 32)
	}
	for c := 0; ; c++ {
		if c < 64 && keep[c/32]&(1<<(c%32)) != 0 {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL {
			break // past the last capability the kernel knows
		}
		if err == unix.EPERM && os.Geteuid() != 0 {
			// A caller with CAP_NET_ADMIN but not CAP_SETPCAP (file
			// capabilities on socksify): the bounding set stays whole,
			// so no setuid or file-capability binary may raise the
			// program's privileges (no_new_privs, inherited); otherwise
			// a non-root program gets only the inheritable and ambient
			// sets reduced below.
			if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
				return fmt.Errorf("setting no_new_privs: %w", err)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clearing the ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // 64 capabilities in two halves
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for i := range data {
		data[i].Effective &= keep[i]
		data[i].Permitted &= keep[i]
		data[i].Inheritable &= keep[i]
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// readOnlyKernelFiles gives the calling thread a mount namespace of its
// own in which /proc/sys, /proc/sysrq-trigger and /sys (with everything
// mounted under it) are read-only. A root program keeps write access to
// files by owner, and the kernel runs some of them as root helpers
// outside every namespace (kernel.core_pattern, kernel.modprobe,
// /sys/kernel/uevent_helper): a way to reach the network around the TUN
// device. Without CAP_SYS_ADMIN the program cannot make them writable
// again.
func readOnlyKernelFiles() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare(CLONE_NEWNS): %w", err)
	}
	// Nothing done under /proc and /sys may propagate back to the
	// host's mounts; mounts the host makes later still show. (Not "/",
	// which is no mount point in a plain chroot.)
	for _, dir := range []string{"/proc", "/sys"} {
		err := unix.Mount("", dir, "", unix.MS_REC|unix.MS_SLAVE, "")
		if err != nil && err != unix.EINVAL && err != unix.ENOENT { // EINVAL: not mounted there
			return fmt.Errorf("making %s a slave mount: %w", dir, err)
		}
	}
	for _, dir := range []string{"/proc/sys", "/proc/sysrq-trigger", "/sys"} {
		err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, "")
		if err == unix.ENOENT {
			continue // a kernel without it (no sysrq, no sysfs)
		}
		if err != nil {
			return fmt.Errorf("bind-mounting %s: %w", dir, err)
		}
	}
	// The bind mounts and everything mounted under them (cgroup, debugfs,
	// …): a read-only remount covers one mount only.
	mi, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return err
	}
	for _, mp := range mountPointsUnder(string(mi), "/proc/sys", "/proc/sysrq-trigger", "/sys") {
		if err := remountReadOnly(mp); err != nil {
			return fmt.Errorf("making %s read-only: %w", mp, err)
		}
	}
	return nil
}

// remountReadOnly makes the mount at mp read-only. A remount replaces
// the mount's flags, so those it has (nosuid, nodev, noexec, atime) are
// given again: dropping them would loosen it, and in a user namespace
// they are locked, and the remount would fail without them.
func remountReadOnly(mp string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(mp, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	return unix.Mount("", mp, "", flags, "")
}

// mountPointsUnder returns the mount points of mountinfo (proc(5)) that
// are one of dirs or under one, in order, each once.
func mountPointsUnder(mountinfo string, dirs ...string) []string {
	var out []string
	seen := map[string]bool{}
	for line := range strings.Lines(mountinfo) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountField(f[4])
		for _, d := range dirs {
			if (mp == d || strings.HasPrefix(mp, d+"/")) && !seen[mp] {
				seen[mp] = true
				out = append(out, mp)
			}
		}
	}
	return out
}

// unescapeMountField undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountField(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
