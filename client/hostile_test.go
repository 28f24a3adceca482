package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
)

// A hostile gateway: hand-written answers that are truncated, malformed,
// oversized or refusing. The client must fail cleanly, without panicking,
// hanging or leaking goroutines, and must answer a malformed frame with
// CLOSE 0xEB (draft-socks6-extensions-00, "Error Handling").

// toExt plays the gateway up to HELLO: it reads the greeting, selects
// 0xC6 and reads HELLO.
func toExt(t testing.TB, c net.Conn) bool {
	t.Helper()
	if _, err := proto.ReadGreeting(c); err != nil {
		t.Errorf("hostile gateway: read greeting: %v", err)
		return false
	}
	writeRaw(t, c, []byte{proto.Version5, byte(proto.MethodExtensions)})
	f, err := proto.ReadFrame(c, nil)
	if err != nil || f.Type != proto.FrameHello {
		t.Errorf("hostile gateway: read HELLO: %v %v", f.Type, err)
		return false
	}
	return true
}

// toRequest plays the gateway up to the client's REQUEST, with a good
// HELLO_ACK whose Max Frame Length is 1024.
func toRequest(t testing.TB, c net.Conn) bool {
	t.Helper()
	if !toExt(t, c) {
		return false
	}
	writeRaw(t, c, frame(t, proto.HelloAck{MaxFrameLen: 1024, Features: proto.FeatureResolve, SessionID: proto.SessionID{1}}))
	_, ok := readRequest(t, c)
	return ok
}

// toPlainRequest plays a plain gateway up to the client's RFC 1928
// request.
func toPlainRequest(t testing.TB, c net.Conn) bool {
	t.Helper()
	if _, err := proto.ReadGreeting(c); err != nil {
		t.Errorf("hostile gateway: read greeting: %v", err)
		return false
	}
	writeRaw(t, c, []byte{proto.Version5, byte(proto.MethodNoAuth)})
	if _, err := proto.ReadRequest(c); err != nil {
		t.Errorf("hostile gateway: read request: %v", err)
		return false
	}
	return true
}

// expectNothing checks that the client sends nothing more and closes the
// connection. A reset is a close too: the client closes with the
// gateway's unread bytes in its buffer.
func expectNothing(t testing.TB, c net.Conn) {
	t.Helper()
	if b, err := io.ReadAll(c); len(b) > 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client sent %x (%v) where it must send nothing and close", b, err)
	}
}

// helloAckRaw builds a HELLO_ACK value by hand: status, version, features
// 0, max frame length (a 2-byte varint) and a zero session ID.
func helloAckRaw(status, version byte, maxFrame uint16) []byte {
	v := []byte{status, version, 0, 0x40 | byte(maxFrame>>8), byte(maxFrame)}
	return append(v, make([]byte, 16)...)
}

func isMalformed(err error) bool {
	return errors.Is(err, proto.ErrMalformed) || errors.Is(err, proto.ErrTooLong) ||
		errors.Is(err, proto.ErrShortBuffer) || errors.Is(err, proto.ErrAddressType)
}

