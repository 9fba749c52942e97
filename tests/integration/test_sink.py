"""test_sink.py - ringmta-sink over real loopback sockets (CONTRACT.md
"ringmta-sink"): it accepts mail from smtplib, dumps each message with its
envelope exactly, answers --fail-rcpt codes, can leave CHUNKING out of
EHLO, prints its count on SIGUSR1 and at exit (SIGTERM: exit 0), and
exits 2 when its TLS files do not load (STARTTLS itself: test_tools_tls.py).
Run with Debian's /usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import os
import re
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("RINGMTA_BUILD", os.path.join(ROOT, "build"))
SINK = os.path.join(BUILD, "ringmta-sink")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """One ringmta-sink on a free loopback port; stdout and stderr kept."""

    def __init__(self, *extra):
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory()
        self.out = open(os.path.join(self.tmp.name, "out"), "w+")
        self.err = open(os.path.join(self.tmp.name, "err"), "w+")
        self.proc = subprocess.Popen([SINK, "--listen", f"127.0.0.1:{self.port}", *extra],
                                     stdout=self.out, stderr=self.err)
        end = time.time() + 10
        while time.time() < end:
            assert self.proc.poll() is None, "sink exited: " + self.text(self.err)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sink not listening: " + self.text(self.err))

    @staticmethod
    def text(f):
        f.flush()
        f.seek(0)
        return f.read()

    def counts(self):
        """The last count line printed on stdout, as a dict."""
        lines = [l for l in self.text(self.out).splitlines() if l.startswith("ringmta-sink:")]
        assert lines, "no count line"
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}

    def usr1(self):
        before = self.text(self.out).count("\n")
        self.proc.send_signal(signal.SIGUSR1)
        end = time.time() + 5
        while self.text(self.out).count("\n") == before and time.time() < end:
            time.sleep(0.02)
        return self.counts()

    def term(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.err.close()
        self.tmp.cleanup()


@pytest.fixture
def sink():
    if not os.access(SINK, os.X_OK):
        pytest.skip(f"{SINK} not built")
    started = []

    def start(*extra):
        s = Sink(*extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def test_accepts_smtplib_and_counts(sink):
    s = sink("--threads", "2")
    for i in range(5):
        with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
            assert c.sendmail("a@b.test", ["x@y.test", "z@y.test"], f"Subject: {i}\r\n\r\nbody {i}\r\n") == {}
    assert s.usr1()["messages"] == 5
    assert s.counts()["recipients"] == 10
    assert s.term() == 0
    last = s.text(s.out).splitlines()[-1]
    assert "exit" in last and "messages=5" in last


def test_dump_content_and_envelope_exact(sink, tmp_path):
    dump = tmp_path / "dump"
    s = sink("--dump", str(dump))
    body = (b"From: a@b.test\r\nSubject: dump\r\n\r\nline one\r\n"
            b".leading dot is unstuffed\r\n..two dots\r\n\r\nlast line\r\n")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("sender@b.test")
        c.rcpt("r1@y.test")
        c.rcpt("r2@y.test")
        assert c.data(body)[0] == 250
        c.mail("")  # the null sender
        c.rcpt("r3@y.test")
        assert c.data(b"Subject: second\r\n\r\nx\r\n")[0] == 250
    got1 = (dump / "1.eml").read_bytes()
    assert got1 == (b"X-Sink-From: <sender@b.test>\r\nX-Sink-To: <r1@y.test>\r\n"
                    b"X-Sink-To: <r2@y.test>\r\n" + body)
    got2 = (dump / "2.eml").read_bytes()
    assert got2 == b"X-Sink-From: <>\r\nX-Sink-To: <r3@y.test>\r\nSubject: second\r\n\r\nx\r\n"
    assert sorted(os.listdir(dump)) == ["1.eml", "2.eml"]


def test_dump_bdat(sink, tmp_path):
    dump = tmp_path / "dump"
    s = sink("--dump", str(dump))
    msg = b"Subject: bdat\r\n\r\n.not stuffed in BDAT\r\n"
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        f = c.makefile("rb")
        c.sendall(b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n")
        c.sendall(b"BDAT %d LAST\r\n" % len(msg) + msg + b"QUIT\r\n")
        replies = f.read().decode()
    assert "250 2.0.0" in replies
    assert (dump / "1.eml").read_bytes() == b"X-Sink-From: <a@b.test>\r\nX-Sink-To: <c@d.test>\r\n" + msg


def test_fail_rcpt_codes(sink):
    s = sink("--fail-rcpt", "*@bad.test=550", "--fail-rcpt", "slow*@later.test=451")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("a@b.test")
        code, text = c.rcpt("x@BAD.test")
        assert code == 550 and text.startswith(b"5.")
        code, text = c.rcpt("slow1@later.test")
        assert code == 451 and text.startswith(b"4.")
        assert c.rcpt("fast@later.test")[0] == 250
        assert c.rcpt("x@good.test")[0] == 250
        assert c.data(b"Subject: t\r\n\r\nt\r\n")[0] == 250
    counts = s.usr1()
    assert counts["messages"] == 1 and counts["recipients"] == 2


def test_chunking_advertised_or_not(sink):
    on = sink()
    with smtplib.SMTP("127.0.0.1", on.port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.has_extn("chunking") and c.has_extn("pipelining")
    off = sink("--advertise-chunking", "off")
    with smtplib.SMTP("127.0.0.1", off.port, timeout=10) as c:
        c.ehlo("client.test")
        assert not c.has_extn("chunking")
        assert c.has_extn("pipelining") and c.has_extn("8bitmime")


def test_sigint_exits_zero_with_count(sink):
    s = sink()
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.sendmail("a@b.test", ["c@d.test"], "Subject: x\r\n\r\nx\r\n")
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(timeout=10) == 0
    assert s.counts()["messages"] == 1


def test_tls_files_missing_exit_2(tmp_path):
    if not os.access(SINK, os.X_OK):
        pytest.skip(f"{SINK} not built")
    r = subprocess.run([SINK, "--listen", f"127.0.0.1:{free_port()}", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
                       capture_output=True, text=True, timeout=10, cwd=tmp_path)
    assert r.returncode == 2
    assert "c.pem" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([SINK, "--tls-cert", "c.pem"], capture_output=True, text=True, timeout=10, cwd=tmp_path)
    assert r.returncode == 2 and "tls-key" in r.stderr


def test_port_in_use_exits_2():
    if not os.access(SINK, os.X_OK):
        pytest.skip(f"{SINK} not built")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([SINK, "--listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "127.0.0.1" in r.stderr
