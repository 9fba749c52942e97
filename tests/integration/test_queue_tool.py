"""ringmta-queue on a real spool (CONTRACT.md "ringmta-queue"): list (text
and JSON), show, delete, stats and flush over spool files written through
the spool API by the spool-fill test helper, with and without a process
holding the spool's lock as a running daemon does."""
import fcntl
import json
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("RINGMTA_BUILD", os.path.join(ROOT, "build"))
QUEUE = os.path.join(BUILD, "ringmta-queue")
FILL = os.path.join(BUILD, "tests", "spool-fill")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

QUOTED = '"odd \\"quoted\\" one"@Quote.example'
UTF8 = "jörg.müller@bücher.example"
BODY = (b"Subject: hello\r\nFrom: Alice <alice@example.com>\r\nX-Test: \xc3\xa9t\xc3\xa9\r\n"
        b"\r\nthe body, not a header\r\nSubject: not a header either\r\n")
RECEIVED = "Received: from client.test by ringmta.test; test\r\n"

DEFER_US = 1800000000000000  # 2027-01-15T08:00:00Z


def queue(spool, *args):
    assert os.access(QUEUE, os.X_OK), f"{QUEUE} is not built"
    return subprocess.run([QUEUE, "--spool", spool, *args], capture_output=True, timeout=30)


