"""test_hostile.py - hostile and broken clients against the real daemon.

Each test starts build/ringmta on loopback with a temporary spool and a
smarthost that refuses connections (so every accepted message stays queued
and ringmta-queue can read it back), runs one warm-up transaction, takes the
process's resident set size (VmRSS) as the baseline, then attacks it:
garbage and NUL bytes, megabyte lines without CRLF, slowloris sessions,
error floods, recipient floods, BDAT chunks whose size lies, DATA cut off,
SMTP smuggling, bad PROXY headers, ten thousand connections at once,
HTTP requests, and thousands of random sessions (whose queued messages
must all be counted and logged as received). After every attack the same process must serve a fresh
client a full transaction, and its RSS must settle back within 10% of the
baseline.

The slow scenarios (slowloris, the concurrent long lines, ten thousand
connections) carry the `slow` mark (pytest -m "not slow" leaves them out);
the whole file still runs in well under two minutes.
Run with Debian's /usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import json
import os
import random
import re
import resource
import socket
import subprocess
import threading
import time

import pytest

from test_server import BIN, BUILD, Daemon, free_port, metric, read_reply

QUEUE = os.path.join(BUILD, "ringmta-queue")
QUEUED = re.compile(r"queued as (\S+)")
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

slow = pytest.mark.slow


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connect(port, src=None, timeout=10):
    s = socket.socket()
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def code_of(reply):
    return reply[-1][:3] if reply else None


def transaction(port, prefix=b"", src=None, body=b"Subject: fresh\r\n\r\nhello\r\n"):
    """A full session (greeting, EHLO, MAIL, RCPT, DATA, QUIT) checked reply by
    reply; returns the queue ID."""
    s = connect(port, src)
    f = s.makefile("rb")
    try:
        if prefix:
            s.sendall(prefix)
        assert code_of(read_reply(f)) == "220"
        s.sendall(b"EHLO fresh.test\r\n")
        assert code_of(read_reply(f)) == "250"
        s.sendall(b"MAIL FROM:<fresh@client.test>\r\n")
        assert code_of(read_reply(f)) == "250"
        s.sendall(b"RCPT TO:<rcpt@dest.test>\r\n")
        assert code_of(read_reply(f)) == "250"
        s.sendall(b"DATA\r\n")
        assert code_of(read_reply(f)) == "354"
        s.sendall(body + b".\r\n")
        last = read_reply(f)
        assert code_of(last) == "250", last
        qid = QUEUED.search(last[-1]).group(1)
        s.sendall(b"QUIT\r\n")
        assert code_of(read_reply(f)) == "221"
        return qid
    finally:
        f.close()
        s.close()


def queued(spool):
    """The spool's messages as ringmta-queue --json list sees them."""
    assert os.access(QUEUE, os.X_OK), f"{QUEUE} is not built"
    r = subprocess.run([QUEUE, "--spool", spool, "--json", "list"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return {m["id"]: m for m in json.loads(r.stdout)}


def spool_bytes(spool):
    out = b""
    for root, _, files in os.walk(spool):
        for n in files:
            if not os.path.isfile(os.path.join(root, n)):
                continue  # the daemon's control socket
            with open(os.path.join(root, n), "rb") as f:
                out += f.read()
    return out


def read_all(s, f, limit=1 << 20):
    """Every reply line until the peer closes (or the socket times out)."""
    lines = []
    try:
        while sum(map(len, lines)) < limit:
            line = f.readline()
            if not line:
                return lines, True
            lines.append(line.decode("latin-1"))
    except socket.timeout:
        pass
    return lines, False


class Hostile:
    """A daemon, warmed up, with its baseline RSS."""

    def __init__(self, *extra, prefix=b"", src=None):
        self.dead = free_port()  # nothing listens: deliveries defer
        self.d = Daemon("--smarthost", f"127.0.0.1:{self.dead}", "--retry-schedule", "3600",
                        "--command-timeout", "30", "--data-timeout", "30", *extra)
        self.d.wait_ready()
        self.port, self.spool, self.pid = self.d.port, self.d.spool, self.d.proc.pid
        self.prefix, self.src = prefix, src
        self.ids = [self.fresh()]
        time.sleep(0.5)
        self.base = rss_kb(self.pid)

    def fresh(self):
        return transaction(self.port, self.prefix, self.src)

    def alive(self):
        assert self.d.proc.poll() is None, "ringmta died: " + self.d.logtext()

    def check_after(self, settle=15.0):
        """The same process serves a full transaction and its RSS settles
        back within 10% of the baseline."""
        self.alive()
        self.ids.append(self.fresh())
        end = time.time() + settle
        while True:
            rss = rss_kb(self.pid)
            if rss <= self.base * 1.10 or time.time() > end:
                break
            time.sleep(0.25)
        assert rss <= self.base * 1.10, f"RSS {rss} kB after, {self.base} kB before"
        self.alive()

    def stop(self):
        self.d.stop()


@pytest.fixture
def hostile():
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    started = []

    def start(*extra, **kw):
        h = Hostile(*extra, **kw)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


def session(port, src=None, timeout=10):
    s = connect(port, src, timeout)
    f = s.makefile("rb")
    assert code_of(read_reply(f)) == "220"
    return s, f


def open_tx(port, src=None):
    s, f = session(port, src)
    s.sendall(b"EHLO h.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<b@dest.test>\r\n")
    assert [code_of(read_reply(f)) for _ in range(3)] == ["250"] * 3
    return s, f


def close(s, f):
    f.close()
    s.close()


# --- garbage ---------------------------------------------------------------


def test_random_garbage_and_nul_bytes(hostile):
    h = hostile()
    rnd = random.Random(5321)
    for i in range(8):
        s, f = session(h.port)
        s.settimeout(5)
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1000, 40000)))
        if i % 2:
            junk = junk.replace(b"\n", b"\x00")  # one endless line
        try:
            s.sendall(junk + b"\r\nQUIT\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after too many errors: that is an answer too
        try:
            lines, _ = read_all(s, f)
        except ConnectionResetError:
            lines = []
        assert lines, "no reply to garbage"
        assert all(re.match(r"^[245]\d\d[ -]", l) for l in lines), lines[:5]
        assert any(l[0] == "5" for l in lines) or lines[-1].startswith("421")
        close(s, f)
    # NUL bytes only, inside a command, and inside a body
    s, f = session(h.port)
    s.sendall(b"\x00" * 5000 + b"\r\n")
    assert read_reply(f)[0].startswith("500 5.5.2")
    s.sendall(b"EHLO a\x00b\r\nNOOP\r\n")
    assert code_of(read_reply(f))[0] == "5"
    assert code_of(read_reply(f)) == "250"
    close(s, f)
    s, f = open_tx(h.port)
    s.sendall(b"DATA\r\n")
    assert code_of(read_reply(f)) == "354"
    s.sendall(b"Subject: nul\r\n\r\n" + b"\x00" * 3000 + b"\r\n.\r\n")
    assert code_of(read_reply(f)) == "250"
    close(s, f)
    h.check_after()


@slow
def test_megabyte_lines_without_crlf(hostile):
    """20 sessions at once each send 1 MB with no line end: the daemon must
    not hold them (RSS grows by less than 1 MB per session)."""
    h = hostile()
    mb = b"A" * (1 << 20)
    socks = [session(h.port) for _ in range(20)]
    for s, _ in socks:
        s.sendall(mb)
    time.sleep(1.0)
    grown = rss_kb(h.pid) - h.base
    print(f"20 x 1 MB lines held open: RSS {h.base} kB -> {h.base + grown} kB")
    assert grown < 20 * 1024, f"RSS grew {grown} kB for 20 MB of line"
    for s, f in socks:
        s.sendall(b"\r\nNOOP\r\n")
    for s, f in socks:
        assert read_reply(f)[0].startswith("500 5.5.2")
        assert code_of(read_reply(f)) == "250"  # the session goes on
        close(s, f)
    h.check_after()


@slow
def test_slowloris(hostile):
    """Sessions that dribble a byte every half second do not slow others."""
    h = hostile()
    stop = threading.Event()
    errors = []

    def dribble():
        try:
            s, f = session(h.port)
            for b in b"EHLO slow.test\r\n":
                if stop.is_set():
                    break
                s.sendall(bytes([b]))
                time.sleep(0.5)
            close(s, f)
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=dribble) for _ in range(8)]
    for t in threads:
        t.start()
    lat = []
    end = time.time() + 4
    # Paced: every accepted message stays queued (the next hop is down) and
    # a queued message holds about 1.6 KB, so an unpaced loop's thousands
    # of messages would move RSS for a reason that is not the attack.
    while time.time() < end:
        t0 = time.time()
        h.ids.append(h.fresh())
        lat.append(time.time() - t0)
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    lat.sort()
    print(f"slowloris: {len(lat)} transactions beside 8 dribbling sessions, "
          f"p50 {lat[len(lat) // 2] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
    assert len(lat) >= 10, lat
    assert lat[len(lat) // 2] < 0.25, lat
    assert lat[-1] < 1.5, lat
    h.check_after()


# --- limits ------------------------------------------------------------------


def test_error_flood_closes(hostile):
    h = hostile("--max-errors", "100")
    s, f = session(h.port)
    s.sendall(b"".join(b"BOGUS %d\r\n" % i for i in range(100)))
    for i in range(100):
        assert read_reply(f)[0].startswith("500 5.5.1"), i
    s.sendall(b"BOGUS again\r\n")
    assert read_reply(f)[0].startswith("500 5.5.1")
    last = read_reply(f)
    assert last[0].startswith("421 4.7.0"), last
    assert f.read() == b""
    close(s, f)
    h.check_after()


def test_rcpt_flood(hostile):
    h = hostile("--max-recipients", "50")
    s, f = session(h.port)
    s.sendall(b"EHLO h.test\r\nMAIL FROM:<a@client.test>\r\n" +
              b"".join(b"RCPT TO:<r%d@dest.test>\r\n" % i for i in range(80)))
    assert code_of(read_reply(f)) == "250"
    assert code_of(read_reply(f)) == "250"
    codes = [read_reply(f)[0] for _ in range(80)]
    assert all(c.startswith("250") for c in codes[:50])
    assert all(c.startswith("452 4.5.3") for c in codes[50:]), codes[50:53]
    s.sendall(b"DATA\r\n")
    assert code_of(read_reply(f)) == "354"
    s.sendall(b"Subject: flood\r\n\r\nx\r\n.\r\n")
    last = read_reply(f)
    assert code_of(last) == "250"
    qid = QUEUED.search(last[-1]).group(1)
    close(s, f)
    m = queued(h.spool)[qid]
    assert [r["address"] for r in m["recipients"]] == ["r%d@dest.test" % i for i in range(50)]
    h.check_after()


# --- lying BDAT ----------------------------------------------------------------


def test_bdat_size_larger_than_sent(hostile):
    h = hostile()
    before = set(queued(h.spool))
    for last in (b" LAST", b""):
        s, f = open_tx(h.port)
        s.sendall(b"BDAT 100000%s\r\n" % last + b"x" * 999)
        time.sleep(0.2)
        close(s, f)
    time.sleep(0.3)
    h.alive()
    assert set(queued(h.spool)) == before
    h.check_after()


def test_bdat_size_smaller_than_sent(hostile):
    h = hostile()
    s, f = open_tx(h.port)
    body = b"Subject: short\r\n\r\nabc\r\n"
    rest = b"this is not a command\r\nneither is this\r\n"
    s.sendall(b"BDAT %d LAST\r\n" % len(body) + body + rest + b"NOOP\r\n")
    last = read_reply(f)
    assert code_of(last) == "250" and "queued as" in last[-1]
    assert read_reply(f)[0].startswith("500 5.5.1")
    assert read_reply(f)[0].startswith("500 5.5.1")
    assert code_of(read_reply(f)) == "250"
    qid = QUEUED.search(last[-1]).group(1)
    close(s, f)
    assert qid in queued(h.spool)
    h.check_after()


def test_bdat_absurd_sizes(hostile):
    h = hostile("--max-message-size", "1000000")
    for size, want in ((b"99999999999999999999999999", "501"), (b"-5", "501"), (b"0x100", "501"),
                       (b"18446744073709551616", "501"), (b"1000000000000 LAST", "552"),
                       (b"1000001", "552")):
        s, f = open_tx(h.port)
        s.settimeout(5)
        s.sendall(b"BDAT " + size + b"\r\n")
        reply = read_reply(f)
        assert code_of(reply) == want, (size, reply)
        close(s, f)
    h.check_after()


# --- DATA cut off, smuggling -----------------------------------------------------


def test_data_cut_off(hostile):
    h = hostile()
    before = set(queued(h.spool))
    for cut in (b"", b"Subject: cut\r\n\r\nhalf a body", b"Subject: cut\r\n\r\nline\r\n.",
                b"Subject: cut\r\n\r\nline\r\n.\r", b"Subject: cut\r\n\r\n" + b"y" * 300000):
        s, f = open_tx(h.port)
        s.sendall(b"DATA\r\n")
        assert code_of(read_reply(f)) == "354"
        s.sendall(cut)
        time.sleep(0.1)
        close(s, f)
    time.sleep(0.3)
    h.alive()
    assert set(queued(h.spool)) == before
    h.check_after()


SMUGGLE = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\r\n.\r", b"\n.\r", b"\r\n\x00.\r\n"]


@pytest.mark.parametrize("end", SMUGGLE, ids=lambda e: repr(e)[2:-1])
def test_smuggling(hostile, end):
    h = hostile()
    before = set(queued(h.spool))
    marker = b"SMUGGLED-%d" % random.randrange(10**9)
    body = (b"Subject: innocent\r\n\r\nhello" + end +
            b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\n"
            b"Subject: " + marker + b"\r\n\r\nsmuggled\r\n")
    s, f = open_tx(h.port)
    s.sendall(b"DATA\r\n")
    assert code_of(read_reply(f)) == "354"
    s.sendall(body + b".\r\nQUIT\r\n")
    replies = []
    while True:
        r = read_reply(f)
        if not r:
            break
        replies.append(r[0][:3])
    assert replies == ["250", "221"], replies
    close(s, f)
    new = set(queued(h.spool)) - before
    assert len(new) == 1, new
    (qid,) = new
    m = queued(h.spool)[qid]
    assert [r["address"] for r in m["recipients"]] == ["b@dest.test"]
    assert m["sender"] == "a@client.test"
    assert m["size"] >= len(body)
    assert marker in spool_bytes(h.spool)
    assert b"MAIL FROM:<evil@attacker.test>" in spool_bytes(h.spool)
    h.check_after()


# --- PROXY -------------------------------------------------------------------------


def closed_silently(port, data, src=None):
    s = connect(port, src, timeout=5)
    try:
        if data:
            s.sendall(data)
        got = b""
        while True:
            b = s.recv(4096)
            if not b:
                return got
            got += b
    except ConnectionResetError:
        return got
    finally:
        s.close()


def test_proxy_bad_headers_and_untrusted_peers(hostile):
    ok = b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 25\r\n"  # inside --relay-net
    h = hostile("--proxy-protocol", "--proxy-trusted", "127.0.0.2/32", prefix=ok, src="127.0.0.2")
    bad = [b"PROXY TCP4 1.2.3.4\r\n", b"PROXY UNKNOWN" + b"x" * 200 + b"\r\n",
           b"PROXY TCP4 999.2.3.4 127.0.0.1 1 2\r\n", b"PROXY TCP6 1.2.3.4 127.0.0.1 1 2\r\n",
           b"PROXY TCP4 1.2.3.4 127.0.0.1 99999 25\r\n", b"EHLO x.test\r\n",
           b"GET / HTTP/1.0\r\n\r\n", b"\x00" * 200, b"PROXY " + b"9" * 5000,
           V2_SIG + b"\x21\x11\xff\xff" + b"\x00" * 64, V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12,
           V2_SIG + b"\x21\x11\x00\x04" + b"\x00" * 4, V2_SIG[:-1] + b"X\x21\x11\x00\x0c" + b"\x00" * 12]
    rnd = random.Random(1)
    bad += [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 300))) for _ in range(5)]
    for data in bad:
        assert closed_silently(h.port, data, src="127.0.0.2") == b"", data
    # a well-formed header from a peer outside --proxy-trusted
    for data in (ok, V2_SIG + b"\x21\x11\x00\x0c" + bytes([192, 0, 2, 1, 127, 0, 0, 1, 0, 80, 0, 25])):
        assert closed_silently(h.port, data, src="127.0.0.1") == b"", data
    h.check_after()


