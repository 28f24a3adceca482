package server_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/resolver"
)

// startGateway serves s on a loopback listener until the test ends and
// returns its address. A nil Logger is replaced by one writing to t.Log.
func startGateway(t testing.TB, s *server.Server) string {
	t.Helper()
	if s.Logger == nil {
		s.Logger = socks6test.Logger(t)
	}
	return socks6test.ServeGateway(t, s)
}

// loopbackGateway returns a gateway that may reach loopback targets, as
// tests need.
func loopbackGateway(t testing.TB) (*server.Server, string) {
	t.Helper()
	s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	return s, startGateway(t, s)
}

// lookupFromNetIP adapts a stub with LookupNetIP to server.Resolver: one
// family's addresses of what the stub returns for "ip", with a TTL of 60.
func lookupFromNetIP(ctx context.Context, r interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}, network, host string) ([]resolver.Answer, error) {
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	var out []resolver.Answer
	for _, ip := range ips {
		if (network == "ip4") == ip.Unmap().Is4() {
			out = append(out, resolver.Answer{Addr: ip, TTL: 60})
		}
	}
	return out, nil
}
