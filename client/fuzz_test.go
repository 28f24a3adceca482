package client_test

import (
	"context"
	"errors"
	"io"
	"net"
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
