package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/server/resolver"
)

// asyncResult collects what LookupAsync delivers and counts deliveries.
type asyncResult struct {
	mu    sync.Mutex
	n     int
	ans   []resolver.Answer
	err   error
	done  chan struct{}
	fired atomic.Bool
}

func newAsyncResult() *asyncResult { return &asyncResult{done: make(chan struct{})} }

func (a *asyncResult) deliver(ans []resolver.Answer, err error) {
	a.mu.Lock()
	a.n++
	a.ans, a.err = ans, err
	a.mu.Unlock()
	if a.fired.CompareAndSwap(false, true) {
		close(a.done)
	}
}

func (a *asyncResult) wait(t *testing.T) ([]resolver.Answer, error) {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatal("LookupAsync delivered nothing")
	}
	time.Sleep(20 * time.Millisecond) // a second delivery would show now
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n != 1 {
		t.Fatalf("delivered %d times, want once", a.n)
	}
	return a.ans, a.err
}

func TestLookupAsync(t *testing.T) {
	socks6test.CheckGoroutines(t, 5)
	s := socks6test.NewDNSServer(t)
	s.SetA("a.test", 60, "192.0.2.1")
	s.SetAAAA("a.test", 60, "2001:db8::1")
	s.SetA("slow.test", 60, "192.0.2.2")
	s.SetDelay("slow.test", 200*time.Millisecond)
	s.SetDelay("hang.test", -1)
	r := newResolver(t, testConfig(t, s.Addr))

	t.Run("cold_then_cached", func(t *testing.T) {
		for _, nw := range []string{"ip4", "ip6"} {
			res := newAsyncResult()
			r.LookupAsync(t.Context(), nw, "a.test", res.deliver)
			ans, err := res.wait(t)
			if err != nil || len(ans) != 1 || ans[0].Addr.Is4() != (nw == "ip4") {
				t.Fatalf("%s: %v, %v", nw, ans, err)
			}
			// Now cached: delivered before LookupAsync returns.
			res2 := newAsyncResult()
			r.LookupAsync(t.Context(), nw, "a.test", res2.deliver)
			if !res2.fired.Load() {
				t.Fatalf("%s: a cached answer was not delivered at once", nw)
			}
		}
		if n := s.Queries("a.test", dns.TypeA) + s.Queries("a.test", dns.TypeAAAA); n != 2 {
			t.Errorf("queries = %d, want 2", n)
		}
	})

	t.Run("shares_flight", func(t *testing.T) {
		// LookupAsync and Lookup of the same name while it is being
		// asked share one query.
		res := newAsyncResult()
		r.LookupAsync(t.Context(), "ip4", "slow.test", res.deliver)
		ans := mustLookup(t, r, "ip4", "slow.test")
		got, err := res.wait(t)
		if err != nil || len(got) != 1 || len(ans) != 1 || got[0].Addr != netip.MustParseAddr("192.0.2.2") {
			t.Fatalf("async %v, %v; sync %v", got, err, ans)
		}
		if n := s.Queries("slow.test", dns.TypeA); n != 1 {
			t.Errorf("queries = %d, want 1", n)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		// A ctx that ends first delivers Canceled at once, and the
		// exchange nobody else waits for is stopped (no goroutine left:
		// CheckGoroutines).
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		res := newAsyncResult()
		start := time.Now()
		r.LookupAsync(ctx, "ip4", "hang.test", res.deliver)
		_, err := res.wait(t)
		var re *resolver.Error
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &re) || re.Kind != resolver.Canceled {
			t.Fatalf("error %v, want kind Canceled wrapping DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("delivered after %v", d)
		}
		// The abandoned flight is gone: the next lookup asks again
		// rather than joining an exchange that was stopped.
		ctx2, cancel2 := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel2()
		r.Lookup(ctx2, "ip4", "hang.test")
		if !socks6test.WaitFor(5*time.Second, func() bool { return s.Queries("hang.test", dns.TypeA) == 2 }) {
			t.Fatalf("hang.test was asked %d times, want 2", s.Queries("hang.test", dns.TypeA))
		}
	})

	t.Run("race", func(t *testing.T) {
		// 2000 calls from as many goroutines, with deadlines that end
		// about when the answers come (0-3 ms both), some with a Lookup
		// of the same name alongside: each call is answered exactly once
		// (a cancel and the flight's end racing must not both deliver).
		cfg := testConfig(t, s.Addr)
		cfg.CacheSize = -1 // every lookup asks
		r2 := newResolver(t, cfg)
		for i := range 20 {
			s.SetA(fmt.Sprintf("r%d.test", i), 60, "192.0.2.9")
			s.SetDelay(fmt.Sprintf("r%d.test", i), time.Duration(rand.IntN(3000))*time.Microsecond)
		}
		var wg sync.WaitGroup
		var twice, never atomic.Int64
		for range 2000 {
			wg.Go(func() {
				name := fmt.Sprintf("r%d.test", rand.IntN(20))
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(rand.IntN(3000))*time.Microsecond)
				defer cancel()
				if rand.IntN(3) == 0 {
					go r2.Lookup(ctx, "ip4", name)
				}
				var n atomic.Int32
				got := make(chan struct{}, 4)
				r2.LookupAsync(ctx, "ip4", name, func([]resolver.Answer, error) {
					n.Add(1)
					got <- struct{}{}
				})
				select {
				case <-got:
				case <-time.After(10 * time.Second):
					never.Add(1)
					return
				}
				time.Sleep(20 * time.Millisecond) // a second delivery would show now
				if n.Load() != 1 {
					twice.Add(1)
				}
			})
		}
		wg.Wait()
		if twice.Load() > 0 || never.Load() > 0 {
			t.Fatalf("of 2000 calls, %d were answered more than once and %d never", twice.Load(), never.Load())
		}
	})

	t.Run("literal_and_bad", func(t *testing.T) {
		res := newAsyncResult()
		r.LookupAsync(t.Context(), "ip6", "2001:db8::7", res.deliver)
		if ans, err := res.wait(t); err != nil || len(ans) != 1 || ans[0].Addr != netip.MustParseAddr("2001:db8::7") {
			t.Fatalf("literal: %v, %v", ans, err)
		}
		res = newAsyncResult()
		r.LookupAsync(t.Context(), "tcp", "a.test", res.deliver)
		if _, err := res.wait(t); err == nil {
			t.Fatal("network tcp: no error")
		}
	})
}
