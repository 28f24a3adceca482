package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// The dns scenario: how long a CONNECT to a domain name (ATYP 3) takes,
// from starting the TCP connection to the proxy until the success reply;
// for the direct path, net.Dialer.DialContext("tcp", "name:port") with
// Go's resolver. It runs in a network namespace that bench/run.sh makes
// (-dns-netns) with /etc/netns/NS/resolv.conf saying "nameserver
// 127.0.0.1": `ip netns exec` bind-mounts that file over /etc/resolv.conf
// for the process it starts, so the libc resolvers of Dante and
// microsocks, Go's resolver and socks6d all ask the DNS server below and
// the host's resolv.conf is never touched.
//
// Each measurement is a child process, `ip netns exec NS socksbench
// -dns-child JOB`, which serves DNS on 127.0.0.1:53 (UDP and TCP) for
// the zone bench.test. — A 127.0.0.1 for every name, AAAA NODATA — and
// runs a closing sink on 127.0.0.1 in the namespace, so every name leads
// to the sink. It counts the queries of each phase:
//
//   - lit: the same CONNECT to 127.0.0.1 (an IP literal) as the baseline,
//     so that "phase − lit" is what the name costs; sequential, as cold;
//   - cold: a fresh name per connection (c<rep>-<i>.bench.test), so no
//     cache can help; sequential, at most dnsSeqN connections or dnsSeqDur;
//   - warm: one name (warm.bench.test) after one priming connection;
//     sequential, same bounds;
//   - cold16, warm16: the same with dnsConc concurrent workers for
//     dnsConcDur (rate).
//
// The child measures the server's CPU and the foreign load itself (it is
// the client and the DNS server) and prints one JSON line.

const (
	dnsZone     = "bench.test."
	dnsTTL      = 300
	dnsWarmName = "warm.bench.test"
)

// dnsServer answers for dnsZone: A 127.0.0.1 for every name, NODATA with
// the zone's SOA for AAAA and every other type, REFUSED outside the zone.
type dnsServer struct {
	udp, tcp       *dns.Server
	a, aaaa, other atomic.Int64
	soa            dns.RR
}

type dnsCounts struct{ a, aaaa, other int64 }

func (d *dnsServer) counts() dnsCounts {
	return dnsCounts{d.a.Load(), d.aaaa.Load(), d.other.Load()}
}

func startDNSServer(addr string) (*dnsServer, error) {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return nil, err
	}
	d := &dnsServer{soa: &dns.SOA{
		Hdr: dns.RR_Header{Name: dnsZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: dnsTTL},
		Ns:  "ns." + dnsZone, Mbox: "hostmaster." + dnsZone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: dnsTTL,
	}}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	d.udp = &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: notify}
	d.tcp = &dns.Server{Listener: ln, Handler: d, NotifyStartedFunc: notify}
	errc := make(chan error, 2)
	go func() { errc <- d.udp.ActivateAndServe() }()
	go func() { errc <- d.tcp.ActivateAndServe() }()
	timeout := time.After(5 * time.Second)
	for i := 0; i < 2; i++ {
		select {
		case <-started:
		case err := <-errc:
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("DNS server: %v", err)
		case <-timeout:
			pc.Close()
			ln.Close()
			return nil, errors.New("DNS server did not start")
		}
	}
	return d, nil
}

func (d *dnsServer) stop() {
	d.udp.Shutdown()
	d.tcp.Shutdown()
}

func (d *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if r.IsEdns0() != nil {
		m.SetEdns0(1232, false)
	}
	if r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 {
		d.other.Add(1)
		m.Rcode = dns.RcodeNotImplemented
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	if q.Qclass != dns.ClassINET || !dns.IsSubDomain(dnsZone, dns.CanonicalName(q.Name)) {
		d.other.Add(1)
		m.Rcode = dns.RcodeRefused
		w.WriteMsg(m)
		return
	}
	m.Authoritative = true
	switch q.Qtype {
	case dns.TypeA:
		d.a.Add(1)
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL},
			A:   net.IPv4(127, 0, 0, 1).To4(),
		}}
	case dns.TypeAAAA:
		d.aaaa.Add(1)
		m.Ns = []dns.RR{d.soa}
	default:
		d.other.Add(1)
		m.Ns = []dns.RR{d.soa}
	}
	w.WriteMsg(m)
}

// runDNSServer is "socksbench -dns-server ADDR": the DNS server on its
// own, for trying the setup by hand (e.g. inside `ip netns exec`). It
// prints the query counts on exit, at SIGINT/SIGTERM or after max.
func runDNSServer(addr string, max time.Duration) {
	d, err := startDNSServer(addr)
	check(err)
	fmt.Fprintf(os.Stderr, "socksbench: DNS server for %s on %s (UDP, TCP) for at most %v\n", dnsZone, addr, max)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(max):
	}
	d.stop()
	c := d.counts()
	fmt.Printf("queries: A %d, AAAA %d, other %d\n", c.a, c.aaaa, c.other)
}

