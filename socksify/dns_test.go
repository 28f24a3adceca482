package socksify

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// query builds a DNS query: ID, flags, one question.
func query(id, flags uint16, name string, qtype, qclass uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = append(b, 0, 1, 0, 0, 0, 0, 0, 0)
	b, _ = appendDNSName(b, name)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, qclass)
}

// parsedAnswer is what a test checks of a response.
type parsedAnswer struct {
	id      uint16
	flags   uint16
	rcode   int
	qd, an  int
	rrs     [][]byte // rdata
	ttls    []uint32
	rrTypes []uint16
}

func parseAnswer(t *testing.T, b []byte) parsedAnswer {
	t.Helper()
	if len(b) < dnsHeaderLen {
		t.Fatalf("response of %d bytes", len(b))
	}
	p := parsedAnswer{
		id:    binary.BigEndian.Uint16(b),
		flags: binary.BigEndian.Uint16(b[2:]),
		qd:    int(binary.BigEndian.Uint16(b[4:])),
		an:    int(binary.BigEndian.Uint16(b[6:])),
	}
	p.rcode = int(p.flags & 0xf)
	off := dnsHeaderLen
	for range p.qd {
		_, end, ok := parseDNSName(b, off)
		if !ok {
			t.Fatalf("bad question name in % x", b)
		}
		off = end + 4
	}
	for range p.an {
		if b[off] != 0xc0 || b[off+1] != dnsHeaderLen {
			t.Fatalf("answer name is not a pointer to the question: % x", b[off:])
		}
		off += 2
		p.rrTypes = append(p.rrTypes, binary.BigEndian.Uint16(b[off:]))
		if c := binary.BigEndian.Uint16(b[off+2:]); c != dnsClassIN {
			t.Errorf("answer class %d", c)
		}
		p.ttls = append(p.ttls, binary.BigEndian.Uint32(b[off+4:]))
		l := int(binary.BigEndian.Uint16(b[off+8:]))
		off += 10
		p.rrs = append(p.rrs, b[off:off+l])
		off += l
	}
	if off != len(b) {
		t.Errorf("%d trailing bytes", len(b)-off)
	}
	return p
}

// later moves ft's clock d ahead.
func later(ft *fakeTable, d time.Duration) {
	now := ft.now()
	ft.now = func() time.Time { return now.Add(d) }
}

