package main

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
)

func TestParseRoutes(t *testing.T) {
	r4 := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
wg0	00000000	00000000	0001	0	0	0	00000000	0	0	0
`
	if got := parseRoute4(strings.NewReader(r4)); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("parseRoute4 = %q, want [192.0.2.1]", got)
	}
	r6 := `fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000000000000000000000001 00000400 00000003 00000000 00000003     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
`
	if got := parseRoute6(strings.NewReader(r6)); !slices.Equal(got, []string{"fe80::1%eth0", "2001:db8::1"}) {
		t.Errorf("parseRoute6 = %q", got)
	}
}

// TestProbeSOCKS5 probes real loopback servers: a SOCKS5 one, an HTTP
// one and a closed port.
func TestProbeSOCKS5(t *testing.T) {
	serve := func(answer string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				var b [3]byte
				c.Read(b[:])
				c.Write([]byte(answer))
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	socks := serve("\x05\x00")
	socksAuth := serve("\x05\xff") // wants a method we did not offer: still a gateway
	web := serve("HTTP/1.1 400 Bad Request\r\n\r\n")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	ctx := context.Background()
	for _, c := range []struct {
		addr string
		want bool
	}{{socks, true}, {socksAuth, true}, {web, false}, {closed, false}} {
		if got := probeSOCKS5(ctx, c.addr); got != c.want {
			t.Errorf("probeSOCKS5(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
}

// TestGatewayDiscoveredNoPassword: a discovered gateway (anyone on the
// link can advertise one) is never sent a password: -user with nothing
// configured is refused before discovery, and SOCKS6_PASSWORD is not
// used for a discovered gateway.
func TestGatewayDiscoveredNoPassword(t *testing.T) {
	asked := false
	o := options{user: "alice", discover: func() (string, string, bool) { asked = true; return "192.0.2.1:1080", "advertised by DHCP", true }}
	env := func(k string) (string, bool) {
		if k == "SOCKS6_PASSWORD" {
			return "s3cret", true
		}
		return "", false
	}
	if d, err := gateway(o, env); err == nil || !strings.Contains(err.Error(), "never sent a password") || asked {
		t.Errorf("-user, nothing configured: %+v, %v (discovery run: %v); want a refusal before discovery", d, err, asked)
	}
	o.user = ""
	d, err := gateway(o, env)
	if err != nil || d.ProxyAddress != "192.0.2.1:1080" || d.Username != "" || d.Password != "" {
		t.Errorf("discovered: %+v, %v; want the gateway with no credentials", d, err)
	}
	// Configured, the password is used as before.
	o.proxy = "socks6://alice@192.0.2.1:1080"
	if d, err := gateway(o, env); err != nil || d.Password != "s3cret" {
		t.Errorf("configured: %+v, %v; want SOCKS6_PASSWORD", d, err)
	}
}
