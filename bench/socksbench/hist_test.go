package main

import (
	"math"
	"testing"
	"time"
)

func TestHistBucketsRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 100, 1000, 12345, 1 << 20, 3e9, 1e12} {
		i := histIndex(v)
		mid := histValue(i)
		if v < 64 {
			if mid != float64(v) {
				t.Errorf("v=%d: bucket %d midpoint %v, want exact", v, i, mid)
			}
			continue
		}
		if rel := math.Abs(mid-float64(v)) / float64(v); rel > 0.035 {
			t.Errorf("v=%d: bucket %d midpoint %v, off by %.1f%%", v, i, mid, 100*rel)
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 500}, {0.99, 990}} {
		if got := h.quantileUS(c.q); math.Abs(got-c.want)/c.want > 0.035 {
			t.Errorf("q%.2f = %v µs, want ~%v", c.q, got, c.want)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { h.add(time.Millisecond) }); allocs != 0 {
		t.Errorf("add allocates %v times", allocs)
	}
}

func TestUDPHeaderLen(t *testing.T) {
	for _, c := range []struct {
		p    []byte
		want int
		ok   bool
	}{
		{[]byte{0, 0, 0, 1, 127, 0, 0, 1, 0, 80}, 10, true},
		{append([]byte{0, 0, 0, 4}, make([]byte, 18)...), 22, true},
		{[]byte{0, 0, 0, 3, 3, 'a', 'b', 'c', 0, 80}, 10, true},
		{[]byte{0, 0, 1, 1, 127, 0, 0, 1, 0, 80}, 0, false}, // fragment
		{[]byte{0, 0}, 0, false},
	} {
		got, err := udpHeaderLen(c.p)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("udpHeaderLen(%v) = %d, %v; want %d, ok=%v", c.p, got, err, c.want, c.ok)
		}
	}
}

func TestParseTargetRejectsNonLoopback(t *testing.T) {
	if _, err := parseTarget("name=x,addr=10.0.0.1:1080,pid=1"); err == nil {
		t.Fatal("accepted a non-loopback address")
	}
	tg, err := parseTarget("name=x,addr=127.0.0.1:1080,pid=1+2,user=u,pass=p")
	if err != nil {
		t.Fatal(err)
	}
	if len(tg.PIDs) != 2 || !tg.auth() || tg.pass != "p" {
		t.Fatalf("parsed %+v", tg)
	}
}
