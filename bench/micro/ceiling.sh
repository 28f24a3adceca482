#!/usr/bin/env bash
# Probe for bench/micro/README.md: how close any relay gets to a direct
# connection on this machine. It runs make bench's bulk1 scenario (one
# CONNECT stream to a sink, Gbit/s counted at the sink, medians of REPS)
# against socks6d of this tree and against relayceiling.c, the least a
# relay can do (a thread per direction with splice(2) or read/write, and,
# as root, a kernel SOCKMAP that moves the bytes with no user space at
# all), next to the direct path, and prints socksbench's table with the
# ratios to direct.
#
#     bench/micro/ceiling.sh [REPS]     # default 5; sockmap needs root
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-5}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/socks6d" ./cmd/socks6d
(cd bench && go build -o "$tmp/socksbench" ./socksbench)
cc -O2 -pthread -o "$tmp/relayceiling" bench/micro/relayceiling.c
mapfile -t P < <("$tmp/socksbench" -free-ports 4)
printf 'listen = ["127.0.0.1:%s"]\nlog_level = "warn"\n[guard]\nallow_loopback = true\n' "${P[0]}" >"$tmp/s6.toml"
"$tmp/socks6d" -config "$tmp/s6.toml" >"$tmp/socks6d.log" 2>&1 &
pids+=($!)
targets=(-target "name=socks6d,addr=127.0.0.1:${P[0]},pid=$!")
modes=(splice rw)
[ "$(id -u)" = 0 ] && modes+=(sockmap) || echo "ceiling.sh: not root, leaving out sockmap" >&2
i=1
for m in "${modes[@]}"; do
	"$tmp/relayceiling" "${P[$i]}" "$m" >"$tmp/$m.log" 2>&1 &
	pids+=($!)
	targets+=(-target "name=c-$m,addr=127.0.0.1:${P[$i]},pid=$!")
	i=$((i + 1))
done
addrs=$(printf '127.0.0.1:%s,' "${P[@]:0:$i}")
"$tmp/socksbench" -wait "${addrs%,}"
"$tmp/socksbench" -scenarios bulk1 -reps "$REPS" "${targets[@]}" |
	sed -n '/^## /,$p'
