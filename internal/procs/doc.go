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
//
// # What it does not do: keep sysmon awake
//
// At light load much of the rest of socks6d's CPU is the runtime's sysmon
// thread: when every P is idle it sleeps, and the next system call wakes
// it, after which it polls every 20 µs for a while (perf: 19% of the
// gateway's CPU while curl fetched fresh names through it). Two ways of
// keeping sysmon from that sleep were measured (December 2026, 2 cores,
// the same binary side by side) and left out:
//
//   - holding one more P with a goroutine parked in a raw ppoll(2), which
//     a preemption signal interrupts so that stop-the-world still works;
//   - GODEBUG=schedtrace set to its largest value, which keeps sysmon
//     from its deep sleep without printing.
//
// Both cut the CPU of a CONNECT to a fresh name by a fifth (225–295 to
// 180–205 µs, bench/micro/connect.py 2000 TAG) and its context switches
// from 6 to 2–3, and sequential CONNECTs to IP literals took 106 rather
// than 120 CPU-µs. But the relays lost more: UDP ASSOCIATE echoes fell
// from about 40,000 to 20,000 a second with either, and the held P also
// cut the request/response rate on an open connection by 40% (socksbench
// udp and rtt). The likely cause: an awake sysmon takes the P of a system
// call it sees in two ticks in a row when no P is idle, and a relay's
// write that wakes a thread on the other CPU can last that long; asleep,
// it takes none.
package procs
