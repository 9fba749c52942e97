#!/usr/bin/python3
"""compare-sinks.py - ringmta-blast/ringmta-sink against Postfix's
smtp-source/smtp-sink on loopback, in one run, each pair the same load.

For every size and every (client, server) pair: start the server, run the
client REPS times, and report the median messages/s of the client-side
count and each tool's CPU share (CPU seconds / wall seconds of the client's
run; 1.00 is one core busy). The message size is the whole message
(ringmta-blast --size); smtp-source's -l is chosen so its messages come to
the same size. Usage:
  bench/compare-sinks.py BUILD_DIR [REPS] [CONNECTIONS]
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
CONN = int(sys.argv[3]) if len(sys.argv) > 3 else 50
SIZES = [(1024, 60000), (10240, 30000)]  # (bytes, messages per run)
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def start_server(kind, port):
    if kind == "ringmta-sink":
        cmd = [os.path.join(BUILD, "ringmta-sink"), "--listen", f"127.0.0.1:{port}", "--threads", "1"]
    else:
        cmd = ["/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{kind} did not start")


def client_cmd(kind, port, size, n):
    if kind == "ringmta-blast":
        return [os.path.join(BUILD, "ringmta-blast"), "--target", f"127.0.0.1:{port}", "--connections",
                str(CONN), "--messages", str(n), "--size", str(size), "--json"]
    # smtp-source: about 102 header bytes, and a CR added per 79-byte line
    payload = (size - 102) * 79 // 80
    return ["/usr/sbin/smtp-source", "-d", "-s", str(CONN), "-m", str(n), "-l", str(payload),
            f"127.0.0.1:{port}"]


def one_run(client, server_pid, port, size, n):
    s0 = cpu_seconds(server_pid)
    t0 = time.monotonic()
    p = subprocess.Popen(client_cmd(client, port, size, n), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    out = p.stdout.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{client} failed: {out} {p.stderr.read().decode()}")
    if client == "ringmta-blast":
        m = re.search(r'"accepted":(\d+)', out)
        assert m and int(m.group(1)) == n, out
    return n / wall, (ru.ru_utime + ru.ru_stime) / wall, (cpu_seconds(server_pid) - s0) / wall


def main():
    pairs = [("ringmta-blast", "ringmta-sink"), ("smtp-source", "smtp-sink"),
             ("ringmta-blast", "smtp-sink"), ("smtp-source", "ringmta-sink")]
    print(f"# {REPS} repetitions, {CONN} connections, medians; CPU = cores busy during the run")
    print("| size | client -> server | msgs/s | client CPU | server CPU |")
    print("| --- | --- | ---: | ---: | ---: |")
    for size, n in SIZES:
        for client, server in pairs:
            port = free_port()
            srv = start_server(server, port)
            try:
                runs = [one_run(client, srv.pid, port, size, n) for _ in range(REPS)]
            finally:
                srv.terminate()
                srv.wait()
            rate = statistics.median(r[0] for r in runs)
            ccpu = statistics.median(r[1] for r in runs)
            scpu = statistics.median(r[2] for r in runs)
            print(f"| {size} | {client} -> {server} | {rate:,.0f} | {ccpu:.2f} | {scpu:.2f} |", flush=True)


if __name__ == "__main__":
    main()
