package server

import (
	"net/netip"
	"sync"
)

// Limits caps concurrent sessions. A session counts from the moment its
// request is accepted until its relay ends; a request over a limit is
// refused with a reply code and an audit record. Zero means the default;
// negative means unlimited.
type Limits struct {
	// Sessions caps sessions across all users. Zero means 10000.
	Sessions int
	// PerUser caps sessions of one authenticated user. Zero means unlimited.
	PerUser int
	// PerClient caps sessions from one client IP address. Zero means
	// unlimited.
	PerClient int
	// Handshakes caps connections still in greeting, authentication or
	// request. When it is reached, the gateway stops accepting until one
	// finishes (the kernel's backlog holds the rest). Zero means 4096.
	Handshakes int
}

func (l Limits) withDefaults() Limits {
	if l.Sessions == 0 {
		l.Sessions = 10000
	}
	if l.Handshakes == 0 {
		l.Handshakes = 4096
	}
	return l
}

// counters tracks live sessions overall, per user and per client.
type counters struct {
	mu      sync.Mutex
	total   int
	users   map[string]int
	clients map[netip.Addr]int
}

// limitErr names the limit that refused a session.
type limitErr string

func (e limitErr) Error() string { return "limit reached: " + string(e) }

// acquire counts a session for user and client, or returns the name of the
// limit that is full. Limits are read from lim so that a reload applies to
// new sessions at once.
func (c *counters) acquire(lim Limits, user string, client netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if lim.Sessions > 0 && c.total >= lim.Sessions {
		return limitErr("sessions")
	}
	if user != "" && lim.PerUser > 0 && c.users[user] >= lim.PerUser {
		return limitErr("per-user sessions")
	}
	if lim.PerClient > 0 && c.clients[client] >= lim.PerClient {
		return limitErr("per-client sessions")
	}
	c.total++
	if user != "" {
		if c.users == nil {
			c.users = make(map[string]int)
		}
		c.users[user]++
	}
	if c.clients == nil {
		c.clients = make(map[netip.Addr]int)
	}
	c.clients[client]++
	return nil
}

// release undoes acquire.
func (c *counters) release(user string, client netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if user != "" {
		if c.users[user]--; c.users[user] <= 0 {
			delete(c.users, user)
		}
	}
	if c.clients[client]--; c.clients[client] <= 0 {
		delete(c.clients, client)
	}
}

// Total returns the number of live sessions.
func (c *counters) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
