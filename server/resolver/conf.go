package resolver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits glibc applies to resolv.conf (resolv.h: MAXNS, RES_MAXNDOTS,
// RES_MAXRETRANS, RES_MAXRETRY); values above them are clamped.
const (
	maxNameservers = 3
	maxNdots       = 15
	maxTimeout     = 30 * time.Second
	maxAttempts    = 5
	maxSearch      = 32 // names in the search list; glibc has no limit since 2.26, Go keeps all
)

// resolvConf is what the resolver uses from resolv.conf(5).
type resolvConf struct {
	servers  []string      // "host:53"
	search   []string      // lowercased, no trailing dot
	ndots    int           // default 1
	timeout  time.Duration // zero: not set
	attempts int           // zero: not set
}

// defaultResolvConf is what glibc uses when resolv.conf is missing or has
// no nameserver lines: a server on the local host.
func defaultServers() []string { return []string{"127.0.0.1:53", "[::1]:53"} }

// readResolvConf reads path. A missing file gives glibc's defaults; any
// other read error is returned.
func readResolvConf(path string) (resolvConf, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return resolvConf{servers: defaultServers(), ndots: 1}, nil
	}
	if err != nil {
		return resolvConf{}, fmt.Errorf("resolver: read resolv.conf: %w", err)
	}
	return parseResolvConf(b), nil
}

// parseResolvConf parses the lines of resolv.conf(5) that matter for
// address lookups: nameserver, search and domain (the last of them wins,
// as in glibc), and options ndots, timeout and attempts. Unknown lines and
// options, and malformed values, are ignored, as glibc does.
func parseResolvConf(b []byte) resolvConf {
	c := resolvConf{ndots: 1}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 || len(c.servers) >= maxNameservers {
				continue
			}
			ip, err := netip.ParseAddr(f[1])
			if err != nil {
				continue
			}
			c.servers = append(c.servers, net.JoinHostPort(ip.String(), "53"))
		case "domain":
			c.search = nil
			if len(f) >= 2 {
				c.search = appendSearch(nil, f[1])
			}
		case "search":
			c.search = nil
			for _, d := range f[1:] {
				if len(c.search) >= maxSearch {
					break
				}
				c.search = appendSearch(c.search, d)
			}
		case "options":
			for _, o := range f[1:] {
				name, val, _ := strings.Cut(o, ":")
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 {
					continue
				}
				switch name {
				case "ndots":
					c.ndots = min(n, maxNdots)
				case "timeout":
					c.timeout = time.Duration(min(max(n, 1), int(maxTimeout/time.Second))) * time.Second
				case "attempts":
					c.attempts = min(max(n, 1), maxAttempts)
				}
			}
		}
	}
	if len(c.servers) == 0 {
		c.servers = defaultServers()
	}
	return c
}

// appendSearch appends domain d to list if it is a valid name; "." (the
// root) means no suffix and is dropped, as glibc does.
func appendSearch(list []string, d string) []string {
	d = strings.TrimSuffix(d, ".")
	if d == "" || checkName(d) != nil {
		return list
	}
	return append(list, strings.ToLower(d))
}

// hostsTTL is the TTL reported for addresses from the hosts file: they
// have none, and 0 would tell clients not to use the answer at all.
const hostsTTL = 60

// hostsCheckInterval is how often the hosts file is checked for changes.
const hostsCheckInterval = time.Second

// maxHostsSize bounds how much of the hosts file is read.
const maxHostsSize = 16 << 20

// hostsTable maps lowercased names to their addresses in file order.
type hostsTable map[string][]netip.Addr

// parseHosts parses hosts(5): an address, then a canonical name and
// aliases; '#' starts a comment. Lines with a bad address are skipped,
// names that are not valid domain names are ignored, and repeated
// addresses of one name are kept once.
func parseHosts(b []byte) hostsTable {
	t := hostsTable{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		for _, name := range f[1:] {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			if checkName(name) != nil {
				continue
			}
			if !containsAddr(t[name], ip) {
				t[name] = append(t[name], ip)
			}
		}
	}
	return t
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, b := range list {
		if a == b {
			return true
		}
	}
	return false
}

// hostsFile is a hosts file re-read when its modification time or size
// changes, checked at most once per hostsCheckInterval.
type hostsFile struct {
	path string // "" disables

	mu      sync.Mutex
	checked time.Time // last stat
	mtime   time.Time
	size    int64
	table   hostsTable
}

// load reads the file for the first time. A missing file is an empty
// table; other errors are returned.
func (h *hostsFile) load(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refreshLocked(now)
}

// refreshLocked re-reads the file if it changed since the last read.
func (h *hostsFile) refreshLocked(now time.Time) error {
	h.checked = now
	fi, err := os.Stat(h.path)
	if errors.Is(err, fs.ErrNotExist) {
		h.table, h.mtime, h.size = nil, time.Time{}, 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolver: hosts file: %w", err)
	}
	if h.table != nil && fi.ModTime().Equal(h.mtime) && fi.Size() == h.size {
		return nil
	}
	f, err := os.Open(h.path)
	if err != nil {
		return fmt.Errorf("resolver: hosts file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHostsSize))
	if err != nil {
		return fmt.Errorf("resolver: hosts file: %w", err)
	}
	h.table = parseHosts(b)
	h.mtime, h.size = fi.ModTime(), fi.Size()
	return nil
}

// lookup returns the addresses the file lists for name (lowercased, no
// trailing dot) and whether it lists the name at all. A read error after
// the first load keeps the previous table.
func (h *hostsFile) lookup(name string, now time.Time) ([]netip.Addr, bool) {
	if h == nil || h.path == "" {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.checked) >= hostsCheckInterval || now.Before(h.checked) {
		_ = h.refreshLocked(now) // keep serving the last good table
	}
	addrs, ok := h.table[name]
	return addrs, ok
}
