package client_test

import (
	"context"
	"net"
	"net/url"
	"testing"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"golang.org/x/net/nettest"
	"golang.org/x/net/proxy"
)

// Interoperation with golang.org/x/net/proxy: the socks6 scheme is
// registered, FromURL builds the Dialer, and the Dialer is a
// ContextDialer.

var _ proxy.ContextDialer = (*client.Dialer)(nil)

func TestProxyFromURL(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	echo := socks6test.EchoServer(t)
	_, gw := newGateway(t, gatewayOpts{users: map[string]string{"alice": "wonder land"}})

	u, err := url.Parse("socks6://alice:wonder%20land@" + gw)
	if err != nil {
		t.Fatal(err)
	}
	pd, err := proxy.FromURL(u, proxy.Direct)
	if err != nil {
		t.Fatalf("proxy.FromURL(%s): %v", u, err)
	}
	d, ok := pd.(*client.Dialer)
	if !ok {
		t.Fatalf("proxy.FromURL returned %T, want *client.Dialer", pd)
	}
	if d.ProxyAddress != gw || d.Username != "alice" || d.Password != "wonder land" || d.Extensions != client.ExtAuto {
		t.Errorf("Dialer from URL: %+v", d)
	}
	c, err := pd.(proxy.ContextDialer).DialContext(testCtx(t), "tcp", echo)
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	checkEcho(t, c, 64<<10)
	c.Close()

	// A forward Dialer without DialContext.
	pd, err = client.FromURL(u, dialOnly{})
	if err != nil {
		t.Fatal(err)
	}
	c, err = pd.Dial("tcp", echo)
	if err != nil {
		t.Fatalf("Dial through a forward Dialer: %v", err)
	}
	checkEcho(t, c, 1000)
	c.Close()
}

// dialOnly is a proxy.Dialer without DialContext.
type dialOnly struct{}

func (dialOnly) Dial(network, addr string) (net.Conn, error) { return net.Dial(network, addr) }

func TestFromURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want client.Dialer
	}{
		{"socks6://gw.test", client.Dialer{ProxyAddress: "gw.test:1080"}},
		{"socks6://u:p@[::1]:9050?ext=require", client.Dialer{ProxyAddress: "[::1]:9050", Username: "u", Password: "p", Extensions: client.ExtRequire}},
		{"socks6://u@gw.test:1?ext=off", client.Dialer{ProxyAddress: "gw.test:1", Username: "u", Extensions: client.ExtOff}},
		{"socks5://gw.test:1081", client.Dialer{ProxyAddress: "gw.test:1081", Extensions: client.ExtOff}},
		{"socks5h://gw.test", client.Dialer{ProxyAddress: "gw.test:1080", Extensions: client.ExtOff}},
	} {
		u, _ := url.Parse(tc.url)
		pd, err := client.FromURL(u, nil)
		if err != nil {
			t.Errorf("FromURL(%s): %v", tc.url, err)
			continue
		}
		d := pd.(*client.Dialer)
		if d.ProxyDial != nil {
			t.Errorf("FromURL(%s, nil) set ProxyDial", tc.url)
		}
		d.ProxyDial = nil
		if got := *d; got.ProxyAddress != tc.want.ProxyAddress || got.Username != tc.want.Username ||
			got.Password != tc.want.Password || got.Extensions != tc.want.Extensions {
			t.Errorf("FromURL(%s) = %+v, want %+v", tc.url, got, tc.want)
		}
	}
	for _, bad := range []string{
		"http://gw.test",
		"socks6://",
		"socks6://gw.test:99999",
		"socks6://gw.test?ext=maybe",
		"socks6://gw.test?family=4",
		"socks5://gw.test?ext=require",
	} {
		u, _ := url.Parse(bad)
		if _, err := client.FromURL(u, nil); err == nil {
			t.Errorf("FromURL(%s) succeeded", bad)
		}
	}
}

// TestNetConn runs x/net/nettest's conformance tests on a Conn through
// the gateway: deadlines, concurrent use, close while blocked.
func TestNetConn(t *testing.T) {
	_, gw := newGateway(t, gatewayOpts{})
	for _, mode := range []client.ExtMode{client.ExtOff, client.ExtAuto} {
		t.Run(mode.String(), func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return nil, nil, nil, err
				}
				defer ln.Close()
				accepted := make(chan net.Conn, 1)
				go func() {
					c, _ := ln.Accept()
					accepted <- c
				}()
				d := &client.Dialer{ProxyAddress: gw, Extensions: mode}
				c1, err = d.DialContext(context.Background(), "tcp", ln.Addr().String())
				if err != nil {
					ln.Close()
					<-accepted
					return nil, nil, nil, err
				}
				c2 = <-accepted
				return c1, c2, func() { c1.Close(); c2.Close() }, nil
			})
		})
	}
}
