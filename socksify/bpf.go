package socksify

import (
	"fmt"
)

// The seccomp filter is classic BPF, written by hand (no libseccomp, no
// cgo) with the small label assembler below. It runs on struct
// seccomp_data:
//
//	offset 0   int   nr                  syscall number
//	offset 4   u32   arch                AUDIT_ARCH_*
//	offset 8   u64   instruction_pointer
//	offset 16  u64   args[6]             args[i] at 16+8i (low word first: little endian)

// Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
const (
	bpfLD   = 0x00
	bpfW    = 0x00
	bpfABS  = 0x20
	bpfALU  = 0x04
	bpfAND  = 0x50
	bpfJMP  = 0x05
	bpfJEQ  = 0x10
	bpfJGT  = 0x20
	bpfJGE  = 0x30
	bpfJSET = 0x40
	bpfK    = 0x00
	bpfRET  = 0x06
)

// seccomp return values (linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retErrno       = 0x00050000
	retUserNotif   = 0x7fc00000
	retAllow       = 0x7fff0000
)

// Audit architectures (linux/audit.h) and the x32 syscall bit.
const (
	auditArchX86_64 = 0xc000003e
	auditArchI386   = 0x40000003
	x32SyscallBit   = 0x40000000
)

// x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). The
// filter is for x86_64 only; they are spelt out here, rather than taken
// from x/sys, so that the filter and its tests build on any platform.
const (
	sysSocket       = 41
	sysConnect      = 42
	sysAccept       = 43
	sysSendto       = 44
	sysRecvfrom     = 45
	sysSendmsg      = 46
	sysRecvmsg      = 47
	sysBind         = 49
	sysListen       = 50
	sysGetsockname  = 51
	sysGetpeername  = 52
	sysAccept4      = 288
	sysRecvmmsg     = 299
	sysSendmmsg     = 307
	sysIoUringSetup = 425
)

// i386 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl) of the
// network calls a 32-bit program could make on an x86_64 kernel.
const (
	sys32Socketcall   = 102
	sys32Recvmmsg     = 337
	sys32Sendmmsg     = 345
	sys32SocketFirst  = 359 // socket
	sys32SocketLast   = 373 // shutdown; socketpair … recvmsg lie between
	sys32IoUringSetup = 425
)

// Socket constants the filter tests (the same on every Linux
// architecture).
const (
	afUnspec   = 0
	afUnix     = 1
	afInet     = 2
	afInet6    = 10
	afPacket   = 17
	afRDS      = 21
	sockRaw    = 3
	sockPacket = 10  // SOCK_PACKET: AF_PACKET in an AF_INET socket's clothes
	sockTypeMk = 0xf // SOCK_TYPE_MASK: the type without SOCK_NONBLOCK and SOCK_CLOEXEC
	protoSCTP  = 132
)

// errno values the filter returns (asm-generic/errno-base.h, errno.h).
const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// A bpfInsn is one classic BPF instruction (struct sock_filter).
type bpfInsn struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// An asm builds a BPF program whose jumps name labels; assemble resolves
// them into the 8-bit forward offsets BPF needs.
type asm struct {
	insns  []bpfInsn
	jumps  map[int][2]string // instruction index → labels of jt, jf ("" = next)
	labels map[string]int
}

func newAsm() *asm {
	return &asm{jumps: map[int][2]string{}, labels: map[string]int{}}
}

// label names the next instruction.
func (a *asm) label(name string) {
	if _, dup := a.labels[name]; dup {
		panic("socksify: duplicate BPF label " + name)
	}
	a.labels[name] = len(a.insns)
}

// ld loads the 32-bit word at off of struct seccomp_data.
func (a *asm) ld(off uint32) { a.insns = append(a.insns, bpfInsn{Code: bpfLD | bpfW | bpfABS, K: off}) }

// and masks the accumulator.
func (a *asm) and(k uint32) { a.insns = append(a.insns, bpfInsn{Code: bpfALU | bpfAND | bpfK, K: k}) }

// jmp adds a conditional jump: to jt if the condition holds, else to jf.
// An empty label means the next instruction.
func (a *asm) jmp(op uint16, k uint32, jt, jf string) {
	a.jumps[len(a.insns)] = [2]string{jt, jf}
	a.insns = append(a.insns, bpfInsn{Code: bpfJMP | op | bpfK, K: k})
}

// ret returns k.
func (a *asm) ret(k uint32) { a.insns = append(a.insns, bpfInsn{Code: bpfRET | bpfK, K: k}) }

func (a *asm) assemble() ([]bpfInsn, error) {
	out := append([]bpfInsn(nil), a.insns...)
	for i, ls := range a.jumps {
		for j, l := range ls {
			off := 0
			if l != "" {
				to, ok := a.labels[l]
				if !ok {
					return nil, fmt.Errorf("socksify: BPF label %q undefined", l)
				}
				off = to - i - 1
				if off < 0 || off > 255 {
					return nil, fmt.Errorf("socksify: BPF jump from %d to %q (%d) out of range", i, l, to)
				}
			}
			if j == 0 {
				out[i].Jt = uint8(off)
			} else {
				out[i].Jf = uint8(off)
			}
		}
	}
	if len(out) > 4096 {
		return nil, fmt.Errorf("socksify: BPF program of %d instructions is too long", len(out))
	}
	return out, nil
}

// seccomp_data offsets.
const (
	offNr   = 0
	offArch = 4
)

