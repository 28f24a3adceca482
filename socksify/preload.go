package socksify

import (
	"bufio"
	"encoding/binary"
	"io"
	"strconv"
	"strings"
)

// The preload fast path. A name lookup through the fake DNS costs a
// dynamically linked glibc program four trapped calls (connect,
// sendmmsg, and two recvfrom) and a DNS exchange with the supervisor;
// on a two-core machine that is most of what socksify adds to a curl
// fetch of a new name (bench/micro/sfyrate.sh). So Start also loads a
// small shared library into the program (LD_PRELOAD; its source is
// preload/preload.c) whose getaddrinfo gives such a name its fake
// address in the program's own thread, with no trapped call at all: the
// name goes into a slot of a table that the supervisor and every
// supervised process map (a file, MAP_SHARED), and the fake address is
// the slot's index. The supervisor reads the name back from the slot
// when the program connects to the address.
//
// The library handles only what the fake DNS would answer with a fake
// address anyway, and hands everything else to the C library's
// getaddrinfo unchanged, which then reaches the fake DNS as before:
// numeric hosts, names that are not plain host names (RFC 1123: no
// underscore), names with fewer dots than resolv.conf's ndots when
// there is a search list (resolv.conf's, or the host name's domain), names in /etc/hosts, the host's own name, .local,
// localhost and .arpa names, lookups with AI_CANONNAME or
// AI_ADDRCONFIG, any lookup while LOCALDOMAIN or RES_OPTIONS is set, and
// names whose slots are all taken. It is loaded only when
// /etc/nsswitch.conf's hosts line lists files before dns and nothing
// before dns but files, myhostname,
// resolve and mdns*_minimal with their harmless actions
// (nsswitchAllowsPreload), so that a name it fakes is one the C library
// would have asked DNS for, and when the system's glibc is 2.34 or later
// (the library needs dlsym in libc). Static binaries (Go, musl) ignore LD_PRELOAD and
// use the fake DNS; so does a program that empties LD_PRELOAD.
//
// The library also wraps connect and getpeername: a program that
// connected to a fake address usually asks getpeername for it (curl
// twice per connection), which the supervisor must trap to report the
// fake address rather than the gateway's. The library notes what a
// successful connect to a fake address asked for, with the socket's
// inode, and answers getpeername with it, as the supervisor would, while
// the descriptor is still that socket.
//
// The table is writable by the program, so a slot's content is as
// untrusted as a DNS query: the supervisor takes a name from it only if
// it is a valid host name (validSlotName), and a program can reach
// through it nothing it could not reach by asking the fake DNS.
//
// The table's layout (little endian), shared with preload.c:
//
//	header, 64 bytes: magic u32, version u32, nslots u32, base u32,
//	                  flags u32 (1: prefer IPv6 fake addresses),
//	                  mindots u32, reserved
//	nslots slots of 264 bytes: state u32 (0 empty, odd while written,
//	                  even once it holds a name), used u32
//	                  (CLOCK_MONOTONIC seconds of its last lookup or
//	                  connect), len u8, name [255]byte
//
// Slot i holds the name of fake index base+i. A name lives in one of the
// 8 slots after its FNV-1a hash, so processes usually give a name the
// same address (two that take a slot for the same new name at the same
// moment may take two); a slot goes to another name only once it has
// gone unused for fakeReuseAfter, as in the supervisor's own table. The
// supervisor reads slots with pread, not through a mapping: a program
// that truncates the file must not be able to crash it with SIGBUS.
const (
	preloadMagic    = 0x36736b73 // "sks6"
	preloadVersion  = 1
	preloadHdrSize  = 64
	preloadSlotSize = 264
	// preloadSlots is the number of slots: the top of the fake index
	// range, which the supervisor's own table then leaves alone.
	preloadSlots = 1<<14 - 1
	// preloadBase is the fake index of slot 0.
	preloadBase = maxFakeIndex - preloadSlots + 1
	// preloadFlagPrefer6 makes the library answer AF_UNSPEC lookups
	// with the IPv6 fake address (an IPv6-only gateway).
	preloadFlagPrefer6 = 1
)

// preloadMapSize is the table file's size.
const preloadMapSize = preloadHdrSize + preloadSlots*preloadSlotSize

// encodePreloadHeader writes the table's header to b.
func encodePreloadHeader(b []byte, prefer6 bool, mindots int) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], preloadMagic)
	le.PutUint32(b[4:], preloadVersion)
	le.PutUint32(b[8:], preloadSlots)
	le.PutUint32(b[12:], preloadBase)
	var flags uint32
	if prefer6 {
		flags |= preloadFlagPrefer6
	}
	le.PutUint32(b[16:], flags)
	le.PutUint32(b[20:], uint32(max(mindots, 1)))
}

