package server_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// e2eRoutedNS builds a small routed network and returns the namespace the
// gateway dials from and a listener on the host next to it:
//
//	gw  (198.51.100.1/30) ──veth── peer (198.51.100.2/30, ip_forward off)
//
// Routes in gw:
//
//	198.51.100.0/30   the link to peer
//	198.51.100.0/24   unreachable        → EHOSTUNREACH
//	192.0.2.0/24      via 198.51.100.2   → peer drops what it cannot forward
//	203.0.113.0/24    no route, no default route → ENETUNREACH
//	2001:db8:1::/48   unreachable        → EHOSTUNREACH
//	2001:db8:2::/48   prohibit           → EACCES
//	2001:db8:3::/48   no route           → ENETUNREACH
func e2eRoutedNS(t testing.TB) (gw *socks6test.NetNS, peerLn net.Listener) {
	t.Helper()
	gw = socks6test.NewNetNS(t)
	peer := socks6test.NewNetNS(t)
	socks6test.Veth(t, gw, "v0", peer, "v1")
	gw.IP(t, "addr", "add", "198.51.100.1/30", "dev", "v0")
	peer.IP(t, "addr", "add", "198.51.100.2/30", "dev", "v1")
	gw.IP(t, "route", "add", "unreachable", "198.51.100.0/24")
	gw.IP(t, "route", "add", "192.0.2.0/24", "via", "198.51.100.2")
	gw.IP(t, "-6", "route", "add", "unreachable", "2001:db8:1::/48")
	gw.IP(t, "-6", "route", "add", "prohibit", "2001:db8:2::/48")
	// With forwarding off, peer silently drops packets not addressed to
	// it (no ICMP): a SYN to 192.0.2.0/24 vanishes.
	peer.Sysctl(t, "net/ipv4/ip_forward", "0")
	return gw, peer.Listen(t, "tcp", "198.51.100.2:0")
}

// TestNetNSReplyCodes runs the gateway's outbound dials inside a network
// namespace with real routes, so the kernel produces each failure.
func TestNetNSReplyCodes(t *testing.T) {
	ns, peerLn := e2eRoutedNS(t)
	socks6test.Serve(t, peerLn, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})

	s := &server.Server{
		Dial:        ns.DialContext,
		DialTimeout: 500 * time.Millisecond,
		// No DNS in these tests: a name is looked up in this stub only.
		Resolver: e2eStubResolver(map[string][]netip.Addr{
			"peer.test": {netip.MustParseAddr("198.51.100.2")},
			"gone.test": {netip.MustParseAddr("198.51.100.200")},
		}),
		// The gateway lives in ns; the host's own addresses are not its.
		Settings: server.Settings{Guard: server.Guard{Self: func() []netip.Addr {
			return []netip.Addr{netip.MustParseAddr("198.51.100.1")}
		}}},
	}
	gw := startGateway(t, s)
	_, peerPort, _ := net.SplitHostPort(peerLn.Addr().String())

	tests := []struct {
		name   string
		target string
		want   proto.ReplyCode
	}{
		{"succeeded", peerLn.Addr().String(), proto.ReplySucceeded},
		{"succeeded_name", net.JoinHostPort("peer.test", peerPort), proto.ReplySucceeded},
		{"refused", "198.51.100.2:1", proto.ReplyConnectionRefused},
		{"network_unreachable", "203.0.113.1:80", proto.ReplyNetworkUnreachable},
		{"host_unreachable", "198.51.100.200:80", proto.ReplyHostUnreachable},
		{"host_unreachable_name", "gone.test:80", proto.ReplyHostUnreachable},
		{"ttl_expired", "192.0.2.1:80", proto.ReplyTTLExpired},
		{"network_unreachable_ipv6", "[2001:db8:3::1]:80", proto.ReplyNetworkUnreachable},
		{"host_unreachable_ipv6", "[2001:db8:1::1]:80", proto.ReplyHostUnreachable},
		{"not_allowed_prohibit_ipv6", "[2001:db8:2::1]:80", proto.ReplyNotAllowed},
		{"not_allowed_self", "198.51.100.1:80", proto.ReplyNotAllowed},
		{"host_unreachable_nxdomain", "nonexistent.invalid:80", proto.ReplyHostUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c, rep := e2eOpen(t, gw, "", "", proto.CommandConnect, tt.target)
			if rep.Code != tt.want {
				t.Fatalf("CONNECT %s: reply %v (%#x), want %v (%#x)", tt.target, rep.Code, uint8(rep.Code), tt.want, uint8(tt.want))
			}
			if tt.want == proto.ReplySucceeded {
				if bound, ok := rep.Addr.AddrPort(); !ok || bound.Addr() != netip.MustParseAddr("198.51.100.1") {
					t.Errorf("bound address %v, want the gateway's address in the namespace", rep.Addr)
				}
				e2eEcho(t, c, "across the veth")
				return
			}
			e2eExpectClosed(t, c)
			if d := time.Since(start); tt.want == proto.ReplyTTLExpired && d < 400*time.Millisecond {
				t.Errorf("timed out after %v, before DialTimeout", d)
			}
		})
	}
	e2eSessionsDrop(t, s, 0)

	t.Run("ttl_expired_dial_as_long_as_handshake", func(t *testing.T) {
		// As with the defaults (10s each), the dial may use all of
		// DialTimeout even though the handshake took some of
		// HandshakeTimeout already, and the client still gets its
		// failure reply.
		s := &server.Server{
			Dial:             ns.DialContext,
			HandshakeTimeout: 500 * time.Millisecond,
			DialTimeout:      500 * time.Millisecond,
		}
		gw := startGateway(t, s)
		c := e2eDial(t, gw)
		e2eGreet(t, c, "", "")
		time.Sleep(200 * time.Millisecond) // a slow client
		start := time.Now()
		rep := e2eRequest(t, c, proto.CommandConnect, e2eAddr(t, "192.0.2.1:80"))
		if rep.Code != proto.ReplyTTLExpired {
			t.Fatalf("reply %v, want ttl expired", rep.Code)
		}
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Errorf("dial gave up after %v, before DialTimeout", d)
		}
	})
}

// TestNetNSDialRestoresThread checks that dialing inside a namespace
// leaves no thread behind in it: after many concurrent dials, every
// thread of the process is back in the process's namespace.
func TestNetNSDialRestoresThread(t *testing.T) {
	ns, peerLn := e2eRoutedNS(t)
	socks6test.Serve(t, peerLn, func(c net.Conn) { c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
	defer cancel()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 10 {
				c, err := ns.DialContext(ctx, "tcp", peerLn.Addr().String())
				if err != nil {
					t.Errorf("dial inside namespace: %v", err)
					return
				}
				c.Close()
			}
		})
	}
	wg.Wait()

	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Skipf("cannot read own namespace: %v", err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("cannot list threads: %v", err)
	}
	for _, task := range tasks {
		got, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err != nil {
			continue // the thread exited
		}
		if got != self {
			t.Errorf("thread %s is in %s, want %s", task.Name(), got, self)
		}
	}
}
