package resolver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/server/resolver"
)

// writeFile writes content to a new file in the test's temporary
// directory and returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testConfig is a Config that uses only servers: an empty resolv.conf, no
// hosts file, and one attempt with a timeout long enough for a loaded test
// machine.
func testConfig(t testing.TB, servers ...string) resolver.Config {
	return resolver.Config{
		Servers:    servers,
		ResolvConf: writeFile(t, "resolv.conf", ""),
		HostsFile:  "-",
		Timeout:    5 * time.Second,
		Attempts:   1,
	}
}

func newResolver(t testing.TB, cfg resolver.Config) *resolver.Resolver {
	t.Helper()
	r, err := resolver.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// unreachableUDP returns a loopback UDP address nothing listens on.
func unreachableUDP(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func addrs(ans []resolver.Answer) []string {
	var out []string
	for _, a := range ans {
		out = append(out, a.Addr.String())
	}
	return out
}

func mustLookup(t testing.TB, r *resolver.Resolver, network, host string) []resolver.Answer {
	t.Helper()
	ans, err := r.Lookup(t.Context(), network, host)
	if err != nil {
		t.Fatalf("Lookup(%s, %s): %v", network, host, err)
	}
	return ans
}

func TestLookupDualStack(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("dual.test", 300, "192.0.2.1", "192.0.2.2")
	s.SetAAAA("dual.test", 300, "2001:db8::1", "2001:db8::2")
	r := newResolver(t, testConfig(t, s.Addr))

	got, err := r.LookupNetIP(t.Context(), "ip", "Dual.Test.")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"),
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("LookupNetIP(ip) = %v, want %v", got, want)
	}
	if a := addrs(mustLookup(t, r, "ip4", "dual.test")); !slices.Equal(a, []string{"192.0.2.1", "192.0.2.2"}) {
		t.Errorf("Lookup(ip4) = %v", a)
	}
	ans := mustLookup(t, r, "ip6", "dual.test")
	if a := addrs(ans); !slices.Equal(a, []string{"2001:db8::1", "2001:db8::2"}) {
		t.Errorf("Lookup(ip6) = %v", a)
	}
	if ans[0].TTL == 0 || ans[0].TTL > 300 {
		t.Errorf("TTL = %d, want (0, 300]", ans[0].TTL)
	}
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if n := s.Queries("dual.test", qt); n != 1 {
			t.Errorf("%s queries = %d, want 1", dns.TypeToString[qt], n)
		}
	}
	q := s.LastQuery("dual.test", dns.TypeA)
	if q == nil || !q.RecursionDesired || q.IsEdns0() == nil || q.IsEdns0().UDPSize() != 1232 {
		t.Errorf("query lacks RD or EDNS0 with size 1232: %v", q)
	}
	for _, nw := range []string{"ip4", "ip6"} {
		if got, err := r.LookupNetIP(t.Context(), nw, "dual.test"); err != nil || len(got) != 2 {
			t.Errorf("LookupNetIP(%s) = %v, %v", nw, got, err)
		}
	}
}

func TestLookupOneFamily(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("v4only.test", 300, "192.0.2.7")
	r := newResolver(t, testConfig(t, s.Addr))

	got, err := r.LookupNetIP(t.Context(), "ip", "v4only.test")
	if err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.7")}) {
		t.Errorf("LookupNetIP(ip) = %v, %v", got, err)
	}
	// NODATA: no error from Lookup, NoAddress from LookupNetIP.
	ans, err := r.Lookup(t.Context(), "ip6", "v4only.test")
	if ans != nil || err != nil {
		t.Errorf("Lookup(ip6) = %v, %v, want nil, nil", ans, err)
	}
	_, err = r.LookupNetIP(t.Context(), "ip6", "v4only.test")
	var re *resolver.Error
	if !errors.As(err, &re) || re.Kind != resolver.NoAddress || errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("LookupNetIP(ip6) error = %v, want kind NoAddress", err)
	}
}

func TestLookupIPLiteral(t *testing.T) {
	t.Parallel()
	r := newResolver(t, testConfig(t, unreachableUDP(t)))
	for _, tt := range []struct{ network, host, want string }{
		{"ip4", "192.0.2.1", "192.0.2.1"},
		{"ip6", "192.0.2.1", ""},
		{"ip6", "2001:db8::1", "2001:db8::1"},
		{"ip4", "2001:db8::1", ""},
	} {
		ans, err := r.Lookup(t.Context(), tt.network, tt.host)
		if err != nil {
			t.Errorf("Lookup(%s, %s): %v", tt.network, tt.host, err)
			continue
		}
		if got := strings.Join(addrs(ans), ","); got != tt.want || (len(ans) == 1 && ans[0].TTL != 0) {
			t.Errorf("Lookup(%s, %s) = %v, want %q with TTL 0", tt.network, tt.host, ans, tt.want)
		}
	}
	if got, err := r.LookupNetIP(t.Context(), "ip", "2001:db8::1"); err != nil || len(got) != 1 {
		t.Errorf("LookupNetIP(ip, literal) = %v, %v", got, err)
	}
}

func TestLookupBadNetwork(t *testing.T) {
	t.Parallel()
	r := newResolver(t, testConfig(t, unreachableUDP(t)))
	if _, err := r.Lookup(t.Context(), "tcp", "x.test"); err == nil {
		t.Error("Lookup(tcp) succeeded")
	}
	if _, err := r.LookupNetIP(t.Context(), "udp", "x.test"); err == nil {
		t.Error("LookupNetIP(udp) succeeded")
	}
}

