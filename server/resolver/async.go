package resolver

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"
)

// An asyncWait is a LookupAsync waiting for a flight.
type asyncWait struct {
	fn    func(result)
	fired bool // fn has been or is being called; guarded by Resolver.mu
}

// LookupAsync is Lookup without the wait: it returns at once, and done
// receives Lookup's result exactly once. For a name queried as given
// (the usual case: see Lookup on the search list), an answer that needs
// no exchange (an IP literal, the hosts file, the cache) is delivered
// before LookupAsync returns, on the calling goroutine; otherwise done
// runs on the goroutine that ran the upstream exchange when it ends, or
// on another when ctx ends first. A name tried with search domains is
// looked up by Lookup on a goroutine of its own, which calls done. done
// must not block, and must not call Close (which waits for exchanges
// whose callbacks are running).
//
// It saves the goroutine a caller would otherwise start per lookup to
// wait for it (a dual-stack CONNECT runs two), and the hand-offs between
// that goroutine and the exchange's.
func (r *Resolver) LookupAsync(ctx context.Context, network, host string, done func([]Answer, error)) {
	qtype, ok := qtypeOf(network)
	if !ok {
		done(nil, net.UnknownNetworkError(network))
		return
	}
	if _, err := netip.ParseAddr(host); err == nil {
		done(r.Lookup(ctx, network, host))
		return
	}
	name, abs, err := normalize(host)
	if err != nil {
		done(nil, err)
		return
	}
	if addrs, ok := r.static(name); ok {
		var ans []Answer
		for _, a := range addrs {
			if familyOK(a, qtype) {
				ans = append(ans, Answer{Addr: a, TTL: hostsTTL})
			}
		}
		done(ans, nil)
		return
	}
	cands := r.candidates(name, abs)
	if len(cands) != 1 {
		go func() { done(r.Lookup(ctx, network, host)) }()
		return
	}
	if err := ctx.Err(); err != nil {
		done(nil, &Error{Name: host, Kind: Canceled, Err: err})
		return
	}
	fqdn := cands[0]
	finish := func(res result) { done(singleResult(host, res)) }
	k := cacheKey{name: fqdn, qtype: qtype}
	if res, ok := r.cache.get(k, time.Now()); ok {
		r.hits.Add(1)
		finish(res)
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		finish(result{fail: &Error{Kind: Canceled, Err: errClosed}})
		return
	}
	f := r.flights[k]
	if f == nil {
		if res, ok := r.cache.get(k, time.Now()); ok {
			r.mu.Unlock()
			r.hits.Add(1)
			finish(res)
			return
		}
		fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		r.flights[k] = f
		r.flightsWG.Add(1)
		r.spawn(func() { r.runFlight(fctx, k, f) })
	}
	f.refs++
	w := &asyncWait{}
	var stop func() bool
	w.fn = func(res result) {
		stop()
		finish(res)
	}
	f.async = append(f.async, w)
	// Registered before the lock is released, so runFlight cannot fire
	// w before stop is set.
	stop = context.AfterFunc(ctx, func() {
		r.mu.Lock()
		if w.fired {
			r.mu.Unlock()
			return
		}
		w.fired = true
		if i := slices.Index(f.async, w); i >= 0 {
			f.async = slices.Delete(f.async, i, i+1)
		}
		f.refs--
		if f.refs == 0 && r.flights[k] == f {
			// Nobody else waits: stop the exchange.
			delete(r.flights, k)
			f.cancel(context.Canceled)
		}
		r.mu.Unlock()
		finish(result{fail: &Error{Kind: Canceled, Err: ctx.Err()}})
	})
	r.mu.Unlock()
	r.misses.Add(1)
}

// singleResult is Lookup's answer for a name with one candidate.
func singleResult(host string, res result) ([]Answer, error) {
	if len(res.answers) > 0 {
		return slices.Clone(res.answers), nil // res is shared
	}
	if res.fail != nil && res.fail.Kind == Canceled {
		return nil, res.errFor(host)
	}
	var agg outcome
	agg.add(res)
	if agg.nodata && agg.fail == nil {
		return nil, nil
	}
	return nil, agg.err(host)
}
