package procs

import (
	"context"
	"log/slog"
	"runtime"
	"syscall"
	"time"
)

// Config tunes [Adapt]. The zero value is the default.
type Config struct {
	// Max is the P count under load. Zero means runtime.GOMAXPROCS(0)
	// when Adapt starts (Go's default: the CPUs the process may use).
	Max int
	// Interval is how often the load is measured. Zero means 100ms.
	Interval time.Duration
	// Up is the load, in CPUs, at or above which one interval at a
	// single P switches to Max. Zero means 0.9.
	Up float64
	// Down is the load below which Max Ps are tried at one P again, once
	// it has held for DownAfter intervals in a row. Several Ps inflate
	// the load of the same work with their spinning, so it is one CPU,
	// not less: a try that saturates the single P switches back up after
	// one interval, and the next try waits twice as long, up to MaxWait.
	// Zero means 1.0, 10 intervals and 600 intervals.
	Down      float64
	DownAfter int
	MaxWait   int
	// Light is the load below which Max Ps go to one after DownAfter
	// intervals however the last try went. Zero means 0.6.
	Light float64
	// Log, if not nil, gets a Debug record at each switch.
	Log *slog.Logger
}

func (c *Config) defaults() {
	if c.Max <= 0 {
		c.Max = runtime.GOMAXPROCS(0)
	}
	if c.Interval <= 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.Up <= 0 {
		c.Up = 0.9
	}
	if c.Down <= 0 {
		c.Down = 1.0
	}
	if c.DownAfter <= 0 {
		c.DownAfter = 10
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 600
	}
	c.MaxWait = max(c.MaxWait, c.DownAfter)
	if c.Light <= 0 {
		c.Light = 0.6
	}
}

// Adapt starts at one P and switches between one and cfg.Max Ps with the
// load, as the package documentation describes, until ctx ends; then it
// sets cfg.Max and returns. With cfg.Max of 1 it returns at once.
func Adapt(ctx context.Context, cfg Config) {
	cfg.defaults()
	if cfg.Max <= 1 {
		return
	}
	a := adapter{cfg: cfg, procs: 1, wait: cfg.DownAfter}
	runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(cfg.Max)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	last, lastAt := cpuTime(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c := cpuTime()
			if n, changed := a.step(c-last, now.Sub(lastAt)); changed {
				runtime.GOMAXPROCS(n)
				if cfg.Log != nil {
					cfg.Log.Debug("procs: GOMAXPROCS changed", "procs", n, "load", float64(c-last)/float64(now.Sub(lastAt)))
				}
			}
			last, lastAt = c, now
		}
	}
}

// An adapter is Adapt's decision, apart from the clock and the runtime
// so that it can be tested.
type adapter struct {
	cfg    Config
	procs  int // the current P count
	low    int // intervals in a row below Down at Max
	wait   int // intervals below Down before the next try at one P
	trying int // intervals since a try at one P began; 0: not trying
}

// triedFor is how long a try at one P must last to count as a success.
const triedFor = 3

// step takes the CPU time used over an interval of wall time and returns
// the P count to run with, and whether it changed.
func (a *adapter) step(cpu, wall time.Duration) (int, bool) {
	if wall <= 0 {
		return a.procs, false
	}
	load := float64(cpu) / float64(wall)
	if a.procs == 1 {
		if load >= a.cfg.Up {
			if a.trying > 0 { // the try failed: wait longer next time
				a.wait = min(2*a.wait, a.cfg.MaxWait)
			}
			a.procs, a.low, a.trying = a.cfg.Max, 0, 0
			return a.procs, true
		}
		if a.trying > 0 {
			if a.trying++; a.trying > triedFor {
				a.trying, a.wait = 0, a.cfg.DownAfter
			}
		}
		return 1, false
	}
	if load >= a.cfg.Down {
		a.low = 0
		return a.procs, false
	}
	a.low++
	need := a.wait
	if load < a.cfg.Light {
		need = a.cfg.DownAfter
	}
	if a.low < need {
		return a.procs, false
	}
	a.procs, a.low, a.trying = 1, 0, 1
	return 1, true
}

// cpuTime is the CPU time the process has used, user and system, in all
// its threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
