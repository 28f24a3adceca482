//go:build linux

package isolate

// Which process made a connection, for the -v lines (Config.OnConnect).
//
// The stack only sees packets: a SYN from 192.0.0.8:40312 to a fake
// address names no process. The namespace's own socket tables
// (/proc/net/tcp, tcp6, udp, udp6 as seen from inside it) map the
// connection's two ends to a socket inode, and the process holding that
// inode is found among the namespace's processes by their open files
// (/proc/PID/fd). The tables are opened once, on the namespace's thread,
// before the program starts: a /proc/net file stays bound to the
// namespace it was opened in, so it can be read again after the program
// (the only process known to be inside) has exited.
//
// It is a lookup per connection over /proc, so it runs only when someone
// asked for events, and at the same time as the gateway's CONNECT, which
// takes longer.

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// An owners finds the process behind a connection in one namespace.
type owners struct {
	ns, dev uint64        // the namespace's identity (stat of /proc/PID/ns/net)
	sem     chan struct{} // bounds the lookups running at once
	mu      sync.Mutex
	tables  map[string][]*os.File // "tcp": tcp and tcp6; "udp": udp and udp6
	buf     []byte                // guarded by mu
	known   map[int]bool          // processes seen in the namespace: looked at first; guarded by mu
}

// maxLookups bounds the concurrent lookups (each may read all of /proc);
// maxKnown bounds owners.known.
const (
	maxLookups = 4
	maxKnown   = 256
)

// openOwners opens the socket tables of the calling thread's network
// namespace; it runs on the namespace's thread. A table that cannot be
// opened (no IPv6) is left out.
func openOwners() (*owners, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return nil, err
	}
	o := &owners{ns: st.Ino, dev: uint64(st.Dev), sem: make(chan struct{}, maxLookups),
		tables: map[string][]*os.File{}, known: map[int]bool{}}
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open("/proc/thread-self/net/" + name)
		if err != nil {
			continue
		}
		key := strings.TrimSuffix(name, "6")
		o.tables[key] = append(o.tables[key], f)
	}
	return o, nil
}

func (o *owners) close() {
	for _, fs := range o.tables {
		for _, f := range fs {
			f.Close()
		}
	}
}

// find returns the process (and its command name) holding the socket
// whose local end is local and whose peer is remote ("tcp"), or which is
// bound to local ("udp": connected to remote or not connected at all);
// 0 and "" if there is none any more.
func (o *owners) find(network string, local, remote netip.AddrPort) (int, string) {
	o.sem <- struct{}{}
	defer func() { <-o.sem }()
	ino := o.inode(network, local, remote)
	if ino == 0 {
		return 0, ""
	}
	return o.holder(ino)
}

// inode looks the connection up in the namespace's tables.
func (o *owners) inode(network string, local, remote netip.AddrPort) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range o.tables[network] {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			continue
		}
		o.buf = o.buf[:0]
		b := bytes.NewBuffer(o.buf)
		if _, err := b.ReadFrom(f); err != nil {
			continue
		}
		o.buf = b.Bytes()
		data := o.buf
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			l, r, ino, ok := parseSockLine(line)
			if !ok || ino == 0 || l.Port() != local.Port() {
				continue
			}
			if network == "tcp" {
				if l == local && r == remote {
					return ino
				}
				continue
			}
			if (l.Addr() == local.Addr() || l.Addr().IsUnspecified()) && (r == remote || !r.Addr().IsValid() || r.Addr().IsUnspecified()) {
				return ino
			}
		}
	}
	return 0
}

// holder returns the namespace's process with an open file for socket
// ino: among the processes found there before, else among all.
func (o *owners) holder(ino uint64) (int, string) {
	want := "socket:[" + strconv.FormatUint(ino, 10) + "]"
	o.mu.Lock()
	known := make([]int, 0, len(o.known))
	for pid := range o.known {
		known = append(known, pid)
	}
	o.mu.Unlock()
	for _, pid := range known {
		if !o.inNamespace(pid) {
			o.mu.Lock()
			delete(o.known, pid)
			o.mu.Unlock()
			continue
		}
		if comm, ok := holds(pid, want); ok {
			return pid, comm
		}
	}
	d, err := os.Open("/proc")
	if err != nil {
		return 0, ""
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 || slices.Contains(known, pid) || !o.inNamespace(pid) {
			continue
		}
		o.mu.Lock()
		if len(o.known) >= maxKnown {
			clear(o.known)
		}
		o.known[pid] = true
		o.mu.Unlock()
		if comm, ok := holds(pid, want); ok {
			return pid, comm
		}
	}
	return 0, ""
}

// inNamespace reports whether process pid is in o's namespace.
func (o *owners) inNamespace(pid int) bool {
	var st syscall.Stat_t
	return syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st) == nil && st.Ino == o.ns && uint64(st.Dev) == o.dev
}

// holds reports whether process pid has an open file that is link (a
// socket's "socket:[INODE]"), and returns its command name.
func holds(pid int, link string) (string, bool) {
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	f, err := os.Open(fdDir)
	if err != nil {
		return "", false
	}
	fds, _ := f.Readdirnames(-1)
	f.Close()
	for _, fd := range fds {
		if l, err := os.Readlink(fdDir + "/" + fd); err == nil && l == link {
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			return strings.TrimSpace(string(comm)), true
		}
	}
	return "", false
}

// parseSockLine parses one entry of /proc/net/tcp, tcp6, udp or udp6:
// "sl local_address rem_address st tx_queue:rx_queue tr:tm->when
// retrnsmt uid timeout inode ...", addresses as hexadecimal
// ADDRESS:PORT with the address in 32-bit words in host (little-endian)
// order. The header line and anything malformed give ok false.
func parseSockLine(line []byte) (local, remote netip.AddrPort, ino uint64, ok bool) {
	f := bytes.Fields(line)
	if len(f) < 10 {
		return
	}
	if local, ok = parseHexAddrPort(f[1]); !ok {
		return
	}
	if remote, ok = parseHexAddrPort(f[2]); !ok {
		return
	}
	ino, err := strconv.ParseUint(string(f[9]), 10, 64)
	if err != nil {
		return local, remote, 0, false
	}
	return local, remote, ino, true
}

// parseHexAddrPort parses "0100007F:0050" (127.0.0.1:80) or its 32-digit
// IPv6 form; an IPv4-mapped IPv6 address comes back as IPv4.
func parseHexAddrPort(s []byte) (netip.AddrPort, bool) {
	i := bytes.IndexByte(s, ':')
	if i < 0 || len(s)-i-1 != 4 {
		return netip.AddrPort{}, false
	}
	n := i / 2 // address bytes
	if i != 8 && i != 32 {
		return netip.AddrPort{}, false
	}
	// Each 32-bit word was printed as the integer that the address's
	// bytes make in host order; storing it back in host order gives the
	// bytes.
	var raw [16]byte
	for w := 0; w < n; w += 4 {
		v, err := strconv.ParseUint(string(s[2*w:2*w+8]), 16, 32)
		if err != nil {
			return netip.AddrPort{}, false
		}
		binary.NativeEndian.PutUint32(raw[w:], uint32(v))
	}
	port, err := strconv.ParseUint(string(s[i+1:]), 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var ip netip.Addr
	if n == 4 {
		ip = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		ip = netip.AddrFrom16(raw).Unmap()
	}
	return netip.AddrPortFrom(ip, uint16(port)), true
}
