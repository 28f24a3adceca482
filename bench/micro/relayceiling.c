// relayceiling: the least a SOCKS relay can do, to measure what any relay
// reaches on this machine. It answers a no-auth SOCKS5 CONNECT to an IPv4
// address, connects, replies, and then moves the bytes in one of three ways,
// chosen by its second argument:
//
//   splice   a thread per direction, splice(2) through a 1 MiB pipe
//   rw       a thread per direction, read(2)/write(2) with a 256 KiB buffer
//   sockmap  no user space at all: both sockets go into a BPF SOCKMAP whose
//            stream-verdict program sends each received skb out of the other
//            socket (needs root; one session at a time, for bulk1 only)
//
// No limits, no policy, no logging, no timeouts: it is a ceiling, not a
// server. Only for bench/micro/ceiling.sh, on loopback.
//
//     cc -O2 -pthread -o relayceiling bench/micro/relayceiling.c
//     ./relayceiling PORT splice|rw|sockmap
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { SPLICE, RW, SOCKMAP };
static int mode;
static int port;
static int smap = -1; // the SOCKMAP (sockmap mode)

struct dir {
	int from, to;
};

static int readn(int fd, unsigned char *b, int n) {
	for (int got = 0; got < n;) {
		int r = read(fd, b + got, n - got);
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

static void *pump(void *arg) {
	struct dir *d = arg;
	if (mode == SPLICE) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) == 0) {
			fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
			for (;;) {
				ssize_t n = splice(d->from, NULL, p[1], NULL, 1 << 20, SPLICE_F_MOVE);
				if (n <= 0)
					break;
				while (n > 0) {
					ssize_t m = splice(p[0], NULL, d->to, NULL, n, SPLICE_F_MOVE);
					if (m <= 0)
						goto out;
					n -= m;
				}
			}
		out:
			close(p[0]);
			close(p[1]);
		}
	} else {
		char *buf = malloc(256 << 10);
		for (;;) {
			ssize_t n = read(d->from, buf, 256 << 10);
			if (n <= 0)
				break;
			for (char *q = buf; n > 0;) {
				ssize_t m = write(d->to, q, n);
				if (m <= 0)
					goto out2;
				n -= m;
				q += m;
			}
		}
	out2:
		free(buf);
	}
	shutdown(d->to, SHUT_WR);
	return NULL;
}

static long bpf(int cmd, union bpf_attr *a) { return syscall(SYS_bpf, cmd, a, sizeof *a); }

#define INS(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

// sockmapInit makes the SOCKMAP (slot 0: the client's socket, slot 1: the
// target's) and attaches a verdict program that redirects what arrives on
// the socket whose local port is the listening port to slot 1, and the
// rest to slot 0.
static int sockmapInit(void) {
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = BPF_MAP_TYPE_SOCKMAP;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 2;
	smap = bpf(BPF_MAP_CREATE, &a);
	if (smap < 0)
		return perror("relayceiling: BPF_MAP_CREATE"), -1;
	struct bpf_insn prog[] = {
	    INS(BPF_LDX | BPF_MEM | BPF_W, 2, 1, offsetof(struct __sk_buff, local_port), 0),
	    INS(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 0),
	    INS(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 1, port),
	    INS(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 1),
	    INS(BPF_LD | BPF_DW | BPF_IMM, 2, BPF_PSEUDO_MAP_FD, 0, smap),
	    INS(0, 0, 0, 0, 0),
	    INS(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, 0), // flags 0: the other socket's egress
	    INS(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_redirect_map),
	    INS(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	static char log[16384];
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_SK_SKB;
	a.insns = (unsigned long)prog;
	a.insn_cnt = sizeof prog / sizeof prog[0];
	a.license = (unsigned long)"BSD";
	a.log_buf = (unsigned long)log;
	a.log_size = sizeof log;
	a.log_level = 1;
	int pfd = bpf(BPF_PROG_LOAD, &a);
	if (pfd < 0)
		return perror("relayceiling: BPF_PROG_LOAD"), fputs(log, stderr), -1;
	memset(&a, 0, sizeof a);
	a.target_fd = smap;
	a.attach_bpf_fd = pfd;
	a.attach_type = BPF_SK_SKB_STREAM_VERDICT;
	if (bpf(BPF_PROG_ATTACH, &a))
		return perror("relayceiling: BPF_PROG_ATTACH"), -1;
	return 0;
}

// sockmapRun puts the session's sockets in the map and waits for the
// client's end of stream; the kernel moves the bytes meanwhile.
static void sockmapRun(int c, int t) {
	__u32 k[2] = {0, 1}, v[2] = {c, t};
	for (int i = 0; i < 2; i++) {
		union bpf_attr a;
		memset(&a, 0, sizeof a);
		a.map_fd = smap;
		a.key = (unsigned long)&k[i];
		a.value = (unsigned long)&v[i];
		if (bpf(BPF_MAP_UPDATE_ELEM, &a))
			perror("relayceiling: BPF_MAP_UPDATE_ELEM");
	}
	write(c, "\x05\x00\x00\x01\0\0\0\0\0\0", 10);
	struct pollfd pf = {.fd = c, .events = POLLRDHUP};
	while (poll(&pf, 1, -1) >= 0 && !(pf.revents & (POLLRDHUP | POLLHUP | POLLERR)))
		;
	shutdown(t, SHUT_WR);
}

static void *serve(void *arg) {
	int c = (int)(long)arg, one = 1;
	unsigned char b[16];
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (readn(c, b, 2) || readn(c, b + 2, b[1]))
		goto done;
	write(c, "\x05\x00", 2);
	if (readn(c, b, 10) || b[1] != 1 || b[3] != 1)
		goto done;
	struct sockaddr_in ta = {.sin_family = AF_INET};
	memcpy(&ta.sin_addr, b + 4, 4);
	memcpy(&ta.sin_port, b + 8, 2);
	int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(t, (void *)&ta, sizeof ta)) {
		write(c, "\x05\x05\x00\x01\0\0\0\0\0\0", 10);
		close(t);
		goto done;
	}
	if (mode == SOCKMAP) {
		sockmapRun(c, t);
	} else {
		write(c, "\x05\x00\x00\x01\0\0\0\0\0\0", 10);
		struct dir up = {c, t}, down = {t, c};
		pthread_t th;
		pthread_create(&th, NULL, pump, &down);
		pump(&up);
		pthread_join(th, NULL);
	}
	close(t);
done:
	close(c);
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 3)
		return fprintf(stderr, "usage: relayceiling PORT splice|rw|sockmap\n"), 2;
	port = atoi(argv[1]);
	if (!strcmp(argv[2], "splice"))
		mode = SPLICE;
	else if (!strcmp(argv[2], "rw"))
		mode = RW;
	else if (!strcmp(argv[2], "sockmap"))
		mode = SOCKMAP;
	else
		return fprintf(stderr, "relayceiling: unknown mode %s\n", argv[2]), 2;
	if (mode == SOCKMAP && sockmapInit())
		return 1;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (void *)&sa, sizeof sa) || listen(l, 1024))
		return perror("relayceiling: listen"), 1;
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(1000);
			continue;
		}
		if (mode == SOCKMAP) { // one session at a time
			serve((void *)(long)c);
			continue;
		}
		pthread_t th;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, serve, (void *)(long)c))
			close(c);
	}
}
