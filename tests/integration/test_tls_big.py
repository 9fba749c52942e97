"""test_tls_big.py - large messages through TLS on both sides, byte for byte.

A 5 MB message goes into ringmta over STARTTLS and over implicit TLS
(--listen-tls), is decrypted record by record into the session's plaintext
buffers while the spool writes earlier records, and goes on to a
ringmta-sink with a certificate under --outbound-tls required (BDAT, and
DATA with dot-stuffing when the sink offers no CHUNKING). The sink's copy
must end with exactly the bytes sent. Run with Debian's /usr/bin/python3.
"""
import os
import random
import smtplib
import time

import pytest

from test_server import Daemon, free_port, metric
from test_sink import SINK, Sink
from test_tls import client_ctx, make_cert

SIZE = 5 * 1024 * 1024


def big_body(seed):
    """big_body - SIZE bytes of CRLF lines of varied lengths, some starting
    with a dot (stuffed on the wire, unstuffed by each receiver)"""
    rnd = random.Random(seed)
    head = f"From: a@src.test\r\nTo: b@dst.test\r\nSubject: big {seed}\r\n\r\n".encode()
    lines = [head]
    n = len(head)
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 .-=ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while n < SIZE:
        k = rnd.randrange(0, 990)
        line = bytes(rnd.choice(alphabet) for _ in range(min(k, 40))) * (k // 40 + 1)
        line = line[:k]
        if rnd.randrange(8) == 0:
            line = b"." + line
        line += b"\r\n"
        lines.append(line)
        n += len(line)
    return b"".join(lines)


def dumped(d, n, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        files = sorted(d.glob("*.eml")) if d.exists() else []
        if len(files) >= n and all(f.stat().st_size > SIZE for f in files):
            time.sleep(0.2)  # let the last write finish
            return [f.read_bytes() for f in files]
        time.sleep(0.1)
    return []


@pytest.fixture(autouse=True)
def built():
    if not os.access(SINK, os.X_OK):
        pytest.skip(f"{SINK} not built")


@pytest.mark.parametrize("chunking", ["on", "off"])
def test_5mb_over_starttls_and_implicit_tls_arrive_intact(tmp_path, chunking):
    cert, key = make_cert(str(tmp_path), "localhost")
    dump = tmp_path / "dump"
    sink = Sink("--dump", str(dump), "--tls-cert", cert, "--tls-key", key,
                "--advertise-chunking", chunking)
    tport = free_port()
    d = Daemon("--smarthost", f"127.0.0.1:{sink.port}", "--outbound-tls", "required",
               "--tls-cert", cert, "--tls-key", key, "--listen-tls", f"127.0.0.1:{tport}").wait_ready()
    try:
        bodies = [big_body(1), big_body(2)]
        c = smtplib.SMTP("127.0.0.1", d.port, timeout=120)
        c.ehlo()
        c.starttls(context=client_ctx())
        c.ehlo()
        assert c.sendmail("a@src.test", ["b@dst.test"], bodies[0]) == {}
        c.quit()
        s = smtplib.SMTP_SSL("127.0.0.1", tport, timeout=120, context=client_ctx())
        s.ehlo()
        assert s.sendmail("a@src.test", ["b@dst.test"], bodies[1]) == {}
        s.quit()
        assert metric(d.mport, "ringmta_tls_handshakes_total") >= 2
        got = dumped(dump, 2)
        assert len(got) == 2, d.logtext()
        for b in bodies:
            assert sum(1 for g in got if g.endswith(b)) == 1, "a message arrived altered"
        assert metric(d.mport, "ringmta_outbound_tls_handshakes_total") >= 1
    finally:
        d.stop()
        sink.proc.terminate()
        sink.proc.wait()


def test_many_pipelined_messages_in_one_tls_session(tmp_path):
    """Several transactions whose records arrive back to back: each commit
    waits for its appends, the next message's records are decrypted into
    free buffers, nothing is mixed up between messages."""
    cert, key = make_cert(str(tmp_path), "localhost")
    dump = tmp_path / "dump"
    sink = Sink("--dump", str(dump), "--tls-cert", cert, "--tls-key", key)
    d = Daemon("--smarthost", f"127.0.0.1:{sink.port}", "--outbound-tls", "required",
               "--tls-cert", cert, "--tls-key", key).wait_ready()
    try:
        c = smtplib.SMTP("127.0.0.1", d.port, timeout=60)
        c.ehlo()
        c.starttls(context=client_ctx())
        c.ehlo()
        sent = []
        for i in range(20):
            body = (f"Subject: m{i}\r\n\r\n".encode() + (f"{i:04d} ".encode() * 20 + b"\r\n") * (500 * (i + 1)))
            assert c.sendmail("a@src.test", ["b@dst.test"], body) == {}
            sent.append(body)
        c.quit()
        end = time.time() + 60
        files = []
        while time.time() < end:
            files = sorted(dump.glob("*.eml")) if dump.exists() else []
            if len(files) >= len(sent):
                break
            time.sleep(0.1)
        time.sleep(0.3)
        got = [f.read_bytes() for f in files]
        assert len(got) == len(sent), d.logtext()
        for b in sent:
            assert sum(1 for g in got if g.endswith(b)) == 1
    finally:
        d.stop()
        sink.proc.terminate()
        sink.proc.wait()
