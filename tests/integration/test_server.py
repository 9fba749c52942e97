"""test_server.py - the ringmta daemon over real loopback sockets.

Each test starts build/ringmta on free loopback ports with a temporary
spool and short timeouts, talks to it with smtplib or raw sockets, and
checks replies, limits, timeouts, metrics and the SIGTERM drain.
Run with Debian's /usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import os
import re
import resource
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("RINGMTA_BUILD", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "ringmta")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, *extra, spool=None):
        self.port = free_port()
        self.mport = free_port()
        self.tmp = tempfile.TemporaryDirectory()
        self.spool = spool or os.path.join(self.tmp.name, "spool")
        # Unless a test routes mail itself, the next hop refuses
        # connections: accepted mail stays queued for the test to inspect,
        # rather than being looked up in DNS and bounced.
        if not any(a in extra for a in ("--smarthost", "--route")):
            extra = ("--smarthost", f"127.0.0.1:{free_port()}", "--retry-schedule", "3600") + tuple(extra)
        args = [BIN, "--listen", f"127.0.0.1:{self.port}", "--metrics", f"127.0.0.1:{self.mport}",
                "--spool", self.spool, "--hostname", "mx.test", "--threads", "2",
                "--min-free-space", "0"] + list(extra)
        env = dict(os.environ)
        self.log = open(os.path.join(self.tmp.name, "log"), "w+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env)

    def wait_ready(self, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError("ringmta exited: " + self.logtext())
            try:
                if http_get(self.mport, "/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("ringmta not ready: " + self.logtext())

    def logtext(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(port, name):
    body = http_get(port, "/metrics")[1]
    m = re.search(r"^" + re.escape(name) + r" (\d+)$", body, re.M)
    assert m, f"{name} missing from /metrics"
    return int(m.group(1))


@pytest.fixture
def daemon(request):
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    started = []

    def start(*extra, **kw):
        d = Daemon(*extra, **kw)
        started.append(d)
        return d.wait_ready()

    yield start
    for d in started:
        d.stop()


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            return lines
        lines.append(line.decode())
        if len(line) >= 4 and line[3:4] == b" ":
            return lines


def raw(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s, s.makefile("rb")


def test_greeting_and_ehlo(daemon):
    d = daemon()
    s, f = raw(d.port)
    assert read_reply(f)[0].startswith("220 mx.test")
    s.sendall(b"EHLO client.test\r\n")
    text = "".join(read_reply(f))
    for kw in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "DSN"):
        assert kw in text
    assert "STARTTLS" not in text and "AUTH" not in text
    s.close()


def test_message_end_to_end(daemon):
    d = daemon()
    c = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
    c.ehlo("client.test")
    c.mail("a@b.test")
    c.rcpt("c@d.test")
    code, msg = c.data(b"Subject: t\r\n\r\nhello\r\n")
    assert code == 250
    assert re.match(rb"2\.0\.0 Ok: queued as \S+", msg), msg
    c.quit()
    assert metric(d.mport, "ringmta_messages_received_total") == 1
    assert metric(d.mport, "ringmta_body_bytes_copied_total") == 0
    qid = msg.split()[-1].decode()
    time.sleep(0.2)
    assert "event=received id=" + qid in d.logtext()
    assert "client=127.0.0.1" in d.logtext()


def test_pipelined_transactions(daemon):
    d = daemon()
    s, f = raw(d.port)
    read_reply(f)
    s.sendall(b"EHLO p.test\r\n")
    read_reply(f)
    burst = b"".join(b"MAIL FROM:<a%d@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: %d\r\n\r\nx\r\n.\r\n" % (i, i)
                     for i in range(5)) + b"QUIT\r\n"
    s.sendall(burst)
    codes = [read_reply(f)[-1][:3] for _ in range(5 * 4 + 1)]
    assert codes == ["250", "250", "354", "250"] * 5 + ["221"]
    s.close()
    assert metric(d.mport, "ringmta_messages_received_total") == 5


def test_bdat(daemon):
    d = daemon()
    s, f = raw(d.port)
    read_reply(f)
    s.sendall(b"EHLO b.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n")
    read_reply(f), read_reply(f), read_reply(f)
    body = b"Subject: bdat\r\n\r\n" + b"y" * 10000 + b"\r\n"
    s.sendall(b"BDAT %d\r\n" % 100 + body[:100])
    assert read_reply(f)[-1].startswith("250")
    s.sendall(b"BDAT %d LAST\r\n" % (len(body) - 100) + body[100:])
    last = read_reply(f)[-1]
    assert last.startswith("250") and "queued as" in last
    s.close()
    assert metric(d.mport, "ringmta_body_bytes_copied_total") == 0


def test_large_message(daemon):
    d = daemon()
    c = smtplib.SMTP("127.0.0.1", d.port, timeout=60)
    line = b"z" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (20 * 1024 * 1024 // len(line))
    c.ehlo()
    c.mail("a@b.test")
    c.rcpt("c@d.test")
    code, msg = c.data(body)
    assert code == 250, msg
    c.quit()
    assert metric(d.mport, "ringmta_received_bytes_total") >= 20 * 1000 * 1000


def test_many_connections(daemon):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 8000 and os.geteuid() != 0:
        pytest.skip("cannot raise the fd limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(8000, soft), max(8000, hard)))
    d = daemon("--max-connections", "5000", "--max-connections-per-ip", "5000")
    socks = []
    try:
        for _ in range(3000):
            socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=30))
        for s in socks:
            assert s.recv(512).startswith(b"220 ")
        assert metric(d.mport, "ringmta_connections_open") == 3000
    finally:
        for s in socks:
            s.close()


def test_max_connections_per_ip(daemon):
    d = daemon("--max-connections-per-ip", "2")
    a, fa = raw(d.port)
    b, fb = raw(d.port)
    assert read_reply(fa)[0].startswith("220")
    assert read_reply(fb)[0].startswith("220")
    c, fc = raw(d.port)
    assert read_reply(fc)[0].startswith("421 4.7.0")
    assert fc.read() == b""  # closed
    assert metric(d.mport, 'ringmta_connections_rejected_total{reason="max_connections_per_ip"}') == 1
    for s in (a, b, c):
        s.close()


def test_max_connections(daemon):
    d = daemon("--max-connections", "2")
    a, fa = raw(d.port)
    b, fb = raw(d.port)
    read_reply(fa), read_reply(fb)
    c, fc = raw(d.port)
    assert read_reply(fc)[0].startswith("421")
    assert fc.read() == b""
    for s in (a, b, c):
        s.close()


def test_command_timeout(daemon):
    d = daemon("--command-timeout", "1")
    s, f = raw(d.port)
    read_reply(f)
    t0 = time.time()
    assert read_reply(f)[0].startswith("421 4.4.2")
    assert 0.8 <= time.time() - t0 < 5
    assert f.read() == b""
    s.close()


def test_data_timeout(daemon):
    d = daemon("--data-timeout", "1", "--command-timeout", "30")
    s, f = raw(d.port)
    read_reply(f)
    s.sendall(b"HELO x.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    for _ in range(4):
        read_reply(f)
    s.sendall(b"Subject: slow\r\n")
    t0 = time.time()
    assert read_reply(f)[0].startswith("421 4.4.2")
    assert time.time() - t0 < 5
    s.close()


def test_http_line_closes(daemon):
    d = daemon()
    s, f = raw(d.port)
    read_reply(f)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_reply(f)[0].startswith("500 5.5.1")
    assert f.read() == b""
    s.close()


def test_metrics_endpoints(daemon):
    d = daemon()
    assert http_get(d.mport, "/healthz")[0] == 200
    assert http_get(d.mport, "/readyz")[0] == 200
    assert http_get(d.mport, "/nope")[0] == 404
    body = http_get(d.mport, "/metrics")[1]
    for name in ("ringmta_connections_total", "ringmta_connections_open", "ringmta_messages_received_total",
                 "ringmta_messages_delivered_total", "ringmta_messages_deferred_total",
                 "ringmta_messages_bounced_total", "ringmta_queue_messages", "ringmta_received_bytes_total",
                 "ringmta_body_bytes_copied_total", "ringmta_spool_syncs_total"):
        assert re.search(r"^" + name + r" \d+$", body, re.M), name
    before = metric(d.mport, "ringmta_connections_total")
    c = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
    c.quit()
    assert metric(d.mport, "ringmta_connections_total") == before + 1


def test_sigterm_drain(daemon):
    d = daemon("--drain-grace", "2")
    s, f = raw(d.port)
    read_reply(f)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert http_get(d.mport, "/readyz")[0] == 503
    # Still served normally during the grace period.
    s2, f2 = raw(d.port)
    assert read_reply(f2)[0].startswith("220")
    f2.close()  # the makefile() object holds the socket open too
    s2.close()
    time.sleep(2.2)
    s3, f3 = raw(d.port)
    assert read_reply(f3)[0].startswith("421 4.3.2")
    f3.close()
    s3.close()
    # The open session may finish its work.
    s.sendall(b"HELO x.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    for _ in range(4):
        read_reply(f)
    s.sendall(b"Subject: late\r\n\r\nx\r\n.\r\nQUIT\r\n")
    assert read_reply(f)[0].startswith("250")
    assert read_reply(f)[0].startswith("221")
    s.close()
    try:
        assert d.proc.wait(timeout=10) == 0
    except subprocess.TimeoutExpired:
        raise AssertionError(d.logtext() + http_get(d.mport, "/metrics")[1])


def test_second_instance_exits_2(daemon):
    d = daemon()
    other = Daemon(spool=d.spool)
    try:
        assert other.proc.wait(timeout=10) == 2
        assert "lock" in other.logtext()
    finally:
        other.stop()


def test_relay_denied_outside_relay_net(daemon):
    d = daemon("--relay-net", "10.0.0.0/8", "--relay-domain", "local.test")
    c = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
    c.ehlo()
    c.mail("a@b.test")
    code, msg = c.rcpt("c@elsewhere.test")
    assert code == 554 and msg.startswith(b"5.7.1")
    code, _ = c.rcpt("u@local.test")
    assert code == 250
    c.quit()


def test_relay_recipients_unknown_user(daemon):
    with tempfile.NamedTemporaryFile("w", suffix=".rcpts", delete=False) as t:
        t.write("known@local.test\n")
    try:
        d = daemon("--relay-domain", "local.test", "--relay-recipients", t.name)
        c = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
        c.ehlo()
        c.mail("a@b.test")
        assert c.rcpt("known@local.test")[0] == 250
        code, msg = c.rcpt("unknown@local.test")
        assert code == 550 and msg.startswith(b"5.1.1")
        c.quit()
    finally:
        os.unlink(t.name)
