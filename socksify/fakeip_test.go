package socksify

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mustAssign is ft.assign for a table that has room.
func mustAssign(t *testing.T, ft *fakeTable, name string) uint32 {
	t.Helper()
	idx, ok := ft.assign(name)
	if !ok {
		t.Fatalf("assign(%q): table full", name)
	}
	return idx
}

func TestFakeTable(t *testing.T) {
	ft := newFakeTable(0)
	a := mustAssign(t, ft, "A.test")
	b := mustAssign(t, ft, "b.test")
	if a == b || a == 0 || b == 0 {
		t.Fatalf("indexes %d, %d", a, b)
	}
	if again := mustAssign(t, ft, "a.test."); again != a {
		t.Errorf("a.test again: %d, want %d", again, a)
	}
	for _, ip := range []netip.Addr{fakeIP4(a), fakeIP6(a), netip.AddrFrom16(fakeIP4(a).As16())} {
		if name, ok := ft.name(ip); !ok || name != "a.test" {
			t.Errorf("name(%v) = %q, %v; want a.test", ip, name, ok)
		}
	}
	for _, ip := range []string{"198.18.0.0", "198.18.200.1", "fd00:5eed::", "fd00:5eed::1:0:5", "192.0.2.1", "::1"} {
		if name, ok := ft.name(netip.MustParseAddr(ip)); ok {
			t.Errorf("name(%s) = %q, want none", ip, name)
		}
	}
}

func TestFakeTableEviction(t *testing.T) {
	ft := newFakeTable(3)
	clock := time.Unix(1e9, 0)
	ft.now = func() time.Time { return clock }
	i1 := mustAssign(t, ft, "one.test")
	i2 := mustAssign(t, ft, "two.test")
	i3 := mustAssign(t, ft, "three.test")
	ft.name(fakeIP4(i1)) // one is now the most recently used; two the least

	// Full, and two.test was given out a moment ago: a program may still
	// hold its address, so four.test gets none (SERVFAIL), and two.test
	// keeps its index.
	clock = clock.Add(fakeReuseAfter - time.Second)
	if idx, ok := ft.assign("four.test"); ok {
		t.Fatalf("four.test got index %d from a table full of names in use", idx)
	}
	if name, ok := ft.name(fakeIP4(i2)); !ok || name != "two.test" {
		t.Fatalf("index %d: %q, %v; want two.test", i2, name, ok)
	}
	// That lookup used two.test again: three.test is the least recently
	// used now, and once it has been unused for fakeReuseAfter its index
	// goes to four.test.
	clock = clock.Add(2 * time.Second)
	i4 := mustAssign(t, ft, "four.test")
	if i4 != i3 {
		t.Errorf("four.test got %d, want three.test's %d", i4, i3)
	}
	if name, _ := ft.name(fakeIP4(i3)); name != "four.test" {
		t.Errorf("index %d owned by %q, want four.test", i3, name)
	}
	for name, idx := range map[string]uint32{"one.test": i1, "two.test": i2} {
		if got, ok := ft.name(fakeIP4(idx)); !ok || got != name {
			t.Errorf("%s evicted (%q, %v)", name, got, ok)
		}
	}
	// Much later, three.test comes back and takes the least recently
	// used index (one.test's, unused since the start).
	clock = clock.Add(fakeReuseAfter)
	ft.name(fakeIP4(i4))
	ft.name(fakeIP4(i2))
	if again := mustAssign(t, ft, "three.test"); again != i1 {
		t.Errorf("three.test came back with index %d, want %d", again, i1)
	}
	if _, ok := ft.byName["one.test"]; ok {
		t.Error("one.test still in the table")
	}
}

func TestFakeIndex(t *testing.T) {
	tests := []struct {
		ip   string
		idx  uint32
		fake bool
	}{
		{"198.18.0.1", 1, true},
		{"198.18.1.0", 256, true},
		{"198.19.255.254", maxFakeIndex, true},
		{"198.19.255.255", maxFakeIndex + 1, true}, // in the range, never handed out
		{"198.18.0.0", 0, false},
		{"198.20.0.1", 0, false},
		{"::ffff:198.18.0.7", 7, true},
		{"fd00:5eed::1", 1, true},
		{"fd00:5eed::1:fffe", maxFakeIndex, true},
		{"fd00:5eed::2:0", 0, false},
		{"fd00:5eed::1:0:0", 0, false},
		{"fd00:5eee::1", 0, false},
	}
	for _, tt := range tests {
		idx, ok := fakeIndex(netip.MustParseAddr(tt.ip))
		if ok != tt.fake || (ok && idx != tt.idx) {
			t.Errorf("fakeIndex(%s) = %d, %v; want %d, %v", tt.ip, idx, ok, tt.idx, tt.fake)
		}
	}
	for _, idx := range []uint32{1, 255, 256, 65535, 65536, maxFakeIndex} {
		for _, ip := range []netip.Addr{fakeIP4(idx), fakeIP6(idx)} {
			if got, ok := fakeIndex(ip); !ok || got != idx {
				t.Errorf("fakeIndex(%v) = %d, %v; want %d", ip, got, ok, idx)
			}
			if !isFake(ip) {
				t.Errorf("isFake(%v) = false", ip)
			}
		}
	}
	if fakeIP4(maxFakeIndex) != netip.MustParseAddr("198.19.255.254") {
		t.Errorf("last IPv4 fake %v", fakeIP4(maxFakeIndex))
	}
}

func TestFakeTableConcurrent(t *testing.T) {
	ft := newFakeTable(64)
	// Every reading of the clock is an hour later, so that evicting is
	// always allowed.
	var hours atomic.Int64
	base := time.Unix(1e9, 0)
	ft.now = func() time.Time { return base.Add(time.Duration(hours.Add(1)) * time.Hour) }
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				name := fmt.Sprintf("n%d.test", (g*7+i)%100)
				idx, ok := ft.assign(name)
				if !ok {
					t.Errorf("assign(%q): table full", name)
					return
				}
				ft.name(fakeIP6(idx))
			}
		}()
	}
	wg.Wait()
	if len(ft.byName) != 64 || len(ft.byIndex) != 64 || ft.lru.Len() != 64 {
		t.Errorf("sizes %d %d %d, want 64", len(ft.byName), len(ft.byIndex), ft.lru.Len())
	}
}