func TestInvalidNames(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	r := newResolver(t, testConfig(t, s.Addr))
	long := strings.Repeat("a", 63)
	for _, name := range []string{
		"", ".", "a..b", ".a", strings.Repeat("a", 64) + ".test",
		strings.Join([]string{long, long, long, long}, ".") + ".x", // 256 octets
		"sp ace.test", "back\\slash.test", "nul\x00.test", "ütf8.test",
	} {
		_, err := r.Lookup(t.Context(), "ip4", name)
		var re *resolver.Error
		if !errors.As(err, &re) || re.Kind != resolver.NotFound || !errors.Is(err, resolver.ErrNotFound) {
			t.Errorf("Lookup(%q) error = %v, want kind NotFound", name, err)
		}
	}
	if n := s.QueriesTotal(); n != 0 {
		t.Errorf("server got %d queries for invalid names", n)
	}
	// 253 octets and 63-octet labels are fine.
	ok := strings.Join([]string{long, long, long, strings.Repeat("b", 61)}, ".")
	s.SetA(ok, 60, "192.0.2.9")
	if ans := mustLookup(t, r, "ip4", ok+"."); len(ans) != 1 {
		t.Errorf("253-octet name: %v", ans)
	}
}

func TestHostsFile(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("host.test", 300, "198.51.100.1")
	s.SetAAAA("host.test", 300, "2001:db8::99")
	s.SetA("other.test", 300, "198.51.100.2")
	hosts := writeFile(t, "hosts", "# comment\n192.0.2.1 Host.Test alias.test # trailing\n192.0.2.2\thost.test\n")
	cfg := testConfig(t, s.Addr)
	cfg.HostsFile = hosts
	r := newResolver(t, cfg)

	ans := mustLookup(t, r, "ip4", "HOST.test.")
	if a := addrs(ans); !slices.Equal(a, []string{"192.0.2.1", "192.0.2.2"}) || ans[0].TTL != 60 {
		t.Errorf("Lookup(ip4, host.test) = %v, want the hosts file's two addresses with TTL 60", ans)
	}
	// The file lists the name: it is the only source, also for IPv6.
	if ans := mustLookup(t, r, "ip6", "host.test"); len(ans) != 0 {
		t.Errorf("Lookup(ip6, host.test) = %v, want none", ans)
	}
	if a := addrs(mustLookup(t, r, "ip4", "alias.test")); !slices.Equal(a, []string{"192.0.2.1"}) {
		t.Errorf("alias: %v", a)
	}
	if n := s.Queries("host.test", dns.TypeA) + s.Queries("host.test", dns.TypeAAAA); n != 0 {
		t.Errorf("server got %d queries for a name in the hosts file", n)
	}
	if a := addrs(mustLookup(t, r, "ip4", "other.test")); !slices.Equal(a, []string{"198.51.100.2"}) {
		t.Errorf("other.test: %v", a)
	}

	// Rewrite the file; within a second or two the new one is used.
	if err := os.WriteFile(hosts, []byte("192.0.2.3 host.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(5 * time.Second)
	if err := os.Chtimes(hosts, future, future); err != nil {
		t.Fatal(err)
	}
	var a []string
	if !socks6test.WaitFor(3*time.Second, func() bool {
		a = addrs(mustLookup(t, r, "ip4", "host.test"))
		return slices.Equal(a, []string{"192.0.2.3"})
	}) {
		t.Errorf("after rewriting the hosts file: %v, want [192.0.2.3]", a)
	}
	// alias.test left the file, and the server does not know it.
	if _, err := r.Lookup(t.Context(), "ip4", "alias.test"); !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("alias.test after the rewrite: %v, want ErrNotFound", err)
	}
}

func TestLocalhost(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	r := newResolver(t, testConfig(t, s.Addr))
	got, err := r.LookupNetIP(t.Context(), "ip", "foo.localhost")
	if err != nil || !slices.Equal(got, []netip.Addr{netip.IPv6Loopback(), netip.MustParseAddr("127.0.0.1")}) {
		t.Errorf("LookupNetIP(foo.localhost) = %v, %v", got, err)
	}
	if n := s.QueriesTotal(); n != 0 {
		t.Errorf("localhost names reached the server (%d queries)", n)
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("cached.test", 100, "192.0.2.1")
	s.SetA("short.test", 1, "192.0.2.2")
	r := newResolver(t, testConfig(t, s.Addr))

	first := mustLookup(t, r, "ip4", "cached.test")
	mustLookup(t, r, "ip4", "CACHED.test.")
	if n := s.Queries("cached.test", dns.TypeA); n != 1 {
		t.Errorf("queries after two lookups = %d, want 1", n)
	}
	st := r.Stats()
	if st.CacheHits != 1 || st.CacheMisses != 1 || st.Queries != 1 || st.CacheLen != 1 {
		t.Errorf("Stats = %+v, want 1 hit, 1 miss, 1 query, 1 entry", st)
	}
	mustLookup(t, r, "ip4", "short.test")
	time.Sleep(1100 * time.Millisecond)

	// The remaining TTL counts down.
	later := mustLookup(t, r, "ip4", "cached.test")
	if later[0].TTL >= first[0].TTL || later[0].TTL < first[0].TTL-3 {
		t.Errorf("cached TTL = %d after 1.1s, first %d", later[0].TTL, first[0].TTL)
	}
	// A 1s TTL has expired: the name is fetched again.
	mustLookup(t, r, "ip4", "short.test")
	if n := s.Queries("short.test", dns.TypeA); n != 2 {
		t.Errorf("queries for a 1s-TTL name after 1.1s = %d, want 2", n)
	}
}

func TestMaxTTL(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("long.test", 86400, "192.0.2.1")
	cfg := testConfig(t, s.Addr)
	cfg.MaxTTL = 10 * time.Second
	r := newResolver(t, cfg)
	if ans := mustLookup(t, r, "ip4", "long.test"); ans[0].TTL != 10 {
		t.Errorf("TTL = %d, want MaxTTL 10", ans[0].TTL)
	}
}

func TestCacheDisabled(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("n.test", 100, "192.0.2.1")
	cfg := testConfig(t, s.Addr)
	cfg.CacheSize = -1
	r := newResolver(t, cfg)
	mustLookup(t, r, "ip4", "n.test")
	mustLookup(t, r, "ip4", "n.test")
	if n := s.Queries("n.test", dns.TypeA); n != 2 {
		t.Errorf("queries without a cache = %d, want 2", n)
	}
}

func TestNegativeCache(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		soaTTL  uint32
		negTTL  time.Duration
		refetch bool // after 1.2s
	}{
		{"soa_60", 60, 0, false},
		{"soa_1", 1, 0, true},
		{"capped_by_NegativeTTL", 60, time.Second, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := socks6test.NewDNSServer(t)
			s.SetSOATTL(tt.soaTTL)
			s.SetA("nodata.test", 60, "192.0.2.1")
			cfg := testConfig(t, s.Addr)
			cfg.NegativeTTL = tt.negTTL
			r := newResolver(t, cfg)
			lookups := func() {
				if _, err := r.Lookup(t.Context(), "ip4", "nx.test"); !errors.Is(err, resolver.ErrNotFound) {
					t.Errorf("nx.test: %v, want ErrNotFound", err)
				}
				if ans, err := r.Lookup(t.Context(), "ip6", "nodata.test"); ans != nil || err != nil {
					t.Errorf("nodata.test: %v, %v, want NODATA", ans, err)
				}
			}
			lookups()
			lookups()
			if nx, nd := s.Queries("nx.test", dns.TypeA), s.Queries("nodata.test", dns.TypeAAAA); nx != 1 || nd != 1 {
				t.Errorf("queries after two lookups: NXDOMAIN %d, NODATA %d, want 1 each", nx, nd)
			}
			time.Sleep(1200 * time.Millisecond)
			lookups()
			want := 1
			if tt.refetch {
				want = 2
			}
			if nx, nd := s.Queries("nx.test", dns.TypeA), s.Queries("nodata.test", dns.TypeAAAA); nx != want || nd != want {
				t.Errorf("queries after 1.2s: NXDOMAIN %d, NODATA %d, want %d each", nx, nd, want)
			}
		})
	}
}

