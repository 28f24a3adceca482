package socksify

import (
	"net"
	"net/netip"
)

// A FakeDNS answers DNS queries with fake addresses, as the supervisor's
// fake DNS server does, and maps the addresses back to their names. It
// lets another redirector (socksify/isolate's user-space network stack)
// hand out the same kind of addresses. It is safe for concurrent use.
type FakeDNS struct {
	t *fakeTable
}

// NewFakeDNS returns an empty table. prefer6 makes AAAA rather than A the
// address family a name gets when a program asks for both (for a
// gateway with no IPv4 address; see the package documentation).
func NewFakeDNS(prefer6 bool) *FakeDNS {
	t := newFakeTable(0)
	t.prefer6 = prefer6
	return &FakeDNS{t: t}
}

// Answer returns the response to the DNS query msg (a DNS message
// without the TCP length prefix), and, when it is a fake address, the
// name it stands for. ok is false when msg gets no response at all (a
// response, or shorter than a header).
func (f *FakeDNS) Answer(msg []byte) (resp []byte, fakeName string, ok bool) {
	resp, q, ok := answerDNS(msg, f.t)
	if q.fake {
		fakeName = q.name
	}
	return resp, fakeName, ok
}

// ServeStream answers DNS over TCP (RFC 1035 section 4.2.2 framing, as
// RFC 7766 asks) on c until EOF, 10 s without a query, or a message that
// gets no answer. It does not close c.
func (f *FakeDNS) ServeStream(c net.Conn) {
	serveDNSStream(c, func(m []byte) ([]byte, bool) {
		resp, _, ok := answerDNS(m, f.t)
		return resp, ok
	})
}

// ServePacket answers the DNS queries that come to pc until pc is
// closed.
func (f *FakeDNS) ServePacket(pc net.PacketConn) {
	serveDNSPacket(pc, func(m []byte) ([]byte, bool) {
		resp, _, ok := answerDNS(m, f.t)
		return resp, ok
	})
}

// Name returns the name that owns the fake address ip, if any.
func (f *FakeDNS) Name(ip netip.Addr) (string, bool) { return f.t.name(ip) }

// IsFake reports whether ip is in one of the fake ranges, 198.18.0.0/15
// and fd00:5eed::/64 (whether or not a name owns it).
func IsFake(ip netip.Addr) bool { return isFake(ip) }
