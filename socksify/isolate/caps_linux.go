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
// but the TUN device), and those over files and processes that a root
// program needs to act as root on its files. Every other one goes, among
// them CAP_SYS_ADMIN (setns into another namespace, mounts),
// CAP_NET_ADMIN (moving an interface in from outside), CAP_SYS_PTRACE
// (taking over a process outside), CAP_SYS_MODULE, CAP_BPF and
// CAP_MKNOD (a device node of the host's disk).
var keptCapabilities = []int{
	unix.CAP_NET_RAW, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH, unix.CAP_FOWNER,
	unix.CAP_FSETID, unix.CAP_KILL, unix.CAP_SETUID, unix.CAP_SETGID,
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
		if keep[min(c/32, 1)]&(1<<(c%32)) != 0 && c < 64 {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL {
			break // past the last capability the kernel knows
		}
		if err == unix.EPERM && os.Geteuid() != 0 {
			// A caller with CAP_NET_ADMIN but not CAP_SETPCAP (file
			// capabilities on socksify): a program it starts as
			// non-root gets nothing from the bounding set, only from
			// the inheritable and ambient sets reduced below.
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
// own in which /proc/sys and /sys are read-only. A root program keeps
// write access to files by owner, and the kernel runs some of them as
// root helpers outside every namespace (kernel.core_pattern,
// kernel.modprobe, /sys/kernel/uevent_helper): a way to reach the
// network around the TUN device. Without CAP_SYS_ADMIN the program
// cannot make them writable again.
func readOnlyKernelFiles() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare(CLONE_NEWNS): %w", err)
	}
	// Nothing done here may propagate back to the host's mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the mounts private: %w", err)
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
		if err := unix.Mount("", mp, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", mp, err)
		}
	}
	return nil
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
