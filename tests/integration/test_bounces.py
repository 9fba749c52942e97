"""test_bounces.py - delivery status notifications end to end: a recipient
refused with 5xx (or kept past --max-queue-lifetime) makes ringmta queue an
RFC 3464 report from <> to the sender, delivered like any message; the
sender's domain is routed to a second aiosmtpd sink that receives it. Also
what must produce no report: the null sender, NOTIFY=NEVER, and a report
that is itself refused (no loop). A report that cannot be committed (the
disk is full) leaves its recipient queued, to be reported after a restart.
Run with Debian's /usr/bin/python3."""
import email
import email.policy
import time

import pytest

pytest.importorskip("aiosmtpd.controller")
from test_delivery import BODY, daemons, sinks  # noqa: E402,F401


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def report_fields(msg):
    """The per-recipient fields of the message/delivery-status part."""
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = part.get_payload()
            return [dict((k.lower(), v) for k, v in b.items()) for b in blocks[1:]], blocks[0]
    raise AssertionError("no message/delivery-status part")


def make_pair(sinks, daemons, script, *extra):
    dst = sinks(script)
    src = sinks()
    d = daemons("--route", f"dst.test=127.0.0.1:{dst.port}", "--route", f"src.test=127.0.0.1:{src.port}",
                "--retry-schedule", "1", *extra)
    return dst, src, d


