# lib.sh - helpers the shell benchmarks share; sourced (POSIX sh), after the
# script has set mport (ringmta's --metrics port) where it uses metric or
# wait_ready.

tck=$(getconf CLK_TCK) # clock ticks per second, for cpu_ticks

# free_port - a loopback TCP port nothing listens on right now
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# metric NAME - the value of NAME in ringmta's /metrics
metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }

# cpu_ticks PID - user + system CPU of a process, all its threads, in ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# rss_kb PID - a process's resident set size in KB
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# wait_ready SECONDS - until ringmta's /readyz says 200, polled every 20 ms;
# exits the script when it does not within SECONDS
wait_ready() {
	_i=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/readyz")" = 200 ]; do
		_i=$((_i + 1))
		[ $_i -lt $(($1 * 50)) ] || { echo "ringmta not ready in $1 s" >&2; exit 1; }
		sleep 0.02
	done
}
