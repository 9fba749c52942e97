#!/usr/bin/python3
"""relay_cpu.py - ringmta's CPU per relayed message, builds side by side.

For each repetition and each build directory given (in turn, the order
alternating between repetitions so both see the same noise): start
ringmta-sink (one thread) on a free loopback port and ringmta (fresh spool
under /var/tmp, --smarthost to the sink, --threads 2), send N messages of
SIZE bytes with ringmta-blast over C sessions, wait until the sink has
counted all of them, and take ringmta's utime+stime from /proc/PID/stat
over that span (all its threads, the io_uring workers included). Prints
one line per run and the median per build of CPU µs per relayed message
and delivered/s. With --receive-only the smarthost is a closed port (every
message is deferred once, nothing delivered) and the run ends when the
generator does: the receiving side's share, to subtract. With --syscalls,
`perf stat` counts ringmta's write(2) and pread(2) calls, io_uring_enter
calls and io_uring operations submitted over the same span, printed per
message (perf's tracepoints cost a little CPU: take the CPU figures from
runs without it).

    bench/relay_cpu.py --reps 5 build-old build-x     # as root
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


PERF_EVENTS = ["syscalls:sys_enter_write", "syscalls:sys_enter_pread64", "syscalls:sys_enter_io_uring_enter",
               "io_uring:io_uring_submit_req"]


def perf_start(pid, out):
    """perf_start - count PERF_EVENTS of pid (all its threads) into out"""
    return subprocess.Popen(["perf", "stat", "-x", ",", "-o", out, "-e", ",".join(PERF_EVENTS), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(perf, out):
    """perf_stop - end the count; {event: count}"""
    perf.send_signal(signal.SIGINT)
    perf.wait(10)
    counts = {}
    with open(out) as f:
        for ln in f:
            parts = ln.strip().split(",")
            if len(parts) > 2 and parts[2] in PERF_EVENTS and parts[0].isdigit():
                counts[parts[2]] = int(parts[0])
    return counts


def run_one(build, sink_build, n, size, conns, extra, receive_only=False, syscalls=False):
    """run_one - one relay run; returns (cpu µs per message, delivered/s,
    {event: count per message} or None)"""
    base = tempfile.mkdtemp(prefix="ringmta-relaycpu.", dir="/var/tmp")
    sink = bl.RingmtaSink(sink_build)
    port = bl.free_port()
    log = open(os.path.join(base, "ringmta.log"), "wb")
    proc = subprocess.Popen(
        [os.path.join(build, "ringmta"), "--listen", f"127.0.0.1:{port}", "--spool",
         os.path.join(base, "spool"), "--smarthost",
         f"127.0.0.1:{bl.free_port() if receive_only else sink.port}", "--threads", "2",
         "--hostname", "relay.bench.test", "--outbound-tls", "none", "--min-free-space", "0", *extra],
        stdout=log, stderr=log)
    try:
        bl.wait_port(port, proc, "ringmta")
        perf = perf_start(proc.pid, os.path.join(base, "perf.txt")) if syscalls else None
        if perf is not None:
            time.sleep(0.5)  # perf attaches
        cpu0 = bl.cpu_seconds(proc.pid)
        t0 = time.monotonic()
        client = bl.Client(bl.blast_cmd(sink_build, port, size, n, conns))
        res = None
        deadline = None
        while True:
            if res is None:
                res = client.poll(n)
                if res is not None:
                    deadline = time.monotonic() + 60
            got = res["accepted"] if receive_only and res is not None else sink.count()
            if res is not None and got >= res["accepted"]:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise SystemExit(f"{build}: sink has {got} of {res['accepted']}")
            time.sleep(0.02)
        wall = time.monotonic() - t0
        cpu = bl.cpu_seconds(proc.pid) - cpu0
        per = None
        if perf is not None:
            per = {k: v / res["accepted"] for k, v in perf_stop(perf, os.path.join(base, "perf.txt")).items()}
        return cpu * 1e6 / res["accepted"], res["accepted"] / wall, per
    finally:
        bl.stop(proc)
        log.close()
        sink.close()
        shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="ringmta CPU per relayed message, builds side by side")
    ap.add_argument("builds", nargs="+", help="build directories with ringmta")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--sink-build", help="build with ringmta-sink and ringmta-blast (default: the last)")
    ap.add_argument("--receive-only", action="store_true", help="next hop closed: receiving only")
    ap.add_argument("--syscalls", action="store_true", help="count system calls and io_uring operations")
    args = ap.parse_args()
    bl.raise_fd_limit()
    sink_build = args.sink_build or args.builds[-1]
    res = {b: [] for b in args.builds}
    for r in range(args.reps):
        order = args.builds if r % 2 == 0 else list(reversed(args.builds))
        for b in order:
            us, rate, per = run_one(b, sink_build, args.messages, args.size, args.connections, (),
                                    args.receive_only, args.syscalls)
            res[b].append((us, rate))
            extra = ""
            if per is not None:
                extra = " " + " ".join(f"{k.split(':')[1].replace('sys_enter_', '')}={per.get(k, 0):.2f}"
                                       for k in PERF_EVENTS)
            print(f"rep {r} {b}: {us:.1f} us/msg {rate:.0f} delivered/s{extra}", flush=True)
    for b in args.builds:
        us = [x[0] for x in res[b]]
        rate = [x[1] for x in res[b]]
        print(f"{b}: median {statistics.median(us):.1f} us/msg [{min(us):.1f} - {max(us):.1f}], "
              f"{statistics.median(rate):.0f} delivered/s")


if __name__ == "__main__":
    main()