def wait_log(d, text, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if text in d.logtext().replace("_", " "):
            return True
        time.sleep(0.05)
    return False


def test_550_one_recipient_bounces_to_the_sender(sinks, daemons):
    dst, src, d = make_pair(sinks, daemons, {"bad@dst.test": [550]})
    d.send("a@src.test", ["bad@dst.test", "ok@dst.test"], BODY)
    assert dst.wait(1), d.logtext()
    assert src.wait(1), d.logtext()
    frm, to, raw = src.handler.messages[0]
    assert frm in ("", "<>") and to == ["a@src.test"]
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"].strip() in ("a@src.test", "<a@src.test>")
    rcpts, per_msg = report_fields(msg)
    assert "relay.test" in per_msg["Reporting-MTA"]
    assert len(rcpts) == 1  # only the one that failed
    r = rcpts[0]
    assert r["final-recipient"].lower().replace(" ", "") == "rfc822;bad@dst.test"
    assert r["action"] == "failed"
    assert r["status"] == "5.1.1"
    assert "550 5.1.1 scripted reply for bad@dst.test" in r["diagnostic-code"].replace("\r\n", "").replace("\n", "")
    # the original comes back whole (RET unspecified, small message)
    parts = [p.get_content_type() for p in msg.walk()]
    assert "message/rfc822" in parts
    assert b"Subject: relay" in raw and b"last line" in raw
    # the report itself went through the spool and delivery
    assert "delivery report queued" in d.logtext().replace("_", " ")
    assert dst.handler.messages[0][1] == ["ok@dst.test"]


def test_ret_hdrs_returns_headers_only(sinks, daemons):
    dst, src, d = make_pair(sinks, daemons, {"bad@dst.test": [554]})
    import smtplib
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.sendmail("a@src.test", ["bad@dst.test"], BODY, mail_options=["RET=HDRS", "ENVID=env1"])
    assert src.wait(1), d.logtext()
    raw = src.handler.messages[0][2]
    msg = parse(raw)
    parts = [p.get_content_type() for p in msg.walk()]
    assert "text/rfc822-headers" in parts and "message/rfc822" not in parts
    assert b"Subject: relay" in raw and b"last line" not in raw
    rcpts, per_msg = report_fields(msg)
    assert per_msg["Original-Envelope-Id"] == "env1"
    assert rcpts[0]["status"] == "5.1.1"


def test_null_sender_never_bounced(sinks, daemons):
    dst, src, d = make_pair(sinks, daemons, {"bad@dst.test": [550]})
    d.send("", ["bad@dst.test"], BODY)
    assert wait_log(d, "outcome=bounced"), d.logtext()
    assert wait_log(d, "dropped, never bounced"), d.logtext()
    time.sleep(1.0)
    assert src.handler.messages == [] and dst.handler.messages == []


def test_notify_never_no_bounce(sinks, daemons):
    dst, src, d = make_pair(sinks, daemons, {"bad@dst.test": [550]})
    import smtplib
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.sendmail("a@src.test", ["bad@dst.test"], BODY, rcpt_options=["NOTIFY=NEVER"])
    assert wait_log(d, "outcome=bounced"), d.logtext()
    time.sleep(1.5)
    assert src.handler.messages == []
    assert "no delivery report (NOTIFY)" in d.logtext().replace("_", " ")


def test_notify_success_relayed_notice(sinks, daemons):
    # aiosmtpd does not offer DSN: NOTIFY=SUCCESS gets a "relayed" notice
    dst, src, d = make_pair(sinks, daemons, {})
    import smtplib
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.sendmail("a@src.test", ["ok@dst.test", "quiet@dst.test"], BODY)
    assert dst.wait(1), d.logtext()
    time.sleep(1.0)
    assert src.handler.messages == []  # nobody asked
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.ehlo()
        s.mail("a@src.test")
        assert s.rcpt("ok@dst.test", options=["NOTIFY=SUCCESS,FAILURE"])[0] == 250
        assert s.rcpt("quiet@dst.test")[0] == 250
        assert s.data(BODY)[0] == 250
    assert src.wait(1), d.logtext()
    rcpts, _ = report_fields(parse(src.handler.messages[0][2]))
    assert [r["action"] for r in rcpts] == ["relayed"]
    assert rcpts[0]["final-recipient"].lower().replace(" ", "") == "rfc822;ok@dst.test"


def test_expiry_bounces_with_4_4_7(sinks, daemons):
    dst, src, d = make_pair(sinks, daemons, {"slow@dst.test": [451]}, "--max-queue-lifetime", "2")
    d.send("a@src.test", ["slow@dst.test"], BODY)
    assert src.wait(1, timeout=20), d.logtext()
    rcpts, _ = report_fields(parse(src.handler.messages[0][2]))
    assert rcpts[0]["action"] == "failed"
    assert rcpts[0]["status"] == "4.4.7"
    assert "451" in rcpts[0]["diagnostic-code"]
    assert "outcome=expired" in d.logtext()


def test_bounce_refused_is_dropped_not_looped(sinks, daemons):
    dst, src, d = make_pair(sinks, daemons, {"bad@dst.test": [550]})
    src.handler.script["a@src.test"] = [550]
    d.send("a@src.test", ["bad@dst.test"], BODY)
    assert wait_log(d, "dropped, never bounced"), d.logtext()
    time.sleep(2.0)
    assert src.handler.attempts.get("a@src.test") == 1
    assert dst.handler.attempts.get("bad@dst.test") == 1
    assert src.handler.messages == [] and dst.handler.messages == []
    assert d.logtext().replace("_", " ").count("delivery report queued") == 1


def test_notify_passed_on_to_a_hop_that_offers_dsn(sinks, daemons):
    # A relays to B (ringmta offers DSN): A passes NOTIFY on and sends no
    # notice itself; B relays to aiosmtpd (no DSN) and sends the notice.
    dst, src = sinks(), sinks()
    b = daemons("--route", f"dst.test=127.0.0.1:{dst.port}", "--route", f"src.test=127.0.0.1:{src.port}")
    a = daemons("--route", f"dst.test=127.0.0.1:{b.port}", "--route", f"src.test=127.0.0.1:{src.port}")
    import smtplib
    with smtplib.SMTP("127.0.0.1", a.port, timeout=10) as s:
        s.sendmail("a@src.test", ["ok@dst.test"], BODY, mail_options=["ENVID=e42"],
                   rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;orig@dst.test"])
    assert dst.wait(1), a.logtext() + b.logtext()
    assert src.wait(1), b.logtext()
    time.sleep(1.0)
    assert len(src.handler.messages) == 1
    rcpts, per_msg = report_fields(parse(src.handler.messages[0][2]))
    assert [r["action"] for r in rcpts] == ["relayed"]
    assert per_msg["Original-Envelope-Id"] == "e42"
    assert rcpts[0]["original-recipient"].lower().replace(" ", "") == "rfc822;orig@dst.test"
    assert "delivery report queued" in b.logtext().replace("_", " ")
    assert "delivery report queued" not in a.logtext().replace("_", " ")


def test_report_survives_a_stop_mid_round(sinks, daemons, tmp_path):
    # One recipient bounces while another's delivery is still in flight;
    # the daemon stops then: the report for the bounce is queued at stop
    # and delivered after the restart (its recipient is journalled final).
    bad = sinks({"bad@one.test": [550]})
    slow = sinks(data_delay=8.0)
    src = sinks()
    spool = str(tmp_path / "spool")
    routes = ["--route", f"one.test=127.0.0.1:{bad.port}", "--route", f"two.test=127.0.0.1:{slow.port}",
              "--route", f"src.test=127.0.0.1:{src.port}", "--drain-grace", "0", "--retry-schedule", "1"]
    d = daemons(*routes, spool=spool)
    d.send("a@src.test", ["bad@one.test", "slow@two.test"], BODY)
    assert wait_log(d, "outcome=bounced"), d.logtext()
    time.sleep(0.3)
    assert src.handler.messages == []  # the round is not over
    d.proc.terminate()
    d.proc.wait(30)
    assert "delivery report queued" in d.logtext().replace("_", " ")
    d2 = daemons(*routes, spool=spool)
    assert src.wait(1, timeout=20), d2.logtext()
    rcpts, _ = report_fields(parse(src.handler.messages[0][2]))
    assert [r["final-recipient"].lower().replace(" ", "") for r in rcpts] == ["rfc822;bad@one.test"]


def test_report_that_cannot_be_committed_leaves_its_recipient_queued(sinks, tmp_path):
    """The disk fills up between a message's acceptance and its bounce:
    the report cannot be committed (ENOSPC). The bounced recipient must not
    be journalled finished, or the report is lost for good; after a
    restart with space again it is still queued and is tried (and
    reported) again. The spool is on a 1 MB tmpfs the test mounts; a
    deferred message first gives the journal a page with room to spare,
    which the record of the bounce would fit in. The store tells delivery
    that the report's commit failed, and delivery says so at once."""
    from test_delivery import Daemon
    from test_delivery_load import queue, wait_deferred
    import os
    import subprocess
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    spool = str(mnt / "spool")
    dst = sinks({"late@dst.test": [451], "bad@dst.test": [550]})
    args = ("--smarthost", f"127.0.0.1:{dst.port}", "--threads", "1", "--retry-schedule", "3600")
    try:
        d = Daemon(*args, spool=spool)
        try:
            d.send("a@src.test", ["late@dst.test"], b"Subject: late\r\n\r\nlate\r\n")
            assert len(wait_deferred(spool, 1)) == 1, d.logtext()
            # leave room for the message (88 KB) but not for its report too
            st = os.statvfs(mnt)
            with open(mnt / "fill", "wb") as f:
                f.write(b"\0" * (st.f_bavail * st.f_frsize - 120 * 1024))
            d.send("a@src.test", ["bad@dst.test"], b"Subject: bad\r\n\r\n" + (b"x" * 78 + b"\r\n") * 1100)
            assert wait_log(d, "not queued"), d.logtext()  # the report's commit failed
            # delivery hears of it at once, not when its wait runs out
            assert wait_log(d, "did not become durable", timeout=10), d.logtext()
            ids = [ln.split()[0] for ln in queue(spool, "list").stdout.decode().splitlines()]
            assert len(ids) == 2, ids
        finally:
            d.stop()
        os.unlink(mnt / "fill")
        d = Daemon(*args, spool=spool)
        try:
            # still queued: tried again, bounced again, reported this time
            assert wait_log(d, "delivery report queued"), d.logtext()
            assert "to=bad@dst.test" in d.logtext(), d.logtext()
        finally:
            d.stop()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
