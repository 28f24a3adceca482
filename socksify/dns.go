package socksify

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
)

// The fake DNS server's answers (RFC 1035 messages, built by hand: the
// package may import only x/sys). Every query a supervised program sends
// to port 53, over UDP or TCP and to any server, is answered here and
// never leaves the machine:
//
//   - A and AAAA: the name's fake address (fakeTable), TTL fakeTTL; one
//     family per lookup: an AAAA query right after the A query for the
//     same name gets no data (pairWindow; AAAA and A swapped when the
//     gateway is IPv6-only). "localhost" and names under it answer
//     127.0.0.1 and ::1 (RFC 6761, section 6.3).
//   - PTR under in-addr.arpa and ip6.arpa: the name that owns a fake
//     address; NXDOMAIN for any other address.
//   - HTTPS (65) and SVCB (64): an empty NOERROR answer, so clients fall
//     back to A and AAAA and no real ECH or alt-svc hints are needed.
//   - Every other type (MX, TXT, SRV, NS, SOA, CNAME, ANY, …): an empty
//     NOERROR answer ("no data"). Not NXDOMAIN, which would say the name
//     does not exist at all (RFC 8020) although it has addresses; a mail
//     client that finds no MX falls back to the name's A record, which
//     leads to the gateway. Forwarding these types through the gateway
//     is future work.
//   - Opcodes other than QUERY: NOTIMP; classes other than IN (and ANY):
//     REFUSED; not exactly one question, or a malformed one: FORMERR;
//     responses (QR set) and messages shorter than a header: no answer.

// DNS constants.
const (
	dnsTypeA     = 1
	dnsTypeNS    = 2
	dnsTypePTR   = 12
	dnsTypeMX    = 15
	dnsTypeTXT   = 16
	dnsTypeAAAA  = 28
	dnsTypeSVCB  = 64
	dnsTypeHTTPS = 65
	dnsTypeANY   = 255
	dnsClassIN   = 1
	dnsClassANY  = 255

	dnsRcodeNoError  = 0
	dnsRcodeFormErr  = 1
	dnsRcodeServFail = 2
	dnsRcodeNXDomain = 3
	dnsRcodeNotImp   = 4
	dnsRcodeRefused  = 5

	dnsHeaderLen = 12
	// fakeTTL is the TTL of fake answers: short, so that a program asks
	// again (and so refreshes its name in the fake table) rather than
	// caching an address for long.
	fakeTTL = 5
)

// A dnsQuery is the part of a query the answer depends on.
type dnsQuery struct {
	id       uint16
	rd       bool   // recursion desired, echoed
	name     string // presentation form, lowercase, no trailing dot ("" is the root)
	qtype    uint16
	qclass   uint16
	question []byte // the question's wire bytes, echoed in the answer
	fake     bool   // the answer is a fake address (set by answerDNS)
}

// parseDNSQuery parses msg. ok is false when msg gets no answer at all;
// otherwise rcode is dnsRcodeNoError for a query to answer, or the error
// to return (q.question is then empty when the question was unusable).
func parseDNSQuery(msg []byte) (q dnsQuery, rcode int, ok bool) {
	if len(msg) < dnsHeaderLen {
		return q, 0, false
	}
	q.id = binary.BigEndian.Uint16(msg[0:])
	flags := binary.BigEndian.Uint16(msg[2:])
	if flags&0x8000 != 0 { // QR: a response
		return q, 0, false
	}
	q.rd = flags&0x0100 != 0
	if opcode := flags >> 11 & 0xf; opcode != 0 {
		return q, dnsRcodeNotImp, true
	}
	if binary.BigEndian.Uint16(msg[4:]) != 1 {
		return q, dnsRcodeFormErr, true
	}
	name, end, good := parseDNSName(msg, dnsHeaderLen)
	if !good || end+4 > len(msg) {
		return q, dnsRcodeFormErr, true
	}
	q.name = name
	q.qtype = binary.BigEndian.Uint16(msg[end:])
	q.qclass = binary.BigEndian.Uint16(msg[end+2:])
	q.question = msg[dnsHeaderLen : end+4]
	if q.qclass != dnsClassIN && q.qclass != dnsClassANY {
		return q, dnsRcodeRefused, true
	}
	return q, dnsRcodeNoError, true
}

