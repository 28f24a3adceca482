package server_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/socks6/socks6/proto"
)

// FuzzExtHandshake feeds arbitrary frames to a gateway after a greeting
// that offers only the extensions (05 01 C6). The first byte of the input
// picks how it is split into reads; the rest follows the greeting. The
// gateway requires username/password, dials nothing (every dial fails) and
// resolves without the network. The target checks that the gateway does
// not panic, closes promptly after the input's end, counts no session
// afterwards, sends only well-formed frames with HELLO_ACK or CLOSE first,
// accepts HELLO only with the right credentials, and never reports a
// successful CONNECT.
func FuzzExtHandshake(f *testing.F) {
	hello := func(user, pass string) []byte {
		b, _ := proto.AppendFrame(nil, proto.Hello{Methods: []proto.Method{proto.MethodExtensions},
			Auth: proto.MethodUserPass, Username: user, Password: pass})
		return b
	}
	req := func(id uint64, cmd proto.Command, a proto.Addr, opts ...proto.Option) []byte {
		b, _ := proto.AppendFrame(nil, proto.ExtRequest{ID: id, Command: cmd, Addr: a, Options: opts})
		return b
	}
	good := hello(hostileUser, hostilePass)
	name := proto.Addr{FQDN: "example.com", Port: 80}
	for mode := range byte(8) {
		for _, cmd := range []proto.Command{proto.CommandConnect, proto.CommandBind, proto.CommandUDPAssociate,
			proto.CommandListen, proto.CommandResolve, 0x77} {
			f.Add(hostileCat([]byte{mode}, good, req(1, cmd, name, proto.FamilyOption(proto.FamilyIPv4Only))))
		}
		f.Add(hostileCat([]byte{mode}, good, req(1, proto.CommandResolve, proto.Addr{FQDN: "nx.example"}),
			req(2, proto.CommandResolve, name), req(3, proto.CommandConnect, name)))
	}
	ping, _ := proto.AppendFrame(nil, proto.Ping{Opaque: [8]byte{1}})
	closeF, _ := proto.AppendFrame(nil, proto.Close{})
	f.Add(hostileCat([]byte{0}, good, ping, []byte{0x21, 0x02, 0xaa, 0xbb}, closeF))
	f.Add(hostileCat([]byte{0}, hello(hostileUser, "wrong"), req(1, proto.CommandConnect, name)))
	f.Add(hostileCat([]byte{0}, good, req(1, proto.CommandResolve, name), req(1, proto.CommandResolve, name)))
	zero := proto.Addr{IP: netip.IPv4Unspecified()}
	dgram := func(id uint64, a proto.Addr, p string) []byte {
		b, _ := proto.AppendFrame(nil, proto.Datagram{AssocID: id, Addr: a, Payload: []byte(p)})
		return b
	}
	f.Add(hostileCat([]byte{0}, good, req(1, proto.CommandUDP, zero), dgram(1, proto.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 53}, "x"),
		dgram(1, name, "y"), dgram(7, name, "z"), req(2, proto.CommandUDP, zero, proto.IdleTimeoutOption(time.Second)), ping, closeF))
	f.Add(hostileCat([]byte{3}, good, req(1, proto.CommandUDP, name), req(2, proto.CommandUDP, zero), req(3, proto.CommandConnect, name)))
	f.Add([]byte{0, 0x01, 0x80, 0x00, 0x4e, 0x20})
	f.Add([]byte{0})

	gw := newHostileFuzzGateway(f, true, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		mode, in := data[0], data[1:]
		chunk := []int{0, 1, 2, 3, 5, 7, 64, 513}[mode&7]
		out := gw.feed(t, hostileCat([]byte{5, 1, byte(proto.MethodExtensions)}, in), in, chunk)
		if len(out) < 2 || out[0] != 5 || out[1] != byte(proto.MethodExtensions) {
			t.Fatalf("method selection % x, want 05 c6", out[:min(len(out), 2)])
		}
		out = out[2:]
		// The commands the input asked for, by request ID.
		cmds := map[uint64]proto.Command{}
		for rest := in; len(rest) > 0; {
			fr, n, err := proto.ParseFrame(rest)
			if err != nil {
				break
			}
			rest = rest[n:]
			if fr.Type == proto.FrameRequest {
				if r, err := proto.ParseExtRequest(fr.Value); err == nil {
					if _, dup := cmds[r.ID]; !dup {
						cmds[r.ID] = r.Command
					}
				}
			}
		}
		for i := 0; len(out) > 0; i++ {
			fr, n, err := proto.ParseFrame(out)
			if err != nil {
				t.Fatalf("gateway frame %d does not parse: %v", i, err)
			}
			out = out[n:]
			if i == 0 && fr.Type != proto.FrameHelloAck && fr.Type != proto.FrameClose {
				t.Fatalf("first frame %v", fr.Type)
			}
			switch fr.Type {
			case proto.FrameHelloAck:
				ack, err := proto.ParseHelloAck(fr.Value)
				if err != nil {
					t.Fatalf("HELLO_ACK: %v", err)
				}
				if ack.Status == proto.HelloOK {
					f, _, err := proto.ParseFrame(in)
					if err != nil {
						t.Fatalf("HELLO_ACK ok for an input whose first frame does not parse")
					}
					h, err := proto.ParseHello(f.Value)
					if err != nil || h.Username != hostileUser && h.Username != "mallory" || h.Password != hostilePass {
						t.Fatalf("HELLO_ACK ok for HELLO %v (%v)", h, err)
					}
				}
			case proto.FrameReply:
				// Whatever the command, a REPLY decodes at least as far as
				// its code.
				id, n, err := proto.ParseVarint(fr.Value)
				if err != nil || n >= len(fr.Value) {
					t.Fatalf("REPLY without ID and code: % x", fr.Value)
				}
				// No dial can succeed, so neither can a CONNECT.
				if cmd, ok := cmds[id]; ok && cmd == proto.CommandConnect && fr.Value[n] == byte(proto.ReplySucceeded) {
					t.Fatalf("successful REPLY to CONNECT %d", id)
				}
			}
		}
	})
}