func TestFailureNotCachedLong(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetRcode("flaky.test", dns.RcodeServerFailure)
	r := newResolver(t, testConfig(t, s.Addr))
	if _, err := r.Lookup(t.Context(), "ip4", "flaky.test"); !errors.Is(err, resolver.ErrServerFailure) {
		t.Fatalf("first lookup: %v, want ErrServerFailure", err)
	}
	s.SetRcode("flaky.test", dns.RcodeSuccess)
	s.SetA("flaky.test", 60, "192.0.2.5")
	time.Sleep(1100 * time.Millisecond)
	if a := addrs(mustLookup(t, r, "ip4", "flaky.test")); !slices.Equal(a, []string{"192.0.2.5"}) {
		t.Errorf("after recovery: %v", a)
	}
}

func TestCacheBound(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("keep.test", 300, "192.0.2.1")
	cfg := testConfig(t, s.Addr)
	cfg.CacheSize = 100
	cfg.Timeout = 5 * time.Second // a loaded test machine must not fail this test
	cfg.Attempts = 2
	r := newResolver(t, cfg)
	const names = 5000
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxLen := 0
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("n%d.flood.test", i)
				if i%2 == 0 {
					s.SetA(name, 300, "192.0.2.2")
				}
				if _, err := r.Lookup(t.Context(), "ip4", name); err != nil && !errors.Is(err, resolver.ErrNotFound) {
					t.Errorf("Lookup(%s): %v", name, err)
				}
				l := r.Stats().CacheLen
				mu.Lock()
				maxLen = max(maxLen, l)
				mu.Unlock()
			}
		})
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	st := r.Stats()
	if maxLen > 100 || st.CacheLen > 100 {
		t.Errorf("cache held up to %d entries (%d at the end), CacheSize 100", maxLen, st.CacheLen)
	}
	if st.CacheMisses != names || st.Queries < names {
		t.Errorf("Stats = %+v, want %d misses and at least as many queries", st, names)
	}
}

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetRcode("fail.test", dns.RcodeServerFailure)
	s.SetRcode("refused.test", dns.RcodeRefused)
	s.SetDelay("silent.test", -1)
	dead := unreachableUDP(t)

	r := newResolver(t, testConfig(t, s.Addr))
	cfg := testConfig(t, s.Addr)
	cfg.Timeout = 300 * time.Millisecond
	rQuick := newResolver(t, cfg)
	rDead := newResolver(t, testConfig(t, dead))

	for _, tt := range []struct {
		name    string
		r       *resolver.Resolver
		host    string
		is      error
		kind    resolver.ErrorKind
		msg     string
		timeout bool
	}{
		{"nxdomain", r, "nx.test", resolver.ErrNotFound, resolver.NotFound, "lookup nx.test: NXDOMAIN", false},
		{"servfail", r, "fail.test", resolver.ErrServerFailure, resolver.ServerFailure, "lookup fail.test: SERVFAIL from " + s.Addr, false},
		{"refused", r, "refused.test", resolver.ErrServerFailure, resolver.ServerFailure, "lookup refused.test: REFUSED from " + s.Addr, false},
		{"silent", rQuick, "silent.test", resolver.ErrServerFailure, resolver.NoResponse, "lookup silent.test: no response from " + s.Addr + " (timeout)", true},
		{"unreachable", rDead, "x.test", resolver.ErrServerFailure, resolver.NoResponse, "lookup x.test: no response from " + dead + " (connection refused)", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.r.Lookup(t.Context(), "ip4", tt.host)
			if !errors.Is(err, tt.is) {
				t.Fatalf("error = %v, want %v", err, tt.is)
			}
			other := resolver.ErrNotFound
			if tt.is == resolver.ErrNotFound {
				other = resolver.ErrServerFailure
			}
			if errors.Is(err, other) {
				t.Errorf("error %v also matches %v", err, other)
			}
			var re *resolver.Error
			if !errors.As(err, &re) || re.Kind != tt.kind || re.Name != tt.host {
				t.Fatalf("error = %#v, want kind %v for %s", err, tt.kind, tt.host)
			}
			if err.Error() != tt.msg {
				t.Errorf("message %q, want %q", err.Error(), tt.msg)
			}
			if re.Timeout() != tt.timeout {
				t.Errorf("Timeout() = %v, want %v", re.Timeout(), tt.timeout)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v matches context.DeadlineExceeded; the caller's context did not end", err)
			}
		})
	}
}

