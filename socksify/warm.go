package socksify

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// A warmer asks the gateway to resolve each name the fake DNS server
// hands a fake address out for, as soon as it does (RESOLVE on one
// extension session, the answers dropped). A program that looks a name
// up almost always connects to it next; by then the gateway's resolver
// has the name cached, or its lookup under way (socks6d joins a CONNECT
// to it), so the gateway's DNS round trip overlaps the rest of the
// program's lookup instead of following its connect. The gateway sees
// no more than it would: it resolves every name the program connects
// to anyway.
//
// A gateway without the SOCKS6 extensions, or without RESOLVE, turns the
// warmer off for good; a session that cannot be opened (the gateway is
// down) is retried at most every warmRetry.
type warmer struct {
	dialer *client.Dialer
	log    *slog.Logger
	ctx    context.Context

	names chan string
	wg    sync.WaitGroup // run and the lookups it started

	// Owned by run.
	sess   *client.Session
	off    bool
	failAt time.Time
	recent map[string]time.Time // names asked for within warmEvery
}

const (
	warmQueue    = 256              // names waiting; more are dropped
	warmInFlight = 32               // lookups outstanding at once; more are dropped
	warmEvery    = 30 * time.Second // a name is asked for at most this often
	warmRetry    = 5 * time.Second  // after failing to open the session
	warmTimeout  = 5 * time.Second  // one lookup
	warmMaxNames = 4096             // recent names remembered
)

// newWarmer starts a warmer for dialer's gateway; it stops when ctx ends.
func newWarmer(ctx context.Context, dialer *client.Dialer, log *slog.Logger) *warmer {
	d := *dialer
	if d.Extensions == client.ExtOff {
		return nil
	}
	w := &warmer{dialer: &d, log: log, ctx: ctx, names: make(chan string, warmQueue), recent: map[string]time.Time{}}
	w.wg.Add(1)
	go w.run()
	return w
}

// name queues name to be resolved at the gateway. It never blocks: when
// the queue is full, the name is dropped (the CONNECT resolves it).
func (w *warmer) name(name string) {
	select {
	case w.names <- name:
	default:
	}
}

// wait waits for the warmer to stop after its ctx ended.
func (w *warmer) wait() { w.wg.Wait() }

func (w *warmer) run() {
	defer w.wg.Done()
	defer func() {
		if w.sess != nil {
			w.sess.Close()
		}
	}()
	sem := make(chan struct{}, warmInFlight)
	for {
		var name string
		select {
		case <-w.ctx.Done():
			return
		case name = <-w.names:
		}
		now := time.Now()
		if w.off || now.Sub(w.recent[name]) < warmEvery {
			continue
		}
		sess := w.session(now)
		if sess == nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // busy: this name is left to its CONNECT
		}
		w.remember(name, now)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(w.ctx, warmTimeout)
			defer cancel()
			if _, err := sess.Resolve(ctx, name); err != nil {
				w.log.Debug("socksify: warming the gateway's resolver", "name", name, "err", err)
			}
		}()
	}
}

// session returns the open session, opening one if needed, or nil.
func (w *warmer) session(now time.Time) *client.Session {
	if w.sess != nil {
		select {
		case <-w.sess.Done():
			w.sess.Close()
			w.sess = nil
		default:
			return w.sess
		}
	}
	if now.Sub(w.failAt) < warmRetry {
		return nil
	}
	ctx, cancel := context.WithTimeout(w.ctx, warmTimeout)
	defer cancel()
	sess, err := w.dialer.OpenSession(ctx)
	switch {
	case err == nil && !sess.Features().Has(proto.FeatureResolve):
		sess.Close()
		err = errors.New("the gateway does not offer RESOLVE")
		fallthrough
	case errors.Is(err, client.ErrNoExtensions) || errors.Is(err, client.ErrDowngrade) || errors.Is(err, client.ErrAuth):
		w.off = true
		w.log.Debug("socksify: not warming the gateway's resolver", "err", err)
		return nil
	case err != nil:
		w.failAt = now
		w.log.Debug("socksify: opening a session to warm the gateway's resolver", "err", err)
		return nil
	}
	w.sess = sess
	return sess
}

// remember records that name was asked for at now, forgetting old names
// when there are too many.
func (w *warmer) remember(name string, now time.Time) {
	if len(w.recent) >= warmMaxNames {
		for n, t := range w.recent {
			if now.Sub(t) >= warmEvery {
				delete(w.recent, n)
			}
		}
		if len(w.recent) >= warmMaxNames {
			clear(w.recent)
		}
	}
	w.recent[name] = now
}
