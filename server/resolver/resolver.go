package resolver

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// An Answer is one address of a name with its remaining TTL in seconds.
type Answer struct {
	Addr netip.Addr
	TTL  uint32
}

// Defaults for the zero values of [Config].
const (
	defaultTimeout     = 2 * time.Second
	defaultAttempts    = 2
	defaultCacheSize   = 10000
	defaultMaxTTL      = time.Hour
	defaultNegativeTTL = 5 * time.Minute
	// noSOATTL is how long a negative answer without an SOA is cached
	// (capped by NegativeTTL): RFC 2308 section 5 leaves it to us.
	noSOATTL = 30 * time.Second
	// failureTTL is how long a failure (SERVFAIL, no response) is cached,
	// so that a flood of lookups of a broken name does not become a flood
	// of upstream queries, while a recovered upstream is used soon.
	failureTTL = time.Second
)

// A Config configures a [Resolver]. Its zero value uses the name servers,
// search list and options of /etc/resolv.conf and the hosts file
// /etc/hosts, like the C library.
type Config struct {
	// Servers are upstream name servers, tried in order: "192.0.2.53",
	// "192.0.2.53:5353", "2001:db8::53", "[2001:db8::53]:53", or DNS over
	// TLS (RFC 7858) as "tls://192.0.2.53" (port 853), "tls://192.0.2.53:853"
	// or "tls://192.0.2.53:853#dns.example", where the part after # is the
	// name the server's certificate must hold (default: the IP address).
	// Servers are IP addresses: the resolver does not resolve its own
	// upstreams. Empty means the nameserver lines of ResolvConf.
	Servers []string

	// ResolvConf is the resolv.conf(5) file that gives the search list and
	// the ndots, timeout and attempts options, and the name servers when
	// Servers is empty. Empty means "/etc/resolv.conf". A missing file means
	// the servers 127.0.0.1:53 and [::1]:53 and no search list, as in glibc.
	// It is read once, by New.
	ResolvConf string

	// HostsFile is a hosts(5) file consulted before DNS. Empty means
	// "/etc/hosts"; "-" means none. A missing file lists nothing. The file
	// is read again when its modification time or size changes, checked at
	// most once a second.
	HostsFile string

	// Timeout bounds one query to one server. Zero or negative means the
	// resolv.conf option timeout, or 2s.
	Timeout time.Duration
	// Attempts is how many rounds over all servers a lookup makes before
	// it fails. Zero or negative means the resolv.conf option attempts, or 2.
	Attempts int

	// CacheSize is the most entries (one per name and query type) the cache
	// holds. Zero means 10000; negative means no cache.
	CacheSize int
	// MaxTTL caps how long an answer is cached and the TTL reported for it.
	// Zero or negative means 1h.
	MaxTTL time.Duration
	// NegativeTTL caps how long an NXDOMAIN or NODATA answer is cached; the
	// TTL itself comes from the SOA record in the answer (RFC 2308 section
	// 5: the smaller of its TTL and its MINIMUM field), or is 30s when there
	// is none. Zero means 5m; negative means negative answers are not
	// cached.
	NegativeTTL time.Duration

	// TLSConfig is the base configuration for DNS over TLS upstreams (set
	// RootCAs here to trust a private CA). Its ServerName is replaced per
	// server. Nil means the zero tls.Config (system roots).
	TLSConfig *tls.Config

	// Dial opens every connection to an upstream, with network "udp" or
	// "tcp" (DNS over TLS dials "tcp" and runs TLS over it). Nil means a
	// net.Dialer. Tests use it to query from inside a network namespace.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// A Resolver looks up the addresses of names: in the hosts file, then in
// its cache, then from its upstream name servers. Its methods are safe for
// concurrent use. Concurrent lookups of the same name and type share one
// upstream exchange.
type Resolver struct {
	servers  []*upstream
	search   []string
	ndots    int
	timeout  time.Duration
	attempts int
	maxTTL   time.Duration
	negTTL   time.Duration // negative: do not cache negative answers
	tlsConf  *tls.Config
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	hosts    *hostsFile // nil: none
	cache    *cache     // nil: no cache

	base      context.Context // canceled by Close; parent of flights' cancellation
	work      chan func()     // hands a flight to an idle worker (unbuffered)
	closeBase context.CancelFunc

	mu      sync.Mutex
	flights map[cacheKey]*flight
	closed  bool
	nat64   nat64State

	flightsWG sync.WaitGroup
	closeOnce sync.Once

	queries, hits, misses, tcpFallbacks atomic.Uint64
}

// New returns a Resolver for cfg. It reads ResolvConf and HostsFile; its
// errors name the bad server string or the file it could not read.
func New(cfg Config) (*Resolver, error) {
	rcPath := cfg.ResolvConf
	if rcPath == "" {
		rcPath = "/etc/resolv.conf"
	}
	rc, err := readResolvConf(rcPath)
	if err != nil {
		return nil, err
	}
	r := &Resolver{
		search:   rc.search,
		ndots:    rc.ndots,
		timeout:  firstPositive(cfg.Timeout, rc.timeout, defaultTimeout),
		attempts: int(firstPositive(time.Duration(cfg.Attempts), time.Duration(rc.attempts), defaultAttempts)),
		maxTTL:   firstPositive(cfg.MaxTTL, defaultMaxTTL),
		negTTL:   cfg.NegativeTTL,
		tlsConf:  cfg.TLSConfig,
		dial:     cfg.Dial,
		flights:  make(map[cacheKey]*flight),
	}
	if r.negTTL == 0 {
		r.negTTL = defaultNegativeTTL
	}
	if r.dial == nil {
		var d net.Dialer
		r.dial = d.DialContext
	}
	servers := cfg.Servers
	if len(servers) == 0 {
		servers = rc.servers
	}
	for _, s := range servers {
		u, err := parseServer(s)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, u)
	}
	switch {
	case cfg.CacheSize == 0:
		r.cache = newCache(defaultCacheSize)
	case cfg.CacheSize > 0:
		r.cache = newCache(cfg.CacheSize)
	}
	switch cfg.HostsFile {
	case "-":
	case "":
		r.hosts = &hostsFile{path: "/etc/hosts"}
	default:
		r.hosts = &hostsFile{path: cfg.HostsFile}
	}
	if r.hosts != nil {
		if err := r.hosts.load(time.Now()); err != nil {
			return nil, err
		}
	}
	r.base, r.closeBase = context.WithCancel(context.Background())
	r.work = make(chan func())
	return r, nil
}

