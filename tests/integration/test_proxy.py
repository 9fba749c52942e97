"""test_proxy.py - ringmta behind a load balancer: the PROXY protocol.

With --proxy-protocol every connection must open with a PROXY v1 or v2
header from a peer inside --proxy-trusted; the address in the header is the
client for the relay rule, the per-address limit, the log and the Received:
header. Anything else is closed without a byte sent. The tests speak the
header over raw loopback sockets, then through a real HAProxy (TCP mode,
send-proxy and send-proxy-v2). Run with Debian's /usr/bin/python3 -m pytest;
RINGMTA_BUILD names the build.
"""
import glob
import ipaddress
import os
import shutil
import smtplib
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from test_server import BIN, Daemon, free_port, http_get, read_reply

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
OUTSIDE = "rcpt@outside.example"


@pytest.fixture
def daemon():
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    started = []

    def start(*extra):
        d = Daemon("--proxy-protocol", *extra)
        started.append(d)
        return d.wait_ready()

    yield start
    for d in started:
        d.stop()


def v1(src, dst=None, sport=40000, dport=25):
    six = ":" in src
    dst = dst or ("::1" if six else "127.0.0.1")
    return f"PROXY {'TCP6' if six else 'TCP4'} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst=None, sport=40000, dport=25, command=0x21, sig=V2_SIG):
    """A v2 header; command 0x21 is PROXY, 0x20 LOCAL."""
    a = ipaddress.ip_address(src)
    if a.version == 4:
        d = ipaddress.ip_address(dst or "127.0.0.1")
        block = a.packed + d.packed + struct.pack("!HH", sport, dport)
        fam = 0x11
    else:
        d = ipaddress.ip_address(dst or "::1")
        block = a.packed + d.packed + struct.pack("!HH", sport, dport)
        fam = 0x21
    return sig + bytes([command, fam]) + struct.pack("!H", len(block)) + block


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def session(port, header, pieces=1):
    """Connect, send the header in `pieces` writes, return (socket, reader)
    after checking that nothing arrives before the header is complete."""
    s = connect(port)
    step = max(1, -(-len(header) // pieces))
    for i in range(0, len(header), step):
        if i:
            s.settimeout(0.05)
            with pytest.raises(socket.timeout):
                assert s.recv(1) == b"", "bytes before the header was complete"
            s.settimeout(10)
        s.sendall(header[i:i + step])
    return s, s.makefile("rb")


def smtp(f, s, line):
    s.sendall(line.encode() + b"\r\n")
    return read_reply(f)


def code(lines):
    assert lines, "connection closed"
    return int(lines[-1][:3])


def closed_silently(s, timeout=5):
    """The peer closes without sending one byte (a reset counts as closed)."""
    s.settimeout(timeout)
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        data = b""
    finally:
        s.close()
    assert data == b"", f"expected a silent close, got {data!r}"


def metric_proxy(port, result):
    body = http_get(port, "/metrics")[1]
    tag = f'ringmta_proxy_headers_total{{result="{result}"}} '
    for line in body.splitlines():
        if line.startswith(tag):
            return int(line[len(tag):])
    raise AssertionError(f"{tag} missing from /metrics")


def relay_attempt(port, header, pieces=1):
    """Greeting, EHLO, MAIL, RCPT to an outside domain: the RCPT code."""
    s, f = session(port, header, pieces)
    try:
        assert code(read_reply(f)) == 220
        assert code(smtp(f, s, "EHLO client.test")) == 250
        assert code(smtp(f, s, "MAIL FROM:<a@client.test>")) == 250
        lines = smtp(f, s, f"RCPT TO:<{OUTSIDE}>")
        smtp(f, s, "QUIT")
        return lines
    finally:
        s.close()


def wait_for(pred, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def spool_text(d):
    data = b""
    for p in glob.glob(os.path.join(d.spool, "**", "*"), recursive=True):
        if os.path.isfile(p):
            with open(p, "rb") as fh:
                data += fh.read()
    return data


def send_message(s, f, src_tag):
    assert code(smtp(f, s, "MAIL FROM:<a@client.test>")) == 250
    assert code(smtp(f, s, f"RCPT TO:<{OUTSIDE}>")) == 250
    assert code(smtp(f, s, "DATA")) == 354
    body = f"Subject: {src_tag}\r\n\r\nhello\r\n.".replace("\r\n", "\n").replace("\n", "\r\n")
    lines = smtp(f, s, body)
    assert code(lines) == 250, lines


# --- relay rule from the header address ---------------------------------------


@pytest.mark.parametrize("make", [v1, v2], ids=["v1", "v2"])
@pytest.mark.parametrize("outside,inside,nets", [
    ("203.0.113.7", "192.0.2.5", ["192.0.2.0/24"]),
    ("2001:db8:1::7", "2001:db8::5", ["2001:db8::/64"]),
], ids=["tcp4", "tcp6"])
def test_relay_rule_uses_header_address(daemon, make, outside, inside, nets):
    args = []
    for n in nets:
        args += ["--relay-net", n]
    d = daemon(*args)  # 127.0.0.1, the real peer, is NOT a relay network
    denied = relay_attempt(d.port, make(outside))
    assert code(denied) == 554 and "5.7.1" in denied[-1], denied
    allowed = relay_attempt(d.port, make(inside))
    assert code(allowed) == 250, allowed
    assert metric_proxy(d.mport, "accepted") == 2


def test_outside_client_cannot_relay_even_from_relay_peer(daemon):
    # The real peer 127.0.0.1 is in the default --relay-net; the header's
    # address is not, and that is the one that counts.
    d = daemon()
    assert code(relay_attempt(d.port, v1("198.51.100.20"))) == 554
    assert code(relay_attempt(d.port, v2("198.51.100.20"))) == 554


@pytest.mark.parametrize("header", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
                                    v2("10.9.9.9", command=0x20)], ids=["v1-unknown", "v1-unknown-addrs", "v2-local"])
def test_unknown_and_local_use_real_peer(daemon, header):
    d = daemon()  # the real peer 127.0.0.1 relays by default
    assert code(relay_attempt(d.port, header)) == 250


# --- log and Received: ------------------------------------------------------------


@pytest.mark.parametrize("make,src,shown", [
    (v1, "192.0.2.44", "[192.0.2.44]"),
    (v2, "2001:db8::44", "[IPv6:2001:db8::44]"),
], ids=["v1-tcp4", "v2-tcp6"])
def test_log_and_received_show_header_address(daemon, make, src, shown):
    d = daemon("--relay-net", src + ("/128" if ":" in src else "/32"))
    s, f = session(d.port, make(src))
    assert code(read_reply(f)) == 220
    assert code(smtp(f, s, "EHLO client.test")) == 250
    send_message(s, f, "proxied")
    smtp(f, s, "QUIT")
    s.close()
    assert wait_for(lambda: "client=" + src in d.logtext() or f'"client":"{src}"' in d.logtext()), d.logtext()
    received = [ln for ln in d.logtext().splitlines() if "received" in ln and src in ln]
    assert received, d.logtext()
    assert "127.0.0.1" not in received[0]
    assert shown.encode() in spool_text(d), "Received: header lacks the PROXY address"


# --- the header arriving in pieces, and SMTP right behind it ------------------------------


@pytest.mark.parametrize("make", [v1, v2], ids=["v1", "v2"])
def test_header_split_across_writes(daemon, make):
    d = daemon("--relay-net", "192.0.2.0/24")
    header = make("192.0.2.9")
    for pieces in (2, 3, len(header)):
        assert code(relay_attempt(d.port, header, pieces)) == 250


def test_smtp_in_same_write_as_header(daemon):
    d = daemon("--relay-net", "192.0.2.0/24")
    for make in (v1, v2):
        s = connect(d.port)
        f = s.makefile("rb")
        s.sendall(make("192.0.2.10") + b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<"
                  + OUTSIDE.encode() + b">\r\nQUIT\r\n")
        replies = [read_reply(f) for _ in range(5)]
        s.close()
        assert [code(r) for r in replies] == [220, 250, 250, 250, 221], replies


# --- refusals: closed without a byte ------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"EHLO client.test\r\n",
    b"GARBAGE GARBAGE\r\n",
    b"PROXY TCP4 192.0.2.1 127.0.0.1 01 2\r\nEHLO x\r\n",
    b"PROXY TCP6 192.0.2.1 127.0.0.1 1 2\r\n",
    b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\n",
    v2("192.0.2.1", sig=b"\r\n\r\n\x00\r\nQUIT\r"),
    v2("192.0.2.1", command=0x31),
    b"GET / HTTP/1.0\r\n\r\n",
], ids=["smtp-no-header", "garbage", "v1-leading-zero", "v1-wrong-family", "v1-bare-lf",
        "v2-bad-signature", "v2-bad-version", "http"])
