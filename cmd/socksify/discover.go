package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// Gateway discovery, when neither -proxy nor the environment names one:
// a SOCKS5 server on port 1080 of loopback (a socks6d on this machine,
// which listens on 127.0.0.1:1080 by default), else a gateway that the
// network's DHCP server advertises (the draft's DHCPv4 option, asked for
// with a DHCPINFORM on the default route's interface; cleartext entries
// only, as a TLS one needs a name to check that only configuration
// gives; this needs UDP port 68, so root), else on port 1080 of the
// default routers (a socks6d on the home or office router). Each
// candidate is asked for the no-authentication method: any SOCKS5 answer
// (even "no acceptable method") makes it the gateway. Nothing found
// means no gateway: socksify still never runs a program unproxied.

// discoverPort is where discovery looks.
const discoverPort = 1080

// discoverTimeout bounds one probe.
const discoverTimeout = 300 * time.Millisecond

// dhcpTimeout bounds the wait for a DHCP answer.
const dhcpTimeout = 800 * time.Millisecond

// discover returns the first candidate that answers as a SOCKS5 server,
// and how it was found.
func discover(ctx context.Context) (addr, how string, ok bool) {
	type cand struct{ addr, how string }
	var round1, round3 []cand
	for _, ip := range []string{"127.0.0.1", "::1"} {
		round1 = append(round1, cand{net.JoinHostPort(ip, strconv.Itoa(discoverPort)), "on loopback"})
	}
	routers := defaultRouters()
	for _, r := range routers {
		round3 = append(round3, cand{net.JoinHostPort(r, strconv.Itoa(discoverPort)), "on the default router"})
	}
	round2 := func() []cand {
		// DHCPv4, and DHCPv6 on the link of an IPv6 default route, at
		// once.
		dctx, cancel := context.WithTimeout(ctx, dhcpTimeout)
		defer cancel()
		var v4, v6 []proto.GatewayEntry
		var wg sync.WaitGroup
		wg.Go(func() { v4, _ = client.DiscoverDHCPv4(dctx, client.DHCPOptions{Retry: dhcpTimeout / 2}) })
		if ifname := ipv6RouterLink(routers); ifname != "" {
			wg.Go(func() {
				v6, _ = client.DiscoverDHCPv6(dctx, client.DHCPv6Options{Interface: ifname, Retry: dhcpTimeout / 2})
			})
		}
		wg.Wait()
		var out []cand
		for _, e := range append(v4, v6...) {
			if !e.TLS() {
				out = append(out, cand{netip.AddrPortFrom(e.Addr, e.Port).String(), "advertised by DHCP"})
			}
		}
		return out
	}
	for _, next := range []func() []cand{func() []cand { return round1 }, round2, func() []cand { return round3 }} {
		round := next()
		// The candidates of a round are probed at once; the first in
		// order that answers wins.
		found := make([]bool, len(round))
		var wg sync.WaitGroup
		for i, c := range round {
			wg.Add(1)
			go func() {
				defer wg.Done()
				found[i] = probeSOCKS5(ctx, c.addr)
			}()
		}
		wg.Wait()
		for i, c := range round {
			if found[i] {
				return c.addr, c.how, true
			}
		}
	}
	return "", "", false
}

// ipv6RouterLink returns the interface of the first IPv6 default router
// (a link-local next hop carries it as its zone), or "".
func ipv6RouterLink(routers []string) string {
	for _, r := range routers {
		if _, zone, ok := strings.Cut(r, "%"); ok && zone != "" {
			return zone
		}
	}
	return ""
}

// probeSOCKS5 reports whether addr answers a SOCKS5 greeting.
func probeSOCKS5(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, discoverTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return false
	}
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return false
	}
	return b[0] == 5
}

// defaultRouters returns the next hops of the default routes, IPv4 first
// (/proc/net/route, /proc/net/ipv6_route); IPv6 link-local ones carry
// their interface as the zone.
func defaultRouters() []string {
	var out []string
	if f, err := os.Open("/proc/net/route"); err == nil {
		out = append(out, parseRoute4(f)...)
		f.Close()
	}
	if f, err := os.Open("/proc/net/ipv6_route"); err == nil {
		out = append(out, parseRoute6(f)...)
		f.Close()
	}
	return out
}

// parseRoute4 reads /proc/net/route: Iface Destination Gateway Flags …,
// addresses as little-endian hex.
func parseRoute4(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue // not a default route (the header line included)
		}
		gw, err := hex.DecodeString(f[2])
		if err != nil || len(gw) != 4 {
			continue
		}
		ip := netip.AddrFrom4([4]byte{gw[3], gw[2], gw[1], gw[0]})
		if ip.IsUnspecified() || seen(out, ip.String()) {
			continue
		}
		out = append(out, ip.String())
	}
	return out
}

// parseRoute6 reads /proc/net/ipv6_route: dest destlen src srclen nexthop
// metric refcnt use flags iface, addresses as big-endian hex.
func parseRoute6(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[1] != "00" || f[0] != strings.Repeat("0", 32) {
			continue
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			continue
		}
		ip := netip.AddrFrom16([16]byte(b))
		if ip.IsUnspecified() {
			continue
		}
		if ip.IsLinkLocalUnicast() {
			ip = ip.WithZone(f[9])
		}
		if !seen(out, ip.String()) {
			out = append(out, ip.String())
		}
	}
	return out
}

func seen(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
