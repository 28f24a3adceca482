package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

type meta struct {
	Date         string      `json:"date"`
	Kernel       string      `json:"kernel"`
	GoVersion    string      `json:"go_version"`
	Cores        int         `json:"cores"`
	MemGiB       float64     `json:"mem_gib"`
	LoadAvgStart string      `json:"loadavg_start"`
	LoadAvgEnd   string      `json:"loadavg_end"`
	ForeignStart float64     `json:"foreign_cores_start"`
	NofileSoft   int         `json:"nofile"`
	IdleConns    int         `json:"idle_conns"`
	Quick        bool        `json:"quick"`
	Spin         bool        `json:"spin"`
	Durations    string      `json:"durations"`
	Info         [][2]string `json:"info"`
	WallSeconds  float64     `json:"wall_seconds"`
}

// runFile is everything a run produced; it is the JSON output and the
// input of render.
type runFile struct {
	Meta      meta      `json:"meta"`
	Command   string    `json:"command"`
	Scenarios []string  `json:"scenarios"`
	Reps      int       `json:"reps"`
	Targets   []*target `json:"targets"`
	// DNSTargets are the dns scenario's targets (the direct path and
	// server instances in namespace DNSNetns); their results are filed
	// under the same names as the host targets.
	DNSTargets []*target `json:"dns_targets,omitempty"`
	DNSNetns   string    `json:"dns_netns,omitempty"`
	// SocksifyTargets are the socksify scenario's clients (in the same
	// namespace); their results are filed under these names.
	SocksifyTargets []*target `json:"socksify_targets,omitempty"`
	Results         []*result `json:"results"`
	Notes           []string  `json:"notes,omitempty"`
}

type metricDef struct {
	key, unit string
	higher    bool // higher is better
}

var metricDefs = map[string][]metricDef{
	"bulk1": {{"bulk1_gbps", "Gbit/s", true}, {"bulk1_cpu_ms_per_gb", "CPU-ms/GB", false}},
	"bulk8": {{"bulk8_gbps", "Gbit/s", true}, {"bulk8_cpu_ms_per_gb", "CPU-ms/GB", false}},
	"conn1": {{"conn1_cps", "conn/s", true}, {"conn1_hs_p50_us", "µs", false}, {"conn1_hs_p99_us", "µs", false},
		{"conn1_cpu_us_per_conn", "CPU-µs/conn", false}, {"conn1_err_pct", "%", false}},
	"conn64": {{"conn64_cps", "conn/s", true}, {"conn64_hs_p50_us", "µs", false}, {"conn64_hs_p99_us", "µs", false},
		{"conn64_cpu_us_per_conn", "CPU-µs/conn", false}, {"conn64_err_pct", "%", false}},
	"rtt": {{"rtt_p50_us", "µs", false}, {"rtt_p99_us", "µs", false}, {"rtt_rps", "rt/s", true},
		{"rtt_cpu_us_per_rt", "CPU-µs/rt", false}},
	"udp": {{"udp_rtps", "rt/s", true}, {"udp_rtt_p50_us", "µs", false}, {"udp_rtt_p99_us", "µs", false},
		{"udp_loss_pct", "%", false}, {"udp_cpu_us_per_rt", "CPU-µs/rt", false},
		// UDP in the stream (socks6d only: see udpStream).
		{"udp_stream_rtps", "rt/s", true}, {"udp_stream_rtt_p50_us", "µs", false}, {"udp_stream_rtt_p99_us", "µs", false},
		{"udp_stream_loss_pct", "%", false}, {"udp_stream_cpu_us_per_rt", "CPU-µs/rt", false}},
	"idle": {{"idle_open", "conns", true}, {"idle_alive_pct", "%", true}, {"idle_held_pct", "%", true},
		{"idle_kib_per_conn", "KiB/conn", false}, {"idle_marginal_kib_per_conn", "KiB/conn", false},
		{"idle_rss_kib_per_conn", "KiB/conn", false}, {"idle_fds_per_conn", "fds/conn", false},
		{"idle_peak_pss_mib", "MiB", false}, {"idle_base_pss_mib", "MiB", false}, {"idle_fresh_pss_mib", "MiB", false},
		{"idle_retained_kib_per_conn", "KiB/conn", false}, {"idle_procs", "procs", false}, {"idle_open_cps", "conn/s", true}},
	"dns": {{"dns_lit_p50_us", "µs", false}, {"dns_cold_cps", "conn/s", true}, {"dns_cold_p50_us", "µs", false}, {"dns_cold_p99_us", "µs", false},
		{"dns_warm_cps", "conn/s", true}, {"dns_warm_p50_us", "µs", false}, {"dns_warm_p99_us", "µs", false},
		{"dns_cold16_cps", "conn/s", true}, {"dns_warm16_cps", "conn/s", true},
		{"dns_cold_cpu_us_per_conn", "CPU-µs/conn", false}, {"dns_warm_cpu_us_per_conn", "CPU-µs/conn", false},
		{"dns_cold_qpc", "queries/conn", false}, {"dns_warm_qpc", "queries/conn", false}, {"dns_err_pct", "%", false}},
	"socksify": {{"socksify_cps", "conn/s", true}, {"socksify_urls", "URLs", true}, {"socksify_first_ms", "ms", false},
		{"socksify_wall_s", "s", false}, {"socksify_cps_wall", "conn/s", true},
		{"socksify_client_cpu_us_per_conn", "CPU-µs/conn", false}, {"socksify_server_cpu_us_per_conn", "CPU-µs/conn", false},
		{"socksify_tcp_per_url", "conns/URL", false}, {"socksify_dns_qpc", "queries/URL", false}, {"socksify_errors", "URLs", false},
		{"socksify_gbps", "Gbit/s", true}, {"socksify_bulk_s", "s", false},
		{"socksify_bulk_client_cpu_ms_per_gb", "CPU-ms/GB", false}, {"socksify_bulk_server_cpu_ms_per_gb", "CPU-ms/GB", false}},
}

