#!/usr/bin/env bash
# Probe for bench/micro/README.md: where socksify's per-connection cost
# goes. In a network namespace of its own (as root), one curl process
# fetches N URLs, each a new TCP connection, through a socks6d there:
# proxy-aware (--socks5 / --socks5-hostname), under socksify (and with
# -no-preload, and -warm), under proxychains4, and directly; first with IP-literal URLs
# (no lookup anywhere), then with a fresh host name per URL (the gateway
# resolves it; socksify and proxychains4 hand curl fake addresses). It
# prints each client's median URLs/s over ROUNDS rounds, clients
# alternating. One more client, direct-stub, is curl without a proxy
# whose getaddrinfo is gaistub.c (LD_PRELOAD: every bench.test name is
# 192.0.2.1 at once): its lookup time is what curl's own threaded
# resolver costs with a free lookup, the least any transparent tool adds
# per fresh name, and the end prints the best rate ratio that leaves.
#
#     sudo bench/micro/sfyrate.sh [ROUNDS]     # N=1000 URLs per run by default
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
N=${N:-1000}
[ "$(id -u)" = 0 ] || { echo "sfyrate.sh: needs root (network namespace)" >&2; exit 2; }
NS=s6micro-$$
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "/etc/netns/$NS" "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/socks6d" ./cmd/socks6d
go build -o "$tmp/socksify" ./cmd/socksify
(cd bench && go build -o "$tmp/httpsink" ./micro/httpsink)
cc -O2 -shared -fPIC -o "$tmp/gaistub.so" bench/micro/gaistub.c -ldl
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add 192.0.2.1/32 dev lo # the IP-literal target: not loopback, so socksify proxies it
mkdir -p "/etc/netns/$NS"
echo "nameserver 127.0.0.1" >"/etc/netns/$NS/resolv.conf"
cat >"$tmp/gw.toml" <<TOML
listen = ["127.0.0.1:1080"]
log_level = "warn"
[guard]
allow_loopback = true
[resolver]
servers = ["127.0.0.1:53"]
hosts_file = "-"
TOML
printf 'strict_chain\nproxy_dns\nquiet_mode\n[ProxyList]\nsocks5 127.0.0.1 1080\n' >"$tmp/pc.conf"
ip netns exec "$NS" python3 bench/micro/dns.py 53 & pids+=($!)
ip netns exec "$NS" "$tmp/httpsink" & pids+=($!)
ip netns exec "$NS" "$tmp/socks6d" -config "$tmp/gw.toml" & pids+=($!)
sleep 0.5

# run MODE KIND: one curl fetching N URLs; prints URLs/s. It also keeps
# curl's per-URL timers (-w) in $tmp/phases-MODE-KIND, for the table at
# the end.
run() {
	local pre=() opt=() url
	case $1 in
	direct) ;;
	direct-stub) pre=(env LD_PRELOAD="$tmp/gaistub.so") ;;
	proxy-aware) opt=(--socks5-hostname 127.0.0.1:1080) ;;
	socksify) pre=("$tmp/socksify" -proxy 127.0.0.1:1080 --) ;;
	socksify-nopre) pre=("$tmp/socksify" -no-preload -proxy 127.0.0.1:1080 --) ;;
	socksify-warm) pre=("$tmp/socksify" -warm -proxy 127.0.0.1:1080 --) ;;
	proxychains4) pre=(proxychains4 -q -f "$tmp/pc.conf") ;;
	esac
	if [ "$2" = literal ]; then
		url="http://192.0.2.1:8080/[1-$N]"
	else
		url="http://n[1-$N]-$1-$RANDOM.bench.test:8080/"
	fi
	local s e
	s=$(date +%s%N)
	ip netns exec "$NS" "${pre[@]}" curl -s -o /dev/null -H 'Connection: close' "${opt[@]}" \
		-w '%{time_namelookup} %{time_connect} %{time_pretransfer} %{time_starttransfer} %{time_total}\n' \
		"$url" >>"$tmp/phases-$1-$2"
	e=$(date +%s%N)
	echo $((N * 1000000000 / (e - s)))
}

modes=(direct direct-stub proxy-aware socksify socksify-nopre socksify-warm proxychains4)
for kind in literal name; do
	declare -A got=()
	for _ in $(seq "$ROUNDS"); do
		for m in "${modes[@]}"; do got[$m]+="$(run "$m" "$kind") "; done
	done
	echo "$kind URLs ($N per run, $ROUNDS rounds): median URLs/s [all]"
	for m in "${modes[@]}"; do
		# shellcheck disable=SC2086
		printf '  %-14s %6s  [%s]\n' "$m" "$(printf '%s\n' ${got[$m]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" "${got[$m]% }"
	done
	unset got
done

# Where the time of one URL goes, by curl's own timers (medians over every
# URL of every round, µs from the start of the URL): the lookup (0 for a
# proxy-aware curl, which passes the name on; for direct-stub, curl's own
# resolver thread around a free lookup), the TCP connect (to the
# gateway for proxy-aware curl; for socksify and proxychains4 the
# connect returns only after the gateway's reply), the end of the SOCKS
# handshake (pretransfer), the first response byte and the end.
echo "fresh-name URLs: median µs per URL by curl's timers"
printf '  %-14s %10s %8s %11s %13s %6s\n' client namelookup connect pretransfer starttransfer total
for m in "${modes[@]}"; do
	python3 - "$m" "$tmp/phases-$m-name" <<'PY'
import statistics, sys
cols = list(zip(*(map(float, l.split()) for l in open(sys.argv[2]))))
print("  %-14s %10.0f %8.0f %11.0f %13.0f %6.0f" % ((sys.argv[1],) + tuple(statistics.median(c) * 1e6 for c in cols)))
PY
done

# The best rate ratio to proxy-aware curl that a transparent tool could
# reach for fresh names if it cost nothing itself: proxy-aware curl's time
# per URL against that time plus curl's own resolver with a free lookup.
python3 - "$tmp/phases-proxy-aware-name" "$tmp/phases-direct-stub-name" <<'PY'
import statistics, sys
pa = statistics.median(float(l.split()[4]) for l in open(sys.argv[1])) * 1e6
nl = statistics.median(float(l.split()[0]) for l in open(sys.argv[2])) * 1e6
print("bound for a free transparent tool: %.0f / (%.0f + %.0f) = %.2fx proxy-aware" % (pa, pa, nl, pa / (pa + nl)))
PY