func TestRetryNextServer(t *testing.T) {
	t.Parallel()
	bad := socks6test.NewDNSServer(t)
	bad.SetRcode("retry.test", dns.RcodeServerFailure)
	silent := socks6test.NewDNSServer(t)
	silent.SetDelay("retry.test", -1)
	good := socks6test.NewDNSServer(t)
	good.SetA("retry.test", 60, "192.0.2.8")

	cfg := testConfig(t, unreachableUDP(t), bad.Addr, silent.Addr, good.Addr)
	cfg.Timeout = time.Second
	r := newResolver(t, cfg)
	if a := addrs(mustLookup(t, r, "ip4", "retry.test")); !slices.Equal(a, []string{"192.0.2.8"}) {
		t.Errorf("Lookup = %v", a)
	}
	for _, s := range []*socks6test.DNSServer{bad, silent, good} {
		if n := s.Queries("retry.test", dns.TypeA); n != 1 {
			t.Errorf("server %s got %d queries, want 1", s.Addr, n)
		}
	}

	// NXDOMAIN is final: the next server is not asked.
	nx := socks6test.NewDNSServer(t)
	good2 := socks6test.NewDNSServer(t)
	good2.SetA("gone.test", 60, "192.0.2.9")
	r2 := newResolver(t, testConfig(t, nx.Addr, good2.Addr))
	if _, err := r2.Lookup(t.Context(), "ip4", "gone.test"); !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("Lookup = %v, want ErrNotFound from the first server", err)
	}
	if n := good2.QueriesTotal(); n != 0 {
		t.Errorf("second server asked after NXDOMAIN (%d queries)", n)
	}
}

func TestAttempts(t *testing.T) {
	t.Parallel()
	s1 := socks6test.NewDNSServer(t)
	s2 := socks6test.NewDNSServer(t)
	s1.SetRcode("x.test", dns.RcodeServerFailure)
	s2.SetRcode("x.test", dns.RcodeServerFailure)
	cfg := testConfig(t, s1.Addr, s2.Addr)
	cfg.Attempts = 3
	r := newResolver(t, cfg)
	if _, err := r.Lookup(t.Context(), "ip4", "x.test"); !errors.Is(err, resolver.ErrServerFailure) {
		t.Fatalf("Lookup = %v", err)
	}
	if n1, n2 := s1.QueriesTotal(), s2.QueriesTotal(); n1 != 3 || n2 != 3 {
		t.Errorf("queries = %d and %d, want 3 rounds over both", n1, n2)
	}
	if q := r.Stats().Queries; q != 6 {
		t.Errorf("Stats.Queries = %d, want 6", q)
	}
}

func TestTCPFallback(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetTruncate("big.test", true)
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("2001:db8::%x", i+1))
	}
	s.SetAAAA("big.test", 60, many...) // 100 AAAA records need more than 1232 bytes anyway
	r := newResolver(t, testConfig(t, s.Addr))
	ans := mustLookup(t, r, "ip6", "big.test")
	if len(ans) != 100 {
		t.Errorf("got %d answers, want 100", len(ans))
	}
	if st := r.Stats(); st.TCPFallbacks != 1 || st.Queries != 2 {
		t.Errorf("Stats = %+v, want 1 TCP fallback and 2 queries", st)
	}
	if n := s.Queries("big.test", dns.TypeAAAA); n != 2 {
		t.Errorf("server got %d queries, want 2 (UDP, then TCP)", n)
	}
}

