package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"golang.org/x/net/proxy"
)

// A *Dialer is what x/net/proxy calls a Dialer and a ContextDialer.
var (
	_ proxy.Dialer        = (*Dialer)(nil)
	_ proxy.ContextDialer = (*Dialer)(nil)
)

// The registration below makes proxy.FromURL (and so proxy.FromEnvironment
// with ALL_PROXY=socks6://…) return a *Dialer for the socks6 scheme. It
// is the one init side effect of this package, and it is what x/net/proxy
// offers for new schemes.
func init() {
	proxy.RegisterDialerType("socks6", FromURL)
	proxy.RegisterDialerType("socks6s", FromURL)
}

// FromURL returns a *Dialer for a proxy URL:
//
//	socks6://[user[:password]@]host[:port][?ext=auto|require|off]
//	socks6s://[user[:password]@]host[:port][?ext=auto|require|off]
//	socks5://[user[:password]@]host[:port]
//
// socks6 offers the extensions and falls back to plain SOCKS5 (ext=auto,
// the default), or insists on them (ext=require); socks5 and socks5h
// speak plain SOCKS5 only. socks6s is socks6 inside TLS: the Dialer's
// TLSConfig verifies the gateway's certificate for host against the
// system's roots (set TLSConfig.RootCAs on the returned *Dialer for
// others), and ALPN chooses between the extensions and RFC 1928 inside
// TLS. The port defaults to 1080. If forward is not
// nil, the Dialer reaches the gateway through it: with its DialContext
// if it is a proxy.ContextDialer.
func FromURL(u *url.URL, forward proxy.Dialer) (proxy.Dialer, error) {
	d := &Dialer{}
	switch u.Scheme {
	case "socks6":
	case "socks6s":
		// Sessions are resumed: a TLS 1.3 resumption skips the
		// certificate's signature and verification.
		d.TLSConfig = &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	case "socks5", "socks5h":
		d.Extensions = ExtOff
	default:
		return nil, fmt.Errorf("socks: unknown proxy URL scheme %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("socks: proxy URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = "1080"
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("socks: proxy URL port %q: %w", port, err)
	}
	d.ProxyAddress = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		d.Username = u.User.Username()
		d.Password, _ = u.User.Password()
	}
	for k, vs := range u.Query() {
		if k != "ext" || u.Scheme == "socks5" || u.Scheme == "socks5h" || len(vs) != 1 {
			return nil, fmt.Errorf("socks: proxy URL parameter %q not understood", k)
		}
		switch vs[0] {
		case "auto":
			d.Extensions = ExtAuto
		case "require":
			d.Extensions = ExtRequire
		case "off":
			d.Extensions = ExtOff
		default:
			return nil, fmt.Errorf("socks: proxy URL ext=%q: want auto, require or off", vs[0])
		}
	}
	if err := d.checkCredentials(); err != nil {
		return nil, err
	}
	if forward != nil {
		d.ProxyDial = forwardDial(forward)
	}
	return d, nil
}

// forwardDial adapts a proxy.Dialer to ProxyDial. A Dialer without
// DialContext runs in a goroutine, so that ctx can still end the wait;
// a connection it returns after that is closed.
func forwardDial(fw proxy.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if cd, ok := fw.(proxy.ContextDialer); ok {
		return cd.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			c, err := fw.Dial(network, addr)
			ch <- result{c, err}
		}()
		select {
		case r := <-ch:
			return r.c, r.err
		case <-ctx.Done():
			go func() {
				if r := <-ch; r.c != nil {
					r.c.Close()
				}
			}()
			return nil, ctx.Err()
		}
	}
}
