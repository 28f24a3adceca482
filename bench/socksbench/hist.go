package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds: exact below 64 ns,
// then 32 buckets per power of two (at most ~3% error). Adding is
// allocation-free; each worker owns one and they are merged at the end.
type hist struct {
	b [64 + 40*32]uint32
	n uint64
}

func histIndex(v uint64) int {
	if v < 64 {
		return int(v)
	}
	shift := bits.Len64(v) - 6 // v>>shift is in [32, 63]
	i := 64 + (shift-1)*32 + int(v>>uint(shift)) - 32
	if i >= len(hist{}.b) {
		i = len(hist{}.b) - 1
	}
	return i
}

// histValue returns the midpoint of bucket i.
func histValue(i int) float64 {
	if i < 64 {
		return float64(i)
	}
	shift := (i-64)/32 + 1
	m := uint64((i-64)%32 + 32)
	return float64(m<<uint(shift)) + float64(uint64(1)<<uint(shift))/2
}

func (h *hist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.b[histIndex(uint64(d))]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.b {
		h.b[i] += c
	}
	h.n += o.n
}

// quantileUS returns the q-quantile in microseconds (0 if empty).
func (h *hist) quantileUS(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	want := uint64(q*float64(h.n) + 0.5)
	if want < 1 {
		want = 1
	}
	var cum uint64
	for i, c := range h.b {
		cum += uint64(c)
		if cum >= want {
			return histValue(i) / 1e3
		}
	}
	return histValue(len(h.b)-1) / 1e3
}
