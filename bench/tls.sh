#!/bin/bash
# tls.sh - the TLS figures, plain and TLS side by side in the same run:
#  1. handshakes into the daemon (one shard) on an implicit-TLS listener
#     (--listen-tls), driven by `openssl s_time`: TLS 1.3 full, TLS 1.2
#     full, TLS 1.2 resumed (s_time -reuse; it reads nothing after the
#     handshake, so it never sees a TLS 1.3 ticket and cannot resume 1.3).
#     Per wall second and per second of the daemon's CPU (utime+stime).
#  2. 10 KB messages from ringmta-blast (50 sessions, one thread) into the
#     daemon (two shards, spool under /var/tmp, real fdatasync; the next
#     hop is a closed port, so every message is deferred once) and into
#     ringmta-sink (one thread), plain and --starttls.
#
# Usage: bash bench/tls.sh BUILD_DIR [REPS] [MESSAGES]   (run as root)
# Prints one line per figure and repetition. Ports: free ones, probed at start.
set -eu
build=$1
reps=${2:-3}
msgs=${3:-20000}
spool=/var/tmp/ringmta-bench-tls-spool
tmp=$(mktemp -d)
# free_ports N - N distinct loopback ports nothing listens on right now
free_ports() {
	/usr/bin/python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r port tport mport sport dead <<<"$(free_ports 5)"
secs=5

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/k.pem" \
	-out "$tmp/c.pem" -days 2 -subj /CN=bench.test 2>/dev/null
tlsf="--tls-cert $tmp/c.pem --tls-key $tmp/k.pem"

. "$(dirname "$0")/lib.sh"
stop_pid() { [ -z "$1" ] || { kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }
rpid= kpid=
trap 'stop_pid "$rpid"; stop_pid "$kpid"; rm -rf "$tmp" "$spool"' EXIT
wait_port() {
	i=0
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 200 ] || { echo "nothing on port $1" >&2; exit 1; }
		sleep 0.05
	done
}

start_ringmta() { # THREADS
	rm -rf "$spool"
	# shellcheck disable=SC2086
	"$build/ringmta" --listen "127.0.0.1:$port" --listen-tls "127.0.0.1:$tport" \
		--metrics "127.0.0.1:$mport" --spool "$spool" --threads "$1" --min-free-space 0 \
		--route "sink.test=127.0.0.1:$dead" --hostname bench.test $tlsf 2>/dev/null &
	rpid=$!
	wait_ready 10
}

# handshakes NAME S_TIME_FLAGS...
handshakes() {
	name=$1; shift
	start_ringmta 1
	c0=$(cpu_ticks $rpid); h0=$(metric ringmta_tls_handshakes_total); r0=$(metric ringmta_tls_resumed_total)
	t0=$(date +%s.%N)
	openssl s_time -connect "127.0.0.1:$tport" "$@" -time $secs >/dev/null 2>&1
	t1=$(date +%s.%N)
	c1=$(cpu_ticks $rpid); h1=$(metric ringmta_tls_handshakes_total); r1=$(metric ringmta_tls_resumed_total)
	echo "$name $t0 $t1 $c0 $c1 $h0 $h1 $r0 $r1 $tck" | awk '{
		h = $7 - $6; cpu = ($5 - $4) / $10
		printf "handshakes %s n=%d resumed=%d per_s=%.0f per_cpu_s=%.0f\n", $1, h, $9 - $8, h / ($3 - $2), (cpu > 0 ? h / cpu : 0) }'
	stop_pid $rpid
	rpid=
}

# blast NAME SERVER_PID PORT FLAGS...: one ringmta-blast run with the server's CPU
blast() {
	name=$1 spid=$2 p=$3; shift 3
	c0=$(cpu_ticks "$spid")
	out=$("$build/ringmta-blast" --target "127.0.0.1:$p" --connections 50 --messages "$msgs" \
		--size 10240 --json "$@" || true)
	c1=$(cpu_ticks "$spid")
	echo "$out" | tr -d '{}"' | tr ',:' '  ' | awk -v n="$name" -v c="$((c1 - c0))" -v t="$tck" '{
		for (i = 1; i < NF; i++) v[$i] = $(i + 1)
		printf "throughput %s accepted=%d errors=%d msgs_per_s=%.0f mb_per_s=%.1f server_cpu_us_per_msg=%.1f\n",
			n, v["accepted"], v["errors"], v["msgs_per_sec"], v["mb_per_sec"],
			(v["accepted"] > 0 ? c * 1e6 / t / v["accepted"] : 0) }'
}

r=1
while [ $r -le "$reps" ]; do
	echo "# repetition $r"
	handshakes tls13-full -new
	handshakes tls12-full -new -tls1_2
	handshakes tls12-resumed -reuse -tls1_2
	for mode in plain tls; do
		flag=; [ $mode = tls ] && flag=--starttls
		start_ringmta 2
		blast "ringmta-$mode" $rpid $port $flag
		stop_pid $rpid
		rpid=
		# shellcheck disable=SC2086
		"$build/ringmta-sink" --listen "127.0.0.1:$sport" --threads 1 $tlsf >/dev/null 2>&1 &
		kpid=$!
		wait_port $sport
		blast "sink-$mode" $kpid $sport $flag
		stop_pid $kpid
		kpid=
	done
	r=$((r + 1))
done
