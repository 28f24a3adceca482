package relay

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests run relays over real loopback TCP (where Linux splices and
// idle directions park) and over net.Pipe (the buffered fallback). A
// relay sits between a client and a target:
//
//	client ⇄ a [Relay] b ⇄ target

// waitLimit bounds every wait on real time.
const waitLimit = 10 * time.Second

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln, err = net.Listen("tcp", "[::1]:0")
	}
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	acc := <-ch
	if acc.err != nil {
		c1.Close()
		t.Fatal(acc.err)
	}
	t.Cleanup(func() { c1.Close(); acc.c.Close() })
	return c1, acc.c
}

func pipePair(t testing.TB) (net.Conn, net.Conn) {
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

var pairs = []struct {
	name string
	pair func(testing.TB) (net.Conn, net.Conn)
}{
	{name: "tcp", pair: tcpPair},
	{name: "pipe", pair: pipePair},
}

type result struct {
	st  Stats
	err error
}

// startRelay connects client and target through Relay, running in its own
// goroutine; the result arrives on done.
func startRelay(t *testing.T, pair func(testing.TB) (net.Conn, net.Conn), idle time.Duration, head []byte) (client, target net.Conn, done <-chan result) {
	t.Helper()
	checkLeaks(t)
	client, a := pair(t)
	b, target := pair(t)
	ch := make(chan result, 1)
	go func() {
		st, err := Relay(a, b, idle, head)
		ch <- result{st, err}
	}()
	return client, target, ch
}

func waitResult(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(waitLimit):
		t.Fatalf("relay still running after %v", waitLimit)
		return result{}
	}
}

// checkLeaks fails the test if goroutines running relay code outlive it.
// The shared poller's goroutine is not the test's.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() {
		deadline := time.Now().Add(waitLimit)
		for {
			leaked := relayGoroutines(anyRelayCode)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d relay goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// relayGoroutines returns the stacks of goroutines with a frame whose
// function name contains fn, other than the shared poller and test
// functions.
func relayGoroutines(fn string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if !strings.Contains(g, fn) || strings.Contains(g, "(*poller).loop") || strings.Contains(g, "testing.tRunner") {
			continue
		}
		out = append(out, g)
	}
	return out
}

// Goroutine kinds for relayGoroutines.
const (
	anyRelayCode = "socks6/internal/relay."       // includes callers blocked in Relay
	copying      = "socks6/internal/relay.(*dire" // a direction's own goroutine
)

// send writes n pseudo-random bytes derived from seed and returns their
// hash.
func send(w io.Writer, n int64, seed byte) ([32]byte, error) {
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{seed}), n), h)
	_, err := io.Copy(w, src)
	return [32]byte(h.Sum(nil)), err
}

// recv reads n bytes (or to EOF when n < 0) and returns their hash and
// count.
func recv(r io.Reader, n int64) ([32]byte, int64, error) {
	h := sha256.New()
	if n >= 0 {
		r = io.LimitReader(r, n)
	}
	got, err := io.Copy(h, r)
	return [32]byte(h.Sum(nil)), got, err
}

// want is the hash send produces for n bytes from seed.
func want(n int64, seed byte) [32]byte {
	s, _ := send(io.Discard, n, seed)
	return s
}

// exchange sends n bytes each way at once and checks what arrives. With
// eof, each side half-closes after sending and reads to EOF.
func exchange(t *testing.T, client, target net.Conn, n int64, eof bool) {
	t.Helper()
	var wg sync.WaitGroup
	side := func(name string, c net.Conn, seed, peerSeed byte) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := send(c, n, seed); err != nil {
				t.Errorf("%s: send: %v", name, err)
				return
			}
			if eof {
				if err := c.(*net.TCPConn).CloseWrite(); err != nil {
					t.Errorf("%s: CloseWrite: %v", name, err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			limit := n
			if eof {
				limit = -1
			}
			sum, got, err := recv(c, limit)
			if err != nil {
				t.Errorf("%s: recv: %v", name, err)
			}
			if got != n || sum != want(n, peerSeed) {
				t.Errorf("%s: received %d bytes (sha256 %x), want %d bytes (sha256 %x)", name, got, sum[:8], n, want(n, peerSeed))
			}
		}()
	}
	side("client", client, 1, 2)
	side("target", target, 2, 1)
	wg.Wait()
}

func TestRelayData(t *testing.T) {
	const n = 8 << 20
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			client, target, done := startRelay(t, p.pair, time.Minute, nil)
			exchange(t, client, target, n, false)
			client.Close()
			io.Copy(io.Discard, target) // EOF (or closed) passed on
			target.Close()
			r := waitResult(t, done)
			if r.err != nil {
				t.Errorf("Relay error = %v, want nil after a clean close", r.err)
			}
			if r.st != (Stats{Up: n, Down: n}) {
				t.Errorf("Stats = %+v, want %d each way", r.st, n)
			}
		})
	}
}

