"""test_outbound_pipelining.py - outbound PIPELINING (RFC 2920) and
CHUNKING (RFC 3030) against a scripted next hop that records what arrived
when.

aiosmtpd offers no CHUNKING, so the next hop here is a small threaded SMTP
server that offers PIPELINING and CHUNKING or not, answers RCPT per
recipient from a script, and holds its replies the way a pipelining server
may: with PIPELINING, a reply is written only once the input is drained and,
inside a transaction, once the BDAT or DATA that closes the group has come
(or after a second: a client waiting in lock-step is then seen as such).
Without PIPELINING it answers each command at once and notes any command
that came while a reply was owed. Run with Debian's /usr/bin/python3;
RINGMTA_BUILD names the build.
"""
import select
import socket
import threading
import time

import pytest

pytest.importorskip("aiosmtpd.controller")
from test_delivery import BODY, daemons, strip_received  # noqa: E402,F401
from test_server import free_port  # noqa: E402

HOLD_S = 1.0


class Conn:
    """One session of the scripted next hop."""

    def __init__(self, hop, sock):
        self.hop, self.sock = hop, sock
        self.buf = b""
        self.pending = []
        self.held_since = None
        self.reset()

    def reset(self):
        self.mail = None
        self.rcpts = []
        self.group_open = False   # MAIL came, the group's BDAT/DATA not yet
        self.replied_in_tx = False
        self.chunks = b""

    def reply(self, text):
        self.pending.append(text.encode() + b"\r\n")
        if not self.hop.pipelining:
            self.flush()

    def flush(self):
        if self.pending:
            self.sock.sendall(b"".join(self.pending))
            self.pending = []
            if self.mail is not None:
                self.replied_in_tx = True

    def fill(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return False
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data
        return True

    def line(self):
        while b"\r\n" not in self.buf:
            if self.pending and self.hop.pipelining:
                # a pipelining server answers once its input is drained;
                # this one waits for the end of the group a while
                if not self.fill(0 if not self.group_open else HOLD_S):
                    self.flush()
                continue
            self.fill(None)
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i].decode("latin-1"), self.buf[i + 2:]
        if not self.hop.pipelining and self.pending:
            self.hop.note("command while a reply was owed")
        return ln

    def exact(self, n):
        while len(self.buf) < n:
            self.fill(None)
        b, self.buf = self.buf[:n], self.buf[n:]
        return b

    def end_group(self, kind):
        if self.group_open:
            self.hop.groups.append((kind, not self.replied_in_tx))
        self.group_open = False

    def run(self):
        self.reply("220 hop.test ESMTP")
        self.flush()
        while True:
            ln = self.line()
            verb = ln.split(" ", 1)[0].upper()
            if verb == "EHLO":
                ext = ["250-hop.test"]
                if self.hop.pipelining:
                    ext.append("250-PIPELINING")
                if self.hop.chunking:
                    ext.append("250-CHUNKING")
                ext.append("250 8BITMIME")
                self.reply("\r\n".join(ext))
            elif verb == "MAIL":
                self.reset()
                self.mail = ln[10:].split(">", 1)[0].lstrip("<")
                self.group_open = True
                if self.mail in self.hop.refuse_mail:
                    self.mail = None
                    self.reply("550 5.7.1 sender refused")
                else:
                    self.reply("250 2.1.0 ok")
            elif verb == "RCPT":
                addr = ln[8:].split(">", 1)[0].lstrip("<")
                code = self.hop.code(addr)
                if self.mail is None:
                    self.reply("503 5.5.1 need MAIL")
                elif code == 250:
                    self.rcpts.append(addr)
                    self.reply("250 2.1.5 ok")
                else:
                    self.reply(f"{code} {'4.2.0' if code < 500 else '5.1.1'} scripted reply for {addr}")
            elif verb == "BDAT":
                args = ln.split()
                n, last = int(args[1]), len(args) > 2 and args[2].upper() == "LAST"
                self.end_group("BDAT")
                self.chunks += self.exact(n)
                if self.mail is None:
                    self.reply("503 5.5.1 need MAIL")
                elif not self.rcpts:
                    self.reply("554 5.5.1 no valid recipients")
                elif not last:
                    self.reply(f"250 2.0.0 {n} octets")
                else:
                    self.hop.store(self.mail, self.rcpts, self.chunks)
                    self.reply("250 2.0.0 queued")
                if last or self.mail is None or not self.rcpts:
                    self.mail = None
            elif verb == "DATA":
                self.end_group("DATA")
                if self.mail is None:
                    self.reply("503 5.5.1 need MAIL")
                    continue
                if not self.rcpts:
                    self.reply("554 5.5.1 no valid recipients")
                    continue
                self.reply("354 go")
                self.flush()
                lines = []
                while True:
                    ln = self.line()
                    if ln == ".":
                        break
                    lines.append(ln[1:] if ln.startswith(".") else ln)
                self.hop.store(self.mail, self.rcpts, "".join(x + "\r\n" for x in lines).encode("latin-1"))
                self.mail = None
                self.reply("250 2.0.0 queued")
            elif verb == "RSET":
                self.reset()
                self.reply("250 2.0.0 reset")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                self.flush()
                return
            else:
                self.reply("500 5.5.2 what")


