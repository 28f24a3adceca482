//go:build linux && amd64

package socksify

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"golang.org/x/sys/unix"
)

// socks5Request against the real gateway: CONNECT (and data after it),
// a refusal, and UDP ASSOCIATE with a datagram through the relay.
func TestSocks5Request(t *testing.T) {
	echo := socks6test.Listen(t)
	socks6test.Serve(t, echo, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
	gw := startGateway(t, &stubResolver{names: map[string]netip.Addr{}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	target := proto.AddrFromAddrPort(netip.MustParseAddrPort(echo.Addr().String()))
	if _, err := socks5Request(ctx, c, "", "", proto.CommandConnect, target); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}

	closed := socks6test.Listen(t)
	closedAddr := proto.AddrFromAddrPort(netip.MustParseAddrPort(closed.Addr().String()))
	closed.Close()
	c2, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, err = socks5Request(ctx, c2, "", "", proto.CommandConnect, closedAddr)
	var re *client.ReplyError
	if !errors.As(err, &re) || handshakeErrno(err) != unix.ECONNREFUSED {
		t.Errorf("CONNECT to a closed port: %v (errno %v), want a refusal mapped to ECONNREFUSED", err, handshakeErrno(err))
	}

	// UDP ASSOCIATE, then one datagram to a UDP echo server.
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		b := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(b)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort(append([]byte("echo:"), b[:n]...), from)
		}
	}()
	up, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	c3, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	rep, err := socks5Request(ctx, c3, "", "", proto.CommandUDPAssociate, proto.AddrFromAddrPort(up.LocalAddr().(*net.UDPAddr).AddrPort()))
	if err != nil {
		t.Fatal(err)
	}
	relay, ok := rep.Addr.AddrPort()
	if !ok {
		t.Fatalf("relay %v", rep.Addr)
	}
	dst := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	f, err := udpFrame(proto.AddrFromAddrPort(dst), []byte("dgram"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.WriteToUDPAddrPort(f, relay); err != nil {
		t.Fatal(err)
	}
	up.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 2048)
	n, _, err := up.ReadFromUDPAddrPort(b)
	if err != nil {
		t.Fatal(err)
	}
	h, hn, err := proto.ParseUDPHeader(b[:n])
	if err != nil || string(b[hn:n]) != "echo:dgram" {
		t.Fatalf("reply %q: %v", b[:n], err)
	}
	if from, _ := h.Addr.AddrPort(); from != dst {
		t.Errorf("reply from %v, want %v", from, dst)
	}
}

// Without credentials, the greeting and the request go out together:
// the gateway has both before it answers anything.
func TestSocks5RequestPipelined(t *testing.T) {
	cl, sv := net.Pipe()
	defer cl.Close()
	target := proto.Addr{FQDN: "name.test", Port: 80}
	req, _ := proto.Request{Command: proto.CommandConnect, Addr: target}.AppendBinary(nil)
	want := append([]byte{5, 1, 0}, req...)
	go func() {
		defer sv.Close()
		b := make([]byte, len(want))
		if _, err := io.ReadFull(sv, b); err != nil || string(b) != string(want) {
			return
		}
		sv.Write([]byte{5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 80})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := socks5Request(ctx, cl, "", "", proto.CommandConnect, target)
	if err != nil {
		t.Fatal(err)
	}
	if ap, _ := rep.Addr.AddrPort(); ap != netip.MustParseAddrPort("127.0.0.1:80") {
		t.Errorf("bound %v", rep.Addr)
	}

	// A gateway that wants a password: ErrAuth (EACCES).
	cl2, sv2 := net.Pipe()
	defer cl2.Close()
	go func() {
		defer sv2.Close()
		b := make([]byte, len(want))
		io.ReadFull(sv2, b)
		sv2.Write([]byte{5, 0xff})
	}()
	_, err = socks5Request(ctx, cl2, "", "", proto.CommandConnect, target)
	if !errors.Is(err, client.ErrAuth) || handshakeErrno(err) != unix.EACCES {
		t.Errorf("method 0xff: %v", err)
	}

	// Silence: the context's deadline ends it with ETIMEDOUT.
	cl3, sv3 := net.Pipe()
	defer cl3.Close()
	defer sv3.Close()
	go io.Copy(io.Discard, sv3)
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = socks5Request(short, cl3, "", "", proto.CommandConnect, target)
	if handshakeErrno(err) != unix.ETIMEDOUT {
		t.Errorf("silent gateway: %v (errno %v), want ETIMEDOUT", err, handshakeErrno(err))
	}
}

// With credentials: both methods are offered, and the request follows
// the password in one write.
func TestSocks5RequestUserPass(t *testing.T) {
	cl, sv := net.Pipe()
	defer cl.Close()
	target := proto.Addr{FQDN: "name.test", Port: 80}
	req, _ := proto.Request{Command: proto.CommandConnect, Addr: target}.AppendBinary(nil)
	up, _ := proto.UserPassRequest{Username: "alice", Password: "pw"}.AppendBinary(nil)
	errc := make(chan string, 1)
	go func() {
		defer sv.Close()
		g := make([]byte, 4)
		if _, err := io.ReadFull(sv, g); err != nil || string(g) != "\x05\x02\x00\x02" {
			errc <- "greeting " + string(g)
			return
		}
		sv.Write([]byte{5, 2})
		b := make([]byte, len(up)+len(req))
		if _, err := io.ReadFull(sv, b); err != nil || string(b) != string(up)+string(req) {
			errc <- "credentials and request"
			return
		}
		sv.Write([]byte{1, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 80})
		errc <- ""
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := socks5Request(ctx, cl, "alice", "pw", proto.CommandConnect, target); err != nil {
		t.Fatal(err)
	}
	if e := <-errc; e != "" {
		t.Error(e)
	}
}

func TestUDPInodes(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	rc, _ := pc.SyscallConn()
	var ino uint64
	rc.Control(func(fd uintptr) { ino, err = sockInode(int(fd)) })
	if err != nil {
		t.Fatal(err)
	}
	live, err := udpInodes()
	if err != nil {
		t.Fatal(err)
	}
	if !live[ino] {
		t.Errorf("inode %d of a live UDP socket is not in /proc/self/net/udp", ino)
	}
}

// Replies are named by what the program sent to.
func TestAssocOrigin(t *testing.T) {
	fake := netip.MustParseAddrPort("198.18.0.7:5000")
	lit := netip.MustParseAddrPort("203.0.113.9:6000")
	a := &udpAssoc{first: fake}
	a.noteDest(fake, proto.Addr{FQDN: "name.test", Port: 5000})
	a.noteDest(netip.MustParseAddrPort("[::ffff:203.0.113.9]:6000"), proto.AddrFromAddrPort(lit))
	for _, tt := range []struct{ from, want string }{
		{"192.0.2.1:5000", "198.18.0.7:5000"},    // the name resolved there
		{"203.0.113.9:6000", "203.0.113.9:6000"}, // a literal destination
		{"192.0.2.1:7000", "192.0.2.1:7000"},     // unknown: as the gateway says
		{"203.0.113.9:5000", "198.18.0.7:5000"},
	} {
		if got := a.originLocked(netip.MustParseAddrPort(tt.from)); got.String() != tt.want {
			t.Errorf("origin of %s: %v, want %s", tt.from, got, tt.want)
		}
	}
	if got := a.originLocked(netip.AddrPort{}); got != fake {
		t.Errorf("origin of a name: %v, want %v", got, fake)
	}
}

func TestDeliveryAddr(t *testing.T) {
	r := &udpRelay{}
	for _, tt := range []struct {
		local  string
		domain int
		v6only bool
		want   string
	}{
		{"0.0.0.0:4000", unix.AF_INET, false, "127.0.0.1:4000"},
		{"192.0.2.2:4000", unix.AF_INET, false, "192.0.2.2:4000"},
		{"[::]:4000", unix.AF_INET6, false, "127.0.0.1:4000"}, // no IPv6 ingress here
		{"[::]:4000", unix.AF_INET6, true, "invalid AddrPort"},
		{"[::ffff:127.0.0.1]:4000", unix.AF_INET6, false, "127.0.0.1:4000"},
		{"0.0.0.0:0", unix.AF_INET, false, "invalid AddrPort"},
	} {
		got, _ := r.deliveryAddr(netip.MustParseAddrPort(tt.local), tt.domain, tt.v6only)
		if got.String() != tt.want {
			t.Errorf("deliveryAddr(%s, %d, v6only=%v) = %v, want %s", tt.local, tt.domain, tt.v6only, got, tt.want)
		}
	}
}

// sockaddrOf makes each family's sockaddr, and sockaddrAP reads it back.
func TestSockaddrOfRoundTrip(t *testing.T) {
	for _, s := range []string{"127.0.0.1:53", "0.0.0.0:0", "[::1]:8080", "[2001:db8::1]:1", "[::ffff:192.0.2.1]:80"} {
		ap := netip.MustParseAddrPort(s)
		sa := sockaddrOf(ap)
		_, is4 := sa.(*unix.SockaddrInet4)
		if is4 != ap.Addr().Is4() {
			t.Errorf("sockaddrOf(%s) = %T", s, sa)
		}
		if got := sockaddrAP(sa); got != ap {
			t.Errorf("sockaddrAP(sockaddrOf(%s)) = %s", s, got)
		}
	}
}
