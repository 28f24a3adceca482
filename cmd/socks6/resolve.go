package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// resolve asks the gateway for every address of name (RESOLVE) and
// writes one line per address to stdout, "ADDR ttl=N", in the gateway's
// order. timeout bounds the whole exchange; zero means no limit. A name
// without addresses of the families asked for is an error.
func resolve(ctx context.Context, d *client.Dialer, name string, timeout time.Duration, stdout io.Writer) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	answers, err := d.Resolve(ctx, name)
	if err != nil {
		return err
	}
	if len(answers) == 0 {
		what := "addresses"
		switch d.Family {
		case proto.FamilyIPv4Only:
			what = "IPv4 addresses"
		case proto.FamilyIPv6Only:
			what = "IPv6 addresses"
		}
		return fmt.Errorf("RESOLVE %s: the name has no %s", name, what)
	}
	for _, a := range answers {
		if _, err := fmt.Fprintf(stdout, "%s ttl=%d\n", a.Addr, a.TTL); err != nil {
			return err
		}
	}
	return nil
}