class Hop:
    """The scripted next hop: a listening socket and a thread per session."""

    def __init__(self, pipelining, chunking, script=None, refuse_mail=()):
        self.pipelining, self.chunking = pipelining, chunking
        self.script = script or {}
        self.refuse_mail = set(refuse_mail)
        self.attempts = {}
        self.messages = []
        self.groups = []          # (BDAT|DATA, whether the group came whole before any reply)
        self.problems = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(64)
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def code(self, addr):
        with self.lock:
            n = self.attempts.get(addr, 0)
            self.attempts[addr] = n + 1
            codes = self.script.get(addr, [250])
            return codes[min(n, len(codes) - 1)]

    def note(self, what):
        with self.lock:
            self.problems.append(what)

    def store(self, mail, rcpts, data):
        with self.lock:
            self.messages.append((mail, list(rcpts), data))

    def accept(self):
        while not self.stopped:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        try:
            Conn(self, s).run()
        except (EOFError, OSError):
            pass
        finally:
            s.close()

    def wait(self, n, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.messages) >= n:
                    return True
            time.sleep(0.05)
        return False

    def stop(self):
        self.stopped = True
        self.ls.close()


@pytest.fixture
def hops():
    made = []

    def make(*a, **k):
        h = Hop(*a, **k)
        made.append(h)
        return h
    yield make
    for h in made:
        h.stop()


def relay(hops, daemons, pipelining, chunking, script=None, **k):
    hop = hops(pipelining, chunking, script, **k)
    d = daemons("--smarthost", f"127.0.0.1:{hop.port}", "--retry-schedule", "1")
    return hop, d


def wait_log(d, text, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if text in d.logtext():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("pipelining,chunking", [(True, True), (True, False), (False, True), (False, False)])
def test_bodies_byte_for_byte(hops, daemons, pipelining, chunking):
    hop, d = relay(hops, daemons, pipelining, chunking)
    # small; dotty lines past the slots of one send; bigger than one read
    bodies = [BODY, BODY + (b".dot" + b"y" * 94 + b"\r\n") * 300, BODY + (b"z" * 98 + b"\r\n") * 800]
    for b in bodies:
        d.send("a@src.test", ["b@dst.test", "c@dst.test"], b)
    assert hop.wait(3), d.logtext()
    got = sorted(strip_received(m[2]) for m in hop.messages)
    assert got == sorted(bodies)
    assert all(m[1] == ["b@dst.test", "c@dst.test"] for m in hop.messages)
    assert hop.problems == []  # without PIPELINING, never a command early
    kind = "BDAT" if chunking else "DATA"
    assert hop.groups and all(g[0] == kind for g in hop.groups)
    if pipelining:
        # MAIL, the RCPTs and the BDAT (or DATA) came as one group
        assert all(g[1] for g in hop.groups), hop.groups
    else:
        assert not any(g[1] for g in hop.groups), hop.groups


@pytest.mark.parametrize("chunking", [True, False])
def test_refusals_in_the_group_bounce_and_retry(hops, daemons, chunking):
    hop, d = relay(hops, daemons, True, chunking, {"bad@dst.test": [550], "later@dst.test": [451, 250]})
    d.send("a@src.test", ["ok@dst.test", "bad@dst.test", "later@dst.test"], BODY)
    # the accepted one now, the 451 one on retry, the report to the sender
    assert hop.wait(3), d.logtext()
    time.sleep(1.5)
    relayed = [m for m in hop.messages if m[0]]
    assert sorted(m[1] for m in relayed) == [["later@dst.test"], ["ok@dst.test"]]
    assert all(strip_received(m[2]) == BODY for m in relayed)
    dsn = [m for m in hop.messages if not m[0]]
    assert [m[1] for m in dsn] == [["a@src.test"]] and b"Action: failed" in dsn[0][2]
    assert b"bad@dst.test" in dsn[0][2] and b"later@dst.test" not in dsn[0][2]
    assert hop.attempts == {"ok@dst.test": 1, "bad@dst.test": 1, "later@dst.test": 2, "a@src.test": 1}
    log = d.logtext()
    assert "to=bad@dst.test" in log and "outcome=bounced" in log and "outcome=deferred" in log
    assert all(g[1] for g in hop.groups), hop.groups


@pytest.mark.parametrize("chunking", [True, False])
def test_every_recipient_refused(hops, daemons, chunking):
    hop, d = relay(hops, daemons, True, chunking, {"x@dst.test": [550], "y@dst.test": [551]})
    d.send("a@src.test", ["x@dst.test", "y@dst.test"], BODY)
    assert hop.wait(1), d.logtext()  # only the report
    # the connection goes on in step: the next message is delivered
    d.send("a@src.test", ["ok@dst.test"], BODY)
    assert hop.wait(2), d.logtext()
    time.sleep(1.5)
    dsn = [m for m in hop.messages if not m[0]]
    assert [m[1] for m in dsn] == [["a@src.test"]]
    assert b"x@dst.test" in dsn[0][2] and b"y@dst.test" in dsn[0][2]
    assert [m[1] for m in hop.messages if m[0]] == [["ok@dst.test"]]
    assert hop.attempts["x@dst.test"] == 1 and hop.attempts["y@dst.test"] == 1
    assert d.logtext().count("outcome=bounced") == 2


def test_sender_refused_bounces_every_recipient(hops, daemons):
    hop, d = relay(hops, daemons, True, True, refuse_mail=["bad@src.test"])
    d.send("bad@src.test", ["x@dst.test", "y@dst.test"], BODY)
    assert hop.wait(1), d.logtext()  # the report, from <>
    time.sleep(1)
    assert [m[1] for m in hop.messages] == [["bad@src.test"]] and hop.messages[0][0] == ""
    assert d.logtext().count("outcome=bounced") == 2
