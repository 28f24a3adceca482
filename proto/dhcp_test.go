package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func TestGatewayEntries(t *testing.T) {
	v4 := []GatewayEntry{
		{Priority: 10, Addr: netip.MustParseAddr("192.0.2.1"), Port: 1080},
		{Priority: 20, Addr: netip.MustParseAddr("192.0.2.1"), Port: 1443, ALPN: []string{"socks6", "socks5"}},
	}
	b, err := AppendGatewayEntries(nil, v4, false)
	if err != nil {
		t.Fatal(err)
	}
	// Priority, port, ALPN length, IDs, address: the draft's figure.
	want := "000a" + "0438" + "00" + "c0000201" +
		"0014" + "05a3" + "0e" + "06736f636b7336" + "06736f636b7335" + "c0000201"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoded %s, want %s", got, want)
	}
	got, err := ParseGatewayEntries(b, false)
	if err != nil || !reflect.DeepEqual(got, v4) {
		t.Fatalf("parsed %+v, %v; want %+v", got, err, v4)
	}
	if s := got[1].String(); s != "socks6s://192.0.2.1:1443 priority 20 alpn socks6,socks5" {
		t.Errorf("String() = %q", s)
	}
	if s := got[0].String(); s != "socks6://192.0.2.1:1080 priority 10" {
		t.Errorf("String() = %q", s)
	}

	v6 := []GatewayEntry{{Priority: 1, Addr: netip.MustParseAddr("2001:db8::1"), Port: 1080}}
	vb, err := AppendDHCPv6VendorGateways(nil, DHCPv6Enterprise, v6)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(vb); got != "00007ed9"+"0001"+"0015"+"0001"+"0438"+"00"+"20010db8000000000000000000000001" {
		t.Fatalf("vendor option %s", got)
	}
	got6, err := ParseDHCPv6VendorGateways(vb, DHCPv6Enterprise)
	if err != nil || !reflect.DeepEqual(got6, v6) {
		t.Fatalf("parsed %+v, %v", got6, err)
	}
	if _, err := ParseDHCPv6VendorGateways(vb, 9); !errors.Is(err, ErrNoGatewaySubOption) {
		t.Errorf("another enterprise: %v", err)
	}
	if _, err := AppendGatewayEntries(nil, v6, false); !errors.Is(err, ErrMalformed) {
		t.Errorf("IPv6 entry in DHCPv4: %v", err)
	}
	if _, err := AppendGatewayEntries(nil, v4, true); !errors.Is(err, ErrMalformed) {
		t.Errorf("IPv4 entry in DHCPv6: %v", err)
	}
}

// TestGatewayEntriesMalformed: another site's option 224, or a broken
// one, is refused as a whole.
func TestGatewayEntriesMalformed(t *testing.T) {
	for _, tc := range []struct{ name, hex string }{
		{"empty", ""},
		{"cut_in_header", "000a04"},
		{"cut_in_address", "000a043800c00002"},
		{"trailing_byte", "000a043800c000020101"},
		{"alpn_overruns", "000a043803" + "05736f636b7336" + "c0000201"},
		{"alpn_zero_length", "000a04380100c0000201"},
		{"port_zero", "000a000000c0000201"},
		{"unspecified", "000a04380000000000"},
		{"multicast", "000a043800e0000001"},
		{"a_hostname", "7777772e6578616d706c652e636f6d"},
	} {
		b, _ := hex.DecodeString(tc.hex)
		if got, err := ParseGatewayEntries(b, false); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %+v, %v; want ErrMalformed", tc.name, got, err)
		}
	}
}

func FuzzParseGatewayEntries(f *testing.F) {
	f.Add([]byte{0, 10, 4, 56, 0, 192, 0, 2, 1}, false)
	f.Add(bytes.Repeat([]byte{0, 1}, 12), true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		es, err := ParseGatewayEntries(b, v6)
		if err != nil {
			return
		}
		// What parses re-encodes to the same bytes.
		out, err := AppendGatewayEntries(nil, es, v6)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoded % x, %v; want % x", out, err, b)
		}
	})
}

func FuzzParseDHCPv6VendorGateways(f *testing.F) {
	f.Add([]byte{0, 0, 0x7e, 0xd9, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseDHCPv6VendorGateways(b, DHCPv6Enterprise)
	})
}
