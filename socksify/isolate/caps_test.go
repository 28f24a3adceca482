//go:build linux

package isolate

import (
	"slices"
	"strings"
	"testing"
)

func TestMountPointsUnder(t *testing.T) {
	// Lines from proc(5)'s format: the mount point is the fifth field.
	mi := `22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
23 22 0:22 / /proc rw,nosuid - proc proc rw
24 23 0:23 / /proc/sys rw - proc proc rw
25 22 0:24 / /sys rw,nosuid - sysfs sysfs rw
26 25 0:25 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
27 22 0:26 / /sysroot rw - tmpfs tmpfs rw
28 22 0:27 / /srv/with\040space rw - tmpfs tmpfs rw
29 25 0:24 / /sys rw,nosuid - sysfs sysfs rw
short line
`
	got := mountPointsUnder(mi, "/proc/sys", "/sys", "/srv/with space")
	want := []string{"/proc/sys", "/sys", "/sys/fs/cgroup", "/srv/with space"}
	if !slices.Equal(got, want) {
		t.Errorf("mountPointsUnder = %q, want %q", got, want)
	}
}

func FuzzMountPointsUnder(f *testing.F) {
	f.Add("24 23 0:23 / /proc/sys rw - proc proc rw\n", "/proc/sys")
	f.Add(`1 2 3 4 /a\040b\0 x`, "/a b")
	f.Add(`1 2 3 4 \777\ x`, "/")
	f.Fuzz(func(t *testing.T, mi, dir string) {
		for _, mp := range mountPointsUnder(mi, dir) {
			if mp != dir && !strings.HasPrefix(mp, dir+"/") {
				t.Fatalf("%q is not %q or under it", mp, dir)
			}
		}
	})
}
