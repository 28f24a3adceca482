/* Test fixture for socksify: a blocking recvfrom, which socksify emulates
 * for a UDP socket whose datagrams go through the gateway, interrupted by
 * a signal. Its handler sends a datagram that the echo server answers.
 *
 *   sigrestart HOST PORT restart    SA_RESTART: recvfrom is restarted and
 *                                   returns the echo of the handler's send
 *   sigrestart HOST PORT interrupt  no SA_RESTART: recvfrom fails (EINTR)
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int fd;
static struct sockaddr_storage dst;
static socklen_t dstlen;
static volatile sig_atomic_t handled;

static void on_alarm(int sig) {
	(void)sig;
	sendto(fd, "late", 4, 0, (struct sockaddr *)&dst, dstlen);
	handled = 1;
}

static int recv_print(const char *what) {
	char buf[256];
	struct sockaddr_storage src;
	socklen_t sl = sizeof src;
	ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&src, &sl);
	if (n < 0) {
		printf("%s: %s (handler ran: %d)\n", what, errno == EINTR ? "EINTR" : strerror(errno), handled);
		return -1;
	}
	printf("%s: %.*s (handler ran: %d)\n", what, (int)n, buf, handled);
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: sigrestart HOST PORT restart|interrupt\n");
		return 2;
	}
	struct addrinfo hints = {0}, *ai;
	hints.ai_socktype = SOCK_DGRAM;
	int e = getaddrinfo(argv[1], argv[2], &hints, &ai);
	if (e) {
		fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(e));
		return 1;
	}
	memcpy(&dst, ai->ai_addr, ai->ai_addrlen);
	dstlen = ai->ai_addrlen;
	fd = socket(ai->ai_family, SOCK_DGRAM, 0);
	if (fd < 0 || sendto(fd, "first", 5, 0, (struct sockaddr *)&dst, dstlen) != 5) {
		perror("first send");
		return 1;
	}
	if (recv_print("first") < 0)
		return 1;

	struct sigaction sa = {0};
	sa.sa_handler = on_alarm;
	sa.sa_flags = strcmp(argv[3], "restart") == 0 ? SA_RESTART : 0;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 0}, {0, 300000}}; /* once, in 300 ms */
	setitimer(ITIMER_REAL, &it, NULL);
	recv_print("blocked");
	return 0;
}
