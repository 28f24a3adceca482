package relay

import (
	"net"
	"sync"
)

// A Group holds running sessions, so that Close ends them all: those of
// a program or a listener that is going away. Its zero value is ready to
// use; its methods are safe for concurrent use.
type Group struct {
	mu     sync.Mutex
	live   map[*member]struct{}
	closed bool
}

type member struct {
	s        *Session
	finished bool // done was called (under Group.mu)
}

// Start is Start for a session of g, which g forgets once done has been
// called (done may be nil). After Close, the session is closed at once.
func (g *Group) Start(a, b net.Conn, opt Options, done func(Stats, error)) *Session {
	m := &member{}
	s := Start(a, b, opt, func(st Stats, err error) {
		// Possibly before Start has returned (a head that cannot be
		// written): m.s is then still nil, and finished keeps it out.
		g.mu.Lock()
		m.finished = true
		delete(g.live, m)
		g.mu.Unlock()
		if done != nil {
			done(st, err)
		}
	})
	g.mu.Lock()
	m.s = s
	closed := g.closed
	if !closed && !m.finished {
		if g.live == nil {
			g.live = map[*member]struct{}{}
		}
		g.live[m] = struct{}{}
	}
	g.mu.Unlock()
	if closed {
		s.Close()
	}
	return s
}

// Close ends every running session of g, and those started later. It
// does not wait for a session whose direction is running to call done;
// but a parked session ends within Close, whose caller then runs its done:
// Close must not be called holding a lock that a done takes.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	live := g.live
	g.live = nil
	g.mu.Unlock()
	for m := range live {
		m.s.Close()
	}
}

// Len returns the number of sessions g holds: started, not yet done,
// and not yet handed to Close.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.live)
}