func TestHostileConnect(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	for _, tc := range []struct {
		name   string
		dialer client.Dialer
		gw     func(t testing.TB, c net.Conn)
		check  func(err error) bool // nil: any error but a timeout
	}{
		{
			name: "eof_before_selection",
			gw:   func(t testing.TB, c net.Conn) { proto.ReadGreeting(c) },
		},
		{
			name: "truncated_selection",
			gw: func(t testing.TB, c net.Conn) {
				proto.ReadGreeting(c)
				writeRaw(t, c, []byte{proto.Version5})
			},
			check: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
		},
		{
			name: "selection_bad_version",
			gw: func(t testing.TB, c net.Conn) {
				proto.ReadGreeting(c)
				writeRaw(t, c, []byte{4, 0})
			},
			check: func(err error) bool { return errors.Is(err, proto.ErrVersion) },
		},
		{
			name: "method_not_offered",
			gw: func(t testing.TB, c net.Conn) {
				proto.ReadGreeting(c)
				writeRaw(t, c, []byte{proto.Version5, byte(proto.MethodUserPass)})
				expectNothing(t, c)
			},
			check: isMalformed,
		},
		{
			name:   "require_but_plain",
			dialer: client.Dialer{Extensions: client.ExtRequire},
			gw: func(t testing.TB, c net.Conn) {
				proto.ReadGreeting(c)
				writeRaw(t, c, []byte{proto.Version5, byte(proto.MethodNoAuth)})
				expectNothing(t, c)
			},
			check: func(err error) bool { return errors.Is(err, client.ErrDowngrade) },
		},
		{
			// 0xFF refuses every method offered, the extensions too:
			// an authentication failure, not a downgrade.
			name:   "require_but_none_acceptable",
			dialer: client.Dialer{Extensions: client.ExtRequire},
			gw: func(t testing.TB, c net.Conn) {
				proto.ReadGreeting(c)
				writeRaw(t, c, []byte{proto.Version5, byte(proto.MethodNoAcceptable)})
				expectNothing(t, c)
			},
			check: func(err error) bool { return errors.Is(err, client.ErrAuth) && !errors.Is(err, client.ErrDowngrade) },
		},
		{
			name:   "userpass_truncated",
			dialer: client.Dialer{Username: "u", Password: "p"},
			gw: func(t testing.TB, c net.Conn) {
				proto.ReadGreeting(c)
				writeRaw(t, c, []byte{proto.Version5, byte(proto.MethodUserPass)})
				proto.ReadUserPassRequest(c)
				writeRaw(t, c, []byte{proto.UserPassVersion})
			},
			check: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
		},
		{
			name: "plain_reply_truncated",
			gw: func(t testing.TB, c net.Conn) {
				if toPlainRequest(t, c) {
					writeRaw(t, c, []byte{proto.Version5, 0, 0, 1, 127, 0})
				}
			},
			check: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
		},
		{
			name: "plain_reply_bad_atyp",
			gw: func(t testing.TB, c net.Conn) {
				if toPlainRequest(t, c) {
					writeRaw(t, c, []byte{proto.Version5, 0, 0, 9, 1, 2, 3, 4, 0, 80})
				}
			},
			check: func(err error) bool { return errors.Is(err, proto.ErrAddressType) },
		},
		{
			name: "plain_reply_bad_version",
			gw: func(t testing.TB, c net.Conn) {
				if toPlainRequest(t, c) {
					writeRaw(t, c, []byte{4, 0, 0, 1, 1, 2, 3, 4, 0, 80})
				}
			},
			check: func(err error) bool { return errors.Is(err, proto.ErrVersion) },
		},
		{
			name: "plain_refused",
			gw: func(t testing.TB, c net.Conn) {
				if toPlainRequest(t, c) {
					writeRaw(t, c, []byte{proto.Version5, 0x05, 0, 1, 0, 0, 0, 0, 0, 0})
				}
			},
			check: func(err error) bool {
				var re *client.ReplyError
				return errors.As(err, &re) && re.Code == proto.ReplyConnectionRefused
			},
		},
		{
			// A refusal whose BND does not parse (ATYP 0, then the
			// connection closed) still reports its code.
			name: "plain_refused_bad_bnd",
			gw: func(t testing.TB, c net.Conn) {
				if toPlainRequest(t, c) {
					writeRaw(t, c, []byte{proto.Version5, 0x05, 0, 0})
				}
			},
			check: func(err error) bool {
				var re *client.ReplyError
				return errors.As(err, &re) && re.Code == proto.ReplyConnectionRefused
			},
		},
		{
			name: "plain_refused_cut_short",
			gw: func(t testing.TB, c net.Conn) {
				if toPlainRequest(t, c) {
					writeRaw(t, c, []byte{proto.Version5, 0x02})
				}
			},
			check: func(err error) bool {
				var re *client.ReplyError
				return errors.As(err, &re) && re.Code == proto.ReplyNotAllowed
			},
		},
		{
			name: "hello_ack_truncated",
			gw: func(t testing.TB, c net.Conn) {
				if toExt(t, c) {
					writeRaw(t, c, append([]byte{0x02, 40}, helloAckRaw(0, 1, 1024)[:5]...))
				}
			},
			check: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
		},
		{
			name: "hello_ack_bad_status",
			gw: func(t testing.TB, c net.Conn) {
				if toExt(t, c) {
					writeRaw(t, c, rawFrame(t, proto.FrameHelloAck, helloAckRaw(7, 1, 1024)))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "hello_ack_small_max_frame",
			gw: func(t testing.TB, c net.Conn) {
				if toExt(t, c) {
					writeRaw(t, c, rawFrame(t, proto.FrameHelloAck, helloAckRaw(0, 1, 100)))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "hello_ack_oversized",
			gw: func(t testing.TB, c net.Conn) {
				if toExt(t, c) {
					// Length 20000 (over 16384), and no value: the client
					// must refuse it from the header.
					writeRaw(t, c, []byte{0x02, 0x80, 0, 0x4e, 0x20})
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: func(err error) bool { return errors.Is(err, proto.ErrTooLong) },
		},
		{
			name:   "hello_ack_auth_failed",
			dialer: client.Dialer{Username: "u", Password: "p"},
			gw: func(t testing.TB, c net.Conn) {
				if toExt(t, c) {
					writeRaw(t, c, frame(t, proto.HelloAck{Status: proto.HelloAuthFailed, Options: proto.Options{proto.DiagnosticOption("who are you")}}))
					// Frames after a failed HELLO_ACK are ignored.
					writeRaw(t, c, frame(t, proto.Ping{}))
					expectNothing(t, c)
				}
			},
			check: func(err error) bool {
				var he *client.HelloError
				return errors.Is(err, client.ErrAuth) && errors.As(err, &he) && he.Diagnostic == "who are you" &&
					strings.Contains(err.Error(), "authentication failed") && strings.Contains(err.Error(), "who are you")
			},
		},
		{
			name: "hello_ack_version_unsupported",
			gw: func(t testing.TB, c net.Conn) {
				if toExt(t, c) {
					writeRaw(t, c, frame(t, proto.HelloAck{Status: proto.HelloVersionUnsupported, Version: 7}))
					expectNothing(t, c)
				}
			},
			check: func(err error) bool {
				var he *client.HelloError
				return errors.As(err, &he) && he.Status == proto.HelloVersionUnsupported && he.Version == 7 && !errors.Is(err, client.ErrAuth)
			},
		},
		{
			name: "first_frame_not_hello_ack",
			gw: func(t testing.TB, c net.Conn) {
				if toExt(t, c) {
					writeRaw(t, c, rawFrame(t, 0x21, []byte("grease")))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "non_shortest_varint",
			gw: func(t testing.TB, c net.Conn) {
				if toExt(t, c) {
					writeRaw(t, c, []byte{0x40, 0x02, 21})
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "oversized_reply",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					// REPLY with Length 5000 over the announced 1024, and
					// no value.
					writeRaw(t, c, []byte{0x04, 0x53, 0x88})
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: func(err error) bool { return errors.Is(err, proto.ErrTooLong) },
		},
		{
			name: "wrong_request_id",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, frame(t, proto.ExtReply{ID: 2, Command: proto.CommandConnect}))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "reply_bad_atyp",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, rawFrame(t, proto.FrameReply, []byte{1, 0, 9, 1, 2, 3, 4, 0, 80}))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "reply_truncated_value",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, rawFrame(t, proto.FrameReply, []byte{1, 0, 1, 127, 0}))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "reply_bad_connected",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, rawFrame(t, proto.FrameReply, []byte{1, 0, 1, 0, 0, 0, 0, 0, 0, byte(proto.OptionConnected), 2, 1, 2}))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "request_from_gateway",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, frame(t, proto.ExtRequest{ID: 1, Command: proto.CommandConnect}))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "accept_offer_before_reply",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, frame(t, proto.AcceptOffer{ListenerID: 1}))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "malformed_ping",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, rawFrame(t, proto.FramePing, []byte{1, 2, 3}))
					expectClose(t, c, proto.ReplyMalformedRequest)
				}
			},
			check: isMalformed,
		},
		{
			name: "close_before_reply",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, frame(t, proto.Close{Reason: proto.ReplyGeneralFailure}))
					expectNothing(t, c)
				}
			},
			check: func(err error) bool {
				var ce *client.CloseError
				return errors.As(err, &ce) && ce.Reason == proto.ReplyGeneralFailure
			},
		},
		{
			name: "eof_inside_frame",
			gw: func(t testing.TB, c net.Conn) {
				if toRequest(t, c) {
					writeRaw(t, c, []byte{0x04, 20, 1})
				}
			},
			check: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := fakeGateway(t, func(c net.Conn) { tc.gw(t, c) })
			d := tc.dialer
			d.ProxyAddress = gw
			start := time.Now()
			c, err := d.DialContext(testCtx(t), "tcp", "target.test:80")
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded")
			}
			if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > testWait/2 {
				t.Fatalf("dial took %v and failed with %v: the client waited instead of failing", time.Since(start), err)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) {
				t.Errorf("error %v is not a *net.OpError", err)
			}
			if tc.check != nil && !tc.check(err) {
				t.Errorf("error %v (%T) is not the expected kind", err, errors.Unwrap(err))
			}
		})
	}
}

