package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/socks6/socks6/proto"
)

// DHCPv6Options configure DiscoverDHCPv6.
type DHCPv6Options struct {
	// Interface is the network interface to ask on (required: DHCPv6
	// servers are reached on the link, at ff02::1:2).
	Interface string
	// Enterprise is the vendor enterprise number of the gateway
	// sub-option; zero means proto.DHCPv6Enterprise (32473, the
	// draft's placeholder).
	Enterprise uint32
	// Retry is the wait between requests until ctx ends; zero means one
	// second.
	Retry time.Duration
}

// DiscoverDHCPv6 asks the link's DHCPv6 servers which SOCKS gateways
// they advertise (draft-socks6-extensions-00, "DHCPv6 Option"): it sends
// an Information-request (RFC 8415 section 18.2.6) to ff02::1:2 from the
// interface, with OPTION_VENDOR_OPTS in its Option Request option, until
// a Reply comes or ctx ends, and returns the entries of the gateway
// sub-option under the enterprise number, the most preferred first. It
// needs UDP port 546: root, or CAP_NET_BIND_SERVICE. As for DHCPv4, what
// it finds is a hint, never a credential.
func DiscoverDHCPv6(ctx context.Context, o DHCPv6Options) ([]proto.GatewayEntry, error) {
	ifi, err := net.InterfaceByName(o.Interface)
	if err != nil {
		return nil, fmt.Errorf("socks: DHCPv6 discovery: %w", err)
	}
	ent := o.Enterprise
	if ent == 0 {
		ent = proto.DHCPv6Enterprise
	}
	retry := o.Retry
	if retry <= 0 {
		retry = time.Second
	}
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6zero, Port: 546, Zone: ifi.Name})
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("socks: DHCPv6 discovery needs UDP port 546 (root or CAP_NET_BIND_SERVICE): %w", err)
		}
		return nil, fmt.Errorf("socks: DHCPv6 discovery: UDP port 546 on %s: %w", ifi.Name, err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	req, err := dhcpv6.NewMessage()
	if err != nil {
		return nil, fmt.Errorf("socks: DHCPv6 Information-request: %w", err)
	}
	req.MessageType = dhcpv6.MessageTypeInformationRequest
	if len(ifi.HardwareAddr) > 0 {
		req.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: 1, LinkLayerAddr: ifi.HardwareAddr}))
	}
	req.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionVendorOpts))
	req.AddOption(dhcpv6.OptElapsedTime(0))
	to := &net.UDPAddr{IP: net.ParseIP("ff02::1:2"), Port: 547, Zone: ifi.Name}
	return askDHCP(ctx, pc, req.ToBytes(), to, retry, "DHCPv6", ifi.Name,
		func(b []byte, _ net.Addr) ([]proto.GatewayEntry, bool, error) {
			d, err := dhcpv6.FromBytes(b)
			if err != nil {
				return nil, false, nil
			}
			rep, ok := d.(*dhcpv6.Message)
			if !ok || rep.MessageType != dhcpv6.MessageTypeReply || rep.TransactionID != req.TransactionID {
				return nil, false, nil // not the answer to our question
			}
			for _, opt := range rep.Options.Get(dhcpv6.OptionVendorOpts) {
				entries, err := proto.ParseDHCPv6VendorGateways(opt.ToBytes(), ent)
				if errors.Is(err, proto.ErrNoGatewaySubOption) {
					continue // another vendor's
				}
				if err != nil {
					return nil, true, fmt.Errorf("%w: the vendor option of enterprise %d does not parse (%v)", ErrNoGatewayOption, ent, err)
				}
				return entries, true, nil
			}
			return nil, true, ErrNoGatewayOption
		})
}
