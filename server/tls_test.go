package server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
)

// tlsGateway serves one server.Server on a cleartext and a TLS listener
// with a fresh certificate for 127.0.0.1, with alice and bob as users
// and LISTEN allowed. It returns the server, both addresses, the client
// TLS configuration that trusts the certificate, and the audit log.
func tlsGateway(t *testing.T, hsTimeout time.Duration) (s *server.Server, plain, secure string, ccfg *tls.Config, audit *e2eAudit) {
	t.Helper()
	cert := socks6test.NewCert(t, "127.0.0.1")
	audit = e2eNewAudit()
	s = &server.Server{HandshakeTimeout: hsTimeout, Logger: audit.logger(), Settings: server.Settings{
		Auth:  e2eUsers(t, "alice", "wonderland", "bob", "builder"),
		Guard: server.Guard{AllowLoopback: true},
	}}
	secure = socks6test.ServeGatewayTLS(t, s, cert.ServerConfig())
	plain = startGateway(t, s)
	return s, plain, secure, cert.ClientConfig(), audit
}

// tlsDial opens a TLS connection to gw offering alpn (none if empty);
// maxVersion 0 allows TLS 1.3.
func tlsDial(t testing.TB, gw string, cfg *tls.Config, maxVersion uint16, alpn ...string) *tls.Conn {
	t.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = alpn
	cfg.MaxVersion = maxVersion
	d := &net.Dialer{Timeout: e2eWait}
	c, err := tls.DialWithDialer(d, "tcp", gw, cfg)
	if err != nil {
		t.Fatalf("TLS to %s: %v", gw, err)
	}
	c.SetDeadline(time.Now().Add(e2eWait))
	t.Cleanup(func() { c.Close() })
	return c
}

// tlsHello sends HELLO as the first bytes (ALPN socks6: no Methods).
func tlsHello(t testing.TB, c net.Conn, user, pass string) proto.HelloAck {
	t.Helper()
	h := proto.Hello{Auth: proto.MethodNoAuth}
	if user != "" {
		h.Auth, h.Username, h.Password = proto.MethodUserPass, user, pass
	}
	extSend(t, c, h)
	return extReadAck(t, c)
}

func TestTLSALPN(t *testing.T) {
	e2eCheckLeaks(t)
	_, _, gw, ccfg, _ := tlsGateway(t, e2eWait)
	echo := socks6test.EchoServer(t)

	t.Run("socks6", func(t *testing.T) {
		c := tlsDial(t, gw, ccfg, 0, proto.ALPNSOCKS6, proto.ALPNSOCKS5)
		if p := c.ConnectionState().NegotiatedProtocol; p != proto.ALPNSOCKS6 {
			t.Fatalf("ALPN %q, want socks6 (the gateway MUST select it when offered)", p)
		}
		ack := tlsHello(t, c, "alice", "wonderland")
		if ack.Status != proto.HelloOK {
			t.Fatalf("HELLO_ACK %v", ack.Status)
		}
		extSend(t, c, proto.ExtRequest{ID: 7, Command: proto.CommandConnect, Addr: e2eAddr(t, echo)})
		if r := extReply(t, c, proto.CommandConnect); r.Code != proto.ReplySucceeded || r.ID != 7 {
			t.Fatalf("CONNECT: %v (ID %d)", r.Code, r.ID)
		}
		e2eEcho(t, c, strings.Repeat("over TLS ", 10000))
	})
	// RFC 1928 inside TLS: with ALPN socks5, and with no ALPN at all,
	// which is how existing SOCKS-over-TLS clients behave.
	for _, alpn := range [][]string{{proto.ALPNSOCKS5}, nil} {
		t.Run(fmt.Sprintf("socks5_alpn_%v", alpn), func(t *testing.T) {
			c := tlsDial(t, gw, ccfg, 0, alpn...)
			if p, want := c.ConnectionState().NegotiatedProtocol, strings.Join(alpn, ""); p != want {
				t.Fatalf("ALPN %q, want %q", p, want)
			}
			e2eGreet(t, c, "alice", "wonderland")
			if rep := e2eRequest(t, c, proto.CommandConnect, e2eAddr(t, echo)); rep.Code != proto.ReplySucceeded {
				t.Fatalf("CONNECT: %v", rep.Code)
			}
			e2eEcho(t, c, "plain SOCKS5 inside TLS")
			// Half-close passes through TLS (close_notify) as EOF.
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
				t.Fatalf("after CloseWrite: %q %v, want EOF", b, err)
			}
		})
	}
	t.Run("socks5_then_extensions", func(t *testing.T) {
		// Inside ALPN socks5, method 0xC6 negotiates the extensions as in
		// cleartext, with the transcript check.
		c := tlsDial(t, gw, ccfg, 0, proto.ALPNSOCKS5)
		methods := []proto.Method{proto.MethodExtensions, proto.MethodUserPass}
		if err := proto.Write(c, proto.Greeting{Methods: methods}); err != nil {
			t.Fatal(err)
		}
		if sel, err := proto.ReadMethodSelection(c); err != nil || sel.Method != proto.MethodExtensions {
			t.Fatalf("method selection %v %v", sel.Method, err)
		}
		extSend(t, c, proto.Hello{Methods: methods, Auth: proto.MethodUserPass, Username: "bob", Password: "builder"})
		if ack := extReadAck(t, c); ack.Status != proto.HelloOK {
			t.Fatalf("HELLO_ACK %v", ack.Status)
		}
	})
	t.Run("socks6_methods_transcript", func(t *testing.T) {
		// After ALPN socks6 there was no greeting: HELLO's Methods must
		// be empty.
		c := tlsDial(t, gw, ccfg, 0, proto.ALPNSOCKS6)
		extSend(t, c, proto.Hello{Methods: []proto.Method{proto.MethodNoAuth}, Auth: proto.MethodUserPass, Username: "alice", Password: "wonderland"})
		if ack := extReadAck(t, c); ack.Status != proto.HelloTranscriptMismatch {
			t.Fatalf("HELLO_ACK %v, want transcript mismatch", ack.Status)
		}
		e2eExpectClosed(t, c)
	})
	t.Run("socks6_greeting_instead_of_hello", func(t *testing.T) {
		c := tlsDial(t, gw, ccfg, 0, proto.ALPNSOCKS6)
		if _, err := c.Write([]byte{5, 1, 0}); err != nil {
			t.Fatal(err)
		}
		extExpectClose(t, c, proto.ReplyMalformedRequest)
	})
	t.Run("bad_password", func(t *testing.T) {
		c := tlsDial(t, gw, ccfg, 0, proto.ALPNSOCKS6)
		if ack := tlsHello(t, c, "alice", "queen"); ack.Status != proto.HelloAuthFailed {
			t.Fatalf("HELLO_ACK %v, want auth failed", ack.Status)
		}
		e2eExpectClosed(t, c)
	})
}