// Each side half-closes after sending; both still receive everything.
func TestRelayDataHalfClose(t *testing.T) {
	const n = 8 << 20
	client, target, done := startRelay(t, tcpPair, time.Minute, nil)
	exchange(t, client, target, n, true)
	r := waitResult(t, done)
	if r.err != nil {
		t.Errorf("Relay error = %v, want nil", r.err)
	}
	if r.st != (Stats{Up: n, Down: n}) {
		t.Errorf("Stats = %+v, want %d each way", r.st, n)
	}
}

// readAll reads from c until EOF, bounded by waitLimit.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read to EOF: %v (got %q)", err, b)
	}
	return b
}

// readN reads exactly n bytes from c, bounded by waitLimit.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// One side's CloseWrite reaches the other as EOF, and the other can still
// answer: a request/response over half-close, as HTTP/1.0 clients do.
func TestRelayHalfClosePropagation(t *testing.T) {
	for _, dir := range []string{"client_first", "target_first"} {
		t.Run(dir, func(t *testing.T) {
			client, target, done := startRelay(t, tcpPair, time.Minute, nil)
			first, second := client, target
			if dir == "target_first" {
				first, second = target, client
			}
			if _, err := first.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			if err := first.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, second); string(got) != "request" {
				t.Fatalf("read %q, want %q then EOF", got, "request")
			}
			// The other direction is still open.
			for i := range 3 {
				msg := fmt.Sprintf("response %d", i)
				if _, err := second.Write([]byte(msg)); err != nil {
					t.Fatalf("write after the peer's half-close: %v", err)
				}
				if got := readN(t, first, len(msg)); string(got) != msg {
					t.Fatalf("read %q, want %q", got, msg)
				}
			}
			select {
			case r := <-done:
				t.Fatalf("relay ended after one half-close: %+v", r)
			default:
			}
			second.(*net.TCPConn).CloseWrite()
			if got := readAll(t, first); len(got) != 0 {
				t.Fatalf("read %q, want EOF", got)
			}
			r := waitResult(t, done)
			if r.err != nil {
				t.Errorf("Relay error = %v, want nil", r.err)
			}
			if up, down := int64(len("request")), int64(3*len("response 0")); dir == "client_first" && r.st != (Stats{Up: up, Down: down}) {
				t.Errorf("Stats = %+v, want {Up:%d Down:%d}", r.st, up, down)
			}
		})
	}
}

// assertClosed checks that the relay closed its side of c's connection:
// a read on c sees EOF or an error, not a timeout.
func assertClosed(t *testing.T, name string, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := c.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s: read = %v, want EOF or a closed-connection error", name, err)
	}
}

func TestRelayIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			start := time.Now()
			client, target, done := startRelay(t, p.pair, idle, nil)
			r := waitResult(t, done)
			elapsed := time.Since(start)
			if !errors.Is(r.err, os.ErrDeadlineExceeded) {
				t.Errorf("Relay error = %v, want os.ErrDeadlineExceeded", r.err)
			}
			if elapsed < idle {
				t.Errorf("idle timeout fired after %v, before %v", elapsed, idle)
			}
			assertClosed(t, "client", client)
			assertClosed(t, "target", target)
		})
	}
}

