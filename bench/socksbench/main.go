// Command socksbench measures SOCKS5 servers side by side on loopback:
// throughput, connection setup rate and latency, round-trip latency, idle
// memory per connection and UDP ASSOCIATE round trips, each against the
// direct path (no proxy) as the limit, and the latency of a CONNECT to a
// domain name with cold and warm caches (in a network namespace with its
// own DNS server, see dns.go), and an unmodified curl run through the
// gateway by socksify against proxy-aware curl, proxychains4 and direct
// (socksify.go, in the same namespace). Targets are interleaved within each
// rep and their order rotates from rep to rep; medians of the reps are
// reported. Bytes are counted where they arrive (the sink), server CPU and
// memory are read from /proc for the server's process tree.
//
//	socksbench -target name=NAME,addr=HOST:PORT,pid=PID[+PID...][,user=U,pass=P] ... \
//	    [-reps 3] [-scenarios all|idle,conn1,conn64,rtt,udp,bulk1,bulk8,dns] \
//	    [-idle-conns 5000] [-quick] [-json FILE] [-md FILE] \
//	    [-dns-netns NS -dns-target name=N,addr=HOST:PORT,pid=PID,resolver=R ...] \
//	    [-socksify-proxy name=socks6d,addr=HOST:PORT,pid=PID -socksify-bin PATH -proxychains-conf FILE]
//	socksbench -dns-server 127.0.0.1:53      # the dns scenario's DNS server alone
//	socksbench -report FILE.json [-md FILE]   # re-render a saved run
//	socksbench -free-ports N                  # print N free loopback ports
//	socksbench -wait HOST:PORT[,...]          # wait until they accept
//
// Every endpoint is on 127.0.0.1, in this process or (dns, socksify) in its child
// in the namespace; every loop is bounded in time; -max-time bounds the
// whole run.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	var targets, metas, dnsTargets multiFlag
	flag.Var(&targets, "target", "server under test: name=N,addr=HOST:PORT,pid=PID[+PID],user=U,pass=P (repeatable)")
	flag.Var(&dnsTargets, "dns-target", "server under test in the dns scenario, listening inside -dns-netns: as -target, plus resolver=own|system|libc (repeatable)")
	dnsNetns := flag.String("dns-netns", "", "network namespace of the dns and socksify scenarios (bench/run.sh makes it; see dns.go)")
	dnsChild := flag.String("dns-child", "", "internal: run one dns job (JSON) inside the namespace")
	sfyChild := flag.String("socksify-child", "", "internal: run one socksify job (JSON) inside the namespace")
	sfyProxy := flag.String("socksify-proxy", "", "socksify scenario: the socks6d (no auth) listening inside -dns-netns, as -target")
	sfyBin := flag.String("socksify-bin", "socksify", "socksify scenario: the socksify binary")
	sfyCurl := flag.String("curl", "curl", "socksify scenario: the curl binary")
	sfyPC := flag.String("proxychains", "proxychains4", "socksify scenario: the proxychains4 binary")
	sfyPCConf := flag.String("proxychains-conf", "", "socksify scenario: proxychains4 configuration (strict_chain, proxy_dns, socks5 to the -socksify-proxy)")
	sfyBulk := flag.Int64("socksify-bulk", 1<<30, "socksify scenario: bytes of the bulk download (quick: a quarter)")
	dnsServer := flag.String("dns-server", "", "serve DNS for bench.test. on this address (UDP and TCP) until SIGINT/SIGTERM, then print the query counts")
	dnsServerMax := flag.Duration("dns-server-max", 30*time.Minute, "lifetime bound for -dns-server")
	flag.Var(&metas, "meta", "KEY=VALUE printed in the header, e.g. package versions (repeatable)")
	reps := flag.Int("reps", 3, "repetitions; medians are reported")
	scen := flag.String("scenarios", "all", "comma-separated: "+strings.Join(allScenarios, ",")+" or all")
	idleConns := flag.Int("idle-conns", 5000, "idle connections per server")
	quick := flag.Bool("quick", false, "short durations (smoke test)")
	noDirect := flag.Bool("no-direct", false, "leave out the direct path")
	jsonOut := flag.String("json", "", "write raw results as JSON to this file")
	mdOut := flag.String("md", "", "write the markdown report to this file")
	report := flag.String("report", "", "re-render a saved JSON run and exit")
	maxTime := flag.Duration("max-time", 16*time.Minute, "stop measuring after this long (remaining ones are reported as skipped)")
	foreignMax := flag.Float64("foreign-max", 0.35, "repeat a measurement once if foreign load exceeded this many cores")
	freePorts := flag.Int("free-ports", 0, "print N free loopback TCP ports and exit")
	spin := flag.Bool("spin", true, "keep the CPUs awake with nice-19 busy loops during rtt and udp (see spin.go)")
	spinner := flag.Bool("spinner", false, "internal: be the spinner process")
	spinMax := flag.Duration("spin-max", 30*time.Second, "internal: the spinner's lifetime bound")
	wait := flag.String("wait", "", "wait until these comma-separated HOST:PORTs accept connections, then exit")
	waitTimeout := flag.Duration("wait-timeout", 15*time.Second, "bound for -wait")
	flag.Parse()

	switch {
	case *spinner:
		runSpinner(*spinMax)
		return
	case *dnsChild != "":
		runDNSChild(*dnsChild)
		return
	case *sfyChild != "":
		runSfyChild(*sfyChild)
		return
	case *dnsServer != "":
		runDNSServer(*dnsServer, *dnsServerMax)
		return
	case *freePorts > 0:
		printFreePorts(*freePorts)
		return
	case *wait != "":
		if err := waitListening(strings.Split(*wait, ","), *waitTimeout); err != nil {
			fmt.Fprintln(os.Stderr, "socksbench:", err)
			os.Exit(1)
		}
		return
	case *report != "":
		b, err := os.ReadFile(*report)
		check(err)
		var rf runFile
		check(json.Unmarshal(b, &rf))
		md := render(&rf)
		if *mdOut != "" {
			check(os.WriteFile(*mdOut, []byte(md), 0o644))
		}
		fmt.Print(md)
		return
	}

	cfg := config{
		reps: *reps, idleConns: *idleConns,
		bulkDur: 3 * time.Second, warmup: 300 * time.Millisecond,
		connDur: 3 * time.Second, rttDur: 2 * time.Second, udpDur: 2 * time.Second,
		idleOpenMax: 10 * time.Second, idleSettle: time.Second,
		hsTimeout: 5 * time.Second, foreignMax: *foreignMax, maxTime: *maxTime, quick: *quick,
		spin:     *spin,
		dnsNetns: *dnsNetns, dnsSeqN: 2000, dnsSeqDur: 5 * time.Second, dnsConc: 16, dnsConcDur: 2 * time.Second,
		sfyBulkBytes: *sfyBulk,
	}
	if *quick {
		cfg.bulkDur, cfg.warmup = time.Second, 200*time.Millisecond
		cfg.connDur, cfg.rttDur, cfg.udpDur = time.Second, time.Second, time.Second
		cfg.idleOpenMax, cfg.idleSettle = 5*time.Second, 500*time.Millisecond
		cfg.dnsSeqDur, cfg.dnsConcDur = time.Second, time.Second
		cfg.sfyBulkBytes /= 4
	}
	if *scen == "all" || *scen == "" {
		cfg.scenarios = allScenarios
	} else {
		want := map[string]bool{}
		for _, s := range strings.Split(*scen, ",") {
			s = strings.TrimSpace(s)
			ok := false
			for _, a := range allScenarios {
				ok = ok || a == s
			}
			if !ok {
				fatalf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ","))
			}
			want[s] = true
		}
		for _, a := range allScenarios {
			if want[a] {
				cfg.scenarios = append(cfg.scenarios, a)
			}
		}
	}
	if cfg.reps < 1 {
		cfg.reps = 1
	}

	// At most a tenth of the run goes to waiting out foreign load.
	b := &bench{cfg: cfg, start: time.Now(), progress: os.Stderr, waitLeft: cfg.maxTime / 10}
	if !*noDirect {
		b.targets = append(b.targets, &target{Name: "direct", Direct: true})
	}
	for _, spec := range targets {
		t, err := parseTarget(spec)
		check(err)
		b.targets = append(b.targets, t)
	}
	if len(b.targets) == 0 {
		fatalf("no targets")
	}
	hasDNS := false
	for _, sc := range cfg.scenarios {
		hasDNS = hasDNS || sc == "dns"
	}
	if hasDNS {
		if cfg.dnsNetns == "" {
			fatalf("scenario dns needs -dns-netns (and -dns-target for servers); bench/run.sh sets them up")
		}
		if !*noDirect {
			b.dnsTargets = append(b.dnsTargets, b.targets[0])
		}
		for _, spec := range dnsTargets {
			t, err := parseTarget(spec)
			check(err)
			b.dnsTargets = append(b.dnsTargets, t)
		}
		if len(b.dnsTargets) == 0 {
			fatalf("scenario dns has no targets")
		}
	}
	hasSfy := false
	for _, sc := range cfg.scenarios {
		hasSfy = hasSfy || sc == "socksify"
	}
	if hasSfy {
		if cfg.dnsNetns == "" || *sfyProxy == "" || *sfyPCConf == "" {
			fatalf("scenario socksify needs -dns-netns, -socksify-proxy and -proxychains-conf; bench/run.sh sets them up")
		}
		p, err := parseTarget(*sfyProxy)
		check(err)
		if p.auth() {
			fatalf("-socksify-proxy: the scenario uses a gateway without authentication")
		}
		b.sfyProxy = p
		for _, bin := range []struct {
			flag string
			v    *string
			dst  *string
		}{{"-socksify-bin", sfyBin, &b.cfg.sfyBin}, {"-curl", sfyCurl, &b.cfg.sfyCurl}, {"-proxychains", sfyPC, &b.cfg.sfyProxychains}} {
			path, err := exec.LookPath(*bin.v)
			if err != nil {
				fatalf("scenario socksify: %s %s: %v", bin.flag, *bin.v, err)
			}
			*bin.dst = path
		}
		b.cfg.sfyPCConf = *sfyPCConf
		for _, c := range sfyClients {
			t := &target{Name: c.name, Direct: true}
			if c.name != "direct" {
				cp := *p
				cp.Name, t = c.name, &cp
			}
			b.sfyTargets = append(b.sfyTargets, t)
		}
	}

	// The report has a row per name; the dns instances share the names of
	// the host targets and add rows only for names not there.
	rows := append([]*target(nil), b.targets...)
	for _, t := range b.dnsTargets {
		dup := false
		for _, r := range rows {
			dup = dup || r.Name == t.Name
		}
		if !dup {
			rows = append(rows, t)
		}
	}
	rf := &runFile{Scenarios: cfg.scenarios, Reps: cfg.reps, Targets: rows, DNSTargets: b.dnsTargets, DNSNetns: cfg.dnsNetns,
		SocksifyTargets: b.sfyTargets}
	rf.Command = redactedCommand()

	// Descriptors: the harness holds both ends of every idle connection.
	b.nofile = raiseNofile()
	const slack = 300
	b.idleCap = (b.nofile - slack) / 2
	if cfg.idleConns > b.idleCap {
		rf.Notes = append(rf.Notes, fmt.Sprintf("idle uses %d connections, not %d: RLIMIT_NOFILE of the harness is %d and it holds 2 fds per idle connection plus %d spare",
			b.idleCap, cfg.idleConns, b.nofile, slack))
	}
	s, err := startSinks()
	check(err)
	b.s = s
	b.softirq = softirqThreads()

	// Header: the machine and what else runs on it.
	m := &rf.Meta
	m.Date = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	m.Kernel = readTrim("/proc/sys/kernel/osrelease")
	m.GoVersion = runtime.Version()
	m.Cores = runtime.NumCPU()
	m.MemGiB = memTotalGiB()
	m.LoadAvgStart = loadavg()
	m.ForeignStart = b.foreignNow(time.Second)
	m.NofileSoft = b.nofile
	m.IdleConns = min(cfg.idleConns, b.idleCap)
	m.Quick = cfg.quick
	m.Durations = fmt.Sprintf("bulk %v (+%v warm-up), conn %v, rtt %v, udp %v, idle open ≤%v",
		cfg.bulkDur, cfg.warmup, cfg.connDur, cfg.rttDur, cfg.udpDur, cfg.idleOpenMax)
	if hasDNS {
		m.Durations += fmt.Sprintf(", dns ≤%d sequential connections or %v per phase, c%d %v",
			cfg.dnsSeqN, cfg.dnsSeqDur, cfg.dnsConc, cfg.dnsConcDur)
	}
	if hasSfy {
		m.Durations += fmt.Sprintf(", socksify: rate runs of N URLs, the same for every client (proxy-aware curl ≈%v, N ≥ %d), bulk %d MiB",
			cfg.connDur, sfyMinURLs, b.cfg.sfyBulkBytes>>20)
	}
	m.Spin = cfg.spin
	for _, kv := range metas {
		k, v, _ := strings.Cut(kv, "=")
		m.Info = append(m.Info, [2]string{k, v})
	}
	fmt.Fprintf(os.Stderr, "socksbench: %s, %d cores, kernel %s, %s; load average %s; foreign load %.2f cores\n",
		m.Date, m.Cores, m.Kernel, m.GoVersion, m.LoadAvgStart, m.ForeignStart)
	if m.ForeignStart > cfg.foreignMax {
		wait := 30 * time.Second
		if cfg.quick {
			wait = 10 * time.Second
		}
		fmt.Fprintf(os.Stderr, "socksbench: the machine is busy (%.2f cores of foreign load); waiting up to %v for quiet\n", m.ForeignStart, wait)
		f := b.waitQuiet(wait)
		rf.Notes = append(rf.Notes, fmt.Sprintf("foreign load at start %.2f cores; after waiting %.2f", m.ForeignStart, f))
	}

	// Fresh-start baselines, before any measurement touches the servers.
	for _, t := range b.targets {
		if t.Direct {
			continue
		}
		if !targetAlive(t) {
			fatalf("target %s: process %v is not running", t.Name, t.PIDs)
		}
		t.fresh = treeMem(t.PIDs)
	}
	for _, t := range b.dnsTargets {
		if !targetAlive(t) {
			fatalf("dns target %s: process %v is not running", t.Name, t.PIDs)
		}
	}
	if b.sfyProxy != nil && !targetAlive(b.sfyProxy) {
		fatalf("socksify gateway %s: process %v is not running", b.sfyProxy.Name, b.sfyProxy.PIDs)
	}
	// A connection through each target proves the setup before spending
	// minutes on it.
	for _, t := range b.targets {
		var cl client
		c, err := cl.open(t, s.closeAddr, cfg.hsTimeout)
		if err != nil {
			fatalf("target %s: CONNECT through it failed: %v", t.Name, err)
		}
		c.Close()
	}
	if hasDNS {
		note, err := b.dnsCheck()
		if err != nil {
			fatalf("dns scenario (namespace %s): %v", cfg.dnsNetns, err)
		}
		fmt.Fprintf(os.Stderr, "socksbench: dns (namespace %s): %s\n", cfg.dnsNetns, note)
		rf.Notes = append(rf.Notes, "dns check, "+note)
	}
	if hasSfy {
		note, err := b.sfyCheck()
		if err != nil {
			fatalf("socksify scenario (namespace %s): %v", cfg.dnsNetns, err)
		}
		fmt.Fprintf(os.Stderr, "socksbench: socksify (namespace %s): %s\n", cfg.dnsNetns, note)
		rf.Notes = append(rf.Notes, "socksify check and calibration, "+note)
	}

	orderNames := func(order []*target) string {
		names := make([]string, len(order))
		for i, t := range order {
			names[i] = t.Name
		}
		return strings.Join(names, " ")
	}
	for rep := 1; rep <= cfg.reps; rep++ {
		hostOrder := rotate(b.targets, rep-1)
		fmt.Fprintf(os.Stderr, "rep %d/%d, order: %s\n", rep, cfg.reps, orderNames(hostOrder))
		for _, sc := range cfg.scenarios {
			order := hostOrder
			if sc == "dns" {
				order = rotate(b.dnsTargets, rep-1)
				fmt.Fprintf(os.Stderr, "  dns in namespace %s, order: %s\n", cfg.dnsNetns, orderNames(order))
			}
			if sc == "socksify" {
				order = rotate(b.sfyTargets, rep-1)
				fmt.Fprintf(os.Stderr, "  socksify in namespace %s, order: %s\n", cfg.dnsNetns, orderNames(order))
			}
			for _, t := range order {
				r := b.measure(rep, sc, t)
				rf.Results = append(rf.Results, r)
				fmt.Fprintf(os.Stderr, "  %-8s %-16s %s\n", sc, t.Name, progressLine(r))
			}
		}
	}
	m.LoadAvgEnd = loadavg()
	m.WallSeconds = time.Since(b.start).Seconds()

	md := render(rf)
	if *jsonOut != "" {
		j, err := json.MarshalIndent(rf, "", "  ")
		check(err)
		check(os.WriteFile(*jsonOut, j, 0o644))
	}
	if *mdOut != "" {
		check(os.WriteFile(*mdOut, []byte(md), 0o644))
	}
	fmt.Print(md)
}