func firstPositive[T int | time.Duration](v ...T) T {
	for _, x := range v {
		if x > 0 {
			return x
		}
	}
	return 0
}

// Stats are a Resolver's counters since New.
type Stats struct {
	Queries      uint64 // upstream exchanges sent (each try of each server, TCP retries included)
	CacheHits    uint64 // questions answered from the cache
	CacheMisses  uint64 // questions the cache could not answer
	CacheLen     int    // entries in the cache now
	TCPFallbacks uint64 // truncated UDP answers retried over TCP
}

// Stats returns the resolver's counters. It is safe for concurrent use.
func (r *Resolver) Stats() Stats {
	return Stats{
		Queries:      r.queries.Load(),
		CacheHits:    r.hits.Load(),
		CacheMisses:  r.misses.Load(),
		CacheLen:     r.cache.len(),
		TCPFallbacks: r.tcpFallbacks.Load(),
	}
}

// Close ends the lookups in flight (they fail with kind Canceled), waits
// for their upstream exchanges to stop, and closes idle DNS over TLS
// connections. Lookups after Close fail. Close always returns nil.
func (r *Resolver) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.closeBase()
		r.flightsWG.Wait()
		for _, u := range r.servers {
			u.closeIdle()
		}
	})
	return nil
}

// qtypeOf maps "ip4" and "ip6" to a query type.
func qtypeOf(network string) (uint16, bool) {
	switch network {
	case "ip4":
		return dns.TypeA, true
	case "ip6":
		return dns.TypeAAAA, true
	}
	return 0, false
}

// familyOK reports whether a is of the family of qtype.
func familyOK(a netip.Addr, qtype uint16) bool {
	if qtype == dns.TypeA {
		return a.Is4()
	}
	return a.Is6()
}