// selfSigned returns a server certificate for 127.0.0.1 and dns.test and
// a pool that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "socks6 resolver test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"dns.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestDNSOverTLS(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	s := socks6test.NewDNSServer(t)
	s.SetA("a.test", 60, "192.0.2.1")
	s.SetAAAA("a.test", 60, "2001:db8::1")
	s.SetA("b.test", 60, "192.0.2.2")
	var handshakes atomic.Int32
	tlsAddr := s.ServeTLS(t, &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			handshakes.Add(1)
			return nil, nil
		},
	})

	for _, server := range []string{"tls://" + tlsAddr, "tls://" + tlsAddr + "#dns.test"} {
		t.Run(server, func(t *testing.T) {
			handshakes.Store(0)
			cfg := testConfig(t, server)
			cfg.TLSConfig = &tls.Config{RootCAs: pool}
			cfg.CacheSize = -1
			r := newResolver(t, cfg)
			got, err := r.LookupNetIP(t.Context(), "ip", "a.test")
			if err != nil || len(got) != 2 {
				t.Fatalf("LookupNetIP(a.test) = %v, %v", got, err)
			}
			for range 3 { // reuses the idle connection
				if a := addrs(mustLookup(t, r, "ip4", "b.test")); !slices.Equal(a, []string{"192.0.2.2"}) {
					t.Errorf("b.test = %v", a)
				}
			}
			if n := handshakes.Load(); n > 2 {
				t.Errorf("%d TLS handshakes for 5 sequential queries (2 of them parallel), want at most 2", n)
			}
		})
	}

	t.Run("wrong_name", func(t *testing.T) {
		cfg := testConfig(t, "tls://"+tlsAddr+"#other.test")
		cfg.TLSConfig = &tls.Config{RootCAs: pool}
		r := newResolver(t, cfg)
		_, err := r.Lookup(t.Context(), "ip4", "a.test")
		var ce *tls.CertificateVerificationError
		if !errors.Is(err, resolver.ErrServerFailure) || !errors.As(err, &ce) {
			t.Errorf("error = %v, want a server failure caused by certificate verification", err)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		r := newResolver(t, testConfig(t, "tls://"+tlsAddr))
		if _, err := r.Lookup(t.Context(), "ip4", "a.test"); !errors.Is(err, resolver.ErrServerFailure) {
			t.Errorf("error = %v, want ErrServerFailure", err)
		}
	})
}

func TestDNSOverTLSServerClosesIdle(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	// A DoT server that answers one query per connection, then closes it.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				dc := &dns.Conn{Conn: c}
				req, err := dc.ReadMsg()
				if err != nil {
					return
				}
				resp := new(dns.Msg)
				resp.SetReply(req)
				resp.RecursionAvailable = true
				resp.Answer = []dns.RR{&dns.A{
					Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(192, 0, 2, 1),
				}}
				dc.WriteMsg(resp)
			})
		}
	})
	cfg := testConfig(t, "tls://"+ln.Addr().String())
	cfg.TLSConfig = &tls.Config{RootCAs: pool}
	cfg.CacheSize = -1
	r := newResolver(t, cfg)
	for i := range 3 {
		if _, err := r.Lookup(t.Context(), "ip4", "x.test"); err != nil {
			t.Errorf("lookup %d: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond) // let the close arrive
	}
	// Lookups 2 and 3 each found the idle connection closed and retried.
	if q := r.Stats().Queries; q != 5 {
		t.Errorf("Stats.Queries = %d, want 5 (3 lookups, 2 retries on a new connection)", q)
	}
}

func TestCNAMEChain(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetCNAME("www.test", "edge.test", 300)
	s.SetCNAME("edge.test", "Node.CDN.test", 5)
	s.SetA("node.cdn.test", 100, "192.0.2.10", "192.0.2.11")
	s.SetCNAME("dangling.test", "nowhere.test", 300)
	s.SetCNAME("loop1.test", "loop2.test", 300)
	s.SetCNAME("loop2.test", "loop1.test", 300)
	r := newResolver(t, testConfig(t, s.Addr))

	ans := mustLookup(t, r, "ip4", "www.test")
	if a := addrs(ans); !slices.Equal(a, []string{"192.0.2.10", "192.0.2.11"}) {
		t.Errorf("Lookup(www.test) = %v", a)
	}
	for _, a := range ans {
		if a.TTL != 5 {
			t.Errorf("TTL %d, want 5 (the chain's minimum)", a.TTL)
		}
	}
	if ans := mustLookup(t, r, "ip6", "www.test"); len(ans) != 0 {
		t.Errorf("Lookup(ip6, www.test) = %v, want NODATA", ans)
	}
	if _, err := r.Lookup(t.Context(), "ip4", "dangling.test"); !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("dangling CNAME: %v, want ErrNotFound", err)
	}
	if ans, err := r.Lookup(t.Context(), "ip4", "loop1.test"); len(ans) != 0 || (err != nil && !errors.Is(err, resolver.ErrNotFound)) {
		t.Errorf("CNAME loop: %v, %v", ans, err)
	}
}