func rotate(ts []*target, k int) []*target {
	n := len(ts)
	out := make([]*target, n)
	for i := range ts {
		out[i] = ts[(i+k)%n]
	}
	return out
}

func progressLine(r *result) string {
	switch r.Status {
	case "ok":
		var parts []string
		for _, k := range progressKeys[r.Scenario] {
			if v, ok := r.Metrics[k]; ok {
				parts = append(parts, k+"="+fmt3(v))
			}
		}
		s := strings.Join(parts, " ")
		if r.Foreign > 0.1 {
			s += fmt.Sprintf(" (foreign %.2f cores)", r.Foreign)
		}
		if r.Note != "" {
			s += " [" + r.Note + "]"
		}
		return s
	case "n/a":
		return "n/a"
	}
	return r.Status + ": " + r.Err
}

var progressKeys = map[string][]string{
	"bulk1":  {"bulk1_gbps", "bulk1_cpu_ms_per_gb"},
	"bulk8":  {"bulk8_gbps", "bulk8_cpu_ms_per_gb"},
	"conn1":  {"conn1_cps", "conn1_hs_p50_us", "conn1_hs_p99_us", "conn1_cpu_us_per_conn"},
	"conn64": {"conn64_cps", "conn64_hs_p50_us", "conn64_hs_p99_us", "conn64_cpu_us_per_conn"},
	"rtt":    {"rtt_p50_us", "rtt_p99_us", "rtt_cpu_us_per_rt"},
	"udp":    {"udp_rtps", "udp_rtt_p50_us", "udp_cpu_us_per_rt", "udp_stream_rtps", "udp_stream_rtt_p50_us"},
	"idle":   {"idle_open", "idle_kib_per_conn", "idle_marginal_kib_per_conn", "idle_fds_per_conn", "idle_alive_pct"},
	"dns": {"dns_lit_p50_us", "dns_cold_p50_us", "dns_warm_p50_us", "dns_cold_cps", "dns_warm_cps", "dns_cold16_cps", "dns_warm16_cps",
		"dns_cold_qpc", "dns_warm_qpc"},
	"socksify": {"socksify_cps", "socksify_first_ms", "socksify_client_cpu_us_per_conn", "socksify_gbps"},
}

