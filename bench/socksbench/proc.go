package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Server-side figures come from /proc: CPU time from /proc/PID/stat,
// memory from /proc/PID/smaps_rollup, descriptors from /proc/PID/fd, each
// summed over the server's process tree (Dante forks worker processes).

// clkTck is USER_HZ, the unit of the CPU times in /proc/PID/stat and
// /proc/stat; it is 100 on every Linux architecture Go supports here.
const clkTck = 100

type statInfo struct {
	ppid  int
	ticks int64 // utime+stime+cutime+cstime
	state byte
}

// readStat parses /proc/PID/stat (or /proc/self/stat with pid 0).
func readStat(pid int) (statInfo, bool) {
	var path string
	if pid == 0 {
		path = "/proc/self/stat"
	} else {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return statInfo{}, false
	}
	// The command name is in parentheses and may contain anything; the
	// fields after the last ')' are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return statInfo{}, false
	}
	f := strings.Fields(string(b[i+2:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 15 {
		return statInfo{}, false
	}
	var si statInfo
	si.state = f[0][0]
	si.ppid, _ = strconv.Atoi(f[1])
	for _, k := range []int{14, 15, 16, 17} {
		v, _ := strconv.ParseInt(f[k-3], 10, 64)
		si.ticks += v
	}
	return si, true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	si, ok := readStat(pid)
	return ok && si.state != 'Z' && si.state != 'X'
}

// procTree returns roots and all their descendants that are alive.
func procTree(roots []int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return roots
	}
	children := make(map[int][]int)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		si, ok := readStat(pid)
		if !ok || si.ppid == 0 {
			continue
		}
		children[si.ppid] = append(children[si.ppid], pid)
	}
	var out []int
	seen := make(map[int]bool)
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
		queue = append(queue, children[p]...)
	}
	return out
}

// treeCPU returns the CPU seconds used so far by the tree of roots,
// including children that have exited and been reaped.
func treeCPU(roots []int) float64 {
	var t int64
	for _, p := range procTree(roots) {
		if si, ok := readStat(p); ok {
			t += si.ticks
		}
	}
	return float64(t) / clkTck
}

// selfCPU returns the CPU seconds used by this process.
func selfCPU() float64 {
	si, _ := readStat(0)
	return float64(si.ticks) / clkTck
}

// sysBusy returns the machine's busy CPU seconds (user, nice, system,
// irq, softirq; summed over CPUs) and steal, from /proc/stat. This kernel
// may account interrupt time by ticks, which also charges the interrupted
// task, so irq and softirq belong on the busy side to match the
// per-process times subtracted from it.
func sysBusy() (busy, steal float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	v := func(i int) float64 { x, _ := strconv.ParseFloat(f[i], 64); return x }
	return (v(1) + v(2) + v(3) + v(6) + v(7)) / clkTck, v(8) / clkTck
}

// softirqThreads returns the PIDs of the ksoftirqd kernel threads, whose
// time is network processing caused by the benchmark, not foreign load.
func softirqThreads() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if strings.HasPrefix(readTrim("/proc/"+e.Name()+"/comm"), "ksoftirqd/") {
			out = append(out, pid)
		}
	}
	return out
}

// pidsCPU sums the CPU seconds of pids (no descendants).
func pidsCPU(pids []int) float64 {
	var t int64
	for _, p := range pids {
		if si, ok := readStat(p); ok {
			t += si.ticks
		}
	}
	return float64(t) / clkTck
}

type memSample struct {
	pssKiB, rssKiB int64
	fds, procs     int
}

// treeMem sums PSS, RSS and open descriptors over the tree of roots.
func treeMem(roots []int) memSample {
	var m memSample
	for _, p := range procTree(roots) {
		ps := strconv.Itoa(p)
		b, err := os.ReadFile("/proc/" + ps + "/smaps_rollup")
		if err != nil {
			continue
		}
		m.procs++
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			var dst *int64
			switch k {
			case "Rss":
				dst = &m.rssKiB
			case "Pss":
				dst = &m.pssKiB
			default:
				continue
			}
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			*dst += n
		}
		m.fds += countFDs(p)
	}
	return m
}

func countFDs(pid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names)
}

// treeFDs counts open descriptors over the tree of roots.
func treeFDs(roots []int) int {
	n := 0
	for _, p := range procTree(roots) {
		n += countFDs(p)
	}
	return n
}

// fdLimit returns the soft RLIMIT_NOFILE of pid, or 0 if unknown.
func fdLimit(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(line[len("Max open files"):])
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

// raiseNofile raises the soft RLIMIT_NOFILE to the hard limit and returns
// the new soft limit.
func raiseNofile() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	return int(r.Cur)
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func memTotalGiB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / (1 << 20)
			}
		}
	}
	return 0
}