// TestTLSHostile sends what is not TLS, or nothing, to the TLS port: the
// gateway closes such connections within its handshake timeout and goes
// on serving.
func TestTLSHostile(t *testing.T) {
	e2eCheckLeaks(t)
	s, _, gw, ccfg, _ := tlsGateway(t, 500*time.Millisecond)
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"socks5_greeting", []byte{5, 1, 0}},
		{"garbage_record", append([]byte{0x16, 3, 1, 0xff, 0xff}, bytes.Repeat([]byte{0xAA}, 300)...)},
		{"silent", nil},
		{"half_client_hello", []byte{0x16, 3, 1, 0, 200, 1, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e2eDial(t, gw)
			start := time.Now()
			c.Write(tc.send)
			b, _ := io.ReadAll(c)
			if el := time.Since(start); el > 10*time.Second {
				t.Fatalf("connection held for %v", el)
			}
			// At most a TLS alert record comes back, never SOCKS.
			if len(b) > 0 && b[0] != 0x15 {
				t.Fatalf("got % x, want nothing or a TLS alert", b)
			}
		})
	}
	// The gateway still serves, and nothing is left over.
	c := tlsDial(t, gw, ccfg, 0, proto.ALPNSOCKS6)
	if ack := tlsHello(t, c, "alice", "wonderland"); ack.Status != proto.HelloOK {
		t.Fatalf("HELLO_ACK %v", ack.Status)
	}
	c.Close()
	e2eSessionsDrop(t, s, 0)
}

