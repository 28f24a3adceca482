package socks6test

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSServerSOATTL is the default TTL and MINIMUM of the SOA record a
// DNSServer puts in negative answers.
const DNSServerSOATTL = 60

// A DNSServer is a scriptable name server for tests, answering
// authoritatively from the records it was given: the A, AAAA and CNAME
// records set with its methods (CNAME chains are followed inside its own
// data, as a recursive server would), NODATA for a known name without
// records of the type asked, and NXDOMAIN with an SOA record for unknown
// names. Per name it can instead answer with an rcode, late, never, or
// truncated over UDP. It serves UDP and TCP on the same port, and DNS over
// TLS on request. Its methods are safe for concurrent use, also while it
// serves.
type DNSServer struct {
	// Addr is the UDP and TCP address, "127.0.0.1:port".
	Addr string

	t        testing.TB
	stop     chan struct{} // closed first at cleanup: releases delayed answers
	stopOnce sync.Once

	mu      sync.Mutex
	names   map[string]*dnsName // lowercased FQDN → records and behaviour
	soaTTL  uint32
	queries map[dnsKey]int
	last    map[dnsKey]*dns.Msg
	total   int
}

type dnsKey struct {
	name  string
	qtype uint16
}

// dnsName is what the server knows about one name.
type dnsName struct {
	exists   bool // has records (or had them set empty): NODATA, not NXDOMAIN
	a, aaaa  []dns.RR
	cname    *dns.CNAME
	rcode    int // non-zero: answer with it
	delay    time.Duration
	truncate bool
	mangle   func(*dns.Msg)
}

// NewDNSServer starts a DNSServer on 127.0.0.1:0, UDP and TCP on the same
// port, stopped when the test ends.
func NewDNSServer(t testing.TB) *DNSServer {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dns server: listen udp: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close() // the TCP port is taken: try another
			continue
		}
		return NewDNSServerOn(t, pc, ln)
	}
	t.Fatalf("dns server: no port free on both UDP and TCP")
	return nil
}

// NewDNSServerOn starts a DNSServer on pc and ln (either may be nil), for
// example sockets created inside a network namespace. Addr is pc's
// address, or ln's if pc is nil. Both are closed when the test ends.
func NewDNSServerOn(t testing.TB, pc net.PacketConn, ln net.Listener) *DNSServer {
	t.Helper()
	s := &DNSServer{
		t:       t,
		stop:    make(chan struct{}),
		names:   make(map[string]*dnsName),
		soaTTL:  DNSServerSOATTL,
		queries: make(map[dnsKey]int),
		last:    make(map[dnsKey]*dns.Msg),
	}
	switch {
	case pc != nil:
		s.Addr = pc.LocalAddr().String()
	case ln != nil:
		s.Addr = ln.Addr().String()
	default:
		t.Fatalf("dns server: no listener")
	}
	if pc != nil {
		s.start(t, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)})
	}
	if ln != nil {
		s.start(t, &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve)})
	}
	return s
}

// ServeTLS also serves DNS over TLS (RFC 7858) with cfg on a new listener
// on 127.0.0.1:0, stopped when the test ends, and returns its address.
func (s *DNSServer) ServeTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("dns server: listen tls: %v", err)
	}
	s.start(t, &dns.Server{Listener: ln, Net: "tcp-tls", Handler: dns.HandlerFunc(s.serve)})
	return ln.Addr().String()
}

// start runs srv until the test ends.
func (s *DNSServer) start(t testing.TB, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("dns server: %v", err)
	}
	t.Cleanup(func() {
		s.stopOnce.Do(func() { close(s.stop) }) // handlers must end for Shutdown to return
		srv.Shutdown()
		<-done
	})
}

