// Package socksify runs an unmodified program with its network traffic
// sent through a SOCKS gateway (socks6d, or any SOCKS5 server; package
// client speaks to it, with the extensions of draft-socks6-extensions-00
// when the gateway offers them). It works for static binaries too (Go,
// musl), needs no privileges, and fails closed: what it cannot redirect
// fails rather than going out directly.
//
// # Mechanism
//
// A [Supervisor] starts the program under a seccomp filter whose user
// notifications (SECCOMP_RET_USER_NOTIF) it answers; see
// reference/socksify-research.md, section 4.2. [Supervisor.Start]
// re-executes its own binary in a hidden launcher mode ([Launch],
// selected by [LauncherArg]), which locks its OS thread, sets
// no_new_privs, installs the filter on that thread only with
// SECCOMP_FILTER_FLAG_NEW_LISTENER|WAIT_KILLABLE_RECV, passes the
// listener's fd number up a pipe, waits for the go-ahead and execs the
// program. The supervisor takes the listener with pidfd_open and
// pidfd_getfd, asks for SYNC_WAKE_UP where the kernel has it (6.6), and
// answers notifications in one loop on a locked OS thread: decisions
// that do not block are made and answered inline; only gateway
// handshakes and blocking receives get a goroutine. It is a child
// subreaper, so the program's orphans stay supervised, and
// [Process.Wait] returns when the listener hangs up: every supervised
// task is gone.
//
// The filter (x86_64; hand-written classic BPF) checks the architecture:
// x32 calls kill the process; a 32-bit (i386) program gets EPERM for
// every network call. It notifies connect, sendmsg, sendmmsg, recvmsg,
// recvmmsg, getpeername, bind, listen, accept and accept4, and sendto
// and recvfrom when their address argument is not NULL (so send and
// recv on connected sockets never leave the kernel). socket() of
// AF_PACKET, or SOCK_RAW in AF_INET or AF_INET6, fails with EPERM;
// io_uring_setup fails with ENOSYS. Everything else runs unhindered.
//
// # What happens to each call
//
// The supervisor reads socket addresses with process_vm_readv and
// re-checks the notification (SECCOMP_IOCTL_NOTIF_ID_VALID) after every
// read of the program's memory. It works on a pidfd_getfd duplicate of
// the program's socket, with raw syscalls, MSG_DONTWAIT and poll, and
// never changes the socket's O_NONBLOCK flag, which the duplicate shares
// with the program. What it knows of a socket is keyed by its inode,
// which survives dup and fork.
//
//   - connect, TCP: loopback, the gateway itself and Supervisor.Direct
//     run as asked (CONTINUE). Anything else is connected "in-band": the
//     supervisor connects the program's own socket to the gateway and
//     runs the handshake and CONNECT on it (client.Dialer.Handshake),
//     asking for the name when the destination is a fake address, and
//     then answers the program's connect with 0 or the errno of the
//     failure (see replyErrno). The program's thread waits meanwhile, so
//     a non-blocking connect returns after one gateway round trip,
//     already connected (0, not EINPROGRESS), which curl, Go, Python and
//     OpenSSH accept. The data then flows between the program and the
//     gateway with no copy in between.
//   - connect, AF_UNIX: nscd's and systemd-resolved's sockets are
//     refused (ECONNREFUSED), so glibc's NSS falls back to DNS, which is
//     answered here; every other path runs as asked.
//   - DNS: every UDP and TCP message to port 53, to any address, goes to
//     the supervisor's own fake DNS server on loopback (the program's
//     socket is connected or sends to it), which answers A and AAAA with
//     fake addresses from 198.18.0.0/15 and fd00:5eed::/64 (see
//     fakeip.go and dns.go for the other types). No query leaves the
//     machine. recvfrom, recvmsg and recvmmsg on a socket that sent
//     queries report the server the program addressed as the source
//     (musl's resolver checks it); ancillary data is dropped there.
//   - getpeername on a socket the supervisor connected: the address the
//     program asked for (the fake address and port, or the literal).
//   - UDP and other protocols to anywhere else: loopback and Direct run
//     as asked; anything else fails with ENETUNREACH. UDP ASSOCIATE is
//     not implemented yet.
//   - bind, listen, accept, accept4: run as asked (trapped for the
//     remote-listen redirection to come).
//
// If the supervisor dies, the kernel fails every trapped call of the
// program (ENOSYS): nothing goes out unproxied. A kernel without
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (before Linux 5.19) is refused
// at Start: without it, signals restart calls whose memory the
// supervisor is writing.
//
// # Not done yet
//
// UDP other than DNS (UDP ASSOCIATE or in-stream UDP); listen and accept
// through the gateway; getsockname (reports the program's end of its
// connection to the gateway); forwarding DNS types other than A, AAAA,
// PTR, HTTPS and SVCB; TCP Fast Open through the gateway (EOPNOTSUPP);
// a relay mode for event loops that would rather not wait one gateway
// round trip in connect; arm64. Programs that enter another network
// namespace cannot reach the supervisor's loopback DNS server.
//
// This is not a security boundary: a program that wants to escape can
// (time-of-check races on its own memory, sockets passed in from
// outside). Under no_new_privs, setuid and file capabilities do not
// elevate inside.
//
// # Concurrency
//
// A Supervisor may start several programs, but Start makes the calling
// process a child subreaper that reaps all its children, so one
// supervised program per process is what works. A Process's methods are
// safe for concurrent use; Wait must be called once.
package socksify