def test_bad_header_closed_without_reply(daemon, data):
    d = daemon()
    s = connect(d.port)
    s.sendall(data)
    closed_silently(s)
    assert wait_for(lambda: metric_proxy(d.mport, "invalid") == 1)
    assert metric_proxy(d.mport, "accepted") == 0


def test_client_closing_before_header_gets_nothing(daemon):
    d = daemon()
    s = connect(d.port)
    s.sendall(v1("192.0.2.1")[:10])
    s.shutdown(socket.SHUT_WR)
    closed_silently(s)


def test_no_header_in_time_closed_without_reply(daemon):
    d = daemon("--command-timeout", "1")
    s = connect(d.port)
    s.sendall(b"PROXY TCP4 ")  # a header that never ends
    t0 = time.time()
    closed_silently(s, timeout=10)
    assert time.time() - t0 < 5
    assert wait_for(lambda: metric_proxy(d.mport, "timeout") == 1)


def test_slow_header_cannot_extend_deadline(daemon):
    d = daemon("--command-timeout", "1")
    s = connect(d.port)
    header = v1("192.0.2.1")
    t0 = time.time()
    try:
        for b in header[:-2]:
            s.sendall(bytes([b]))
            time.sleep(0.1)
            if time.time() - t0 > 2.5:
                break
    except OSError:
        pass  # closed under us: what we want
    closed_silently(s)
    assert time.time() - t0 < 4


