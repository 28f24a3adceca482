// Package procs lets a server run with one P (runtime.GOMAXPROCS(1))
// while one CPU is enough for its load, and with all of them when it is
// not.
//
// Go's scheduler wakes an idle P's thread whenever a goroutine becomes
// ready while a P is idle, and that thread spins looking for work before
// it sleeps again. A gateway at light load readies a goroutine at nearly
// every step of a session (a read completes, a lookup answers, a dial
// connects), so with two or more Ps a good part of its CPU goes to
// waking and parking threads that find nothing to do. On a 2-core
// machine socks6d spent 211 CPU-µs per sequential CONNECT with two Ps and
// 147 with one, and half as many context switches per CONNECT to a fresh
// name; but with one P, 64 concurrent clients got 13% fewer CONNECTs per
// second, because one P was then the bottleneck.
//
// [Adapt] measures the process's CPU time (user and system, every thread)
// at a fixed interval and switches between the two: up to the full count
// as soon as one interval shows the single P nearly saturated, and back
// to one P after the load has stayed low for a second. "Low" cannot mean
// "below one CPU": with two Ps the same serial work shows more load than
// with one (a single connection's round trips cost 21 CPU-µs each with
// two Ps, 16.5 with one), so any load below one CPU is tried at one P; a
// try that saturates it goes back up after one interval, and the
// next try waits twice as long (at most a minute), so a load that needs
// two Ps sees one short try a minute.
package procs
