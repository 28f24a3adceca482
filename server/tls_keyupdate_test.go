package server_test

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
	"github.com/socks6/socks6/server"
	"golang.org/x/crypto/chacha20poly1305"
)

// expandLabel is HKDF-Expand-Label of RFC 8446 Section 7.1.
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) []byte {
	var info []byte
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	l := "tls13 " + label
	info = append(info, byte(len(l)))
	info = append(info, l...)
	info = append(info, 0)
	out, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

// rawWriter is a TLS 1.3 record writer for the client's application
// traffic keys, learnt from KeyLogWriter.
type rawWriter struct {
	suite  uint16
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

// setSecret installs a traffic secret: its key and IV.
func (w *rawWriter) setSecret(s []byte) {
	w.secret = s
	keyLen := 16
	if w.suite == tls.TLS_CHACHA20_POLY1305_SHA256 {
		keyLen = 32
	}
	key := expandLabel(sha256.New, s, "key", keyLen)
	w.iv = expandLabel(sha256.New, s, "iv", 12)
	if w.suite == tls.TLS_CHACHA20_POLY1305_SHA256 {
		w.aead, _ = chacha20poly1305.New(key)
	} else {
		b, _ := aes.NewCipher(key)
		w.aead, _ = cipher.NewGCM(b)
	}
	w.seq = 0
}

// record seals one record of content type ctype.
func (w *rawWriter) record(ctype byte, payload []byte) []byte {
	inner := append(append([]byte{}, payload...), ctype)
	n := len(inner) + w.aead.Overhead()
	hdr := []byte{0x17, 3, 3, byte(n >> 8), byte(n)}
	nonce := append([]byte{}, w.iv...)
	for i := 0; i < 8; i++ {
		nonce[4+i] ^= byte(w.seq >> (56 - 8*i))
	}
	w.seq++
	return w.aead.Seal(hdr, nonce, inner, hdr)
}

// keyUpdate returns a KeyUpdate with update_requested, and moves to the
// next traffic secret.
func (w *rawWriter) keyUpdate() []byte {
	r := w.record(0x16, []byte{24, 0, 0, 1, 1})
	w.setSecret(expandLabel(sha256.New, w.secret, "traffic upd", 32))
	return r
}

// keyUpdateFlood opens a TLS session to the gateway at gw that CONNECTs
// to target (plain SOCKS5 inside TLS), then sends KeyUpdate requests and
// never reads, until the gateway stops taking them. Go's TLS layer
// answers each from Read, under the connection's output lock, so the
// answers fill the socket and the gateway's reader blocks in a write
// that no deadline ends.
func keyUpdateFlood(t *testing.T, gw string, targetPort int) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
		return nil
	}}
	raw, err := d.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	var keylog bytes.Buffer
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, KeyLogWriter: &keylog})
	tc.SetDeadline(time.Now().Add(e2eWait))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	w := &rawWriter{suite: tc.ConnectionState().CipherSuite}
	sc := bufio.NewScanner(&keylog)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "CLIENT_TRAFFIC_SECRET_0" {
			sec, _ := hex.DecodeString(f[2])
			w.setSecret(sec)
		}
	}
	if w.aead == nil {
		t.Fatal("no client traffic secret in the key log")
	}
	raw.Write(w.record(0x17, []byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, byte(targetPort >> 8), byte(targetPort)}))
	time.Sleep(200 * time.Millisecond)
	for sent := 0; sent < 400000; {
		var buf []byte
		for range 10 {
			buf = append(buf, w.keyUpdate()...)
			sent++
		}
		buf = append(buf, w.record(0x17, []byte{'x'})...) // data, so that crypto/tls keeps reading
		raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := raw.Write(buf); err != nil {
			break // the gateway no longer reads: it is stuck, or gone
		}
	}
	return raw
}

// TestTLSKeyUpdateFlood: a client that floods KeyUpdate requests and
// never reads cannot keep its session alive past the idle timeout, nor
// hold up Close, which also ends the other sessions at once.
func TestTLSKeyUpdateFlood(t *testing.T) {
	e2eCheckLeaks(t)
	silent := socks6test.Listen(t)
	socks6test.Serve(t, silent, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	port := silent.Addr().(*net.TCPAddr).Port
	cert := socks6test.NewCert(t, "127.0.0.1")
	gateway := func(idle time.Duration) (*server.Server, string) {
		s := &server.Server{IdleTimeout: idle, HandshakeTimeout: 5 * time.Second, Logger: socks6test.Logger(t),
			Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}}}
		return s, socks6test.ServeGatewayTLS(t, s, cert.ServerConfig())
	}

	t.Run("idle_timeout", func(t *testing.T) {
		s, gw := gateway(time.Second)
		keyUpdateFlood(t, gw, port)
		if !socks6test.WaitFor(10*time.Second, func() bool { return s.Sessions() == 0 }) {
			t.Fatalf("%d sessions 10 s after the flood, with a 1 s idle timeout", s.Sessions())
		}
	})
	t.Run("close", func(t *testing.T) {
		s, gw := gateway(time.Minute)
		keyUpdateFlood(t, gw, port)
		var others []net.Conn
		for range 4 {
			c, err := tls.Dial("tcp", gw, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(e2eWait))
			c.Write([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, byte(port >> 8), byte(port)})
			if _, err := io.ReadFull(c, make([]byte, 12)); err != nil {
				t.Fatal(err)
			}
			others = append(others, c)
		}
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Server.Close still blocked after 10 s (%d sessions)", s.Sessions())
		}
		for i, c := range others {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("session %d still open after Close: %v", i, err)
			}
		}
	})
}