// Traffic in one direction keeps the whole session alive: the silent
// direction must not time out while the other flows. Once traffic stops,
// the timeout fires.
func TestRelayIdleResetsOnProgress(t *testing.T) {
	const (
		// Generous against a loaded machine (race detector, two cores):
		// a stall longer than idle would be a real idle period.
		idle  = 500 * time.Millisecond
		every = 50 * time.Millisecond
		total = time.Second
	)
	for _, p := range pairs {
		for _, dir := range []string{"up", "down"} {
			t.Run(p.name+"_"+dir, func(t *testing.T) {
				client, target, done := startRelay(t, p.pair, idle, nil)
				from, to := client, target
				if dir == "down" {
					from, to = target, client
				}
				end := time.Now().Add(total)
				sent := 0
				var lastWrite time.Time
				for time.Now().Before(end) {
					select {
					case r := <-done:
						t.Fatalf("relay ended after %d messages while traffic flowed every %v (idle %v): %+v", sent, every, idle, r)
					default:
					}
					lastWrite = time.Now()
					if _, err := from.Write([]byte("tick")); err != nil {
						t.Fatalf("write %d: %v", sent, err)
					}
					if got := readN(t, to, 4); string(got) != "tick" {
						t.Fatalf("read %q, want tick", got)
					}
					sent++
					time.Sleep(every)
				}
				r := waitResult(t, done)
				// The relay saw the last byte after lastWrite.
				if d := time.Since(lastWrite); d < idle {
					t.Errorf("timed out %v after the last byte, want at least %v", d, idle)
				}
				if !errors.Is(r.err, os.ErrDeadlineExceeded) {
					t.Errorf("Relay error = %v, want os.ErrDeadlineExceeded once traffic stopped", r.err)
				}
				if got, want := r.st.Up+r.st.Down, int64(4*sent); got != want {
					t.Errorf("Stats = %+v, want %d bytes in all", r.st, want)
				}
			})
		}
	}
}

func TestRelayHead(t *testing.T) {
	head := []byte("early bytes pipelined behind the request|")
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			client, target, done := startRelay(t, p.pair, time.Minute, head)
			// On net.Pipe the head write blocks until read: read first.
			if got := readN(t, target, len(head)); !bytes.Equal(got, head) {
				t.Fatalf("target read %q first, want the head %q", got, head)
			}
			if _, err := client.Write([]byte("then the stream")); err != nil {
				t.Fatal(err)
			}
			if got := readN(t, target, len("then the stream")); string(got) != "then the stream" {
				t.Fatalf("target read %q, want %q", got, "then the stream")
			}
			client.Close()
			io.Copy(io.Discard, target)
			target.Close()
			r := waitResult(t, done)
			if r.st.Up != int64(len(head)+len("then the stream")) {
				t.Errorf("Stats.Up = %d, want %d (head included)", r.st.Up, len(head)+len("then the stream"))
			}
		})
	}
}

// A head that cannot be written ends the relay with the write error and
// closes both sides.
func TestRelayHeadWriteError(t *testing.T) {
	client, a := tcpPair(t)
	b, target := tcpPair(t)
	b.Close()
	st, err := Relay(a, b, time.Minute, []byte("head"))
	if err == nil {
		t.Fatal("Relay with a closed target: error = nil")
	}
	if st.Down != 0 {
		t.Errorf("Stats = %+v, want nothing relayed down", st)
	}
	assertClosed(t, "client", client)
	_ = target
}

// A reset on one side ends the relay with an error and closes the other.
func TestRelayReset(t *testing.T) {
	client, target, done := startRelay(t, tcpPair, time.Minute, nil)
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	readN(t, target, 5)
	target.(*net.TCPConn).SetLinger(0)
	target.Close() // RST
	r := waitResult(t, done)
	if r.err == nil {
		t.Error("Relay error = nil after a reset, want an error")
	}
	assertClosed(t, "client", client)
}

// Session.Close ends a live session; done is called once, with
// net.ErrClosed.
func TestSessionClose(t *testing.T) {
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			checkLeaks(t)
			client, a := p.pair(t)
			b, target := p.pair(t)
			var calls int
			var mu sync.Mutex
			done := make(chan result, 2)
			s := Start(a, b, Options{Idle: time.Minute}, func(st Stats, err error) {
				mu.Lock()
				calls++
				mu.Unlock()
				done <- result{st, err}
			})
			go client.Write([]byte("x"))
			readN(t, target, 1)
			s.Close()
			s.Close()
			r := waitResult(t, done)
			if !errors.Is(r.err, net.ErrClosed) {
				t.Errorf("done error = %v, want net.ErrClosed", r.err)
			}
			if r.st.Up != 1 {
				t.Errorf("Stats = %+v, want Up 1", r.st)
			}
			assertClosed(t, "client", client)
			assertClosed(t, "target", target)
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if calls != 1 {
				t.Errorf("done called %d times, want 1", calls)
			}
		})
	}
}

// fdKinds counts this process's open file descriptors by kind ("socket",
// "pipe", "anon_inode", "other").
func fdKinds(t *testing.T) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	kinds := map[string]int{}
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, already closed
		}
		kind, _, ok := strings.Cut(l, ":")
		if !ok || strings.HasPrefix(l, "/") {
			kind = "other"
		}
		kinds[kind]++
	}
	return kinds
}

