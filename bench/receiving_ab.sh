#!/bin/sh
# receiving_ab.sh - bench/receiving_relay.sh's blast mode (one shard,
# ringmta-blast at 50 and 1000 sessions, 10 KB messages) for one or more
# builds, run alternately REPS times, then the median of every figure per
# build and session count. On a shared machine single runs of one build
# swing by 30% or more; alternating builds and taking medians is what makes
# two builds comparable. ringmta-blast's own CPU per message is printed as
# the yardstick of how busy the host was (about 11 to 14 µs per message on
# an idle 2-core test machine).
#
# Usage: bench/receiving_ab.sh REPS BUILD [BUILD...]   (run as root)
#        MESSAGES=N sets the messages per run (20000)
set -eu
reps=$1
shift
here=$(dirname "$0")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$reps" ]; do
	for b in "$@"; do
		sh "$here/receiving_relay.sh" "$b" "${MESSAGES:-20000}" blast | grep '^blast ' |
			sed "s|^|$b |" | tee -a "$out"
	done
	i=$((i + 1))
done
/usr/bin/python3 - "$out" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    kv = dict(x.split("=", 1) for x in f[2:])
    runs[(f[0], int(kv["sessions"]))].append(kv)
for (build, sess), v in sorted(runs.items()):
    med = lambda k: statistics.median(float(x[k]) for x in v)
    print("median build=%s sessions=%d runs=%d msgs_per_s=%.0f ringmta_cpu_us_per_msg=%.2f "
          "blast_cpu_us_per_msg=%.2f fdatasyncs_per_msg=%.4f"
          % (build, sess, len(v), med("msgs_per_s"), med("ringmta_cpu_us_per_msg"),
             med("blast_cpu_us_per_msg"), med("fdatasyncs_per_msg")))
PY
