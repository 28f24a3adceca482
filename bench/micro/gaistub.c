/* Probe for bench/micro/README.md: an LD_PRELOAD getaddrinfo that answers
 * every name under "bench.test" at once with 192.0.2.1, without a system
 * call, and passes every other name to libc's. curl run directly with it
 * still pays its own threaded resolver (a thread per lookup, the hand-back
 * to the main thread) but nothing for the lookup itself: its namelookup
 * time is the least any transparent proxying tool can cost curl per
 * fresh name, which curl --socks5-hostname never pays.
 *
 *     cc -O2 -shared -fPIC -o /tmp/gaistub.so bench/micro/gaistub.c -ldl
 *     LD_PRELOAD=/tmp/gaistub.so curl http://x1.bench.test:8080/
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

static const char suffix[] = ".bench.test";

static int ours(const char *node) {
  size_t n, s = sizeof suffix - 1;
  if (node == NULL)
    return 0;
  n = strlen(node);
  if (n > 0 && node[n - 1] == '.')
    n--;
  return n > s && strncasecmp(node + n - s, suffix, s) == 0;
}

/* One allocation holds the addrinfo and its sockaddr, so that libc's
 * freeaddrinfo, which frees ai_canonname (NULL here) and then the node,
 * releases it. */
struct stub {
  struct addrinfo ai;
  struct sockaddr_in sin;
};

int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res) {
  static int (*next)(const char *, const char *, const struct addrinfo *,
                     struct addrinfo **);
  if (!ours(node) || (hints != NULL && hints->ai_family != AF_UNSPEC &&
                      hints->ai_family != AF_INET)) {
    if (next == NULL)
      next = dlsym(RTLD_NEXT, "getaddrinfo");
    return next(node, service, hints, res);
  }
  struct stub *s = calloc(1, sizeof *s);
  if (s == NULL)
    return EAI_MEMORY;
  s->sin.sin_family = AF_INET;
  s->sin.sin_port = htons(service != NULL ? (unsigned short)atoi(service) : 0);
  inet_pton(AF_INET, "192.0.2.1", &s->sin.sin_addr);
  s->ai.ai_family = AF_INET;
  s->ai.ai_socktype = hints != NULL && hints->ai_socktype ? hints->ai_socktype : SOCK_STREAM;
  s->ai.ai_protocol = s->ai.ai_socktype == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP;
  s->ai.ai_addrlen = sizeof s->sin;
  s->ai.ai_addr = (struct sockaddr *)&s->sin;
  *res = &s->ai;
  return 0;
}
