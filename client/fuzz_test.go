package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
)

// FuzzClientHandshake feeds arbitrary gateway bytes to the client over
// net.Pipe. The first byte picks the procedure: CONNECT with ExtAuto,
// with credentials, with ExtRequire, or a session with RESOLVE and PING.
// The client must not panic, and must not hang: the gateway's side
// closes after its bytes, so every procedure ends well before the
// deadline.
func FuzzClientHandshake(f *testing.F) {
	var hs []byte
	hs = append(hs, proto.Version5, byte(proto.MethodExtensions))
	ack, _ := proto.AppendFrame(nil, proto.HelloAck{Features: proto.FeatureResolve, SessionID: proto.SessionID{1}})
	hs = append(hs, ack...)
	conn, _ := proto.ConnectedOption(proto.Addr{FQDN: "x.test", Port: 80})
	reply, _ := proto.AppendFrame(nil, proto.ExtReply{ID: 1, Command: proto.CommandConnect, Options: proto.Options{conn}})
	ping, _ := proto.AppendFrame(nil, proto.Ping{Opaque: [8]byte{1}})
	resolve, _ := proto.AppendFrame(nil, proto.ExtReply{ID: 1, Command: proto.CommandResolve,
		Answers: []proto.ResolveAnswer{{TTL: 5, Addr: ip4}, {TTL: 6, Addr: ip6}}})
	closeF, _ := proto.AppendFrame(nil, proto.Close{Reason: proto.ReplyGeneralFailure, Options: proto.Options{proto.DiagnosticOption("bye")}})
	grease, _ := proto.Frame{Type: 0x5f, Value: []byte("x")}.AppendBinary(nil)

	cat := func(mode byte, parts ...[]byte) []byte {
		b := []byte{mode}
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	f.Add(cat(0, hs, grease, ping, reply, []byte("data")))
	f.Add(cat(0, []byte{5, 0}, []byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 80}))
	f.Add(cat(0, []byte{5, 0}, []byte{5, 0, 0, 3, 4, 'a', '.', 't', 'e', 0, 80}))
	f.Add(cat(1, []byte{5, 2, 1, 0}, []byte{5, 0, 0, 4}, make([]byte, 18)))
	f.Add(cat(1, []byte{5, 2, 1, 1}))
	f.Add(cat(1, []byte{5, 0xff}))
	f.Add(cat(2, hs, closeF))
	f.Add(cat(2, []byte{5, 0}))
	f.Add(cat(3, hs, ping, grease, resolve, ping))
	f.Add(cat(3, hs, closeF))
	f.Add(cat(3, hs, []byte{0x04, 0x44, 0x01}))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		mode, gwBytes := data[0]%4, data[1:]
		cli, srv := net.Pipe()
		var wg sync.WaitGroup
		wg.Go(func() {
			srv.Write(gwBytes)
			srv.Close()
		})
		wg.Go(func() { io.Copy(io.Discard, srv) })
		defer wg.Wait()
		defer cli.Close()

		d := &client.Dialer{
			ProxyAddress: "gateway.test:1080",
			ProxyDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return cli, nil
			},
		}
		switch mode {
		case 1:
			d.Username, d.Password = "user", "secret"
		case 2:
			d.Extensions = client.ExtRequire
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		var err error
		if mode == 3 {
			var s *client.Session
			s, err = d.OpenSession(ctx)
			if err == nil {
				_, err = s.Resolve(ctx, "a.test")
				if err == nil {
					_, err = s.Ping(ctx)
				}
				s.Close()
			}
		} else {
			var c net.Conn
			c, err = d.DialContext(ctx, "tcp", "a.test:80")
			if err == nil {
				io.Copy(io.Discard, c)
				c.Close()
			}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the client hung until its deadline on gateway bytes %x", gwBytes)
		}
	})
}

