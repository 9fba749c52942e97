"""test_delivery.py - ringmta delivers what it accepts: real binaries over
loopback, with Debian's aiosmtpd as the independent next hop.

The sink is scripted per recipient and per attempt (a list of reply codes,
the last repeating), records every transaction, and tracks its peak number
of concurrent connections. Run with Debian's /usr/bin/python3 -m pytest;
RINGMTA_BUILD names the build.
"""
import os
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

import pytest

aiosmtpd = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP as AioSMTP  # noqa: E402

from test_server import BIN, BUILD, free_port  # noqa: E402


class Handler:
    """Answers RCPT per recipient from a script; records messages."""

    def __init__(self, script=None, data_delay=0.0):
        self.script = script or {}
        self.attempts = {}
        self.messages = []
        self.lock = threading.Lock()
        self.open = 0
        self.peak = 0
        self.per_conn = {}
        self.data_delay = data_delay

    def conn_made(self, key):
        with self.lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
            self.per_conn[key] = 0

    def conn_lost(self):
        with self.lock:
            self.open -= 1

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            n = self.attempts.get(address, 0)
            self.attempts[address] = n + 1
            codes = self.script.get(address, [250])
            code = codes[min(n, len(codes) - 1)]
        if code != 250:
            return f"{code} {'4.3.0' if code < 500 else '5.1.1'} scripted reply for {address}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            import asyncio
            await asyncio.sleep(self.data_delay)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
            self.per_conn[id(session)] = self.per_conn.get(id(session), 0) + 1
        return "250 2.0.0 Ok"


class CountingSMTP(AioSMTP):
    def connection_made(self, transport):
        super().connection_made(transport)
        self.event_handler.conn_made(id(self.session))

    def connection_lost(self, exc):
        self.event_handler.conn_lost()
        super().connection_lost(exc)


