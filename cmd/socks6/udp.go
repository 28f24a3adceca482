package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/socks6/socks6/client"
)

// udpOptions are the flags of "socks6 udp".
type udpOptions struct {
	wait    time.Duration
	replies int
}

func (o *udpOptions) define(fs *flag.FlagSet) {
	fs.DurationVar(&o.wait, "wait", time.Second, "after the end of standard input, how long to wait for replies (0: until interrupted)")
	fs.IntVar(&o.replies, "replies", 0, "exit once this many datagrams have come back (0: no limit)")
}

// udpTarget is the WriteTo address of target ("host:port"): an IP
// address as itself, a name for the gateway to resolve.
func udpTarget(target string) (net.Addr, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		if p2, err2 := net.LookupPort("udp", port); err2 == nil {
			p = uint64(p2)
		} else {
			return nil, fmt.Errorf("bad port %q", port)
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(p))), nil
	}
	return client.NamedAddr(net.JoinHostPort(host, strconv.FormatUint(p, 10))), nil
}

// udpExchange opens a UDP association in the stream to the gateway,
// sends each line of stdin (with its newline) to target as one datagram,
// and writes the payload of each datagram that comes back to stdout. It
// returns o.wait after the end of stdin (an error if o.replies were asked
// for and fewer came back), once o.replies datagrams have come back, or
// when ctx ends.
func udpExchange(ctx context.Context, d *client.Dialer, target string, o udpOptions, stdin io.Reader, stdout io.Writer, log *logger) error {
	to, err := udpTarget(target)
	if err != nil {
		return err
	}
	pc, err := d.ListenPacket(ctx)
	if err != nil {
		return err
	}
	defer pc.Close()
	if log.verbose {
		log.debugf("UDP association in the stream through %s, public address %v, idle timeout %v", d.ProxyAddress, pc.PublicAddrs(), pc.IdleTimeout())
	}
	// The reader sends exactly one value to recvDone: nil once -replies
	// datagrams have come back (it writes no more), else why it ended.
	recvDone := make(chan error, 1)
	var got atomic.Int64
	go func() {
		buf := make([]byte, 65535)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				recvDone <- err
				return
			}
			if log.verbose {
				log.debugf("%d bytes from %v", k, from)
			}
			if _, err := stdout.Write(buf[:k]); err != nil {
				recvDone <- err
				return
			}
			if got.Add(1) == int64(o.replies) {
				recvDone <- nil
				return
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	// finish closes pc and waits for the reader, whose last write then
	// happens before this function returns. rerr is the reader's value
	// if the caller received it already.
	finish := func(err error, rerr error, received bool) error {
		pc.Close()
		if !received {
			rerr = <-recvDone
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && rerr != nil && !errors.Is(rerr, net.ErrClosed) {
			err = rerr
		}
		return err
	}
	sent := make(chan error, 1)
	go func() {
		br := bufio.NewReader(stdin)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				if _, werr := pc.WriteTo(line, to); werr != nil {
					sent <- werr
					return
				}
			}
			if err == io.EOF {
				sent <- nil
				return
			}
			if err != nil {
				sent <- err
				return
			}
		}
	}()
	var timeout <-chan time.Time
	for {
		select {
		case err := <-sent:
			if err != nil {
				return finish(err, nil, false)
			}
			sent = nil
			if o.wait > 0 {
				t := time.NewTimer(o.wait)
				defer t.Stop()
				timeout = t.C
			}
		case <-timeout:
			var err error
			if n := got.Load(); o.replies > 0 && n < int64(o.replies) {
				err = fmt.Errorf("%d of %d replies came back within -wait %v", n, o.replies, o.wait)
			}
			return finish(err, nil, false)
		case rerr := <-recvDone:
			// -replies reached (nil), or the session ended.
			unblock(stdin)
			return finish(nil, rerr, true)
		case <-ctx.Done():
			unblock(stdin)
			return finish(nil, nil, false)
		}
	}
}
