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
// kernel ignores the message as out of window; the forwarder does not
// hand the SYN out, so netstack.handleSegment notes it on the way in
// (synTable). ETIMEDOUT has no ICMP form: that SYN is left unanswered
// (see netstack.hold), as a silent host would leave it.

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// A synKey is a connection as the program's SYN names it.
type synKey struct{ src, dst netip.AddrPort }

// A synTable holds the initial sequence numbers of the SYNs that reached
// the TCP forwarder and are not answered yet, and counts the SYNs held
// unanswered (netstack.hold).
type synTable struct {
	mu   sync.Mutex
	isn  map[synKey]synNote
	hold int
}

type synNote struct {
	seq uint32
	at  time.Time
}

// maxSYNs bounds the table; synMaxAge is how old an entry may get before
// it can be evicted to make room (a SYN that the forwarder dropped, or a
// retransmission after the answer, leaves one behind).
const (
	maxSYNs   = 4096
	synMaxAge = time.Minute
)

// note records the sequence number of k's SYN.
func (t *synTable) note(k synKey, seq uint32) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isn == nil {
		t.isn = map[synKey]synNote{}
	}
	if _, ok := t.isn[k]; !ok && len(t.isn) >= maxSYNs {
		for old, n := range t.isn {
			if now.Sub(n.at) > synMaxAge {
				delete(t.isn, old)
			}
		}
		if len(t.isn) >= maxSYNs {
			return // all recent: this SYN, if refused, gets a reset
		}
	}
	t.isn[k] = synNote{seq: seq, at: now}
}

// take returns and forgets the sequence number of k's SYN.
func (t *synTable) take(k synKey) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.isn[k]
	delete(t.isn, k)
	return n.seq, ok
}

// forget drops k's SYN.
func (t *synTable) forget(k synKey) {
	t.mu.Lock()
	delete(t.isn, k)
	t.mu.Unlock()
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