// fqdn returns name lowercased with a final dot.
func fqdn(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// nameLocked returns the entry for name, creating it.
func (s *DNSServer) nameLocked(name string) *dnsName {
	n := s.names[fqdn(name)]
	if n == nil {
		n = &dnsName{}
		s.names[fqdn(name)] = n
	}
	return n
}

// SetA replaces the A records of name. With no addresses, name exists
// without A records (a NODATA answer). It fails the test on a bad address.
func (s *DNSServer) SetA(name string, ttl uint32, addrs ...string) {
	s.t.Helper()
	rrs := s.addrRRs(name, ttl, dns.TypeA, addrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nameLocked(name)
	n.exists, n.a = true, rrs
}

// SetAAAA replaces the AAAA records of name, as SetA does for A.
func (s *DNSServer) SetAAAA(name string, ttl uint32, addrs ...string) {
	s.t.Helper()
	rrs := s.addrRRs(name, ttl, dns.TypeAAAA, addrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nameLocked(name)
	n.exists, n.aaaa = true, rrs
}

func (s *DNSServer) addrRRs(name string, ttl uint32, qtype uint16, addrs []string) []dns.RR {
	s.t.Helper()
	var rrs []dns.RR
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || (qtype == dns.TypeA) != ip.Is4() {
			s.t.Fatalf("dns server: bad %s address %q for %s", dns.TypeToString[qtype], a, name)
		}
		h := dns.RR_Header{Name: dns.Fqdn(name), Rrtype: qtype, Class: dns.ClassINET, Ttl: ttl}
		if qtype == dns.TypeA {
			rrs = append(rrs, &dns.A{Hdr: h, A: ip.AsSlice()})
		} else {
			rrs = append(rrs, &dns.AAAA{Hdr: h, AAAA: ip.AsSlice()})
		}
	}
	return rrs
}

// SetCNAME makes name an alias of target. Queries for name get the CNAME
// and, if the server knows target, target's records (following further
// CNAMEs, up to 16).
func (s *DNSServer) SetCNAME(name, target string, ttl uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nameLocked(name)
	n.exists = true
	n.cname = &dns.CNAME{
		Hdr:    dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
		Target: dns.Fqdn(target),
	}
}

// SetRcode makes every answer for name carry rcode (dns.RcodeServerFailure,
// dns.RcodeRefused, dns.RcodeNameError …) and no records; an NXDOMAIN
// carries an SOA record. dns.RcodeSuccess answers from the records again.
// Unknown names get NXDOMAIN without this.
func (s *DNSServer) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nameLocked(name).rcode = rcode
}

// SetSOATTL sets the TTL and the MINIMUM field of the SOA record in
// negative answers (NXDOMAIN, NODATA), which is how long a resolver may
// cache them (RFC 2308). The default is DNSServerSOATTL.
func (s *DNSServer) SetSOATTL(ttl uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.soaTTL = ttl
}

// SetDelay makes the server answer questions for name d late, or never if
// d is negative. Zero answers at once again.
func (s *DNSServer) SetDelay(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nameLocked(name).delay = d
}

// SetTruncate makes UDP answers for name have TC=1 and no records, so a
// resolver must ask again over TCP, where the full answer comes.
func (s *DNSServer) SetTruncate(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nameLocked(name).truncate = on
}

// SetMangle calls fn on every answer for name just before it is sent, so
// a test can break it (change its ID or question, add records). Nil
// removes it. fn runs on the server's goroutines.
func (s *DNSServer) SetMangle(name string, fn func(resp *dns.Msg)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nameLocked(name).mangle = fn
}

// Queries returns how many questions for name (any case, with or without
// the final dot) and qtype the server received, over every transport.
func (s *DNSServer) Queries(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[dnsKey{fqdn(name), qtype}]
}

// QueriesTotal returns how many questions the server received.
func (s *DNSServer) QueriesTotal() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// LastQuery returns a copy of the last query for name and qtype, or nil,
// so a test can check its flags and EDNS0 record.
func (s *DNSServer) LastQuery(name string, qtype uint16) *dns.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.last[dnsKey{fqdn(name), qtype}]; m != nil {
		return m.Copy()
	}
	return nil
}

// serve answers one query.
func (s *DNSServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	k := dnsKey{fqdn(q.Name), q.Qtype}

	s.mu.Lock()
	s.queries[k]++
	s.total++
	s.last[k] = req.Copy()
	var n dnsName
	if p := s.names[k.name]; p != nil {
		n = *p
	}
	s.mu.Unlock()

	if n.delay < 0 {
		<-s.stop
		return
	}
	if n.delay > 0 {
		tm := time.NewTimer(n.delay)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-s.stop:
			return
		}
	}

	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = int(max(opt.UDPSize(), dns.MinMsgSize))
		resp.SetEdns0(1232, false)
	}
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	switch {
	case n.truncate && udp:
		resp.Truncated = true
	case n.rcode != dns.RcodeSuccess:
		resp.Rcode = n.rcode
		if n.rcode == dns.RcodeNameError {
			s.addSOA(resp)
		}
	default:
		s.answer(resp, q)
		if udp {
			resp.Truncate(size)
		}
	}
	if n.mangle != nil {
		n.mangle(resp)
	}
	w.WriteMsg(resp)
}

// answer fills resp from the records, following CNAMEs.
func (s *DNSServer) answer(resp *dns.Msg, q dns.Question) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := fqdn(q.Name)
	for range 17 {
		n := s.names[name]
		if n == nil || !n.exists {
			resp.Rcode = dns.RcodeNameError
			s.addSOALocked(resp)
			return
		}
		if n.cname != nil && q.Qtype != dns.TypeCNAME {
			resp.Answer = append(resp.Answer, dns.Copy(n.cname))
			name = fqdn(n.cname.Target)
			continue
		}
		var rrs []dns.RR
		switch q.Qtype {
		case dns.TypeA:
			rrs = n.a
		case dns.TypeAAAA:
			rrs = n.aaaa
		case dns.TypeCNAME:
			if n.cname != nil {
				rrs = []dns.RR{n.cname}
			}
		}
		for _, rr := range rrs {
			resp.Answer = append(resp.Answer, dns.Copy(rr))
		}
		if len(rrs) == 0 {
			s.addSOALocked(resp) // NODATA
		}
		return
	}
}

func (s *DNSServer) addSOA(resp *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addSOALocked(resp)
}

func (s *DNSServer) addSOALocked(resp *dns.Msg) {
	resp.Ns = append(resp.Ns, &dns.SOA{
		Hdr:     dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.soaTTL},
		Ns:      "ns.test.",
		Mbox:    "hostmaster.test.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.soaTTL,
	})
}
