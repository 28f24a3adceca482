package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Settings are the parts of a gateway's configuration that Reload can
// replace while it runs: who may log in, what they may do, how much.
type Settings struct {
	// Auth verifies usernames and passwords. Nil means no authentication:
	// the gateway selects "no authentication required".
	Auth Authenticator
	// Policy decides each request. Nil allows everything the Guard allows.
	Policy Policy
	// Guard refuses targets internal to the gateway (loopback, link-local,
	// its own addresses) unless it allows them. Its zero value refuses all.
	Guard Guard
	// Limits caps sessions; see Limits for zero values.
	Limits Limits
	// Listen governs LISTEN (listening sockets for extension clients).
	Listen ListenSettings
	// Upstreams are the gateways this one forwards requests to (see
	// Upstream).
	Upstreams []Upstream
}

// A Server is a SOCKS5 gateway. Its zero value serves CONNECT, BIND and
// UDP ASSOCIATE without authentication, refuses internal targets, and uses
// default timeouts and limits. Exported fields must not change after Serve
// is called; use Reload for Settings.
type Server struct {
	// Settings are the initial users, policy, guard and limits.
	Settings Settings

	// HandshakeTimeout bounds each stage before the relay: greeting,
	// authentication, request and the reply. Zero means 10s.
	HandshakeTimeout time.Duration
	// DialTimeout bounds resolving and connecting to a target. Zero means
	// 10s.
	DialTimeout time.Duration
	// BindTimeout bounds how long BIND waits for the incoming connection.
	// Zero means 10s.
	BindTimeout time.Duration
	// IdleTimeout ends a relay (TCP or UDP) after no bytes have moved for
	// this long; it resets on progress. Zero means 5m; negative means none.
	IdleTimeout time.Duration

	// Dial opens outbound TCP connections to a resolved address. Nil means
	// a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Resolver looks up domain-name targets, one address family at a
	// time. Nil means a resolver.Resolver with the system's settings
	// (/etc/resolv.conf and /etc/hosts). A *resolver.Resolver is also
	// asked through its LookupCached and LookupAsync (no goroutine per
	// query); any other type, a wrapper around one included, only
	// through Lookup.
	Resolver Resolver
	// NAT64Prefix, if valid, is the prefix of a NAT64 translator that
	// reaches IPv4 destinations the gateway has no IPv4 route to.
	NAT64Prefix netip.Prefix
	// DiscoverNAT64 looks for the NAT64 prefix by RFC 7050 (through the
	// Resolver, if it has a NAT64Prefix method) when NAT64Prefix is not
	// set, the first time an IPv4 destination is unreachable.
	DiscoverNAT64 bool
	// DisableExtensions makes the gateway a plain SOCKS5 server: it never
	// selects method 0xC6.
	DisableExtensions bool
	// ListenTCP opens the sockets of LISTEN requests. Nil means Listen.
	ListenTCP func(ctx context.Context, network, addr string) (net.Listener, error)
	// ListenUDP opens the gateway's UDP sockets toward the outside, on
	// the unspecified address with a port the system picks: those of
	// UDP associations in the stream and the outgoing side of UDP
	// ASSOCIATE ("udp"), and the probes that find the host's source
	// addresses toward the Internet ("udp4", "udp6"), which the
	// PUBLIC_ADDR of associations and of LISTEN sockets on the
	// unspecified address give. The probes are connected with a raw
	// connect(2) (nothing is sent), so the conn must be a real socket.
	// ctx bounds opening the socket, not its life: it ends when the
	// server shuts down (for a probe, after HandshakeTimeout). Nil means
	// net.ListenUDP(network, nil).
	ListenUDP func(ctx context.Context, network string) (*net.UDPConn, error)
	// Logger receives lifecycle logs and one audit record per session
	// (message "session"). Nil means slog.Default().
	Logger *slog.Logger
	// OnSession, if not nil, is called once for every session that
	// ends, from the session's goroutine, with what its audit record
	// says (a failed handshake included): for metrics. It must be quick
	// and safe for concurrent use.
	OnSession func(SessionRecord)

	settings atomic.Pointer[Settings]
	initOnce sync.Once
	hsSem    chan struct{} // handshake slots
	work     chan net.Conn // unbuffered: idle workers wait on it
	counts   counters

	// baseCtx is the parent of every session's context. closeConns
	// cancels it, so that a session still resolving or dialing ends
	// with the others instead of running on to DialTimeout.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[net.Conn]io.Closer // each session's connection → what ends it
	// connsClosed is set (under mu) once closeConns has run: a session
	// that installs its relay after that closes it at once (setCloser).
	connsClosed bool
	shutdown    atomic.Bool
	sessions    sync.WaitGroup
	idleWake    chan struct{} // closed on Shutdown/Close

	listenOnce sync.Once
	lst        *listens

	defResolverOnce sync.Once
	defResolver     Resolver

	selfMu   sync.Mutex
	selfAt   time.Time
	selfAddr []netip.Addr

	sources sourceCache // the host's source addresses toward the Internet (pubaddr.go)

	// assocPorts counts the in-stream UDP associations by their port, so
	// that a datagram from one association to another's external
	// address on this host may pass the guard (hairpinning).
	assocMu    sync.Mutex
	assocPorts map[uint16]int
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("socks6: server closed")

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.settings.Load() == nil {
			st := s.Settings
			s.settings.Store(&st)
		}
		lim := s.Settings.Limits.withDefaults()
		if lim.Handshakes > 0 {
			s.hsSem = make(chan struct{}, lim.Handshakes)
		}
		s.listeners = make(map[*net.Listener]struct{})
		s.conns = make(map[net.Conn]io.Closer)
		s.idleWake = make(chan struct{})
		s.work = make(chan net.Conn)
		s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	})
}

