/*
 * socksify-preload: the fast path of socksify's name lookups, loaded into
 * dynamically linked programs with LD_PRELOAD. socksify/preload.go
 * describes the table it shares with the supervisor and why it exists.
 *
 * It replaces getaddrinfo, and connect and getpeername for the sockets
 * connected to fake addresses. A name that the supervisor's fake DNS
 * would answer with a fake address gets that address here, on the
 * program's own thread, with no DNS message and no system call that the
 * seccomp filter traps: the name goes into a slot of a table shared with
 * the supervisor (a file that socksify maps into both), and the fake
 * address is the slot's index. Everything else (numeric hosts, names that
 * are not plain host names, names in /etc/hosts, names with fewer dots
 * than the table's mindots, the host's own name, localhost, .local and
 * .arpa names, AI_CANONNAME and AI_ADDRCONFIG, LOCALDOMAIN or RES_OPTIONS
 * set, a full table, a missing table) goes to the C library's
 * getaddrinfo unchanged, and so to the supervisor's fake DNS as before. The shim only speeds lookups up: the seccomp supervisor
 * still sees and redirects every connection.
 *
 * A program that connected to a fake address usually asks getpeername
 * for it (curl twice), and the supervisor, which connected the socket to
 * the gateway, traps that call to report the fake address. connect here
 * notes what a successful connect to a fake address asked for, with the
 * socket's inode, and getpeername answers that while the descriptor is
 * still the same socket (fstat, which is not trapped), without trapping;
 * any other getpeername is the C library's (and the supervisor's).
 *
 * Build with build.sh; the result is committed and embedded in package
 * socksify, and preload_test.go checks that it was built from this file.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* stat and fstat as system calls: the C library's symbols for them are
 * new in glibc 2.33, and the kernel's struct stat is glibc's on x86_64. */
static int xstat(const char *path, struct stat *st) { return (int)syscall(SYS_stat, path, st); }
static int xfstat(int fd, struct stat *st) { return (int)syscall(SYS_fstat, fd, st); }

/* Bind dlsym's oldest version, so that the library loads with any glibc
 * since 2.2.5 (dlsym moved into libc in 2.34 under a new version) and
 * with musl, which ignores versions. */
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");

#ifndef SOCKSIFY_PRELOAD_SRC
#define SOCKSIFY_PRELOAD_SRC "unknown"
#endif
/* The SHA-256 of this file when the library was built (build.sh). */
__attribute__((used)) static const char source_id[] = "socksify-preload-source:" SOCKSIFY_PRELOAD_SRC;

/* The shared table; socksify/preload.go has the same layout. */
#define MAP_MAGIC 0x36736b73u /* "sks6" */
#define MAP_VERSION 1u
#define HDR_SIZE 64
#define SLOT_SIZE 264
#define NAME_MAX_LEN 253
#define REUSE_AFTER 600 /* seconds a slot must go unused before another name takes it */
#define PROBES 8
#define FLAG_PREFER6 1u
#define HOSTS_MAX (1 << 20)

struct hdr {
	uint32_t magic, version, nslots, base, flags, mindots;
};

struct slot {
	uint32_t state; /* 0 empty; odd: being written; even >= 2: holds a name */
	uint32_t used;  /* CLOCK_MONOTONIC seconds of the last lookup or connect */
	uint8_t len;
	char name[255];
};

_Static_assert(sizeof(struct slot) == SLOT_SIZE, "slot size");

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static const struct hdr *hdr;
static struct slot *slots;
static gai_fn real_gai;
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*getpeername_fn)(int, struct sockaddr *, socklen_t *);
static connect_fn real_connect;
static getpeername_fn real_getpeername;