// FuzzSessionFrames feeds arbitrary frames to a session that holds a
// listener, and arbitrary bytes to the connections that take its
// offers, over net.Pipe. data is a mode byte, a 2-byte length n, n bytes
// for the control connection (after HELLO_ACK and the REPLY to LISTEN
// with Listener ID 1, unless mode bit 2 leaves the REPLY to the fuzzer
// too), and the bytes each take connection gets. Mode bit 0 rejects
// every offer with Filter; bit 1 listens with Session.Listen rather than
// Dialer.Listen. The client must not panic, hang, or leak goroutines.
func FuzzSessionFrames(f *testing.F) {
	caller := proto.Addr{IP: ip4, Port: 40000}
	offer := proto.AcceptOffer{ListenerID: 1, Token: proto.Token{1}, Caller: caller, ExpiresMillis: 10000}
	take := append([]byte{proto.Version5, byte(proto.MethodExtensions)},
		encFrames(proto.HelloAck{Features: proto.FeatureListen, SessionID: proto.SessionID{2}},
			proto.ExtReply{ID: 1, Command: proto.CommandTake, Addr: caller})...)
	take = append(take, "caller's bytes"...)
	listenRep := encFrames(proto.ExtReply{ID: 1, Command: proto.CommandListen, ListenerID: 1, Addr: proto.Addr{IP: ip4, Port: 8080}})
	cat := func(mode byte, ctl, take []byte) []byte {
		b := []byte{mode, byte(len(ctl) >> 8), byte(len(ctl))}
		b = append(b, ctl...)
		return append(b, take...)
	}
	f.Add(cat(0, encFrames(offer), take))
	f.Add(cat(1, encFrames(offer, proto.Ping{Opaque: [8]byte{1}}), take))
	f.Add(cat(2, encFrames(offer, offer), take))
	f.Add(cat(0, encFrames(proto.AcceptOffer{ListenerID: 2, Caller: caller}), take))
	f.Add(cat(0, encFrames(proto.AcceptOffer{ListenerID: 1, Caller: caller}), take))
	f.Add(cat(0, encFrames(offer, proto.Close{Reason: proto.ReplyGeneralFailure}), []byte{5, 0xC6}))
	f.Add(cat(4, append(listenRep, encFrames(offer)...), take))
	f.Add(cat(6, encFrames(proto.ExtReply{ID: 1, Code: proto.ReplyPortUnavailable, Command: proto.CommandListen}), nil))
	f.Add(cat(0, []byte{0x05, 0x03, 0x01, 0x00}, take))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		mode := data[0]
		n := min(int(data[1])<<8|int(data[2]), len(data)-3)
		ctlBytes, takeBytes := data[3:3+n], data[3+n:]

		var wg sync.WaitGroup
		defer wg.Wait()
		// gateway plays the control connection: a correct handshake and
		// LISTEN, then the fuzzer's bytes, then EOF.
		gateway := func(srv net.Conn) {
			defer srv.Close()
			rf, ok := fuzzGatewayRequest(srv, proto.FeatureListen|proto.FeatureResolve)
			if !ok {
				return
			}
			wg.Go(func() { io.Copy(io.Discard, srv) })
			if mode&4 == 0 {
				id, _, _ := proto.ParseVarint(rf.Value)
				proto.WriteFrame(srv, proto.ExtReply{ID: id, Command: proto.CommandListen, ListenerID: 1, Addr: proto.Addr{IP: ip4, Port: 8080}})
			}
			srv.Write(ctlBytes)
		}
		// taker plays a connection that takes an offer: the fuzzer's
		// bytes, then EOF.
		taker := func(srv net.Conn) {
			defer srv.Close()
			srv.SetDeadline(time.Now().Add(10 * time.Second))
			wg.Go(func() { io.Copy(io.Discard, srv) })
			srv.Write(takeBytes)
		}
		var dials sync.Mutex
		first := true
		d := &client.Dialer{
			ProxyAddress: "gateway.test:1080",
			Timeout:      5 * time.Second,
			ProxyDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				cli, srv := net.Pipe()
				dials.Lock()
				ctl := first
				first = false
				dials.Unlock()
				if ctl {
					wg.Go(func() { gateway(srv) })
				} else {
					wg.Go(func() { taker(srv) })
				}
				return cli, nil
			},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var lc client.ListenConfig
		if mode&1 != 0 {
			lc.Filter = func(client.Offer) bool { return false }
		}
		var l *client.Listener
		var err error
		if mode&2 != 0 {
			var s *client.Session
			s, err = d.OpenSession(ctx)
			if err != nil {
				t.Fatalf("open session: %v", err)
			}
			defer s.Close()
			l, err = s.Listen(ctx, "tcp", "127.0.0.1:0", lc)
		} else {
			l, err = d.ListenConfig(ctx, "tcp", "127.0.0.1:0", lc)
		}
		if err == nil {
			for {
				c, aerr := l.AcceptContext(ctx)
				if aerr != nil {
					err = aerr
					break
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.Copy(io.Discard, c)
				c.Close()
			}
			l.Close()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the client hung until its deadline on gateway bytes %x / %x", ctlBytes, takeBytes)
		}
	})
}

