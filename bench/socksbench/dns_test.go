package main

import (
	"testing"

	"github.com/miekg/dns"
)

func TestDNSServerAnswers(t *testing.T) {
	d, err := startDNSServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	addr := d.udp.PacketConn.LocalAddr().String()
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, err := dns.Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
		}
		return r
	}

	r := ask("c1-0.Bench.Test.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		t.Fatalf("A: %v", r)
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok || !a.A.Equal([]byte{127, 0, 0, 1}) || a.Hdr.Ttl != dnsTTL {
		t.Fatalf("A answer: %v", r.Answer[0])
	}

	r = ask("warm.bench.test.", dns.TypeAAAA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Fatalf("AAAA: want NODATA with SOA, got %v", r)
	}
	if soa, ok := r.Ns[0].(*dns.SOA); !ok || soa.Minttl != dnsTTL || soa.Hdr.Ttl != dnsTTL {
		t.Fatalf("AAAA authority: %v", r.Ns[0])
	}

	if r = ask("example.com.", dns.TypeA); r.Rcode != dns.RcodeRefused {
		t.Fatalf("outside the zone: want REFUSED, got %v", r)
	}
	if c := d.counts(); c != (dnsCounts{a: 1, aaaa: 1, other: 1}) {
		t.Fatalf("counts %+v", c)
	}
}

func TestTargetSpecRoundTrip(t *testing.T) {
	spec := "name=socks6d,addr=127.0.0.1:1080,pid=7+8,resolver=own"
	tg, err := parseTarget(spec)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Resolver != "own" || tg.spec() != spec {
		t.Fatalf("spec() = %q, Resolver %q", tg.spec(), tg.Resolver)
	}
}