def fill(spool, shard, script):
    assert os.access(FILL, os.X_OK), f"{FILL} is not built"
    r = subprocess.run([FILL, spool, str(shard)], input=script.encode(), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().split()


def snapshot(spool):
    return sorted((n, os.path.getsize(os.path.join(spool, n))) for n in os.listdir(spool))


@pytest.fixture
def spool(tmp_path):
    """Three messages on two shards:
    a: from alice, to two (rcpt 0 deferred with a reply), DSN parameters
    b: null sender, to a UTF-8 and a quoted address, SMTPUTF8
    c: shard 7, to three, one delivered (two left)"""
    d = str(tmp_path / "spool")
    body = tmp_path / "body.eml"
    body.write_bytes(BODY)
    t = "\t"
    a, b = fill(d, 1, "\n".join([
        t.join(["msg", "alice@example.com", str(body), "1700000000000000"]),
        t.join(["rcpt", "bob@Example.ORG", "12", "rfc822;bob@example.org"]),
        t.join(["rcpt", "carol@example.org", "4", "-"]),
        "envid\tENV-123", "ret\t2", "body\t2", "size\t4096", "end",
        t.join(["msg", "-", str(body), "1700000060000000"]),
        t.join(["rcpt", UTF8, "0", "-"]),
        t.join(["rcpt", QUOTED, "1", "-"]),
        "utf8", "end", ""]))
    fill(d, 1, t.join(["journal", a, "0", "1", str(DEFER_US), "3",
                       '451 4.4.1 "quoted" reply \\ with backslash']) + "\n")
    (c,) = fill(d, 7, "\n".join([
        t.join(["msg", "x@y.example", str(body), "1700000120000000"]),
        t.join(["rcpt", "one@example.org", "0", "-"]),
        t.join(["rcpt", "two@other.example", "0", "-"]),
        t.join(["rcpt", "three@other.example", "0", "-"]),
        "end", ""]))
    fill(d, 7, t.join(["journal", c, "1", "2", "0", "1", "250 2.0.0 ok"]) + "\n")
    return d, a, b, c


def test_list_text(spool):
    d, a, b, c = spool
    r = queue(d, "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert [l.split(" ")[0] for l in lines] == [a, b, c]  # arrival order across shards
    size = len(RECEIVED) + len(BODY)
    f = lines[0].split(" ", 6)
    assert f[1] == str(size) and f[2] == "2023-11-14T22:13:20Z" and f[3] == "alice@example.com"
    assert f[4] == "2" and f[5] == "2027-01-15T08:00:00Z"
    assert f[6] == '451 4.4.1 "quoted" reply \\ with backslash'
    f = lines[1].split(" ")
    assert f[3] == "<>" and f[4] == "2" and f[5:] == ["-", "-"]
    assert RFC3339.match(f[2])
    f = lines[2].split(" ")
    assert f[4] == "2" and f[5:] == ["-", "-"]


def test_list_json(spool):
    d, a, b, c = spool
    r = queue(d, "--json", "list")
    assert r.returncode == 0, r.stderr
    msgs = json.loads(r.stdout.decode("utf-8"))
    assert [m["id"] for m in msgs] == [a, b, c]
    for m in msgs:
        assert set(m) >= {"id", "size", "arrival", "sender", "recipients"}
        assert m["size"] == len(RECEIVED) + len(BODY)
        assert RFC3339.match(m["arrival"])
        for rc in m["recipients"]:
            assert set(rc) >= {"address", "state", "next_attempt", "last_reply"}
    ma, mb, mc = msgs
    assert ma["sender"] == "alice@example.com" and mb["sender"] == "<>"
    assert ma["recipients"][0] == {"address": "bob@Example.ORG", "state": "deferred",
                                   "next_attempt": "2027-01-15T08:00:00Z",
                                   "last_reply": '451 4.4.1 "quoted" reply \\ with backslash'}
    assert ma["recipients"][1]["state"] == "pending"
    assert ma["recipients"][1]["next_attempt"] is None
    assert [x["address"] for x in mb["recipients"]] == [UTF8, QUOTED]
    assert [x["state"] for x in mc["recipients"]] == ["pending", "delivered", "pending"]
    assert mc["recipients"][1]["last_reply"] == "250 2.0.0 ok"


def test_show(spool):
    d, a, b, c = spool
    r = queue(d, "show", a)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    for want in [f"id: {a}", "sender: alice@example.com", "envid: ENV-123", "ret: HDRS",
                 "body: 8BITMIME", "size-param: 4096", "recipient: bob@Example.ORG",
                 "  state: deferred", "  notify: FAILURE DELAY", "  orcpt: rfc822;bob@example.org",
                 "  attempts: 3", "  next-attempt: 2027-01-15T08:00:00Z",
                 "recipient: carol@example.org", "  Subject: hello",
                 "  From: Alice <alice@example.com>", "  Received: from client.test by ringmta.test; test"]:
        assert want in out.splitlines(), (want, out)
    assert "the body" not in out and "not a header either" not in out
    r = queue(d, "--json", "show", b)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.decode("utf-8"))
    assert m["id"] == b and m["sender"] == "<>" and m["smtputf8"] is True
    assert [x["address"] for x in m["recipients"]] == [UTF8, QUOTED]
    assert m["recipients"][1]["notify"] == ["NEVER"]
    assert m["headers"] == RECEIVED + BODY.split(b"\r\n\r\n")[0].decode() + "\r\n"
    # a lower-case ID names the same message
    assert queue(d, "show", a.lower()).returncode == 0


def test_delete(spool):
    d, a, b, c = spool
    r = queue(d, "delete", b)
    assert r.returncode == 0, r.stderr
    r = queue(d, "list")
    assert [l.split(" ")[0] for l in r.stdout.decode().splitlines()] == [a, c]
    r = queue(d, "delete", b)
    assert r.returncode == 1 and b"no such message" in r.stderr
    assert queue(d, "show", b).returncode == 1
    # the deletion lasts: a later writer's recovery agrees
    fill(d, 1, "")
    assert queue(d, "--json", "stats").returncode == 0
    ids = [m["id"] for m in json.loads(queue(d, "--json", "list").stdout)]
    assert ids == [a, c]
    assert queue(d, "delete", c).returncode == 0
    assert queue(d, "delete", a).returncode == 0
    assert queue(d, "list").stdout == b""
    assert json.loads(queue(d, "--json", "list").stdout) == []
    # nothing is left to keep a segment
    assert not [n for n in os.listdir(d) if n.endswith(".seg")]


def test_stats(spool):
    d, a, b, c = spool
    r = queue(d, "stats")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert "messages 3" in lines and "recipients 6" in lines
    assert "state pending 5" in lines and "state deferred 1" in lines
    assert "next-hop example.org 3" in lines and "next-hop other.example 1" in lines
    r = queue(d, "--json", "stats")
    s = json.loads(r.stdout.decode("utf-8"))
    assert s["messages"] == 3 and s["recipients"] == 6
    assert s["by_state"] == {"pending": 5, "deferred": 1}
    assert s["by_next_hop"] == {"example.org": 3, "other.example": 1, "bücher.example": 1,
                                "quote.example": 1}


def test_bad_ids(spool):
    d, a, b, c = spool
    for bad in ["0000000000000000", "NOSUCHID", a[:-1], a + "0"]:
        for cmd in ["show", "delete"]:
            r = queue(d, cmd, bad)
            assert r.returncode == 1, (cmd, bad, r.stderr)
            assert b"no such message" in r.stderr
    r = queue(d, "show", "not-an-id!")
    assert r.returncode == 2
    assert len(queue(d, "list").stdout.splitlines()) == 3


def test_usage_errors(tmp_path):
    r = subprocess.run([QUEUE, "list"], capture_output=True, timeout=30)
    assert r.returncode == 2 and b"spool" in r.stderr
    r = subprocess.run([QUEUE, "--spool", str(tmp_path)], capture_output=True, timeout=30)
    assert r.returncode == 2
    r = subprocess.run([QUEUE, "--spool", str(tmp_path), "show"], capture_output=True, timeout=30)
    assert r.returncode == 2
    r = subprocess.run([QUEUE, "--spool", str(tmp_path / "none"), "list"], capture_output=True,
                       timeout=30)
    assert r.returncode == 2


def test_empty_spool(tmp_path):
    d = str(tmp_path)
    r = queue(d, "list")
    assert r.returncode == 0 and r.stdout == b""
    assert json.loads(queue(d, "--json", "list").stdout) == []
    s = json.loads(queue(d, "--json", "stats").stdout)
    assert s["messages"] == 0 and s["by_next_hop"] == {}


def test_while_a_daemon_holds_the_lock(spool):
    d, a, b, c = spool
    with open(os.path.join(d, "lock"), "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(d)
        assert len(queue(d, "list").stdout.splitlines()) == 3
        assert queue(d, "show", a).returncode == 0
        assert queue(d, "--json", "stats").returncode == 0
        assert snapshot(d) == before  # read-only
        r = queue(d, "delete", a)
        assert r.returncode == 1 and b"daemon" in r.stderr and b"control socket" in r.stderr
        r = queue(d, "flush")
        assert r.returncode == 1 and b"daemon" in r.stderr
        assert snapshot(d) == before
    r = queue(d, "flush")
    assert r.returncode == 1 and b"no daemon runs" in r.stderr
    assert len(queue(d, "list").stdout.splitlines()) == 3