// parseDNSName reads the uncompressed name at off (a question's name is
// never compressed: nothing precedes it). It refuses labels with bytes
// that cannot be carried in a SOCKS domain name: a dot, a space, control
// and non-ASCII bytes.
func parseDNSName(msg []byte, off int) (name string, end int, ok bool) {
	var b strings.Builder
	wire := 0
	for {
		if off >= len(msg) {
			return "", 0, false
		}
		l := int(msg[off])
		off++
		wire += l + 1
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(msg) || wire > 255 {
			return "", 0, false // too long, or a compression pointer (0xC0) or reserved label type
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		for _, c := range msg[off : off+l] {
			if c <= ' ' || c >= 0x7f || c == '.' {
				return "", 0, false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
		off += l
	}
	return b.String(), off, true
}

// answerDNS returns the response to the query msg, and the query (for
// logs). ok is false when msg gets no response.
func answerDNS(msg []byte, t *fakeTable) (resp []byte, q dnsQuery, ok bool) {
	q, rcode, ok := parseDNSQuery(msg)
	if !ok {
		return nil, q, false
	}
	var answers [][]byte // rdata of each record, all of type q.qtype
	if rcode == dnsRcodeNoError {
		answers, rcode = answerRecords(q, t)
		if len(answers) == 1 && (q.qtype == dnsTypeA || q.qtype == dnsTypeAAAA) {
			ip, _ := netip.AddrFromSlice(answers[0])
			q.fake = isFake(ip)
		}
	}
	flags := uint16(0x8000 | 0x0400 | 0x0080) // QR, AA, RA
	if q.rd {
		flags |= 0x0100
	}
	flags |= uint16(rcode)
	b := make([]byte, dnsHeaderLen, dnsHeaderLen+len(q.question)+len(answers)*40)
	binary.BigEndian.PutUint16(b[0:], q.id)
	binary.BigEndian.PutUint16(b[2:], flags)
	if len(q.question) > 0 {
		binary.BigEndian.PutUint16(b[4:], 1)
		b = append(b, q.question...)
	}
	binary.BigEndian.PutUint16(b[6:], uint16(len(answers)))
	for _, rdata := range answers {
		b = append(b, 0xc0, dnsHeaderLen) // the question's name
		b = binary.BigEndian.AppendUint16(b, q.qtype)
		b = binary.BigEndian.AppendUint16(b, dnsClassIN)
		b = binary.BigEndian.AppendUint32(b, fakeTTL)
		b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
		b = append(b, rdata...)
	}
	return b, q, true
}

// answerRecords returns the rdata of the answers to q and the rcode.
func answerRecords(q dnsQuery, t *fakeTable) ([][]byte, int) {
	if q.name == "" {
		return nil, dnsRcodeNoError
	}
	if q.qtype == dnsTypePTR {
		ip, ok := arpaAddr(q.name)
		if !ok {
			return nil, dnsRcodeNXDomain
		}
		name, ok := t.name(ip)
		if !ok {
			return nil, dnsRcodeNXDomain
		}
		rdata, ok := appendDNSName(nil, name)
		if !ok {
			return nil, dnsRcodeServFail
		}
		return [][]byte{rdata}, dnsRcodeNoError
	}
	if q.qtype != dnsTypeA && q.qtype != dnsTypeAAAA {
		return nil, dnsRcodeNoError
	}
	if strings.HasSuffix(q.name, ".arpa") || q.name == "arpa" {
		return nil, dnsRcodeNoError // no fake addresses for reverse names
	}
	if q.name == "localhost" || strings.HasSuffix(q.name, ".localhost") {
		if q.qtype == dnsTypeA {
			return [][]byte{{127, 0, 0, 1}}, dnsRcodeNoError
		}
		a := netip.IPv6Loopback().As16()
		return [][]byte{a[:]}, dnsRcodeNoError
	}
	idx, give, ok := t.answerType(q.name, q.qtype)
	if !ok {
		return nil, dnsRcodeServFail // the table is full of names in use (fakeReuseAfter)
	}
	if !give {
		return nil, dnsRcodeNoError // the name's other fake address was just given (pairWindow)
	}
	if q.qtype == dnsTypeA {
		a := fakeIP4(idx).As4()
		return [][]byte{a[:]}, dnsRcodeNoError
	}
	a := fakeIP6(idx).As16()
	return [][]byte{a[:]}, dnsRcodeNoError
}

// appendDNSName appends name in wire form (uncompressed).
func appendDNSName(b []byte, name string) ([]byte, bool) {
	if len(name) > 253 {
		return b, false
	}
	for name != "" {
		label, rest, _ := strings.Cut(name, ".")
		if label == "" || len(label) > 63 {
			return b, false
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
		name = rest
	}
	return append(b, 0), true
}

// arpaAddr parses a reverse-lookup name: d.c.b.a.in-addr.arpa or the 32
// nibbles of an ip6.arpa name.
func arpaAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var a [4]byte
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil || (len(p) > 1 && p[0] == '0') {
				return netip.Addr{}, false
			}
			a[3-i] = byte(v)
		}
		return netip.AddrFrom4(a), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 32 {
			return netip.Addr{}, false
		}
		var a [16]byte
		for i, p := range parts {
			if len(p) != 1 {
				return netip.Addr{}, false
			}
			v, err := strconv.ParseUint(p, 16, 4)
			if err != nil {
				return netip.Addr{}, false
			}
			n := 31 - i // nibble index from the most significant
			a[n/2] |= byte(v) << (4 * (1 - n%2))
		}
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

// dnsQueryID returns the ID of the DNS message b, or false if b is too
// short to be one.
func dnsQueryID(b []byte) (uint16, bool) {
	if len(b) < dnsHeaderLen {
		return 0, false
	}
	return binary.BigEndian.Uint16(b), true
}
