package resolver

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func rrA(name string, ttl uint32, ip string) dns.RR {
	return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.ParseIP(ip)}
}

func rrAAAA(name string, ttl uint32, ip string) dns.RR {
	return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.ParseIP(ip)}
}

func rrCNAME(name string, ttl uint32, target string) dns.RR {
	return &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: target}
}

func rrSOA(ttl, minttl uint32) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns: "ns.test.", Mbox: "h.test.", Serial: 1, Minttl: minttl}
}

// reply builds a response to a query for name and qtype.
func reply(name string, qtype uint16, rcode int, answer, ns []dns.RR) (*dns.Msg, *dns.Msg) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(ednsSize, false)
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	m.Rcode = rcode
	m.Answer, m.Ns = answer, ns
	return q, m
}

func TestParseResponse(t *testing.T) {
	type want struct {
		addrs    []string
		ttls     []uint32
		kind     ErrorKind // 0: success or NODATA
		rcode    int
		cacheFor time.Duration
	}
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []dns.RR
		ns     []dns.RR
		maxTTL time.Duration
		negTTL time.Duration
		lame   bool // clear RA
		want   want
	}{
		{
			name: "a", qname: "a.test.", qtype: dns.TypeA,
			answer: []dns.RR{rrA("a.test.", 100, "192.0.2.1"), rrA("A.TEST.", 50, "192.0.2.2"), rrA("a.test.", 100, "192.0.2.1")},
			want:   want{addrs: []string{"192.0.2.1", "192.0.2.2"}, ttls: []uint32{100, 50}, cacheFor: 50 * time.Second},
		},
		{
			name: "aaaa_ignores_other_types_and_owners", qname: "a.test.", qtype: dns.TypeAAAA,
			answer: []dns.RR{rrA("a.test.", 100, "192.0.2.1"), rrAAAA("b.test.", 100, "2001:db8::2"), rrAAAA("a.test.", 100, "2001:db8::1")},
			want:   want{addrs: []string{"2001:db8::1"}, ttls: []uint32{100}, cacheFor: 100 * time.Second},
		},
		{
			name: "cname_chain_out_of_order", qname: "www.test.", qtype: dns.TypeA,
			answer: []dns.RR{rrA("node.test.", 300, "192.0.2.9"), rrCNAME("edge.test.", 20, "Node.Test."), rrCNAME("www.test.", 600, "edge.test.")},
			want:   want{addrs: []string{"192.0.2.9"}, ttls: []uint32{20}, cacheFor: 20 * time.Second},
		},
		{
			name: "cname_loop", qname: "x.test.", qtype: dns.TypeA,
			answer: []dns.RR{rrCNAME("x.test.", 60, "y.test."), rrCNAME("y.test.", 60, "x.test.")},
			want:   want{cacheFor: noSOATTL},
		},
		{
			name: "max_ttl", qname: "a.test.", qtype: dns.TypeA, maxTTL: 30 * time.Second,
			answer: []dns.RR{rrA("a.test.", 86400, "192.0.2.1")},
			want:   want{addrs: []string{"192.0.2.1"}, ttls: []uint32{30}, cacheFor: 30 * time.Second},
		},
		{
			name: "nxdomain_soa_minimum", qname: "nx.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns:   []dns.RR{rrSOA(300, 60)},
			want: want{kind: NotFound, rcode: dns.RcodeNameError, cacheFor: 60 * time.Second},
		},
		{
			name: "nxdomain_soa_ttl", qname: "nx.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns:   []dns.RR{rrSOA(10, 60)},
			want: want{kind: NotFound, rcode: dns.RcodeNameError, cacheFor: 10 * time.Second},
		},
		{
			name: "nxdomain_capped", qname: "nx.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, negTTL: 5 * time.Second,
			ns:   []dns.RR{rrSOA(300, 300)},
			want: want{kind: NotFound, rcode: dns.RcodeNameError, cacheFor: 5 * time.Second},
		},
		{
			name: "nxdomain_not_cached", qname: "nx.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, negTTL: -1,
			ns:   []dns.RR{rrSOA(300, 300)},
			want: want{kind: NotFound, rcode: dns.RcodeNameError},
		},
		{
			name: "nodata_no_soa", qname: "a.test.", qtype: dns.TypeAAAA,
			want: want{cacheFor: noSOATTL},
		},
		{
			name: "nodata_soa", qname: "a.test.", qtype: dns.TypeAAAA,
			ns:   []dns.RR{rrSOA(120, 120)},
			want: want{cacheFor: 120 * time.Second},
		},
		{
			name: "lame_referral", qname: "a.test.", qtype: dns.TypeA, lame: true,
			ns:   []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: "ns.test."}},
			want: want{kind: BadResponse, cacheFor: failureTTL},
		},
		{
			name: "servfail", qname: "a.test.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure,
			want: want{kind: ServerFailure, rcode: dns.RcodeServerFailure, cacheFor: failureTTL},
		},
		{
			name: "refused", qname: "a.test.", qtype: dns.TypeA, rcode: dns.RcodeRefused,
			want: want{kind: ServerFailure, rcode: dns.RcodeRefused, cacheFor: failureTTL},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, m := reply(tt.qname, tt.qtype, tt.rcode, tt.answer, tt.ns)
			if tt.lame {
				m.RecursionAvailable = false
			}
			// Through the wire and back, as from a server.
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			m = new(dns.Msg)
			if err := m.Unpack(b); err != nil {
				t.Fatal(err)
			}
			if err := checkResponse(q, m); err != nil {
				t.Fatalf("checkResponse: %v", err)
			}
			maxTTL, negTTL := cmpOr(tt.maxTTL, time.Hour), cmpOr(tt.negTTL, 5*time.Minute)
			res := parseResponse(q.Question[0], m, maxTTL, negTTL)
			var gotAddrs []string
			var gotTTLs []uint32
			for _, a := range res.answers {
				gotAddrs = append(gotAddrs, a.Addr.String())
				gotTTLs = append(gotTTLs, a.TTL)
			}
			if !slices.Equal(gotAddrs, tt.want.addrs) || !slices.Equal(gotTTLs, tt.want.ttls) {
				t.Errorf("answers %v TTLs %v, want %v %v", gotAddrs, gotTTLs, tt.want.addrs, tt.want.ttls)
			}
			var kind ErrorKind
			var rcode int
			if res.fail != nil {
				kind, rcode = res.fail.Kind, res.fail.Rcode
			}
			if kind != tt.want.kind || rcode != tt.want.rcode {
				t.Errorf("failure %v rcode %d, want %v %d", kind, rcode, tt.want.kind, tt.want.rcode)
			}
			if res.cacheFor != tt.want.cacheFor {
				t.Errorf("cacheFor %v, want %v", res.cacheFor, tt.want.cacheFor)
			}
		})
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func TestCheckResponse(t *testing.T) {
	q, good := reply("a.test.", dns.TypeA, dns.RcodeSuccess, nil, nil)
	if err := checkResponse(q, good); err != nil {
		t.Errorf("good reply: %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(m *dns.Msg)
		want   error
	}{
		{"case_differs", func(m *dns.Msg) { m.Question[0].Name = "A.Test." }, nil},
		{"other_name", func(m *dns.Msg) { m.Question[0].Name = "b.test." }, errQuestionMismatch},
		{"other_type", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }, errQuestionMismatch},
		{"other_class", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, errQuestionMismatch},
		{"no_question", func(m *dns.Msg) { m.Question = nil }, errQuestionMismatch},
		{"refused_no_question", func(m *dns.Msg) { m.Question = nil; m.Rcode = dns.RcodeRefused }, nil},
		{"two_questions", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, errQuestionMismatch},
		{"query_not_response", func(m *dns.Msg) { m.Response = false }, errNotResponse},
		{"notify", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, errNotResponse},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := good.Copy()
			tt.change(m)
			if err := checkResponse(q, m); !errors.Is(err, tt.want) {
				t.Errorf("checkResponse = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzParseResponse feeds arbitrary wire messages through the checks and
// the answer extraction a reply from an upstream goes through.
func FuzzParseResponse(f *testing.F) {
	seeds := []*dns.Msg{}
	_, m := reply("a.test.", dns.TypeA, 0, []dns.RR{rrCNAME("a.test.", 60, "b.test."), rrA("b.test.", 30, "192.0.2.1")}, nil)
	seeds = append(seeds, m)
	_, m = reply("a.test.", dns.TypeAAAA, 0, []dns.RR{rrAAAA("a.test.", 60, "2001:db8::1")}, []dns.RR{rrSOA(1, 2)})
	seeds = append(seeds, m)
	_, m = reply("a.test.", dns.TypeA, dns.RcodeNameError, nil, []dns.RR{rrSOA(300, 60)})
	seeds = append(seeds, m)
	for _, m := range seeds {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return
		}
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			q := new(dns.Msg)
			q.SetQuestion("a.test.", qtype)
			_ = checkResponse(q, m)
			res := parseResponse(q.Question[0], m, time.Hour, 5*time.Minute)
			if res.cacheFor < 0 || res.cacheFor > time.Hour {
				t.Fatalf("cacheFor %v", res.cacheFor)
			}
			if res.fail != nil && len(res.answers) > 0 {
				t.Fatal("failure with answers")
			}
			seen := map[netip.Addr]bool{}
			for _, a := range res.answers {
				if !a.Addr.IsValid() || (qtype == dns.TypeA) != a.Addr.Is4() || a.TTL > 3600 || seen[a.Addr] {
					t.Fatalf("bad answer %+v for %s", a, dns.TypeToString[qtype])
				}
				seen[a.Addr] = true
				if time.Duration(a.TTL)*time.Second < res.cacheFor {
					t.Fatalf("cached for %v, longer than an answer's TTL %d", res.cacheFor, a.TTL)
				}
			}
		}
	})
}
