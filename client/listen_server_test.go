package client_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// Listener tests against our gateway. They skip (requireListen) while
// the gateway does not offer LISTEN.

// requireListen skips the test unless the gateway at gw sets the LISTEN
// feature bit in HELLO_ACK. It probes with bare frames, so that a bug in
// the client cannot cause the skip.
func requireListen(t testing.TB, gw string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", gw, testWait)
	if err != nil {
		t.Fatalf("probe %s: %v", gw, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testWait))
	methods := []proto.Method{proto.MethodExtensions, proto.MethodNoAuth}
	if err := proto.Write(c, proto.Greeting{Methods: methods}); err != nil {
		t.Fatalf("probe %s: %v", gw, err)
	}
	sel, err := proto.ReadMethodSelection(c)
	if err != nil {
		t.Fatalf("probe %s: %v", gw, err)
	}
	if sel.Method != proto.MethodExtensions {
		t.Skip("gateway does not offer LISTEN yet (no extensions)")
	}
	if err := proto.WriteFrame(c, proto.Hello{Methods: methods, Auth: proto.MethodNoAuth}); err != nil {
		t.Fatalf("probe %s: %v", gw, err)
	}
	f, err := proto.ReadFrame(c, nil)
	if err != nil || f.Type != proto.FrameHelloAck {
		t.Fatalf("probe %s: HELLO_ACK: %v %v", gw, f.Type, err)
	}
	ack, err := proto.ParseHelloAck(f.Value)
	if err != nil {
		t.Fatalf("probe %s: HELLO_ACK: %v", gw, err)
	}
	if !ack.Features.Has(proto.FeatureListen) {
		t.Skip("gateway does not offer LISTEN yet")
	}
	proto.WriteFrame(c, proto.Close{})
}

// listenServer starts our gateway with ls, allowed to reach loopback,
// and with users (username → password) if not nil. It probes before the
// users are set, since the probe does not authenticate.
func listenServer(t *testing.T, ls server.ListenSettings, users map[string]string) (*server.Server, string) {
	t.Helper()
	s, gw := newGateway(t, gatewayOpts{})
	requireListen(t, gw)
	st := server.Settings{Guard: server.Guard{AllowLoopback: true}, Listen: ls}
	if users != nil {
		st.Auth = server.AuthenticatorFunc(func(_ context.Context, user, pass string) error {
			if want, ok := users[user]; ok && want == pass {
				return nil
			}
			return errors.New("bad credentials")
		})
	}
	s.Reload(st)
	return s, gw
}

func TestListen(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, env listenEnv)
	}{
		{"http", testListenHTTP},
		{"many", func(t *testing.T, env listenEnv) { testListenMany(t, env, 100, 256<<10) }},
		{"filter", testListenFilter},
		{"close", testListenClose},
		{"session_listen_close", testSessionListenClose},
		{"session_end", func(t *testing.T, env listenEnv) {
			// Close stops the whole gateway, taken streams included.
			testListenSessionEnd(t, env, false, func(err error) bool { return err != nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 100 callers at once need more pending offers than the
			// default 64.
			s, gw := listenServer(t, server.ListenSettings{OffersPerUser: 256}, nil)
			tc.run(t, listenEnv{d: &client.Dialer{ProxyAddress: gw}, endSessions: func() { s.Close() }})
		})
	}
}

func TestListenAuth(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	users := map[string]string{"alice": "wonderland", "bob": "builder"}
	_, gw := listenServer(t, server.ListenSettings{Reserved: map[string][]uint16{"alice": {40123}}}, users)
	alice := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "wonderland"}
	s, err := alice.OpenSession(testCtx(t))
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	defer s.Close()
	if got := s.ReservedPorts(); !slices.Equal(got, []uint16{40123}) {
		t.Errorf("ReservedPorts() = %v, want [40123]", got)
	}
	// Takes authenticate as alice too; the gateway refuses any other
	// user's TAKE.
	testListenMany(t, listenEnv{d: alice}, 10, 10000)

	bob := &client.Dialer{ProxyAddress: gw, Username: "bob", Password: "builder"}
	_, err = bob.ListenConfig(testCtx(t), "tcp", "127.0.0.1:40123", client.ListenConfig{Exact: true})
	if re := asReply(t, err); re.Code != proto.ReplyPortUnavailable {
		t.Errorf("bob on alice's reserved port: %v, want PortUnavailable", err)
	}
}