// dnsJob is what the main process asks of a -dns-child process.
type dnsJob struct {
	Mode      string        `json:"mode"`    // "check": one CONNECT through each target; "measure": the phases, one target
	Targets   []string      `json:"targets"` // target specs, "direct" for the direct path
	Tag       string        `json:"tag"`     // makes the cold names of this measurement unique
	Listen    string        `json:"listen"`  // the DNS server's address
	SeqN      int           `json:"seq_n"`
	SeqDur    time.Duration `json:"seq_dur"`
	Conc      int           `json:"conc"`
	ConcDur   time.Duration `json:"conc_dur"`
	HSTimeout time.Duration `json:"hs_timeout"`
}

// dnsOut is the child's answer, one JSON line on stdout.
type dnsOut struct {
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Foreign float64            `json:"foreign"`
	Note    string             `json:"note,omitempty"`
	Err     string             `json:"err,omitempty"`
}

// bound is how long a child may take at most.
func (j *dnsJob) bound() time.Duration {
	return 3*(j.SeqDur+j.HSTimeout) + 2*(j.ConcDur+j.HSTimeout) + time.Second + time.Duration(len(j.Targets)+2)*j.HSTimeout + 20*time.Second
}

// runDNSChild is the body of "socksbench -dns-child JOB".
func runDNSChild(arg string) { runChild[dnsJob]("dns", arg) }

// childJob is the job of a measuring child process in the namespace.
type childJob interface {
	bound() time.Duration
	run() dnsOut
}

// runChild decodes a child's job, runs it with a time bound and writes
// the result as JSON on stdout; the child ends with its parent even if
// the parent is killed.
func runChild[J any, PJ interface {
	*J
	childJob
}](name, arg string) {
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	j := PJ(new(J))
	var out dnsOut
	if err := json.Unmarshal([]byte(arg), j); err != nil {
		out.Err = "bad job: " + err.Error()
	} else {
		time.AfterFunc(j.bound(), func() {
			json.NewEncoder(os.Stdout).Encode(dnsOut{Err: fmt.Sprintf("%s child: gave up after %v", name, j.bound())})
			os.Exit(1)
		})
		out = j.run()
	}
	check(json.NewEncoder(os.Stdout).Encode(out))
}

func (j *dnsJob) run() dnsOut {
	fail := func(format string, args ...any) dnsOut { return dnsOut{Err: fmt.Sprintf(format, args...)} }
	var ts []*target
	for _, spec := range j.Targets {
		if spec == "direct" {
			ts = append(ts, &target{Name: "direct", Direct: true})
			continue
		}
		t, err := parseTarget(spec)
		if err != nil {
			return fail("%v", err)
		}
		ts = append(ts, t)
	}
	srv, err := startDNSServer(j.Listen)
	if err != nil {
		return fail("DNS server on %s (in the namespace): %v", j.Listen, err)
	}
	defer srv.stop()
	ln, ap, err := rawListen()
	if err != nil {
		return fail("sink: %v", err)
	}
	// The sink stays open until the process exits (rawAcceptLoop panics
	// when its listener is closed under it).
	go rawAcceptLoop(ln, func(fd int) { syscall.Close(fd) })
	port := ap.Port()

	if j.Mode == "check" {
		// One CONNECT to a name nobody has seen through each target; the
		// note says how many queries each caused.
		var notes []string
		var cl client
		name := fmt.Sprintf("check-%d.bench.test", time.Now().UnixNano())
		for _, t := range ts {
			q0 := srv.counts()
			c, err := cl.openHost(t, name, port, j.HSTimeout)
			if err != nil {
				return fail("%s: CONNECT to %s: %v", t.Name, name, err)
			}
			c.Close()
			q := srv.counts()
			if q.a == q0.a {
				return fail("%s: CONNECT to %s succeeded but no A query reached the bench DNS server", t.Name, name)
			}
			notes = append(notes, fmt.Sprintf("%s %d A + %d AAAA", t.Name, q.a-q0.a, q.aaaa-q0.aaaa))
		}
		return dnsOut{Note: "first lookup of a name: " + strings.Join(notes, ", ")}
	}
	if len(ts) != 1 {
		return fail("measure needs one target, got %d", len(ts))
	}
	t := ts[0]
	b := &bench{cfg: config{foreignMax: 1}, softirq: softirqThreads()}
	pause := func() { time.Sleep(100 * time.Millisecond) } // let the server finish the last phase's closes

	// Warm-up, not measured: a server's first connections after being
	// idle pay for things like Dante forking its worker processes.
	var cl client
	for i, end := 0, time.Now().Add(time.Second); i < 100 && time.Now().Before(end); i++ {
		if c, err := cl.open(t, litEndpoint(port), j.HSTimeout); err == nil {
			c.Close()
		}
	}
	pause()

	w := b.begin(t)
	lit := j.seq(srv, t, port, nil)
	if lit.n == 0 {
		return fail("IP literal: no connection succeeded (%d errors): %v", lit.errs, lit.lastErr)
	}
	pause()
	cold := j.seq(srv, t, port, func(i int) string { return fmt.Sprintf("c%s-%d.bench.test", j.Tag, i) })
	if cold.n == 0 {
		return fail("cold: no connection succeeded (%d errors): %v", cold.errs, cold.lastErr)
	}
	pause()
	c, err := cl.openHost(t, dnsWarmName, port, j.HSTimeout)
	if err != nil {
		return fail("priming CONNECT to %s: %v", dnsWarmName, err)
	}
	c.Close()
	pause()
	warm := j.seq(srv, t, port, func(int) string { return dnsWarmName })
	pause()
	cold16 := j.conc(srv, t, port, func(i int) string { return fmt.Sprintf("p%s-%d.bench.test", j.Tag, i) })
	pause()
	warm16 := j.conc(srv, t, port, func(int) string { return dnsWarmName })
	_, _, foreign := b.end(t, w)

	m := map[string]float64{}
	var notes []string
	var conns, errs int64
	for _, p := range []struct {
		name string
		ph   *dnsPhase
	}{{"lit", &lit}, {"cold", &cold}, {"warm", &warm}, {"cold16", &cold16}, {"warm16", &warm16}} {
		p.ph.put(m, "dns_"+p.name, t.Direct)
		conns += p.ph.n
		errs += p.ph.errs
		if p.ph.errs > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d errors, last: %v", p.name, p.ph.errs, p.ph.lastErr))
		}
	}
	m["dns_err_pct"] = 100 * float64(errs) / float64(conns+errs)
	return dnsOut{Metrics: m, Foreign: foreign, Note: strings.Join(notes, "; ")}
}

