package server_test

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/server"
)

// TestPublicAddrProbeCache: the source probes behind PUBLIC_ADDR run once
// per family while their answer is fresh, also when a family does not
// exist on the host (its socket fails with EAFNOSUPPORT: a final "no
// route"), so that associations do not each pay for them.
func TestPublicAddrProbeCache(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	s := &server.Server{HandshakeTimeout: e2eWait, Logger: socks6test.Logger(t),
		ListenUDP: func(ctx context.Context, network string) (*net.UDPConn, error) {
			mu.Lock()
			calls[network]++
			mu.Unlock()
			if network == "udp6" { // as on a kernel without IPv6
				return nil, &net.OpError{Op: "listen", Net: network, Err: syscall.EAFNOSUPPORT}
			}
			return net.ListenUDP(network, nil)
		}}
	gw := startGateway(t, s)
	d := &client.Dialer{ProxyAddress: gw, Extensions: client.ExtRequire}
	for range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
		pc, err := d.ListenPacket(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pc.PublicAddrs() {
			if p.Addr().Is6() {
				t.Errorf("PUBLIC_ADDR %v has an IPv6 address, but the IPv6 probe had no socket", pc.PublicAddrs())
			}
		}
		pc.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["udp"] != 5 || calls["udp4"] != 1 || calls["udp6"] != 1 {
		t.Errorf("ListenUDP calls %v for 5 associations: want 5 udp and one probe per family", calls)
	}
}