func scenarioOf(key string) string {
	s, _, _ := strings.Cut(key, "_")
	return s
}

func higherBetter(key string) bool {
	for _, d := range metricDefs[scenarioOf(key)] {
		if d.key == key {
			return d.higher
		}
	}
	return false
}

// column of the summary tables: one or more metrics shown as a/b.
type column struct {
	title string
	keys  []string
}

var summaryCols = []column{
	{"bulk1 Gb/s", []string{"bulk1_gbps"}},
	{"bulk8 Gb/s", []string{"bulk8_gbps"}},
	{"conn/s c1", []string{"conn1_cps"}},
	{"conn/s c64", []string{"conn64_cps"}},
	{"hs µs c1 p50/p99", []string{"conn1_hs_p50_us", "conn1_hs_p99_us"}},
	{"hs µs c64 p50/p99", []string{"conn64_hs_p50_us", "conn64_hs_p99_us"}},
	{"rtt µs p50/p99", []string{"rtt_p50_us", "rtt_p99_us"}},
	{"idle KiB/conn", []string{"idle_kib_per_conn"}},
	{"idle fds/conn", []string{"idle_fds_per_conn"}},
	{"udp rt/s", []string{"udp_rtps"}},
	{"udp in stream rt/s", []string{"udp_stream_rtps"}},
	{"dns cold µs p50/p99", []string{"dns_cold_p50_us", "dns_cold_p99_us"}},
	{"dns warm µs p50/p99", []string{"dns_warm_p50_us", "dns_warm_p99_us"}},
	{"dns hs/s cold/warm", []string{"dns_cold_cps", "dns_warm_cps"}},
	{"dns hs/s c16 cold/warm", []string{"dns_cold16_cps", "dns_warm16_cps"}},
}

var cpuCols = []column{
	{"bulk1 CPU-ms/GB", []string{"bulk1_cpu_ms_per_gb"}},
	{"bulk8 CPU-ms/GB", []string{"bulk8_cpu_ms_per_gb"}},
	{"conn c1 CPU-µs/conn", []string{"conn1_cpu_us_per_conn"}},
	{"conn c64 CPU-µs/conn", []string{"conn64_cpu_us_per_conn"}},
	{"rtt CPU-µs/rt", []string{"rtt_cpu_us_per_rt"}},
	{"udp CPU-µs/rt", []string{"udp_cpu_us_per_rt"}},
	{"udp in stream CPU-µs/rt", []string{"udp_stream_cpu_us_per_rt"}},
	{"dns cold CPU-µs/conn", []string{"dns_cold_cpu_us_per_conn"}},
	{"dns warm CPU-µs/conn", []string{"dns_warm_cpu_us_per_conn"}},
}

// stat is the aggregate of one metric of one target over the reps.
type stat struct {
	med, lo, hi float64
	n, reps     int
	status      string // "ok" when n > 0, else the status of the failed reps
}

