#!/usr/bin/python3
"""compare-sinks.py - ringmta-blast/ringmta-sink against Postfix's
smtp-source/smtp-sink on loopback, in one run, each pair the same load.

For every size: start one server per (client, server) pair, then run the
pairs' clients in turn, REPS rounds (interleaved, so a busy moment of a
shared machine falls on every pair alike), and report the median
messages/s of the client-side count and each tool's CPU share (CPU seconds
/ wall seconds of the client's run; 1.00 is one core busy). The message
size is the whole message (ringmta-blast --size); smtp-source's -l is
chosen so its messages come to the same size. With OLD_BUILD, a further
pair runs that build's ringmta-blast against ringmta-sink (of BUILD_DIR),
to compare two versions of the load generator in the same run. Usage:
  bench/compare-sinks.py BUILD_DIR [REPS] [CONNECTIONS] [OLD_BUILD]
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import benchlib as bl  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
CONN = int(sys.argv[3]) if len(sys.argv) > 3 else 50
OLD = sys.argv[4] if len(sys.argv) > 4 else None
SIZES = [(1024, 60000), (10240, 30000)]  # (bytes, messages per run)


def start_server(kind):
    if kind == "ringmta-sink":
        return bl.RingmtaSink(BUILD, threads=1)
    return bl.SmtpSink()


def client_cmd(kind, port, size, n):
    if kind == "ringmta-blast":
        return bl.blast_cmd(BUILD, port, size, n, CONN)
    if kind == "ringmta-blast (old)":
        return bl.blast_cmd(OLD, port, size, n, CONN)
    return bl.source_cmd(port, size, n, CONN)


def one_run(client, server_pid, port, size, n):
    s0 = bl.cpu_seconds(server_pid)
    r = bl.run_client(client_cmd(client, port, size, n), n)
    if r["exit"] != 0 or r["accepted"] != n:
        raise SystemExit(f"{client} failed: {r}")
    wall = r["wall"]
    return n / wall, r["cpu"] / wall, (bl.cpu_seconds(server_pid) - s0) / wall


def main():
    pairs = [("ringmta-blast", "ringmta-sink"), ("smtp-source", "smtp-sink"),
             ("ringmta-blast", "smtp-sink"), ("smtp-source", "ringmta-sink")]
    if OLD:
        pairs.append(("ringmta-blast (old)", "ringmta-sink"))
    print(f"# {REPS} repetitions, {CONN} connections, medians; CPU = cores busy during the run")
    print("| size | client -> server | msgs/s | client CPU | server CPU |")
    print("| --- | --- | ---: | ---: | ---: |")
    for size, n in SIZES:
        servers = []
        try:
            for _, server in pairs:
                servers.append(start_server(server))
            runs = [[] for _ in pairs]
            for _ in range(REPS):
                for i, (client, _) in enumerate(pairs):
                    srv = servers[i]
                    runs[i].append(one_run(client, srv.proc.pid, srv.port, size, n))
        finally:
            for srv in servers:
                srv.close()
        for (client, server), rs in zip(pairs, runs):
            rate = statistics.median(r[0] for r in rs)
            ccpu = statistics.median(r[1] for r in rs)
            scpu = statistics.median(r[2] for r in rs)
            print(f"| {size} | {client} -> {server} | {rate:,.0f} | {ccpu:.2f} | {scpu:.2f} |", flush=True)
        for a, b in (("ringmta-blast", "smtp-source"), ("ringmta-blast (old)", "smtp-source")):
            ra = [r[0] for (c, s), rs in zip(pairs, runs) if c == a and s == "ringmta-sink" for r in rs]
            rb = [r[0] for (c, s), rs in zip(pairs, runs) if c == b and s == "smtp-sink" for r in rs]
            if ra and rb:
                print(f"# {size}: {a} -> ringmta-sink / {b} -> smtp-sink = "
                      f"{statistics.median(ra) / statistics.median(rb):.2f}x", flush=True)


if __name__ == "__main__":
    main()