def test_untrusted_peer_closed_without_reply(daemon):
    d = daemon("--proxy-trusted", "10.255.255.0/24")
    for make in (v1, v2):
        s = connect(d.port)
        try:
            s.sendall(make("192.0.2.1") + b"EHLO client.test\r\n")
        except OSError:
            pass
        closed_silently(s)
    assert wait_for(lambda: metric_proxy(d.mport, "untrusted") == 2)
    assert metric_proxy(d.mport, "accepted") == 0


def free_port6():
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def test_ipv6_peer_trusted_by_default_list(daemon):
    # ::1/128 is in the default --proxy-trusted; a narrower list drops it.
    p6 = free_port6()
    d = daemon("--listen", f"[::1]:{p6}", "--relay-net", "192.0.2.0/24")
    s = socket.create_connection(("::1", p6), timeout=10)
    f = s.makefile("rb")
    s.sendall(v2("192.0.2.61"))
    assert code(read_reply(f)) == 220
    assert code(smtp(f, s, "EHLO client.test")) == 250
    assert code(smtp(f, s, "MAIL FROM:<a@client.test>")) == 250
    assert code(smtp(f, s, f"RCPT TO:<{OUTSIDE}>")) == 250
    s.close()

    p6 = free_port6()
    d = daemon("--listen", f"[::1]:{p6}", "--proxy-trusted", "127.0.0.0/8")
    s = socket.create_connection(("::1", p6), timeout=10)
    try:
        s.sendall(v1("192.0.2.61"))
    except OSError:
        pass
    closed_silently(s)
    assert wait_for(lambda: metric_proxy(d.mport, "untrusted") == 1)