// dnsPhase is what one phase measured.
type dnsPhase struct {
	n, errs int64
	h       hist
	el, cpu float64
	q       dnsCounts
	lastErr error
	workers int
}

// seq opens connections one at a time to name(i), or to 127.0.0.1 if
// name is nil.
func (j *dnsJob) seq(srv *dnsServer, t *target, port uint16, name func(int) string) dnsPhase {
	p := dnsPhase{workers: 1}
	var cl client
	lit := litEndpoint(port)
	q0, cpu0 := srv.counts(), serverCPU(t)
	start := time.Now()
	deadline := start.Add(j.SeqDur)
	for i := 0; i < j.SeqN; i++ {
		host := ""
		if name != nil {
			host = name(i)
		}
		t0 := time.Now()
		if !t0.Before(deadline) {
			break
		}
		var c *net.TCPConn
		var err error
		if name == nil {
			c, err = cl.open(t, lit, j.HSTimeout)
		} else {
			c, err = cl.openHost(t, host, port, j.HSTimeout)
		}
		if err != nil {
			p.errs++
			p.lastErr = err
			time.Sleep(time.Millisecond)
			continue
		}
		p.h.add(time.Since(t0))
		p.n++
		c.Close()
	}
	p.finish(srv, t, start, q0, cpu0)
	return p
}

func (j *dnsJob) conc(srv *dnsServer, t *target, port uint16, name func(int) string) dnsPhase {
	p := dnsPhase{workers: j.Conc}
	hs := make([]hist, j.Conc)
	counts := make([]int64, j.Conc)
	errs := make([]int64, j.Conc)
	lastErr := make([]error, j.Conc)
	var next atomic.Int64
	var wg sync.WaitGroup
	q0, cpu0 := srv.counts(), serverCPU(t)
	start := time.Now()
	deadline := start.Add(j.ConcDur)
	for w := 0; w < j.Conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var cl client
			for {
				i := next.Add(1) - 1
				if i >= maxOps {
					return
				}
				host := name(int(i))
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				c, err := cl.openHost(t, host, port, j.HSTimeout)
				if err != nil {
					errs[w]++
					lastErr[w] = err
					time.Sleep(time.Millisecond)
					continue
				}
				hs[w].add(time.Since(t0))
				counts[w]++
				c.Close()
			}
		}(w)
	}
	wg.Wait()
	for w := range hs {
		p.h.merge(&hs[w])
		p.n += counts[w]
		p.errs += errs[w]
		if lastErr[w] != nil {
			p.lastErr = lastErr[w]
		}
	}
	p.finish(srv, t, start, q0, cpu0)
	return p
}

