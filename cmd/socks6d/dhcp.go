package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/socks6/socks6/proto"
)

// dhcpOption is the "socks6d dhcp-option" subcommand: it prints the
// DHCP option that advertises this gateway (draft-socks6-extensions-00,
// "Discovery") in the configuration syntax of common DHCP servers, for
// the router's administrator to paste. socks6d itself answers no DHCP.
func dhcpOption(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("socks6d dhcp-option", flag.ContinueOnError)
	fs.SetOutput(stderr)
	code := fs.Uint("code", proto.DHCPv4GatewayOption, "the DHCPv4 option `CODE` (site-specific, 224 unless your network uses it)")
	ent := fs.Uint("enterprise", proto.DHCPv6Enterprise, "the DHCPv6 vendor enterprise `NUMBER` (32473 is the documentation placeholder)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: socks6d dhcp-option [-code N] [-enterprise N] GATEWAY...

Print the DHCP option that advertises SOCKS gateways to the clients of a
network, in dnsmasq's and ISC dhcpd's syntax, for the router's DHCP server.
Clients (socks6 discover, socksify) ask for it with a DHCPINFORM.

Each GATEWAY is ADDR:PORT, optionally followed by ",tls" (a socks6d [tls]
address: ALPN socks6 and socks5) and ",priority=N" (lower is preferred;
default 10). IPv4 addresses go into the DHCPv4 option, IPv6 ones into the
DHCPv6 vendor option. For example:

  socks6d dhcp-option 192.0.2.1:1080 192.0.2.1:1443,tls,priority=20

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "socks6d dhcp-option: no gateway given (ADDR:PORT[,tls][,priority=N])")
		return exitUsage
	}
	if *code == 0 || *code > 254 || *ent > 0xffffffff {
		fmt.Fprintln(stderr, "socks6d dhcp-option: -code must be 1 to 254, -enterprise fit in 32 bits")
		return exitUsage
	}
	var v4, v6 []proto.GatewayEntry
	for _, a := range fs.Args() {
		e, err := parseGatewayArg(a)
		if err != nil {
			fmt.Fprintf(stderr, "socks6d dhcp-option: %q: %v\n", a, err)
			return exitUsage
		}
		if e.Addr.Is4() {
			v4 = append(v4, e)
		} else {
			v6 = append(v6, e)
		}
	}
	if len(v4) > 0 {
		b, err := proto.AppendGatewayEntries(nil, v4, false)
		if err != nil {
			fmt.Fprintf(stderr, "socks6d dhcp-option: %v\n", err)
			return exitFailure
		}
		h := colonHex(b)
		fmt.Fprintf(stdout, "# DHCPv4 option %d (%d bytes)\n", *code, len(b))
		if len(b) <= 255 {
			fmt.Fprintf(stdout, "# dnsmasq:\ndhcp-option=%d,%s\n", *code, h)
		} else {
			fmt.Fprintf(stdout, "# dnsmasq: not possible, it sends 255 bytes at most; list fewer gateways for it\n")
		}
		// ISC dhcpd splits a long option itself (RFC 3396), and answers
		// DHCPINFORM only for subnets it is authoritative for.
		fmt.Fprintf(stdout, "# ISC dhcpd (the subnet must be declared authoritative;):\noption socks-gateway code %d = string;\noption socks-gateway %s;\n", *code, h)
	}
	if len(v6) > 0 {
		b, err := proto.AppendDHCPv6VendorGateways(nil, uint32(*ent), v6)
		if err != nil {
			fmt.Fprintf(stderr, "socks6d dhcp-option: %v\n", err)
			return exitFailure
		}
		// dnsmasq adds the enterprise number and sub-option header from
		// vi-encap:N,option6:M.
		fmt.Fprintf(stdout, "# DHCPv6 OPTION_VENDOR_OPTS, enterprise %d, sub-option %d (value: %s)\n", *ent, proto.DHCPv6GatewaySubOption, hex.EncodeToString(b))
		fmt.Fprintf(stdout, "# dnsmasq:\ndhcp-option=vi-encap:%d,option6:%d,%s\n", *ent, proto.DHCPv6GatewaySubOption, colonHex(b[8:]))
	}
	return exitOK
}

// parseGatewayArg parses ADDR:PORT[,tls][,priority=N].
func parseGatewayArg(s string) (proto.GatewayEntry, error) {
	parts := strings.Split(s, ",")
	ap, err := netip.ParseAddrPort(parts[0])
	if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().Zone() != "" {
		return proto.GatewayEntry{}, errors.New("want ADDR:PORT with the gateway's own address and port, such as 192.0.2.1:1080 or [2001:db8::1]:1080")
	}
	e := proto.GatewayEntry{Priority: 10, Addr: ap.Addr().Unmap(), Port: ap.Port()}
	for _, p := range parts[1:] {
		switch k, v, _ := strings.Cut(p, "="); k {
		case "tls":
			e.ALPN = []string{proto.ALPNSOCKS6, proto.ALPNSOCKS5}
		case "priority":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return proto.GatewayEntry{}, fmt.Errorf("priority=%q: want 0 to 65535", v)
			}
			e.Priority = uint16(n)
		default:
			return proto.GatewayEntry{}, fmt.Errorf("unknown %q: want tls or priority=N", p)
		}
	}
	return e, nil
}

// colonHex writes b as hex bytes joined by colons, as DHCP servers'
// configuration files take binary option values.
func colonHex(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02x", c)
	}
	return sb.String()
}