// Lookup returns the addresses of host of one family: network "ip4" asks
// for A records, "ip6" for AAAA records. It answers from the hosts file if
// that lists host (the file is then the only source for host: a family it
// does not list has no addresses), then from the cache, then from the
// upstream servers, in the order they answered, with TTLs in seconds
// (60 for the hosts file). An IP address literal returns itself with TTL 0
// for its own family and nothing for the other. A name that exists but
// has no records of the type (NODATA) returns no answers and no error.
// A name with fewer dots than resolv.conf's ndots option (default 1) and
// no trailing dot is tried with each search domain first, then as given;
// other names are queried only as given. Errors are [*Error].
//
// ctx bounds the whole lookup. It is safe for concurrent use.
func (r *Resolver) Lookup(ctx context.Context, network, host string) ([]Answer, error) {
	qtype, ok := qtypeOf(network)
	if !ok {
		return nil, net.UnknownNetworkError(network)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if familyOK(ip, qtype) {
			return []Answer{{Addr: ip}}, nil
		}
		return nil, nil
	}
	name, abs, err := normalize(host)
	if err != nil {
		return nil, err
	}
	if addrs, ok := r.static(name); ok {
		var ans []Answer
		for _, a := range addrs {
			if familyOK(a, qtype) {
				ans = append(ans, Answer{Addr: a, TTL: hostsTTL})
			}
		}
		return ans, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Name: host, Kind: Canceled, Err: err}
	}
	var agg outcome
	for _, fqdn := range r.candidates(name, abs) {
		res := r.query(ctx, fqdn, qtype)
		if len(res.answers) > 0 {
			return slices.Clone(res.answers), nil // res is shared
		}
		if res.fail != nil && res.fail.Kind == Canceled {
			return nil, res.errFor(host)
		}
		agg.add(res)
	}
	if agg.nodata && agg.fail == nil {
		return nil, nil
	}
	return nil, agg.err(host)
}

