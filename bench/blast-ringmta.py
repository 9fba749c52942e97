#!/usr/bin/python3
"""blast-ringmta.py - two builds' ringmta-blast against one durable ringmta,
side by side in one run.

Starts BUILD_DIR's ringmta (--threads 2, a fresh spool under /var/tmp per
run, fdatasync before every 250, a smarthost on a closed port with a long
retry so accepted mail stays queued: receiving only), then for each size
runs NEW_BUILD's and OLD_BUILD's ringmta-blast in turn, REPS rounds, each
run on a fresh daemon. Reports medians of: messages/s (the blast's own
count and seconds), ringmta's CPU microseconds per message (utime+stime
from /proc over the run) and the blast's CPU share. Usage:
  bench/blast-ringmta.py BUILD_DIR OLD_BUILD [REPS] [CONNECTIONS] [MESSAGES]
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import benchlib as bl  # noqa: E402

BUILD = sys.argv[1]
OLD = sys.argv[2]
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
CONN = int(sys.argv[4]) if len(sys.argv) > 4 else 50
N = int(sys.argv[5]) if len(sys.argv) > 5 else 20000
SIZES = [1024, 10240]


def one_run(blast_build, size):
    spool = tempfile.mkdtemp(prefix="ringmta-bench-", dir="/var/tmp")
    port, mport = bl.free_port(), bl.free_port()
    d = subprocess.Popen([os.path.join(BUILD, "ringmta"), "--listen", f"127.0.0.1:{port}",
                          "--metrics", f"127.0.0.1:{mport}", "--spool", spool, "--threads", "2",
                          "--hostname", "bench.test", "--min-free-space", "0",
                          "--smarthost", f"127.0.0.1:{bl.free_port()}", "--retry-schedule", "3600"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bl.wait_port(port, d, "ringmta")
        c0 = bl.cpu_seconds(d.pid)
        r = bl.run_client(bl.blast_cmd(blast_build, port, size, N, CONN), N)
        cpu = bl.cpu_seconds(d.pid) - c0
    finally:
        bl.stop(d, signal.SIGKILL)  # its spool is thrown away
        shutil.rmtree(spool, ignore_errors=True)
    if r["exit"] != 0 or r["accepted"] != N:
        raise SystemExit(f"{blast_build}: {r}")
    return N / r["seconds"], cpu * 1e6 / N, r["cpu"] / r["wall"]


def main():
    bl.raise_fd_limit()
    builds = [("new", BUILD), ("old", OLD)]
    print(f"# {REPS} rounds, {CONN} sessions, {N} messages per run, medians")
    print("| size | ringmta-blast | msgs/s | ringmta CPU µs/msg | blast CPU |")
    print("| --- | --- | ---: | ---: | ---: |")
    for size in SIZES:
        runs = {name: [] for name, _ in builds}
        for _ in range(REPS):
            for name, b in builds:
                runs[name].append(one_run(b, size))
        for name, _ in builds:
            rs = runs[name]
            print(f"| {size} | {name} | {statistics.median(r[0] for r in rs):,.0f} | "
                  f"{statistics.median(r[1] for r in rs):.0f} | "
                  f"{statistics.median(r[2] for r in rs):.2f} |", flush=True)
        new, old = (statistics.median(r[0] for r in runs[k]) for k in ("new", "old"))
        print(f"# {size}: new/old msgs/s = {new / old:.2f}x", flush=True)


if __name__ == "__main__":
    main()
