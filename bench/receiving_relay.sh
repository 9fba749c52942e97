#!/bin/sh
# receiving_relay.sh - receive-only throughput of ringmta (spool store, real
# fdatasync) beside Postfix's smtp-sink, both loaded by Postfix's smtp-source
# with 10 KB messages; ringmta's CPU per message, fdatasyncs per message,
# RSS per idle connection and futex calls from its shard threads.
#
# Usage: bench/receiving_relay.sh BUILD_DIR [MESSAGES]   (run as root)
# Prints one "key value" line per figure. Uses ports 27001..27003 and a
# spool under /var/tmp (a real disk, not tmpfs).
set -eu
build=$1
msgs=${2:-20000}
ringmta=$build/ringmta
spool=/var/tmp/ringmta-bench-spool
port=27001
mport=27002
sinkport=27003
threads=$(nproc)

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true # 10,000 idle sessions need as many fds

metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
now() { date +%s.%N; }

start_ringmta() {
	rm -rf "$spool"
	"$ringmta" --listen "127.0.0.1:$port" --metrics "127.0.0.1:$mport" --spool "$spool" \
		--threads "$threads" --min-free-space 0 --max-connections 15000 \
		--max-connections-per-ip 15000 --hostname bench.test 2>/dev/null &
	rpid=$!
	i=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/readyz")" = 200 ]; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "ringmta did not start" >&2; exit 1; }
		sleep 0.05
	done
}

stop_pid() { kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# source SESSIONS PORT: seconds for $msgs messages of 10 KB
source_run() {
	t0=$(now)
	smtp-source -s "$1" -m "$msgs" -l 10240 -f bench@src.test -t rcpt@dst.test "127.0.0.1:$2" >/dev/null
	t1=$(now)
	echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }'
}

tck=$(getconf CLK_TCK)
for sess in 50 1000; do
	start_ringmta
	c0=$(cpu_ticks $rpid)
	secs=$(source_run "$sess" "$port")
	c1=$(cpu_ticks $rpid)
	got=$(metric ringmta_messages_received_total)
	syncs=$(metric ringmta_spool_syncs_total)
	copied=$(metric ringmta_body_bytes_copied_total)
	echo "ringmta sessions=$sess messages=$got seconds=$secs msgs_per_s=$(echo "$got $secs" | awk '{ printf "%.0f", $1 / $2 }')"
	echo "ringmta sessions=$sess cpu_us_per_msg=$(echo "$c0 $c1 $tck $got" | awk '{ printf "%.1f", ($2 - $1) * 1e6 / $3 / $4 }') fdatasyncs_per_msg=$(echo "$syncs $got" | awk '{ printf "%.4f", $1 / $2 }') body_bytes_copied=$copied"
	stop_pid $rpid

	smtp-sink -u nobody -c "127.0.0.1:$sinkport" 20000 >/dev/null 2>&1 &
	spid=$!
	sleep 0.3
	secs=$(source_run "$sess" "$sinkport")
	echo "smtp-sink sessions=$sess messages=$msgs seconds=$secs msgs_per_s=$(echo "$msgs $secs" | awk '{ printf "%.0f", $1 / $2 }')"
	stop_pid $spid
done

# Steady load for futex counting: 50 sessions, strace attached for 3 s.
start_ringmta
smtp-source -s 50 -m 1000000 -l 10240 -f bench@src.test -t rcpt@dst.test "127.0.0.1:$port" >/dev/null 2>&1 &
lpid=$!
sleep 1
before=$(metric ringmta_messages_received_total)
timeout -s INT 3 strace -f -c -e trace=futex -p "$rpid" -o /tmp/ringmta-futex.txt >/dev/null 2>&1 || true
after=$(metric ringmta_messages_received_total)
stop_pid $lpid
calls=$(awk '$NF == "futex" { print $4 }' /tmp/ringmta-futex.txt)
echo "futex calls_in_3s=${calls:-0} messages_in_3s=$((after - before))"
stop_pid $rpid

# RSS with 10,000 idle connections.
start_ringmta
rss0=$(awk '/VmRSS/ { print $2 }' "/proc/$rpid/status")
/usr/bin/python3 - "$port" <<'EOF' &
import socket, sys, time
conns = []
for i in range(10000):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    conns.append(s)
for s in conns:
    s.recv(512)   # the greeting: every session is set up
open("/tmp/ringmta-idle-ready", "w").close()
time.sleep(30)
EOF
ppid=$!
rm -f /tmp/ringmta-idle-ready
i=0
while [ ! -e /tmp/ringmta-idle-ready ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
rss1=$(awk '/VmRSS/ { print $2 }' "/proc/$rpid/status")
open=$(metric ringmta_connections_open)
echo "idle connections=$open rss_kb_before=$rss0 rss_kb_after=$rss1 kb_per_conn=$(echo "$rss0 $rss1 $open" | awk '{ printf "%.2f", ($2 - $1) / $3 }')"
stop_pid $ppid
stop_pid $rpid
rm -rf "$spool" /tmp/ringmta-idle-ready
