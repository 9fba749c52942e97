"""test_pipeline_after_dot.py - the next transaction pipelined right behind
the end of data (RFC 2920 §3.1: the message content may be the first
"command" of a group), as ringmta-blast sends it.

Raw sockets send a body, its ".", and the next MAIL, RCPT and DATA in one
write: ringmta must not read them as body, must answer in order with
distinct queue IDs (each "250" after its own commit) and keep both
messages in its spool; ringmta-sink must dump both. Then ringmta-blast's
counts against refusals inside its pipelined stream: refused recipients
(the DATA behind them gets 554) and refused MAILs. Run with Debian's /usr/bin/python3 -m pytest;
RINGMTA_BUILD names the build.
"""
import json
import os
import re
import subprocess

import pytest

from test_server import BUILD, daemon, raw, read_reply  # noqa: F401 (daemon is a fixture)
from test_sink import sink  # noqa: F401 (sink is the fixture)

BLAST = os.path.join(BUILD, "ringmta-blast")
QUEUE = os.path.join(BUILD, "ringmta-queue")


def envelope(n):
    return b"MAIL FROM:<a%d@b.test>\r\nRCPT TO:<c%d@d.test>\r\nDATA\r\n" % (n, n)


def body(n):
    return b"Subject: pipelined %d\r\nMessage-ID: <%d@pipe.test>\r\n\r\nline one\r\n..dot\r\n" % (n, n)


def codes(f, k):
    return [read_reply(f)[-1] for _ in range(k)]


def two_pipelined(port):
    """Two transactions, the second's commands in the same write as the
    first body's end; returns the final replies of both."""
    s, f = raw(port)
    assert read_reply(f)[-1].startswith("220")
    s.sendall(b"EHLO p.test\r\n")
    assert any("PIPELINING" in line for line in read_reply(f))
    s.sendall(envelope(1))
    assert [r[:3] for r in codes(f, 3)] == ["250", "250", "354"]
    s.sendall(body(1) + b".\r\n" + envelope(2))
    first, mail2, rcpt2, data2 = codes(f, 4)
    assert (mail2[:3], rcpt2[:3], data2[:3]) == ("250", "250", "354")
    s.sendall(body(2) + b".\r\nQUIT\r\n")
    second, bye = codes(f, 2)
    assert bye.startswith("221")
    s.close()
    return first, second


def test_ringmta_next_mail_behind_the_dot(daemon):
    d = daemon()
    first, second = two_pipelined(d.port)
    ids = []
    for r in (first, second):
        m = re.match(r"250 2\.0\.0 Ok: queued as (\S+)", r)
        assert m, r
        ids.append(m.group(1))
    assert ids[0] != ids[1]
    q = subprocess.run([QUEUE, "--spool", d.spool, "--json", "list"], capture_output=True, timeout=30)
    assert q.returncode == 0, q.stderr
    queued = {m["id"]: m for m in json.loads(q.stdout)}
    assert set(ids) <= set(queued)
    assert queued[ids[0]]["sender"] == "a1@b.test" and queued[ids[1]]["sender"] == "a2@b.test"
    for i, qid in enumerate(ids, 1):
        shown = subprocess.run([QUEUE, "--spool", d.spool, "show", qid], capture_output=True,
                               timeout=30).stdout
        assert b"<%d@pipe.test>" % i in shown
        assert b"MAIL FROM" not in shown


def test_sink_next_mail_behind_the_dot(sink, tmp_path):
    s = sink("--dump", str(tmp_path))
    first, second = two_pipelined(s.port)
    assert first.startswith("250") and second.startswith("250")
    dumps = sorted(p.read_bytes() for p in tmp_path.iterdir())
    assert len(dumps) == 2
    for i in (1, 2):
        (msg,) = [m for m in dumps if b"<%d@pipe.test>" % i in m]
        assert msg.endswith(b"line one\r\n.dot\r\n")
        assert b"X-Sink-From: <a%d@b.test>" % i in msg
        assert b"MAIL FROM" not in msg


def blast(port, *args):
    r = subprocess.run([BLAST, "--target", f"127.0.0.1:{port}", "--json", *args],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, json.loads(r.stdout)


@pytest.mark.parametrize("bdat", [False, True])
def test_blast_counts_refusals_in_a_pipelined_stream(sink, bdat):
    # rcpt{n}: n ending in 13 is refused for good, in 57 for now; the DATA
    # (or nothing, with BDAT) behind a refused recipient must not be taken
    # for another message's reply. The sink's error budget (20 per session;
    # a refusal and the 554 to its DATA count) must never be spent, even if
    # every refusal lands on one session: sessions may take messages in
    # turn, so n and n + 20 can share one. 8 refusals in all keep it so.
    s = sink("--fail-rcpt", "*13@sink.test=550", "--fail-rcpt", "*57@sink.test=451")
    extra = ["--bdat"] if bdat else []
    rc, out = blast(s.port, "--connections", "20", "--messages", "400", *extra)
    assert rc == 1
    assert out["sent"] == 400 and out["errors"] == 0
    assert out["rejected"] == 8 and out["accepted"] == 392
    assert s.usr1()["messages"] == 392


def test_blast_counts_refused_mail(daemon):
    # SIZE= over the limit: every MAIL gets 552, the RCPT and DATA behind
    # it 503, one after another on each connection (within the session's
    # error budget).
    d = daemon("--max-message-size", "1000", "--max-errors", "100000")
    rc, out = blast(d.port, "--connections", "4", "--messages", "300", "--size", "2000")
    assert rc == 1
    assert out == {**out, "sent": 300, "rejected": 300, "accepted": 0, "errors": 0}
