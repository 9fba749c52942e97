"""DSNs built by queue/bounce.c, parsed by an independent MIME parser
(Python's email package, policy.default): multipart/report with
report-type=delivery-status, the delivery-status fields, the original or its
headers attached per RET and size, and no report where none is due. The
bounce-gen test helper writes one file per case."""
import email
import email.policy
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("RINGMTA_BUILD", os.path.join(ROOT, "build"))
GEN = os.path.join(BUILD, "tests", "bounce-gen")


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    assert os.access(GEN, os.X_OK), f"{GEN} is not built"
    d = tmp_path_factory.mktemp("dsn")
    r = subprocess.run([GEN, str(d)], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return d


def load(cases, name):
    raw = (cases / f"{name}.eml").read_bytes()
    # every line CRLF and at most 998 octets, no bare CR
    assert raw.endswith(b"\r\n")
    for line in raw[:-2].split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line
        assert len(line) <= 998
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert not msg.defects, msg.defects
    return raw, msg


def parts(msg):
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    p = msg.get_payload()
    assert len(p) == 3
    assert p[0].get_content_type() == "text/plain"
    assert p[1].get_content_type() == "message/delivery-status"
    for q in p:
        assert not q.defects, q.defects
    return p


def status_blocks(part):
    """The per-message block and the per-recipient blocks."""
    blocks = part.get_payload()
    assert len(blocks) >= 2
    return blocks[0], blocks[1:]


def check_headers(msg, subject):
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.test"
    assert msg["From"].addresses[0].display_name == "Mail Delivery System"
    assert msg["To"].addresses[0].addr_spec == "alice@example.org"
    assert msg["Subject"] == subject
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime is not None
    assert re.fullmatch(r"<[^<>@\s]+@mx\.test>", msg["Message-ID"])


def test_single_failure(cases):
    raw, msg = load(cases, "single")
    check_headers(msg, "Undelivered Mail Returned to Sender")
    text, report, orig = parts(msg)
    assert "bob@remote.test" in text.get_content()
    per_msg, rcpts = status_blocks(report)
    assert per_msg["Reporting-MTA"] == "dns; mx.test"
    assert per_msg["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert per_msg["Original-Envelope-Id"] is None
    assert len(rcpts) == 1
    r = rcpts[0]
    assert r["Final-Recipient"] == "rfc822; bob@remote.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; mx.remote.test"
    assert r["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert r["Last-Attempt-Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert r["Original-Recipient"] is None
    assert orig.get_content_type() == "message/rfc822"
    inner = orig.get_payload()[0]
    assert inner["Message-ID"] == "<orig-1@example.org>"
    assert inner.get_content().startswith("body line one")


def test_mixed_failed_delayed(cases):
    raw, msg = load(cases, "mixed")
    check_headers(msg, "Undelivered Mail Returned to Sender")
    _, report, orig = parts(msg)
    _, rcpts = status_blocks(report)
    assert [r["Action"] for r in rcpts] == ["failed", "delayed"]
    assert rcpts[1]["Status"] == "4.4.1"
    assert rcpts[1]["Will-Retry-Until"] == "Sun, 19 Nov 2023 22:13:20 +0000"
    assert rcpts[0]["Will-Retry-Until"] is None
    assert orig.get_content_type() == "message/rfc822"


@pytest.mark.parametrize("name", ["never", "nullsender"])
def test_no_bounce(cases, name):
    assert not (cases / f"{name}.eml").exists()
    assert (cases / f"{name}.none").exists()


@pytest.mark.parametrize("name", ["hdrs", "large"])
def test_headers_only(cases, name):
    raw, msg = load(cases, name)
    _, _, orig = parts(msg)
    assert orig.get_content_type() == "text/rfc822-headers"
    body = orig.get_payload(decode=True)
    assert b"Subject: hello" in body or name == "large"
    assert b"body line" not in raw


def test_orcpt_envid(cases):
    _, msg = load(cases, "orcpt_envid")
    _, report, _ = parts(msg)
    per_msg, rcpts = status_blocks(report)
    assert per_msg["Original-Envelope-Id"] == "QQ+314159"
    assert rcpts[0]["Original-Recipient"] == "rfc822; Bob+sales@remote.test"
    assert rcpts[0]["Final-Recipient"] == "rfc822; bob@remote.test"


def test_hostile_reply(cases):
    raw, msg = load(cases, "hostile")
    assert b"\nBcc:" not in raw and b"\nX-Evil" not in raw
    assert msg["Bcc"] is None
    _, report, _ = parts(msg)
    _, rcpts = status_blocks(report)
    r = rcpts[0]
    assert len(rcpts) == 1 and r["Bcc"] is None and r["X-Evil"] is None
    diag = str(r["Diagnostic-Code"])
    assert diag.startswith("smtp; 550 5.1.1 no Bcc: victim@evil.test")
    assert diag.replace(" ", "").count("A") == 3000
    assert r["Remote-MTA"] == "dns; mx X-Evil: 1"


def test_utf8_recipient(cases):
    raw, msg = load(cases, "utf8")
    _, report, _ = parts(msg)
    _, rcpts = status_blocks(report)
    fr = rcpts[0]["Final-Recipient"]
    assert fr == "utf-8; \\x{7528}\\x{6237}@\\x{4F8B}\\x{5B50}.test"
    # decoding the RFC 6533 form gives the address back
    addr = re.sub(r"\\x\{([0-9A-F]+)\}", lambda m: chr(int(m.group(1), 16)), fr.split("; ", 1)[1])
    assert addr == "用户@例子.test"
    assert max(raw) < 0x80  # the whole report is ASCII
