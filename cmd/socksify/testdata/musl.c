/*
 * A static musl test fixture for the socksify end-to-end tests:
 * getaddrinfo + connect + an HTTP/1.0 GET, with no knowledge of SOCKS.
 * musl's resolver checks the source address of DNS replies, so this
 * guards socksify's recvfrom source virtualisation.
 *
 *   musl HOST PORT   prints "resolved HOST -> ADDR", "getpeername=ADDR"
 *                    and "body: BODY"
 *
 * Build: musl-gcc -static -O2 -o musl musl.c
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *ntop(const struct sockaddr *sa, char *buf, size_t n)
{
	if (sa->sa_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, n);
	if (sa->sa_family == AF_INET6)
		return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, n);
	snprintf(buf, n, "family %d", sa->sa_family);
	return buf;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: musl HOST PORT\n");
		return 2;
	}
	const char *host = argv[1], *port = argv[2];
	struct addrinfo hints, *res, *ai;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "musl getaddrinfo: %s\n", gai_strerror(rc));
		return 1;
	}
	char addr[INET6_ADDRSTRLEN + 16];
	int fd = -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		ntop(ai->ai_addr, addr, sizeof addr);
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		perror("musl connect");
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		fprintf(stderr, "musl: no address of %s connected\n", host);
		return 1;
	}
	printf("resolved %s -> %s\n", host, addr);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
		printf("getpeername=%s\n", ntop((struct sockaddr *)&peer, addr, sizeof addr));
	else
		perror("musl getpeername");
	char req[512];
	int n = snprintf(req, sizeof req, "GET /musl HTTP/1.0\r\nHost: %s:%s\r\n\r\n", host, port);
	if (write(fd, req, n) != n) {
		perror("musl write");
		return 1;
	}
	static char resp[65536];
	size_t got = 0;
	ssize_t r;
	while (got < sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
		got += r;
	resp[got] = 0;
	char *body = strstr(resp, "\r\n\r\n");
	printf("body: %s", body ? body + 4 : resp);
	fflush(stdout);
	close(fd);
	freeaddrinfo(res);
	return 0;
}