__attribute__((constructor)) static void init(void)
{
	real_gai = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
	real_getpeername = (getpeername_fn)dlsym(RTLD_NEXT, "getpeername");
	const char *path = getenv("SOCKSIFY_PRELOAD_MAP");
	if (real_gai == NULL || path == NULL || *path == 0)
		return;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (xfstat(fd, &st) != 0 || st.st_size < HDR_SIZE) {
		close(fd);
		return;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return;
	const struct hdr *h = m;
	if (h->magic != MAP_MAGIC || h->version != MAP_VERSION || h->nslots == 0 ||
	    (uint64_t)HDR_SIZE + (uint64_t)h->nslots * SLOT_SIZE > (uint64_t)st.st_size) {
		munmap(m, (size_t)st.st_size);
		return;
	}
	slots = (struct slot *)((char *)m + HDR_SIZE);
	hdr = h;
}

static uint32_t now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)ts.tv_sec;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\r'; }

/* /etc/hosts, read again when its inode, size or mtime changes. A
 * snapshot is never changed once published, and is swapped in with an
 * atomic pointer, so that lookups take no lock (none is held across a
 * fork either). A replaced snapshot is not freed, since another thread
 * may still be reading it: one buffer leaks per change of the file. */
struct hosts {
	struct stat st;
	size_t len;
	char buf[];
};
static struct hosts *hosts_cur;

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static struct hosts *load_hosts(const struct stat *st)
{
	if (st->st_size < 0 || st->st_size > HOSTS_MAX)
		return NULL;
	int fd = open("/etc/hosts", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct hosts *h = malloc(sizeof *h + (size_t)st->st_size);
	if (h == NULL) {
		close(fd);
		return NULL;
	}
	size_t n = 0;
	while (n < (size_t)st->st_size) {
		ssize_t r = read(fd, h->buf + n, (size_t)st->st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	h->st = *st;
	h->len = n;
	return h;
}

/* in_hosts reports whether the lowercase name is a host name or alias in
 * /etc/hosts, or whether the file could not be read (the C library then
 * decides). */
static int in_hosts(const char *name, size_t nl)
{
	struct stat st;
	if (xstat("/etc/hosts", &st) != 0)
		return errno != ENOENT;
	struct hosts *h = __atomic_load_n(&hosts_cur, __ATOMIC_ACQUIRE);
	if (h == NULL || !same_file(&st, &h->st)) {
		h = load_hosts(&st);
		if (h == NULL)
			return 1;
		__atomic_store_n(&hosts_cur, h, __ATOMIC_RELEASE);
	}
	const char *p = h->buf, *end = h->buf + h->len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		const char *hash = memchr(p, '#', (size_t)(eol - p));
		const char *stop = hash ? hash : eol;
		int field = 0;
		while (p < stop) {
			while (p < stop && is_space((unsigned char)*p))
				p++;
			const char *w = p;
			while (p < stop && !is_space((unsigned char)*p))
				p++;
			if (p == w)
				break;
			if (field++ == 0)
				continue; /* the address */
			size_t wl = (size_t)(p - w);
			if (wl > 0 && w[wl - 1] == '.')
				wl--;
			if (wl == nl) {
				size_t i = 0;
				while (i < nl && lower((unsigned char)w[i]) == name[i])
					i++;
				if (i == nl)
					return 1;
			}
		}
		p = eol + 1;
	}
	return 0;
}

/* fakeable copies node, lowercased and without a final dot, to name, and
 * reports whether the supervisor's fake DNS would give it a fake address
 * that this shim may give instead. */
static int fakeable(const char *node, char *name, size_t *nlp)
{
	size_t l = strnlen(node, NAME_MAX_LEN + 2);
	int absolute = 0;
	if (l > 0 && node[l - 1] == '.') {
		absolute = 1;
		l--;
	}
	if (l == 0 || l > NAME_MAX_LEN)
		return 0;
	unsigned dots = 0, label = 0;
	size_t last = 0; /* start of the last label */
	/* Host name syntax (RFC 952, RFC 1123; the C library's res_hnok):
	 * labels of letters, digits and inner hyphens. Anything else, the
	 * underscore included, is left to the C library. */
	for (size_t i = 0; i < l; i++) {
		int c = lower((unsigned char)node[i]);
		if (c == '.') {
			if (label == 0 || name[i - 1] == '-')
				return 0;
			dots++;
			label = 0;
			last = i + 1;
			name[i] = '.';
			continue;
		}
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && (c != '-' || label == 0))
			return 0;
		if (++label > 63)
			return 0;
		name[i] = (char)c;
	}
	if (label == 0 || dots == 0 || name[l - 1] == '-')
		return 0;
	name[l] = 0;
	/* A relative name with fewer dots than ndots goes through the search
	 * list first: the C library's resolver decides what is asked. */
	if (!absolute && dots < hdr->mindots)
		return 0;
	struct in_addr a4;
	if (inet_aton(name, &a4))
		return 0; /* "10.1", "0x7f.1": numeric for the C library */
	const char *tld = name + last;
	if (!strcmp(tld, "local") || !strcmp(tld, "arpa"))
		return 0;
	/* localhost, *.localhost, and nss-myhostname's localhost.localdomain
	 * and *.localhost.localdomain: any label "localhost". */
	for (const char *q = name; q != NULL; q = strchr(q, '.')) {
		if (*q == '.')
			q++;
		if (!strncmp(q, "localhost", 9) && (q[9] == '.' || q[9] == 0))
			return 0;
	}
	char host[256];
	if (gethostname(host, sizeof host) == 0) {
		host[sizeof host - 1] = 0;
		size_t hl = strlen(host), i = 0;
		while (i < hl && i < l && lower((unsigned char)host[i]) == name[i])
			i++;
		if (i == hl && i == l)
			return 0;
	}
	if (in_hosts(name, l))
		return 0;
	*nlp = l;
	return 1;
}

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static int slot_holds(struct slot *s, uint32_t st, const char *name, size_t nl)
{
	if (s->len != nl || memcmp(s->name, name, nl) != 0)
		return 0;
	return __atomic_load_n(&s->state, __ATOMIC_SEQ_CST) == st;
}

/* slot_for finds name's slot, or takes one for it, and returns its index
 * in *idx; 0 if the PROBES slots where name may live all hold other names
 * in use.
 *
 * A slot is taken from another name only if that name has gone unused
 * for REUSE_AFTER. The finder stores used and then checks that the state
 * is unchanged; the taker changes the state (CAS to odd) and then checks
 * that used is still old, and backs out if not. Both in sequentially
 * consistent order, so at least one of them sees the other: a name is
 * never given an address that another name takes at the same time. */
static int slot_for(const char *name, size_t nl, uint32_t *idx)
{
	uint32_t n = hdr->nslots, h = fnv1a(name, nl) % n, now = now_sec();
	for (int i = 0; i < PROBES; i++) {
		uint32_t j = (h + (uint32_t)i) % n;
		struct slot *s = &slots[j];
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_SEQ_CST);
		if (st == 0 || (st & 1) || !slot_holds(s, st, name, nl))
			continue;
		__atomic_store_n(&s->used, now, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) == st) {
			*idx = hdr->base + j;
			return 1;
		}
	}
	for (int i = 0; i < PROBES; i++) {
		uint32_t j = (h + (uint32_t)i) % n;
		struct slot *s = &slots[j];
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_SEQ_CST);
		if (st & 1)
			continue; /* another thread is writing it */
		if (st != 0 && now - __atomic_load_n(&s->used, __ATOMIC_SEQ_CST) < REUSE_AFTER)
			continue;
		uint32_t mine = st + 1;
		if (!__atomic_compare_exchange_n(&s->state, &st, mine, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			continue;
		if (st != 0 && now - __atomic_load_n(&s->used, __ATOMIC_SEQ_CST) < REUSE_AFTER) {
			__atomic_store_n(&s->state, st, __ATOMIC_SEQ_CST); /* its name was just used: back out */
			continue;
		}
		s->len = (uint8_t)nl;
		memcpy(s->name, name, nl);
		__atomic_store_n(&s->used, now, __ATOMIC_SEQ_CST);
		__atomic_store_n(&s->state, mine + 1 < 2 ? 2 : mine + 1, __ATOMIC_SEQ_CST);
		*idx = hdr->base + j;
		return 1;
	}
	return 0;
}

