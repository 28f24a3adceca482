//go:build linux && amd64

package socksify

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Launch is the launcher mode of a program that embeds a Supervisor: the
// program's main calls it, before anything else, when os.Args[1] is
// LauncherArg, with args = os.Args[2:], and exits with status 127 if it
// returns. Start runs the launcher as its child; the launcher installs
// the seccomp filter on its own thread, hands the listener to the
// supervisor and, once the supervisor holds it, replaces itself with the
// program (execve). Launch returns only on failure; a failure before the
// supervisor took the listener is reported to the supervisor too, which
// then refuses to run the program.
//
// The steps, all on one locked OS thread:
//
//  1. prctl(PR_SET_NO_NEW_PRIVS): required to install a filter without
//     CAP_SYS_ADMIN (and so setuid and file capabilities do not elevate
//     inside);
//  2. seccomp(SET_MODE_FILTER, NEW_LISTENER|WAIT_KILLABLE_RECV) on this
//     thread only (no TSYNC: the Go runtime's other threads die at
//     execve, and the supervisor must not be filtered);
//  3. write the listener's fd number to the status pipe (write and read
//     are not trapped), and wait for the supervisor's go-ahead, which it
//     sends after taking the listener with pidfd_getfd;
//  4. execve the program, which inherits the filter.
func Launch(args []string) error {
	runtime.LockOSThread() // never unlocked: this thread execs or the process exits
	if len(args) < 5 {
		return errors.New("socksify launcher: missing arguments (this mode is internal)")
	}
	status, err1 := strconv.Atoi(args[0])
	gofd, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil {
		return errors.New("socksify launcher: bad descriptor arguments (this mode is internal)")
	}
	opts, err := parseFilterOpts(args[2])
	if err != nil {
		return err
	}
	path, argv := args[3], args[4:]
	report := func(msg string) error {
		_, err := unix.Write(status, []byte(msg))
		return err
	}
	fail := func(what string, e error) error {
		errno, _ := e.(syscall.Errno)
		report(fmt.Sprintf("err %d %s\n", uintptr(errno), what))
		return fmt.Errorf("socksify launcher: %s: %w", what, e)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("prctl(PR_SET_NO_NEW_PRIVS)", err)
	}
	prog, err := buildFilter(opts)
	if err != nil {
		return fail("building the seccomp filter", err)
	}
	lfd, err := installFilter(prog)
	if err != nil {
		return fail("seccomp(SECCOMP_SET_MODE_FILTER)", err)
	}
	if err := report("ok " + strconv.Itoa(lfd) + "\n"); err != nil {
		return fmt.Errorf("socksify launcher: reporting the listener: %w", err)
	}
	var b [1]byte
	for {
		n, err := unix.Read(gofd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n != 1 {
			// The supervisor went away or refused: never run the
			// program unsupervised (it would fail closed anyway: a
			// trapped call without a listener fails).
			return errors.New("socksify launcher: the supervisor did not take the listener")
		}
		break
	}
	unix.Close(lfd)
	unix.Close(status)
	unix.Close(gofd)
	err = unix.Exec(path, argv, syscallEnviron())
	return fmt.Errorf("socksify: exec %s: %w", path, err)
}

// syscallEnviron returns the environment for execve: the launcher's own,
// which Start set up for the program.
func syscallEnviron() []string { return syscall.Environ() }
