package socksify

import (
	"testing"
)

// FuzzParseSockaddr feeds arbitrary bytes as a program's sockaddr: no
// panic, and an IP address that parses re-encodes to a sockaddr that
// parses to the same address.
func FuzzParseSockaddr(f *testing.F) {
	f.Add([]byte{2, 0, 0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{10, 0, 1, 187, 0, 0, 0, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0})
	f.Add([]byte{1, 0, '/', 'v', 'a', 'r', 0, 'x'})
	f.Add([]byte{1, 0, 0, 'a', 'b'})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		sa, err := parseSockaddr(b)
		if err != nil || !sa.isIP() {
			return
		}
		enc, err := appendSockaddr(nil, int(sa.family), sa.ap)
		if err != nil {
			return // e.g. an IPv6 zone that is not a number
		}
		sa2, err := parseSockaddr(enc)
		if err != nil || sa2.ap != sa.ap {
			t.Fatalf("% x parsed as %v, re-encoded % x, parsed again as %v (%v)", b, sa.ap, enc, sa2.ap, err)
		}
	})
}

// FuzzParseLaunchStatus and FuzzParseFilterOpts: the launcher's status
// line and the filter options it is given never panic the supervisor.
func FuzzParseLaunchStatus(f *testing.F) {
	for _, s := range []string{"ok 3", "err 1 seccomp", "ok", "err x", "ok -1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { parseLaunchStatus(s) })
}

func FuzzParseFilterOpts(f *testing.F) {
	for _, s := range []string{"", "getsockname", "x", ",,", "getsockname,getsockname"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { parseFilterOpts(s) })
}
