package proto

import (
	"testing"
)

var benchRequests = []struct {
	name string
	in   string
}{
	{name: "ipv4", in: "05 01 00 01 c0000201 0050"},
	{name: "ipv6", in: "05 01 00 04 20010db8000000000000000000000001 01bb"},
	{name: "fqdn", in: "05 01 00 03 0b 6578616d706c652e6f7267 01bb"},
}

func BenchmarkParseRequest(b *testing.B) {
	for _, bb := range benchRequests {
		b.Run(bb.name, func(b *testing.B) {
			in := mustHex(b, bb.in)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ParseRequest(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	for _, bb := range benchRequests {
		b.Run(bb.name, func(b *testing.B) {
			req, _, err := ParseRequest(mustHex(b, bb.in))
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, req.Addr.EncodedLen()+3)
			b.SetBytes(int64(cap(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := req.AppendBinary(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The hot path of every session allocates nothing: parsing an IP request
// and encoding a reply into a buffer that fits.
func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are not meaningful under -short")
	}
	in := mustHex(t, "05 01 00 04 20010db8000000000000000000000001 01bb")
	in4 := mustHex(t, "05 01 00 01 c0000201 0050")
	udp := mustHex(t, "0000 00 01 c0000201 0035 deadbeef")
	req := Request{Command: CommandConnect, Addr: Addr{IP: ip("2001:db8::1"), Port: 443}}
	rep := Reply{Code: ReplySucceeded, Addr: Addr{IP: ip("192.0.2.1"), Port: 1080}}
	hdr := UDPHeader{Addr: Addr{FQDN: "example.org", Port: 53}}
	buf := make([]byte, 0, MaxUDPHeaderLen)

	tests := []struct {
		name string
		f    func()
	}{
		{name: "ParseRequest_ipv6", f: func() { ParseRequest(in) }},
		{name: "ParseRequest_ipv4", f: func() { ParseRequest(in4) }},
		{name: "ParseUDPHeader_ipv4", f: func() { ParseUDPHeader(udp) }},
		{name: "Request.AppendBinary", f: func() { req.AppendBinary(buf[:0]) }},
		{name: "Reply.AppendBinary", f: func() { rep.AppendBinary(buf[:0]) }},
		{name: "UDPHeader.AppendBinary_fqdn", f: func() { hdr.AppendBinary(buf[:0]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.f); n != 0 {
				t.Errorf("%v allocations per run, want 0", n)
			}
		})
	}
}