// Reload replaces users, policy, guard and limits for sessions that start
// from now on; running sessions keep what they started with. The
// handshake limit is fixed at the first Serve and does not change.
func (s *Server) Reload(st Settings) {
	s.init()
	s.settings.Store(&st)
}

// Sessions returns the number of sessions currently counted against the
// limits.
func (s *Server) Sessions() int { return s.counts.count() }

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func durOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (s *Server) handshakeTimeout() time.Duration { return durOr(s.HandshakeTimeout, 10*time.Second) }
func (s *Server) dialTimeout() time.Duration      { return durOr(s.DialTimeout, 10*time.Second) }
func (s *Server) bindTimeout() time.Duration      { return durOr(s.BindTimeout, 10*time.Second) }
func (s *Server) idleTimeout() time.Duration {
	d := durOr(s.IdleTimeout, 5*time.Minute)
	if d < 0 {
		return 0
	}
	return d
}

// Listen opens a TCP listener suited to a gateway: accepted connections
// get no TCP keepalive probes. Go enables them by default at the cost of
// four setsockopt calls per connection; a gateway's relays have an idle
// timeout that ends dead sessions instead (when IdleTimeout is negative,
// sessions to vanished peers are ended only by the peers' own timers).
func Listen(ctx context.Context, network, address string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, network, address)
}

// ListenAndServe listens on the TCP address addr with Listen and serves it.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln and serves each in its own goroutine
// until ln fails or the server is shut down; it closes ln before
// returning and returns ErrServerClosed after Shutdown or Close. Temporary
// accept errors such as running out of file descriptors back off from 5ms
// to 1s instead of ending the server.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if s.shutdown.Load() {
		ln.Close()
		return ErrServerClosed
	}
	s.mu.Lock()
	s.listeners[&ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		if s.hsSem != nil {
			select {
			case s.hsSem <- struct{}{}:
			case <-s.idleWake:
				return ErrServerClosed
			}
		}
		c, err := ln.Accept()
		if err != nil {
			s.releaseHandshake()
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			s.logger().Warn("accept failed; backing off", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.idleWake:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			s.releaseHandshake()
			return ErrServerClosed
		}
		s.dispatch(c)
	}
}

// workerIdle is how long a session goroutine waits for another
// connection after its session no longer needs it.
const workerIdle = time.Second

// dispatch hands c to an idle worker, or starts one. Workers are reused
// because a goroutine that has run a handshake and a dial has grown its
// stack; a fresh goroutine per connection pays for that growth every time
// (about 6% of the gateway's CPU at high connection rates).
func (s *Server) dispatch(c net.Conn) {
	select {
	case s.work <- c:
	default:
		go s.worker(c)
	}
}

// worker serves c, then further connections handed to it, until it has
// been idle for workerIdle or the server stops accepting.
func (s *Server) worker(c net.Conn) {
	s.serveConn(c)
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case c := <-s.work:
			s.serveConn(c)
			t.Reset(workerIdle)
		case <-t.C:
			return
		case <-s.idleWake:
			return
		}
	}
}

func (s *Server) releaseHandshake() {
	if s.hsSem != nil {
		<-s.hsSem
	}
}

// track registers c so that Close can end it and counts its session; it
// fails once shut down. Counting under the lock that stopAccepting takes
// makes every Add happen before Shutdown's or Close's Wait.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return false
	}
	s.conns[c] = hardCloser{c}
	s.sessions.Add(1)
	return true
}

// setCloser makes Close end c's session through cl (a running relay).
func (s *Server) setCloser(c net.Conn, cl io.Closer) {
	s.mu.Lock()
	_, ok := s.conns[c]
	if ok {
		s.conns[c] = cl
	}
	late := ok && s.connsClosed
	s.mu.Unlock()
	if late {
		// closeConns ran after the relay started and before this, and
		// closed the bare connection. A relay direction waiting in the
		// poller is not told of that close; closing the relay ends it.
		cl.Close()
	}
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, then waits for running sessions to end until
// ctx is done, at which point it closes them as Close does. It returns
// ctx.Err() if sessions had to be cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.stopAccepting()
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

// Close stops accepting and closes every session's connections at once,
// then waits for the sessions' goroutines to finish.
func (s *Server) Close() error {
	s.init()
	s.stopAccepting()
	s.closeConns()
	s.sessions.Wait()
	return nil
}

func (s *Server) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Swap(true) {
		return
	}
	close(s.idleWake)
	for ln := range s.listeners {
		(*ln).Close()
	}
}

func (s *Server) closeConns() {
	s.cancelBase()
	s.mu.Lock()
	cls := s.closersLocked()
	s.mu.Unlock()
	// Outside the lock: a relay's Close may finish its session, which
	// untracks itself.
	for _, cl := range cls {
		cl.Close()
	}
}

// closersLocked returns what ends each tracked session, and marks the
// sessions closed so that a relay installed later is closed by
// setCloser. The caller holds s.mu.
func (s *Server) closersLocked() []io.Closer {
	s.connsClosed = true
	cls := make([]io.Closer, 0, len(s.conns))
	for _, cl := range s.conns {
		cls = append(cls, cl)
	}
	return cls
}

// selfAddrs returns the host's interface addresses, cached for 5 seconds.
func (s *Server) selfAddrs() []netip.Addr {
	s.selfMu.Lock()
	defer s.selfMu.Unlock()
	if time.Since(s.selfAt) < 5*time.Second && s.selfAt != (time.Time{}) {
		return s.selfAddr
	}
	s.selfAt = time.Now()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return s.selfAddr
	}
	// A new slice each time: callers may still be reading the old one.
	self := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			self = append(self, p.Addr().Unmap())
		}
	}
	s.selfAddr = self
	return self
}