func TestListenRefused(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	t.Run("port_in_use", func(t *testing.T) {
		_, gw := listenServer(t, server.ListenSettings{}, nil)
		busy := socks6test.Listen(t)
		if busy.Addr().(*net.TCPAddr).IP.To4() == nil {
			t.Skip("no IPv4 loopback")
		}
		d := &client.Dialer{ProxyAddress: gw}
		_, err := d.ListenConfig(testCtx(t), "tcp", busy.Addr().String(), client.ListenConfig{Exact: true})
		if re := asReply(t, err); re.Code != proto.ReplyPortUnavailable || re.Command != proto.CommandListen {
			t.Errorf("EXACT on a busy port: %v, want PortUnavailable", err)
		}
		// Without EXACT the gateway picks another port.
		l, err := d.Listen(testCtx(t), "tcp", busy.Addr().String())
		if err != nil {
			t.Fatalf("listen on a busy port without EXACT: %v", err)
		}
		defer l.Close()
		if a := l.Addr().(*net.TCPAddr); a.Port == busy.Addr().(*net.TCPAddr).Port || !a.IP.IsLoopback() {
			t.Errorf("bound to %v", a)
		}
		if l.OfferTimeout() != 10*time.Second {
			t.Errorf("OfferTimeout() = %v, want the default 10s", l.OfferTimeout())
		}
	})
	t.Run("privileged", func(t *testing.T) {
		_, gw := listenServer(t, server.ListenSettings{}, nil)
		d := &client.Dialer{ProxyAddress: gw}
		_, err := d.ListenConfig(testCtx(t), "tcp", "127.0.0.1:80", client.ListenConfig{Exact: true})
		if re := asReply(t, err); re.Code != proto.ReplyPortUnavailable {
			t.Errorf("EXACT on port 80: %v, want PortUnavailable", err)
		}
	})
	t.Run("quota", func(t *testing.T) {
		_, gw := listenServer(t, server.ListenSettings{ListenersPerUser: 1}, nil)
		d := &client.Dialer{ProxyAddress: gw}
		s, err := d.OpenSession(testCtx(t))
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		defer s.Close()
		if l, ok := s.Limits(); !ok || l.MaxListeners != 1 {
			t.Errorf("Limits() = %+v, %v", l, ok)
		}
		l, err := s.Listen(testCtx(t), "tcp", "127.0.0.1:0", client.ListenConfig{OfferTimeout: 3 * time.Second})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		if l.OfferTimeout() != 3*time.Second {
			t.Errorf("OfferTimeout() = %v, want the 3s asked for", l.OfferTimeout())
		}
		_, err = s.Listen(testCtx(t), "tcp", "127.0.0.1:0", client.ListenConfig{})
		if re := asReply(t, err); re.Code != proto.ReplyQuotaExceeded {
			t.Errorf("second listener over the limit of 1: %v, want QuotaExceeded", err)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		s, gw := newGateway(t, gatewayOpts{})
		requireListen(t, gw)
		s.Reload(server.Settings{Guard: server.Guard{AllowLoopback: true}, Listen: server.ListenSettings{Disabled: true}})
		d := &client.Dialer{ProxyAddress: gw}
		if _, err := d.Listen(testCtx(t), "tcp", "127.0.0.1:0"); !errors.Is(err, client.ErrNoExtensions) {
			t.Errorf("listen with LISTEN disabled: %v, want ErrNoExtensions", err)
		}
	})
	t.Run("public_addr", func(t *testing.T) {
		pub := netip.MustParseAddr("192.0.2.44")
		_, gw := listenServer(t, server.ListenSettings{PublicAddrs: []netip.Addr{pub}}, nil)
		l, err := (&client.Dialer{ProxyAddress: gw}).Listen(testCtx(t), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		port := uint16(l.Addr().(*net.TCPAddr).Port)
		if got := l.PublicAddrs(); !slices.Equal(got, []netip.AddrPort{netip.AddrPortFrom(pub, port)}) {
			t.Errorf("PublicAddrs() = %v, want %v:%d", got, pub, port)
		}
	})
}
