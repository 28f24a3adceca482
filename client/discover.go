package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/socks6/socks6/proto"
)

// DHCPOptions configure DiscoverDHCPv4.
type DHCPOptions struct {
	// Interface is the network interface to ask on; its first IPv4
	// address is the client address of the DHCPINFORM. Empty means the
	// interface of the IPv4 default route (on Linux).
	Interface string
	// Server, if valid, is the DHCP server to ask (unicast); the zero
	// value broadcasts to 255.255.255.255 on Interface.
	Server netip.Addr
	// Code is the option code of the gateway list; zero means
	// proto.DHCPv4GatewayOption (224, site-specific: a network that uses
	// another code says so).
	Code uint8
	// Retry is the wait between DHCPINFORMs until ctx ends; zero means
	// one second.
	Retry time.Duration
}

// ErrNoGatewayOption means that a DHCP server answered without the
// gateway option (or with one that does not parse, which is ignored as
// the draft asks).
var ErrNoGatewayOption = errors.New("socks: the DHCP server's answer has no SOCKS gateway option")

// DiscoverDHCPv4 asks the network's DHCPv4 server which SOCKS gateways it
// advertises (draft-socks6-extensions-00, "DHCPv4 Option"): it sends a
// DHCPINFORM (RFC 2131 section 3.4) from the interface's address,
// requesting the gateway option, until an answer comes or ctx ends, and
// returns the option's entries, the most preferred first (entries of
// equal priority in random order). It needs to bind UDP port 68 on that
// address: root, or CAP_NET_BIND_SERVICE.
//
// Discovery is a hint that anyone who can answer DHCP on the link can
// forge: never send a password to a discovered gateway without TLS, and
// authenticate a TLS one against a name from your own configuration.
func DiscoverDHCPv4(ctx context.Context, o DHCPOptions) ([]proto.GatewayEntry, error) {
	name := o.Interface
	if name == "" {
		if name = defaultRouteInterface(); name == "" {
			return nil, errors.New("socks: DHCP discovery: no IPv4 default route; name the interface")
		}
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("socks: DHCP discovery: %w", err)
	}
	local, err := firstIPv4(ifi)
	if err != nil {
		return nil, err
	}
	code := o.Code
	if code == 0 {
		code = proto.DHCPv4GatewayOption
	}
	retry := o.Retry
	if retry <= 0 {
		retry = time.Second
	}
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), 67)
	if o.Server.IsValid() {
		dst = netip.AddrPortFrom(o.Server.Unmap(), 67)
	}

	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return dhcpSockopts(rc, ifi.Name)
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", netip.AddrPortFrom(local, 68).String())
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("socks: DHCP discovery needs UDP port 68 on %s (root or CAP_NET_BIND_SERVICE): %w", local, err)
		}
		return nil, fmt.Errorf("socks: DHCP discovery: UDP port 68 on %s: %w", local, err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	req, err := dhcpv4.New(
		dhcpv4.WithMessageType(dhcpv4.MessageTypeInform),
		dhcpv4.WithHwAddr(ifi.HardwareAddr),
		dhcpv4.WithClientIP(local.AsSlice()),
		dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(code)),
		// Without it a server must keep its answer within 576 bytes,
		// and a long gateway list (RFC 3396) is left out.
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500)),
	)
	if err != nil {
		return nil, fmt.Errorf("socks: DHCPINFORM: %w", err)
	}
	return askDHCP(ctx, pc, req.ToBytes(), net.UDPAddrFromAddrPort(dst), retry, "DHCP", ifi.Name,
		func(b []byte, from net.Addr) ([]proto.GatewayEntry, bool, error) {
			ack, err := dhcpv4.FromBytes(b)
			if err != nil || ack.TransactionID != req.TransactionID || ack.OpCode != dhcpv4.OpcodeBootReply ||
				ack.MessageType() != dhcpv4.MessageTypeAck {
				return nil, false, nil // not the answer to our question
			}
			if o.Server.IsValid() && !fromServer(from, ack, o.Server.Unmap()) {
				return nil, false, nil // asked one server, answered by another
			}
			v := ack.Options.Get(dhcpv4.GenericOptionCode(code))
			if v == nil {
				return nil, true, ErrNoGatewayOption
			}
			entries, err := proto.ParseGatewayEntries(v, false)
			if err != nil {
				return nil, true, fmt.Errorf("%w: option %d does not parse (%v)", ErrNoGatewayOption, code, err)
			}
			return entries, true, nil
		})
}

// askDHCP sends packet to to on pc every retry until ctx ends, and hands
// each datagram that comes back to answer: ours false for one that is not
// the answer to this question (ignored), else the entries or the error
// that end the discovery. The entries come back by priority. what and
// ifname name the protocol and the interface in errors.
func askDHCP(ctx context.Context, pc net.PacketConn, packet []byte, to net.Addr, retry time.Duration, what, ifname string,
	answer func(b []byte, from net.Addr) (entries []proto.GatewayEntry, ours bool, err error)) ([]proto.GatewayEntry, error) {
	buf := make([]byte, 4096)
	for {
		if _, err := pc.WriteTo(packet, to); err != nil {
			return nil, fmt.Errorf("socks: sending a %s request on %s: %w", what, ifname, err)
		}
		pc.SetReadDeadline(time.Now().Add(retry))
		for {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("socks: no %s answer on %s: %w", what, ifname, ctx.Err())
			}
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
					break // send again
				}
				if ctx.Err() != nil {
					continue // reported above
				}
				return nil, fmt.Errorf("socks: %s discovery: %w", what, err)
			}
			entries, ours, err := answer(buf[:n], from)
			if !ours {
				continue
			}
			if err != nil {
				return nil, err
			}
			return byPriority(entries), nil
		}
	}
}

// fromServer reports whether an answer that came from addr is server's:
// sent from its address, and naming it as the server identifier if it
// names one.
func fromServer(addr net.Addr, ack *dhcpv4.DHCPv4, server netip.Addr) bool {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua.AddrPort().Addr().Unmap() != server {
		return false
	}
	if id := ack.ServerIdentifier(); id != nil {
		a, ok := netip.AddrFromSlice(id)
		return ok && a.Unmap() == server
	}
	return true
}

// byPriority sorts entries by priority, those of equal priority shuffled.
func byPriority(es []proto.GatewayEntry) []proto.GatewayEntry {
	rand.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
	slices.SortStableFunc(es, func(a, b proto.GatewayEntry) int { return int(a.Priority) - int(b.Priority) })
	return es
}

// firstIPv4 returns the first IPv4 address of ifi that is not
// link-local.
func firstIPv4(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("socks: DHCP discovery: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if in, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(in.IP); ok && ip.Unmap().Is4() && !ip.IsLinkLocalUnicast() && !ip.IsLoopback() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("socks: DHCP discovery: %s has no IPv4 address to ask from", ifi.Name)
}
