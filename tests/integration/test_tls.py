"""test_tls.py - inbound TLS (STARTTLS, implicit TLS) and AUTH, black-box.

Certificates are made at test time with openssl; clients are Python's ssl
and smtplib, openssl s_client and swaks. Each test starts its own ringmta
(the failed-AUTH counts are per client address, and every client here is
127.0.0.1). Run with Debian's /usr/bin/python3 -m pytest.
"""
import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from test_server import BIN, BUILD, Daemon, free_port, metric

PASSWORD = "s3cret pass"


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def make_cert(d, name):
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + name)
    return cert, key


def der(cert):
    with open(cert) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def sha512_hash(pw):
    return run("openssl", "passwd", "-6", pw).stdout.strip()


def yescrypt_hash(pw):
    # mkpasswd is in Debian's whois package (tools/install-deps installs it).
    h = run("mkpasswd", "-m", "yescrypt", pw).stdout.strip()
    assert h.startswith("$y$"), h
    return h


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path)
    cert, key = make_cert(d, "one.test")
    lines = ["# users", "alice:" + sha512_hash(PASSWORD)]
    lines.append("yves:" + yescrypt_hash(PASSWORD))
    auth = os.path.join(d, "auth")
    with open(auth, "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"dir": d, "cert": cert, "key": key, "auth": auth}


def start(pki, *extra, auth=True, tls=True):
    args = list(extra)
    if tls:
        args += ["--tls-cert", pki["cert"], "--tls-key", pki["key"]]
    if auth:
        args += ["--auth-file", pki["auth"]]
    return Daemon(*args).wait_ready()


@pytest.fixture
def daemon(pki):
    d = start(pki, "--relay-net", "10.9.9.0/24")
    yield d
    d.stop()


def client_ctx(maxver=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maxver is not None:
        ctx.maximum_version = maxver
    return ctx


class Raw:
    """A line-level SMTP client over a socket that can be wrapped in TLS."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")

    def reply(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("closed")
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return lines

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()

    def starttls(self, ctx=None):
        r = self.cmd("STARTTLS")
        assert r[-1].startswith("220"), r
        self.wrap(ctx)
        return r

    def wrap(self, ctx=None):
        self.s = (ctx or client_ctx()).wrap_socket(self.s)
        self.f = self.s.makefile("rb")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def ehlo_keywords(lines):
    return [l[4:].upper() for l in lines[1:]]


def b64(s):
    return base64.b64encode(s.encode()).decode()


# --- offers and refusals ------------------------------------------------------

def test_starttls_offered_before_tls_and_auth_refused_with_530(daemon):
    c = Raw(daemon.port)
    assert c.reply()[0].startswith("220")
    kw = ehlo_keywords(c.cmd("EHLO client.test"))
    assert "STARTTLS" in kw
    assert not any(k.startswith("AUTH") for k in kw)
    r = c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD))
    assert r[-1].startswith("530 5.7.0"), r
    c.starttls()
    kw = ehlo_keywords(c.cmd("EHLO client.test"))
    assert "STARTTLS" not in kw
    assert "AUTH PLAIN LOGIN" in kw
    assert c.cmd("STARTTLS")[-1].startswith("503"), "STARTTLS twice"
    c.close()


def test_no_certificate_no_starttls(pki):
    d = start(pki, tls=False, auth=False)
    try:
        c = Raw(d.port)
        c.reply()
        kw = ehlo_keywords(c.cmd("EHLO client.test"))
        assert "STARTTLS" not in kw and not any(k.startswith("AUTH") for k in kw)
        assert c.cmd("STARTTLS")[-1][:1] == "5"
        c.close()
    finally:
        d.stop()


def test_tls_without_auth_file_offers_no_auth(pki):
    d = start(pki, auth=False)
    try:
        c = Raw(d.port)
        c.reply()
        c.cmd("EHLO client.test")
        c.starttls()
        kw = ehlo_keywords(c.cmd("EHLO client.test"))
        assert not any(k.startswith("AUTH") for k in kw)
        c.close()
    finally:
        d.stop()


# --- AUTH ---------------------------------------------------------------------

def tls_session(d, ctx=None):
    c = Raw(d.port)
    c.reply()
    c.cmd("EHLO client.test")
    c.starttls(ctx)
    c.cmd("EHLO client.test")
    return c


def test_auth_plain_login_and_failures(daemon, pki):
    c = tls_session(daemon)
    assert c.cmd("AUTH PLAIN " + b64("\0alice\0wrong"))[-1].startswith("535 5.7.8")
    assert c.cmd("AUTH PLAIN !!!notbase64")[-1].startswith("501")
    assert c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD))[-1].startswith("235")
    c.close()
    c = tls_session(daemon)
    assert c.cmd("AUTH LOGIN")[-1].startswith("334")
    assert c.cmd(b64("alice"))[-1].startswith("334")
    assert c.cmd(b64(PASSWORD))[-1].startswith("235")
    c.close()
    c = tls_session(daemon)
    assert c.cmd("AUTH PLAIN " + b64("\0yves\0" + PASSWORD))[-1].startswith("235")
    c.close()
    assert metric(daemon.mport, 'ringmta_auth_total{result="success"}') >= 2
    assert metric(daemon.mport, "ringmta_tls_handshakes_total") >= 2
    assert "user=alice" in daemon.logtext()


def test_unknown_user_535_and_smtplib_login(daemon):
    s = smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)
    s.starttls(context=client_ctx())
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        s.login("nobody", PASSWORD)
    assert e.value.smtp_code == 535
    s.login("alice", PASSWORD)
    s.quit()


def test_relay_allowed_after_auth_denied_without(daemon):
    # 127.0.0.1 is outside --relay-net here.
    s = smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)
    s.starttls(context=client_ctx())
    s.ehlo("client.test")
    s.mail("a@client.test")
    code, _ = s.rcpt("b@remote.test")
    assert code == 554
    s.rset()
    s.login("alice", PASSWORD)
    s.mail("a@client.test")
    assert s.rcpt("b@remote.test")[0] == 250
    code, msg = s.data(b"Subject: t\r\n\r\nhello\r\n")
    assert code == 250, msg
    s.quit()
    qid = re.search(r"queued as (\S+)", msg.decode()).group(1)
    out = subprocess.run([os.path.join(BUILD, "ringmta-queue"), "--spool", daemon.spool, "show", qid],
                         capture_output=True, text=True)
    if out.returncode == 0 and "Received:" in out.stdout:
        assert "ESMTPSA" in out.stdout


def test_failed_auth_slows_down_then_421(pki):
    d = start(pki)
    try:
        c = tls_session(d)
        times = []
        for _ in range(4):
            t = time.time()
            r = c.cmd("AUTH PLAIN " + b64("\0alice\0bad"))
            times.append(time.time() - t)
            assert r[-1].startswith("535"), r
        assert times[0] < 0.45, times
        assert times[2] >= 0.9, times  # the third failure waits 2 steps
        assert times[3] >= 1.4, times
        r = c.cmd("AUTH PLAIN " + b64("\0alice\0bad"))  # the fifth failure
        assert r[-1].startswith("421 4.7.0"), r
        with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
            c.cmd("NOOP")
        # The address stays locked out, right password or not.
        c = tls_session(d)
        assert c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD))[-1].startswith("421 4.7.0")
        c.close()
        assert metric(d.mport, "ringmta_auth_lockouts_total") == 2
    finally:
        d.stop()


# --- STARTTLS security and robustness -----------------------------------------

def test_plaintext_after_starttls_is_discarded(daemon):
    c = Raw(daemon.port)
    c.reply()
    c.cmd("EHLO client.test")
    c.s.sendall(b"STARTTLS\r\nNOOP\r\n")
    assert c.reply()[-1].startswith("220")
    c.s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        c.s.recv(1)  # no NOOP reply in clear
    c.s.settimeout(5)
    c.wrap()
    r = c.cmd("EHLO client.test")  # the first reply under TLS is EHLO's
    assert r[0].startswith("250-"), r
    assert c.cmd("NOOP")[-1].startswith("250")
    c.close()


def test_garbage_instead_of_clienthello_closes_and_server_keeps_serving(daemon):
    c = Raw(daemon.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS")[-1].startswith("220")
    c.s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n" + b"\x00" * 300)
    c.s.settimeout(5)
    data = b""
    try:
        while True:
            chunk = c.s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    assert b"250" not in data
    c.close()
    c = tls_session(daemon)
    assert c.cmd("NOOP")[-1].startswith("250")
    c.close()
    assert metric(daemon.mport, "ringmta_tls_handshake_failures_total") >= 1


def test_tls12_and_tls13(daemon):
    for ver, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        c = tls_session(daemon, client_ctx(ver))
        assert c.s.version() == name
        assert c.cmd("NOOP")[-1].startswith("250")
        c.cmd("QUIT")
        c.close()
    time.sleep(0.3)
    log = daemon.logtext()
    assert re.search(r"tls=TLSv1\.2.*cipher=\S+", log) or '"tls":"TLSv1.2"' in log
    assert "TLSv1.3" in log
    assert metric(daemon.mport, 'ringmta_tls_sessions_total{version="TLSv1.3"}') >= 1


def test_implicit_tls_listener(pki):
    port = free_port()
    d = start(pki, "--listen-tls", f"127.0.0.1:{port}")
    try:
        c = Raw(port)
        c.wrap()
        assert c.reply()[0].startswith("220")
        kw = ehlo_keywords(c.cmd("EHLO client.test"))
        assert "STARTTLS" not in kw and "AUTH PLAIN LOGIN" in kw
        assert c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD))[-1].startswith("235")
        c.close()
        # A plaintext client on the TLS port gets nothing and is closed.
        p = socket.create_connection(("127.0.0.1", port), timeout=5)
        p.sendall(b"EHLO x\r\n")
        assert p.recv(100) == b""
        p.close()
    finally:
        d.stop()


def test_sighup_new_certificate(pki):
    d = start(pki)
    try:
        old = tls_session(d)
        assert old.s.getpeercert(binary_form=True) == der(pki["cert"])
        cert2, key2 = make_cert(pki["dir"], "two.test")
        shutil.copy(cert2, pki["cert"])
        shutil.copy(key2, pki["key"])
        d.proc.send_signal(signal.SIGHUP)
        end = time.time() + 5
        while "reloaded" not in d.logtext() and time.time() < end:
            time.sleep(0.05)
        new = tls_session(d)
        assert new.s.getpeercert(binary_form=True) == der(cert2)
        assert old.cmd("NOOP")[-1].startswith("250")  # the open session goes on
        new.close()
        old.close()
    finally:
        d.stop()


# --- independent clients -------------------------------------------------------

def test_openssl_s_client_starttls(daemon):
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        f"127.0.0.1:{daemon.port}", "-quiet"],
                       input=b"EHLO client.test\r\nQUIT\r\n", capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace")
    assert "250-AUTH PLAIN LOGIN" in out or "AUTH PLAIN LOGIN" in out, out
    assert "221" in out


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_tls_auth(daemon):
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{daemon.port}", "--tls",
                        "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", PASSWORD,
                        "--from", "a@client.test", "--to", "b@remote.test"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "235" in p.stdout and "queued as" in p.stdout
