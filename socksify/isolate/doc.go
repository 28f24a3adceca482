// Package isolate is socksify's strict mode: it runs a program in a
// network namespace of its own, whose only interface besides loopback is
// a TUN device, and serves that device with a user-space TCP/IP stack
// (gVisor's netstack) in the calling process, which stays in the
// original namespace and reaches the gateway from there.
//
// Nothing the program does can reach the network another way: there is
// no other route, so raw sockets, io_uring and statically linked code
// that the seccomp supervisor (package socksify) traps call by call are
// harmless here. If the calling process dies, the TUN device goes with
// it and every network call in the namespace fails.
//
//   - TCP: each connection the program opens is accepted by the stack
//     only once the gateway has connected it (CONNECT, with the name
//     when the program connected to a fake address). A failure is
//     answered so that the program's connect returns the errno the
//     seccomp mode would (socksify.ConnectErrno): an ICMP destination
//     unreachable for ENETUNREACH, EHOSTUNREACH and EACCES, no answer
//     for ETIMEDOUT, a reset for the rest (ECONNREFUSED); see
//     icmp_linux.go.
//   - Events (Config.OnConnect) name the process that made the
//     connection, looked up in the namespace's socket tables and among
//     its processes' open files.
//   - DNS: UDP to port 53 of any address, and the nameservers of
//     /etc/resolv.conf that are on loopback (the namespace has its own
//     loopback), are answered with fake addresses by socksify.FakeDNS.
//   - Other UDP: one association per flow (source and destination),
//     ended after a minute without traffic: UDP in the stream when the
//     gateway offers it, else a UDP ASSOCIATE (not through a TLS
//     gateway).
//   - The namespace's addresses are 192.0.0.8/32 (RFC 7600's IPv4 dummy
//     address) and fd00:5eed:0:1::1/128; its loopback is its own, so a
//     program cannot reach services on the host's loopback (the gateway
//     can, when its policy allows).
//   - The direct ways out are closed, even to a root program: it starts
//     with its capabilities, bounding set included, reduced to those
//     that reach no further than its namespace or that it needs for its
//     files and to drop privileges (keptCapabilities), and in a mount
//     namespace of its own where /proc/sys, /sys and /proc/sysrq-trigger
//     are read-only (the kernel runs some of those files as helpers
//     outside every namespace). The file system and process IDs stay
//     the host's: this is no sandbox against a hostile root program.
//
// It needs Linux, CAP_NET_ADMIN and CAP_SYS_ADMIN (root) and
// /dev/net/tun.
package isolate
