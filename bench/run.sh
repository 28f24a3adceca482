#!/usr/bin/env bash
# bench/run.sh: measure socks6d against Dante, microsocks and things-go on
# loopback with socksbench. Run it as `make bench` or `make bench-quick`;
# see bench/README.md. Needs root (installs Debian packages if missing and
# creates the system user Dante's username method checks).
#
# Environment: REPS (3), SCENARIOS (all), IDLE_CONNS (5000), QUICK (0/1),
# MAX_TIME (socksbench -max-time, default 16m; 4m when QUICK=1),
# BENCH_ARGS (extra socksbench flags), OUT_DIR (bench/out).
#
# Every process it starts is recorded and ended by PID on exit, including
# on failure or interrupt. All servers listen on 127.0.0.1 only.
#
# The dns scenario runs in a network namespace of its own (s6bench-dns-PID)
# with a socks6d, a danted and a microsocks inside it; `ip netns exec`
# bind-mounts /etc/netns/NS/resolv.conf (nameserver 127.0.0.1) over
# /etc/resolv.conf for them, so they resolve through socksbench's DNS
# server there and the host's resolv.conf is untouched. The namespace and
# /etc/netns/NS are removed on exit.
#
# The socksify scenario runs in the same namespace, through the same
# socks6d there: curl under socksify (built from ./cmd/socksify), under
# proxychains4 (Debian's, installed if missing; configuration written
# here), with --socks5-hostname, and direct.
#
# The whole script is one { ... } block, which bash reads completely before
# running it, so editing this file during a run cannot derail that run.
{
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${REPS:-3}
SCENARIOS=${SCENARIOS:-all}
IDLE_CONNS=${IDLE_CONNS:-5000}
QUICK=${QUICK:-0}
BENCH_ARGS=${BENCH_ARGS:-}
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}
if [ "$QUICK" = 1 ]; then
	MAX_TIME=${MAX_TIME:-4m}
else
	MAX_TIME=${MAX_TIME:-16m}
fi
BENCH_USER=sbuser

# dns and socksify run in a namespace of their own; the other scenarios on
# the host's loopback.
WANT_DNS=0
WANT_SFY=0
WANT_HOST=0
IFS=',' read -ra _scen <<<"$SCENARIOS"
for _s in "${_scen[@]}"; do
	case "${_s//[[:space:]]/}" in
	all) WANT_DNS=1 WANT_SFY=1 WANT_HOST=1 ;;
	dns) WANT_DNS=1 ;;
	socksify) WANT_SFY=1 ;;
	*) WANT_HOST=1 ;;
	esac
done
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH=/usr/local/go/bin:$PATH
fi

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root: it installs dante-server and microsocks if missing and creates the system user $BENCH_USER for Dante's username method"

# One run at a time: two would share 2 cores and overwrite each other's
# password for $BENCH_USER. The servers get the lock's fd closed (9>&-).
LOCK=/tmp/socksbench.lock
exec 9>"$LOCK"
if ! flock -n 9; then
	die "another bench run is in progress (it holds $LOCK); wait for it to finish"
fi

T_START=$(date +%s)
WORK=$(mktemp -d /tmp/socksbench.XXXXXX)
PIDS=()
FAILED=1
NS=""               # the dns and socksify scenarios' network namespace, once made
NS_ETC=""           # its /etc/netns/NS, once made
ETC_NETNS_MADE=0    # 1 if this run created /etc/netns itself

# descendants prints the PIDs of all descendants of the PIDs given, from
# one snapshot of the process table.
descendants() {
	ps -eo pid=,ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) want[r[i]] = 1 }
		{ parent[$1] = $2 }
		END {
			do {
				added = 0
				for (p in parent) if (!(p in want) && (parent[p] in want)) { want[p] = 1; added = 1; print p }
			} while (added)
		}'
}

