"""test_blast.py - ringmta-blast against ringmta-sink and against an
independent peer (aiosmtpd), over loopback (CONTRACT.md "ringmta-blast"):
counts agree with the sink, --json has exactly the contract's keys, exit 1
when the server refuses, --rcpts and --bdat work, every Message-ID is
unique, and the messages an independent server receives are well formed
and exactly --size bytes. --starttls is tested in test_tools_tls.py.
Run with Debian's /usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import email
import json
import os
import re
import subprocess
import threading

import pytest

from test_sink import BUILD, free_port, sink  # noqa: F401 (sink is the fixture)

BLAST = os.path.join(BUILD, "ringmta-blast")
KEYS = {"sent", "accepted", "rejected", "errors", "seconds", "msgs_per_sec", "mb_per_sec", "latency_ms"}


@pytest.fixture(autouse=True)
def blast_built():
    if not os.access(BLAST, os.X_OK):
        pytest.skip(f"{BLAST} not built")


def blast(port, *args, timeout=60):
    return subprocess.run([BLAST, "--target", f"127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=timeout)


def blast_json(port, *args):
    r = blast(port, "--json", *args)
    out = json.loads(r.stdout)
    return r.returncode, out


def test_counts_match_the_sink(sink):
    s = sink("--threads", "2")
    rc, out = blast_json(s.port, "--connections", "20", "--messages", "3000", "--threads", "2")
    assert rc == 0
    assert out["sent"] == out["accepted"] == 3000
    assert out["rejected"] == 0 and out["errors"] == 0
    counts = s.usr1()
    assert counts["messages"] == 3000
    assert counts["bytes"] == 3000 * 1024


def test_json_keys_and_values(sink):
    s = sink()
    rc, out = blast_json(s.port, "--connections", "4", "--messages", "200", "--size", "2000")
    assert rc == 0
    assert set(out) == KEYS
    assert set(out["latency_ms"]) == {"p50", "p90", "p99", "max"}
    lat = out["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert out["seconds"] > 0
    assert out["msgs_per_sec"] == pytest.approx(200 / out["seconds"], rel=0.02)
    assert out["mb_per_sec"] == pytest.approx(200 * 2000 / 1e6 / out["seconds"], rel=0.02)


def test_text_summary(sink):
    s = sink()
    r = blast(s.port, "--connections", "2", "--messages", "10")
    assert r.returncode == 0, r.stderr
    assert re.search(r"sent 10, accepted 10, rejected 0, errors 0", r.stdout)
    assert "messages/s" in r.stdout and "MB/s" in r.stdout and "p99" in r.stdout
    assert r.stderr == ""  # the progress line is for terminals only


def test_exit_1_when_refused(sink):
    s = sink("--fail-rcpt", "*@bad.test=550")
    rc, out = blast_json(s.port, "--connections", "2", "--messages", "10", "--to", "r{n}@bad.test")
    assert rc == 1
    assert out["sent"] == 10 and out["rejected"] == 10 and out["accepted"] == 0
    # one refused recipient among several makes the message count as rejected
    s2 = sink("--fail-rcpt", "rcpt3@sink.test=451")
    rc, out = blast_json(s2.port, "--connections", "1", "--messages", "4", "--rcpts", "2")
    assert rc == 1 and out["rejected"] == 1 and out["accepted"] == 3


def test_exit_1_when_nobody_listens():
    rc, out = blast_json(free_port(), "--connections", "3", "--messages", "5")
    assert rc == 1 and out["errors"] == 3 and out["accepted"] == 0


@pytest.mark.parametrize("mode", [[], ["--bdat"]])
def test_rcpts_bdat_and_unique_message_ids(sink, tmp_path, mode):
    dump = tmp_path / "dump"
    s = sink("--dump", str(dump))
    rc, out = blast_json(s.port, "--connections", "5", "--messages", "60", "--rcpts", "3",
                         "--size", "3000", "--from", "s{n}@blast.test", *mode)
    assert rc == 0 and out["accepted"] == 60
    files = sorted(dump.iterdir())
    assert len(files) == 60
    ids, rcpts = set(), set()
    for f in files:
        raw = f.read_bytes()
        lines = raw.split(b"\r\n")
        env = [l for l in lines[:4] if l.startswith(b"X-Sink-")]
        assert env[0].startswith(b"X-Sink-From: <s") and len(env) == 4
        rcpts.update(l for l in env[1:])
        body = raw[sum(len(l) + 2 for l in env):]
        assert len(body) == 3000, f.name  # --size is the whole message
        m = email.message_from_bytes(body)
        ids.add(m["Message-ID"])
        assert body.endswith(b"\r\n") and b"\n." not in body
    assert len(ids) == 60 and None not in ids
    assert len(rcpts) == 180  # rcpt{n}: a running number per recipient


def test_bdat_falls_back_to_data_when_not_offered(sink):
    s = sink("--advertise-chunking", "off")
    rc, out = blast_json(s.port, "--connections", "2", "--messages", "20", "--bdat")
    assert rc == 0 and out["accepted"] == 20


def test_duration_and_rate(sink):
    s = sink()
    rc, out = blast_json(s.port, "--connections", "4", "--duration", "1", "--rate", "200")
    assert rc == 0
    assert 150 <= out["accepted"] <= 260
    assert 0.9 <= out["seconds"] <= 3


def test_against_aiosmtpd(tmp_path):
    """An independent server: messages arrive whole, exactly --size bytes."""
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    got, lock = [], threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
            return "250 OK"

    port = free_port()
    ctl = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        rc, out = blast_json(port, "--connections", "3", "--messages", "30", "--rcpts", "2", "--size", "5000")
    finally:
        ctl.stop()
    assert rc == 0 and out["accepted"] == 30
    assert len(got) == 30
    ids = set()
    for frm, tos, content in got:
        assert frm == "blast@blast.test"
        assert len(tos) == 2 and all(re.fullmatch(r"rcpt\d+@sink\.test", t) for t in tos)
        assert len(content) == 5000
        m = email.message_from_bytes(content)
        assert m["Subject"].startswith("ringmta-blast message")
        ids.add(m["Message-ID"])
    assert len(ids) == 30