// validSlotName reports whether b, read from a slot, is a name the
// library could have written: a lowercase host name (RFC 1123) of at
// least two labels, each of 1 to 63 letters, digits and inner hyphens,
// 253 bytes at most, and not an IPv4 address.
func validSlotName(b []byte) bool {
	if len(b) == 0 || len(b) > 253 {
		return false
	}
	label, dots := 0, 0
	for i, c := range b {
		switch {
		case c == '.':
			if label == 0 || b[i-1] == '-' {
				return false
			}
			dots++
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && label > 0:
		default:
			return false
		}
		if label++; label > 63 {
			return false
		}
	}
	if label == 0 || dots == 0 || b[len(b)-1] == '-' {
		return false
	}
	_, numeric := parseInetAton(string(b))
	return !numeric
}

// parseInetAton reports whether s is an IPv4 address in one of the forms
// inet_aton(3) accepts ("a.b.c.d", "a.b.c", "a.b", "a", each part
// decimal, octal with a leading 0, or hex with 0x), which the C library
// takes as numeric, never as a name.
func parseInetAton(s string) (uint32, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return 0, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case len(p) > 1 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0" // inet_aton takes "0x" as 0
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return 0, false
		}
		vals[i] = v
	}
	n := len(vals)
	for _, v := range vals[:n-1] {
		if v > 0xff {
			return 0, false
		}
	}
	if vals[n-1] >= 1<<(8*(5-n)) && n > 1 {
		return 0, false
	}
	var a uint64
	for i, v := range vals[:n-1] {
		a |= v << (24 - 8*i)
	}
	return uint32(a | vals[n-1]), true
}

// nsswitchAllowsPreload reports whether the hosts line of nsswitch.conf
// (read from r) lets the library fake names: files comes before dns, and
// every source and action before dns is one whose answers the library's
// rules keep: files (/etc/hosts), myhostname (the host's own name,
// localhost names, names without a dot), mdns*_minimal (.local, and
// [NOTFOUND=return] after it, which only .local names reach), resolve
// (unreachable under socksify, so UNAVAIL: [!UNAVAIL=return] after it
// does not return) and the default actions. A missing hosts line means
// glibc's default, dns before files: no.
func nsswitchAllowsPreload(r io.Reader) bool {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		db, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(db) != "hosts" {
			continue
		}
		// Split "[ a=b c=d ]" apart from the sources, whatever the
		// spacing.
		rest = strings.NewReplacer("[", " [ ", "]", " ] ").Replace(rest)
		files, prev := false, ""
		inAction := false
		for _, f := range strings.Fields(rest) {
			switch {
			case f == "[":
				inAction = true
			case f == "]":
				inAction = false
			case inAction:
				if !nssActionKept(prev, strings.ToLower(f)) {
					return false
				}
			case f == "files":
				files, prev = true, f
			case f == "dns":
				return files
			case f == "myhostname", f == "resolve", strings.HasPrefix(f, "mdns") && strings.HasSuffix(f, "_minimal"):
				prev = f
			default:
				return false
			}
		}
		return false
	}
	return false
}

// nssActionKept reports whether the action status=action after source
// prev, before dns, leaves every name the library fakes to dns.
func nssActionKept(prev, act string) bool {
	switch act {
	case "success=return", "notfound=continue", "unavail=continue", "tryagain=continue":
		return true // the defaults
	case "notfound=return":
		return strings.HasPrefix(prev, "mdns") // only .local names are found there
	case "!unavail=return":
		return prev == "resolve" // always UNAVAIL under socksify
	}
	return false
}

// resolvMinDots returns the fewest dots a relative name must have for
// glibc to ask for it as it is before trying the search list: ndots
// (options ndots:N, 1 by default) when resolv.conf (read from r) has a
// search list, or when it has none and the host name has a domain
// (which glibc then searches), else 1. (The library itself leaves names
// to the C library when LOCALDOMAIN or RES_OPTIONS is set.)
func resolvMinDots(r io.Reader, hostname string) int {
	ndots, search, listed := 1, false, false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "search", "domain":
			listed = true
			search = len(f) > 1 && f[1] != "."
		case "options":
			for _, o := range f[1:] {
				if v, ok := strings.CutPrefix(o, "ndots:"); ok {
					if n, err := strconv.Atoi(v); err == nil && n >= 0 {
						ndots = min(n, 15) // glibc's RES_MAXNDOTS
					}
				}
			}
		}
	}
	if !listed {
		_, domain, _ := strings.Cut(strings.TrimSuffix(hostname, "."), ".")
		search = domain != ""
	}
	if !search {
		return 1
	}
	return max(ndots, 1)
}
