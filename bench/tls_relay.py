#!/usr/bin/python3
"""tls_relay.py - relay throughput with TLS on both sides beside plain, in
one run: ringmta-blast -> ringmta -> ringmta-sink, 10 KB messages.

plain: blast without STARTTLS, ringmta --outbound-tls none, a plain sink.
tls:   blast --starttls into ringmta (certificate set), ringmta
       --outbound-tls required to a sink with a certificate: every message
       is decrypted on the way in and encrypted on the way out.
The two modes alternate; each figure is the median over the repetitions.
delivered/s counts from the generator's start until the sink has every
message; ringmta CPU is utime+stime of all its threads over that window,
the sink's likewise, and ringmta-blast's is its whole run (rusage), each
divided by the messages: where the CPU of a TLS run goes, per process.
Handshakes (inbound, inbound resumed, outbound) are counted per 10,000
messages from ringmta's metrics.
With several builds (--build A --build B) every repetition runs each build
in both modes, so an old and a new binary are compared in the same noise.
--perf DIR records `perf record -g` of ringmta during each TLS run.

  bench/tls_relay.py [--build DIR]... [--reps R] [--messages N] [--sessions C] [--perf DIR]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def run(build, tls, n, conns, certs, perf=None):
    """run - one repetition; returns (delivered/s, then µs of CPU per message
    of ringmta, ringmta-blast and ringmta-sink, then handshakes per 10,000
    messages: inbound, inbound resumed, outbound)"""
    tlsf = ["--tls-cert", certs[0], "--tls-key", certs[1]]
    sink = benchlib.RingmtaSink(build, extra=tlsf if tls else ())
    spool = tempfile.mkdtemp(prefix="ringmta-tls-relay-", dir="/var/tmp")
    port, mport = benchlib.free_port(), benchlib.free_port()
    relay = subprocess.Popen(
        [os.path.join(build, "ringmta"), "--listen", f"127.0.0.1:{port}", "--metrics",
         f"127.0.0.1:{mport}", "--spool", spool, "--smarthost", f"127.0.0.1:{sink.port}",
         "--min-free-space", "0", "--hostname", "relay.test",
         "--outbound-tls", "required" if tls else "none"] + (tlsf if tls else []),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        benchlib.wait_port(port, relay, "ringmta")
        benchlib.wait_port(mport, relay, "ringmta metrics")
        hs0 = handshakes(mport)
        cpu0 = benchlib.cpu_seconds(relay.pid)
        scpu0 = benchlib.cpu_seconds(sink.proc.pid)
        argv = benchlib.blast_cmd(build, port, 10240, n, conns) + (["--starttls"] if tls else [])
        rec = None
        if perf is not None and tls:
            rec = subprocess.Popen(["perf", "record", "-g", "-q", "-o", perf, "-p", str(relay.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        t0 = time.monotonic()
        r = benchlib.run_client(argv, n)
        if r["accepted"] != n:
            raise SystemExit(f"only {r['accepted']} of {n} accepted: {r['stderr']}")
        deadline = time.monotonic() + 120
        while sink.count() < n:
            if time.monotonic() > deadline:
                raise SystemExit("not everything arrived at the sink within 120 s")
            time.sleep(0.02)
        wall = time.monotonic() - t0
        cpu = benchlib.cpu_seconds(relay.pid) - cpu0
        scpu = benchlib.cpu_seconds(sink.proc.pid) - scpu0
        hs = [(b - a) * 10000 / n for a, b in zip(hs0, handshakes(mport))]
        if rec is not None:
            rec.send_signal(2)
            rec.wait()
        return (n / wall, cpu / n * 1e6, r["cpu"] / n * 1e6, scpu / n * 1e6, *hs)
    finally:
        benchlib.stop(relay)
        sink.close()
        subprocess.run(["rm", "-rf", spool], check=False)


HS_METRICS = ("ringmta_tls_handshakes_total", "ringmta_tls_resumed_total",
              "ringmta_outbound_tls_handshakes_total")


def handshakes(mport):
    """handshakes - ringmta's inbound, inbound resumed and outbound TLS
    handshake counters"""
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as f:
        text = f.read().decode()
    val = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in HS_METRICS:
            val[parts[0]] = float(parts[1])
    return [val.get(m, 0.0) for m in HS_METRICS]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", action="append")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--perf")
    a = ap.parse_args()
    builds = a.build or [os.path.join(os.path.dirname(__file__), "..", "build")]
    benchlib.raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp:
        certs = (os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", certs[1], "-out", certs[0],
                        "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
        res = {(b, t): [] for b in builds for t in (False, True)}
        for rep in range(a.reps):
            for b in (builds if rep % 2 == 0 else builds[::-1]):
                for tls in ((False, True) if rep % 2 == 0 else (True, False)):
                    perf = None
                    if a.perf:
                        os.makedirs(a.perf, exist_ok=True)
                        perf = os.path.join(a.perf, f"{os.path.basename(os.path.normpath(b))}-{rep}.data")
                    res[b, tls].append(run(b, tls, a.messages, a.sessions, certs, perf))
                    x = res[b, tls][-1]
                    print(f"rep {rep} {b} {'tls' if tls else 'plain'}: {x[0]:.0f} delivered/s, "
                          f"CPU per message ringmta {x[1]:.0f}, blast {x[2]:.0f}, sink {x[3]:.0f} µs; "
                          f"handshakes per 10k in {x[4]:.0f} (resumed {x[5]:.0f}), out {x[6]:.0f}",
                          file=sys.stderr)
    for b in builds:
        med = {t: [statistics.median(x[k] for x in res[b, t]) for k in range(7)] for t in (False, True)}
        print(f"\n{b}: runs plain {'/'.join(f'{x[0]:.0f}' for x in res[b, False])}, "
              f"TLS {'/'.join(f'{x[0]:.0f}' for x in res[b, True])} delivered/s; "
              f"ringmta CPU plain {'/'.join(f'{x[1]:.0f}' for x in res[b, False])}, "
              f"TLS {'/'.join(f'{x[1]:.0f}' for x in res[b, True])} µs")
        print(f"| relay, 10 KB, {a.sessions} sessions | delivered/s | CPU per message: ringmta | blast | sink "
              "| handshakes per 10k: in (resumed) | out |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for t, name in ((False, "plain in and out"), (True, "TLS in and out")):
            m = med[t]
            print(f"| {name} | {m[0]:.0f} | {m[1]:.0f} µs | {m[2]:.0f} µs | {m[3]:.0f} µs "
                  f"| {m[4]:.0f} ({m[5]:.0f}) | {m[6]:.0f} |")
        p, q = med[False], med[True]
        print(f"| TLS / plain | {q[0] / p[0]:.0%} | {q[1] / p[1]:.2f}x | {q[2] / p[2]:.2f}x | {q[3] / p[3]:.2f}x | | |")


if __name__ == "__main__":
    main()