func parseTarget(spec string) (*target, error) {
	t := &target{}
	var pass string
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("target %q: expected key=value, got %q", spec, kv)
		}
		switch k {
		case "name":
			t.Name = v
		case "addr":
			t.Addr = v
		case "pid":
			for _, p := range strings.Split(v, "+") {
				n, err := strconv.Atoi(p)
				if err != nil {
					return nil, fmt.Errorf("target %q: bad pid %q", spec, p)
				}
				t.PIDs = append(t.PIDs, n)
			}
		case "user":
			t.User = v
		case "pass":
			pass = v
		case "resolver":
			t.Resolver = v
		default:
			return nil, fmt.Errorf("target %q: unknown key %q", spec, k)
		}
	}
	if t.Name == "" || t.Addr == "" || len(t.PIDs) == 0 {
		return nil, fmt.Errorf("target %q: name, addr and pid are required", spec)
	}
	if len(t.User) > 255 || len(pass) > 255 {
		return nil, fmt.Errorf("target %q: user and pass must be at most 255 bytes", spec)
	}
	t.pass = pass
	ap, err := parseAddrPort(t.Addr)
	if err != nil {
		return nil, fmt.Errorf("target %q: %v", spec, err)
	}
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("target %q: only loopback addresses are allowed", spec)
	}
	t.ap, t.dial = ap, ap.String()
	return t, nil
}

// redactedCommand is the command line with passwords elided.
func redactedCommand() string {
	args := make([]string, len(os.Args))
	for i, a := range os.Args {
		if i > 0 && os.Args[i-1] == "-target" || strings.HasPrefix(a, "-target=") {
			parts := strings.Split(a, ",")
			for j, p := range parts {
				if strings.HasPrefix(p, "pass=") {
					parts[j] = "pass=***"
				}
			}
			a = strings.Join(parts, ",")
		}
		args[i] = a
	}
	args[0] = "socksbench"
	return strings.Join(args, " ")
}

func loadavg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func printFreePorts(n int) {
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		check(err)
		lns = append(lns, ln)
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
}

func waitListening(addrs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not accept connections after %v: %w", a, timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "socksbench: "+format+"\n", args...)
	os.Exit(1)
}