// flushPipePool makes the runtime close the splice pipes it caches in a
// sync.Pool (two GC cycles clear a pool; a cleanup then closes each pipe)
// and returns the fd counts once the pipe count is at most max or has
// stopped falling. (Pipes not made by splice, such as the test binary's
// stdout, stay.)
func flushPipePool(t *testing.T, max int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	prev, stable := -1, 0
	for {
		runtime.GC()
		runtime.GC()
		k := fdKinds(t)
		if k["pipe"] == prev {
			stable++
		} else {
			prev, stable = k["pipe"], 0
		}
		if k["pipe"] <= max || stable >= 10 || time.Now().After(deadline) {
			return k
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An idle TCP relay holds its sockets and nothing else: no splice pipe
// pair and no goroutine per direction, even after data has flowed.
func TestRelayIdleHoldsOnlySockets(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd; parking is Linux-only")
	}
	const sessions = 50
	checkLeaks(t)

	// Warm up: the netpoller, the relay's poller and a splice.
	{
		client, target, done := startRelay(t, tcpPair, time.Minute, nil)
		exchange(t, client, target, 64<<10, true)
		waitResult(t, done)
	}
	before := flushPipePool(t, 0)

	type session struct {
		client, target net.Conn
		done           chan result
	}
	var ss []session
	for range sessions {
		client, a := tcpPair(t)
		b, target := tcpPair(t)
		s := session{client, target, make(chan result, 1)}
		go func() {
			st, err := Relay(a, b, time.Minute, nil)
			s.done <- result{st, err}
		}()
		ss = append(ss, s)
	}
	// Move data both ways through every session, so each direction has
	// spliced at least once, then let them all go quiet.
	for _, s := range ss {
		exchangeSmall(t, s.client, s.target)
	}
	deadline := time.Now().Add(waitLimit)
	for len(relayGoroutines(copying)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := relayGoroutines(copying); len(g) > 0 {
		t.Errorf("%d goroutines still in relay code for %d idle sessions, want 0; first:\n%s", len(g), sessions, g[0])
	}
	after := flushPipePool(t, before["pipe"])

	for kind, n := range after {
		want := before[kind]
		if kind == "socket" {
			want += 4 * sessions // client, a, b, target per session
		}
		// Pipes: none held by the sessions (a splice pipe pair per
		// direction would be 4 fds per session); the runtime's pool may
		// not shrink to exactly where it was.
		if n != want && !(kind == "pipe" && n <= want) {
			t.Errorf("%d %s fds with %d idle relays, want %d (%d before)", n, kind, sessions, want, before[kind])
		}
	}
	t.Logf("fds before: %v; with %d idle relays: %v", before, sessions, after)

	for _, s := range ss {
		s.client.Close()
		s.target.Close()
	}
	for _, s := range ss {
		if r := waitResult(t, s.done); r.err != nil && !errors.Is(r.err, net.ErrClosed) && !isReset(r.err) {
			t.Errorf("relay ended with %v", r.err)
		}
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// exchangeSmall sends one message each way and reads it.
func exchangeSmall(t *testing.T, client, target net.Conn) {
	t.Helper()
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, target, 4); string(got) != "ping" {
		t.Fatalf("target read %q", got)
	}
	if _, err := target.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, client, 4); string(got) != "pong" {
		t.Fatalf("client read %q", got)
	}
}

// Close after both directions ended cleanly finds nothing left to stop:
// done has run and must not run again. (A gateway shutting down calls
// Close on every session it still tracks, including one whose done is
// under way.)
func TestSessionCloseAfterEnd(t *testing.T) {
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			checkLeaks(t)
			client, a := p.pair(t)
			b, target := p.pair(t)
			var calls atomic.Int32
			done := make(chan result, 2)
			s := Start(a, b, Options{Idle: time.Minute}, func(st Stats, err error) {
				calls.Add(1)
				done <- result{st, err}
			})
			client.Close()
			target.Close()
			r := waitResult(t, done)
			if r.err != nil && !errors.Is(r.err, net.ErrClosed) {
				t.Logf("done error = %v", r.err) // a pipe ends with an error; TCP with none
			}
			s.Close()
			s.Close()
			time.Sleep(50 * time.Millisecond)
			if n := calls.Load(); n != 1 {
				t.Fatalf("done called %d times, want 1", n)
			}
		})
	}
}