def test_without_proxy_protocol_header_is_a_bad_command():
    # The option off: a PROXY line is just an unknown command.
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    d = Daemon().wait_ready()
    try:
        s = connect(d.port)
        f = s.makefile("rb")
        assert code(read_reply(f)) == 220
        assert code(smtp(f, s, "PROXY TCP4 192.0.2.1 127.0.0.1 1 2")) == 500
        s.close()
    finally:
        d.stop()


# --- the per-address limit applies to the header address -------------------------------


def test_per_ip_limit_uses_header_address(daemon):
    d = daemon("--max-connections-per-ip", "2")
    held = []
    for make in (v1, v2):
        s, f = session(d.port, make("198.51.100.9"))
        assert code(read_reply(f)) == 220
        held.append(s)
    s, f = session(d.port, v1("198.51.100.9"))
    lines = read_reply(f)
    assert code(lines) == 421 and "4.7.0" in lines[-1], lines
    s.close()
    # The same real peer (127.0.0.1), another client behind the balancer.
    s, f = session(d.port, v2("198.51.100.10"))
    assert code(read_reply(f)) == 220
    s.close()
    held[0].close()
    # A slot frees when its session ends.
    def again():
        s, f = session(d.port, v1("198.51.100.9"))
        try:
            return code(read_reply(f)) == 220
        finally:
            s.close()
    assert wait_for(again)
    for s in held:
        s.close()


# --- through a real HAProxy --------------------------------------------------------------


class HAProxy:
    def __init__(self, target_port, send_proxy):
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory()
        cfg = os.path.join(self.tmp.name, "haproxy.cfg")
        with open(cfg, "w") as fh:
            fh.write(f"""global
    maxconn 64
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp_in
    bind 127.0.0.1:{self.port}
    default_backend ringmta
backend ringmta
    server r1 127.0.0.1:{target_port} {send_proxy}
""")
        check = subprocess.run([HAPROXY, "-c", "-f", cfg], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(os.path.join(self.tmp.name, "log"), "w+")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=self.log, stderr=self.log)
        end = time.time() + 10
        while time.time() < end:
            assert self.proc.poll() is None, "haproxy exited: " + self.logtext()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("haproxy did not listen: " + self.logtext())

    logtext = Daemon.logtext

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


@pytest.mark.parametrize("send_proxy", ["send-proxy-v2", "send-proxy"])
def test_through_haproxy(daemon, send_proxy):
    if not os.access(HAPROXY, os.X_OK):
        pytest.skip("haproxy is not installed (tools/install-deps installs it)")
    # Only 127.0.0.2 may relay: the real peer (HAProxy, 127.0.0.1) may not,
    # so a relayed message proves the header's address was used.
    d = daemon("--relay-net", "127.0.0.2/32")
    lb = HAProxy(d.port, send_proxy)
    try:
        with smtplib.SMTP("127.0.0.1", lb.port, timeout=10, source_address=("127.0.0.2", 0)) as c:
            c.ehlo("client.test")
            refused = c.sendmail("a@client.test", [OUTSIDE],
                                 b"Subject: via haproxy\r\n\r\nthrough the balancer\r\n")
            assert refused == {}
        with smtplib.SMTP("127.0.0.1", lb.port, timeout=10, source_address=("127.0.0.3", 0)) as c:
            c.ehlo("client.test")
            c.mail("a@client.test")
            rc, msg = c.rcpt(OUTSIDE)
            assert rc == 554 and b"5.7.1" in msg
        assert wait_for(lambda: any("received" in ln and "127.0.0.2" in ln
                                    for ln in d.logtext().splitlines())), d.logtext()
        assert b"[127.0.0.2]" in spool_text(d)
        assert metric_proxy(d.mport, "accepted") >= 2
        assert metric_proxy(d.mport, "invalid") == 0
    finally:
        lb.stop()