// TestTLSTakeProof checks the PROOF rule of TAKE (draft "TAKE"): the
// callers offered to a TLS 1.3 session's listener can be taken only over
// TLS 1.3 with HMAC(session key, "socks6 take" || token || X), X bound
// to the connection that carries the TAKE.
func TestTLSTakeProof(t *testing.T) {
	e2eCheckLeaks(t)
	_, plain, gw, ccfg, audit := tlsGateway(t, e2eWait)

	ctl := tlsDial(t, gw, ccfg, 0, proto.ALPNSOCKS6)
	ack := tlsHello(t, ctl, "alice", "wonderland")
	if ack.Status != proto.HelloOK || !ack.Features.Has(proto.FeatureListen) {
		t.Fatalf("HELLO_ACK %v, features %v", ack.Status, ack.Features)
	}
	cs := ctl.ConnectionState()
	k0, err := cs.ExportKeyingMaterial(proto.ExporterSession, ack.SessionID[:], 32)
	if err != nil {
		t.Fatal(err)
	}
	var key proto.SessionKey
	copy(key[:], k0)
	r := listenReq(t, ctl, 1, "127.0.0.1:0", false)
	if r.Code != proto.ReplySucceeded {
		t.Fatalf("LISTEN: %v", r.Code)
	}
	pub := fmt.Sprintf("127.0.0.1:%d", r.Addr.Port)

	// offer connects a new caller and returns it with its token.
	offer := func(t *testing.T) (net.Conn, proto.Token) {
		t.Helper()
		caller, err := net.DialTimeout("tcp", pub, e2eWait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { caller.Close() })
		caller.SetDeadline(time.Now().Add(e2eWait))
		return caller, readOffer(t, ctl).Token
	}
	// proofOn is the PROOF for token made on c with key k.
	proofOn := func(t *testing.T, c *tls.Conn, k proto.SessionKey, token proto.Token) proto.Option {
		t.Helper()
		cs := c.ConnectionState()
		x, err := cs.ExportKeyingMaterial(proto.ExporterResume, ack.SessionID[:], 32)
		if err != nil {
			t.Fatal(err)
		}
		return proto.ProofOption(proto.TakeProof(k, token, x))
	}
	take := func(t *testing.T, c net.Conn, token proto.Token, opts ...proto.Option) proto.ReplyCode {
		t.Helper()
		extSend(t, c, proto.ExtRequest{ID: 1, Command: proto.CommandTake, Token: token, Options: opts})
		return extReply(t, c, proto.CommandTake).Code
	}
	refused := func(t *testing.T, caller, c net.Conn, code proto.ReplyCode) {
		t.Helper()
		if code != proto.ReplyTokenInvalid {
			t.Fatalf("TAKE: %v, want token invalid", code)
		}
		e2eExpectClosed(t, c)
		// The token is spent: its caller is reset.
		if _, err := caller.Read(make([]byte, 1)); err == nil {
			t.Fatal("caller still open after a refused TAKE")
		}
	}
	tlsTaker := func(t *testing.T, user, pass string, maxVersion uint16) *tls.Conn {
		t.Helper()
		c := tlsDial(t, gw, ccfg, maxVersion, proto.ALPNSOCKS6)
		if a := tlsHello(t, c, user, pass); a.Status != proto.HelloOK {
			t.Fatalf("HELLO_ACK %v", a.Status)
		}
		return c
	}

	t.Run("cleartext_same_user", func(t *testing.T) {
		caller, token := offer(t)
		c, rep := takeConn(t, plain, "alice", "wonderland", token)
		refused(t, caller, c, rep.Code)
	})
	t.Run("no_proof", func(t *testing.T) {
		caller, token := offer(t)
		c := tlsTaker(t, "alice", "wonderland", 0)
		refused(t, caller, c, take(t, c, token))
	})
	t.Run("proof_for_another_connection", func(t *testing.T) {
		caller, token := offer(t)
		c := tlsTaker(t, "alice", "wonderland", 0)
		refused(t, caller, c, take(t, c, token, proofOn(t, ctl, key, token)))
	})
	t.Run("wrong_key", func(t *testing.T) {
		caller, token := offer(t)
		c := tlsTaker(t, "alice", "wonderland", 0)
		var other proto.SessionKey
		rand.Read(other[:])
		refused(t, caller, c, take(t, c, token, proofOn(t, c, other, token)))
	})
	t.Run("tls12", func(t *testing.T) {
		caller, token := offer(t)
		c := tlsTaker(t, "alice", "wonderland", tls.VersionTLS12)
		refused(t, caller, c, take(t, c, token, proofOn(t, c, key, token)))
	})
	t.Run("valid", func(t *testing.T) {
		caller, token := offer(t)
		caller.Write([]byte("early "))
		c := tlsTaker(t, "alice", "wonderland", 0)
		if code := take(t, c, token, proofOn(t, c, key, token)); code != proto.ReplySucceeded {
			t.Fatalf("TAKE with a valid PROOF: %v", code)
		}
		buf := make([]byte, 6)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "early " {
			t.Fatalf("caller's early bytes %q %v", buf, err)
		}
		c.Write([]byte("back"))
		if _, err := io.ReadFull(caller, buf[:4]); err != nil || string(buf[:4]) != "back" {
			t.Fatalf("to the caller %q %v", buf[:4], err)
		}
	})
	t.Run("valid_other_user", func(t *testing.T) {
		// The PROOF stands for the listener's user (draft "TAKE").
		caller, token := offer(t)
		c := tlsTaker(t, "bob", "builder", 0)
		if code := take(t, c, token, proofOn(t, c, key, token)); code != proto.ReplySucceeded {
			t.Fatalf("TAKE with a valid PROOF as another user: %v", code)
		}
		caller.Write([]byte("x"))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	})
	outcomes := func() map[string]int {
		m := map[string]int{}
		for _, r := range audit.records(t) {
			if r.Msg == "caller" {
				m[r.Outcome]++
			}
		}
		return m
	}
	if !socks6test.WaitFor(e2eWait, func() bool { return outcomes()["refused"] == 5 && outcomes()["taken"] == 2 }) {
		t.Fatalf("caller records %v, want 5 refused and 2 taken", outcomes())
	}
}
