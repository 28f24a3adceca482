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

// The table of SYNs: take returns what note recorded, once; a full
// table makes room by evicting old entries, never recent ones.
func TestSYNTable(t *testing.T) {
	var st synTable
	k := synKey{netip.MustParseAddrPort("192.0.0.8:40312"), netip.MustParseAddrPort("198.18.0.1:80")}
	st.note(k, 7)
	st.note(k, 7) // a retransmission
	if seq, ok := st.take(k); !ok || seq != 7 {
		t.Fatalf("take = %d %v", seq, ok)
	}
	if _, ok := st.take(k); ok {
		t.Fatal("taken twice")
	}
	key := func(i int) synKey {
		return synKey{netip.AddrPortFrom(netip.MustParseAddr("192.0.0.8"), uint16(i)), k.dst}
	}
	for i := range maxSYNs {
		st.note(key(i), uint32(i))
	}
	st.note(key(maxSYNs), 1) // full of recent entries: not noted
	if _, ok := st.take(key(maxSYNs)); ok {
		t.Error("noted beyond the bound")
	}
	if _, ok := st.take(key(5)); !ok {
		t.Error("a recent entry was evicted")
	}
	st.note(key(5), 5) // full again
	st.mu.Lock()
	for kk, n := range st.isn {
		n.at = n.at.Add(-2 * synMaxAge)
		st.isn[kk] = n
	}
	st.mu.Unlock()
	st.note(key(maxSYNs), 9) // evicts the old ones
	if seq, ok := st.take(key(maxSYNs)); !ok || seq != 9 {
		t.Errorf("after eviction: %d %v", seq, ok)
	}
	st.forget(key(1))
	if len(st.isn) != 0 {
		t.Errorf("%d entries left after eviction", len(st.isn))
	}
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