func TestAnswerDNS(t *testing.T) {
	ft := newFakeTable(0)
	ask := func(t *testing.T, msg []byte) parsedAnswer {
		t.Helper()
		resp, _, ok := answerDNS(msg, ft)
		if !ok {
			t.Fatalf("no response to % x", msg)
		}
		return parseAnswer(t, resp)
	}

	t.Run("A", func(t *testing.T) {
		a := ask(t, query(0x1234, 0x0100, "Example.TEST", dnsTypeA, dnsClassIN))
		if a.id != 0x1234 || a.rcode != dnsRcodeNoError || a.an != 1 || a.qd != 1 {
			t.Fatalf("%+v", a)
		}
		if a.flags&0x8000 == 0 || a.flags&0x0100 == 0 || a.flags&0x0080 == 0 {
			t.Errorf("flags %#04x: want QR, RD echoed, RA", a.flags)
		}
		ip := netip.AddrFrom4([4]byte(a.rrs[0]))
		if !fakeNet4.Contains(ip) || a.ttls[0] != fakeTTL || a.rrTypes[0] != dnsTypeA {
			t.Errorf("answer %v ttl %d type %d", ip, a.ttls[0], a.rrTypes[0])
		}
		if name, ok := ft.name(ip); !ok || name != "example.test" {
			t.Errorf("table: %v owned by %q, %v", ip, name, ok)
		}
		// The same name, another case: the same address.
		b := ask(t, query(1, 0, "example.test.", dnsTypeA, dnsClassIN))
		if !bytes.Equal(b.rrs[0], a.rrs[0]) {
			t.Errorf("second answer %v, first %v", b.rrs[0], a.rrs[0])
		}
		if b.flags&0x0100 != 0 {
			t.Error("RD set in the answer to a query without it")
		}
	})
	t.Run("table full of names in use", func(t *testing.T) {
		small := newFakeTable(1)
		if resp, _, ok := answerDNS(query(8, 0, "first.test", dnsTypeA, dnsClassIN), small); !ok || parseAnswer(t, resp).an != 1 {
			t.Fatal("no address for the first name")
		}
		resp, _, ok := answerDNS(query(9, 0, "second.test", dnsTypeA, dnsClassIN), small)
		if !ok {
			t.Fatal("no response")
		}
		if a := parseAnswer(t, resp); a.rcode != dnsRcodeServFail || a.an != 0 {
			t.Errorf("second name while the first is in use: %+v, want SERVFAIL", a)
		}
		later(small, fakeReuseAfter)
		resp, _, _ = answerDNS(query(10, 0, "second.test", dnsTypeA, dnsClassIN), small)
		if a := parseAnswer(t, resp); a.rcode != dnsRcodeNoError || a.an != 1 {
			t.Errorf("second name once the first went unused: %+v", a)
		}
	})
	t.Run("question echoed with its case", func(t *testing.T) {
		q := query(7, 0, "MiXeD.test", dnsTypeA, dnsClassIN)
		resp, _, _ := answerDNS(q, ft)
		if !bytes.Equal(resp[dnsHeaderLen:len(q)], q[dnsHeaderLen:]) {
			t.Errorf("question % x, echoed % x", q[dnsHeaderLen:], resp[dnsHeaderLen:len(q)])
		}
	})
	t.Run("one family per lookup", func(t *testing.T) {
		// A then AAAA at once (glibc's and musl's order): only the A
		// query gets an address.
		a := ask(t, query(2, 0, "pair.test", dnsTypeA, dnsClassIN))
		if aaaa := ask(t, query(3, 0, "pair.test", dnsTypeAAAA, dnsClassIN)); aaaa.rcode != dnsRcodeNoError || aaaa.an != 0 {
			t.Fatalf("AAAA right after A: %+v, want NOERROR and no data", aaaa)
		}
		// AAAA alone, pairWindow after the A: an address, the same
		// index as the A's.
		later(ft, pairWindow)
		aaaa := ask(t, query(3, 0, "pair.test", dnsTypeAAAA, dnsClassIN))
		if aaaa.an != 1 {
			t.Fatalf("AAAA alone: %+v", aaaa)
		}
		ip6 := netip.AddrFrom16([16]byte(aaaa.rrs[0]))
		if !fakeNet6.Contains(ip6) || aaaa.rrTypes[0] != dnsTypeAAAA {
			t.Fatalf("AAAA %v", ip6)
		}
		i4, _ := fakeIndex(netip.AddrFrom4([4]byte(a.rrs[0])))
		i6, _ := fakeIndex(ip6)
		if i4 != i6 {
			t.Errorf("A index %d, AAAA index %d", i4, i6)
		}
		// AAAA first (Go's resolver may race): both get addresses.
		if aaaa := ask(t, query(4, 0, "race.test", dnsTypeAAAA, dnsClassIN)); aaaa.an != 1 {
			t.Errorf("AAAA first: %+v", aaaa)
		}
		if a := ask(t, query(5, 0, "race.test", dnsTypeA, dnsClassIN)); a.an != 1 {
			t.Errorf("A after AAAA: %+v", a)
		}
		// An IPv6-only gateway prefers AAAA: an A right after it gets
		// no data.
		ft6 := newFakeTable(0)
		ft6.prefer6 = true
		ask6 := func(msg []byte) parsedAnswer {
			resp, _, _ := answerDNS(msg, ft6)
			return parseAnswer(t, resp)
		}
		if r := ask6(query(6, 0, "six.test", dnsTypeAAAA, dnsClassIN)); r.an != 1 {
			t.Errorf("prefer6 AAAA: %+v", r)
		}
		if r := ask6(query(7, 0, "six.test", dnsTypeA, dnsClassIN)); r.an != 0 || r.rcode != dnsRcodeNoError {
			t.Errorf("prefer6 A right after AAAA: %+v, want no data", r)
		}
	})
	t.Run("PTR", func(t *testing.T) {
		a := ask(t, query(4, 0, "ptr.test", dnsTypeA, dnsClassIN))
		ip := a.rrs[0]
		name := "" + itoa(ip[3]) + "." + itoa(ip[2]) + "." + itoa(ip[1]) + "." + itoa(ip[0]) + ".in-addr.arpa"
		p := ask(t, query(5, 0, name, dnsTypePTR, dnsClassIN))
		want, _ := appendDNSName(nil, "ptr.test")
		if p.rcode != dnsRcodeNoError || p.an != 1 || !bytes.Equal(p.rrs[0], want) {
			t.Errorf("PTR %s: %+v", name, p)
		}
		later(ft, pairWindow)
		aaaa := ask(t, query(6, 0, "ptr.test", dnsTypeAAAA, dnsClassIN))
		p6 := ask(t, query(7, 0, ip6Arpa(netip.AddrFrom16([16]byte(aaaa.rrs[0]))), dnsTypePTR, dnsClassIN))
		if p6.an != 1 || !bytes.Equal(p6.rrs[0], want) {
			t.Errorf("PTR ip6.arpa: %+v", p6)
		}
		for _, n := range []string{"1.0.0.127.in-addr.arpa", "250.255.19.198.in-addr.arpa", "1.2.3.in-addr.arpa", "01.0.18.198.in-addr.arpa"} {
			if r := ask(t, query(8, 0, n, dnsTypePTR, dnsClassIN)); r.rcode != dnsRcodeNXDomain || r.an != 0 {
				t.Errorf("PTR %s: rcode %d, %d answers; want NXDOMAIN", n, r.rcode, r.an)
			}
		}
	})
	t.Run("empty answers", func(t *testing.T) {
		for _, qt := range []uint16{dnsTypeHTTPS, dnsTypeSVCB, dnsTypeMX, dnsTypeTXT, dnsTypeNS, dnsTypeANY} {
			r := ask(t, query(9, 0, "nodata.test", qt, dnsClassIN))
			if r.rcode != dnsRcodeNoError || r.an != 0 || r.qd != 1 {
				t.Errorf("type %d: rcode %d, %d answers; want NOERROR, none", qt, r.rcode, r.an)
			}
		}
		if r := ask(t, query(9, 0, "1.0.0.10.in-addr.arpa", dnsTypeA, dnsClassIN)); r.an != 0 {
			t.Errorf("A for a reverse name: %d answers", r.an)
		}
		if r := ask(t, query(9, 0, "", dnsTypeA, dnsClassIN)); r.rcode != dnsRcodeNoError || r.an != 0 {
			t.Errorf("A for the root: %+v", r)
		}
	})
	t.Run("localhost", func(t *testing.T) {
		for _, n := range []string{"localhost", "app.localhost"} {
			a := ask(t, query(10, 0, n, dnsTypeA, dnsClassIN))
			aaaa := ask(t, query(11, 0, n, dnsTypeAAAA, dnsClassIN))
			if !bytes.Equal(a.rrs[0], []byte{127, 0, 0, 1}) || netip.AddrFrom16([16]byte(aaaa.rrs[0])) != netip.IPv6Loopback() {
				t.Errorf("%s: A % x AAAA % x", n, a.rrs[0], aaaa.rrs[0])
			}
		}
	})
	t.Run("class ANY", func(t *testing.T) {
		if r := ask(t, query(12, 0, "any.test", dnsTypeA, dnsClassANY)); r.rcode != dnsRcodeNoError || r.an != 1 {
			t.Errorf("%+v", r)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name  string
			msg   []byte
			rcode int
			qd    int
		}{
			{"class CH", query(13, 0, "version.bind", 16, 3), dnsRcodeRefused, 1},
			{"opcode STATUS", query(14, 2<<11, "x.test", dnsTypeA, dnsClassIN), dnsRcodeNotImp, 0},
			{"two questions", func() []byte { b := query(15, 0, "x.test", dnsTypeA, dnsClassIN); b[5] = 2; return b }(), dnsRcodeFormErr, 0},
			{"no question", func() []byte { b := query(16, 0, "x.test", dnsTypeA, dnsClassIN); b[5] = 0; return b[:dnsHeaderLen] }(), dnsRcodeFormErr, 0},
			{"compression pointer", append([]byte{0, 17, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12}, 0, 1, 0, 1), dnsRcodeFormErr, 0},
			{"truncated question", query(18, 0, "x.test", dnsTypeA, dnsClassIN)[:dnsHeaderLen+5], dnsRcodeFormErr, 0},
			{"no type", query(19, 0, "x.test", dnsTypeA, dnsClassIN)[:dnsHeaderLen+8], dnsRcodeFormErr, 0},
			{"dot in a label", append([]byte{0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', '.', 'b', 0}, 0, 1, 0, 1), dnsRcodeFormErr, 0},
			{"space in a label", append([]byte{0, 21, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', ' ', 'b', 0}, 0, 1, 0, 1), dnsRcodeFormErr, 0},
		}
		for _, tt := range tests {
			r := ask(t, tt.msg)
			if r.rcode != tt.rcode || r.an != 0 || r.qd != tt.qd {
				t.Errorf("%s: rcode %d qd %d an %d; want rcode %d qd %d", tt.name, r.rcode, r.qd, r.an, tt.rcode, tt.qd)
			}
			if r.id != binary.BigEndian.Uint16(tt.msg) {
				t.Errorf("%s: ID %d", tt.name, r.id)
			}
		}
	})
	t.Run("no response", func(t *testing.T) {
		resp := query(22, 0x8180, "x.test", dnsTypeA, dnsClassIN) // QR set
		for _, msg := range [][]byte{nil, {1, 2, 3}, resp} {
			if _, _, ok := answerDNS(msg, ft); ok {
				t.Errorf("answered % x", msg)
			}
		}
	})
	t.Run("long names", func(t *testing.T) {
		label := string(bytes.Repeat([]byte{'a'}, 63))
		name := label + "." + label + "." + label + "." + label[:61] // 253 bytes
		if r := ask(t, query(23, 0, name, dnsTypeA, dnsClassIN)); r.an != 1 {
			t.Errorf("253-byte name: %+v", r)
		}
		b := append([]byte{0, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64}, bytes.Repeat([]byte{'a'}, 64)...)
		b = append(b, 0, 0, 1, 0, 1)
		if r := ask(t, b); r.rcode != dnsRcodeFormErr {
			t.Errorf("64-byte label: rcode %d", r.rcode)
		}
	})
}

func itoa(b byte) string {
	return string(appendUint(nil, uint64(b)))
}

func appendUint(b []byte, v uint64) []byte {
	if v >= 10 {
		b = appendUint(b, v/10)
	}
	return append(b, byte('0'+v%10))
}

func ip6Arpa(ip netip.Addr) string {
	const hex = "0123456789abcdef"
	a := ip.As16()
	var b []byte
	for i := 15; i >= 0; i-- {
		b = append(b, hex[a[i]&0xf], '.', hex[a[i]>>4], '.')
	}
	return string(b) + "ip6.arpa"
}

func TestArpaAddr(t *testing.T) {
	tests := []struct {
		name string
		want string // "" for none
	}{
		{"1.0.18.198.in-addr.arpa", "198.18.0.1"},
		{"255.255.255.255.in-addr.arpa", "255.255.255.255"},
		{"256.0.0.1.in-addr.arpa", ""},
		{"1.0.0.in-addr.arpa", ""},
		{"x.0.0.1.in-addr.arpa", ""},
		{ip6Arpa(netip.MustParseAddr("fd00:5eed::1:2")), "fd00:5eed::1:2"},
		{"1.0.ip6.arpa", ""},
		{"example.test", ""},
	}
	for _, tt := range tests {
		got, ok := arpaAddr(tt.name)
		if tt.want == "" {
			if ok {
				t.Errorf("arpaAddr(%q) = %v, want none", tt.name, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tt.want) {
			t.Errorf("arpaAddr(%q) = %v, %v; want %s", tt.name, got, ok, tt.want)
		}
	}
}

// FuzzAnswerDNS: any message gets no response or a well-formed one with
// the query's ID.
func FuzzAnswerDNS(f *testing.F) {
	f.Add(query(1, 0x0100, "example.test", dnsTypeA, dnsClassIN))
	f.Add(query(2, 0, "example.test", dnsTypeAAAA, dnsClassIN))
	f.Add(query(3, 0, "1.0.18.198.in-addr.arpa", dnsTypePTR, dnsClassIN))
	f.Add(query(4, 0, "x.test", dnsTypeHTTPS, dnsClassIN))
	f.Add([]byte{0, 17, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	ft := newFakeTable(16)
	f.Fuzz(func(t *testing.T, msg []byte) {
		resp, _, ok := answerDNS(msg, ft)
		if !ok {
			return
		}
		parseAnswer(t, resp)
		if binary.BigEndian.Uint16(resp) != binary.BigEndian.Uint16(msg) {
			t.Errorf("ID changed")
		}
	})
}
