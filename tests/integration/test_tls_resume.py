"""test_tls_resume.py - outbound STARTTLS resumes the session of a next hop
seen before.

The next hop is a small SMTP server here (Python's ssl on the server side,
so it can tell whether each handshake was resumed) offering STARTTLS;
ringmta delivers one message per connection (--dest-max-messages-per-
connection 1), one after another. The first connection is a full
handshake; each later one resumes with a ticket from an earlier one (TLS
1.3: a ticket is used once, every connection brings new ones; TLS 1.2: the
session is kept). Run with Debian's /usr/bin/python3 -m pytest.
"""
import smtplib
import socket
import subprocess
import ssl
import threading
import time

import pytest

from test_server import BIN, Daemon, free_port, metric
from test_tls import make_cert


def openssl_build():
    """openssl_build - ringmta was built with -DRINGMTA_TLS_LIB=openssl"""
    r = subprocess.run(["ldd", BIN], capture_output=True, text=True)
    return "libssl.so.3" in r.stdout


class TlsHop:
    """An SMTP server offering STARTTLS; records per connection whether its
    handshake was resumed and the messages it took."""

    def __init__(self, cert, key, maxver):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.maximum_version = maxver
        self.port = free_port()
        self.resumed = []
        self.messages = []
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                s, _ = self.sock.accept()
            except OSError:
                continue
            try:
                self.session(s)
            except (OSError, ssl.SSLError, EOFError):
                pass
            finally:
                s.close()

    def session(self, s):
        s.settimeout(10)
        f = s.makefile("rb")
        s.sendall(b"220 hop.test ESMTP\r\n")
        tls = False
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                s.sendall(b"250-hop.test\r\n" + (b"" if tls else b"250-STARTTLS\r\n") + b"250 8BITMIME\r\n")
            elif cmd == b"STARTTLS":
                s.sendall(b"220 go ahead\r\n")
                s = self.ctx.wrap_socket(s, server_side=True)
                f = s.makefile("rb")
                tls = True
                self.resumed.append(s.session_reused)
            elif cmd.startswith(b"MAIL") or cmd.startswith(b"RCPT") or cmd == b"RSET" or cmd == b"NOOP":
                s.sendall(b"250 ok\r\n")
            elif cmd == b"DATA":
                s.sendall(b"354 go\r\n")
                body = b""
                while not body.endswith(b"\r\n.\r\n"):
                    chunk = f.readline()
                    if not chunk:
                        return
                    body += chunk
                self.messages.append((tls, body))
                s.sendall(b"250 taken\r\n")
            elif cmd == b"QUIT":
                s.sendall(b"221 bye\r\n")
                return
            else:
                s.sendall(b"502 no\r\n")

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("maxver", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["tls13", "tls12"])
@pytest.mark.xfail(openssl_build(), reason="the OpenSSL 3 build offers the session but is not resumed yet",
                   strict=True)
def test_outbound_sessions_are_resumed_per_hop(tmp_path, maxver):
    cert, key = make_cert(str(tmp_path), "localhost")
    hop = TlsHop(cert, key, maxver)
    d = Daemon("--smarthost", f"127.0.0.1:{hop.port}", "--outbound-tls", "required",
               "--dest-max-messages-per-connection", "1").wait_ready()
    try:
        for i in range(3):
            c = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
            c.sendmail("a@src.test", ["b@dst.test"], f"Subject: {i}\r\n\r\nbody {i}\r\n")
            c.quit()
            end = time.time() + 15
            while len(hop.messages) <= i and time.time() < end:
                time.sleep(0.05)
            assert len(hop.messages) == i + 1, d.logtext()
        assert all(t for t, _ in hop.messages), "a message went in plaintext"
        assert hop.resumed[0] is False
        assert hop.resumed[1:] == [True] * (len(hop.resumed) - 1) and len(hop.resumed) >= 3, hop.resumed
        # the daemon counts and logs what the hop saw
        assert metric(d.mport, "ringmta_outbound_tls_resumed_total") == len(hop.resumed) - 1
        assert metric(d.mport, "ringmta_outbound_tls_handshakes_total") == len(hop.resumed)
        assert d.logtext().count("_resumed_(") == len(hop.resumed) - 1, d.logtext()
    finally:
        d.stop()
        hop.stop()