# --- connections -----------------------------------------------------------------


@slow
def test_ten_thousand_connections(hostile):
    """10,000 sessions open at once from two client addresses, with
    --max-connections-per-ip 5000: the 5001st from one address gets 421.
    The test raises its RLIMIT_NOFILE to the hard limit (the daemon inherits
    it); when the hard limit is too low, it opens as many as the limit allows
    (two per address fewer than half of it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 10200
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, want)), hard))
    per_ip = min(5000, (min(hard, want) - 200) // 2)
    h = hostile("--max-connections-per-ip", str(per_ip), "--max-connections", str(2 * per_ip + 100))
    socks = []
    try:
        for src in ("127.0.0.1", "127.0.0.2"):
            mine = []
            for _ in range(per_ip):
                s = socket.socket()
                s.settimeout(30)
                s.bind((src, 0))
                s.connect(("127.0.0.1", h.port))
                mine.append(s)
            socks += mine
            for s in mine:
                assert s.recv(512).startswith(b"220 ")
            extra = connect(h.port, src)
            got = extra.recv(512)
            assert got.startswith(b"421 4.7.0"), got
            extra.close()
        assert metric(h.d.mport, "ringmta_connections_open") == 2 * per_ip
        # every one of them is a live session
        for s in socks[:: max(1, len(socks) // 50)]:
            s.sendall(b"NOOP\r\n")
            assert s.recv(512).startswith(b"250")
    finally:
        for s in socks:
            s.close()
    end = time.time() + 10
    while metric(h.d.mport, "ringmta_connections_open") and time.time() < end:
        time.sleep(0.1)
    assert metric(h.d.mport, "ringmta_connections_open") == 0
    h.check_after(settle=20)


@pytest.mark.parametrize("line", [b"GET / HTTP/1.1", b"POST /submit HTTP/1.1", b"CONNECT mx.test:25 HTTP/1.1",
                                  b"Host: mx.test"])
def test_http_first_line(hostile, line):
    h = hostile()
    s, f = session(h.port)
    s.sendall(line + b"\r\nHost: x\r\n\r\n")
    assert read_reply(f)[0].startswith("500 5.5.1")
    assert f.read() == b""
    close(s, f)
    h.check_after()


RANDOM_LINES = [b"EHLO r.test", b"HELO r.test", b"MAIL FROM:<a@src.test>", b"MAIL FROM:<>",
                b"MAIL FROM:<a@src.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=e1",
                b"RCPT TO:<r@dest.test>", b"RCPT TO:<r@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@dest.test",
                b"RCPT TO:<postmaster>", b"DATA", b"BDAT 10", b"BDAT 0 LAST", b"BDAT 5 LAST", b"RSET", b"NOOP",
                b"VRFY x", b"HELP", b"STARTTLS", b"AUTH PLAIN AAAA", b"QUIT", b".", b"Subject: x", b"",
                b"GET / HTTP/1.1", b"MAIL FROM:<\xff\xfe@x>", b"RCPT TO:<" + b"a" * 300 + b"@x>", b"X" * 3000]
WHOLE = (b"EHLO r.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<r@dest.test>\r\nDATA\r\n"
         b"Subject: random\r\n\r\nbody\r\n.\r\n")


def random_session(port, rng):
    """One session of random input: known commands with any line ending,
    random bytes, lone dots, sometimes a whole pipelined message; sent in
    random pieces, then closed politely, half-closed or reset."""
    out = bytearray(WHOLE if rng.random() < 0.03 else b"")
    for _ in range(rng.randint(1, 30)):
        r = rng.random()
        if r < 0.6:
            out += rng.choice(RANDOM_LINES) + rng.choice([b"\r\n", b"\n", b"\r", b"\r\n\r\n.\r\n"])
        elif r < 0.8:
            out += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        else:
            out += b"\r\n" * rng.randint(1, 5) + b".\r\n"
    try:
        s = connect(port, timeout=2)
        s.settimeout(0.5)
        i = 0
        while i < len(out):
            k = rng.randint(1, 400)
            s.sendall(out[i:i + k])
            i += k
        how = rng.random()
        if how < 0.3:
            s.shutdown(socket.SHUT_WR)
        elif how < 0.6:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        else:
            try:
                s.recv(65536)
            except OSError:
                pass
        s.close()
    except OSError:
        pass  # refused or reset: part of the game


def test_random_sessions_keep_the_books(hostile):
    """Thousands of random sessions (fixed seeds) from eight threads: the
    daemon keeps serving, and every message it queued was counted and
    logged as received, including those whose client was gone before the
    250 (a durable message is delivered whoever is left to hear of it)."""
    h = hostile("--max-connections-per-ip", "1000")
    end = time.time() + 8

    def worker(k):
        rng = random.Random(20261129 + k)
        while time.time() < end:
            random_session(h.port, rng)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h.check_after()
    deadline = time.time() + 10
    while metric(h.d.mport, "ringmta_connections_open") and time.time() < deadline:
        time.sleep(0.1)
    ids = set(queued(h.spool))
    logged = set(re.findall(r"event=received id=(\w+)", h.d.logtext()))
    assert len(ids) > len(h.ids), "no random session queued a message"
    assert ids == logged, (ids ^ logged, h.d.logtext()[-2000:])
    assert metric(h.d.mport, "ringmta_messages_received_total") == len(ids)