func TestSearchList(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("host.b.test", 60, "192.0.2.20")
	s.SetA("host", 60, "192.0.2.21") // a single-label name
	s.SetA("two.dots", 60, "192.0.2.22")
	s.SetA("two.dots.a.test", 60, "192.0.2.23")
	cfg := testConfig(t, s.Addr)
	cfg.ResolvConf = writeFile(t, "resolv.conf", "search a.test b.test\noptions ndots:1\n")
	r := newResolver(t, cfg)

	if a := addrs(mustLookup(t, r, "ip4", "host")); !slices.Equal(a, []string{"192.0.2.20"}) {
		t.Errorf("host = %v, want host.b.test's address", a)
	}
	if n := s.Queries("host.a.test", dns.TypeA); n != 1 {
		t.Errorf("host.a.test asked %d times, want 1 (search order)", n)
	}
	if a := addrs(mustLookup(t, r, "ip4", "host.")); !slices.Equal(a, []string{"192.0.2.21"}) {
		t.Errorf("host. = %v, want the absolute name's address", a)
	}
	if a := addrs(mustLookup(t, r, "ip4", "two.dots")); !slices.Equal(a, []string{"192.0.2.22"}) {
		t.Errorf("two.dots = %v, want the name as given (ndots 1)", a)
	}
	if n := s.Queries("two.dots.a.test", dns.TypeA); n != 0 {
		t.Errorf("a dotted name went through the search list")
	}
	if _, err := r.Lookup(t.Context(), "ip4", "missing"); !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("missing = %v, want ErrNotFound", err)
	}

	cfg.ResolvConf = writeFile(t, "resolv2.conf", "search a.test\noptions ndots:2\n")
	r2 := newResolver(t, cfg)
	if a := addrs(mustLookup(t, r2, "ip4", "two.dots")); !slices.Equal(a, []string{"192.0.2.23"}) {
		t.Errorf("ndots:2: two.dots = %v, want two.dots.a.test's address", a)
	}
}

func TestSingleflight(t *testing.T) {
	socks6test.CheckGoroutines(t, 5)
	s := socks6test.NewDNSServer(t)
	s.SetA("cold.test", 60, "192.0.2.1")
	s.SetAAAA("cold.test", 60, "2001:db8::1")
	s.SetDelay("cold.test", 100*time.Millisecond)
	r := newResolver(t, testConfig(t, s.Addr))
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			got, err := r.LookupNetIP(t.Context(), "ip", "cold.test")
			if err != nil || len(got) != 2 {
				t.Errorf("LookupNetIP = %v, %v", got, err)
			}
		})
	}
	wg.Wait()
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if n := s.Queries("cold.test", qt); n != 1 {
			t.Errorf("%s queries = %d, want 1", dns.TypeToString[qt], n)
		}
	}
}

// A lookup that leaves a shared exchange early does not end it for the
// others.
func TestSingleflightCallerLeaves(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("slow.test", 60, "192.0.2.1")
	s.SetDelay("slow.test", 300*time.Millisecond)
	r := newResolver(t, testConfig(t, s.Addr))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := r.Lookup(ctx, "ip4", "slow.test")
		done <- err
	}()
	ans := mustLookup(t, r, "ip4", "slow.test")
	if len(ans) != 1 {
		t.Errorf("patient lookup = %v", ans)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("impatient lookup = %v, want DeadlineExceeded", err)
	}
	if n := s.Queries("slow.test", dns.TypeA); n != 1 {
		t.Errorf("queries = %d, want 1", n)
	}
}

func TestContextCancel(t *testing.T) {
	socks6test.CheckGoroutines(t, 5)
	s := socks6test.NewDNSServer(t)
	s.SetDelay("hang.test", -1)
	cfg := testConfig(t, s.Addr)
	cfg.Timeout = 10 * time.Second
	cfg.Attempts = 3
	r := newResolver(t, cfg)

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.LookupNetIP(ctx, "ip", "hang.test")
	if d := time.Since(start); d > time.Second {
		t.Errorf("lookup took %v after a 100ms deadline", d)
	}
	var re *resolver.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &re) || !re.Timeout() || re.Kind != resolver.Canceled {
		t.Errorf("error = %v, want kind Canceled wrapping DeadlineExceeded", err)
	}
	if errors.Is(err, resolver.ErrServerFailure) || errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("error %v blames the server or the name", err)
	}

	ctx2, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if _, err := r.Lookup(ctx2, "ip4", "hang.test"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
	// The abandoned exchange is not cached as a failure.
	s.SetDelay("hang.test", 0)
	s.SetA("hang.test", 60, "192.0.2.1")
	if ans := mustLookup(t, r, "ip4", "hang.test"); len(ans) != 1 {
		t.Errorf("after the server answers: %v", ans)
	}
}

func TestClose(t *testing.T) {
	socks6test.CheckGoroutines(t, 5)
	s := socks6test.NewDNSServer(t)
	s.SetDelay("hang.test", -1)
	cfg := testConfig(t, s.Addr)
	cfg.Timeout = 10 * time.Second
	r, err := resolver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Lookup(t.Context(), "ip4", "hang.test")
		done <- err
	}()
	if !socks6test.WaitFor(2*time.Second, func() bool { return s.QueriesTotal() > 0 }) {
		t.Fatal("query never arrived")
	}
	r.Close()
	select {
	case err := <-done:
		var re *resolver.Error
		if !errors.As(err, &re) || re.Kind != resolver.Canceled {
			t.Errorf("lookup ended by Close: %v, want kind Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end the lookup")
	}
	if _, err := r.Lookup(t.Context(), "ip4", "other.test"); err == nil {
		t.Error("lookup after Close succeeded")
	}
	r.Close()
}

