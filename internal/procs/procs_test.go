package procs

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"
)

// feed steps a through loads (in CPUs, over 100ms intervals) and returns
// the P count after each.
func feed(a *adapter, loads ...float64) []int {
	var got []int
	for _, l := range loads {
		n, _ := a.step(time.Duration(l*float64(100*time.Millisecond)), 100*time.Millisecond)
		got = append(got, n)
	}
	return got
}

func newAdapter(max int) *adapter {
	cfg := Config{Max: max}
	cfg.defaults()
	return &adapter{cfg: cfg, procs: 1, wait: cfg.DownAfter}
}

// repeat returns n copies of v.
func repeat[T any](v T, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func TestLightLoadStaysAtOne(t *testing.T) {
	a := newAdapter(4)
	if got := feed(a, repeat(0.85, 50)...); !slices.Equal(got, repeat(1, 50)) {
		t.Errorf("procs = %v, want 1 throughout", got)
	}
}

func TestSaturationGoesUpAtOnce(t *testing.T) {
	a := newAdapter(4)
	got := feed(a, 0.3, 0.95, 1.5)
	if !slices.Equal(got, []int{1, 4, 4}) {
		t.Errorf("procs = %v, want [1 4 4]", got)
	}
}

func TestHeavyLoadStaysUp(t *testing.T) {
	a := newAdapter(2)
	feed(a, 1)
	if got := feed(a, repeat(1.5, 100)...); !slices.Equal(got, repeat(2, 100)) {
		t.Errorf("procs = %v, want 2 throughout", got)
	}
}

// Serial work that shows 0.95 CPUs with two Ps but fits one P is tried at
// one P after DownAfter intervals, and stays there.
func TestSerialWorkComesDown(t *testing.T) {
	a := newAdapter(2)
	feed(a, 1)
	got := feed(a, repeat(0.95, 10)...)
	if want := append(repeat(2, 9), 1); !slices.Equal(got, want) {
		t.Fatalf("procs = %v, want %v", got, want)
	}
	if got := feed(a, repeat(0.8, 20)...); !slices.Equal(got, repeat(1, 20)) {
		t.Errorf("after the try: procs = %v, want 1", got)
	}
	if a.wait != a.cfg.DownAfter {
		t.Errorf("wait = %d after a good try, want %d", a.wait, a.cfg.DownAfter)
	}
}

// Work that needs two Ps but shows less than Down with them is tried at
// one P, goes back up after one interval, and each later try waits twice
// as long, up to MaxWait.
func TestFailedTriesBackOff(t *testing.T) {
	a := newAdapter(2)
	feed(a, 1)
	var gaps []int
	ups := 0
	run := 0
	for range 20000 {
		var l float64 = 0.95 // at two Ps
		if a.procs == 1 {
			l = 1 // saturated
		}
		n, changed := a.step(time.Duration(l*float64(100*time.Millisecond)), 100*time.Millisecond)
		run++
		if changed && n == 1 {
			gaps = append(gaps, run)
			run = 0
		}
		if changed && n == 2 {
			ups++
			if run != 1 {
				t.Fatalf("went back up after %d intervals at one P, want 1", run)
			}
			run = 0
		}
	}
	want := []int{10, 20, 40, 80, 160, 320, 600, 600}
	for i, w := range want {
		if i >= len(gaps) {
			t.Fatalf("only %d tries: %v", len(gaps), gaps)
		}
		if gaps[i] != w {
			t.Errorf("try %d came after %d intervals, want %d (all: %v)", i+1, gaps[i], w, gaps)
		}
	}
	// A light spell resets the wait: down after DownAfter.
	if a.procs != 2 {
		feed(a, 1)
	}
	got := feed(a, repeat(0.5, 10)...)
	if got[9] != 1 {
		t.Errorf("light load: procs = %v, want 1 after 10 intervals", got)
	}
}

func TestAdaptSetsAndRestores(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	runtime.GOMAXPROCS(2)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A low Up: under go test ./..., other packages' tests share the
		// CPUs, and two busy goroutines may get well under one CPU.
		Adapt(ctx, Config{Interval: 10 * time.Millisecond, Up: 0.2})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.GOMAXPROCS(0) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("GOMAXPROCS never went to 1")
		}
		time.Sleep(time.Millisecond)
	}
	// Two busy goroutines saturate one P: Adapt goes up.
	stop := make(chan struct{})
	for range 2 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	for runtime.GOMAXPROCS(0) != 2 {
		if time.Now().After(deadline) {
			close(stop)
			t.Fatal("GOMAXPROCS never went back to 2 under load")
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	cancel()
	<-done
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Errorf("after Adapt returned: GOMAXPROCS = %d, want 2", n)
	}
}