// TestHostileStall checks that a gateway that never answers is bounded
// by the caller's context and by Dialer.Timeout.
func TestHostileStall(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	gw := fakeGateway(t, func(c net.Conn) { io.Copy(io.Discard, c) })

	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	d := &client.Dialer{ProxyAddress: gw}
	if _, err := d.DialContext(ctx, "tcp", "target.test:80"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial with a deadline: %v, want DeadlineExceeded", err)
	}

	ctx, cancel = context.WithCancel(testCtx(t))
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := d.OpenSession(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("session with a cancelled context: %v, want Canceled", err)
	}

	d.Timeout = 100 * time.Millisecond
	_, err := d.Dial("tcp", "target.test:80")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("dial with Timeout: %v, want a timeout", err)
	}
}

func TestHostileSession(t *testing.T) {
	socks6test.CheckGoroutines(t, 4)
	for _, tc := range []struct {
		name  string
		gw    func(t testing.TB, c net.Conn, req proto.ExtRequest)
		check func(err error) bool
	}{
		{
			name: "unknown_request_id",
			gw: func(t testing.TB, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, frame(t, resolveReply(req.ID+7, ip4)))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			check: isMalformed,
		},
		{
			name: "oversized_frame",
			gw: func(t testing.TB, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, []byte{0x04, 0x44, 0x01}) // Length 1025 > 1024
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			check: func(err error) bool { return errors.Is(err, proto.ErrTooLong) },
		},
		{
			name: "answer_not_an_ip",
			gw: func(t testing.TB, c net.Conn, req proto.ExtRequest) {
				v, _ := proto.AppendVarint(nil, req.ID)
				v = append(v, 0, 1, 0, 0, 0, 0, 0, 0) // code, zero address
				v = append(v, 1, 0, 0, 0, 60, 3, 1, 'x')
				writeRaw(t, c, rawFrame(t, proto.FrameReply, v))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			check: isMalformed,
		},
		{
			name: "answer_count_too_big",
			gw: func(t testing.TB, c net.Conn, req proto.ExtRequest) {
				v, _ := proto.AppendVarint(nil, req.ID)
				v = append(v, 0, 1, 0, 0, 0, 0, 0, 0, 0x7f, 0xff)
				writeRaw(t, c, rawFrame(t, proto.FrameReply, v))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			check: isMalformed,
		},
		{
			name: "second_hello_ack",
			gw: func(t testing.TB, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, frame(t, proto.HelloAck{}))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			check: isMalformed,
		},
		{
			name: "datagram_without_association",
			gw: func(t testing.TB, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, frame(t, proto.Datagram{AssocID: 1, Addr: proto.Addr{IP: ip4, Port: 53}}))
				expectClose(t, c, proto.ReplyMalformedRequest)
			},
			check: isMalformed,
		},
		{
			name: "eof",
			gw:   func(t testing.TB, c net.Conn, req proto.ExtRequest) {},
			check: func(err error) bool {
				return errors.Is(err, io.EOF)
			},
		},
		{
			name: "eof_inside_frame",
			gw: func(t testing.TB, c net.Conn, req proto.ExtRequest) {
				writeRaw(t, c, []byte{0x04, 30, 1, 0})
			},
			check: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := fakeGateway(t, func(c net.Conn) {
				if !toExt(t, c) {
					return
				}
				writeRaw(t, c, frame(t, proto.HelloAck{MaxFrameLen: 1024, Features: proto.FeatureResolve, SessionID: proto.SessionID{1}}))
				if req, ok := readRequest(t, c); ok {
					tc.gw(t, c, req)
				}
			})
			d := &client.Dialer{ProxyAddress: gw}
			s, err := d.OpenSession(testCtx(t))
			if err != nil {
				t.Fatalf("open session: %v", err)
			}
			defer s.Close()
			_, err = s.Resolve(testCtx(t), "a.test")
			if err == nil {
				t.Fatal("resolve succeeded")
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("resolve waited for its deadline: %v", err)
			}
			if !tc.check(err) {
				t.Errorf("resolve: %v, not the expected kind", err)
			}
			select {
			case <-s.Done():
			case <-time.After(testWait):
				t.Fatal("the session did not end")
			}
			if s.Err() == nil {
				t.Errorf("Err() = %v", s.Err())
			}
			if _, err := s.Resolve(testCtx(t), "b.test"); err == nil {
				t.Error("resolve on an ended session succeeded")
			}
		})
	}
}
