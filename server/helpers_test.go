package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/server"
)

// startGateway serves s on a loopback listener until the test ends and
// returns its address. A nil Logger is replaced by one writing to t.Log.
func startGateway(t testing.TB, s *server.Server) string {
	t.Helper()
	if s.Logger == nil {
		s.Logger = socks6test.Logger(t)
	}
	ln := socks6test.Listen(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// loopbackGateway returns a gateway that may reach loopback targets, as
// tests need.
func loopbackGateway(t testing.TB) (*server.Server, string) {
	t.Helper()
	s := &server.Server{Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
	return s, startGateway(t, s)
}
