package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// A minimal SOCKS5 client (RFC 1928, RFC 1929) for measuring servers: a
// standard, non-pipelined exchange (greeting, optional username/password,
// request, each waiting for its answer), IPv4 targets only, with all
// message buffers owned by the caller so the hot path does not allocate.

const (
	cmdConnect   = 1
	cmdAssociate = 3
)

// target is one server under test, or the direct path.
type target struct {
	Name   string `json:"name"`
	Addr   string `json:"addr,omitempty"`
	PIDs   []int  `json:"pids,omitempty"`
	User   string `json:"user,omitempty"`
	Direct bool   `json:"direct,omitempty"`
	// Resolver says how the server resolves names in the dns scenario:
	// "own" (socks6d's [resolver] section), "system", "libc" (run.sh).
	Resolver string `json:"resolver,omitempty"`
	// URLs is the socksify scenario's number of URLs per rate run for
	// this client (calibrated at the start).
	URLs int `json:"urls,omitempty"`

	pass string
	ap   netip.AddrPort
	dial string // ap as a string, made once

	fresh memSample // server at start, before any measurement
	dead  bool
}

func (t *target) auth() bool { return t.User != "" }

// spec is t as a -target value (the dns scenario hands targets to its
// child process this way); "direct" for the direct path.
func (t *target) spec() string {
	if t.Direct {
		return "direct"
	}
	pids := make([]string, len(t.PIDs))
	for i, p := range t.PIDs {
		pids[i] = strconv.Itoa(p)
	}
	s := "name=" + t.Name + ",addr=" + t.Addr + ",pid=" + strings.Join(pids, "+")
	if t.User != "" {
		s += ",user=" + t.User + ",pass=" + t.pass
	}
	if t.Resolver != "" {
		s += ",resolver=" + t.Resolver
	}
	return s
}

// replyError is a SOCKS5 reply other than "succeeded".
type replyError byte

var replyText = [...]string{"succeeded", "general failure", "not allowed by ruleset",
	"network unreachable", "host unreachable", "connection refused", "TTL expired",
	"command not supported", "address type not supported"}

func (e replyError) Error() string {
	if int(e) < len(replyText) {
		return fmt.Sprintf("socks5 reply %d (%s)", byte(e), replyText[e])
	}
	return fmt.Sprintf("socks5 reply %d", byte(e))
}

// errServerClosed means the server closed the connection instead of
// answering a request.
var errServerClosed = errors.New("server closed the connection")

// client holds one worker's message buffer.
type client struct {
	buf [600]byte
}

var dialer = net.Dialer{Timeout: 5 * time.Second}

func dialTCP(addr string) (*net.TCPConn, error) {
	c, err := dialer.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// endpoint is an address in both forms the client needs.
type endpoint struct {
	ap  netip.AddrPort
	str string
}

func newEndpoint(ap netip.AddrPort) endpoint { return endpoint{ap, ap.String()} }

// open returns a connection to dst: through t's CONNECT, or straight to
// dst for the direct path. The handshake is bounded by hsTimeout.
func (cl *client) open(t *target, dst endpoint, hsTimeout time.Duration) (*net.TCPConn, error) {
	if t.Direct {
		return dialTCP(dst.str)
	}
	c, err := dialTCP(t.dial)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(hsTimeout))
	if err := cl.greet(c, t); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := cl.request(c, cmdConnect, dst.ap); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func (cl *client) readFull(c *net.TCPConn, n int) error {
	_, err := io.ReadFull(c, cl.buf[:n])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errServerClosed
	}
	return err
}

// greet offers one method (username/password if t has a user, else none)
// and authenticates.
func (cl *client) greet(c *net.TCPConn, t *target) error {
	b := cl.buf[:0]
	method := byte(0)
	if t.auth() {
		method = 2
	}
	b = append(b, 5, 1, method)
	if _, err := c.Write(b); err != nil {
		return err
	}
	if err := cl.readFull(c, 2); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if cl.buf[0] != 5 || cl.buf[1] != method {
		return fmt.Errorf("greeting: server chose method %d", cl.buf[1])
	}
	if !t.auth() {
		return nil
	}
	b = cl.buf[:0]
	b = append(b, 1, byte(len(t.User)))
	b = append(b, t.User...)
	b = append(b, byte(len(t.pass)))
	b = append(b, t.pass...)
	if _, err := c.Write(b); err != nil {
		return err
	}
	if err := cl.readFull(c, 2); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if cl.buf[1] != 0 {
		return fmt.Errorf("auth: refused (status %d)", cl.buf[1])
	}
	return nil
}