class Sink:
    def __init__(self, script=None, data_delay=0.0, host="127.0.0.1", port=None):
        self.handler = Handler(script, data_delay)
        self.port = port or free_port()
        handler = self.handler

        class C(Controller):
            def factory(self):
                return CountingSMTP(handler, decode_data=False, enable_SMTPUTF8=True)

        self.ctl = C(handler, hostname=host, port=self.port)
        self.ctl.start()

    def stop(self):
        self.ctl.stop()

    def wait(self, n, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if len(self.handler.messages) >= n:
                return True
            time.sleep(0.05)
        return False


class Daemon:
    def __init__(self, *extra, spool=None, env=None):
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory()
        self.spool = spool or os.path.join(self.tmp.name, "spool")
        args = [BIN, "--listen", f"127.0.0.1:{self.port}", "--spool", self.spool, "--hostname", "relay.test",
                "--threads", "2", "--min-free-space", "0", "--max-connections", "2000"] + list(extra)
        e = dict(os.environ)
        e.update(env or {})
        self.logpath = os.path.join(self.tmp.name, "log")
        self.log = open(self.logpath, "w+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=e)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("ringmta did not start: " + self.logtext())

    def logtext(self):
        self.log.flush()
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def send(self, sender, rcpts, body):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.sendmail(sender, rcpts, body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


def strip_received(raw):
    """The message as relayed minus the one Received: header ringmta added."""
    assert raw.startswith(b"Received: "), raw[:80]
    i = raw.index(b"\r\n")
    while raw[i + 2:i + 3] in (b" ", b"\t"):
        i = raw.index(b"\r\n", i + 2)
    return raw[i + 2:]


@pytest.fixture
def sinks():
    made = []

    def make(script=None, data_delay=0.0):
        s = Sink(script, data_delay)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture
def daemons():
    made = []

    def make(*a, **k):
        d = Daemon(*a, **k)
        made.append(d)
        return d
    yield make
    for d in made:
        d.stop()


BODY = (b"From: a@src.test\r\nTo: b@dst.test\r\nSubject: relay\r\nMessage-ID: <m1@src.test>\r\n\r\n"
        b"line one\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n")


def test_body_byte_for_byte_and_dot_stuffing(sinks, daemons):
    sink = sinks()  # aiosmtpd offers no CHUNKING: DATA with dot-stuffing
    d = daemons("--smarthost", f"127.0.0.1:{sink.port}")
    d.send("a@src.test", ["b@dst.test"], BODY)
    assert sink.wait(1), d.logtext()
    frm, to, raw = sink.handler.messages[0]
    assert frm == "a@src.test" and to == ["b@dst.test"]
    assert strip_received(raw) == BODY
    assert "outcome=delivered" in d.logtext()


def relay_to_dump_sink(daemons, tmp_path, body):
    """Relay body through ringmta to ringmta-sink --dump (BDAT); the
    message as the sink stored it, envelope lines and Received: dropped."""
    port = free_port()
    dump = tmp_path / "dump"
    dump.mkdir()
    sink = subprocess.Popen([os.path.join(BUILD, "ringmta-sink"), "--listen", f"127.0.0.1:{port}",
                             "--dump", str(dump)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        d = daemons("--smarthost", f"127.0.0.1:{port}")
        d.send("a@src.test", ["b@dst.test"], body)
        end = time.time() + 10
        while time.time() < end and not list(dump.iterdir()):
            time.sleep(0.05)
        files = list(dump.iterdir())
        assert files, d.logtext()
        time.sleep(0.2)
        raw = files[0].read_bytes()
        # drop the sink's X-Sink-* envelope lines, then our Received:
        while raw.startswith(b"X-Sink-"):
            raw = raw[raw.index(b"\r\n") + 2:] if b"\r\n" in raw[:200] else raw[raw.index(b"\n") + 1:]
        return strip_received(raw)
    finally:
        sink.terminate()
        sink.wait()


def test_bdat_to_ringmta_sink_byte_for_byte(daemons, tmp_path):
    big = BODY + b"x" * 200000 + b"\r\n.\r\nend\r\n"
    assert relay_to_dump_sink(daemons, tmp_path, big) == big


@pytest.mark.parametrize("size", [10240, 65535, 65536, 65537])
def test_bdat_body_read_whole_byte_for_byte(daemons, tmp_path, size):
    """A body up to the outbound read buffer (64 KiB) is read whole and
    sent with its BDAT command and Received: header at once; one byte more
    streams in pieces. Either way the sink gets it byte for byte."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789\r\n"
    lines = (line * (size // len(line) + 1))[:size - len(BODY) - 2]
    body = BODY + lines + b"\r\n"
    assert len(body) == size
    assert relay_to_dump_sink(daemons, tmp_path, body) == body


def test_three_domains_three_routes(sinks, daemons):
    s = [sinks() for _ in range(3)]
    doms = ["one.test", "two.test", "three.test"]
    args = []
    for dom, sk in zip(doms, s):
        args += ["--route", f"{dom}=127.0.0.1:{sk.port}"]
    d = daemons(*args)
    d.send("a@src.test", ["x@one.test", "y@two.test", "z@three.test", "w@two.test"], BODY)
    for sk in s:
        assert sk.wait(1), d.logtext()
    assert s[0].handler.messages[0][1] == ["x@one.test"]
    assert sorted(s[1].handler.messages[0][1]) == ["w@two.test", "y@two.test"]
    assert s[2].handler.messages[0][1] == ["z@three.test"]
    for sk in s:
        assert strip_received(sk.handler.messages[0][2]) == BODY


def test_451_then_250_delivered_once(sinks, daemons):
    sink = sinks({"r@dst.test": [451, 250]})
    d = daemons("--smarthost", f"127.0.0.1:{sink.port}", "--retry-schedule", "1")
    d.send("a@src.test", ["r@dst.test"], BODY)
    assert sink.wait(1, timeout=10), d.logtext()
    time.sleep(2.5)
    assert len(sink.handler.messages) == 1
    assert sink.handler.attempts["r@dst.test"] == 2
    log = d.logtext()
    assert "outcome=deferred" in log and "outcome=delivered" in log


def test_550_one_recipient_bounced_others_delivered(sinks, daemons):
    sink = sinks({"bad@dst.test": [550]})
    d = daemons("--smarthost", f"127.0.0.1:{sink.port}", "--retry-schedule", "1")
    d.send("a@src.test", ["good@dst.test", "bad@dst.test"], BODY)
    assert sink.wait(1), d.logtext()
    time.sleep(2.5)
    assert sink.handler.attempts["bad@dst.test"] == 1  # never retried
    relayed = [m for m in sink.handler.messages if m[0] not in ("", "<>")]
    assert [m[1] for m in relayed] == [["good@dst.test"]]
    # the sender's report goes out through the smarthost too
    dsn = [m for m in sink.handler.messages if m[0] in ("", "<>")]
    assert [m[1] for m in dsn] == [["a@src.test"]] and b"Action: failed" in dsn[0][2]
    assert "to=bad@dst.test" in d.logtext() and "outcome=bounced" in d.logtext()


def test_expiry(sinks, daemons):
    sink = sinks({"r@dst.test": [451]})
    d = daemons("--smarthost", f"127.0.0.1:{sink.port}", "--retry-schedule", "1", "--max-queue-lifetime", "2")
    d.send("a@src.test", ["r@dst.test"], BODY)
    end = time.time() + 10
    while time.time() < end and "outcome=expired" not in d.logtext():
        time.sleep(0.1)
    assert "outcome=expired" in d.logtext()
    n = sink.handler.attempts["r@dst.test"]
    time.sleep(2)
    assert sink.handler.attempts["r@dst.test"] == n  # nothing after expiry
    # only the sender's report (Status 4.4.7) was delivered
    assert [(m[0] in ("", "<>"), m[1]) for m in sink.handler.messages] == [(True, ["a@src.test"])]
    assert b"Status: 4.4.7" in sink.handler.messages[0][2]


def test_connection_refused_deferred_then_delivered(sinks, daemons):
    port = free_port()
    d = daemons("--smarthost", f"127.0.0.1:{port}", "--retry-schedule", "1")
    d.send("a@src.test", ["r@dst.test"], BODY)
    time.sleep(0.5)
    assert "outcome=deferred" in d.logtext()
    assert "connect" in d.logtext()


def blast(port, n, conc=20):
    def worker(k):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            for i in range(k, n, conc):
                s.sendmail("a@src.test", [f"r{i}@dst.test"],
                           BODY.replace(b"<m1@", f"<m{i}@".encode()))
    th = [threading.Thread(target=worker, args=(k,)) for k in range(conc)]
    for t in th:
        t.start()
    for t in th:
        t.join()


@pytest.mark.slow
def test_dest_max_connections_peak_is_exact(sinks, daemons):
    sink = sinks(data_delay=0.02)
    d = daemons("--smarthost", f"127.0.0.1:{sink.port}", "--dest-max-connections", "3")
    blast(d.port, 200)
    assert sink.wait(200, timeout=60), (len(sink.handler.messages), d.logtext()[-2000:])
    assert sink.handler.peak == 3


@pytest.mark.slow
def test_messages_per_connection_capped(sinks, daemons):
    sink = sinks(data_delay=0.01)
    d = daemons("--smarthost", f"127.0.0.1:{sink.port}", "--dest-max-connections", "2",
                "--dest-max-messages-per-connection", "5")
    blast(d.port, 60)
    assert sink.wait(60, timeout=60), d.logtext()[-2000:]
    counts = [c for c in sink.handler.per_conn.values() if c]
    assert max(counts) <= 5
    assert len(counts) >= 12
