package proto

import "testing"

// DATAGRAM is the extensions' per-packet path: framing and parsing one
// must not allocate.

func BenchmarkAppendFrameDatagram(b *testing.B) {
	var m Message = Datagram{AssocID: 7, Addr: ap("[2001:db8::53]:53"), Payload: make([]byte, 1200)}
	buf := make([]byte, 0, 1300)
	b.SetBytes(1200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AppendFrame(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFrameDatagram(b *testing.B) {
	in, err := AppendFrame(nil, Datagram{AssocID: 7, Addr: ap("[2001:db8::53]:53"), Payload: make([]byte, 1200)})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		f, _, err := ParseFrame(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseDatagram(f.Value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseExtRequest(b *testing.B) {
	in, err := ExtRequest{ID: 1, Command: CommandConnect, Addr: Addr{FQDN: "example.com", Port: 443},
		Options: Options{FamilyOption(FamilyPreferIPv6), HopLimitOption(8)}}.AppendBinary(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseExtRequest(in); err != nil {
			b.Fatal(err)
		}
	}
}
