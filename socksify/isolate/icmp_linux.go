//go:build linux

package isolate

// Refusing a connection with the gateway's reason.
//
// The stack can only reset a SYN, which the program sees as
// ECONNREFUSED. The program's kernel turns an ICMP destination
// unreachable that quotes its SYN into the matching connect error
// (Linux aborts a connection in SYN-SENT on any ICMP error, RFC 1122
// 4.2.3.9 notwithstanding), so for the reasons that have an ICMP code the
// SYN is answered with one, written to the TUN device next to the
// stack's own packets:
//
//	errno         IPv4 (type 3) code              IPv6 (type 1) code
//	ENETUNREACH   0 net unreachable               0 no route
//	EHOSTUNREACH  1 host unreachable              3 address unreachable
//	EACCES        13 administratively prohibited  1 administratively prohibited
//	              (Linux reports EHOSTUNREACH)
//
// The quoted SYN must carry the program's initial sequence number, or the
// kernel ignores the message as out of window; the stack does not hand
// the SYN out, so synTap notes the sequence number of every SYN on its
// way in. ETIMEDOUT has no ICMP form: that SYN is left unanswered (see
// netstack.hold), as a silent host would leave it.

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// A synKey is a connection as the program's SYN names it.
type synKey struct{ src, dst netip.AddrPort }

// maxSYNs bounds the SYNs noted and not yet answered; past it the table
// starts afresh (an ICMP answer then falls back to a reset).
const maxSYNs = 4096

// A synTap is the link endpoint between the TUN device and the stack; it
// notes the initial sequence number of every SYN the program sends.
type synTap struct {
	nested.Endpoint
	mu   sync.Mutex
	isn  map[synKey]uint32
	hold int // SYNs held unanswered (netstack.hold); guarded by mu
}

func newSYNTap(child stack.LinkEndpoint) *synTap {
	t := &synTap{isn: map[synKey]uint32{}}
	t.Init(child, t)
	return t
}

// DeliverNetworkPacket notes a SYN's sequence number and passes every
// packet on to the stack.
func (t *synTap) DeliverNetworkPacket(protocol tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if b, ok := pkt.Data().PullUp(min(pkt.Data().Size(), 80)); ok {
		if k, seq, ok := parseSYN(b); ok {
			t.mu.Lock()
			if len(t.isn) >= maxSYNs {
				clear(t.isn)
			}
			t.isn[k] = seq
			t.mu.Unlock()
		}
	}
	t.Endpoint.DeliverNetworkPacket(protocol, pkt)
}

// take returns and forgets the sequence number of k's SYN.
func (t *synTap) take(k synKey) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq, ok := t.isn[k]
	delete(t.isn, k)
	return seq, ok
}

// forget drops k's SYN.
func (t *synTap) forget(k synKey) {
	t.mu.Lock()
	delete(t.isn, k)
	t.mu.Unlock()
}

// parseSYN recognises an IPv4 or IPv6 packet carrying a TCP SYN (without
// ACK) and returns its connection and sequence number. IPv6 extension
// headers are not followed: a program's SYN has none.
func parseSYN(b []byte) (synKey, uint32, bool) {
	if len(b) < 1 {
		return synKey{}, 0, false
	}
	var src, dst netip.Addr
	var tcp []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return synKey{}, 0, false
		}
		ihl := int(b[0]&0x0f) * 4
		frag := binary.BigEndian.Uint16(b[6:8]) & 0x1fff
		if ihl < 20 || len(b) < ihl+20 || b[9] != unix.IPPROTO_TCP || frag != 0 {
			return synKey{}, 0, false
		}
		src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		tcp = b[ihl:]
	case 6:
		if len(b) < 60 || b[6] != unix.IPPROTO_TCP {
			return synKey{}, 0, false
		}
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		tcp = b[40:]
	default:
		return synKey{}, 0, false
	}
	const syn, ack = 0x02, 0x10
	if tcp[13]&(syn|ack) != syn {
		return synKey{}, 0, false
	}
	k := synKey{
		src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:2])),
		dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:4])),
	}
	return k, binary.BigEndian.Uint32(tcp[4:8]), true
}

// icmpCode returns the ICMP type and code that make the program's
// kernel report errno for a connection of family v6, or ok false if
// there is none.
func icmpCode(v6 bool, errno syscall.Errno) (typ, code byte, ok bool) {
	switch {
	case !v6 && errno == syscall.ENETUNREACH:
		return 3, 0, true
	case !v6 && errno == syscall.EHOSTUNREACH:
		return 3, 1, true
	case !v6 && errno == syscall.EACCES:
		return 3, 13, true
	case v6 && errno == syscall.ENETUNREACH:
		return 1, 0, true
	case v6 && errno == syscall.EHOSTUNREACH:
		return 1, 3, true
	case v6 && errno == syscall.EACCES:
		return 1, 1, true
	}
	return 0, 0, false
}

// unreachable builds an ICMP or ICMPv6 destination unreachable (typ,
// code) for the SYN of k with sequence number isn, sent from k's
// destination to its source.
func unreachable(k synKey, isn uint32, typ, code byte) []byte {
	var quote [8]byte // the first 8 bytes of the SYN's TCP header
	binary.BigEndian.PutUint16(quote[0:2], k.src.Port())
	binary.BigEndian.PutUint16(quote[2:4], k.dst.Port())
	binary.BigEndian.PutUint32(quote[4:8], isn)
	src, dst := k.dst.Addr(), k.src.Addr()
	if src.Is4() {
		p := make([]byte, 20+8+20+8)
		ipv4Header(p[:20], unix.IPPROTO_ICMP, src, dst, len(p))
		icmp := p[20:]
		icmp[0], icmp[1] = typ, code
		ipv4Header(icmp[8:28], unix.IPPROTO_TCP, dst, src, 20+20) // the SYN as sent, without options
		copy(icmp[28:], quote[:])
		binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, 0))
		return p
	}
	p := make([]byte, 40+8+40+8)
	ipv6Header(p[:40], unix.IPPROTO_ICMPV6, src, dst, len(p)-40)
	icmp := p[40:]
	icmp[0], icmp[1] = typ, code
	ipv6Header(icmp[8:48], unix.IPPROTO_TCP, dst, src, 20)
	copy(icmp[48:], quote[:])
	// The checksum covers a pseudo-header (RFC 8200 8.1).
	var pseudo [40]byte
	s16, d16 := src.As16(), dst.As16()
	copy(pseudo[0:16], s16[:])
	copy(pseudo[16:32], d16[:])
	binary.BigEndian.PutUint32(pseudo[32:36], uint32(len(icmp)))
	pseudo[39] = unix.IPPROTO_ICMPV6
	sum := checksum.Checksum(pseudo[:], 0)
	binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, sum))
	return p
}

func ipv4Header(b []byte, proto byte, src, dst netip.Addr, total int) {
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(total))
	b[8] = 64 // TTL
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:12], ^checksum.Checksum(b[:20], 0))
}

func ipv6Header(b []byte, next byte, src, dst netip.Addr, payload int) {
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], uint16(payload))
	b[6] = next
	b[7] = 64 // hop limit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
}
