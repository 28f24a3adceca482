/* Probe for bench/micro/README.md: getaddrinfo latency of N fresh names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <time.h>
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: gai N TAG\n");
    return 2;
  }
  int n = atoi(argv[1]);
  double *v = malloc(n * sizeof(double));
  for(int i=0;i<n;i++){
    char name[64]; snprintf(name,sizeof name,"g%d-%s.example.test", i, argv[2]);
    struct addrinfo h; memset(&h,0,sizeof h); h.ai_socktype=SOCK_STREAM;
    struct addrinfo *res;
    struct timespec t0,t1;
    clock_gettime(CLOCK_MONOTONIC,&t0);
    int e = getaddrinfo(name,"80",&h,&res);
    clock_gettime(CLOCK_MONOTONIC,&t1);
    if(e){fprintf(stderr,"%s: %s\n",name,gai_strerror(e)); return 1;}
    freeaddrinfo(res);
    v[i]=((t1.tv_sec-t0.tv_sec)*1e9+(t1.tv_nsec-t0.tv_nsec))/1e3;
  }
  qsort(v,n,sizeof(double),cmp);
  printf("getaddrinfo p50 %.1f us p90 %.1f us\n", v[n/2], v[n*9/10]);
}
