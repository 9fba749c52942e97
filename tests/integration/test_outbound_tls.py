"""test_outbound_tls.py - STARTTLS toward next hops (CONTRACT.md
--outbound-tls, --outbound-ca), real binaries over loopback.

Next hops: ringmta-sink with a certificate (offers STARTTLS; --dump shows
what arrived), Debian's aiosmtpd without STARTTLS, and a scripted server
that answers 220 to STARTTLS and then says nothing. Certificates are made
at test time with openssl: a private CA, a server certificate from it for
localhost and 127.0.0.1, a second unrelated CA, and a self-signed one.
Mail is never sent in the clear under required or verify: a hop without
STARTTLS, a failed handshake or a rejected certificate defers it (the queue
keeps it, the plain sink counts nothing). Run with Debian's
/usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import os
import socket
import subprocess
import threading
import time

import pytest

from test_delivery import BUILD, Sink as AioSink, daemons  # noqa: F401 (daemons is a fixture)
from test_sink import SINK, Sink, free_port
from test_tls import make_cert

QUEUE = os.path.join(BUILD, "ringmta-queue")
BODY = b"From: a@src.test\r\nTo: b@dst.test\r\nSubject: tls\r\n\r\nline one\r\n.dot line\r\nlast\r\n"
FAST = {"RINGMTA_TEST_OUTBOUND_TIMEOUT_MS": "1500"}


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True)


def make_ca(d, name):
    key, cert = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + name,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    return cert, key


def make_leaf(d, name, ca, san):
    key, csr, cert = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".pem"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    ca = make_ca(d, "Test CA")
    other = make_ca(d, "Other CA")
    leaf = make_leaf(d, "localhost", ca, "DNS:localhost,IP:127.0.0.1")
    wrong_name = make_leaf(d, "elsewhere", ca, "DNS:elsewhere.test")
    selfsigned = make_cert(d, "self.test")
    return {"ca": ca[0], "other": other[0], "leaf": leaf, "wrong_name": wrong_name, "self": selfsigned}


@pytest.fixture
def hops():
    made = []

    def tls_sink(tmp_path, cert):
        s = Sink("--dump", str(tmp_path / "dump"), "--tls-cert", cert[0], "--tls-key", cert[1])
        made.append(s)
        return s

    def plain_sink():
        s = AioSink()
        made.append(s)
        return s
    yield tls_sink, plain_sink
    for s in made:
        s.stop()


@pytest.fixture(autouse=True)
def built():
    for prog in (SINK, QUEUE):
        if not os.access(prog, os.X_OK):
            pytest.skip(f"{prog} not built")


def dumped(tmp_path, n, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        files = sorted((tmp_path / "dump").glob("*.eml")) if (tmp_path / "dump").exists() else []
        if len(files) >= n:
            return [f.read_bytes() for f in files]
        time.sleep(0.05)
    return []


def logtext(d):
    """The daemon's log with the text format's underscores read as spaces."""
    return d.logtext().replace("_", " ")


def wait_log(d, text, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if text in logtext(d):
            return True
        time.sleep(0.05)
    return False


def queued(d):
    r = subprocess.run([QUEUE, "--spool", d.spool, "list"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return [l for l in r.stdout.splitlines() if l.strip()]


def assert_deferred_tls(d, sink_count):
    assert wait_log(d, "deferred"), d.logtext()
    log = logtext(d)
    assert "4.7.5" in log, log
    assert "delivered" not in log.replace("not delivered", ""), log
    assert len(queued(d)) == 1
    assert sink_count() == 0


def test_opportunistic_to_tls_sink_delivers_over_tls(pki, hops, daemons, tmp_path):
    tls_sink, _ = hops
    s = tls_sink(tmp_path, pki["leaf"])
    d = daemons("--smarthost", f"127.0.0.1:{s.port}")  # opportunistic is the default
    d.send("a@src.test", ["b@dst.test"], BODY)
    got = dumped(tmp_path, 1)
    assert got, d.logtext()
    assert got[0].endswith(BODY)
    assert wait_log(d, "delivered")
    log = logtext(d)
    assert " over TLSv1." in log and "opportunistic" in log, log


def test_opportunistic_to_plain_sink_delivers_in_plaintext(hops, daemons):
    _, plain_sink = hops
    s = plain_sink()
    d = daemons("--smarthost", f"127.0.0.1:{s.port}", "--outbound-tls", "opportunistic")
    d.send("a@src.test", ["b@dst.test"], BODY)
    assert s.wait(1), d.logtext()
    assert wait_log(d, "STARTTLS not offered"), d.logtext()
    assert " over TLS" not in logtext(d)


@pytest.mark.parametrize("mode", ["required", "verify"])
def test_required_to_plain_sink_is_deferred_never_plaintext(hops, daemons, mode, pki):
    _, plain_sink = hops
    s = plain_sink()
    d = daemons("--smarthost", f"127.0.0.1:{s.port}", "--outbound-tls", mode, "--outbound-ca", pki["ca"])
    d.send("a@src.test", ["b@dst.test"], BODY)
    assert_deferred_tls(d, lambda: len(s.handler.messages))
    assert "offers no STARTTLS" in logtext(d)


def test_required_to_self_signed_sink_delivers(pki, hops, daemons, tmp_path):
    tls_sink, _ = hops
    s = tls_sink(tmp_path, pki["self"])
    d = daemons("--smarthost", f"127.0.0.1:{s.port}", "--outbound-tls", "required")
    d.send("a@src.test", ["b@dst.test"], BODY)
    got = dumped(tmp_path, 1)
    assert got and got[0].endswith(BODY), d.logtext()
    assert wait_log(d, "certificate not checked")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_verify_with_right_ca_and_name_delivers(pki, hops, daemons, tmp_path, host):
    tls_sink, _ = hops
    s = tls_sink(tmp_path, pki["leaf"])
    d = daemons("--smarthost", f"{host}:{s.port}", "--outbound-tls", "verify", "--outbound-ca", pki["ca"])
    d.send("a@src.test", ["b@dst.test", "c@dst.test"], BODY)
    got = dumped(tmp_path, 1)
    assert got and got[0].endswith(BODY), d.logtext()
    assert wait_log(d, "certificate verified")


@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name", "self_signed"])
def test_verify_rejects_bad_certificate_and_defers(pki, hops, daemons, tmp_path, case):
    tls_sink, _ = hops
    cert = pki["wrong_name"] if case == "wrong_name" else pki["self"] if case == "self_signed" else pki["leaf"]
    ca = pki["other"] if case == "wrong_ca" else pki["ca"]
    s = tls_sink(tmp_path, cert)
    d = daemons("--smarthost", f"localhost:{s.port}", "--outbound-tls", "verify", "--outbound-ca", ca)
    d.send("a@src.test", ["b@dst.test"], BODY)
    assert wait_log(d, "TLS handshake with"), d.logtext()
    assert_deferred_tls(d, lambda: len(dumped(tmp_path, 1, timeout=0.5)))


def test_verify_bad_ca_file_exits_2(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    from test_delivery import BIN
    r = subprocess.run([BIN, "--listen", f"127.0.0.1:{free_port()}", "--spool", str(tmp_path / "spool"), "--smarthost",
                        "127.0.0.1:25", "--outbound-tls", "verify", "--outbound-ca", str(bad)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "ca.pem" in r.stderr


class HangAfterStarttls:
    """Says 220 to STARTTLS and then nothing; counts MAIL commands seen."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.mails = 0
        self.conns = []
        self.stop_ev = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        f = c.makefile("rb")
        try:
            c.sendall(b"220 hang.test ESMTP\r\n")
            for line in f:
                cmd = line.strip().upper()
                if cmd.startswith(b"EHLO"):
                    c.sendall(b"250-hang.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
                elif cmd == b"STARTTLS":
                    c.sendall(b"220 2.0.0 go ahead\r\n")
                    self.stop_ev.wait(60)  # the ClientHello is never answered
                    return
                elif cmd.startswith(b"MAIL"):
                    self.mails += 1
                    c.sendall(b"250 ok\r\n")
                else:
                    c.sendall(b"250 ok\r\n")
        except OSError:
            pass

    def close(self):
        self.stop_ev.set()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("mode", ["required", "opportunistic"])
def test_hung_handshake_is_deferred_within_the_timeout(daemons, mode):
    h = HangAfterStarttls()
    try:
        d = daemons("--smarthost", f"127.0.0.1:{h.port}", "--outbound-tls", mode, env=FAST)
        t0 = time.time()
        d.send("a@src.test", ["b@dst.test"], BODY)
        if mode == "required":
            assert wait_log(d, "deferred", timeout=10), d.logtext()
            assert time.time() - t0 < 8
            assert "TLS handshake with" in logtext(d) and "failed: timed out" in logtext(d)
            assert len(queued(d)) == 1
            assert h.mails == 0
        else:
            # opportunistic: the hop is retried in plaintext at once
            end = time.time() + 10
            while h.mails == 0 and time.time() < end:
                time.sleep(0.05)
            assert h.mails == 1, d.logtext()
            assert "after a failed TLS handshake" in logtext(d)
    finally:
        h.close()


def test_metrics_count_outbound_handshakes(pki, hops, tmp_path):
    from test_server import Daemon as MDaemon, metric
    tls_sink, _ = hops
    s = tls_sink(tmp_path, pki["leaf"])
    d = MDaemon("--smarthost", f"127.0.0.1:{s.port}", "--outbound-tls", "required").wait_ready()
    try:
        import smtplib
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as c:
            c.sendmail("a@src.test", ["b@dst.test"], BODY)
        assert dumped(tmp_path, 1), d.logtext()
        end = time.time() + 5
        while metric(d.mport, "ringmta_outbound_tls_handshakes_total") < 1 and time.time() < end:
            time.sleep(0.05)
        assert metric(d.mport, "ringmta_outbound_tls_handshakes_total") >= 1
        assert metric(d.mport, "ringmta_outbound_tls_handshake_failures_total") == 0
    finally:
        d.stop()
