"""test_durability.py - the daemon's spool store: group commit, SIGKILL,
a session cut off inside DATA, a full disk, and zero-copy bodies.

The spool's files are read back by an independent reader written here from
the record format in queue/spool_rec.h (typed records, CRC32C over header and
payload, commit records naming their body extents), so "found intact" means
the bytes on disk, not the daemon's own word. Recovery's count comes from the
restarted daemon's log. Run with Debian's /usr/bin/python3 -m pytest.
"""
import glob
import os
import re
import signal
import smtplib
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from test_server import BIN, Daemon, free_port, metric, raw, read_reply

# --- an independent reader of the spool's files -------------------------------

REC_HDR = 20
REC_MAGIC = 0x6D52
REC_CHUNK, REC_COMMIT, REC_JOURNAL = 1, 2, 3


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = CRC_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def scan_records(data):
    """Valid records of one file, up to the first bad one: (type, tag, off, payload)."""
    off = 0
    out = []
    while off + REC_HDR <= len(data):
        magic, typ, ver, plen, tag, crc = struct.unpack_from("<HBBIQI", data, off)
        if magic != REC_MAGIC or typ not in (1, 2, 3) or ver != 1 or off + REC_HDR + plen > len(data):
            break
        payload = data[off + REC_HDR:off + REC_HDR + plen]
        if crc32c(payload, crc32c(data[off:off + 16])) != crc:
            break
        out.append((typ, tag, off, payload))
        off += REC_HDR + plen
    return out


