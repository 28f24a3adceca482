package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// Latency on a VM whose vCPUs halt when idle is dominated by waking them:
// a quiet machine gives every proxy ~115 µs round trips, a busy one
// ~15 µs, so rtt and udp flip between the two with whatever else happens
// to run. During those scenarios socksbench therefore keeps every CPU busy
// with a spinner process at nice 19, which a waking nice-0 server or
// client preempts at once (its CPU share against them is ~1.5%): the
// vCPUs stay awake and the latencies rank the servers. SCHED_IDLE
// spinners do not work for this: the scheduler treats a CPU running only
// SCHED_IDLE tasks as idle and wakes tasks across CPUs, and the
// cross-CPU wake-ups are as slow as the halts. Not used for conn1: a
// server that starts a thread per connection (microsocks) then waits a
// scheduler tick (4 ms) for the new thread to get the CPU from the
// spinner. -spin=false turns it off.

// setNice19 lowers every thread of this process to nice 19 (Linux nice
// values are per thread; threads started later inherit it).
func setNice19() {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19)
	}
}

// runSpinner is the body of "socksbench -spinner": busy loops on every CPU
// at nice 19, for at most max, ending with the parent.
func runSpinner(max time.Duration) {
	// Die with the parent even if it is killed.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	if os.Getppid() == 1 {
		return
	}
	setNice19()
	n := runtime.NumCPU()
	runtime.GOMAXPROCS(n)
	for i := 0; i < n; i++ {
		go func() {
			x := 0
			for {
				x++
			}
		}()
	}
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		setNice19() // threads the runtime started since
		time.Sleep(100 * time.Millisecond)
	}
	os.Exit(0)
}

// startSpin starts the spinner and returns its PID and a function that
// ends it.
func startSpin(max time.Duration) (int, func()) {
	self, err := os.Executable()
	if err != nil {
		return 0, func() {}
	}
	cmd := exec.Command(self, "-spinner", "-spin-max", max.String())
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, func() {}
	}
	time.Sleep(200 * time.Millisecond) // let it reach nice 19 on all threads
	return cmd.Process.Pid, func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
}
