package socksify

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// runBPF is a classic BPF interpreter for the instructions the filter
// uses (LD W ABS, ALU AND K, JMP JEQ/JGT/JGE/JSET K, RET K), run on a
// struct seccomp_data. It fails on anything else, on out-of-range loads
// and jumps, and on falling off the end, as the kernel's checker would.
func runBPF(t *testing.T, prog []bpfInsn, nr int32, arch uint32, args [6]uint64) uint32 {
	t.Helper()
	var data [64]byte
	binary.LittleEndian.PutUint32(data[0:], uint32(nr))
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLD | bpfW | bpfABS:
			if in.K%4 != 0 || in.K+4 > uint32(len(data)) {
				t.Fatalf("pc %d: load at %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case bpfALU | bpfAND | bpfK:
			acc &= in.K
		case bpfRET | bpfK:
			return in.K
		case bpfJMP | bpfJEQ | bpfK, bpfJMP | bpfJGT | bpfK, bpfJMP | bpfJGE | bpfK, bpfJMP | bpfJSET | bpfK:
			var cond bool
			switch in.Code &^ (bpfJMP | bpfK) {
			case bpfJEQ:
				cond = acc == in.K
			case bpfJGT:
				cond = acc > in.K
			case bpfJGE:
				cond = acc >= in.K
			case bpfJSET:
				cond = acc&in.K != 0
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
			if pc+1 >= len(prog) {
				t.Fatalf("pc %d: jump past the end", pc)
			}
		default:
			t.Fatalf("pc %d: opcode %#x not expected in the filter", pc, in.Code)
		}
	}
	t.Fatal("fell off the end of the program")
	return 0
}

func TestFilter(t *testing.T) {
	prog, err := buildFilter(filterOpts{})
	if err != nil {
		t.Fatal(err)
	}
	progG, err := buildFilter(filterOpts{getsockname: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d instructions", len(prog))
	if last := prog[len(prog)-1]; last.Code != bpfRET|bpfK {
		t.Errorf("the program does not end with RET: %+v", last)
	}
	const (
		allow  = retAllow
		notify = retUserNotif
		eperm  = retErrno | errnoEPERM
		enosys = retErrno | errnoENOSYS
		kill   = retKillProcess
		x86    = auditArchX86_64
		i386   = auditArchI386
	)
	const sockNonblock, sockCloexec = 0x800, 0x80000
	ptr := uint64(0x7ffc12345678)
	tests := []struct {
		name string
		nr   int32
		arch uint32
		args [6]uint64
		want uint32
	}{
		{"read", 0, x86, [6]uint64{}, allow},
		{"write", 1, x86, [6]uint64{}, allow},
		{"close", 3, x86, [6]uint64{}, allow},
		{"execve", 59, x86, [6]uint64{}, allow},
		{"connect", sysConnect, x86, [6]uint64{3, ptr, 16}, notify},
		{"sendmsg", sysSendmsg, x86, [6]uint64{}, notify},
		{"sendmmsg", sysSendmmsg, x86, [6]uint64{}, notify},
		{"recvmsg", sysRecvmsg, x86, [6]uint64{}, notify},
		{"recvmmsg", sysRecvmmsg, x86, [6]uint64{}, notify},
		{"getpeername", sysGetpeername, x86, [6]uint64{}, notify},
		{"getsockname", sysGetsockname, x86, [6]uint64{}, allow},
		{"bind", sysBind, x86, [6]uint64{}, notify},
		{"listen", sysListen, x86, [6]uint64{}, notify},
		{"accept", sysAccept, x86, [6]uint64{}, notify},
		{"accept4", sysAccept4, x86, [6]uint64{}, notify},
		{"sendto NULL address", sysSendto, x86, [6]uint64{3, ptr, 10, 0, 0, 0}, allow},
		{"sendto address", sysSendto, x86, [6]uint64{3, ptr, 10, 0, ptr, 16}, notify},
		{"sendto address above 4G only", sysSendto, x86, [6]uint64{3, ptr, 10, 0, 1 << 32, 16}, notify},
		{"sendto address below 4G", sysSendto, x86, [6]uint64{3, ptr, 10, 0, 0x1000, 16}, notify},
		{"recvfrom NULL address", sysRecvfrom, x86, [6]uint64{3, ptr, 10, 0, 0, 0}, allow},
		{"recvfrom address", sysRecvfrom, x86, [6]uint64{3, ptr, 10, 0, ptr, ptr + 64}, notify},
		{"socket tcp", sysSocket, x86, [6]uint64{afInet, 1 | sockCloexec, 0}, allow},
		{"socket udp6", sysSocket, x86, [6]uint64{afInet6, 2 | sockNonblock, 0}, allow},
		{"socket unix", sysSocket, x86, [6]uint64{afUnix, 1, 0}, allow},
		{"socket raw", sysSocket, x86, [6]uint64{afInet, sockRaw, 1}, eperm},
		{"socket raw nonblock cloexec", sysSocket, x86, [6]uint64{afInet, sockRaw | sockNonblock | sockCloexec, 1}, eperm},
		{"socket raw6", sysSocket, x86, [6]uint64{afInet6, sockRaw, 58}, eperm},
		{"socket packet", sysSocket, x86, [6]uint64{afPacket, 2, 0x300}, eperm},
		{"socket packet raw", sysSocket, x86, [6]uint64{afPacket, sockRaw, 0x300}, eperm},
		{"socket netlink raw", sysSocket, x86, [6]uint64{16, sockRaw | sockCloexec, 0}, allow},
		{"socket SOCK_PACKET", sysSocket, x86, [6]uint64{afInet, sockPacket, 0x300}, eperm},
		{"socket sctp", sysSocket, x86, [6]uint64{afInet, 1, protoSCTP}, eperm},
		{"socket sctp6 seqpacket", sysSocket, x86, [6]uint64{afInet6, 5 | sockCloexec, protoSCTP}, eperm},
		{"socket tcp explicit protocol", sysSocket, x86, [6]uint64{afInet, 1, 6}, allow},
		{"socket udp explicit protocol", sysSocket, x86, [6]uint64{afInet6, 2, 17}, allow},
		{"socket rds", sysSocket, x86, [6]uint64{afRDS, 5, 0}, eperm},
		{"socket high bits of domain ignored", sysSocket, x86, [6]uint64{1<<32 | afPacket, 2, 0}, eperm},
		{"io_uring_setup", sysIoUringSetup, x86, [6]uint64{}, enosys},
		{"x32 read", x32SyscallBit | 0, x86, [6]uint64{}, kill},
		{"x32 connect", x32SyscallBit | sysConnect, x86, [6]uint64{}, kill},
		{"i386 write", 4, i386, [6]uint64{}, allow},
		{"i386 exit_group", 252, i386, [6]uint64{}, allow},
		{"i386 socketcall", sys32Socketcall, i386, [6]uint64{}, eperm},
		{"i386 socket", sys32SocketFirst, i386, [6]uint64{}, eperm},
		{"i386 connect", 362, i386, [6]uint64{}, eperm},
		{"i386 shutdown", sys32SocketLast, i386, [6]uint64{}, eperm},
		{"i386 after the socket calls", sys32SocketLast + 1, i386, [6]uint64{}, allow},
		{"i386 sendmmsg", sys32Sendmmsg, i386, [6]uint64{}, eperm},
		{"i386 recvmmsg", sys32Recvmmsg, i386, [6]uint64{}, eperm},
		{"i386 io_uring_setup", sys32IoUringSetup, i386, [6]uint64{}, enosys},
		{"i386 nr 42 (pipe) is not connect", 42, i386, [6]uint64{}, allow},
		{"arm64", 203, 0xc00000b7, [6]uint64{}, kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runBPF(t, prog, tt.nr, tt.arch, tt.args); got != tt.want {
				t.Errorf("nr %d arch %#x args %x: got %#x, want %#x", tt.nr, tt.arch, tt.args, got, tt.want)
			}
			// With getsockname trapped, only getsockname changes.
			want := tt.want
			if tt.nr == sysGetsockname && tt.arch == x86 {
				want = notify
			}
			if got := runBPF(t, progG, tt.nr, tt.arch, tt.args); got != want {
				t.Errorf("getsockname trapped: nr %d arch %#x args %x: got %#x, want %#x", tt.nr, tt.arch, tt.args, got, want)
			}
		})
	}
	for _, s := range []string{"-", "g"} {
		if o, err := parseFilterOpts(s); err != nil || o.String() != s {
			t.Errorf("filter options %q: %v, %v", s, o, err)
		}
	}
	if _, err := parseFilterOpts("x"); err == nil {
		t.Error("bad filter options accepted")
	}
}

func TestAsm(t *testing.T) {
	a := newAsm()
	a.ld(offNr)
	a.jmp(bpfJEQ, 1, "yes", "")
	a.ret(retAllow)
	a.label("yes")
	a.ret(retKillProcess)
	prog, err := a.assemble()
	if err != nil {
		t.Fatal(err)
	}
	if prog[1].Jt != 1 || prog[1].Jf != 0 {
		t.Errorf("jump offsets %d/%d, want 1/0", prog[1].Jt, prog[1].Jf)
	}

	a = newAsm()
	a.jmp(bpfJEQ, 1, "nowhere", "")
	a.ret(retAllow)
	if _, err := a.assemble(); err == nil {
		t.Error("an undefined label assembled")
	}

	a = newAsm()
	a.jmp(bpfJEQ, 1, "far", "")
	for range 300 {
		a.ret(retAllow)
	}
	a.label("far")
	a.ret(retAllow)
	if _, err := a.assemble(); err == nil {
		t.Error("a jump over 255 instructions assembled")
	}
}

// Every trapped or refused x86_64 call is named once in the filter.
func TestFilterSyscallsDistinct(t *testing.T) {
	seen := map[uint32]bool{}
	for _, nr := range append(append([]uint32(nil), notifiedSyscalls...), sysSendto, sysRecvfrom, sysSocket, sysIoUringSetup, sysGetsockname) {
		if seen[nr] {
			t.Errorf("syscall %d listed twice", nr)
		}
		seen[nr] = true
	}
	if len(seen) != 15 {
		t.Errorf("%d syscalls, want 15: %v", len(seen), fmt.Sprint(seen))
	}
}
