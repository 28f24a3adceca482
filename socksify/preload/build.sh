#!/bin/sh
# Builds socksify-preload.so from preload.c for x86_64 Linux. The result
# is committed (like the BPF objects bpf2go makes), so that building
# socksify needs no C compiler; preload_test.go checks that the committed
# library carries this source's SHA-256. Run from any directory:
#   sh socksify/preload/build.sh
set -eu
cd "$(dirname "$0")"
src=$(sha256sum preload.c | cut -d' ' -f1)
${CC:-gcc} -O2 -fPIC -shared -fno-stack-protector -fvisibility=hidden \
	-Wall -Wextra -Werror -D_FORTIFY_SOURCE=0 \
	-DSOCKSIFY_PRELOAD_SRC="\"$src\"" \
	-Wl,-soname,socksify-preload.so -Wl,--hash-style=both -Wl,-z,now -Wl,-z,relro \
	-o socksify-preload.so preload.c
strip --strip-unneeded socksify-preload.so
