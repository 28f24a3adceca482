// Package socksify runs an unmodified program with its network traffic
// sent through a SOCKS gateway (socks6d, or any SOCKS5 server; package
// client speaks to it, with the extensions of draft-socks6-extensions-00
// when the gateway offers them). It works for static binaries too (Go,
// musl), needs no privileges, and fails closed: what it cannot redirect
// fails rather than going out directly. Package socksify/isolate is the
// strict alternative: a network namespace behind a TUN device and a
// user-space TCP/IP stack, which needs root; it shares this package's
// fake DNS ([FakeDNS]).
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
// that do not block are made and answered inline, and so is the gateway
// handshake of a non-blocking connect while no other notification
// waits (the loop hands it to a goroutine as soon as one does); other
// handshakes and blocking receives get a goroutine. An inline handshake
// polls for the gateway's answer without sleeping for a short, adaptive
// time first (see maxInlineSpin). The same loop
// answers the fake DNS server's UDP queries. It is a child
// subreaper, so the program's orphans stay supervised, and
// [Process.Wait] returns when the listener hangs up: every supervised
// task is gone.
//
// The filter (x86_64; hand-written classic BPF) checks the architecture:
// x32 calls kill the process; a 32-bit (i386) program gets EPERM for
// every network call. It notifies connect, sendmsg, sendmmsg, recvmsg,
// recvmmsg, getpeername, bind, listen, accept and accept4, getsockname
// when Supervisor.Publish is set, and sendto and recvfrom when their
// address argument is not NULL (so send and recv on connected sockets
// never leave the kernel). socket() of AF_PACKET or AF_RDS, or of
// SOCK_RAW, SOCK_PACKET or IPPROTO_SCTP in AF_INET or AF_INET6, fails
// with EPERM;
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
// which survives dup and fork. A connect or send with a destination whose
// arguments it cannot read (a program that made itself non-dumpable,
// with the supervisor lacking CAP_SYS_PTRACE) or whose socket it cannot
// duplicate (the supervisor out of fds) fails, with EFAULT or that
// errno, rather than run unsupervised. Destinations are taken as the
// kernel takes them: AF_UNSPEC on an IPv4 UDP socket is the AF_INET
// address udp_sendmsg sends to, and a sendmmsg message with an unusable
// name does not let the messages before it through unrouted.
//
//   - connect, TCP: loopback, the gateway itself and Supervisor.Direct
//     run as asked (CONTINUE). Anything else is connected "in-band": the
//     supervisor connects the program's own socket to the gateway and
//     runs the handshake and CONNECT on it (plain SOCKS5, the greeting
//     and the request in one write; see Supervisor.Dialer), asking for
//     the name when the destination is a fake address, and then answers
//     the program's connect with 0 or the errno of the failure (see
//     replyErrno). The program's thread waits meanwhile, so
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
//     fake addresses from 198.18.0.0/15 and fd00:5eed::/64, one family
//     per lookup (see pairWindow in fakeip.go, and dns.go for the other
//     types). No query leaves the
//     machine. Queries sent with sendto or sendmsg to port 53, or with
//     a sendmmsg of one or two messages on a socket connected there
//     (glibc's A and AAAA pair), are sent by the notification loop
//     itself, which answers them before the call returns: the answers
//     are waiting when the program polls for them. recvfrom, recvmsg and
//     recvmmsg on a socket that sent queries report the server the program addressed as the source
//     (musl's resolver checks it); ancillary data is dropped there.
//   - getaddrinfo in a dynamically linked program: answered in the
//     program itself, for the names the fake DNS would fake, by a small
//     library loaded with LD_PRELOAD (preload.go; NoPreload turns it
//     off). It writes the name to a table it shares with the supervisor
//     and returns the fake address of that slot, so the lookup traps
//     nothing; everything else goes to the C library and the fake DNS.
//     The library also answers getpeername for a socket it saw connect
//     to a fake address, so that call traps nothing either.
//   - getpeername on a socket the supervisor connected: the address the
//     program asked for (the fake address and port, or the literal).
//     getsockname is not trapped (unless Publish): it reports the
//     program's real end of its connection to the gateway, in the
//     socket's family, an address the program can bind another socket
//     to; the gateway's outside address would not be.
//   - UDP to anywhere else (not loopback, the gateway's address or
//     Direct): through the gateway, one association per socket, made at
//     its first datagram (see udp_linux.go): in the TCP stream
//     (client.Dialer.ListenPacket, DATAGRAM frames) when the gateway
//     offers the extensions' UDP feature, so it works across NAT and
//     firewalls; else by UDP ASSOCIATE (RFC 1928), which needs the
//     gateway's relay address reachable by UDP. sendto, sendmsg and sendmmsg with an address are
//     emulated (UDP_SEGMENT offload is split into its datagrams); connect
//     points the socket at the supervisor's loopback ingress, which
//     costs nothing upstream (resolvers connect UDP sockets just to sort
//     addresses). A fake address is sent as its name. recvfrom, recvmsg
//     and recvmmsg on such sockets report the address the program sent
//     to as the source, and getpeername the address it connected to. A
//     blocking receive ends for a signal with ERESTARTSYS where the
//     kernel will deliver the signal to that thread, so SA_RESTART
//     restarts it as the kernel's own (see interruptErrno). If
//     the association cannot be made the send fails with ENETUNREACH (a
//     connected socket, whose datagram was already accepted, is pointed
//     at a dead end on loopback: its next call fails with ECONNREFUSED).
//     An association ends when the gateway closes it or when the
//     program's socket is gone (a sweep of /proc/self/net/udp every two
//     seconds). Multicast and broadcast, UDP-Lite and other protocols
//     fail with ENETUNREACH unless direct.
//   - listen, accept, accept4: with Supervisor.Publish, a TCP socket it
//     selects is published at the gateway when it listens (LISTEN on an
//     extension session of its own, through client.Dialer.ListenConfig)
//     and stays a real local listening socket too. Each gateway caller
//     rings a "doorbell", a local connection to the program's socket, so
//     that select, poll and epoll see it readable; accept is then
//     emulated, and the doorbell is swapped for the caller's connection
//     to the gateway, installed in the program with
//     SECCOMP_IOCTL_NOTIF_ADDFD (no copy in between), with the caller's
//     address as the peer. getsockname on the listening socket and its
//     connections reports the gateway's public address. See
//     listen_linux.go. Otherwise, and bind always, run as asked.
//
// If the supervisor dies, the kernel fails every trapped call of the
// program (ENOSYS): nothing goes out unproxied. A kernel without
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (before Linux 5.19) is refused
// at Start: without it, signals restart calls whose memory the
// supervisor is writing.
//
// # Not done yet
//
// Publishing again after the gateway's session ended;
// UDP_SEGMENT in sendmmsg;
// forwarding DNS types other than A, AAAA, PTR, HTTPS and SVCB; TCP
// Fast Open through the gateway (EOPNOTSUPP); a relay mode for event
// loops that would rather not wait one gateway round trip in connect;
// arm64. Programs that enter another network namespace cannot reach the
// supervisor's loopback DNS server and UDP ingress.
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
