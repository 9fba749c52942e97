"""test_tools_tls.py - TLS in the benchmark tools, over loopback
(CONTRACT.md "ringmta-blast", "ringmta-sink"): ringmta-sink with
--tls-cert/--tls-key offers STARTTLS and takes mail over it (smtplib's
starttls, the message lands in --dump byte for byte); ringmta-blast
--starttls delivers through it with counts that match the sink's, large
messages and BDAT included; against the daemon with a certificate every
session is TLS (its metrics count the handshakes); against a server that
does not offer STARTTLS, or whose handshake fails, every session is an
error and the exit status is 1.
Certificates are made at test time with openssl (test_tls.make_cert).
Run with Debian's /usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import json
import os
import smtplib
import socket
import subprocess
import threading

import pytest

from test_blast import BLAST, blast_json
from test_server import BIN, Daemon, metric
from test_sink import SINK, free_port, sink  # noqa: F401 (sink is the fixture)
from test_tls import client_ctx, make_cert


@pytest.fixture(autouse=True)
def tools_built():
    for prog in (BLAST, SINK):
        if not os.access(prog, os.X_OK):
            pytest.skip(f"{prog} not built")


@pytest.fixture
def pki(tmp_path):
    cert, key = make_cert(str(tmp_path), "sink.test")
    return {"cert": cert, "key": key}


def tls_args(pki):
    return ["--tls-cert", pki["cert"], "--tls-key", pki["key"]]


def test_sink_offers_starttls_and_dumps(sink, pki, tmp_path):
    dump = tmp_path / "dump"
    s = sink("--dump", str(dump), *tls_args(pki))
    body = b"Subject: over tls\r\n\r\nline one\r\n.dot line\r\n"
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls")
        assert c.starttls(context=client_ctx())[0] == 220
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        c.ehlo("client.test")
        assert not c.has_extn("starttls")  # not offered twice (RFC 3207 §4.2)
        assert c.has_extn("pipelining")
        c.mail("tls@b.test")
        c.rcpt("r@y.test")
        assert c.data(body)[0] == 250
    assert (dump / "1.eml").read_bytes() == b"X-Sink-From: <tls@b.test>\r\nX-Sink-To: <r@y.test>\r\n" + body
    assert s.usr1()["messages"] == 1


def test_sink_without_certificate_offers_no_starttls(sink):
    s = sink()
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.ehlo("client.test")
        assert not c.has_extn("starttls")


def test_sink_bad_certificate_exits_2(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    r = subprocess.run([SINK, "--listen", f"127.0.0.1:{free_port()}", "--tls-cert", str(bad),
                        "--tls-key", str(bad)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "bad.pem" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("mode", [[], ["--bdat"]])
def test_blast_starttls_counts_match_the_sink(sink, pki, mode):
    s = sink("--threads", "2", *tls_args(pki))
    rc, out = blast_json(s.port, "--starttls", "--connections", "20", "--messages", "2000",
                         "--threads", "2", *mode)
    assert rc == 0, out
    assert out["sent"] == out["accepted"] == 2000 and out["errors"] == 0
    counts = s.usr1()
    assert counts["messages"] == 2000 and counts["bytes"] == 2000 * 1024


def test_blast_starttls_large_messages_whole(sink, pki, tmp_path):
    """Messages of several TLS records each arrive whole and exact."""
    dump = tmp_path / "dump"
    s = sink("--dump", str(dump), *tls_args(pki))
    for mode, n in (([], 6), (["--bdat"], 6)):
        rc, out = blast_json(s.port, "--starttls", "--connections", "3", "--messages", str(n),
                             "--size", "100000", *mode)
        assert rc == 0 and out["accepted"] == n
    files = sorted(dump.iterdir())
    assert len(files) == 12
    for f in files:
        raw = f.read_bytes()
        env = raw.split(b"\r\n")[:2]
        assert env[0].startswith(b"X-Sink-From:") and env[1].startswith(b"X-Sink-To:")
        assert len(raw) - sum(len(l) + 2 for l in env) == 100000


def test_blast_starttls_into_the_daemon(pki):
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    dead = free_port()  # delivery is not under test: a next hop nobody answers
    d = Daemon(*tls_args(pki), "--route", f"sink.test=127.0.0.1:{dead}").wait_ready()
    try:
        rc, out = blast_json(d.port, "--starttls", "--connections", "10", "--messages", "300",
                             "--size", "10240")
        assert rc == 0, out
        assert out["accepted"] == 300 and out["errors"] == 0
        assert metric(d.mport, "ringmta_messages_received_total") == 300
        assert metric(d.mport, "ringmta_tls_handshakes_total") == 10  # one per session
        assert metric(d.mport, "ringmta_tls_handshake_failures_total") == 0
    finally:
        d.stop()


def test_blast_starttls_not_offered_is_an_error(sink):
    s = sink()  # no certificate: no STARTTLS in EHLO
    rc, out = blast_json(s.port, "--starttls", "--connections", "3", "--messages", "10")
    assert rc == 1
    assert out["errors"] == 3 and out["sent"] == 0 and out["accepted"] == 0
    assert s.usr1()["messages"] == 0


def test_blast_starttls_failed_handshake_is_an_error():
    """A server that says 220 to STARTTLS and then speaks no TLS."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    port = lst.getsockname()[1]

    def serve(conn):
        with conn:
            f = conn.makefile("rb")
            conn.sendall(b"220 fake.test ESMTP\r\n")
            f.readline()  # EHLO
            conn.sendall(b"250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
            f.readline()  # STARTTLS
            conn.sendall(b"220 2.0.0 go ahead\r\n")
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"this is not a TLS record\r\n" * 4)
            try:
                conn.recv(4096)
            except OSError:
                pass

    def accept_loop():
        for _ in range(2):
            try:
                conn, _ = lst.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    try:
        r = subprocess.run([BLAST, "--target", f"127.0.0.1:{port}", "--starttls", "--connections", "2",
                            "--messages", "4", "--json"], capture_output=True, text=True, timeout=30)
    finally:
        lst.close()
    out = json.loads(r.stdout)
    assert r.returncode == 1
    assert out["errors"] == 2 and out["sent"] == 0
