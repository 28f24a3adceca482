package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// discoverOptions are the flags of "socks6 discover".
type discoverOptions struct {
	iface  string
	server string
	code   uint
	ent    uint
	v6     bool
	wait   time.Duration
}

func (o *discoverOptions) define(fs *flag.FlagSet) {
	fs.StringVar(&o.iface, "iface", "", "ask on the interface `NAME` (default: the one of the IPv4 default route)")
	fs.StringVar(&o.server, "server", "", "ask the DHCP server at `ADDR` (unicast) instead of broadcasting")
	fs.UintVar(&o.code, "code", 224, "the DHCPv4 option `CODE` of the gateway list (site-specific)")
	fs.BoolVar(&o.v6, "6", false, "ask DHCPv6 (an Information-request to ff02::1:2 on -iface) instead of DHCPv4")
	fs.UintVar(&o.ent, "enterprise", 32473, "with -6: the vendor enterprise `NUMBER` of the gateway sub-option")
	fs.DurationVar(&o.wait, "wait", 5*time.Second, "give up after `D` without an answer")
}

func discoverUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: socks6 discover [-iface NAME] [-server ADDR] [-code N] [-wait D]
       socks6 discover -6 [-iface NAME] [-enterprise N] [-wait D]

Ask the network's DHCPv4 server for the SOCKS gateways it advertises
(DHCPINFORM with the draft's gateway option, code 224 unless -code says
otherwise), or with -6 its DHCPv6 servers (an Information-request for the
vendor option under enterprise 32473 unless -enterprise says otherwise),
and print one per line, most preferred first:

  socks6://192.0.2.1:1080 priority 10
  socks6s://192.0.2.1:1443 priority 20 alpn socks6,socks5

Needs UDP port 68 (546 with -6): root or CAP_NET_BIND_SERVICE. What DHCP says is a
hint anyone on the link can forge: reach a discovered gateway over TLS,
checked against a name you trust, before you send it a password.
Exit status 1 if no gateway is advertised.

Flags:
`)
	printFlags(w, new(discoverOptions).define)
}

// runDiscover is "socks6 discover".
func runDiscover(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("socks6 discover")
	var o discoverOptions
	o.define(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(e.stderr, "socks6 discover", err, discoverUsage)
	}
	if len(pos) != 0 {
		return usageError(e.stderr, "socks6 discover", "no arguments expected")
	}
	if o.code == 0 || o.code > 254 {
		return usageError(e.stderr, "socks6 discover", "-code must be 1 to 254")
	}
	opts := client.DHCPOptions{Interface: o.iface, Code: uint8(o.code)}
	if o.server != "" {
		a, err := netip.ParseAddr(o.server)
		if err != nil || !a.Unmap().Is4() {
			return usageError(e.stderr, "socks6 discover", fmt.Sprintf("-server %q: want an IPv4 address", o.server))
		}
		opts.Server = a
	}
	if o.ent == 0 || o.ent > 0xffffffff {
		return usageError(e.stderr, "socks6 discover", "-enterprise must be 1 to 4294967295")
	}
	ctx, cancel := context.WithTimeout(ctx, o.wait)
	defer cancel()
	var entries []proto.GatewayEntry
	if o.v6 {
		if o.iface == "" {
			return usageError(e.stderr, "socks6 discover", "-6 needs -iface: DHCPv6 servers are asked on one link")
		}
		entries, err = client.DiscoverDHCPv6(ctx, client.DHCPv6Options{Interface: o.iface, Enterprise: uint32(o.ent)})
	} else {
		entries, err = client.DiscoverDHCPv4(ctx, opts)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "socks6 discover: %v\n", err)
		return exitFailure
	}
	for _, en := range entries {
		fmt.Fprintln(e.stdout, en)
	}
	return exitOK
}