// LookupNetIP looks up host like [net.Resolver.LookupNetIP]: network "ip"
// asks for AAAA and A records in parallel and returns the IPv6 addresses
// first, "ip4" and "ip6" ask for one family. If either family has
// addresses, they are returned without error. The error matches
// [ErrNotFound] only if every query answered NXDOMAIN; a name with no
// addresses of the families asked for gives an [*Error] of kind
// NoAddress, unless a query failed, which gives that failure.
//
// ctx bounds the whole lookup. It is safe for concurrent use.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	var qtypes []uint16
	switch network {
	case "ip":
		qtypes = []uint16{dns.TypeAAAA, dns.TypeA}
	case "ip4":
		qtypes = []uint16{dns.TypeA}
	case "ip6":
		qtypes = []uint16{dns.TypeAAAA}
	default:
		return nil, net.UnknownNetworkError(network)
	}
	match := func(a netip.Addr) bool {
		return network == "ip" || familyOK(a, qtypes[0])
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if match(ip) {
			return []netip.Addr{ip}, nil
		}
		return nil, &Error{Name: host, Kind: NoAddress}
	}
	name, abs, err := normalize(host)
	if err != nil {
		return nil, err
	}
	if addrs, ok := r.static(name); ok {
		var out []netip.Addr
		for _, want := range qtypes { // AAAA first
			for _, a := range addrs {
				if familyOK(a, want) {
					out = append(out, a)
				}
			}
		}
		if len(out) == 0 {
			return nil, &Error{Name: host, Kind: NoAddress}
		}
		return out, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Name: host, Kind: Canceled, Err: err}
	}
	var agg outcome
	for _, fqdn := range r.candidates(name, abs) {
		waits := make([]func() result, len(qtypes))
		for i, qt := range qtypes {
			waits[i] = r.start(ctx, fqdn, qt)
		}
		res := make([]result, len(qtypes))
		for i, w := range waits {
			res[i] = w()
		}
		var out []netip.Addr
		for _, rs := range res {
			for _, a := range rs.answers {
				out = append(out, a.Addr)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		for _, rs := range res {
			if rs.fail != nil && rs.fail.Kind == Canceled {
				return nil, rs.errFor(host)
			}
			agg.add(rs)
		}
	}
	if agg.nodata && agg.fail == nil {
		return nil, &Error{Name: host, Kind: NoAddress}
	}
	return nil, agg.err(host)
}

// outcome combines the results of the queries of one lookup that gave no
// addresses: a failure wins over NODATA (the name may have the records),
// NODATA over NXDOMAIN (the name exists).
type outcome struct {
	fail   *Error // the last failure other than NXDOMAIN
	nodata bool
	nx     *Error // the last NXDOMAIN
}

func (o *outcome) add(res result) {
	switch {
	case res.fail == nil:
		o.nodata = true
	case res.fail.Kind == NotFound:
		o.nx = res.fail
	default:
		o.fail = res.fail
	}
}

// err returns the lookup's error (nil for NODATA without failure).
func (o *outcome) err(host string) error {
	var e *Error
	switch {
	case o.fail != nil:
		e = o.fail
	case o.nodata:
		return nil
	case o.nx != nil:
		e = o.nx
	default:
		e = &Error{Kind: NotFound, Rcode: dns.RcodeNameError}
	}
	c := *e
	c.Name = host
	return &c
}

// static answers from the hosts file, and for "localhost" and names under
// it from the loopback addresses (RFC 6761 section 6.3: such names are
// never sent to a name server). ok reports whether it had the name.
func (r *Resolver) static(name string) (addrs []netip.Addr, ok bool) {
	if addrs, ok := r.hosts.lookup(name, time.Now()); ok {
		return addrs, true
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return []netip.Addr{netip.IPv6Loopback(), netip.AddrFrom4([4]byte{127, 0, 0, 1})}, true
	}
	return nil, false
}

// maxNameLen is the longest name in presentation form without the final
// dot (255 octets on the wire).
const maxNameLen = 253

// normalize checks host and returns it lowercased without a trailing dot,
// and whether it had one (an absolute name, exempt from the search list).
func normalize(host string) (name string, abs bool, err error) {
	name, abs = strings.CutSuffix(host, ".")
	if err := checkName(name); err != nil {
		return "", false, &Error{Name: host, Kind: NotFound, Err: err}
	}
	return strings.ToLower(name), abs, nil
}

// checkName reports whether name (no trailing dot) is a domain name we
// query: at most 253 octets, labels of 1 to 63 octets, each of letters,
// digits, '-' and '_'. Anything else (spaces, backslashes, bytes the DNS
// presentation format would read as escapes) is refused before it reaches
// a server.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return errInvalidName
	}
	label := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if label == 0 {
				return errInvalidName
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return errInvalidName
		}
		label++
		if label > 63 {
			return errInvalidName
		}
	}
	if label == 0 {
		return errInvalidName
	}
	return nil
}

// candidates returns the fully qualified names to query for name, in
// order. An absolute name, or one with at least ndots dots, is queried as
// it is; a shorter one is tried with each search domain first, then as it
// is (musl's rule; glibc would also try a dotted name with the search
// domains after it failed, which leaks queries to them).
func (r *Resolver) candidates(name string, abs bool) []string {
	if abs || strings.Count(name, ".") >= r.ndots || len(r.search) == 0 {
		return []string{name + "."}
	}
	out := make([]string, 0, len(r.search)+1)
	for _, d := range r.search {
		if len(name)+1+len(d) <= maxNameLen {
			out = append(out, name+"."+d+".")
		}
	}
	return append(out, name+".")
}

// A result is the outcome of one question (one fully qualified name and
// type): answers, NODATA (no answers, no fail), or a failure. Stored in
// the cache and shared by a flight's waiters, it is never modified.
type result struct {
	answers  []Answer
	fail     *Error        // without Name; errFor adds the caller's
	cacheFor time.Duration // how long the cache may keep it
}

// errFor returns the failure as the caller's error, naming host.
func (res result) errFor(host string) error {
	if res.fail == nil {
		return nil
	}
	e := *res.fail
	e.Name = host
	return &e
}

