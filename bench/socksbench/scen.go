package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	s6client "github.com/socks6/socks6/client"
)

// allScenarios in the order they run within a rep. idle runs first so that
// the first rep measures idle memory on servers that have seen nothing but
// the fresh-start sample. dns runs against its own server instances in a
// network namespace (see dns.go); socksify measures clients (curl under
// socksify, proxychains4, proxy-aware, direct) through the socks6d
// instance there (see socksify.go).
var allScenarios = []string{"idle", "conn1", "conn64", "rtt", "udp", "bulk1", "bulk8", "dns", "socksify"}

type config struct {
	reps        int
	scenarios   []string
	idleConns   int
	bulkDur     time.Duration
	warmup      time.Duration
	connDur     time.Duration
	rttDur      time.Duration
	udpDur      time.Duration
	idleOpenMax time.Duration
	idleSettle  time.Duration
	hsTimeout   time.Duration
	foreignMax  float64
	maxTime     time.Duration
	quick       bool
	spin        bool // keep the CPUs awake during rtt and udp (see spin.go)
	// dns scenario (dns.go): the namespace, and per phase at most
	// dnsSeqN sequential connections in dnsSeqDur, then dnsConc workers
	// for dnsConcDur.
	dnsNetns   string
	dnsSeqN    int
	dnsSeqDur  time.Duration
	dnsConc    int
	dnsConcDur time.Duration
	// socksify scenario (socksify.go): the clients' programs, the
	// proxychains4 configuration and the size of the download.
	sfyCurl, sfyBin, sfyProxychains, sfyPCConf string
	sfyBulkBytes                               int64
}