cleanup() {
	local rc=$? pid all=() p i
	trap - EXIT INT TERM
	if [ ${#PIDS[@]} -gt 0 ]; then
		all=("${PIDS[@]}")
		for p in $(descendants "${PIDS[@]}"); do all+=("$p"); done
	fi
	if [ ${#all[@]} -gt 0 ]; then
		kill -TERM "${all[@]}" 2>/dev/null || true
		for i in $(seq 1 30); do
			local left=0
			for p in "${all[@]}"; do
				local st=Z
				read -r _ _ st _ 2>/dev/null </proc/"$p"/stat || st=Z
				[ "$st" != Z ] && left=1
			done
			[ $left = 0 ] && break
			sleep 0.1
		done
		kill -KILL "${all[@]}" 2>/dev/null || true
		wait 2>/dev/null || true
	fi
	if [ -n "$NS" ]; then
		ip netns del "$NS" 2>/dev/null || log "warning: could not delete network namespace $NS"
	fi
	if [ -n "$NS_ETC" ]; then
		rm -rf "$NS_ETC"
	fi
	if [ $ETC_NETNS_MADE = 1 ]; then
		rmdir /etc/netns 2>/dev/null || true
	fi
	if [ $rc != 0 ] || [ $FAILED = 1 ]; then
		log "failed (exit $rc); server logs are kept in $WORK:"
		for f in "$WORK"/*.log; do
			[ -s "$f" ] || continue
			echo "--- $f (last 15 lines)" >&2
			tail -n 15 "$f" >&2
		done
		[ $rc = 0 ] && rc=1
	else
		rm -rf "$WORK"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. peers from Debian -----------------------------------------------------
missing=()
dpkg -s dante-server >/dev/null 2>&1 && [ -x /usr/sbin/danted ] || missing+=(dante-server)
dpkg -s microsocks >/dev/null 2>&1 && command -v microsocks >/dev/null || missing+=(microsocks)
if [ $WANT_SFY = 1 ]; then
	dpkg -s proxychains4 >/dev/null 2>&1 && command -v proxychains4 >/dev/null || missing+=(proxychains4)
	command -v curl >/dev/null || missing+=(curl)
fi
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y "${missing[@]}" >"$WORK/apt.log" 2>&1; then
		apt-get update >>"$WORK/apt.log" 2>&1
		apt-get install -y "${missing[@]}" >>"$WORK/apt.log" 2>&1 || die "apt-get install ${missing[*]} failed (see $WORK/apt.log)"
	fi
fi
# The package may have started a system danted on its default port; ours
# use their own ports and configuration, so it does not matter.

# A system user for Dante's username method (it checks the system password
# database) and the same credentials for the other servers.
PASS=""
if [ $WANT_HOST = 1 ]; then
	if ! id "$BENCH_USER" >/dev/null 2>&1; then
		log "creating system user $BENCH_USER (no home, no login shell)"
		useradd -M -s /usr/sbin/nologin "$BENCH_USER"
	fi
	PASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)
	echo "$BENCH_USER:$PASS" | chpasswd
fi

# --- 2. builds ------------------------------------------------------------------
BIN=$WORK/bin
mkdir -p "$BIN" "$OUT_DIR"
log "building socks6d and the bench tools"
go build -o "$BIN/socks6d" ./cmd/socks6d
(cd bench && go build -o "$BIN/" ./socksbench ./thingsgo ./mkhtpasswd)
if [ $WANT_SFY = 1 ]; then
	go build -o "$BIN/socksify" ./cmd/socksify || die "building ./cmd/socksify failed"
fi
SB=$BIN/socksbench
miekg_ver=$(go version -m "$SB" | awk '$2 == "github.com/miekg/dns" {print $3}')

# Users file for socks6d: "socks6d passwd" reads one line from stdin when it
# is not a terminal; mkhtpasswd is the fallback.
USERS=$WORK/users.htpasswd
if [ $WANT_HOST = 1 ]; then
	if ! printf '%s\n' "$PASS" | "$BIN/socks6d" passwd -users "$USERS" "$BENCH_USER" >"$WORK/passwd.log" 2>&1 ||
		! grep -q "^$BENCH_USER:\$2" "$USERS" 2>/dev/null; then
		log "socks6d passwd did not work (see $WORK/passwd.log); using bench/mkhtpasswd"
		printf '%s\n' "$PASS" | "$BIN/mkhtpasswd" -users "$USERS" "$BENCH_USER"
	fi
fi

# --- 3. servers -------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start() { # start NAME CMD...: run in the background, log to $WORK/NAME.log
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 9>&- &
	PIDS+=($!)
	eval "PID_${name//-/_}=$!"
}

# gone PID: the process has exited (no longer exists, or is a zombie).
gone() {
	local st=Z
	read -r _ _ st _ 2>/dev/null </proc/"$1"/stat || st=Z
	[ "$st" = Z ] || [ "$st" = X ]
}

s6conf() { # s6conf FILE PORT [USERS]
	{
		echo "listen = [\"127.0.0.1:$2\"]"
		echo 'log_level = "warn"'
		[ -n "${3:-}" ] && echo "users_file = \"$3\""
		echo '[guard]'
		echo 'allow_loopback = true'
	} >"$1"
}
danteconf() { # danteconf FILE PORT METHOD LOG
	cat >"$1" <<EOF
logoutput: $4
debug: 0
internal: 127.0.0.1 port = $2
external: lo
clientmethod: none
socksmethod: $3
user.privileged: root
user.unprivileged: nobody
client pass {
	from: 127.0.0.0/8 to: 127.0.0.0/8
	log: error
}
socks pass {
	from: 127.0.0.0/8 to: 127.0.0.0/8
	command: connect udpassociate bindreply udpreply
	log: error
}
EOF
}

TARGET_ARGS=()
if [ $WANT_HOST = 1 ]; then
	mapfile -t PORTS < <("$SB" -free-ports 8)
	[ ${#PORTS[@]} = 8 ] || die "could not find free ports"
	P_S6=${PORTS[0]} P_S6A=${PORTS[1]} P_DA=${PORTS[2]} P_DAA=${PORTS[3]}
	P_MS=${PORTS[4]} P_MSA=${PORTS[5]} P_TG=${PORTS[6]} P_TGA=${PORTS[7]}
	s6conf "$WORK/socks6d.toml" "$P_S6"
	s6conf "$WORK/socks6d-auth.toml" "$P_S6A" "$USERS"

	danteconf "$WORK/dante.conf" "$P_DA" none "$WORK/dante.out"
	danteconf "$WORK/dante-auth.conf" "$P_DAA" username "$WORK/dante-auth.out"

	start socks6d "$BIN/socks6d" -config "$WORK/socks6d.toml"
	start socks6d-auth "$BIN/socks6d" -config "$WORK/socks6d-auth.toml"
	start dante /usr/sbin/danted -f "$WORK/dante.conf" -p "$WORK/dante.pid"
	start dante-auth /usr/sbin/danted -f "$WORK/dante-auth.conf" -p "$WORK/dante-auth.pid"
	start microsocks microsocks -i 127.0.0.1 -p "$P_MS"
	start microsocks-auth microsocks -i 127.0.0.1 -p "$P_MSA" -u "$BENCH_USER" -P "$PASS"
	start things-go "$BIN/thingsgo" -addr "127.0.0.1:$P_TG"
	start things-go-auth "$BIN/thingsgo" -addr "127.0.0.1:$P_TGA" -user "$BENCH_USER" -pass "$PASS"

	"$SB" -wait "127.0.0.1:$P_S6,127.0.0.1:$P_S6A,127.0.0.1:$P_DA,127.0.0.1:$P_DAA,127.0.0.1:$P_MS,127.0.0.1:$P_MSA,127.0.0.1:$P_TG,127.0.0.1:$P_TGA" ||
		die "a server did not start"
	for pid in "${PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || die "server process $pid exited at start"
	done
	TARGET_ARGS+=(
		-meta "auth=username/password: socks6d users file (bcrypt cost 10), Dante system user (chpasswd default hash), microsocks -u/-P, things-go StaticCredentials"
		-target "name=socks6d,addr=127.0.0.1:$P_S6,pid=$PID_socks6d"
		-target "name=socks6d-auth,addr=127.0.0.1:$P_S6A,pid=$PID_socks6d_auth,user=$BENCH_USER,pass=$PASS"
		-target "name=dante,addr=127.0.0.1:$P_DA,pid=$PID_dante"
		-target "name=dante-auth,addr=127.0.0.1:$P_DAA,pid=$PID_dante_auth,user=$BENCH_USER,pass=$PASS"
		-target "name=microsocks,addr=127.0.0.1:$P_MS,pid=$PID_microsocks"
		-target "name=microsocks-auth,addr=127.0.0.1:$P_MSA,pid=$PID_microsocks_auth,user=$BENCH_USER,pass=$PASS"
		-target "name=things-go,addr=127.0.0.1:$P_TG,pid=$PID_things_go"
		-target "name=things-go-auth,addr=127.0.0.1:$P_TGA,pid=$PID_things_go_auth,user=$BENCH_USER,pass=$PASS"
	)
fi

# --- 3b. the namespace of dns and socksify, and its servers --------------------------
if [ $WANT_DNS = 1 ] || [ $WANT_SFY = 1 ]; then
	command -v ip >/dev/null || die "the dns and socksify scenarios need ip(8) (iproute2)"
	# Namespaces of earlier runs that were killed before their cleanup
	# (this run holds the lock, so no other run owns one).
	for old in $(ip netns list 2>/dev/null | awk '$1 ~ /^s6bench-dns-/ {print $1}'); do
		log "removing network namespace $old left by an earlier run"
		ip netns del "$old" 2>/dev/null || true
		rm -rf "/etc/netns/$old"
	done
	[ -d /etc/netns ] || ETC_NETNS_MADE=1
	NS=s6bench-dns-$$ # set first, so that an interrupt from here on removes it
	NS_ETC=/etc/netns/$NS
	ip netns add "$NS" || die "ip netns add $NS failed"
	ip -n "$NS" link set lo up
	mkdir -p "$NS_ETC"
	printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:2\n' >"$NS_ETC/resolv.conf"
	nsx() { ip netns exec "$NS" "$@"; }
	[ "$(nsx cat /etc/resolv.conf | head -n1)" = "nameserver 127.0.0.1" ] ||
		die "ip netns exec does not show $NS_ETC/resolv.conf as /etc/resolv.conf"

	mapfile -t DPORTS < <(nsx "$SB" -free-ports 3)
	[ ${#DPORTS[@]} = 3 ] || die "could not find free ports in $NS"
	P_DS6=${DPORTS[0]} P_DDA=${DPORTS[1]} P_DMS=${DPORTS[2]}

	# socks6d gets a [resolver] section pointing at the bench DNS server.
	# A socks6d that does not know the section refuses the configuration
	# (unknown key); it then runs without it, on the system resolver, and
	# the report says so.
	s6dns() { # s6dns 0|1: start socks6d in the namespace, with [resolver] if 1
		s6conf "$WORK/socks6d-dns.toml" "$P_DS6"
		if [ "$1" = 1 ]; then
			printf '%s\n' '[resolver]' 'servers = ["127.0.0.1:53"]' 'cache_size = 10000' >>"$WORK/socks6d-dns.toml"
		fi
		start socks6d-dns ip netns exec "$NS" "$BIN/socks6d" -config "$WORK/socks6d-dns.toml"
	}
	s6dns 1
	S6_RESOLVER=own
	s6up=0
	for _ in $(seq 1 50); do # at most ~10 s
		gone "$PID_socks6d_dns" && break
		if nsx "$SB" -wait "127.0.0.1:$P_DS6" -wait-timeout 100ms 2>/dev/null; then
			s6up=1
			break
		fi
	done
	if [ $s6up = 0 ]; then
		gone "$PID_socks6d_dns" || die "socks6d in $NS does not accept connections (see $WORK/socks6d-dns.log)"
		wait "$PID_socks6d_dns" 2>/dev/null || true
		grep -qi resolver "$WORK/socks6d-dns.log" ||
			die "socks6d in $NS exited at start (see $WORK/socks6d-dns.log)"
		S6_REFUSED=$(grep -i -m1 resolver "$WORK/socks6d-dns.log")
		log "socks6d refused the [resolver] section ($S6_REFUSED); the dns and socksify scenarios run it with the system resolver"
		mv "$WORK/socks6d-dns.log" "$WORK/socks6d-dns-resolver-probe.log"
		keep=()
		for p in "${PIDS[@]}"; do [ "$p" = "$PID_socks6d_dns" ] || keep+=("$p"); done
		PIDS=("${keep[@]}")
		s6dns 0
		S6_RESOLVER=system
	fi
	NSPIDS=("$PID_socks6d_dns")
	NSADDRS=127.0.0.1:$P_DS6
	if [ $WANT_DNS = 1 ]; then
		danteconf "$WORK/dante-dns.conf" "$P_DDA" none "$WORK/dante-dns.out"
		start dante-dns ip netns exec "$NS" /usr/sbin/danted -f "$WORK/dante-dns.conf" -p "$WORK/dante-dns.pid"
		start microsocks-dns ip netns exec "$NS" microsocks -i 127.0.0.1 -p "$P_DMS"
		NSPIDS+=("$PID_dante_dns" "$PID_microsocks_dns")
		NSADDRS+=,127.0.0.1:$P_DDA,127.0.0.1:$P_DMS
	fi
	nsx "$SB" -wait "$NSADDRS" || die "a server in $NS did not start"
	for pid in "${NSPIDS[@]}"; do
		gone "$pid" && die "server process $pid in $NS exited at start"
	done
	if [ $S6_RESOLVER = own ]; then
		s6dnsmeta="socks6d with [resolver] servers = [\"127.0.0.1:53\"], cache_size = 10000"
	else
		s6dnsmeta="socks6d WITHOUT [resolver] (it refused the section: $S6_REFUSED), i.e. the system resolver"
	fi
	TARGET_ARGS+=(-dns-netns "$NS")
	if [ $WANT_DNS = 1 ]; then
		TARGET_ARGS+=(
			-meta "dns=network namespace $NS; resolv.conf there: nameserver 127.0.0.1 (ip netns exec bind-mounts $NS_ETC/resolv.conf); DNS server: socksbench (github.com/miekg/dns $miekg_ver) on 127.0.0.1:53; $s6dnsmeta; dante and microsocks with the configurations above, resolving with libc"
			-dns-target "name=socks6d,addr=127.0.0.1:$P_DS6,pid=$PID_socks6d_dns,resolver=$S6_RESOLVER"
			-dns-target "name=dante,addr=127.0.0.1:$P_DDA,pid=$PID_dante_dns,resolver=libc"
			-dns-target "name=microsocks,addr=127.0.0.1:$P_DMS,pid=$PID_microsocks_dns,resolver=libc"
		)
	fi
	if [ $WANT_SFY = 1 ]; then
		# proxychains4: strict_chain, proxy_dns (fake addresses from
		# remote_dns_subnet, default 224), quiet, the socks6d above.
		PCCONF=$WORK/proxychains4.conf
		printf '%s\n' strict_chain proxy_dns quiet_mode '[ProxyList]' "socks5 127.0.0.1 $P_DS6" >"$PCCONF"
		curl_ver=$(curl --version | head -n1 | awk '{print $1, $2}')
		pc_pkg=$(dpkg-query -W -f '${Version}' proxychains4)
		TARGET_ARGS+=(
			-meta "socksify=./cmd/socksify of this tree; clients in network namespace $NS through its socks6d (127.0.0.1:$P_DS6, no auth; $s6dnsmeta); $curl_ver; proxychains4 (Debian $pc_pkg) with strict_chain, proxy_dns, quiet_mode, socks5 127.0.0.1 $P_DS6"
			-socksify-proxy "name=socks6d,addr=127.0.0.1:$P_DS6,pid=$PID_socks6d_dns,resolver=$S6_RESOLVER"
			-socksify-bin "$BIN/socksify" -proxychains-conf "$PCCONF"
		)
	fi
fi

# --- 4. measure -----------------------------------------------------------------
dante_ver=$(/usr/sbin/danted -v 2>&1 | head -n1 | sed 's/\.  *Copyright.*//')
dante_pkg=$(dpkg-query -W -f '${Version}' dante-server)
ms_pkg=$(dpkg-query -W -f '${Version}' microsocks)
tg_ver=$(go version -m "$BIN/thingsgo" | awk '$2 == "github.com/things-go/go-socks5" {print $3}')
s6_ver=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
go_ver=$(go version | awk '{print $3}')

TS=$(date -u +%Y%m%dT%H%M%SZ)
QUICK_FLAG=()
[ "$QUICK" = 1 ] && QUICK_FLAG=(-quick)
up=$(($(date +%s) - T_START))
log "servers up; measuring (REPS=$REPS SCENARIOS=$SCENARIOS IDLE_CONNS=$IDLE_CONNS QUICK=$QUICK, at most $MAX_TIME; setup took ${up}s)"
# shellcheck disable=SC2086 # BENCH_ARGS is split on purpose
"$SB" -reps "$REPS" -scenarios "$SCENARIOS" -idle-conns "$IDLE_CONNS" -max-time "$MAX_TIME" "${QUICK_FLAG[@]}" \
	-json "$OUT_DIR/results-$TS.json" -md "$OUT_DIR/results-$TS.md" \
	-meta "socks6d=$s6_ver (this tree, $go_ver; log_level warn, allow_loopback)" \
	-meta "dante=$dante_ver (Debian $dante_pkg)" \
	-meta "microsocks=microsocks (Debian $ms_pkg)" \
	-meta "things-go=github.com/things-go/go-socks5 $tg_ver (bench/thingsgo, library defaults)" \
	"${TARGET_ARGS[@]}" \
	$BENCH_ARGS 9>&- &
# In the background so that a signal reaches the trap at once.
SBPID=$!
PIDS+=("$SBPID")
wait "$SBPID"
cp "$OUT_DIR/results-$TS.json" "$OUT_DIR/latest.json"
cp "$OUT_DIR/results-$TS.md" "$OUT_DIR/latest.md"
log "saved $OUT_DIR/results-$TS.md and .json (also latest.md, latest.json)"
FAILED=0
exit 0
}