func TestBadResponse(t *testing.T) {
	t.Parallel()
	s := socks6test.NewDNSServer(t)
	s.SetA("mangled.test", 60, "192.0.2.1")
	s.SetMangle("mangled.test", func(m *dns.Msg) { m.Question[0].Name = "other.test." })
	cfg := testConfig(t, s.Addr)
	cfg.Timeout = time.Second // the wrong answer is ignored until then
	r := newResolver(t, cfg)
	_, err := r.Lookup(t.Context(), "ip4", "mangled.test")
	var re *resolver.Error
	if !errors.Is(err, resolver.ErrServerFailure) || !errors.As(err, &re) || re.Kind != resolver.BadResponse {
		t.Errorf("error = %v, want kind BadResponse", err)
	} else if !strings.Contains(err.Error(), "question mismatch") {
		t.Errorf("message %q does not say why", err)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	empty := writeFile(t, "resolv.conf", "")
	for _, bad := range []string{"dns.example", "192.0.2.1:0", "udp://192.0.2.1", "tls://dns.example:853", "192.0.2.1:99999", "[2001:db8::1"} {
		_, err := resolver.New(resolver.Config{Servers: []string{bad}, ResolvConf: empty, HostsFile: "-"})
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("New(Servers: %q) error = %v, want one naming it", bad, err)
		}
		if err := resolver.CheckServer(bad); err == nil {
			t.Errorf("CheckServer(%q) accepted it", bad)
		}
	}
	for _, good := range []string{"192.0.2.1", "192.0.2.1:5353", "2001:db8::53", "[2001:db8::53]:53", "tls://192.0.2.1", "tls://[2001:db8::1]:853#dns.example"} {
		if err := resolver.CheckServer(good); err != nil {
			t.Errorf("CheckServer(%q): %v", good, err)
		}
		r, err := resolver.New(resolver.Config{Servers: []string{good}, ResolvConf: empty, HostsFile: "-"})
		if err != nil {
			t.Errorf("New(Servers: %q): %v", good, err)
			continue
		}
		r.Close()
	}
	// A missing resolv.conf or hosts file is fine; a directory is not.
	dir := t.TempDir()
	if r, err := resolver.New(resolver.Config{ResolvConf: filepath.Join(dir, "none"), HostsFile: filepath.Join(dir, "none")}); err != nil {
		t.Errorf("missing files: %v", err)
	} else {
		r.Close()
	}
	if _, err := resolver.New(resolver.Config{ResolvConf: dir, HostsFile: "-"}); err == nil || !strings.Contains(err.Error(), "resolv.conf") {
		t.Errorf("unreadable resolv.conf: %v", err)
	}
}

func TestNAT64Prefix(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		aaaa   []string
		want   string
		wantOK bool
	}{
		{"96", []string{"2001:db8:64::c000:aa", "2001:db8:64::c000:ab"}, "2001:db8:64::/96", true},
		{"64", []string{mustSynth(t, "2001:db8:122:344::/64", "192.0.0.170"), mustSynth(t, "2001:db8:122:344::/64", "192.0.0.171")}, "2001:db8:122:344::/64", true},
		{"32_only_171", []string{mustSynth(t, "2001:db8::/32", "192.0.0.171")}, "2001:db8::/32", true},
		{"well_known", []string{"64:ff9b::c000:aa"}, "64:ff9b::/96", true},
		{"no_wka", []string{"2001:db8::1"}, "", false},
		{"nxdomain", nil, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := socks6test.NewDNSServer(t)
			if tt.aaaa != nil {
				s.SetAAAA("ipv4only.arpa", 600, tt.aaaa...)
			}
			r := newResolver(t, testConfig(t, s.Addr))
			if p, ok := r.NAT64PrefixKnown(); ok {
				t.Errorf("NAT64PrefixKnown before any discovery = %v", p)
			}
			p, ok := r.NAT64Prefix(t.Context())
			if ok != tt.wantOK || (ok && p.String() != tt.want) {
				t.Errorf("NAT64Prefix = %v, %v, want %s, %v", p, ok, tt.want, tt.wantOK)
			}
			r.NAT64Prefix(t.Context())
			if kp, kok := r.NAT64PrefixKnown(); kp != p || kok != ok {
				t.Errorf("NAT64PrefixKnown = %v, %v, want %v, %v", kp, kok, p, ok)
			}
			if n := s.QueriesTotal(); n != 1 {
				t.Errorf("%d queries for two calls and a look, want 1 (result remembered)", n)
			}
		})
	}
	t.Run("failure_not_remembered", func(t *testing.T) {
		t.Parallel()
		s := socks6test.NewDNSServer(t)
		s.SetRcode("ipv4only.arpa", dns.RcodeServerFailure)
		r := newResolver(t, testConfig(t, s.Addr))
		if _, ok := r.NAT64Prefix(t.Context()); ok {
			t.Error("prefix from a SERVFAIL")
		}
		s.SetRcode("ipv4only.arpa", dns.RcodeSuccess)
		s.SetAAAA("ipv4only.arpa", 600, "64:ff9b::c000:aa")
		if !socks6test.WaitFor(3*time.Second, func() bool { _, ok := r.NAT64Prefix(t.Context()); return ok }) {
			t.Error("no prefix after the server recovered")
		}
	})
}

