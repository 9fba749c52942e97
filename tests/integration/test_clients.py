"""test_clients.py - independent SMTP clients against the real daemon.

swaks and curl's smtp:// upload each send a message to build/ringmta; the
daemon must acknowledge it with a queue ID, and the spool must then hold
exactly that message (read back with build/ringmta-queue).
Run with Debian's /usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from test_server import BUILD, daemon  # noqa: F401  (the fixture)

QUEUE = os.path.join(BUILD, "ringmta-queue")


def queued(spool):
    out = subprocess.run([QUEUE, "--spool", spool, "--json", "list"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return json.loads(out)


def show(spool, qid):
    return subprocess.run([QUEUE, "--spool", spool, "show", qid], capture_output=True,
                          text=True, timeout=30, check=True).stdout


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_message_is_queued(daemon):
    d = daemon()
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{d.port}", "--helo", "client.test",
                        "--from", "sender@client.test", "--to", "rcpt@dest.example",
                        "--header", "Subject: from swaks", "--body", "hello from swaks",
                        "--pipeline"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout
    qid = r.stdout.split("queued as ")[1].split()[0]
    msgs = queued(d.spool)
    assert [m["id"] for m in msgs] == [qid]
    assert msgs[0]["sender"] == "sender@client.test"
    assert [x["address"] for x in msgs[0]["recipients"]] == ["rcpt@dest.example"]
    assert "Subject: from swaks" in show(d.spool, qid)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_upload_is_queued(daemon):
    d = daemon()
    with tempfile.NamedTemporaryFile("w", suffix=".eml", delete=False) as f:
        f.write("From: sender@client.test\r\nTo: rcpt@dest.example\r\n"
                "Subject: from curl\r\n\r\nhello from curl\r\n.leading dot\r\n")
        path = f.name
    try:
        r = subprocess.run(["curl", "-sS", "-v", f"smtp://127.0.0.1:{d.port}/client.test",
                            "--mail-from", "sender@client.test",
                            "--mail-rcpt", "rcpt@dest.example", "--upload-file", path],
                           capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    assert r.returncode == 0, r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stderr
    msgs = queued(d.spool)
    assert len(msgs) == 1
    text = show(d.spool, msgs[0]["id"])
    assert "Subject: from curl" in text
