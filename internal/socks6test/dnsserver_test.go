package socks6test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// ask sends one query for name and qtype over network ("udp", "tcp" or
// "tcp-tls") and returns the reply.
func ask(t *testing.T, c *dns.Client, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query for %s: %v", c.Net, name, err)
	}
	return resp
}

func TestDNSServer(t *testing.T) {
	CheckGoroutines(t, 5)
	s := NewDNSServer(t)
	s.SetA("a.test", 60, "192.0.2.1", "192.0.2.2")
	s.SetAAAA("A.Test.", 60, "2001:db8::1")
	s.SetCNAME("alias.test", "a.test", 30)
	s.SetA("empty.test", 60)
	s.SetRcode("fail.test", dns.RcodeServerFailure)
	s.SetTruncate("big.test", true)
	s.SetA("big.test", 60, "192.0.2.3")
	s.SetSOATTL(7)

	udp := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	tcp := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	for _, c := range []*dns.Client{udp, tcp} {
		t.Run(c.Net, func(t *testing.T) {
			if r := ask(t, c, s.Addr, "a.test", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 || !r.Authoritative || r.IsEdns0() == nil {
				t.Errorf("A: %v", r)
			}
			if r := ask(t, c, s.Addr, "a.test", dns.TypeAAAA); len(r.Answer) != 1 {
				t.Errorf("AAAA: %v", r)
			}
			if r := ask(t, c, s.Addr, "alias.test", dns.TypeA); len(r.Answer) != 3 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
				t.Errorf("CNAME: %v", r)
			}
			if r := ask(t, c, s.Addr, "empty.test", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
				t.Errorf("NODATA: %v", r)
			}
			r := ask(t, c, s.Addr, "unknown.test", dns.TypeA)
			if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].(*dns.SOA).Minttl != 7 || r.Ns[0].Header().Ttl != 7 {
				t.Errorf("NXDOMAIN: %v", r)
			}
			if r := ask(t, c, s.Addr, "fail.test", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
				t.Errorf("SERVFAIL: %v", r)
			}
			r = ask(t, c, s.Addr, "big.test", dns.TypeA)
			if wantTC := c.Net == "udp"; r.Truncated != wantTC || (len(r.Answer) == 0) != wantTC {
				t.Errorf("truncation over %s: %v", c.Net, r)
			}
		})
	}
	if n := s.Queries("A.TEST", dns.TypeA); n != 2 {
		t.Errorf("Queries(a.test, A) = %d, want 2 (one per transport)", n)
	}
	if n := s.QueriesTotal(); n != 14 {
		t.Errorf("QueriesTotal = %d, want 14", n)
	}
	if q := s.LastQuery("a.test.", dns.TypeA); q == nil || q.IsEdns0() == nil {
		t.Errorf("LastQuery = %v", q)
	}
}

func TestDNSServerDelay(t *testing.T) {
	CheckGoroutines(t, 5)
	s := NewDNSServer(t)
	s.SetA("slow.test", 60, "192.0.2.1")
	s.SetDelay("slow.test", 200*time.Millisecond)
	s.SetA("never.test", 60, "192.0.2.1")
	s.SetDelay("never.test", -1)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	start := time.Now()
	if r := ask(t, c, s.Addr, "slow.test", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("slow: %v", r)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("answered after %v, want at least 200ms", d)
	}
	m := new(dns.Msg)
	m.SetQuestion("never.test.", dns.TypeA)
	c.Timeout = 200 * time.Millisecond
	if _, _, err := c.Exchange(m, s.Addr); err == nil {
		t.Error("never.test answered")
	}
	// Cleanup must not hang on the handler that never answers.
}

func TestDNSServerMangle(t *testing.T) {
	s := NewDNSServer(t)
	s.SetA("m.test", 60, "192.0.2.1")
	s.SetMangle("m.test", func(m *dns.Msg) { m.Question[0].Name = "other.test." })
	r := ask(t, &dns.Client{Net: "tcp", Timeout: 2 * time.Second}, s.Addr, "m.test", dns.TypeA)
	if r.Question[0].Name != "other.test." {
		t.Errorf("mangle not applied: %v", r)
	}
}

func TestDNSServerOn(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewDNSServerOn(t, pc, nil)
	s.SetA("x.test", 60, "192.0.2.1")
	if r := ask(t, &dns.Client{Net: "udp", Timeout: 2 * time.Second}, s.Addr, "x.test", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("reply: %v", r)
	}
}

func TestDNSServerTLS(t *testing.T) {
	CheckGoroutines(t, 5)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	s := NewDNSServer(t)
	s.SetA("tls.test", 60, "192.0.2.1")
	addr := s.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	c := &dns.Client{Net: "tcp-tls", Timeout: 2 * time.Second, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	if r := ask(t, c, addr, "tls.test", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("reply over TLS: %v", r)
	}
}
