"""test_rolling_restart.py - a rolling restart behind HAProxy loses nothing.

Two ringmta instances (own spools, own ports, --proxy-protocol) sit behind a
real HAProxy in TCP mode that sends PROXY v2 to both and health-checks each
on its /readyz. The HAProxy configuration is tools/haproxy-example.cfg, the
one README.md's "Deployment" section shows, with only its addresses and
ports rewritten. Several client threads send mail through HAProxy, one
transaction per connection, without pause; meanwhile one instance is drained
with SIGTERM, must exit 0, is restarted on the same spool and ports, and once
it takes traffic again the other one gets the same treatment.

Why the numbers hold (from the example configuration):
  - A check fails within inter (1 s) of SIGTERM, because /readyz answers
    503 at once; the second failure follows fastinter (250 ms) later, and
    with fall 2 the instance is DOWN: at most about 1.3 s plus a check's
    round trip after SIGTERM, HAProxy sends it no new connection.
  - --drain-grace 3 keeps the instance serving normally for 3 s, so about
    1.7 s of margin on a loaded machine before new sessions would get
    421 4.3.2; sessions already routed to it finish (one transaction each).
  - A restarted instance is UP again after rise 2 passing checks, within
    downinter + fastinter (about 1.3 s) of its /readyz turning 200; the test
    waits until it has actually been handed connections before draining the
    other one, so one instance is always in rotation.
The whole scenario takes about 15 s (bounded at 60 s).

Asserted: every transaction got its 250 with a queue ID (a connection HAProxy
closes before the greeting, or any 4xx/5xx, is a failure), both instances
exit 0 after each drain, and every acknowledged queue ID is in one of the two
spools (ringmta-queue --json list). The smarthost is a closed loopback port,
so nothing leaves the spools. Run with Debian's /usr/bin/python3 -m pytest;
RINGMTA_BUILD names the build.
"""
import collections
import json
import os
import re
import signal
import smtplib
import subprocess
import tempfile
import threading
import time

import pytest

import test_proxy
from test_server import BIN, BUILD, ROOT, free_port, http_get, metric

QUEUE = os.path.join(BUILD, "ringmta-queue")
HAPROXY = test_proxy.HAPROXY
EXAMPLE = os.path.join(ROOT, "tools", "haproxy-example.cfg")
GRACE = 3
CLIENTS = 4
QUEUED = re.compile(r"queued as (\S+)")

pytestmark = pytest.mark.slow


