/*
 * A static musl test fixture for the socksify end-to-end tests: UDP with
 * sendmmsg and recvmmsg on an unconnected socket, no knowledge of SOCKS.
 *
 *   mmsg HOST PORT   sends "mmsg-0" and "mmsg-1" to HOST:PORT in one
 *                    sendmmsg, then prints "reply: DATA from ADDR PORT"
 *                    for each datagram recvmmsg returns
 *   mmsg -dns SERVER NAME
 *                    as glibc's resolver does: connects a UDP socket to
 *                    SERVER port 53 and sends the A and AAAA queries for
 *                    NAME in one sendmmsg system call without
 *                    addresses; prints
 *                    "queued: K", the answers already waiting when
 *                    sendmmsg returned, then "answers: N" once both are in
 *
 * Build: musl-gcc -static -O2 -o mmsg mmsg.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static void print_source(const struct sockaddr_storage *ss, const char *data, unsigned len)
{
	char addr[INET6_ADDRSTRLEN];
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;
		inet_ntop(AF_INET, &s->sin_addr, addr, sizeof addr);
		port = ntohs(s->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, addr, sizeof addr);
		port = ntohs(s->sin6_port);
	} else {
		snprintf(addr, sizeof addr, "family-%d", ss->ss_family);
	}
	printf("reply: %.*s from %s %d\n", (int)len, data, addr, port);
}

/* query builds a DNS query for name (dotted, no trailing dot) of type
 * qtype into b and returns its length. */
static int query(unsigned char *b, unsigned short id, const char *name, int qtype)
{
	int n = 0;
	b[n++] = id >> 8, b[n++] = id & 0xff;
	b[n++] = 1, b[n++] = 0;             /* RD */
	b[n++] = 0, b[n++] = 1;             /* QDCOUNT */
	memset(b + n, 0, 6), n += 6;
	for (const char *p = name; *p;) {
		const char *dot = strchr(p, '.');
		int l = dot ? (int)(dot - p) : (int)strlen(p);
		b[n++] = l;
		memcpy(b + n, p, l), n += l;
		p += l;
		if (*p == '.')
			p++;
	}
	b[n++] = 0;
	b[n++] = 0, b[n++] = qtype;
	b[n++] = 0, b[n++] = 1;             /* IN */
	return n;
}

static int dns(const char *server, const char *name)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(53);
	if (inet_pton(AF_INET, server, &sa.sin_addr) != 1) {
		fprintf(stderr, "mmsg: bad server %s\n", server);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (void *)&sa, sizeof sa) < 0) {
		perror("socket/connect");
		return 1;
	}
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	unsigned char q[2][300];
	struct iovec iov[2];
	struct mmsghdr out[2];
	memset(out, 0, sizeof out);
	for (int i = 0; i < 2; i++) {
		iov[i].iov_base = q[i];
		iov[i].iov_len = query(q[i], 0x1234 + i, name, i ? 28 : 1);
		out[i].msg_hdr.msg_iov = &iov[i];
		out[i].msg_hdr.msg_iovlen = 1;
	}
	/* The system call itself: musl's sendmmsg is a loop of sendmsg on
	 * 64-bit machines, and glibc's resolver makes this very call. */
	if (syscall(SYS_sendmmsg, fd, out, 2, 0) != 2) {
		perror("sendmmsg");
		return 1;
	}
	unsigned char buf[512];
	int queued = 0, got = 0;
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		queued++;
	printf("queued: %d\n", queued);
	for (got = queued; got < 2; got++) {
		if (recv(fd, buf, sizeof buf, 0) <= 0) {
			perror("recv");
			return 1;
		}
	}
	printf("answers: %d\n", got);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "-dns") == 0)
		return dns(argv[2], argv[3]);
	if (argc != 3) {
		fprintf(stderr, "usage: mmsg HOST PORT | mmsg -dns SERVER NAME\n");
		return 2;
	}
	struct addrinfo hints, *res;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_DGRAM;
	int rc = getaddrinfo(argv[1], argv[2], &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "mmsg getaddrinfo: %s\n", gai_strerror(rc));
		return 1;
	}
	int fd = socket(res->ai_family, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

	char *msgs[2] = {"mmsg-0", "mmsg-1"};
	struct iovec iov[2];
	struct mmsghdr out[2];
	memset(out, 0, sizeof out);
	for (int i = 0; i < 2; i++) {
		iov[i].iov_base = msgs[i];
		iov[i].iov_len = strlen(msgs[i]);
		out[i].msg_hdr.msg_name = res->ai_addr;
		out[i].msg_hdr.msg_namelen = res->ai_addrlen;
		out[i].msg_hdr.msg_iov = &iov[i];
		out[i].msg_hdr.msg_iovlen = 1;
	}
	int n = sendmmsg(fd, out, 2, 0);
	if (n != 2) {
		perror("sendmmsg");
		return 1;
	}
	printf("sent: %d (%u, %u bytes)\n", n, out[0].msg_len, out[1].msg_len);

	for (int got = 0; got < 2;) {
		char buf[2][256];
		struct iovec riov[2];
		struct sockaddr_storage from[2];
		struct mmsghdr in[2];
		memset(in, 0, sizeof in);
		for (int i = 0; i < 2; i++) {
			riov[i].iov_base = buf[i];
			riov[i].iov_len = sizeof buf[i];
			in[i].msg_hdr.msg_name = &from[i];
			in[i].msg_hdr.msg_namelen = sizeof from[i];
			in[i].msg_hdr.msg_iov = &riov[i];
			in[i].msg_hdr.msg_iovlen = 1;
		}
		int r = recvmmsg(fd, in, 2, 0, NULL);
		if (r <= 0) {
			perror("recvmmsg");
			return 1;
		}
		for (int i = 0; i < r; i++)
			print_source(&from[i], buf[i], in[i].msg_len);
		got += r;
	}
	freeaddrinfo(res);
	close(fd);
	return 0;
}