func (rf *runFile) stat(targetName, key string) stat {
	sc := scenarioOf(key)
	var vals []float64
	st := stat{}
	for _, r := range rf.Results {
		if r.Target != targetName || r.Scenario != sc {
			continue
		}
		st.reps++
		if r.Status == "ok" {
			if v, ok := r.Metrics[key]; ok {
				vals = append(vals, v)
			}
		} else if st.status == "" {
			st.status = r.Status
		}
	}
	if len(vals) == 0 {
		if st.status == "" {
			st.status = "-"
		}
		return st
	}
	sort.Float64s(vals)
	st.n, st.status = len(vals), "ok"
	st.lo, st.hi = vals[0], vals[len(vals)-1]
	if len(vals)%2 == 1 {
		st.med = vals[len(vals)/2]
	} else {
		st.med = (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
	}
	return st
}

func (s stat) cell() string {
	switch s.status {
	case "ok":
		return fmt3(s.med)
	case "error":
		return "err"
	}
	return s.status
}

// fmt3 prints about three significant digits.
func fmt3(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

func (rf *runFile) hasScenario(sc string) bool {
	for _, s := range rf.Scenarios {
		if s == sc {
			return true
		}
	}
	return false
}

func (rf *runFile) colsFor(cols []column) []column {
	var out []column
	for _, c := range cols {
		if rf.hasScenario(scenarioOf(c.keys[0])) {
			out = append(out, c)
		}
	}
	return out
}

func (rf *runFile) target(name string) *target {
	for _, t := range rf.Targets {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func tableHeader(sb *strings.Builder, first string, cols []column) {
	sb.WriteString("| " + first + " |")
	for _, c := range cols {
		sb.WriteString(" " + c.title + " |")
	}
	sb.WriteString("\n| --- |")
	for range cols {
		sb.WriteString(" ---: |")
	}
	sb.WriteString("\n")
}

func render(rf *runFile) string {
	var sb strings.Builder
	m := rf.Meta
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }

	w("# socksbench: SOCKS5 servers side by side on loopback\n\n")
	w("Measured: %s, %d cores, %.0f GiB, kernel %s, %s. Load average at start %s (foreign CPU before start %.2f cores), at end %s. Wall time %.0f s.\n\n",
		m.Date, m.Cores, m.MemGiB, m.Kernel, m.GoVersion, m.LoadAvgStart, m.ForeignStart, m.LoadAvgEnd, m.WallSeconds)
	if len(m.Info) > 0 {
		w("Servers and versions:\n\n")
		for _, kv := range m.Info {
			w("- %s: %s\n", kv[0], kv[1])
		}
		w("\n")
	}
	quick := ""
	if m.Quick {
		quick = " **Quick run: short durations, for smoke-testing only.**"
	}
	w("Method: %d rep(s); in each rep every scenario runs against every target, targets in rotated order; medians over reps. Durations: %s. Idle: %d connections per server. Bytes are counted at the sink; server CPU (utime+stime) and PSS are read from /proc over the server's process tree.%s\n\n",
		rf.Reps, m.Durations, m.IdleConns, quick)
	if m.Spin {
		w("rtt and udp ran with nice-19 busy loops keeping every CPU awake, so their latencies measure the servers rather than vCPU wake-ups (socksbench -spin=false to turn off). conn1 runs without them (they would delay servers that start a thread per connection by a scheduler tick), so it still depends on how quiet the machine is.\n\n")
	} else {
		w("rtt and udp ran without CPU spinners: on a VM their latencies are dominated by vCPU wake-ups when the machine is quiet and flip with foreign load.\n\n")
	}
	w("Command: `%s`\n\n", rf.Command)
	if fs := rf.foreignLoads(); len(fs) > 0 {
		w("Foreign load (CPU used by other processes while measuring, in cores): median %.2f, max %.2f over %d measurements. Client, sinks and servers share the machine, so compare ratios and servers within this run.\n\n",
			median(fs), fs[len(fs)-1], len(fs))
	}

	sum := rf.colsFor(summaryCols)
	if len(sum) > 0 {
		w("## Summary: median of %d rep(s)\n\n", rf.Reps)
		tableHeader(&sb, "target", sum)
		for _, t := range rf.Targets {
			w("| %s |", t.Name)
			for _, c := range sum {
				var parts []string
				for _, k := range c.keys {
					parts = append(parts, rf.stat(t.Name, k).cell())
				}
				w(" %s |", collapse(parts))
			}
			w("\n")
		}
		w("\nRates (Gb/s, conn/s, rt/s): higher is better. Latencies (µs), idle KiB and fds per connection: lower is better. `unsup` = the server declined (UDP ASSOCIATE answered with REP 7 or the connection closed); `n/a` = not applicable; `err` = failed in every rep (see the notes at the end).\n\n")
		if rf.hasScenario("udp") {
			w("udp in stream: the same echo pings as udp, through UDP inside the TCP connection (the socks6 extensions' UDP command and DATAGRAM frames, by the project's client library); only socks6d offers it (`-` for the others). Its ratio to direct is udp in stream rt/s over direct's udp rt/s: %s.\n\n", rf.streamVsDirect())
		}
		if rf.hasScenario("dns") {
			w("dns columns: CONNECT to a domain name, measured on separate instances in a network namespace (see the dns section below).")
			for _, t := range rf.DNSTargets {
				if t.Resolver == "system" {
					w(" **%s (system resolver)**: it refused the [resolver] section, so its dns figures are with the system resolver.", t.Name)
				}
			}
			w("\n\n")
		}
	}

	cpu := rf.colsFor(cpuCols)
	if len(cpu) > 0 {
		w("## Server CPU per unit (median; lower is better)\n\n")
		tableHeader(&sb, "target", cpu)
		for _, t := range rf.Targets {
			if t.Direct {
				continue
			}
			w("| %s |", t.Name)
			for _, c := range cpu {
				w(" %s |", rf.stat(t.Name, c.keys[0]).cell())
			}
			w("\n")
		}
		w("\n")
	}

	if rf.target("direct") != nil && len(sum) > 0 {
		w("## Ratio to direct (median / direct median)\n\nFor rates >1 is better; for latencies >1 is worse.\n\n")
		tableHeader(&sb, "target", sum)
		for _, t := range rf.Targets {
			w("| %s |", t.Name)
			for _, c := range sum {
				var parts []string
				for _, k := range c.keys {
					s := rf.stat(t.Name, k)
					d := rf.stat("direct", k)
					switch {
					case s.status != "ok":
						parts = append(parts, s.cell())
					case d.status != "ok" || d.med == 0:
						parts = append(parts, "n/a")
					default:
						parts = append(parts, fmt.Sprintf("%.2f", s.med/d.med))
					}
				}
				w(" %s |", collapse(parts))
			}
			w("\n")
		}
		w("\n")
	}

	rf.renderVsPeers(&sb)
	rf.renderGoals(&sb)
	rf.renderDNS(&sb)
	rf.renderSocksify(&sb)

	w("## Detail: median [min–max] over reps; (k/n) = only k of n reps succeeded\n\n")
	for _, sc := range rf.Scenarios {
		defs := metricDefs[sc]
		w("### %s\n\n", sc)
		w("| target |")
		for _, d := range defs {
			w(" %s (%s) |", d.key, d.unit)
		}
		w("\n| --- |")
		for range defs {
			w(" ---: |")
		}
		w("\n")
		for _, t := range rf.rowsFor(sc) {
			w("| %s |", t.Name)
			for _, d := range defs {
				s := rf.stat(t.Name, d.key)
				if s.status != "ok" {
					w(" %s |", s.cell())
					continue
				}
				cell := fmt3(s.med)
				if s.n > 1 {
					cell += " [" + fmt3(s.lo) + "–" + fmt3(s.hi) + "]"
				}
				if s.n < s.reps {
					cell += fmt.Sprintf(" (%d/%d)", s.n, s.reps)
				}
				w(" %s |", cell)
			}
			w("\n")
		}
		w("\n")
	}

	w("## Failures, unsupported scenarios and notes\n\n")
	any := false
	for _, n := range rf.Notes {
		w("- %s\n", n)
		any = true
	}
	seen := map[string]bool{}
	for _, r := range rf.Results {
		var line string
		switch {
		case r.Status == "unsup" || r.Status == "error" || r.Status == "skipped":
			line = fmt.Sprintf("%s %s: %s: %s", r.Target, r.Scenario, r.Status, r.Err)
		case r.Note != "":
			line = fmt.Sprintf("%s %s: %s", r.Target, r.Scenario, r.Note)
		default:
			continue
		}
		key := r.Target + r.Scenario + r.Status + r.Err
		if r.Status == "ok" {
			key = line
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		w("- rep %d: %s\n", r.Rep, line)
		any = true
	}
	var disturbed []string
	measured, repeated := 0, 0
	for _, r := range rf.Results {
		if r.Status != "ok" {
			continue
		}
		measured++
		if r.Attempts > 1 {
			repeated++
		}
		if r.Foreign > foreignNoted {
			disturbed = append(disturbed, fmt.Sprintf("%s/%s rep %d (%.2f)", r.Target, r.Scenario, r.Rep, r.Foreign))
		}
	}
	if len(disturbed) > 0 || repeated > 0 {
		w("- foreign load: %d of %d measurements were repeated because of it; %d kept more than %.2f cores of it", repeated, measured, len(disturbed), foreignNoted)
		if len(disturbed) > 0 && len(disturbed) <= 12 {
			w(": %s", strings.Join(disturbed, ", "))
		} else if len(disturbed) > 0 {
			w(" (each result's foreign_cores is in the JSON)")
		}
		w("\n")
		any = true
	}
	if !any {
		w("- none\n")
	}
	return sb.String()
}

func collapse(parts []string) string {
	same := true
	for _, p := range parts {
		same = same && p == parts[0]
	}
	if same && len(parts) > 1 && (parts[0] == "unsup" || parts[0] == "n/a" || parts[0] == "err" || parts[0] == "-") {
		return parts[0]
	}
	return strings.Join(parts, "/")
}

// Peers of the gateway, per authentication mode.
var peerNames = []string{"dante", "microsocks", "things-go"}

var vsPeerKeys = []string{
	"bulk1_gbps", "bulk8_gbps", "conn1_cps", "conn64_cps",
	"conn1_hs_p50_us", "conn1_hs_p99_us", "conn64_hs_p50_us", "conn64_hs_p99_us",
	"rtt_p50_us", "rtt_p99_us", "idle_kib_per_conn", "idle_fds_per_conn", "udp_rtps",
	"bulk1_cpu_ms_per_gb", "bulk8_cpu_ms_per_gb", "conn1_cpu_us_per_conn", "conn64_cpu_us_per_conn",
	"rtt_cpu_us_per_rt", "udp_cpu_us_per_rt",
	"dns_cold_cps", "dns_warm_cps", "dns_cold16_cps", "dns_warm16_cps",
	"dns_cold_p50_us", "dns_cold_p99_us", "dns_warm_p50_us", "dns_warm_p99_us",
	"dns_cold_cpu_us_per_conn", "dns_warm_cpu_us_per_conn",
}

// vsBest compares ours with the best of the peers on key: the ratio
// ours/best, and a verdict.
func (rf *runFile) vsBest(ours string, peers []string, key string) (line string, worse bool, ok bool) {
	o := rf.stat(ours, key)
	if o.status != "ok" && o.status != "unsup" {
		return "", false, false
	}
	hb := higherBetter(key)
	best, bestName := math.NaN(), ""
	for _, p := range peers {
		s := rf.stat(p, key)
		if s.status != "ok" {
			continue
		}
		if math.IsNaN(best) || (hb && s.med > best) || (!hb && s.med < best) {
			best, bestName = s.med, p
		}
	}
	if bestName == "" {
		if o.status == "ok" {
			return fmt.Sprintf("%s %s, no peer supports it", ours, fmt3(o.med)), false, true
		}
		return "", false, false
	}
	if o.status != "ok" {
		return fmt.Sprintf("%s %s vs best peer %s %s — WORSE", ours, o.status, bestName, fmt3(best)), true, true
	}
	ratio := o.med / best
	dir := "higher is better"
	if !hb {
		dir = "lower is better"
	}
	verdict := "ok"
	switch {
	case hb && ratio < 0.95, !hb && ratio > 1.05:
		verdict, worse = "WORSE", true
	case hb && ratio < 1, !hb && ratio > 1:
		verdict = "≈ (within 5%)"
	}
	return fmt.Sprintf("%s %s vs best peer %s %s → **%.2f×** (%s): %s", ours, fmt3(o.med), bestName, fmt3(best), ratio, dir, verdict), worse, true
}

func (rf *runFile) renderVsPeers(sb *strings.Builder) {
	for _, mode := range []string{"", "-auth"} {
		ours := "socks6d" + mode
		if rf.target(ours) == nil {
			continue
		}
		var peers []string
		for _, p := range peerNames {
			if rf.target(p+mode) != nil {
				peers = append(peers, p+mode)
			}
		}
		if len(peers) == 0 {
			continue
		}
		fmt.Fprintf(sb, "## %s vs best peer (best of %s)\n\n", ours, strings.Join(peers, ", "))
		for _, k := range vsPeerKeys {
			if !rf.hasScenario(scenarioOf(k)) {
				continue
			}
			line, _, ok := rf.vsBest(ours, peers, k)
			if ok {
				if scenarioOf(k) == "dns" && rf.dnsResolver(ours) == "system" {
					line += " (" + ours + " with the system resolver)"
				}
				fmt.Fprintf(sb, "- `%s`: %s\n", k, line)
			}
		}
		sb.WriteString("\n")
	}
}

// renderGoals checks the gateway's performance targets.
func (rf *runFile) renderGoals(sb *strings.Builder) {
	if rf.target("socks6d") == nil {
		return
	}
	var lines []string
	pass := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	if rf.hasScenario("bulk1") && rf.target("direct") != nil {
		d := rf.stat("direct", "bulk1_gbps")
		for _, n := range []string{"socks6d", "socks6d-auth"} {
			s := rf.stat(n, "bulk1_gbps")
			if s.status == "ok" && d.status == "ok" {
				r := s.med / d.med
				lines = append(lines, fmt.Sprintf("%s: %s single-stream ≥ 0.9× direct: %.2f× (%s of %s Gb/s)", pass(r >= 0.9), n, r, fmt3(s.med), fmt3(d.med)))
			}
		}
	}
	for _, k := range []string{"conn1_cps", "conn64_cps"} {
		if !rf.hasScenario(scenarioOf(k)) {
			continue
		}
		a, n := rf.stat("socks6d-auth", k), rf.stat("socks6d", k)
		if a.status == "ok" && n.status == "ok" {
			r := a.med / n.med
			lines = append(lines, fmt.Sprintf("%s: handshakes/s with auth ≥ 0.8× without (%s): %.2f× (%s vs %s)", pass(r >= 0.8), k, r, fmt3(a.med), fmt3(n.med)))
		}
	}
	if rf.hasScenario("idle") {
		for _, n := range []string{"socks6d", "socks6d-auth"} {
			s := rf.stat(n, "idle_kib_per_conn")
			if s.status == "ok" {
				lines = append(lines, fmt.Sprintf("%s: %s ≤ 10 KiB per idle connection: %s KiB (PSS over fresh start; RSS %s)", pass(s.med <= 10), n, fmt3(s.med), rf.stat(n, "idle_rss_kib_per_conn").cell()))
			}
		}
	}
	for _, mode := range []string{"", "-auth"} {
		ours := "socks6d" + mode
		if rf.target(ours) == nil {
			continue
		}
		var peers []string
		for _, p := range peerNames {
			if rf.target(p+mode) != nil {
				peers = append(peers, p+mode)
			}
		}
		var worse []string
		total := 0
		for _, k := range vsPeerKeys {
			if !rf.hasScenario(scenarioOf(k)) || len(peers) == 0 {
				continue
			}
			_, wo, ok := rf.vsBest(ours, peers, k)
			if ok {
				total++
				if wo {
					worse = append(worse, k)
				}
			}
		}
		if total > 0 {
			l := fmt.Sprintf("%s: %s at least as good as the best peer on every figure (5%% tolerance): %d of %d", pass(len(worse) == 0), ours, total-len(worse), total)
			if len(worse) > 0 {
				l += "; worse on " + strings.Join(worse, ", ")
			}
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return
	}
	sb.WriteString("## Goals for socks6d\n\n")
	for _, l := range lines {
		sb.WriteString("- " + l + "\n")
	}
	sb.WriteString("\n")
}

// foreignNoted is the foreign load above which a kept result is listed.
const foreignNoted = 0.35

// foreignLoads returns the sorted foreign loads of the measurements.
func (rf *runFile) foreignLoads() []float64 {
	var fs []float64
	for _, r := range rf.Results {
		if r.Status == "ok" {
			fs = append(fs, r.Foreign)
		}
	}
	sort.Float64s(fs)
	return fs
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// nameCost is key (a dns phase's p50) minus the IP-literal p50 of the
// same target, in µs, as a cell.
func (rf *runFile) nameCost(name, key string) string {
	s, l := rf.stat(name, key), rf.stat(name, "dns_lit_p50_us")
	if s.status != "ok" {
		return s.cell()
	}
	if l.status != "ok" {
		return "n/a"
	}
	return fmt3(s.med - l.med)
}

// dnsResolver returns how the dns instance named name resolves.
func (rf *runFile) dnsResolver(name string) string {
	for _, t := range rf.DNSTargets {
		if t.Name == name {
			return t.Resolver
		}
	}
	return ""
}

// renderDNS is the dns scenario's own table: per target how it resolves,
// the latencies and rates cold and warm, and the upstream queries each
// connection caused at the bench DNS server.
func (rf *runFile) renderDNS(sb *strings.Builder) {
	if !rf.hasScenario("dns") || len(rf.DNSTargets) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(sb, format, args...) }
	cell := func(name string, keys ...string) string {
		var parts []string
		for _, k := range keys {
			parts = append(parts, rf.stat(name, k).cell())
		}
		return collapse(parts)
	}
	w("## dns: CONNECT to a domain name (ATYP 3), resolve and connect (median of %d rep(s))\n\n", rf.Reps)
	w("Time from starting the TCP connection to the proxy until the CONNECT success reply, with the name as destination; for direct, `net.Dialer.DialContext(\"tcp\", \"name:port\")` with Go's resolver. ")
	w("Cold: a fresh name per connection (no cache can help); warm: one name, after one priming connection. Sequential (one connection at a time) unless c16 (16 concurrent). ")
	w("Every target runs in the network namespace `%s`, whose resolv.conf points at socksbench's DNS server on 127.0.0.1:53 (A 127.0.0.1, AAAA NODATA, TTL 300); the dns figures of socks6d, dante and microsocks elsewhere in this report come from these instances. ", rf.DNSNetns)
	w("Queries per connection are counted at that server (the upstream, for a proxy).\n\n")
	w("| target | resolver | IP literal µs p50/p99 | cold µs p50/p99 | warm µs p50/p99 | name cost µs cold/warm | hs/s cold/warm | hs/s c16 cold/warm | queries/conn cold A/AAAA | queries/conn warm A/AAAA | errors %% |\n")
	w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, t := range rf.DNSTargets {
		label := t.Name
		if t.Resolver == "system" {
			label += " (system resolver)"
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, resolverText(t),
			cell(t.Name, "dns_lit_p50_us", "dns_lit_p99_us"),
			cell(t.Name, "dns_cold_p50_us", "dns_cold_p99_us"), cell(t.Name, "dns_warm_p50_us", "dns_warm_p99_us"),
			rf.nameCost(t.Name, "dns_cold_p50_us")+"/"+rf.nameCost(t.Name, "dns_warm_p50_us"),
			cell(t.Name, "dns_cold_cps", "dns_warm_cps"), cell(t.Name, "dns_cold16_cps", "dns_warm16_cps"),
			cell(t.Name, "dns_cold_a_per_conn", "dns_cold_aaaa_per_conn"), cell(t.Name, "dns_warm_a_per_conn", "dns_warm_aaaa_per_conn"),
			cell(t.Name, "dns_err_pct"))
	}
	w("\nName cost: the phase's p50 minus the p50 of the same CONNECT to 127.0.0.1 (IP literal) through the same instance, measured just before: what resolving the name adds.\n")
	w("\n")
	var lines []string
	d := rf.stat("direct", "dns_warm_p50_us")
	for _, t := range rf.DNSTargets {
		if t.Direct {
			continue
		}
		s := rf.stat(t.Name, "dns_warm_p50_us")
		if s.status == "ok" && d.status == "ok" && d.med > 0 {
			verdict := "slower than direct"
			if s.med < d.med {
				verdict = "beats direct"
			}
			lines = append(lines, fmt.Sprintf("%s warm p50 %s µs vs direct %s µs: %.2f× (%s); name cost warm %s µs vs direct's %s µs",
				t.Name, fmt3(s.med), fmt3(d.med), s.med/d.med, verdict, rf.nameCost(t.Name, "dns_warm_p50_us"), rf.nameCost("direct", "dns_warm_p50_us")))
		}
		q, n := 0.0, 0.0
		ok := false
		for _, k := range []string{"dns_warm_queries_a", "dns_warm_queries_aaaa", "dns_warm_queries_other"} {
			if st := rf.stat(t.Name, k); st.status == "ok" {
				q += st.med
				ok = true
			}
		}
		if st := rf.stat(t.Name, "dns_warm_conns"); st.status == "ok" {
			n = st.med
		}
		if ok {
			lines = append(lines, fmt.Sprintf("%s: %s upstream queries in the warm phase (%s connections), %s per connection cold",
				t.Name, fmt3(q), fmt3(n), rf.stat(t.Name, "dns_cold_qpc").cell()))
		}
	}
	for _, l := range lines {
		w("- %s\n", l)
	}
	if len(lines) > 0 {
		w("\n")
	}
}

// rowsFor returns the rows of scenario sc's detail table.
func (rf *runFile) rowsFor(sc string) []*target {
	if sc == "socksify" {
		return rf.SocksifyTargets
	}
	return rf.Targets
}

// renderSocksify is the socksify scenario's table and its goals: curl
// under socksify against proxy-aware curl, proxychains4 and direct.
func (rf *runFile) renderSocksify(sb *strings.Builder) {
	if !rf.hasScenario("socksify") || len(rf.SocksifyTargets) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(sb, format, args...) }
	cell := func(name, key string) string { return rf.stat(name, key).cell() }
	ratio := func(name, key string) string {
		s, base := rf.stat(name, key), rf.stat(sfyBaseline, key)
		if s.status != "ok" {
			return s.cell()
		}
		if base.status != "ok" || base.med == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f×", s.med/base.med)
	}
	w("## socksify: an unmodified curl through the gateway (median of %d rep(s))\n\n", rf.Reps)
	w("All clients run in the network namespace `%s` (resolv.conf: the bench DNS server on 127.0.0.1:53, A 127.0.0.1 for every name under bench.test); the proxied ones go through the same socks6d (no auth) there, which resolves the names with its [resolver] at the same DNS server. ", rf.DNSNetns)
	w("New connections: one curl process fetches N URLs, each a fresh host name (so each needs a DNS lookup: curl's for direct, the gateway's otherwise) and, with `Connection: close`, a new TCP connection (checked: curl's num_connects, the HTTP server's accepts, the namespace's TCP PassiveOpens); ")
	w("conn/s = (N−1) / (last − first accept at the HTTP server), so process start-up is apart (first conn: exec to the first accept). ")
	w("Bulk: the median of %d curl downloads of zeros in a row (size_download / time_total). Ratios are to proxy-aware curl (`%s`).\n\n", sfyBulkRuns, sfyBaseline)
	w("| client | how | new conn/s | × proxy-aware | first conn ms | client CPU-µs/conn | socks6d CPU-µs/conn | TCP conns/URL | DNS queries/URL | bulk Gbit/s | × proxy-aware | client CPU-ms/GB | socks6d CPU-ms/GB | URLs failed |\n")
	w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, t := range rf.SocksifyTargets {
		srvConn, srvGB := "n/a", "n/a"
		if !t.Direct {
			srvConn, srvGB = cell(t.Name, "socksify_server_cpu_us_per_conn"), cell(t.Name, "socksify_bulk_server_cpu_ms_per_gb")
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t.Name, sfyHow(t.Name),
			cell(t.Name, "socksify_cps"), ratio(t.Name, "socksify_cps"), cell(t.Name, "socksify_first_ms"),
			cell(t.Name, "socksify_client_cpu_us_per_conn"), srvConn,
			cell(t.Name, "socksify_tcp_per_url"), cell(t.Name, "socksify_dns_qpc"),
			cell(t.Name, "socksify_gbps"), ratio(t.Name, "socksify_gbps"),
			cell(t.Name, "socksify_bulk_client_cpu_ms_per_gb"), srvGB, cell(t.Name, "socksify_errors"))
	}
	w("\nClient CPU: curl and, for socksify, its supervisor (user+system of the process and its reaped children, start-up included). DNS queries/URL are counted at the bench DNS server: from curl for direct, from socks6d for the proxied clients (socksify and proxychains4 answer the program's lookups themselves with fake addresses).\n\n")

	var lines []string
	pass := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	for _, g := range []struct {
		key, what string
		min       float64
	}{
		{"socksify_cps", "new-connection rate", 0.8},
		{"socksify_gbps", "bulk", 0.9},
	} {
		s, base := rf.stat("socksify", g.key), rf.stat(sfyBaseline, g.key)
		if s.status == "ok" && base.status == "ok" && base.med > 0 {
			r := s.med / base.med
			lines = append(lines, fmt.Sprintf("%s: socksify %s ≥ %.1f× proxy-aware curl: %.2f× (%s vs %s)", pass(r >= g.min), g.what, g.min, r, fmt3(s.med), fmt3(base.med)))
		} else {
			lines = append(lines, fmt.Sprintf("FAIL: socksify %s ≥ %.1f× proxy-aware curl: not measured (socksify %s, %s %s)", g.what, g.min, s.cell(), sfyBaseline, base.cell()))
		}
	}
	for _, g := range []struct{ key, what string }{{"socksify_cps", "new-connection rate"}, {"socksify_gbps", "bulk"}} {
		s, pc := rf.stat("socksify", g.key), rf.stat("proxychains4", g.key)
		switch {
		case s.status == "ok" && pc.status == "ok":
			lines = append(lines, fmt.Sprintf("%s: socksify ahead of proxychains4 on %s: %s vs %s (%.2f×)", pass(s.med > pc.med), g.what, fmt3(s.med), fmt3(pc.med), s.med/pc.med))
		case s.status == "ok":
			lines = append(lines, fmt.Sprintf("PASS: socksify ahead of proxychains4 on %s: %s vs proxychains4 %s", g.what, fmt3(s.med), pc.cell()))
		default:
			lines = append(lines, fmt.Sprintf("FAIL: socksify ahead of proxychains4 on %s: socksify %s", g.what, s.cell()))
		}
	}
	w("### Goals for socksify\n\n")
	for _, l := range lines {
		w("- %s\n", l)
	}
	w("\n")
}

// streamVsDirect gives each socks6d target's UDP-in-stream round trips
// per second as a ratio to direct UDP's, for the report's note.
func (rf *runFile) streamVsDirect() string {
	var parts []string
	var direct string
	for _, t := range rf.Targets {
		if t.Direct {
			direct = t.Name
		}
	}
	d := rf.stat(direct, "udp_rtps")
	for _, t := range rf.Targets {
		st := rf.stat(t.Name, "udp_stream_rtps")
		if st.status != "ok" || d.status != "ok" || d.med == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2f×", t.Name, st.med/d.med))
	}
	if len(parts) == 0 {
		return "none measured"
	}
	return strings.Join(parts, ", ")
}