// litEndpoint is the sink as an IP literal.
func litEndpoint(port uint16) endpoint {
	return newEndpoint(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port))
}

func serverCPU(t *target) float64 {
	if t.Direct {
		return 0
	}
	return treeCPU(t.PIDs)
}

func (p *dnsPhase) finish(srv *dnsServer, t *target, start time.Time, q0 dnsCounts, cpu0 float64) {
	p.el = time.Since(start).Seconds()
	p.cpu = serverCPU(t) - cpu0
	q := srv.counts()
	p.q = dnsCounts{q.a - q0.a, q.aaaa - q0.aaaa, q.other - q0.other}
}

// put stores the phase's figures under prefix (e.g. dns_cold).
func (p *dnsPhase) put(m map[string]float64, prefix string, direct bool) {
	m[prefix+"_conns"] = float64(p.n)
	m[prefix+"_errors"] = float64(p.errs)
	m[prefix+"_seconds"] = p.el
	m[prefix+"_concurrent"] = float64(p.workers)
	m[prefix+"_queries_a"] = float64(p.q.a)
	m[prefix+"_queries_aaaa"] = float64(p.q.aaaa)
	m[prefix+"_queries_other"] = float64(p.q.other)
	if p.n+p.errs > 0 {
		m[prefix+"_err_pct"] = 100 * float64(p.errs) / float64(p.n+p.errs)
	}
	if p.n == 0 {
		return
	}
	n := float64(p.n)
	m[prefix+"_cps"] = n / p.el
	m[prefix+"_p50_us"] = p.h.quantileUS(0.50)
	m[prefix+"_p99_us"] = p.h.quantileUS(0.99)
	m[prefix+"_qpc"] = float64(p.q.a+p.q.aaaa+p.q.other) / n
	m[prefix+"_a_per_conn"] = float64(p.q.a) / n
	m[prefix+"_aaaa_per_conn"] = float64(p.q.aaaa) / n
	if !direct {
		m[prefix+"_cpu_us_per_conn"] = p.cpu * 1e6 / n
	}
}

// --- the main process's side ----------------------------------------------

func (b *bench) dnsJob(mode, tag string, ts ...*target) dnsJob {
	j := dnsJob{Mode: mode, Tag: tag, Listen: "127.0.0.1:53",
		SeqN: b.cfg.dnsSeqN, SeqDur: b.cfg.dnsSeqDur, Conc: b.cfg.dnsConc, ConcDur: b.cfg.dnsConcDur,
		HSTimeout: b.cfg.hsTimeout}
	for _, t := range ts {
		j.Targets = append(j.Targets, t.spec())
	}
	return j
}

// runDNSJob runs j in a child process inside the namespace and returns
// its answer.
func (b *bench) runDNSJob(j dnsJob) (*dnsOut, error) {
	arg, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	return b.runNetnsChild("-dns-child", arg, j.bound())
}

// dnsCheck proves the dns setup before measuring: one CONNECT to a new
// name through every dns target, each causing queries at the DNS server.
func (b *bench) dnsCheck() (string, error) {
	out, err := b.runDNSJob(b.dnsJob("check", "", b.dnsTargets...))
	if err != nil {
		return "", err
	}
	if out.Err != "" {
		return "", errors.New(out.Err)
	}
	return out.Note, nil
}

// dnsMeasure is the dns scenario for one target.
func (b *bench) dnsMeasure(t *target) (map[string]float64, float64, string, error) {
	if b.cfg.dnsNetns == "" {
		return nil, 0, "", errors.New("no -dns-netns given (bench/run.sh makes the namespace)")
	}
	tag := strconv.Itoa(b.rep)
	if b.attempt > 1 {
		tag += "r" + strconv.Itoa(b.attempt) // a repeat must not find the first attempt's names cached
	}
	out, err := b.runDNSJob(b.dnsJob("measure", tag, t))
	if err != nil {
		return nil, 0, "", err
	}
	var notes []string
	if t.Resolver == "system" {
		notes = append(notes, "system resolver (the server did not accept a [resolver] section)")
	}
	if out.Note != "" {
		notes = append(notes, out.Note)
	}
	note := strings.Join(notes, "; ")
	if out.Err != "" {
		return nil, out.Foreign, note, errors.New(out.Err)
	}
	return out.Metrics, out.Foreign, note, nil
}

// resolverText describes how t resolves names in the dns scenario.
func resolverText(t *target) string {
	if t.Direct {
		return "Go resolver (net.Dialer, no cache)"
	}
	switch t.Resolver {
	case "own":
		return "own ([resolver] 127.0.0.1:53, cache)"
	case "system":
		return "system ([resolver] refused)"
	case "libc":
		return "libc"
	case "":
		return "?"
	}
	return t.Resolver
}