class Instance:
    """One ringmta on fixed ports and a fixed spool, restartable."""

    def __init__(self, tmp, name, smarthost):
        self.name = name
        self.port = free_port()
        self.mport = free_port()
        self.spool = os.path.join(tmp, name + "-spool")
        self.logpath = os.path.join(tmp, name + ".log")
        self.smarthost = smarthost
        self.proc = None

    def start(self):
        args = [BIN, "--listen", f"127.0.0.1:{self.port}", "--metrics", f"127.0.0.1:{self.mport}",
                "--spool", self.spool, "--hostname", f"{self.name}.test", "--threads", "2",
                "--min-free-space", "0", "--proxy-protocol", "--proxy-trusted", "127.0.0.1/32",
                "--drain-grace", str(GRACE), "--smarthost", self.smarthost,
                "--retry-schedule", "3600"]
        with open(self.logpath, "a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        end = time.time() + 10
        while time.time() < end:
            assert self.proc.poll() is None, "ringmta exited: " + self.logtext()
            try:
                if http_get(self.mport, "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready: " + self.logtext())

    def drain(self, timeout=20):
        """SIGTERM, then the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit after drain: " + self.logtext())

    def connections(self):
        return metric(self.mport, "ringmta_connections_total")

    def queued_ids(self):
        out = subprocess.run([QUEUE, "--spool", self.spool, "--json", "list"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return {m["id"] for m in json.loads(out.stdout)}

    def logtext(self):
        with open(self.logpath) as fh:
            return fh.read()[-4000:]

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def haproxy_config(port, servers):
    """tools/haproxy-example.cfg with the bind address and the servers'
    addresses and check ports replaced: everything else as shipped."""
    with open(EXAMPLE) as fh:
        text = fh.read()
    text, n = re.subn(r"(?m)^(\s*bind )\S+", rf"\g<1>127.0.0.1:{port}", text)
    assert n == 1, "the example has one bind line"
    lines, used = [], 0
    for line in text.splitlines():
        m = re.match(r"(\s*server )(\S+) \S+( .*) port \d+(.*)$", line)
        if m:
            inst = servers[used]
            used += 1
            line = f"{m.group(1)}{inst.name} 127.0.0.1:{inst.port}{m.group(3)} port {inst.mport}{m.group(4)}"
        elif re.match(r"\s*log stdout", line):
            line = "    log stderr format raw local0"
        lines.append(line)
    assert used == len(servers), "the example has one server line per instance"
    return "\n".join(lines) + "\n"


class HAProxy(test_proxy.HAProxy):
    """HAProxy on the example configuration; logtext and stop as there."""

    def __init__(self, servers):
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory()
        cfg = os.path.join(self.tmp.name, "haproxy.cfg")
        with open(cfg, "w") as fh:
            fh.write(haproxy_config(self.port, servers))
        check = subprocess.run([HAPROXY, "-c", "-f", cfg], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(os.path.join(self.tmp.name, "log"), "w+")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=self.log, stderr=self.log)


class Load:
    """Client threads: one transaction per connection through HAProxy,
    recording each queue ID or the failure."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ids = []
        self.failures = []
        self.t0 = time.time()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def transaction(self, n):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=15) as c:
            code, msg = c.ehlo("client.test")
            if code != 250:
                return None, f"EHLO {code} {msg!r}"
            code, msg = c.mail("sender@client.test")
            if code != 250:
                return None, f"MAIL {code} {msg!r}"
            code, msg = c.rcpt(f"rcpt{n}@dest.test")
            if code != 250:
                return None, f"RCPT {code} {msg!r}"
            body = f"Subject: rolling {n}\r\nMessage-ID: <{n}@client.test>\r\n\r\nmessage {n}\r\n"
            code, msg = c.data(body.encode())
            if code != 250:
                return None, f"DATA {code} {msg!r}"
            m = QUEUED.search(msg.decode())
            if not m:
                return None, f"250 without a queue ID: {msg!r}"
            try:
                c.quit()
            except smtplib.SMTPException:
                pass  # acknowledged already; the QUIT is not the transaction
            return m.group(1), None

    def run(self, worker):
        n = 0
        while not self.stop.is_set():
            n += 1
            tag = f"w{worker}n{n}"
            try:
                qid, err = self.transaction(tag)
            except (OSError, smtplib.SMTPException) as e:
                qid, err = None, f"{type(e).__name__}: {e}"
            with self.lock:
                if qid is not None:
                    self.ids.append(qid)
                else:
                    self.failures.append((round(time.time() - self.t0, 2), tag, err))

    def count(self):
        with self.lock:
            return len(self.ids)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def wait_until(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_rolling_restart_loses_nothing():
    for path, what in ((BIN, "ringmta"), (QUEUE, "ringmta-queue")):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{what} not built")
    if not os.access(HAPROXY, os.X_OK):
        pytest.skip("haproxy is not installed (tools/install-deps installs it)")
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        # A port with nothing listening: delivery attempts fail and are
        # deferred for an hour, so every received message stays spooled.
        smarthost = f"127.0.0.1:{free_port()}"
        insts = [Instance(tmp, "mx1", smarthost), Instance(tmp, "mx2", smarthost)]
        lb = None
        try:
            for inst in insts:
                inst.start()
            lb = HAProxy(insts)
            # Both servers UP in HAProxy: each has been handed a connection.
            probe = Load(0)

            def through_lb():
                assert lb.proc.poll() is None, "haproxy exited: " + lb.logtext()
                try:
                    qid, err = probe.transaction("warmup")
                except (OSError, smtplib.SMTPException):
                    return False
                if qid is not None:
                    probe.ids.append(qid)
                return qid is not None

            probe.port = lb.port
            wait_until(through_lb, 15, "HAProxy to route mail")
            with Load(lb.port) as load:
                wait_until(lambda: all(i.connections() > 1 for i in insts), 15,
                           "both instances to get traffic: " + lb.logtext())
                timeline = []
                for inst in insts:
                    before = load.count()
                    t0 = time.time()
                    timeline.append((inst.name, "SIGTERM", round(t0 - load.t0, 2)))
                    rc = inst.drain()
                    timeline.append((inst.name, "exited", round(time.time() - load.t0, 2), rc))
                    assert rc == 0, inst.logtext()
                    inst.start()
                    wait_until(lambda: inst.connections() > 0, 15,
                               f"{inst.name} back in rotation: " + lb.logtext())
                    timeline.append((inst.name, "back", round(time.time() - load.t0, 2)))
                    assert load.count() > before, "the load stalled during the drain"
                # Some load on the pair after the last restart.
                last = load.count()
                wait_until(lambda: load.count() > last + 20, 10, "load after the restarts")
            acked = list(probe.ids) + load.ids
            failures = load.failures
            per_spool = [inst.queued_ids() for inst in insts]
            spooled = set().union(*per_spool)
        finally:
            # Shown by pytest when the test fails.
            for inst in insts:
                print(f"--- {inst.name}\n{inst.logtext() if os.path.exists(inst.logpath) else ''}")
            if lb is not None:
                # The tail only: HAProxy logs a line per connection.
                print("--- haproxy (last 40 lines)\n" + "\n".join(lb.logtext().splitlines()[-40:]))
                lb.stop()
            for inst in insts:
                inst.kill()
        assert not failures, f"{len(failures)} failed transactions, first ones: {failures[:5]} " \
                             f"timeline {timeline}"
        assert len(acked) > 100, f"too little load to mean anything: {len(acked)}"
        # Queue IDs are unique per spool, not across instances: the two
        # may hand out the same ID in the same microsecond on the same shard
        # number. An ID acknowledged twice must then be in both spools.
        twice = [q for q, n in collections.Counter(acked).items() if n > sum(q in ids for ids in per_spool)]
        assert not twice, f"queue IDs acknowledged more often than spooled: {twice[:5]}"
        lost = [q for q in acked if q not in spooled]
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages missing: {lost[:5]}"
    assert time.time() - started < 60
