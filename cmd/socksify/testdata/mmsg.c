/*
 * A static musl test fixture for the socksify end-to-end tests: UDP with
 * sendmmsg and recvmmsg on an unconnected socket, no knowledge of SOCKS.
 *
 *   mmsg HOST PORT   sends "mmsg-0" and "mmsg-1" to HOST:PORT in one
 *                    sendmmsg, then prints "reply: DATA from ADDR PORT"
 *                    for each datagram recvmmsg returns
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

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mmsg HOST PORT\n");
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
