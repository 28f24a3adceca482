package socksify

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
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
// Once the session is open, the caller of name (the notification loop,
// answering the program's DNS query) writes the RESOLVE itself with
// client.Session.Prefetch: one small write, and no goroutine to wake,
// which on a machine of two cores would compete with the program for a
// CPU at the moment it goes on with its lookup. Only opening the session,
// which waits for the gateway, is left to the warmer's goroutine.
//
// A gateway without the SOCKS6 extensions, or without RESOLVE, turns the
// warmer off for good; a session that cannot be opened (the gateway is
// down) is retried at most every warmRetry.
type warmer struct {
	dialer *client.Dialer
	log    *slog.Logger
	ctx    context.Context

	names chan string    // names that came while no session was open
	wg    sync.WaitGroup // run

	sess atomic.Pointer[client.Session] // the open session, or nil
	off  atomic.Bool                    // the gateway cannot warm

	mu     sync.Mutex
	recent map[string]time.Time // names asked for within warmEvery (mu)

	// Owned by run.
	failAt time.Time
}

const (
	warmQueue    = 256              // names waiting for the session; more are dropped
	warmEvery    = 30 * time.Second // a name is asked for at most this often
	warmRetry    = 5 * time.Second  // after failing to open the session
	warmTimeout  = 5 * time.Second  // opening the session
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

// name has the gateway resolve name: at once if the session is open,
// else once run has opened it. It never blocks on the gateway: when
// MaxPrefetches are unanswered, or the queue is full, the name is
// dropped (the CONNECT resolves it).
func (w *warmer) name(name string) {
	if w.off.Load() || !w.fresh(name, time.Now()) {
		return
	}
	if s := w.sess.Load(); s != nil {
		err := w.prefetch(s, name)
		if err == nil {
			return
		}
		if errors.Is(err, client.ErrPrefetchBusy) {
			w.forget(name) // not asked for: a later lookup may ask
			return
		}
		// The session ended: run opens another.
	}
	select {
	case w.names <- name:
	default:
	}
}

// prefetch sends one RESOLVE on s.
func (w *warmer) prefetch(s *client.Session, name string) error {
	err := s.Prefetch(name)
	if err != nil {
		w.log.Debug("socksify: warming the gateway's resolver", "name", name, "err", err)
	}
	return err
}

// wait waits for the warmer to stop after its ctx ended.
func (w *warmer) wait() { w.wg.Wait() }

func (w *warmer) run() {
	defer w.wg.Done()
	defer func() {
		if s := w.sess.Swap(nil); s != nil {
			s.Close()
		}
	}()
	for {
		var name string
		select {
		case <-w.ctx.Done():
			return
		case name = <-w.names:
		}
		if w.off.Load() {
			continue
		}
		if s := w.session(time.Now()); s != nil {
			w.prefetch(s, name)
		}
	}
}

// session returns the open session, opening one if needed, or nil.
func (w *warmer) session(now time.Time) *client.Session {
	if s := w.sess.Load(); s != nil {
		select {
		case <-s.Done():
			w.sess.CompareAndSwap(s, nil)
			s.Close()
		default:
			return s
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
		w.off.Store(true)
		w.log.Debug("socksify: not warming the gateway's resolver", "err", err)
		return nil
	case err != nil:
		w.failAt = now
		w.log.Debug("socksify: opening a session to warm the gateway's resolver", "err", err)
		return nil
	}
	w.sess.Store(sess)
	return sess
}

// fresh reports whether name was not asked for within warmEvery, and
// records that it is now, forgetting old names when there are too many.
func (w *warmer) fresh(name string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.recent[name]) < warmEvery {
		return false
	}
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
	return true
}

// forget undoes fresh's record of name.
func (w *warmer) forget(name string) {
	w.mu.Lock()
	delete(w.recent, name)
	w.mu.Unlock()
}
