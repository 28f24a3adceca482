package socksify

import (
	"container/list"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// The fake-IP ranges. A name gets one index n, and with it the IPv4
// address 198.18.0.0+n (RFC 2544's benchmarking range, 198.18.0.0/15,
// which no public host uses) and the IPv6 address fd00:5eed::n (a fixed
// RFC 4193 unique local /64). A program that resolves a name gets these;
// when it connects to one, socksify asks the gateway for the name.
var (
	fakeNet4 = netip.MustParsePrefix("198.18.0.0/15")
	fakeNet6 = netip.MustParsePrefix("fd00:5eed::/64")
)

// maxFakeIndex is the number of names the table holds at once: every
// address of 198.18.0.0/15 but the first and the last.
const maxFakeIndex = 1<<17 - 2

// A fakeTable maps names to fake-IP indexes and back. The mapping is kept
// much longer than the DNS TTL (programs such as Java and browsers cache
// answers longer than they are told). When the table is full, the least
// recently used name's index goes to the new name, but only once that
// name has gone unused (neither looked up nor connected to) for
// fakeReuseAfter; until then new names get no index (their lookups fail
// with SERVFAIL), so that a program never reaches one name through an
// address it was given for another while it may still hold it. A
// connection to an index that no name holds gets EHOSTUNREACH. It is
// safe for concurrent use.
type fakeTable struct {
	mu      sync.Mutex
	max     uint32
	byName  map[string]*list.Element
	byIndex map[uint32]*list.Element
	lru     list.List // of *fakeEntry, most recently used first
	next    uint32    // the highest index handed out so far

	// prefer6 makes AAAA the preferred query type (see pairWindow); set
	// before use, when the gateway has no IPv4 address.
	prefer6 bool
	now     func() time.Time // time.Now; tests replace it

	// ext, if not nil, owns the indexes from preloadBase up: the
	// preload library's table (preload.go), which hands them out itself.
	// Set before use, with max below preloadBase.
	ext func(idx uint32) (string, bool)
}

type fakeEntry struct {
	name      string
	idx       uint32
	preferred time.Time // when the preferred type was last asked for this name
	used      time.Time // when it was last looked up or connected to
}

// fakeReuseAfter is how long a name must have gone unused before a full
// table gives its index to another name: far beyond fakeTTL, and beyond
// what programs that ignore TTLs usually keep (a minute for browsers,
// half a minute for Java). A table of maxFakeIndex names then fills only
// for a program that looks up over 200 new names a second for that long.
const fakeReuseAfter = 10 * time.Minute

// pairWindow is how long after a query of the preferred type (A, or
// AAAA when the gateway is IPv6-only) a query of the other type for the
// same name gets no address: a program that asks for both (glibc sends
// A and AAAA in one sendmmsg, musl one after the other, Go's resolver
// in parallel) gets one fake address, not two. Both would lead to the
// same gateway with the same name, so the second adds nothing but cost:
// with two addresses glibc and Go sort them (RFC 6724), which takes a
// netlink dump and a UDP connect per address, all trapped, and a
// program whose connection fails tries the gateway twice. A program
// that asks for the other type alone still gets its fake address.
const pairWindow = 2 * time.Second

// newFakeTable returns a table of max names (at most maxFakeIndex; 0
// means maxFakeIndex).
func newFakeTable(max int) *fakeTable {
	if max <= 0 || max > maxFakeIndex {
		max = maxFakeIndex
	}
	return &fakeTable{max: uint32(max), byName: map[string]*list.Element{}, byIndex: map[uint32]*list.Element{}, now: time.Now}
}

// canonicalName lowercases name and drops a trailing dot: DNS names are
// compared without regard to ASCII case (RFC 4343).
func canonicalName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// assign returns name's index, giving it one if it has none; ok is false
// when the table is full of names used within fakeReuseAfter.
func (t *fakeTable) assign(name string) (idx uint32, ok bool) {
	idx, _, ok = t.assignFor(name, false)
	return idx, ok
}

// answerType returns the index to answer a query of qtype (A or AAAA)
// for name with; give is false if the query gets no address because the
// preferred type was asked for name within pairWindow, and ok is false
// if name has no index (assign).
func (t *fakeTable) answerType(name string, qtype uint16) (idx uint32, give, ok bool) {
	preferred := (qtype == dnsTypeAAAA) == t.prefer6
	idx, recent, ok := t.assignFor(name, preferred)
	return idx, preferred || !recent, ok
}

// assignFor returns name's index, giving it one if it has none, and
// whether the preferred type was asked for it within pairWindow; it
// records that the preferred type is asked now if preferred.
func (t *fakeTable) assignFor(name string, preferred bool) (idx uint32, recent, ok bool) {
	name = canonicalName(name)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now() // under the lock, so that used only grows
	if e, ok := t.byName[name]; ok {
		t.lru.MoveToFront(e)
		ent := e.Value.(*fakeEntry)
		recent = !ent.preferred.IsZero() && now.Sub(ent.preferred) < pairWindow
		if preferred {
			ent.preferred = now
		}
		ent.used = now
		return ent.idx, recent, true
	}
	var ent *fakeEntry
	if t.next < t.max {
		t.next++
		ent = &fakeEntry{idx: t.next}
	} else {
		old := t.lru.Back()
		ent = old.Value.(*fakeEntry)
		if now.Sub(ent.used) < fakeReuseAfter {
			return 0, false, false
		}
		t.lru.Remove(old)
		delete(t.byName, ent.name)
		delete(t.byIndex, ent.idx)
	}
	ent.name, ent.preferred, ent.used = name, time.Time{}, now
	if preferred {
		ent.preferred = now
	}
	e := t.lru.PushFront(ent)
	t.byName[name] = e
	t.byIndex[ent.idx] = e
	return ent.idx, false, true
}

// name returns the name that owns the fake address ip, if any.
func (t *fakeTable) name(ip netip.Addr) (string, bool) {
	idx, ok := fakeIndex(ip)
	if !ok {
		return "", false
	}
	if t.ext != nil && idx >= preloadBase {
		return t.ext(idx)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byIndex[idx]
	if !ok {
		return "", false
	}
	t.lru.MoveToFront(e)
	ent := e.Value.(*fakeEntry)
	ent.used = t.now()
	return ent.name, true
}

// isFake reports whether ip is in one of the fake ranges (whether or not
// a name owns it).
func isFake(ip netip.Addr) bool {
	ip = ip.Unmap()
	return fakeNet4.Contains(ip) || fakeNet6.Contains(ip)
}

// fakeIndex returns the index of the fake address ip.
func fakeIndex(ip netip.Addr) (uint32, bool) {
	ip = ip.Unmap()
	switch {
	case fakeNet4.Contains(ip):
		a := ip.As4()
		idx := uint32(a[1]&1)<<16 | uint32(a[2])<<8 | uint32(a[3])
		return idx, idx != 0
	case fakeNet6.Contains(ip):
		a := ip.As16()
		for _, b := range a[8:13] {
			if b != 0 {
				return 0, false
			}
		}
		idx := uint32(a[13])<<16 | uint32(a[14])<<8 | uint32(a[15])
		return idx, idx != 0 && idx <= maxFakeIndex
	}
	return 0, false
}

// fakeIP4 and fakeIP6 return the fake addresses of index idx.
func fakeIP4(idx uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18 | byte(idx>>16&1), byte(idx >> 8), byte(idx)})
}

func fakeIP6(idx uint32) netip.Addr {
	a := fakeNet6.Addr().As16()
	a[13], a[14], a[15] = byte(idx>>16), byte(idx>>8), byte(idx)
	return netip.AddrFrom16(a)
}
