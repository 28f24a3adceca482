//go:build linux

package isolate

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
)

func TestParseSockLine(t *testing.T) {
	for _, c := range []struct {
		line          string
		local, remote string
		ino           uint64
		ok            bool
	}{
		{"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", "", "", 0, false},
		{"   0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0",
			"127.0.0.1:631", "0.0.0.0:0", 12345, true},
		{"   1: 080000C0:9D78 010012C6:0050 02 00000001:00000000 01:00000200 00000000     0        0 777 1 0000000000000000 100 0 0 10 0",
			"192.0.0.8:40312", "198.18.0.1:80", 777, true},
		// ::1 and a v4-mapped peer (IPv6 table), fd00:5eed:0:1::1.
		{"   0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:0050 01 00000000:00000000 00:00000000 00000000  1000        0 42 1",
			"[::1]:8080", "127.0.0.1:80", 42, true},
		{"   0: ED5E00FD01000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 9",
			"", "", 0, false}, // 34 digits
		{"   0: ED5E00FD010000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 9",
			"[fd00:5eed:0:1::1]:80", "[::]:0", 9, true},
		{"   0: 0100007F:0277 00000000:0000 0A 0 0 0 0 0 notanumber", "", "", 0, false},
		{"   0: 0100007G:0277 00000000:0000 0A 0 0 0 0 0 1", "", "", 0, false},
		{"   0: 0100007F:02777 00000000:0000 0A 0 0 0 0 0 1", "", "", 0, false},
		{"   0: 0100007F 00000000:0000 0A 0 0 0 0 0 1", "", "", 0, false},
		{"   0: +100007F:0277 00000000:0000 0A 0 0 0 0 0 1", "", "", 0, false},
	} {
		l, r, ino, ok := parseSockLine([]byte(c.line))
		if ok != c.ok {
			t.Errorf("%q: ok %v, want %v", c.line, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if l.String() != c.local || r.String() != c.remote || ino != c.ino {
			t.Errorf("%q: %v %v %d, want %s %s %d", c.line, l, r, ino, c.local, c.remote, c.ino)
		}
	}
}

func FuzzParseSockLine(f *testing.F) {
	f.Add([]byte("   0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1"))
	f.Add([]byte("   0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:0050 01 0 0 0 0 0 42"))
	f.Fuzz(func(t *testing.T, line []byte) {
		l, r, _, ok := parseSockLine(line)
		if ok && (!l.IsValid() || !r.IsValid()) {
			t.Fatalf("ok with invalid addresses %v %v", l, r)
		}
	})
}

// The lookup on this process's own sockets: a real TCP connection on
// loopback is found in the tables and its holder is this process.
func TestOwners(t *testing.T) {
	runtime.LockOSThread() // thread-self: this thread's namespace
	o, err := openOwners()
	runtime.UnlockOSThread()
	if err != nil {
		t.Skipf("no /proc/thread-self: %v", err)
	}
	defer o.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	pid, comm := o.find("tcp", local, remote)
	if pid != os.Getpid() || comm == "" {
		t.Errorf("find(tcp, %v, %v) = %d %q, want this process (%d)", local, remote, pid, comm, os.Getpid())
	}
	if pid, _ := o.find("tcp", local, netip.MustParseAddrPort("127.0.0.1:1")); pid != 0 {
		t.Errorf("a connection that does not exist: found %d", pid)
	}

	// UDP: an unconnected socket bound to the wildcard address serves
	// any local address of its port.
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	if pid, _ := o.find("udp", netip.AddrPortFrom(netip.MustParseAddr("192.0.0.8"), port), netip.MustParseAddrPort("198.18.0.4:123")); pid != os.Getpid() {
		t.Errorf("find(udp) = %d, want %d", pid, os.Getpid())
	}
}
