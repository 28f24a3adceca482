package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socks6/socks6/proto"
)

const (
	// maxUDPPayload is the largest datagram payload relayed.
	maxUDPPayload = 65535
	// maxUDPPeers bounds the destinations one association remembers
	// (for filtering replies and caching policy decisions).
	maxUDPPeers = 1024
)

// udpAssoc is one UDP ASSOCIATE: a relay socket facing the client and an
// outbound socket facing targets. Datagrams are accepted only from the
// client's IP (and port, once known); replies only from destinations the
// client has sent to (address- and port-restricted, like a NAT), so the
// association is no open reflector.
type udpAssoc struct {
	ss     *session
	ctx    context.Context // ends with the association: bounds its lookups
	relay  *net.UDPConn
	out    *net.UDPConn
	client atomic.Pointer[netip.AddrPort] // learned from the first datagram if not given

	clientIP netip.Addr
	last     atomic.Int64

	mu    sync.Mutex
	peers map[netip.AddrPort]struct{} // destinations sent to

	up, down atomic.Int64
}

// udpAssociate serves UDP ASSOCIATE (RFC 1928 section 7). The
// association lives as long as the control connection and ends when the
// client closes it or after the idle timeout without datagrams.
func (ss *session) udpAssociate(ctx context.Context) error {
	local := addrPortOf(ss.c.LocalAddr()).Addr().Unmap()
	rc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return err
	}
	defer rc.Close()
	oc, err := ss.s.listenUDP(ss.s.baseCtx, "udp") // as in-stream associations
	if err != nil {
		return err
	}
	defer oc.Close()
	actx, cancel := context.WithCancel(ss.s.baseCtx)
	defer cancel()
	a := &udpAssoc{ss: ss, ctx: actx, relay: rc, out: oc, clientIP: ss.client.Addr().Unmap(),
		peers: make(map[netip.AddrPort]struct{})}
	a.last.Store(time.Now().UnixNano())
	if t := ss.req.Target; t.FQDN == "" && t.Port != 0 {
		// The client said where it will send from.
		ip := t.IP.Unmap()
		if !ip.IsValid() || ip.IsUnspecified() {
			ip = a.clientIP
		}
		if ip == a.clientIP {
			ap := netip.AddrPortFrom(ip, t.Port)
			a.client.Store(&ap)
		}
	}
	bound := addrPortOf(rc.LocalAddr())
	ss.bound = bound.String()
	if err := ss.writeReply(proto.ReplySucceeded, proto.AddrFromAddrPort(bound)); err != nil {
		return err
	}
	ss.c.SetDeadline(time.Time{})

	var wg sync.WaitGroup
	wg.Add(2)
	go a.clientToTargets(&wg)
	go a.targetsToClient(&wg)
	err = a.waitControl()
	cancel() // a lookup in flight (admit) ends now, not at its timeout
	rc.Close()
	oc.Close()
	wg.Wait()
	ss.up, ss.down = a.up.Load(), a.down.Load()
	return err
}

// waitControl blocks until the control connection closes (the normal end)
// or the association idles out.
func (a *udpAssoc) waitControl() error {
	var b [512]byte
	idle := a.ss.s.idleTimeout()
	for {
		if idle > 0 {
			a.ss.c.SetReadDeadline(time.Unix(0, a.last.Load()).Add(idle))
		}
		_, err := a.ss.c.Read(b[:])
		if err == nil {
			continue // RFC 1928 gives the control connection nothing to carry; ignore
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if time.Since(time.Unix(0, a.last.Load())) < idle {
				continue
			}
			return err
		}
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil // EOF or reset: the client ended the association
	}
}

func (a *udpAssoc) touch() { a.last.Store(time.Now().UnixNano()) }

// clientToTargets forwards the client's datagrams to their destinations.
func (a *udpAssoc) clientToTargets(wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, proto.MaxUDPHeaderLen+maxUDPPayload)
	allowed := make(map[proto.Addr]netip.AddrPort)
	for {
		n, src, err := a.relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if src.Addr() != a.clientIP {
			continue
		}
		if cl := a.client.Load(); cl == nil {
			a.client.Store(&src)
		} else if *cl != src {
			continue
		}
		h, hn, err := proto.ParseUDPHeader(buf[:n])
		if err != nil || h.Frag != 0 {
			continue // malformed or fragmented: dropped, as RFC 1928 allows
		}
		dst, ok := allowed[h.Addr]
		if !ok {
			dst, ok = a.admit(h.Addr)
			if !ok {
				continue
			}
			if len(allowed) >= maxUDPPeers {
				clear(allowed)
			}
			allowed[h.Addr] = dst
		}
		a.remember(dst)
		if _, err := a.out.WriteToUDPAddrPort(buf[hn:n], dst); err == nil {
			a.up.Add(int64(n - hn))
			a.touch()
		}
	}
}

// admit resolves a datagram's destination and checks it against guard and
// policy.
func (a *udpAssoc) admit(t proto.Addr) (netip.AddrPort, bool) {
	ctx, cancel := context.WithTimeout(a.ctx, a.ss.s.dialTimeout())
	defer cancel()
	r := a.ss.req
	r.Target = t
	if p := a.ss.st.Policy; p != nil {
		if err := p.Allow(ctx, &r); err != nil {
			return netip.AddrPort{}, false
		}
	}
	ips, err := a.ss.resolveFor(ctx, &r)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, false
	}
	if t.FQDN == "" {
		if err := a.ss.allowIPFor(ctx, &r, ips[0]); err != nil {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(ips[0], t.Port), true
}

// remember records dst as a peer whose replies may come back.
func (a *udpAssoc) remember(dst netip.AddrPort) {
	a.mu.Lock()
	if _, ok := a.peers[dst]; !ok {
		if len(a.peers) >= maxUDPPeers {
			clear(a.peers)
		}
		a.peers[dst] = struct{}{}
	}
	a.mu.Unlock()
}

func (a *udpAssoc) isPeer(src netip.AddrPort) bool {
	a.mu.Lock()
	_, ok := a.peers[src]
	a.mu.Unlock()
	return ok
}

// targetsToClient wraps replies from known destinations in a UDP header
// and sends them to the client. The payload is read in place behind room
// for the largest IP header so that wrapping costs no copy of it.
func (a *udpAssoc) targetsToClient(wg *sync.WaitGroup) {
	defer wg.Done()
	const room = 3 + 1 + 16 + 2 // RSV FRAG ATYP IPv6 PORT
	buf := make([]byte, room+maxUDPPayload)
	var hb [room]byte
	for {
		n, src, err := a.out.ReadFromUDPAddrPort(buf[room:])
		if err != nil {
			return
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if !a.isPeer(src) {
			continue
		}
		cl := a.client.Load()
		if cl == nil {
			continue
		}
		h, _ := proto.UDPHeader{Addr: proto.AddrFromAddrPort(src)}.AppendBinary(hb[:0])
		start := room - len(h)
		copy(buf[start:room], h)
		if _, err := a.relay.WriteToUDPAddrPort(buf[start:room+n], *cl); err == nil {
			a.down.Add(int64(n))
			a.touch()
		}
	}
}