/* The sockets connected to fake addresses, by descriptor. seq is odd
 * while an entry is written; an entry counts only while its descriptor is
 * the socket with inode ino. */
#define PEERS 1024
struct peer {
	uint32_t seq;
	uint32_t len;
	uint64_t ino;
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa;
};
static struct peer peers[PEERS];


/* fake_sockaddr copies sa, if it is a fake address (198.18.0.0/15,
 * fd00:5eed::/64, or IPv4-mapped fake) of a usable length, as the
 * supervisor reports it (no flow label, no scope), to out. */
static socklen_t fake_sockaddr(const struct sockaddr *sa, socklen_t len, struct peer *out)
{
	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
		return 0;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof in);
		if ((ntohl(in.sin_addr.s_addr) & 0xfffe0000u) != 0xc6120000u)
			return 0;
		memset(&out->sa, 0, sizeof out->sa);
		out->sa.in.sin_family = AF_INET;
		out->sa.in.sin_port = in.sin_port;
		out->sa.in.sin_addr = in.sin_addr;
		return sizeof(struct sockaddr_in);
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof in6);
		const uint8_t *b = in6.sin6_addr.s6_addr;
		static const uint8_t ula[8] = {0xfd, 0x00, 0x5e, 0xed, 0, 0, 0, 0};
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		int fake = memcmp(b, ula, 8) == 0 ||
			   (memcmp(b, mapped, 12) == 0 && b[12] == 198 && (b[13] & 0xfe) == 18);
		if (!fake)
			return 0;
		memset(&out->sa, 0, sizeof out->sa);
		out->sa.in6.sin6_family = AF_INET6;
		out->sa.in6.sin6_port = in6.sin6_port;
		out->sa.in6.sin6_addr = in6.sin6_addr;
		return sizeof(struct sockaddr_in6);
	}
	return 0;
}