// A flight is one upstream exchange shared by every lookup of the same
// question that arrives while it runs (a small singleflight).
type flight struct {
	done   chan struct{} // closed when res is set
	res    result
	refs   int                     // lookups waiting; guarded by Resolver.mu
	cancel context.CancelCauseFunc // ends the exchange when refs drops to 0
	async  []*asyncWait            // LookupAsync calls to answer; guarded by Resolver.mu
}

// query answers one question from the cache, or joins or starts the
// flight for it. It returns once the answer is there or ctx ends.
func (r *Resolver) query(ctx context.Context, fqdn string, qtype uint16) result {
	return r.start(ctx, fqdn, qtype)()
}

// start begins looking up fqdn's records of qtype, from the cache or by
// joining or starting the flight that asks the upstreams, and returns
// the function that waits for the result. Both of a dual-stack lookup's
// queries are started before either is waited for, so that they run in
// parallel without a goroutine for the second. The wait returns early
// if ctx ends.
func (r *Resolver) start(ctx context.Context, fqdn string, qtype uint16) (wait func() result) {
	k := cacheKey{name: fqdn, qtype: qtype}
	if res, ok := r.cache.get(k, time.Now()); ok {
		r.hits.Add(1)
		return func() result { return res }
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return func() result { return result{fail: &Error{Kind: Canceled, Err: errClosed}} }
	}
	f := r.flights[k]
	if f == nil {
		// A flight may have stored the answer since the look above.
		if res, ok := r.cache.get(k, time.Now()); ok {
			r.mu.Unlock()
			r.hits.Add(1)
			return func() result { return res }
		}
		fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		r.flights[k] = f
		r.flightsWG.Add(1)
		r.spawn(func() { r.runFlight(fctx, k, f) })
	}
	f.refs++
	r.mu.Unlock()
	r.misses.Add(1)

	return func() result {
		select {
		case <-f.done:
			return f.res
		case <-ctx.Done():
			r.mu.Lock()
			f.refs--
			if f.refs == 0 && r.flights[k] == f {
				// Nobody else waits: stop the exchange, and let the next
				// lookup start afresh.
				delete(r.flights, k)
				f.cancel(context.Canceled)
			}
			r.mu.Unlock()
			return result{fail: &Error{Kind: Canceled, Err: ctx.Err()}}
		}
	}
}

// Flights run on reused goroutines. A flight's exchange (socket set-up,
// message packing and unpacking) grows a fresh goroutine's stack, which
// costs a copy each time; a worker keeps what it grew. perf of socks6d
// doing CONNECTs to fresh names showed 6% of its time in stack growth.
// Workers exit after flightWorkerIdle without work, or at Close.
const flightWorkerIdle = time.Second

// spawn runs fn on an idle worker, or on a new one.
func (r *Resolver) spawn(fn func()) {
	select {
	case r.work <- fn:
	default:
		go r.worker(fn)
	}
}

func (r *Resolver) worker(fn func()) {
	fn()
	t := time.NewTimer(flightWorkerIdle)
	defer t.Stop()
	for {
		select {
		case fn := <-r.work:
			fn()
			t.Reset(flightWorkerIdle)
		case <-t.C:
			return
		case <-r.base.Done():
			return
		}
	}
}

// runFlight runs f's exchange, caches its result and hands it to f's
// waiters. It ends when the exchange ends: at the latest after the
// resolver's retry budget, or promptly once every waiter has left or
// Close was called.
func (r *Resolver) runFlight(ctx context.Context, k cacheKey, f *flight) {
	defer r.flightsWG.Done()
	stop := context.AfterFunc(r.base, func() { f.cancel(errClosed) })
	defer stop()
	defer f.cancel(context.Canceled)

	res := r.exchange(ctx, dns.Question{Name: k.name, Qtype: k.qtype, Qclass: dns.ClassINET})

	r.mu.Lock()
	if res.fail == nil || res.fail.Kind != Canceled {
		r.cache.put(k, res, res.cacheFor, time.Now())
	}
	if r.flights[k] == f {
		delete(r.flights, k)
	}
	f.res = res
	close(f.done)
	waits := f.async
	f.async = nil
	for _, w := range waits {
		w.fired = true
	}
	r.mu.Unlock()
	for _, w := range waits {
		w.fn(res)
	}
}
