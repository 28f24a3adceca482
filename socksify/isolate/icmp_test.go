//go:build linux

package isolate

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// syn builds the SYN a program would send from src to dst.
func syn(src, dst netip.AddrPort, seq uint32, flags byte) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:2], src.Port())
	binary.BigEndian.PutUint16(tcp[2:4], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:8], seq)
	tcp[12] = 5 << 4
	tcp[13] = flags
	if src.Addr().Is4() {
		p := make([]byte, 20, 40)
		ipv4Header(p, syscall.IPPROTO_TCP, src.Addr(), dst.Addr(), 40)
		return append(p, tcp...)
	}
	p := make([]byte, 40, 60)
	ipv6Header(p, syscall.IPPROTO_TCP, src.Addr(), dst.Addr(), 20)
	return append(p, tcp...)
}

func TestParseSYN(t *testing.T) {
	src4, dst4 := netip.MustParseAddrPort("192.0.0.8:40312"), netip.MustParseAddrPort("198.18.0.1:80")
	src6, dst6 := netip.MustParseAddrPort("[fd00:5eed:0:1::1]:40312"), netip.MustParseAddrPort("[fd00:5eed::1]:443")
	for _, c := range []struct {
		name string
		pkt  []byte
		ok   bool
		src  netip.AddrPort
	}{
		{"ipv4 SYN", syn(src4, dst4, 0xdeadbeef, 0x02), true, src4},
		{"ipv6 SYN", syn(src6, dst6, 0xdeadbeef, 0x02), true, src6},
		{"SYN-ACK", syn(src4, dst4, 1, 0x12), false, src4},
		{"ACK", syn(src6, dst6, 1, 0x10), false, src6},
		{"short", syn(src4, dst4, 1, 0x02)[:30], false, src4},
		{"empty", nil, false, src4},
	} {
		k, seq, ok := parseSYN(c.pkt)
		if ok != c.ok {
			t.Errorf("%s: ok %v", c.name, ok)
			continue
		}
		if ok && (k.src != c.src || seq != 0xdeadbeef) {
			t.Errorf("%s: %v seq %#x", c.name, k, seq)
		}
	}
	udp := syn(src4, dst4, 1, 0x02)
	udp[9] = syscall.IPPROTO_UDP
	if _, _, ok := parseSYN(udp); ok {
		t.Error("a UDP packet taken for a SYN")
	}
}

func FuzzParseSYN(f *testing.F) {
	f.Add(syn(netip.MustParseAddrPort("192.0.0.8:1"), netip.MustParseAddrPort("198.18.0.1:80"), 7, 0x02))
	f.Add(syn(netip.MustParseAddrPort("[fd00:5eed:0:1::1]:1"), netip.MustParseAddrPort("[fd00:5eed::1]:80"), 7, 0x02))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, _, ok := parseSYN(b)
		if ok && (!k.src.IsValid() || !k.dst.IsValid() || k.src.Addr().Is4() != k.dst.Addr().Is4()) {
			t.Fatalf("ok with %v", k)
		}
	})
}

// The ICMP errors are well formed (checksums, lengths) and quote the
// SYN as the program's kernel needs: its addresses, ports and sequence
// number.
func TestUnreachable(t *testing.T) {
	k4 := synKey{netip.MustParseAddrPort("192.0.0.8:40312"), netip.MustParseAddrPort("198.18.0.1:80")}
	typ, code, ok := icmpCode(false, syscall.EHOSTUNREACH)
	if !ok || typ != 3 || code != 1 {
		t.Fatalf("icmpCode(v4, EHOSTUNREACH) = %d %d %v", typ, code, ok)
	}
	p := unreachable(k4, 0x01020304, typ, code)
	ip := header.IPv4(p)
	if !ip.IsValid(len(p)) || !ip.IsChecksumValid() || ip.TransportProtocol() != header.ICMPv4ProtocolNumber {
		t.Fatalf("IPv4 header not valid: % x", p[:20])
	}
	if ip.SourceAddress() != tcpip.AddrFrom4(k4.dst.Addr().As4()) || ip.DestinationAddress() != tcpip.AddrFrom4(k4.src.Addr().As4()) {
		t.Errorf("addresses %v -> %v", ip.SourceAddress(), ip.DestinationAddress())
	}
	icmp := header.ICMPv4(ip.Payload())
	if checksum.Checksum(icmp, 0) != 0xffff || icmp.Type() != header.ICMPv4DstUnreachable || icmp.Code() != header.ICMPv4HostUnreachable {
		t.Errorf("ICMP header: % x", icmp[:8])
	}
	inner := header.IPv4(icmp[8:])
	if !inner.IsChecksumValid() || inner.SourceAddress() != ip.DestinationAddress() || inner.TransportProtocol() != header.TCPProtocolNumber {
		t.Errorf("quoted IPv4 header: % x", icmp[8:28])
	}
	if q := icmp[28:]; binary.BigEndian.Uint16(q[0:2]) != 40312 || binary.BigEndian.Uint16(q[2:4]) != 80 || binary.BigEndian.Uint32(q[4:8]) != 0x01020304 {
		t.Errorf("quoted TCP header: % x", q)
	}

	k6 := synKey{netip.MustParseAddrPort("[fd00:5eed:0:1::1]:40312"), netip.MustParseAddrPort("[fd00:5eed::1]:443")}
	for errno, want := range map[syscall.Errno]byte{syscall.ENETUNREACH: 0, syscall.EACCES: 1, syscall.EHOSTUNREACH: 3} {
		typ, code, ok := icmpCode(true, errno)
		if !ok || typ != 1 || code != want {
			t.Errorf("icmpCode(v6, %v) = %d %d %v", errno, typ, code, ok)
		}
	}
	typ, code, _ = icmpCode(true, syscall.EACCES)
	p = unreachable(k6, 0xa0b0c0d0, typ, code)
	ip6 := header.IPv6(p)
	if !ip6.IsValid(len(p)) || ip6.TransportProtocol() != header.ICMPv6ProtocolNumber || int(ip6.PayloadLength()) != len(p)-40 {
		t.Fatalf("IPv6 header not valid: % x", p[:40])
	}
	icmp6 := header.ICMPv6(ip6.Payload())
	want := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp6, Src: ip6.SourceAddress(), Dst: ip6.DestinationAddress()})
	if icmp6.Checksum() != want || icmp6.Type() != header.ICMPv6DstUnreachable || icmp6.Code() != header.ICMPv6Prohibited {
		t.Errorf("ICMPv6 header: % x (checksum want %#x)", icmp6[:8], want)
	}
	inner6 := header.IPv6(icmp6[8:])
	if inner6.SourceAddress() != ip6.DestinationAddress() || inner6.DestinationAddress() != ip6.SourceAddress() {
		t.Errorf("quoted IPv6 header: % x", icmp6[8:48])
	}
	if q := icmp6[48:]; binary.BigEndian.Uint32(q[4:8]) != 0xa0b0c0d0 {
		t.Errorf("quoted TCP header: % x", q)
	}

	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ETIMEDOUT, syscall.EOPNOTSUPP} {
		if _, _, ok := icmpCode(false, errno); ok {
			t.Errorf("icmpCode(%v): an ICMP form", errno)
		}
	}
}
