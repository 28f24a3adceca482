package resolver

import (
	"container/list"
	"sync"
	"time"
)

// cacheKey names one cached question: a lowercased fully qualified name
// and a query type (dns.TypeA or dns.TypeAAAA).
type cacheKey struct {
	name  string
	qtype uint16
}

// cacheEntry is one cached outcome: addresses, a negative answer, or a
// failure (res.kind says which).
type cacheEntry struct {
	key     cacheKey
	res     result
	stored  time.Time // when res was stored; answer TTLs count down from here
	expires time.Time
}

// cache is a bounded LRU of lookup results. It never holds more than max
// entries: an insert evicts the least recently used entry first. Expired
// entries are dropped when they are looked up or reach the LRU's end. It
// is safe for concurrent use.
type cache struct {
	max int

	mu    sync.Mutex
	ll    *list.List // front: most recently used; values are *cacheEntry
	items map[cacheKey]*list.Element
}

func newCache(max int) *cache {
	return &cache{max: max, ll: list.New(), items: make(map[cacheKey]*list.Element)}
}

// get returns the result stored for k with its answer TTLs reduced by the
// time spent in the cache, or false if there is none or it has expired.
func (c *cache) get(k cacheKey, now time.Time) (result, bool) {
	if c == nil {
		return result{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return result{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.removeLocked(el)
		return result{}, false
	}
	c.ll.MoveToFront(el)
	res := e.res
	if len(res.answers) > 0 {
		age := uint32(now.Sub(e.stored) / time.Second)
		ans := make([]Answer, len(res.answers))
		for i, a := range res.answers {
			a.TTL -= min(a.TTL, age)
			ans[i] = a
		}
		res.answers = ans
	}
	return res, true
}

// put stores res under k for ttl. A ttl of zero or less stores nothing
// and removes what was stored.
func (c *cache) put(k cacheKey, res result, ttl time.Duration, now time.Time) {
	if c == nil || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.removeLocked(el)
	}
	if ttl <= 0 {
		return
	}
	for c.ll.Len() >= c.max {
		c.removeLocked(c.ll.Back())
	}
	e := &cacheEntry{key: k, res: res, stored: now, expires: now.Add(ttl)}
	c.items[k] = c.ll.PushFront(e)
}

func (c *cache) removeLocked(el *list.Element) {
	e := c.ll.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
}

// len returns the number of entries, expired ones included.
func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