static uint64_t fd_inode(int fd)
{
	struct stat st;
	if (xfstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	return (uint64_t)st.st_ino;
}

static void peer_set(int fd, const struct peer *p, uint64_t ino)
{
	struct peer *e = &peers[fd];
	uint32_t seq = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&e->seq, seq | 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	e->len = p->len;
	e->sa = p->sa;
	e->ino = ino;
	__atomic_store_n(&e->seq, (seq | 1) + 1, __ATOMIC_RELEASE);
}

__attribute__((visibility("default"))) int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (real_connect == NULL) {
		real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
		if (real_connect == NULL) {
			errno = ENOSYS;
			return -1;
		}
	}
	if (hdr == NULL || fd < 0 || fd >= PEERS)
		return real_connect(fd, sa, len);
	int saved_errno = errno;
	struct peer p = {0};
	p.len = fake_sockaddr(sa, len, &p);
	if (peers[fd].ino != 0)
		peer_set(fd, &(struct peer){0}, 0); /* connected anew, or disconnected */
	errno = saved_errno;
	int r = real_connect(fd, sa, len);
	if (r == 0 && p.len != 0) {
		/* TCP only, and an address of the socket's own family: a TCP
		 * socket is not connected again elsewhere (but through
		 * AF_UNSPEC, which passes here), and the supervisor reports an
		 * IPv4 destination of a dual-stack socket IPv4-mapped. */
		saved_errno = errno;
		int type = 0, domain = 0;
		socklen_t tl = sizeof type, dl = sizeof domain;
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM &&
		    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0 && domain == sa->sa_family) {
			uint64_t ino = fd_inode(fd);
			if (ino != 0)
				peer_set(fd, &p, ino);
		}
		errno = saved_errno;
	}
	return r;
}