// request sends cmd for an IPv4 dst and reads the reply, returning the
// bound address.
func (cl *client) request(c *net.TCPConn, cmd byte, dst netip.AddrPort) (netip.AddrPort, error) {
	a := dst.Addr().As4()
	b := append(cl.buf[:0], 5, cmd, 0, 1, a[0], a[1], a[2], a[3], byte(dst.Port()>>8), byte(dst.Port()))
	if _, err := c.Write(b); err != nil {
		return netip.AddrPort{}, err
	}
	return cl.reply(c)
}

// requestHost sends cmd for a domain-name destination (ATYP 3) and reads
// the reply, returning the bound address.
func (cl *client) requestHost(c *net.TCPConn, cmd byte, host string, port uint16) (netip.AddrPort, error) {
	if len(host) == 0 || len(host) > 255 {
		return netip.AddrPort{}, fmt.Errorf("request: host name of %d bytes", len(host))
	}
	b := append(cl.buf[:0], 5, cmd, 0, 3, byte(len(host)))
	b = append(b, host...)
	b = append(b, byte(port>>8), byte(port))
	if _, err := c.Write(b); err != nil {
		return netip.AddrPort{}, err
	}
	return cl.reply(c)
}

// openHost returns a connection to host:port: through t's CONNECT with
// the name as the destination (the server resolves it), or for the
// direct path with net.Dialer and Go's resolver. The handshake is
// bounded by hsTimeout.
func (cl *client) openHost(t *target, host string, port uint16, hsTimeout time.Duration) (*net.TCPConn, error) {
	if t.Direct {
		ctx, cancel := context.WithTimeout(context.Background(), hsTimeout)
		defer cancel()
		c, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	c, err := dialTCP(t.dial)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(hsTimeout))
	if err := cl.greet(c, t); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := cl.requestHost(c, cmdConnect, host, port); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// reply reads a request's reply, returning the bound address.
func (cl *client) reply(c *net.TCPConn) (netip.AddrPort, error) {
	if err := cl.readFull(c, 5); err != nil {
		return netip.AddrPort{}, fmt.Errorf("request: %w", err)
	}
	if cl.buf[0] != 5 {
		return netip.AddrPort{}, fmt.Errorf("request: bad reply version %d", cl.buf[0])
	}
	rep := cl.buf[1]
	var rest int
	switch cl.buf[3] {
	case 1:
		rest = 4 - 1 + 2
	case 4:
		rest = 16 - 1 + 2
	case 3:
		rest = int(cl.buf[4]) + 2
	default:
		return netip.AddrPort{}, fmt.Errorf("request: bad address type %d", cl.buf[3])
	}
	first := cl.buf[4]
	if _, err := io.ReadFull(c, cl.buf[5:5+rest]); err != nil {
		if rep != 0 {
			return netip.AddrPort{}, replyError(rep)
		}
		return netip.AddrPort{}, fmt.Errorf("request: %w", err)
	}
	if rep != 0 {
		return netip.AddrPort{}, replyError(rep)
	}
	var bnd netip.AddrPort
	switch cl.buf[3] {
	case 1:
		ip := netip.AddrFrom4([4]byte{first, cl.buf[5], cl.buf[6], cl.buf[7]})
		bnd = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(cl.buf[8:10]))
	case 4:
		var a16 [16]byte
		a16[0] = first
		copy(a16[1:], cl.buf[5:20])
		bnd = netip.AddrPortFrom(netip.AddrFrom16(a16).Unmap(), binary.BigEndian.Uint16(cl.buf[20:22]))
	case 3:
		// A host name as bound address: resolve it (rare; not hot).
		host := string(cl.buf[5 : 5+int(first)])
		port := binary.BigEndian.Uint16(cl.buf[5+int(first):])
		ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", host)
		if err != nil || len(ips) == 0 {
			return netip.AddrPort{}, fmt.Errorf("request: bound host %q: %v", host, err)
		}
		bnd = netip.AddrPortFrom(ips[0], port)
	}
	return bnd, nil
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %v", host, err)
	}
	return netip.AddrPortFrom(ips[0], uint16(p)), nil
}
