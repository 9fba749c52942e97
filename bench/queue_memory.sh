#!/bin/sh
# queue_memory.sh - what a large deferred queue costs: ringmta relays to a
# ringmta-sink that answers 451 to every recipient, so every message is
# tried once and deferred (retry in an hour). Prints ringmta's resident
# memory per queued message while it runs and after a restart on the same
# spool (over the empty daemon's), the time from start to /readyz 200
# (recovery), and the CPU the idle daemon spends holding the queue.
#
# Usage: bench/queue_memory.sh BUILD_DIR [MESSAGES]   (run as root)
#        MESSAGES defaults to 100000 (1 KB each); THREADS sets --threads (2).
set -eu
build=$1
msgs=${2:-100000}
threads=${THREADS:-2}
spool=/var/tmp/ringmta-bench-queue.$$
. "$(dirname "$0")/lib.sh"
port=$(free_port)
mport=$(free_port)
sport=$(free_port)

"$build/ringmta-sink" --listen "127.0.0.1:$sport" --fail-rcpt '*@sink.test=451' >/dev/null 2>&1 &
spid=$!
rpid=
trap 'kill $spid $rpid 2>/dev/null || true; rm -rf "$spool"' EXIT

# start - ringmta on the spool; ready_s: the seconds until /readyz says 200
start() {
	t0=$(date +%s.%N)
	"$build/ringmta" --listen "127.0.0.1:$port" --metrics "127.0.0.1:$mport" --spool "$spool" \
		--threads "$threads" --min-free-space 0 --hostname bench.test \
		--smarthost "127.0.0.1:$sport" --retry-schedule 3600 2>/dev/null &
	rpid=$!
	wait_ready 60
	ready_s=$(echo "$(date +%s.%N) - $t0" | bc)
}

# idle - RSS per queued message and CPU over 10 s of holding the queue
idle() {
	sleep 3
	c0=$(cpu_ticks "$rpid")
	sleep 10
	c1=$(cpu_ticks "$rpid")
	q=$(metric ringmta_queue_messages)
	r=$(rss_kb "$rpid")
	echo "$1 queued=$q rss_kb=$r bytes_per_msg_over_empty=$(( (r - empty) * 1024 / (q > 0 ? q : 1) )) idle_cpu_ms_per_10s=$(( (c1 - c0) * 1000 / tck ))"
}

rm -rf "$spool"
start
empty=$(rss_kb "$rpid")
"$build/ringmta-blast" --target "127.0.0.1:$port" --connections 50 --messages "$msgs" --size 1024 \
	--json >/dev/null || true
i=0
until [ "$(metric ringmta_messages_deferred_total)" = "$msgs" ]; do
	i=$((i + 1)); [ $i -lt 1500 ] || { echo "not every message was deferred in 300 s" >&2; exit 1; }
	sleep 0.2
done
echo "empty rss_kb=$empty"
idle live
kill -TERM "$rpid"
wait "$rpid" || true
start
echo "restart ready_s=$ready_s"
idle restarted
