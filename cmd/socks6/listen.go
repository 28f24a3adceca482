package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/relay"
)

// listen publishes the local service o.to through the gateway, like
// ssh -R. It asks the gateway for a listener (LISTEN), reports the public
// address (a line to log, the bare address to stdout), and connects each
// caller the gateway offers to o.to, relaying both ways with half-close,
// until ctx ends (SIGINT, SIGTERM) or the gateway ends the session.
// Callers outside o.allow are refused (REJECT_OFFER). timeout bounds
// LISTEN and each dial of o.to; zero means no limit.
//
// It returns nil when ctx ends, after closing the listener (and with it
// the session) and every relayed connection; otherwise the error that
// ended the listener.
func listen(ctx context.Context, d *client.Dialer, o listenOptions, timeout time.Duration, stdout io.Writer, log *logger) error {
	lc := client.ListenConfig{Exact: o.exact, DualStack: o.dualStack, OfferTimeout: o.offerTimeout}
	if len(o.allow) > 0 || log.verbose {
		lc.Filter = func(of client.Offer) bool {
			if len(o.allow) > 0 && !o.allow.contains(of.Caller.Addr()) {
				log.debugf("offer from %s refused: not in -allow", of.Caller)
				return false
			}
			log.debugf("offer from %s", of.Caller)
			return true
		}
	}
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		lctx, cancel = context.WithTimeout(ctx, timeout)
	}
	ln, err := d.ListenConfig(lctx, "tcp", net.JoinHostPort(o.bind, strconv.Itoa(o.port)), lc)
	cancel()
	if err != nil {
		return err
	}
	p := &publisher{
		to:     o.to,
		dialer: net.Dialer{Timeout: timeout},
		log:    log,
	}
	return p.serve(ctx, ln, publicAddr(ln.PublicAddrs(), ln.Addr(), d.ProxyAddress), stdout)
}

// publicAddr returns the address callers reach a listener at: the first
// of the public addresses the gateway reported, else the listener's
// address, with an unspecified host (0.0.0.0, ::) replaced by the
// gateway's host from proxy.
func publicAddr(public []netip.AddrPort, addr net.Addr, proxy string) string {
	var ap netip.AddrPort
	if len(public) > 0 {
		ap = public[0]
	} else {
		if addr == nil {
			return ""
		}
		var err error
		if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
			return addr.String()
		}
	}
	if ap.Addr().IsUnspecified() {
		if host, _, err := net.SplitHostPort(proxy); err == nil {
			return net.JoinHostPort(host, strconv.Itoa(int(ap.Port())))
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// A publisher connects the callers of a listener to the local service.
type publisher struct {
	to     string // the local service, host:port
	dialer net.Dialer
	log    *logger

	wg     sync.WaitGroup // the callers' goroutines
	relays relay.Group    // the callers' relays
}

// serve announces pub, then takes callers until ctx ends or ln fails; it
// closes ln and every relay before returning.
func (p *publisher) serve(ctx context.Context, ln *client.Listener, pub string, stdout io.Writer) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	p.log.printf("listening on %s -> %s", pub, p.to)
	_, err := fmt.Fprintln(stdout, pub)
	if err == nil {
		err = p.acceptLoop(ctx, ln, pub)
	}
	ln.Close()
	p.relays.Close()
	p.wg.Wait()
	if p.log.verbose {
		st := ln.Stats()
		p.log.debugf("listener closed: offers %d, taken %d, refused %d, failed %d", st.Offers, st.Taken, st.Rejected, st.Failed)
		if err := ln.LastTakeError(); err != nil && st.Failed > 0 {
			p.log.debugf("last failed take: %s", describe(err))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// acceptLoop takes callers from ln and starts a relay for each, until
// ln fails: it was closed (ctx ended) or the session ended. Offers that
// could not be taken never reach Accept; the Listener counts them.
func (p *publisher) acceptLoop(ctx context.Context, ln *client.Listener, pub string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("the listener on %s ended: %s", pub, cause(err))
		}
		p.wg.Go(func() { p.serveCaller(ctx, c) })
	}
}

// serveCaller connects caller c to the local service and relays until
// both directions end, or serve closes the relays. It closes c.
func (p *publisher) serveCaller(ctx context.Context, c net.Conn) {
	caller := c.RemoteAddr()
	local, err := p.dialer.DialContext(ctx, "tcp", p.to)
	if err != nil {
		c.Close()
		if ctx.Err() == nil {
			p.log.printf("caller %s: cannot reach %s: %v", caller, p.to, unwrapSyscall(err))
		}
		return
	}
	p.log.debugf("caller %s -> %s", caller, p.to)
	start := time.Now()
	done := make(chan struct{})
	var st relay.Stats
	var rerr error
	p.relays.Start(rawConn(c), local, relay.Options{}, func(s relay.Stats, err error) {
		st, rerr = s, err
		close(done)
	})
	<-done
	if rerr != nil && !errors.Is(rerr, net.ErrClosed) {
		p.log.printf("caller %s: %v (%d bytes in, %d out, %v)", caller, rerr, st.Up, st.Down, time.Since(start).Round(time.Millisecond))
		return
	}
	p.log.debugf("caller %s done: %d bytes in, %d out, %v", caller, st.Up, st.Down, time.Since(start).Round(time.Millisecond))
}

// rawConn returns the TCP connection under a *client.Conn, whose bytes
// are the caller's unchanged, so that the relay can splice it; other
// connections are returned as they are.
func rawConn(c net.Conn) net.Conn {
	if cc, ok := c.(*client.Conn); ok {
		if tc, ok := cc.Conn.(*net.TCPConn); ok {
			return tc
		}
	}
	return c
}
