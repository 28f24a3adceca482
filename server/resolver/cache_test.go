package resolver

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestCacheLRU(t *testing.T) {
	c := newCache(3)
	now := time.Unix(1000, 0)
	ans := func(ttl uint32) result {
		return result{answers: []Answer{{Addr: netip.MustParseAddr("192.0.2.1"), TTL: ttl}}}
	}
	key := func(i int) cacheKey { return cacheKey{fmt.Sprintf("n%d.test.", i), 1} }
	for i := range 3 {
		c.put(key(i), ans(60), 60*time.Second, now)
	}
	c.get(key(0), now) // n0 is now the most recently used
	c.put(key(3), ans(60), 60*time.Second, now)
	if c.len() != 3 {
		t.Fatalf("len = %d, want 3", c.len())
	}
	if _, ok := c.get(key(1), now); ok {
		t.Error("least recently used entry n1 not evicted")
	}
	for _, i := range []int{0, 2, 3} {
		if _, ok := c.get(key(i), now); !ok {
			t.Errorf("n%d evicted", i)
		}
	}

	// TTLs count down and the entry expires.
	res, ok := c.get(key(0), now.Add(25500*time.Millisecond))
	if !ok || res.answers[0].TTL != 35 {
		t.Errorf("after 25.5s: %+v, %v, want TTL 35", res, ok)
	}
	if _, ok := c.get(key(0), now.Add(60*time.Second)); ok {
		t.Error("entry outlived its TTL")
	}
	if c.len() != 2 {
		t.Errorf("expired entry kept: len %d", c.len())
	}

	// Zero TTL stores nothing and removes an old entry.
	c.put(key(2), ans(0), 0, now)
	if _, ok := c.get(key(2), now); ok {
		t.Error("zero TTL cached")
	}

	// A flood stays within the bound.
	for i := range 10000 {
		c.put(key(i), ans(60), time.Minute, now)
		if c.len() > 3 {
			t.Fatalf("len %d > 3 after %d inserts", c.len(), i)
		}
	}
}

func TestCacheCopiesAnswers(t *testing.T) {
	c := newCache(10)
	now := time.Unix(1000, 0)
	k := cacheKey{"a.test.", 1}
	c.put(k, result{answers: []Answer{{Addr: netip.MustParseAddr("192.0.2.1"), TTL: 10}}}, 10*time.Second, now)
	r1, _ := c.get(k, now)
	r1.answers[0].TTL = 999
	r2, _ := c.get(k, now)
	if r2.answers[0].TTL != 10 {
		t.Errorf("caller's change reached the cache: TTL %d", r2.answers[0].TTL)
	}
}

func TestNilCache(t *testing.T) {
	var c *cache
	c.put(cacheKey{"a.", 1}, result{}, time.Minute, time.Now())
	if _, ok := c.get(cacheKey{"a.", 1}, time.Now()); ok || c.len() != 0 {
		t.Error("nil cache holds something")
	}
}