func mustSynth(t testing.TB, prefix, v4 string) string {
	a, err := resolver.Synthesize(netip.MustParsePrefix(prefix), netip.MustParseAddr(v4))
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

// RFC 6052 section 2.4, and the well-known prefix of section 2.1.
func TestSynthesizeExtract(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ prefix, v4, v6 string }{
		{"2001:db8::/32", "192.0.2.33", "2001:db8:c000:221::"},
		{"2001:db8:100::/40", "192.0.2.33", "2001:db8:1c0:2:21::"},
		{"2001:db8:122::/48", "192.0.2.33", "2001:db8:122:c000:2:2100::"},
		{"2001:db8:122:300::/56", "192.0.2.33", "2001:db8:122:3c0:0:221::"},
		{"2001:db8:122:344::/64", "192.0.2.33", "2001:db8:122:344:c0:2:2100:0"},
		{"2001:db8:122:344::/96", "192.0.2.33", "2001:db8:122:344::192.0.2.33"},
		{"64:ff9b::/96", "192.0.2.33", "64:ff9b::192.0.2.33"},
	} {
		t.Run(tt.prefix, func(t *testing.T) {
			p := netip.MustParsePrefix(tt.prefix)
			v4 := netip.MustParseAddr(tt.v4)
			want := netip.MustParseAddr(tt.v6)
			got, err := resolver.Synthesize(p, v4)
			if err != nil || got != want {
				t.Fatalf("Synthesize(%s, %s) = %v, %v, want %s", p, v4, got, err, want)
			}
			back, ok := resolver.Extract(p, got)
			if !ok || back != v4 {
				t.Errorf("Extract(%s, %s) = %v, %v, want %s", p, got, back, ok, v4)
			}
			// Every IPv4 address round-trips; sample a few.
			for _, s := range []string{"0.0.0.0", "255.255.255.255", "10.1.2.3", "192.0.0.170"} {
				a := netip.MustParseAddr(s)
				v6, err := resolver.Synthesize(p, a)
				if err != nil {
					t.Fatal(err)
				}
				if b, ok := resolver.Extract(p, v6); !ok || b != a {
					t.Errorf("round trip of %s via %s: %v, %v", a, v6, b, ok)
				}
				if v6.As16()[8] != 0 {
					t.Errorf("%s: bits 64-71 not zero", v6)
				}
			}
		})
	}
	for _, bad := range []struct{ prefix, v4 string }{
		{"2001:db8::/33", "192.0.2.1"},
		{"2001:db8::/128", "192.0.2.1"},
		{"192.0.2.0/24", "192.0.2.1"},
		{"2001:db8:0:0:ff00::/96", "192.0.2.1"}, // bits 64-71 set
		{"::ffff:0:0/96", "192.0.2.1"},
		{"64:ff9b::/96", "2001:db8::1"},
	} {
		if a, err := resolver.Synthesize(netip.MustParsePrefix(bad.prefix), netip.MustParseAddr(bad.v4)); err == nil {
			t.Errorf("Synthesize(%s, %s) = %v, want an error", bad.prefix, bad.v4, a)
		}
	}
	p := netip.MustParsePrefix("64:ff9b::/96")
	for _, s := range []string{"2001:db8::c000:221", "192.0.2.1", "::ffff:192.0.2.1"} {
		if a, ok := resolver.Extract(p, netip.MustParseAddr(s)); ok {
			t.Errorf("Extract(%s, %s) = %v, want false", p, s, a)
		}
	}
	if a, ok := resolver.Extract(netip.MustParsePrefix("2001:db8::/64"), netip.MustParseAddr("2001:db8::ff00:0:0:0")); ok {
		t.Errorf("Extract with bits 64-71 set = %v, want false", a)
	}
	// An IPv4-mapped address is taken as IPv4.
	if a, err := resolver.Synthesize(p, netip.MustParseAddr("::ffff:192.0.2.1")); err != nil || a != netip.MustParseAddr("64:ff9b::192.0.2.1") {
		t.Errorf("Synthesize(mapped) = %v, %v", a, err)
	}
}

func TestLookupCached(t *testing.T) {
	srv := socks6test.NewDNSServer(t)
	srv.SetA("c.test", 300, "192.0.2.1")
	srv.SetA("nodata.test", 300)
	r, err := resolver.New(resolver.Config{Servers: []string{srv.Addr}, ResolvConf: writeFile(t, "resolv.conf", ""), HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok, _ := r.LookupCached("ip4", "c.test"); ok {
		t.Fatal("cold name answered from the cache")
	}
	if ans, ok, err := r.LookupCached("ip4", "192.0.2.9"); !ok || err != nil || len(ans) != 1 {
		t.Fatalf("literal: %v %v %v", ans, ok, err)
	}
	for _, name := range []string{"c.test", "nodata.test", "nx.test"} {
		r.Lookup(t.Context(), "ip4", name)
	}
	queries := srv.QueriesTotal()
	if ans, ok, err := r.LookupCached("ip4", "c.test"); !ok || err != nil || len(ans) != 1 || ans[0].Addr != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("cached A: %v %v %v", ans, ok, err)
	}
	if ans, ok, err := r.LookupCached("ip4", "nodata.test"); !ok || err != nil || len(ans) != 0 {
		t.Fatalf("cached NODATA: %v %v %v", ans, ok, err)
	}
	if _, ok, err := r.LookupCached("ip4", "nx.test"); !ok || !errors.Is(err, resolver.ErrNotFound) {
		t.Fatalf("cached NXDOMAIN: %v %v", ok, err)
	}
	if _, ok, _ := r.LookupCached("ip6", "c.test"); ok {
		t.Fatal("AAAA of c.test answered without a query")
	}
	if n := srv.QueriesTotal(); n != queries {
		t.Fatalf("LookupCached sent %d queries", n-queries)
	}
}
