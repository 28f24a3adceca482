//go:build linux && amd64

package socksify

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
)

// streamGateway is a scripted gateway that grants one in-stream UDP
// association with the given idle timeout and then reads nothing (read
// false) or reads frames until EOF (read true). ended receives when the
// client closes the session.
func streamGateway(t *testing.T, idle time.Duration, read bool) (addr string, ended <-chan time.Time) {
	t.Helper()
	ln := socks6test.Listen(t)
	ch := make(chan time.Time, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	socks6test.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := proto.ReadGreeting(c); err != nil {
			return
		}
		proto.Write(c, proto.MethodSelection{Method: proto.MethodExtensions})
		if _, err := proto.ReadFrame(c, nil); err != nil { // HELLO
			return
		}
		proto.WriteFrame(c, proto.HelloAck{Status: proto.HelloOK, Version: proto.ExtVersion,
			Features: proto.FeatureUDP, MaxFrameLen: proto.DefaultMaxFrameLen, SessionID: proto.SessionID{1}})
		f, err := proto.ReadFrame(c, nil)
		if err != nil {
			return
		}
		req, err := proto.ParseExtRequest(f.Value)
		if err != nil {
			return
		}
		proto.WriteFrame(c, proto.ExtReply{ID: req.ID, Command: proto.CommandUDP, AssocID: 1,
			Options: proto.Options{proto.IdleTimeoutOption(idle)}})
		if !read {
			<-release
			return
		}
		for {
			if _, err := proto.ReadFrame(c, nil); err != nil {
				ch <- time.Now()
				return
			}
		}
	})
	return ln.Addr().String(), ch
}

// streamAssoc makes an in-stream association as establish does, through
// the gateway at gw.
func streamAssoc(t *testing.T, gw string) *udpAssoc {
	t.Helper()
	pc, err := (&client.Dialer{ProxyAddress: gw, Timeout: 5 * time.Second}).ListenPacket(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{log: slog.New(slog.DiscardHandler), assocs: map[uint64]*udpAssoc{}}
	a := &udpAssoc{r: r, ino: 1, pc: pc, out: make(chan []byte, udpStreamQueue), stop: make(chan struct{}), state: assocUp}
	a.lastUse.Store(time.Now().UnixNano())
	r.assocs[1] = a
	r.wg.Add(2)
	go a.readStream()
	go a.writeStream()
	t.Cleanup(func() { a.close(); r.wg.Wait() })
	return a
}

// An in-stream association closes itself a little before the gateway's
// idle timeout, counted from its last datagram, so that the next
// datagram makes a new one instead of going into one the gateway has
// dropped.
func TestStreamAssocIdle(t *testing.T) {
	gw, ended := streamGateway(t, 3*time.Second, true)
	a := streamAssoc(t, gw)
	framed, _ := udpFrame(proto.Addr{FQDN: "x.test", Port: 9}, []byte("x"))
	time.Sleep(time.Second)
	sent := time.Now()
	a.send(framed)
	select {
	case at := <-ended:
		// idle 3s, margin 1s: closed 2s after the last datagram.
		if d := at.Sub(sent); d < 1500*time.Millisecond || d > 3*time.Second {
			t.Fatalf("the association ended %v after its last datagram, want about 2s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the association did not end")
	}
	if a.status() != assocClosed {
		t.Fatalf("state %v, want closed", a.status())
	}
}

// Sending never waits for the gateway: with a gateway that reads
// nothing, a thousand 60000-byte datagrams are handed over at once (those
// that find the writer's queue full are dropped).
func TestStreamAssocSendNeverBlocks(t *testing.T) {
	gw, _ := streamGateway(t, time.Minute, false)
	a := streamAssoc(t, gw)
	framed, _ := udpFrame(proto.Addr{FQDN: "x.test", Port: 9}, make([]byte, 60000))
	start := time.Now()
	for range 1000 {
		if err := a.send(framed); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("1000 sends took %v", d)
	}
}
