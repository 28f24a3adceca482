package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// TestPipelinedSelection: a client that sends its greeting and request
// together (as socksify does) gets the method selection and the reply
// in one piece, when the reply is ready, so that it wakes once; a client
// that waits for the selection gets it at once; a request that does not
// parse still gets the selection before the close.
func TestPipelinedSelection(t *testing.T) {
	target := socks6test.Listen(t)
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	release := make(chan struct{}, 2) // one per dial; a send never blocks
	s := &server.Server{
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			select { // the target is slow to answer
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	gw, _ := e2eServe(t, s)
	req := proto.Request{Command: proto.CommandConnect, Addr: e2eAddr(t, target.Addr().String())}
	greeting := []byte{proto.Version5, 1, byte(proto.MethodNoAuth)}

	t.Run("pipelined", func(t *testing.T) {
		c := e2eDial(t, gw)
		b, err := req.AppendBinary(append([]byte(nil), greeting...))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var one [1]byte
		if n, err := c.Read(one[:]); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("before the reply was ready the gateway sent %d bytes (%v); want the selection held back", n, err)
		}
		release <- struct{}{}
		c.SetReadDeadline(time.Now().Add(e2eWait))
		got := make([]byte, 2+10)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("reading the selection and the reply: %v", err)
		}
		if !bytes.Equal(got[:2], []byte{proto.Version5, byte(proto.MethodNoAuth)}) {
			t.Fatalf("selection % x", got[:2])
		}
		rep, _, err := proto.ParseReply(got[2:])
		if err != nil || rep.Code != proto.ReplySucceeded {
			t.Fatalf("reply % x: %v %v", got[2:], rep.Code, err)
		}
	})
	t.Run("waiting", func(t *testing.T) {
		c := e2eDial(t, gw)
		if _, err := c.Write(greeting); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(e2eWait))
		var sel [2]byte
		if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{proto.Version5, byte(proto.MethodNoAuth)} {
			t.Fatalf("selection % x, %v; want 05 00 at once", sel, err)
		}
		if err := proto.Write(c, req); err != nil {
			t.Fatal(err)
		}
		release <- struct{}{}
		rep, err := proto.ReadReply(c)
		if err != nil || rep.Code != proto.ReplySucceeded {
			t.Fatalf("reply %v, %v", rep.Code, err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		// A failure reply carries the held selection too.
		closed := socks6test.Listen(t)
		addr := closed.Addr().String()
		closed.Close()
		c := e2eDial(t, gw)
		b, err := proto.Request{Command: proto.CommandConnect, Addr: e2eAddr(t, addr)}.AppendBinary(append([]byte(nil), greeting...))
		if err != nil {
			t.Fatal(err)
		}
		release <- struct{}{}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(e2eWait))
		var sel [2]byte
		if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{proto.Version5, byte(proto.MethodNoAuth)} {
			t.Fatalf("selection % x, %v", sel, err)
		}
		rep, err := proto.ReadReply(c)
		if err != nil || rep.Code != proto.ReplyConnectionRefused {
			t.Fatalf("reply %v, %v; want connection refused", rep.Code, err)
		}
	})
	t.Run("bad_request", func(t *testing.T) {
		c := e2eDial(t, gw)
		if _, err := c.Write(append(append([]byte(nil), greeting...), 0x04, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0, 80)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(e2eWait))
		got, err := io.ReadAll(c)
		if !bytes.Equal(got, []byte{proto.Version5, byte(proto.MethodNoAuth)}) {
			t.Fatalf("the gateway sent % x (%v), want the selection 05 00 and a close", got, err)
		}
	})
}