class Reader:
    def __init__(self, p):
        self.p, self.i = p, 0

    def take(self, n):
        assert self.i + n <= len(self.p), "commit record overrun"
        v = self.p[self.i:self.i + n]
        self.i += n
        return v

    def u(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def s16(self):
        return self.take(self.u("H"))


def decode_commit(p):
    r = Reader(p)
    c = {"id": r.take(r.u("B")).decode()}
    c["arrival"], c["shard"], c["tag"], c["size"] = r.u("Q"), r.u("I"), r.u("Q"), r.u("Q")
    c["flags"], c["body"], c["ret"] = r.u("B"), r.u("B"), r.u("B")
    c["sender"], c["envid"], c["auth"] = r.s16(), r.s16(), r.s16()
    c["received"] = r.take(r.u("I"))
    c["rcpt"] = []
    for _ in range(r.u("I")):
        addr = r.s16()
        notify = r.u("B")
        c["rcpt"].append((addr, notify, r.s16()))
    c["ext"] = [(r.u("I"), r.u("Q"), r.u("I")) for _ in range(r.u("I"))]
    assert r.i == len(p), "trailing bytes in a commit record"
    return c


def spool_messages(spool):
    """Every committed message whose body chunks are all present and valid:
    queue ID -> (commit fields, stored bytes = Received: header + body)."""
    files = {}
    for path in glob.glob(os.path.join(spool, "s????-????????.seg")):
        name = os.path.basename(path)
        with open(path, "rb") as f:
            files[(int(name[1:5], 16), int(name[6:14], 16))] = f.read()
    chunks, commits = {}, []
    for (shard, seg), data in files.items():
        for typ, tag, off, payload in scan_records(data):
            if typ == REC_CHUNK:
                chunks[(shard, seg, off + REC_HDR)] = (len(payload), tag)
            elif typ == REC_COMMIT:
                commits.append(decode_commit(payload))
    out = {}
    for c in commits:
        body = b""
        for seg, off, length in c["ext"]:
            if chunks.get((c["shard"], seg, off)) != (length, c["tag"]):
                break
            body += files[(c["shard"], seg)][off:off + length]
        else:
            out[c["id"]] = (c, c["received"] + body)
    return out


def chunk_bytes(spool):
    """Bytes of valid chunk records found in the spool's segments."""
    n = 0
    for path in glob.glob(os.path.join(spool, "s????-????????.seg")):
        with open(path, "rb") as f:
            n += sum(len(p) for t, _, _, p in scan_records(f.read()) if t == REC_CHUNK)
    return n


def recovered(log):
    return sum(int(n) for n in re.findall(r"recovered_(\d+)_unfinished", log))


# --- helpers -----------------------------------------------------------------------


@pytest.fixture
def spool_daemon():
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    started = []

    def start(*extra, spool=None):
        # Delivery is not under test: a next hop that refuses connections
        # keeps every message queued (without it, MX lookups of the test
        # domains would bounce them and recovery would find none).
        if "--smarthost" not in extra:
            extra = ("--smarthost", f"127.0.0.1:{free_port()}", "--retry-schedule", "3600") + extra
        d = Daemon(*extra, spool=spool)
        started.append(d)
        return d.wait_ready()

    yield start
    for d in started:
        d.stop()


def body_for(n, size=2000):
    """A message with a unique Message-ID, dot-led lines and 8-bit bytes,
    CRLF line endings throughout (byte-for-byte relaying applies)."""
    head = b"Message-ID: <m%d@durability.test>\r\nSubject: durable %d\r\n\r\n" % (n, n)
    lines = [b".leading dot %d" % n, b"..two dots", "caf\u00e9 \u00fcber".encode(), b"x" * 1200]
    body = head + b"\r\n".join(lines) + b"\r\n"
    while len(body) < size:
        body += b"line %d of message %d\r\n" % (len(body), n)
    return body


QUEUED = re.compile(rb"queued as (\S+)")


def send_smtplib(port, items, acked, lock):
    """Send (n, body) items over one session; record ID -> body for each 250."""
    c = smtplib.SMTP("127.0.0.1", port, timeout=30)
    c.ehlo("sender.test")
    for n, body in items:
        c.mail("sender%d@src.test" % n)
        c.rcpt("rcpt%d@dst.test" % n)
        code, msg = c.data(body)
        if code == 250:
            with lock:
                acked[QUEUED.search(msg).group(1).decode()] = body
    c.quit()


def check_stored(spool, acked):
    stored = spool_messages(spool)
    for qid, body in acked.items():
        assert qid in stored, f"acknowledged message {qid} not in the spool"
        commit, data = stored[qid]
        assert data.startswith(b"Received: ") and qid.encode() in commit["received"]
        assert data[len(commit["received"]):] == body, f"{qid} differs from what was sent"
    return stored


def kill_and_restart(start, d):
    spool = d.spool
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    return start(spool=spool)


# --- tests -------------------------------------------------------------------------


def test_group_commit_with_50_senders(spool_daemon):
    d = spool_daemon()
    senders, rounds = 50, 8
    sessions = [raw(d.port) for _ in range(senders)]
    for s, f in sessions:
        read_reply(f)
        s.sendall(b"EHLO sender.test\r\n")
        read_reply(f)
    acked = {}
    for r in range(rounds):
        # Every session goes as far as DATA's 354, then all 50 bodies go out
        # back to back, so the messages finish together as under real load.
        for s, f in sessions:
            s.sendall(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        for s, f in sessions:
            replies = [read_reply(f)[-1] for _ in range(3)]
            assert replies[2].startswith("354"), replies
        bodies = [body_for(r * senders + i, 600) for i in range(senders)]
        wire = [re.sub(rb"(?m)^\.", b"..", body) + b".\r\n" for body in bodies]
        for (s, f), data in zip(sessions, wire):
            s.sendall(data)
        for (s, f), body in zip(sessions, bodies):
            reply = read_reply(f)[-1]
            assert reply.startswith("250"), reply
            acked[QUEUED.search(reply.encode()).group(1).decode()] = body
    for s, f in sessions:
        s.close()
    received = metric(d.mport, "ringmta_messages_received_total")
    syncs = metric(d.mport, "ringmta_spool_syncs_total")
    assert received == len(acked) == senders * rounds
    # Group commit: one fdatasync per segment per loop turn covers every
    # message finished in it, so senders finishing together share them.
    assert 0 < syncs <= received / 3, (syncs, received)
    assert metric(d.mport, "ringmta_body_bytes_copied_total") == 0
    check_stored(d.spool, acked)


def test_sigkill_after_250_keeps_every_message(spool_daemon):
    d = spool_daemon()
    acked, lock = {}, threading.Lock()
    threads = [threading.Thread(target=send_smtplib,
                                args=(d.port, [(s * 10 + i, body_for(s * 10 + i, 500 + 700 * i)) for i in range(10)],
                                      acked, lock))
               for s in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acked) == 200
    d2 = kill_and_restart(spool_daemon, d)  # right after the last 250
    assert recovered(d2.logtext()) == 200, d2.logtext()
    stored = check_stored(d2.spool, acked)
    assert set(stored) == set(acked)
    # Still accepting on the recovered spool, with fresh IDs.
    c = smtplib.SMTP("127.0.0.1", d2.port, timeout=10)
    c.ehlo("again.test")
    c.mail("a@b.test")
    c.rcpt("c@d.test")
    code, msg = c.data(body_for(999))
    c.quit()
    assert code == 250 and QUEUED.search(msg).group(1).decode() not in acked


def test_cut_off_in_data_leaves_nothing(spool_daemon):
    d = spool_daemon()
    s, f = raw(d.port)
    read_reply(f)
    s.sendall(b"EHLO cut.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    for _ in range(4):
        read_reply(f)
    s.sendall(b"Subject: cut\r\n\r\n" + b"partial body line\r\n" * 5000)  # ~95 KB, no end
    deadline = time.time() + 5
    while chunk_bytes(d.spool) < 50000 and time.time() < deadline:
        time.sleep(0.05)
    assert chunk_bytes(d.spool) >= 50000  # the body did reach the disk...
    s.close()
    time.sleep(0.2)
    d2 = kill_and_restart(spool_daemon, d)
    assert recovered(d2.logtext()) == 0, d2.logtext()
    assert spool_messages(d2.spool) == {}  # ...but no commit names it
    assert metric(d2.mport, "ringmta_messages_received_total") == 0


def test_message_durable_after_its_client_left_is_counted_and_logged(spool_daemon):
    """A client that closes the connection right after the final dot,
    before the 250, has sent a whole message: it becomes durable, stays
    queued and will be delivered, so it is counted in
    ringmta_messages_received_total and gets its "received" log line like
    any other. The daemon's writes are slowed to four a second (a blkio
    cgroup), so its fdatasync is still in the kernel when it reads the
    end of the connection."""
    from test_delivery_load import slow_writes
    d = spool_daemon()
    with slow_writes(d.proc, d.spool):
        s, f = raw(d.port)
        read_reply(f)
        s.sendall(b"EHLO gone.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
        for _ in range(4):
            read_reply(f)
        s.sendall(body_for(1) + b".\r\n")
        s.shutdown(socket.SHUT_WR)  # the end of the connection follows the dot
        time.sleep(0.3)
        assert metric(d.mport, "ringmta_messages_received_total") == 0  # not durable yet
        s.close()
        deadline = time.time() + 20
        while metric(d.mport, "ringmta_messages_received_total") < 1 and time.time() < deadline:
            time.sleep(0.1)
    assert metric(d.mport, "ringmta_messages_received_total") == 1, d.logtext()
    ids = re.findall(r"event=received id=(\w+)", d.logtext())
    assert len(ids) == 1, d.logtext()
    assert list(spool_messages(d.spool)) == ids  # queued, under the logged ID


def bdat_message(port, body, chunks):
    s, f = raw(port)
    read_reply(f)
    s.sendall(b"EHLO bdat.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n")
    for _ in range(3):
        read_reply(f)
    step = -(-len(body) // chunks)
    for i in range(0, len(body), step):
        part = body[i:i + step]
        last = b" LAST" if i + step >= len(body) else b""
        s.sendall(b"BDAT %d%s\r\n" % (len(part), last) + part)
        reply = read_reply(f)[-1]
        assert reply.startswith("250"), reply
    s.sendall(b"QUIT\r\n")
    read_reply(f)
    s.close()
    return QUEUED.search(reply.encode()).group(1).decode()


def test_body_bytes_copied_zero_for_data_and_bdat(spool_daemon):
    d = spool_daemon()
    acked, lock = {}, threading.Lock()
    send_smtplib(d.port, [(i, body_for(i, 40000)) for i in range(5)], acked, lock)
    for i in range(5):
        # Binary-ish bytes, bare LFs and CR.CR: BDAT keeps them verbatim.
        body = body_for(100 + i, 30000) + b"bare\nlf and \r.\r dots\r\n" + bytes(range(1, 256)) + b"\r\n"
        acked[bdat_message(d.port, body, 1 + i)] = body
    assert metric(d.mport, "ringmta_messages_received_total") == 10
    assert metric(d.mport, "ringmta_body_bytes_copied_total") == 0
    check_stored(d.spool, acked)


def test_full_disk_gives_452_and_keeps_earlier_messages(spool_daemon):
    mnt = tempfile.mkdtemp(prefix="ringmta-full-")
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", mnt],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        os.rmdir(mnt)
        pytest.skip(f"cannot mount a small tmpfs for the full-disk test: {e}")
    try:
        spool = os.path.join(mnt, "spool")
        d = spool_daemon(spool=spool)
        acked = {}
        c = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
        c.ehlo("full.test")
        full = None
        for n in range(60):  # 60 x 256 KB > 8 MB
            body = body_for(n, 256 * 1024)
            c.mail("a@b.test")
            c.rcpt("c@d.test")
            code, msg = c.data(body)
            if code == 250:
                acked[QUEUED.search(msg).group(1).decode()] = body
                continue
            full = (code, msg)
            break
        assert full is not None, "the 8 MB spool never filled up"
        assert full[0] == 452 and full[1].startswith(b"4.3.1"), full
        assert len(acked) >= 10
        # The session goes on; the next message is refused the same way.
        c.mail("a@b.test")
        c.rcpt("c@d.test")
        code, msg = c.data(body_for(1000, 256 * 1024))
        assert code == 452, (code, msg)
        c.quit()
        assert metric(d.mport, "ringmta_messages_received_total") == len(acked)
        d2 = kill_and_restart(spool_daemon, d)
        assert recovered(d2.logtext()) == len(acked), d2.logtext()
        check_stored(spool, acked)
        d2.proc.send_signal(signal.SIGKILL)
        d2.proc.wait()
    finally:
        subprocess.run(["umount", "-l", mnt], check=False)
        os.rmdir(mnt)
