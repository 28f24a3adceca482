/*
 * socksify-preload: the fast path of socksify's name lookups, loaded into
 * dynamically linked programs with LD_PRELOAD. socksify/preload.go
 * describes the table it shares with the supervisor and why it exists.
 *
 * It replaces getaddrinfo only. A name that the supervisor's fake DNS
 * would answer with a fake address gets that address here, on the
 * program's own thread, with no DNS message and no system call that the
 * seccomp filter traps: the name goes into a slot of a table shared with
 * the supervisor (a file that socksify maps into both), and the fake
 * address is the slot's index. Everything else (numeric hosts, names that
 * are not plain host names, names in /etc/hosts, names with fewer dots than the table's mindots, the host's
 * own name, .local, AI_CANONNAME, a full table, a missing table) goes to
 * the C library's getaddrinfo unchanged, and so to the supervisor's fake
 * DNS as before. The shim only speeds lookups up: the seccomp supervisor
 * still sees and redirects every connection.
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

__attribute__((constructor)) static void init(void)
{
	real_gai = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
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
	if (!strcmp(tld, "local") || !strcmp(tld, "localhost") || !strcmp(tld, "arpa"))
		return 0;
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
	return __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == st;
}

static void slot_fill(struct slot *s, uint32_t st, const char *name, size_t nl, uint32_t now)
{
	s->len = (uint8_t)nl;
	memcpy(s->name, name, nl);
	__atomic_store_n(&s->used, now, __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, st, __ATOMIC_RELEASE);
}

/* slot_for finds name's slot, or takes one for it, and returns its index
 * in *idx; 0 if the PROBES slots where name may live all hold other names
 * in use. */
static int slot_for(const char *name, size_t nl, uint32_t *idx)
{
	uint32_t n = hdr->nslots, h = fnv1a(name, nl) % n, now = now_sec();
	for (int i = 0; i < PROBES; i++) {
		uint32_t j = (h + (uint32_t)i) % n;
		struct slot *s = &slots[j];
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if (st & 1)
			continue; /* another thread is writing it */
		if (st != 0) {
			if (slot_holds(s, st, name, nl)) {
				__atomic_store_n(&s->used, now, __ATOMIC_RELAXED);
				*idx = hdr->base + j;
				return 1;
			}
			if (now - __atomic_load_n(&s->used, __ATOMIC_RELAXED) < REUSE_AFTER)
				continue;
		}
		uint32_t next = st + 1;
		if (!__atomic_compare_exchange_n(&s->state, &st, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			continue;
		slot_fill(s, next + 1 < 2 ? 2 : next + 1, name, nl, now);
		*idx = hdr->base + j;
		return 1;
	}
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
	if ((family != AF_UNSPEC && family != AF_INET && family != AF_INET6) ||
	    (flags & (AI_NUMERICHOST | AI_CANONNAME)))
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
	 * AI_V4MAPPED) for the numeric fake address. AI_ADDRCONFIG is
	 * dropped: the address is not a real one. */
	struct addrinfo h;
	memset(&h, 0, sizeof h);
	h.ai_family = family;
	h.ai_flags = (flags | AI_NUMERICHOST) & ~AI_ADDRCONFIG;
	if (hints) {
		h.ai_socktype = hints->ai_socktype;
		h.ai_protocol = hints->ai_protocol;
	}
	return real_gai(num, service, &h, res);
}
