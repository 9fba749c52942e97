#!/bin/sh
# receiving_relay.sh - receive-only throughput of ringmta (spool store, real
# fdatasync) beside Postfix's smtp-sink, both loaded by Postfix's smtp-source
# with 10 KB messages; ringmta's CPU per message, fdatasyncs per message,
# RSS per idle connection and futex calls from its shard threads.
#
# Usage: bench/receiving_relay.sh BUILD_DIR [MESSAGES]   (run as root)
#        bench/receiving_relay.sh BUILD_DIR [MESSAGES] blast
# Prints one "key value" line per figure. Uses ports 27001..27003 and a
# spool under /var/tmp (a real disk, not tmpfs).
#
# With "blast": ringmta with one shard (--threads 1) loaded by ringmta-blast
# at 50 and 1000 sessions, 10 KB messages: ringmta's CPU per accepted
# message (utime+stime of the whole process, io-wq workers included),
# ringmta-blast's own CPU per message, msgs/s, and fdatasyncs per message.
# Ports come from a free-port probe; RINGMTA_THREADS sets --threads (1).
#
# In both modes delivery is kept idle by a DNS server that never answers (a
# UDP socket nobody reads): with a resolver that answers NXDOMAIN at once
# every message would bounce, and building and delivering the bounces
# would dominate the run, which is then no longer receive-only.
set -eu
build=$1
msgs=${2:-20000}
mode=${3:-}
ringmta=$build/ringmta
. "$(dirname "$0")/lib.sh"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true # 10,000 idle sessions need as many fds

now() { date +%s.%N; }

# start_ringmta [FLAG...] - a fresh spool, ringmta on $port with $threads
# shards and the extra flags, once /readyz says 200
start_ringmta() {
	rm -rf "$spool"
	"$ringmta" --listen "127.0.0.1:$port" --metrics "127.0.0.1:$mport" --spool "$spool" \
		--threads "$threads" --min-free-space 0 --max-connections 15000 \
		--max-connections-per-ip 15000 --hostname bench.test \
		--dns "127.0.0.1:$(cat "$dnsfile")" "$@" 2>/dev/null &
	rpid=$!
	wait_ready 5
}

stop_pid() { kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

dnsfile=$(mktemp)
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1])); time.sleep(86400)' "$dnsfile" &
dpid=$!
trap 'kill $dpid 2>/dev/null; rm -f "$dnsfile"' EXIT
while [ ! -s "$dnsfile" ]; do sleep 0.05; done

if [ "$mode" = blast ]; then
	spool=/var/tmp/ringmta-bench-blast.$$
	threads=${RINGMTA_THREADS:-1}
	for sess in 50 1000; do
		port=$(free_port)
		mport=$(free_port)
		start_ringmta
		c0=$(cpu_ticks $rpid)
		out=$(/usr/bin/time -f 'blast_cpu %U %S' "$build/ringmta-blast" --target "127.0.0.1:$port" \
			--connections "$sess" --messages "$msgs" --size 10240 --json 2>&1 || true)
		c1=$(cpu_ticks $rpid)
		syncs=$(metric ringmta_spool_syncs_total)
		stop_pid $rpid
		rm -rf "$spool"
		echo "$out" | python3 -c 'import json, sys
lines = sys.stdin.read().strip().splitlines()
d = json.loads([l for l in lines if l.startswith("{")][-1])
u, s = [float(x) for x in [l for l in lines if l.startswith("blast_cpu")][-1].split()[1:]]
c0, c1, tck, syncs, sess = [float(x) for x in sys.argv[1:]]
n = d["accepted"]
print("blast sessions=%d accepted=%d msgs_per_s=%.0f ringmta_cpu_us_per_msg=%.1f blast_cpu_us_per_msg=%.1f fdatasyncs_per_msg=%.4f"
      % (sess, n, d["msgs_per_sec"], (c1 - c0) * 1e6 / tck / n, (u + s) * 1e6 / n, syncs / n))' "$c0" "$c1" "$tck" "$syncs" "$sess"
	done
	exit 0
fi
spool=/var/tmp/ringmta-bench-spool
port=27001
mport=27002
sinkport=27003
threads=$(nproc)

# source SESSIONS PORT: seconds for $msgs messages of 10 KB
source_run() {
	t0=$(now)
	smtp-source -s "$1" -m "$msgs" -l 10240 -f bench@src.test -t rcpt@dst.test "127.0.0.1:$2" >/dev/null
	t1=$(now)
	echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }'
}

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
rss0=$(rss_kb "$rpid")
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
rss1=$(rss_kb "$rpid")
open=$(metric ringmta_connections_open)
echo "idle connections=$open rss_kb_before=$rss0 rss_kb_after=$rss1 kb_per_conn=$(echo "$rss0 $rss1 $open" | awk '{ printf "%.2f", ($2 - $1) / $3 }')"
stop_pid $ppid
stop_pid $rpid
rm -rf "$spool" /tmp/ringmta-idle-ready