// FuzzPacketFrames: a gateway grants one UDP association (Association ID
// 1), then sends the fuzzer's bytes and EOF. The PacketConn must return
// each well-formed DATAGRAM of association 1 with its IP source, end
// with an error when the session does, and never panic or hang.
func FuzzPacketFrames(f *testing.F) {
	src := proto.Addr{IP: ip4, Port: 53}
	f.Add(byte(0), encFrames(proto.Datagram{AssocID: 1, Addr: src, Payload: []byte("answer")}))
	f.Add(byte(0), encFrames(proto.Datagram{AssocID: 1, Addr: src}, proto.Ping{Opaque: [8]byte{1}}, proto.Datagram{AssocID: 1, Addr: proto.Addr{IP: ip6, Port: 1}, Payload: []byte("x")}))
	f.Add(byte(0), encFrames(proto.Datagram{AssocID: 2, Addr: src}))
	f.Add(byte(0), encFrames(proto.Datagram{AssocID: 1, Addr: proto.Addr{FQDN: "name.test", Port: 53}}))
	f.Add(byte(1), encFrames(proto.Datagram{AssocID: 1, Addr: src}))
	f.Add(byte(0), encFrames(proto.Close{Reason: proto.ReplyGeneralFailure}))
	f.Add(byte(0), []byte{0x08, 0x80, 0x01, 0x00, 0x01})

	f.Fuzz(func(t *testing.T, mode byte, gw []byte) {
		var wg sync.WaitGroup
		defer wg.Wait()
		d := &client.Dialer{
			ProxyAddress: "gateway.test:1080",
			Timeout:      5 * time.Second,
			ProxyDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				cli, srv := net.Pipe()
				wg.Go(func() {
					defer srv.Close()
					rf, ok := fuzzGatewayRequest(srv, proto.FeatureUDP)
					if !ok {
						return
					}
					wg.Go(func() { io.Copy(io.Discard, srv) })
					id, _, _ := proto.ParseVarint(rf.Value)
					rep := proto.ExtReply{ID: id, Command: proto.CommandUDP, AssocID: 1}
					if mode&1 != 0 {
						rep.Code = proto.ReplyNotAllowed
					}
					proto.WriteFrame(srv, rep)
					srv.Write(gw)
				})
				return cli, nil
			},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pc, err := d.ListenPacket(ctx)
		if err != nil {
			if mode&1 == 0 {
				t.Fatalf("ListenPacket: %v", err)
			}
			return
		}
		defer pc.Close()
		pc.SetReadDeadline(time.Now().Add(8 * time.Second))
		buf := make([]byte, 70000)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("ReadFrom hung until its deadline on gateway bytes %x", gw)
				}
				return
			}
			if ua, ok := from.(*net.UDPAddr); !ok || ua.IP == nil {
				t.Fatalf("datagram source %v is not an IP address", from)
			}
		}
	})
}

// encFrames encodes ms as consecutive frames.
func encFrames(ms ...proto.Message) []byte {
	var b []byte
	for _, m := range ms {
		b, _ = proto.AppendFrame(b, m)
	}
	return b
}

// fuzzGatewayRequest plays a gateway's side of negotiation on srv, with
// features in HELLO_ACK, and returns the client's first REQUEST frame.
func fuzzGatewayRequest(srv net.Conn, features proto.Features) (proto.Frame, bool) {
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := proto.ReadGreeting(srv); err != nil {
		return proto.Frame{}, false
	}
	srv.Write([]byte{proto.Version5, byte(proto.MethodExtensions)})
	if _, err := proto.ReadFrame(srv, nil); err != nil {
		return proto.Frame{}, false
	}
	proto.WriteFrame(srv, proto.HelloAck{Features: features, MaxFrameLen: 4096, SessionID: proto.SessionID{1}})
	rf, err := proto.ReadFrame(srv, nil)
	return rf, err == nil
}