// offArg returns the offset of the low (hi false) or high 32-bit word of
// args[i].
func offArg(i int, hi bool) uint32 {
	o := uint32(16 + 8*i)
	if hi {
		o += 4
	}
	return o
}

// filterOpts are the filter's options.
type filterOpts struct {
	getsockname bool // notify getsockname
}

// String encodes the options for the launcher's command line.
func (o filterOpts) String() string {
	if o.getsockname {
		return "g"
	}
	return "-"
}

// parseFilterOpts decodes String's encoding.
func parseFilterOpts(s string) (filterOpts, error) {
	switch s {
	case "-":
		return filterOpts{}, nil
	case "g":
		return filterOpts{getsockname: true}, nil
	}
	return filterOpts{}, fmt.Errorf("socksify launcher: bad filter options %q (this mode is internal)", s)
}

// notifiedSyscalls are the x86_64 calls that always go to the
// supervisor. sendto and recvfrom go only when their address argument is
// not NULL, so that send and recv on connected sockets (every TCP read
// and write made with them) never leave the kernel.
var notifiedSyscalls = []uint32{
	sysConnect, sysSendmsg, sysSendmmsg, sysRecvmsg, sysRecvmmsg,
	sysGetpeername, sysBind, sysListen, sysAccept, sysAccept4,
}

// buildFilter returns the supervisor's seccomp filter:
//
//   - x86_64 calls: USER_NOTIF for notifiedSyscalls, and for sendto and
//     recvfrom with a non-NULL address (args[4]); socket() of AF_PACKET
//     or AF_RDS, or of SOCK_RAW, SOCK_PACKET or IPPROTO_SCTP in AF_INET
//     or AF_INET6, fails with EPERM (raw sockets bypass the redirection;
//     RDS sends to IP addresses through sockets the supervisor does not
//     redirect; SCTP connects with setsockopt(SCTP_SOCKOPT_CONNECTX),
//     which is not trapped; netlink, whose sockets are also SOCK_RAW, is
//     left alone because glibc's getaddrinfo needs it);
//     io_uring_setup fails with ENOSYS (its I/O would not be seen);
//     everything else is allowed.
//   - x32 calls (nr with bit 30 set) kill the process: the supervisor
//     does not decode them.
//   - i386 calls (a 32-bit program): every network call fails with EPERM
//     and io_uring_setup with ENOSYS, so a 32-bit program cannot reach
//     the network unproxied; everything else is allowed.
//   - any other architecture kills the process.
//
// With opts.getsockname, getsockname is notified too (published
// listeners report the gateway's address); without, it never leaves the
// kernel, since many programs call it after every connect.
func buildFilter(opts filterOpts) ([]bpfInsn, error) {
	a := newAsm()
	a.ld(offArch)
	a.jmp(bpfJEQ, auditArchX86_64, "", "not64")
	a.ld(offNr)
	a.jmp(bpfJGE, x32SyscallBit, "kill", "")
	for _, nr := range notifiedSyscalls {
		a.jmp(bpfJEQ, nr, "notify", "")
	}
	if opts.getsockname {
		a.jmp(bpfJEQ, sysGetsockname, "notify", "")
	}
	a.jmp(bpfJEQ, sysSendto, "addr", "")
	a.jmp(bpfJEQ, sysRecvfrom, "addr", "")
	a.jmp(bpfJEQ, sysSocket, "socket", "")
	a.jmp(bpfJEQ, sysIoUringSetup, "enosys", "")
	a.ret(retAllow)

	// sendto/recvfrom: notify unless args[4] is NULL.
	a.label("addr")
	a.ld(offArg(4, false))
	a.jmp(bpfJEQ, 0, "", "notify")
	a.ld(offArg(4, true))
	a.jmp(bpfJEQ, 0, "allow", "notify")

	// socket(domain, type, protocol).
	a.label("socket")
	a.ld(offArg(0, false))
	a.jmp(bpfJEQ, afPacket, "eperm", "")
	a.jmp(bpfJEQ, afRDS, "eperm", "")
	a.jmp(bpfJEQ, afInet, "sockettype", "")
	a.jmp(bpfJEQ, afInet6, "sockettype", "allow")
	a.label("sockettype")
	a.ld(offArg(1, false))
	a.and(sockTypeMk)
	a.jmp(bpfJEQ, sockRaw, "eperm", "")
	a.jmp(bpfJEQ, sockPacket, "eperm", "")
	a.ld(offArg(2, false))
	a.jmp(bpfJEQ, protoSCTP, "eperm", "allow")

	// i386 and others.
	a.label("not64")
	a.jmp(bpfJEQ, auditArchI386, "", "kill")
	a.ld(offNr)
	a.jmp(bpfJEQ, sys32Socketcall, "eperm", "")
	a.jmp(bpfJEQ, sys32Recvmmsg, "eperm", "")
	a.jmp(bpfJEQ, sys32Sendmmsg, "eperm", "")
	a.jmp(bpfJEQ, sys32IoUringSetup, "enosys", "")
	a.jmp(bpfJGE, sys32SocketFirst, "", "allow")
	a.jmp(bpfJGT, sys32SocketLast, "allow", "eperm")

	a.label("allow")
	a.ret(retAllow)
	a.label("notify")
	a.ret(retUserNotif)
	a.label("eperm")
	a.ret(retErrno | errnoEPERM)
	a.label("enosys")
	a.ret(retErrno | errnoENOSYS)
	a.label("kill")
	a.ret(retKillProcess)
	return a.assemble()
}