__attribute__((visibility("default"))) int getpeername(int fd, struct sockaddr *restrict sa, socklen_t *restrict len)
{
	if (real_getpeername == NULL) {
		real_getpeername = (getpeername_fn)dlsym(RTLD_NEXT, "getpeername");
		if (real_getpeername == NULL) {
			errno = ENOSYS;
			return -1;
		}
	}
	if (hdr == NULL || fd < 0 || fd >= PEERS || sa == NULL || len == NULL || (int)*len < 0)
		return real_getpeername(fd, sa, len);
	struct peer *e = &peers[fd];
	uint32_t seq = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
	if (seq & 1)
		return real_getpeername(fd, sa, len);
	struct peer p;
	p.len = e->len;
	p.sa = e->sa;
	p.ino = e->ino;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != seq || p.ino == 0 || p.len == 0)
		return real_getpeername(fd, sa, len);
	int saved_errno = errno;
	uint64_t ino = fd_inode(fd);
	errno = saved_errno;
	if (ino != p.ino)
		return real_getpeername(fd, sa, len);
	socklen_t n = *len < p.len ? *len : p.len;
	memcpy(sa, &p.sa, n);
	*len = p.len;
	return 0;
}

__attribute__((visibility("default"))) int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
	if (real_gai == NULL) {
		real_gai = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
		if (real_gai == NULL)
			return EAI_SYSTEM;
	}
	if (hdr == NULL || node == NULL)
		return real_gai(node, service, hints, res);
	int saved_errno = errno; /* the checks below must not leave theirs */
	int family = hints ? hints->ai_family : AF_UNSPEC;
	int flags = hints ? hints->ai_flags : (AI_V4MAPPED | AI_ADDRCONFIG);
	/* AI_ADDRCONFIG asks the C library to look at the host's addresses
	 * first; LOCALDOMAIN and RES_OPTIONS change its search list and
	 * ndots from what the supervisor read at start. */
	if ((family != AF_UNSPEC && family != AF_INET && family != AF_INET6) ||
	    (flags & (AI_NUMERICHOST | AI_CANONNAME | AI_ADDRCONFIG)) ||
	    getenv("LOCALDOMAIN") != NULL || getenv("RES_OPTIONS") != NULL)
		return real_gai(node, service, hints, res);
	char name[NAME_MAX_LEN + 1];
	size_t nl;
	uint32_t idx;
	if (!fakeable(node, name, &nl) || !slot_for(name, nl, &idx)) {
		errno = saved_errno;
		return real_gai(node, service, hints, res);
	}
	errno = saved_errno;
	if (family == AF_UNSPEC)
		family = (hdr->flags & FLAG_PREFER6) ? AF_INET6 : AF_INET;
	char num[INET6_ADDRSTRLEN];
	if (family == AF_INET) {
		struct in_addr a = {htonl((198u << 24 | 18u << 16) + idx)};
		inet_ntop(AF_INET, &a, num, sizeof num);
	} else {
		struct in6_addr a;
		memset(&a, 0, sizeof a);
		a.s6_addr[0] = 0xfd;
		a.s6_addr[2] = 0x5e;
		a.s6_addr[3] = 0xed;
		a.s6_addr[13] = (uint8_t)(idx >> 16);
		a.s6_addr[14] = (uint8_t)(idx >> 8);
		a.s6_addr[15] = (uint8_t)idx;
		inet_ntop(AF_INET6, &a, num, sizeof num);
	}
	/* The C library does the rest (service names, socket types,
	 * AI_V4MAPPED) for the numeric fake address. */
	struct addrinfo h;
	memset(&h, 0, sizeof h);
	h.ai_family = family;
	h.ai_flags = flags | AI_NUMERICHOST;
	if (hints) {
		h.ai_socktype = hints->ai_socktype;
		h.ai_protocol = hints->ai_protocol;
	}
	return real_gai(num, service, &h, res);
}