type result struct {
	Rep      int                `json:"rep"`
	Scenario string             `json:"scenario"`
	Target   string             `json:"target"`
	Status   string             `json:"status"` // ok, unsup, error, n/a, skipped
	Err      string             `json:"err,omitempty"`
	Note     string             `json:"note,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Foreign  float64            `json:"foreign_cores"`
	Attempts int                `json:"attempts,omitempty"`
	Seconds  float64            `json:"seconds"`
}

// unsupported marks a scenario the server declined.
type unsupported struct{ err error }

func (u unsupported) Error() string { return "unsupported: " + u.err.Error() }

type bench struct {
	cfg     config
	s       *sinks
	targets []*target
	// dnsTargets are the dns scenario's: the direct path and the server
	// instances in the namespace (their names match the host targets').
	dnsTargets []*target
	// sfyTargets are the socksify scenario's clients; sfyProxy is the
	// socks6d instance in the namespace they go through.
	sfyTargets []*target
	sfyProxy   *target
	softirq    []int
	nofile     int
	idleCap    int // idle connections the harness can hold
	start      time.Time
	progress   io.Writer
	// waitLeft is what remains of the time the run may spend waiting for
	// foreign load to pass before repeating a disturbed measurement.
	waitLeft time.Duration
	spinPID  int // the spinner process while one runs
	// rep and attempt of the running measurement
	rep, attempt int
}

// window brackets one measurement: wall time, server CPU, this process's
// CPU and the machine's, to compute the server's CPU and the foreign load.
type window struct {
	t                      time.Time
	srv, self, busy, ksirq float64
	spin                   float64
}

// spinCPU returns the spinner's CPU seconds (0 when none runs).
func (b *bench) spinCPU() float64 {
	if b.spinPID == 0 {
		return 0
	}
	return pidsCPU([]int{b.spinPID})
}

func (b *bench) begin(t *target) window {
	var w window
	if !t.Direct {
		w.srv = treeCPU(t.PIDs)
	}
	w.busy, _ = sysBusy()
	w.self = selfCPU()
	w.ksirq = pidsCPU(b.softirq)
	w.spin = b.spinCPU()
	w.t = time.Now()
	return w
}

// end returns the elapsed seconds, the server's CPU seconds and the
// foreign load in cores (CPU used by neither this process, the server,
// nor the kernel's softirq threads).
func (b *bench) end(t *target, w window) (el, srv, foreign float64) {
	el = time.Since(w.t).Seconds()
	busy, _ := sysBusy()
	self := selfCPU()
	ksirq := pidsCPU(b.softirq)
	spin := b.spinCPU()
	if !t.Direct {
		srv = treeCPU(t.PIDs) - w.srv
	}
	foreign = ((busy - w.busy) - (self - w.self) - srv - (ksirq - w.ksirq) - (spin - w.spin)) / el
	if foreign < 0 {
		foreign = 0
	}
	return el, srv, foreign
}

// foreignNow samples the foreign load for d while nothing is measured.
func (b *bench) foreignNow(d time.Duration) float64 {
	none := &target{Direct: true}
	w := b.begin(none)
	time.Sleep(d)
	_, _, f := b.end(none, w)
	return f
}

// waitQuiet waits (at most max) until the foreign load drops below half
// the threshold.
func (b *bench) waitQuiet(max time.Duration) float64 {
	deadline := time.Now().Add(max)
	for {
		f := b.foreignNow(500 * time.Millisecond)
		if f < b.cfg.foreignMax/2 || time.Now().After(deadline) {
			return f
		}
	}
}

// settle waits (bounded) until the previous measurement's connections have
// drained from the sink and the server has gone quiet.
func (b *bench) settle(t *target) {
	deadline := time.Now().Add(3 * time.Second)
	for b.s.sinkConns.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if t.Direct {
		time.Sleep(100 * time.Millisecond)
		return
	}
	for time.Now().Before(deadline) {
		c0 := treeCPU(t.PIDs)
		time.Sleep(100 * time.Millisecond)
		if treeCPU(t.PIDs)-c0 <= 0.01 {
			return
		}
	}
}

func targetAlive(t *target) bool {
	if t.Direct {
		return true
	}
	for _, p := range t.PIDs {
		if !alive(p) {
			return false
		}
	}
	return true
}

// measure runs one scenario against one target, repeating it once if
// foreign load disturbed it.
func (b *bench) measure(rep int, sc string, t *target) *result {
	r := &result{Rep: rep, Scenario: sc, Target: t.Name}
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	if t.Direct && sc == "idle" {
		r.Status = "n/a"
		return r
	}
	if t.dead || !targetAlive(t) {
		t.dead = true
		r.Status, r.Err = "error", "server process is gone"
		return r
	}
	if time.Since(b.start) > b.cfg.maxTime {
		r.Status, r.Err = "skipped", "time budget (-max-time) used up"
		return r
	}
	for attempt := 1; attempt <= 2; attempt++ {
		b.rep, b.attempt = rep, attempt
		b.settle(t)
		m, foreign, note, err := b.run(sc, t)
		r.Attempts, r.Foreign, r.Note = attempt, foreign, note
		if err != nil {
			var u unsupported
			if errors.As(err, &u) {
				r.Status, r.Err = "unsup", u.err.Error()
			} else {
				r.Status, r.Err = "error", err.Error()
			}
			r.Metrics = nil
			if !targetAlive(t) {
				t.dead = true
				r.Err += " (server process exited)"
			}
			return r
		}
		r.Status, r.Metrics = "ok", m
		if foreign <= b.cfg.foreignMax || attempt == 2 || sc == "idle" || b.waitLeft <= 0 {
			break
		}
		wait := min(b.waitLeft, 5*time.Second)
		if b.cfg.quick {
			wait = min(wait, 2*time.Second)
		}
		fmt.Fprintf(b.progress, "    foreign load %.2f cores during %s/%s; waiting up to %v for quiet and repeating\n", foreign, sc, t.Name, wait.Round(100*time.Millisecond))
		t0 := time.Now()
		b.waitQuiet(wait)
		b.waitLeft -= time.Since(t0)
	}
	return r
}

func (b *bench) run(sc string, t *target) (map[string]float64, float64, string, error) {
	if b.cfg.spin && (sc == "rtt" || sc == "udp") {
		pid, stop := startSpin(b.cfg.rttDur + b.cfg.udpDur + 20*time.Second)
		b.spinPID = pid
		defer func() {
			stop()
			b.spinPID = 0
		}()
	}
	switch sc {
	case "bulk1":
		return b.bulk(t, 1, "bulk1")
	case "bulk8":
		return b.bulk(t, 8, "bulk8")
	case "conn1":
		return b.connRate(t, 1, "conn1")
	case "conn64":
		return b.connRate(t, 64, "conn64")
	case "rtt":
		return b.rtt(t)
	case "udp":
		return b.udp(t)
	case "idle":
		return b.idle(t)
	case "dns":
		return b.dnsMeasure(t)
	case "socksify":
		return b.sfyMeasure(t)
	}
	return nil, 0, "", fmt.Errorf("unknown scenario %q", sc)
}

// maxOps bounds every load loop in count as well as in time: far above
// what any loop reaches in its time on this kind of machine.
const maxOps = 5_000_000

// bulkBuf is what the bulk writers send; its contents do not matter.
var bulkBuf [256 << 10]byte

// bulk sends from streams connections through t to the sink for
// cfg.bulkDur after a warm-up and counts what arrives at the sink.
func (b *bench) bulk(t *target, streams int, p string) (map[string]float64, float64, string, error) {
	var cl client
	conns := make([]*net.TCPConn, 0, streams)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < streams; i++ {
		c, err := cl.open(t, b.s.sinkAddr, b.cfg.hsTimeout)
		if err != nil {
			return nil, 0, "", fmt.Errorf("CONNECT: %w", err)
		}
		conns = append(conns, c)
	}
	var stop atomic.Bool
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *net.TCPConn) {
			defer wg.Done()
			for n := 0; !stop.Load() && n < maxOps; n++ {
				if _, err := c.Write(bulkBuf[:]); err != nil {
					if !stop.Load() {
						firstErr.CompareAndSwap(nil, &err)
					}
					return
				}
			}
		}(c)
	}
	time.Sleep(b.cfg.warmup)
	w := b.begin(t)
	b0 := b.s.sinkBytes.Load()
	time.Sleep(b.cfg.bulkDur)
	b1 := b.s.sinkBytes.Load()
	el, cpu, foreign := b.end(t, w)
	stop.Store(true)
	now := time.Now()
	for _, c := range conns {
		c.SetWriteDeadline(now)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, foreign, "", fmt.Errorf("write: %w", *e)
	}
	bytes := float64(b1 - b0)
	if bytes <= 0 {
		return nil, foreign, "", errors.New("no bytes reached the sink")
	}
	m := map[string]float64{p + "_gbps": bytes * 8 / el / 1e9}
	if !t.Direct {
		m[p+"_cpu_ms_per_gb"] = cpu * 1e3 / (bytes / 1e9)
	}
	return m, foreign, "", nil
}

// connRate opens connections through t to the closing endpoint with
// workers concurrent workers for cfg.connDur; each connection is closed
// as soon as the CONNECT reply arrives.
func (b *bench) connRate(t *target, workers int, p string) (map[string]float64, float64, string, error) {
	hs := make([]hist, workers)
	counts := make([]int64, workers)
	errs := make([]int64, workers)
	lastErr := make([]error, workers)
	var wg sync.WaitGroup
	w := b.begin(t)
	deadline := w.t.Add(b.cfg.connDur)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var cl client
			h := &hs[i]
			for {
				t0 := time.Now()
				if !t0.Before(deadline) || counts[i]+errs[i] >= maxOps {
					return
				}
				c, err := cl.open(t, b.s.closeAddr, b.cfg.hsTimeout)
				if err != nil {
					errs[i]++
					lastErr[i] = err
					time.Sleep(time.Millisecond)
					continue
				}
				h.add(time.Since(t0))
				counts[i]++
				c.Close()
			}
		}(i)
	}
	wg.Wait()
	el, cpu, foreign := b.end(t, w)
	var total, nerr int64
	var agg hist
	var anErr error
	for i := range hs {
		total += counts[i]
		nerr += errs[i]
		agg.merge(&hs[i])
		if lastErr[i] != nil {
			anErr = lastErr[i]
		}
	}
	if total == 0 {
		return nil, foreign, "", fmt.Errorf("no connection succeeded (%d errors): %v", nerr, anErr)
	}
	m := map[string]float64{
		p + "_cps":        float64(total) / el,
		p + "_hs_p50_us":  agg.quantileUS(0.50),
		p + "_hs_p99_us":  agg.quantileUS(0.99),
		p + "_err_pct":    100 * float64(nerr) / float64(total+nerr),
		p + "_conns":      float64(total),
		p + "_seconds":    el,
		p + "_errors":     float64(nerr),
		p + "_concurrent": float64(workers),
	}
	if !t.Direct {
		m[p+"_cpu_us_per_conn"] = cpu * 1e6 / float64(total)
	}
	note := ""
	if nerr > 0 {
		note = fmt.Sprintf("%d errors, last: %v", nerr, anErr)
	}
	return m, foreign, note, nil
}

// rtt sends 64-byte requests to the echo endpoint on one connection and
// waits for each answer.
func (b *bench) rtt(t *target) (map[string]float64, float64, string, error) {
	var cl client
	c, err := cl.open(t, b.s.echoAddr, b.cfg.hsTimeout)
	if err != nil {
		return nil, 0, "", fmt.Errorf("CONNECT: %w", err)
	}
	defer c.Close()
	c.SetNoDelay(true)
	var wb, rb [64]byte
	c.SetDeadline(time.Now().Add(b.cfg.rttDur + 10*time.Second))
	roundTrip := func() error {
		if _, err := c.Write(wb[:]); err != nil {
			return err
		}
		_, err := io.ReadFull(c, rb[:])
		return err
	}
	for i := 0; i < 200; i++ {
		if err := roundTrip(); err != nil {
			return nil, 0, "", fmt.Errorf("warm-up: %w", err)
		}
	}
	var h hist
	var n int64
	w := b.begin(t)
	deadline := w.t.Add(b.cfg.rttDur)
	for {
		t0 := time.Now()
		if !t0.Before(deadline) || n >= maxOps {
			break
		}
		binary.LittleEndian.PutUint64(wb[:], uint64(n))
		if err := roundTrip(); err != nil {
			return nil, 0, "", err
		}
		h.add(time.Since(t0))
		n++
		if rb != wb {
			return nil, 0, "", errors.New("echo returned different bytes")
		}
	}
	el, cpu, foreign := b.end(t, w)
	m := map[string]float64{
		"rtt_p50_us": h.quantileUS(0.50),
		"rtt_p99_us": h.quantileUS(0.99),
		"rtt_rps":    float64(n) / el,
	}
	if !t.Direct && n > 0 {
		m["rtt_cpu_us_per_rt"] = cpu * 1e6 / float64(n)
	}
	return m, foreign, "", nil
}

// udp sends 64-byte datagrams through one UDP association to the UDP echo
// endpoint, one at a time, for cfg.udpDur.
func (b *bench) udp(t *target) (map[string]float64, float64, string, error) {
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, 0, "", err
	}
	defer u.Close()
	local := u.LocalAddr().(*net.UDPAddr).AddrPort()
	var hdr []byte
	relay := b.s.udpAddr
	if !t.Direct {
		var cl client
		ctl, err := dialTCP(t.dial)
		if err != nil {
			return nil, 0, "", err
		}
		defer ctl.Close()
		ctl.SetDeadline(time.Now().Add(b.cfg.hsTimeout))
		if err := cl.greet(ctl, t); err != nil {
			return nil, 0, "", err
		}
		bnd, err := cl.request(ctl, cmdAssociate, local)
		if err != nil {
			var re replyError
			if (errors.As(err, &re) && re == 7) || errors.Is(err, errServerClosed) {
				return nil, 0, "", unsupported{fmt.Errorf("UDP ASSOCIATE: %w", err)}
			}
			return nil, 0, "", fmt.Errorf("UDP ASSOCIATE: %w", err)
		}
		ctl.SetDeadline(time.Time{})
		relay = bnd
		if !bnd.Addr().IsValid() || bnd.Addr().IsUnspecified() {
			relay = netip.AddrPortFrom(t.ap.Addr(), bnd.Port())
		}
		a := b.s.udpAddr.Addr().As4()
		hdr = []byte{0, 0, 0, 1, a[0], a[1], a[2], a[3], byte(b.s.udpAddr.Port() >> 8), byte(b.s.udpAddr.Port())}
	}
	var pkt [10 + 64]byte
	copy(pkt[:], hdr)
	out := pkt[:len(hdr)+64]
	var rb [2048]byte
	var seq uint64
	// ping sends one datagram and waits up to 200 ms for its echo.
	ping := func() (bool, error) {
		seq++
		binary.LittleEndian.PutUint64(out[len(hdr):], seq)
		if _, err := u.WriteToUDPAddrPort(out, relay); err != nil {
			return false, err
		}
		dl := time.Now().Add(200 * time.Millisecond)
		u.SetReadDeadline(dl)
		for {
			n, _, err := u.ReadFromUDPAddrPort(rb[:])
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return false, nil
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue
				}
				return false, err
			}
			off := 0
			if !t.Direct {
				off, err = udpHeaderLen(rb[:n])
				if err != nil {
					continue
				}
			}
			if n-off != 64 {
				continue
			}
			if binary.LittleEndian.Uint64(rb[off:]) == seq {
				return true, nil
			}
			// a late answer to an earlier ping: keep waiting
		}
	}
	pr, err := b.pingLoop(t, "udp", ping)
	if err != nil {
		return nil, pr.foreign, "", err
	}
	got, lost, h, el, cpu, foreign := pr.got, pr.lost, &pr.h, pr.el, pr.cpu, pr.foreign
	m := map[string]float64{
		"udp_rtps":       float64(got) / el,
		"udp_rtt_p50_us": h.quantileUS(0.50),
		"udp_rtt_p99_us": h.quantileUS(0.99),
		"udp_loss_pct":   100 * float64(lost) / float64(got+lost),
	}
	if !t.Direct {
		m["udp_cpu_us_per_rt"] = cpu * 1e6 / float64(got)
	}
	if strings.HasPrefix(t.Name, "socks6d") {
		sm, sforeign, err := b.udpStream(t)
		if err != nil {
			return nil, 0, "", fmt.Errorf("UDP in the stream: %w", err)
		}
		maps.Copy(m, sm)
		foreign = max(foreign, sforeign)
	}
	return m, foreign, "", nil
}

// udpStream is udp's measurement through UDP in the stream (the socks6
// extensions' UDP command and DATAGRAM frames, by the project's client
// library): the same 64-byte pings to the same echo endpoint, one at a
// time, for cfg.udpDur. Only socks6d has the extensions: udp calls it for
// socks6d targets alone.
func (b *bench) udpStream(t *target) (map[string]float64, float64, error) {
	d := &s6client.Dialer{ProxyAddress: t.dial, Username: t.User, Password: t.pass, Extensions: s6client.ExtRequire}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.hsTimeout)
	pc, err := d.ListenPacket(ctx)
	cancel()
	if err != nil {
		return nil, 0, err
	}
	defer pc.Close()
	dst := net.UDPAddrFromAddrPort(b.s.udpAddr)
	var out [64]byte
	var rb [2048]byte
	var seq uint64
	ping := func() (bool, error) {
		seq++
		binary.LittleEndian.PutUint64(out[:], seq)
		if _, err := pc.WriteTo(out[:], dst); err != nil {
			return false, err
		}
		pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, _, err := pc.ReadFrom(rb[:])
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return false, nil
				}
				return false, err
			}
			if n == 64 && binary.LittleEndian.Uint64(rb[:]) == seq {
				return true, nil
			}
			// a late answer to an earlier ping: keep waiting
		}
	}
	r, err := b.pingLoop(t, "udp", ping)
	if err != nil {
		return nil, r.foreign, err
	}
	got, lost, h, el, cpu, foreign := r.got, r.lost, &r.h, r.el, r.cpu, r.foreign
	return map[string]float64{
		"udp_stream_rtps":          float64(got) / el,
		"udp_stream_rtt_p50_us":    h.quantileUS(0.50),
		"udp_stream_rtt_p99_us":    h.quantileUS(0.99),
		"udp_stream_loss_pct":      100 * float64(lost) / float64(got+lost),
		"udp_stream_cpu_us_per_rt": cpu * 1e6 / float64(got),
	}, foreign, nil
}

// pingResult is what pingLoop measured.
type pingResult struct {
	got, lost        int64 // answered and unanswered pings
	h                hist  // round-trip times of the answered ones
	el, cpu, foreign float64
}

// pingLoop warms up with 20 pings, then pings one at a time for
// cfg.udpDur (or maxOps), measuring t's CPU meanwhile. ping reports
// whether its answer came in time. It fails if no answer came at all.
func (b *bench) pingLoop(t *target, what string, ping func() (bool, error)) (pingResult, error) {
	var r pingResult
	for i := 0; i < 20; i++ {
		if _, err := ping(); err != nil {
			return r, err
		}
	}
	w := b.begin(t)
	deadline := w.t.Add(b.cfg.udpDur)
	for {
		t0 := time.Now()
		if !t0.Before(deadline) || r.got+r.lost >= maxOps {
			break
		}
		ok, err := ping()
		if err != nil {
			return r, err
		}
		if ok {
			r.h.add(time.Since(t0))
			r.got++
		} else {
			r.lost++
			if r.lost > 50 && r.got == 0 {
				break
			}
		}
	}
	r.el, r.cpu, r.foreign = b.end(t, w)
	if r.got == 0 {
		return r, fmt.Errorf("%s: no datagram came back (%d sent)", what, r.lost)
	}
	return r, nil
}

// udpHeaderLen returns the length of the SOCKS5 UDP request header at the
// start of p.
func udpHeaderLen(p []byte) (int, error) {
	if len(p) < 4 || p[2] != 0 {
		return 0, errors.New("bad UDP header")
	}
	switch p[3] {
	case 1:
		return 10, nil
	case 4:
		return 22, nil
	case 3:
		if len(p) < 5 {
			return 0, errors.New("bad UDP header")
		}
		return 7 + int(p[4]), nil
	}
	return 0, errors.New("bad UDP address type")
}

// idle opens cfg.idleConns CONNECT sessions to the hold endpoint, lets
// them sit, and measures the server's memory and descriptors.
func (b *bench) idle(t *target) (map[string]float64, float64, string, error) {
	n := b.cfg.idleConns
	var notes []string
	if n > b.idleCap {
		n = b.idleCap
	}
	b.s.releaseHeld()
	base := treeMem(t.PIDs)
	conns := make([]*net.TCPConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		b.s.releaseHeld()
	}()
	var next, opened, nerr atomic.Int64
	var lastErr atomic.Pointer[error]
	openDeadline := time.Now().Add(b.cfg.idleOpenMax)
	open := func(limit int) {
		var wg sync.WaitGroup
		for wkr := 0; wkr < 16; wkr++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var cl client
				for {
					i := next.Add(1) - 1
					if i >= int64(limit) || time.Now().After(openDeadline) {
						return
					}
					if e := nerr.Load(); e > 100 && e > opened.Load()/10 {
						return
					}
					c, err := cl.open(t, b.s.holdAddr, b.cfg.hsTimeout)
					if err != nil {
						nerr.Add(1)
						lastErr.Store(&err)
						continue
					}
					conns[i] = c
					opened.Add(1)
				}
			}()
		}
		wg.Wait()
		if next.Load() > int64(limit) {
			next.Store(int64(limit))
		}
	}
	t0 := time.Now()
	w := b.begin(t)
	first := min(256, n)
	open(first)
	// Keep a single-process server within its descriptor limit: project
	// its descriptors per connection from the first batch.
	if o := opened.Load(); o > 0 && n > first {
		m := treeMem(t.PIDs)
		per := float64(m.fds-base.fds) / float64(o)
		if lim := fdLimit(t.PIDs[0]); m.procs == 1 && lim > 0 && per > 0 {
			maxN := int((0.95*float64(lim) - float64(base.fds)) / per)
			if maxN < n {
				notes = append(notes, fmt.Sprintf("capped at %d connections: server holds %.1f fds/conn, its RLIMIT_NOFILE is %d", maxN, per, lim))
				n = maxN
			}
		}
	}
	open(n)
	openEl := time.Since(t0).Seconds()
	_, _, foreign := b.end(t, w)
	o := opened.Load()
	if int(o) < n {
		msg := fmt.Sprintf("opened %d of %d in %.0fs", o, n, openEl)
		if e := lastErr.Load(); e != nil {
			msg += fmt.Sprintf(" (%d errors, last: %v)", nerr.Load(), *e)
		}
		notes = append(notes, msg)
	}
	if o == 0 {
		err := errors.New("no connection opened")
		if e := lastErr.Load(); e != nil {
			err = *e
		}
		return nil, foreign, "", err
	}
	// Let the server finish its work (goroutines parking, children
	// forking), then sample.
	time.Sleep(b.cfg.idleSettle)
	b.settle(t)
	peak := treeMem(t.PIDs)
	alive := 0
	var pb [1]byte
	for _, c := range conns {
		if c == nil {
			continue
		}
		rc, err := c.SyscallConn()
		if err != nil {
			continue
		}
		rc.Control(func(fd uintptr) {
			r, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&pb[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			if e == syscall.EAGAIN || (e == 0 && r > 0) {
				alive++
			}
		})
	}
	held := b.s.heldCount()
	for i, c := range conns {
		if c != nil {
			c.Close()
			conns[i] = nil
		}
	}
	b.s.releaseHeld()
	// Wait (bounded) until the server has closed its side: its descriptors
	// are back near the baseline or have stopped falling (Go servers keep
	// pooled splice pipes, Dante keeps worker processes).
	dl := time.Now().Add(10 * time.Second)
	for prev, stable := -1, 0; time.Now().Before(dl); {
		fds := treeFDs(t.PIDs)
		if fds <= base.fds+8 {
			break
		}
		if fds == prev {
			if stable++; stable >= 3 {
				break
			}
		} else {
			stable = 0
		}
		prev = fds
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	after := treeMem(t.PIDs)
	of := float64(o)
	m := map[string]float64{
		"idle_open":                  of,
		"idle_alive_pct":             100 * float64(alive) / of,
		"idle_held_pct":              100 * float64(held) / of,
		"idle_kib_per_conn":          float64(peak.pssKiB-t.fresh.pssKiB) / of,
		"idle_marginal_kib_per_conn": float64(peak.pssKiB-base.pssKiB) / of,
		"idle_rss_kib_per_conn":      float64(peak.rssKiB-t.fresh.rssKiB) / of,
		"idle_fds_per_conn":          float64(peak.fds-base.fds) / of,
		"idle_peak_pss_mib":          float64(peak.pssKiB) / 1024,
		"idle_base_pss_mib":          float64(base.pssKiB) / 1024,
		"idle_fresh_pss_mib":         float64(t.fresh.pssKiB) / 1024,
		"idle_retained_kib_per_conn": float64(after.pssKiB-t.fresh.pssKiB) / of,
		"idle_procs":                 float64(peak.procs),
		"idle_open_cps":              of / openEl,
	}
	note := ""
	for i, s := range notes {
		if i > 0 {
			note += "; "
		}
		note += s
	}
	return m, foreign, note, nil
}
