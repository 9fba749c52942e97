"""test_delivery_load.py - delivery under load and under control: real
binaries over loopback.

- SIGKILL in the middle of a 2000-message burst (ringmta-blast into ringmta
  relaying to ringmta-sink --dump), restart on the same spool: every
  acknowledged message arrives (by Message-ID), duplicates are counted.
- One hot smarthost keeps both shards busy (CPU per shard thread from
  /proc/PID/task/*/stat; shard threads are the ones pinned to one CPU),
  also when every message arrives over one session on one shard (the
  hand-off between shards), each message delivered exactly once.
- ringmta-queue against a running daemon (the control socket): list, show,
  delete and flush with deferred mail at an aiosmtpd next hop answering 451;
  delete answers only once its journal record is durable (the daemon's
  writes slowed by a blkio cgroup).
- 1000 sessions into one shard while every message is deferred at once:
  nothing refused for want of spool request slots; the in-flight gauge
  shows a throttled disk's backlog.

Run with Debian's /usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import contextlib
import json
import os
import re
import resource
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

pytest.importorskip("aiosmtpd.controller")
from test_delivery import Daemon, Handler, Sink, free_port  # noqa: E402
from test_server import metric  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("RINGMTA_BUILD", os.path.join(ROOT, "build"))
BLAST = os.path.join(BUILD, "ringmta-blast")
SINK = os.path.join(BUILD, "ringmta-sink")
QUEUE = os.path.join(BUILD, "ringmta-queue")
MSGID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.M | re.I)


class DumpSink:
    """ringmta-sink --dump DIR on a free port."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "dump")
        os.mkdir(self.dir)
        self.port = free_port()
        self.proc = subprocess.Popen([SINK, "--listen", f"127.0.0.1:{self.port}", "--threads", "2",
                                      "--dump", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def ids(self):
        """Message-IDs of every dumped message (a list: duplicates stay)."""
        out = []
        for name in os.listdir(self.dir):
            if not name.endswith(".eml"):
                continue
            with open(os.path.join(self.dir, name), "rb") as f:
                m = MSGID.search(f.read(8192))
            if m:
                out.append(m.group(1))
        return out

    def wait_ids(self, want, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if len(set(self.ids())) >= want:
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.tmp.cleanup()


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def blast_json(out):
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.fixture
def dumpsink():
    s = DumpSink()
    yield s
    s.stop()


def test_sigkill_mid_load_then_restart_delivers_every_ack(dumpsink, tmp_path):
    spool = str(tmp_path / "spool")
    args = ("--smarthost", f"127.0.0.1:{dumpsink.port}", "--retry-schedule", "1")
    d = Daemon(*args, spool=spool)
    blast = subprocess.Popen([BLAST, "--target", f"127.0.0.1:{d.port}", "--connections", "50",
                              "--messages", "2000", "--size", "10240", "--rate", "500", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill in the middle (the rate makes the burst last about 4 s): some
    # mail delivered, some only queued, sessions in the middle of DATA.
    end = time.time() + 30
    while time.time() < end and len(os.listdir(dumpsink.dir)) < 600:
        time.sleep(0.01)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    out, err = blast.communicate(timeout=120)
    acc = blast_json(out)["accepted"]
    assert 300 <= acc < 2000, (acc, err)
    d.stop()
    d2 = Daemon(*args, spool=spool)
    try:
        ok = dumpsink.wait_ids(acc, 60)
        ids = dumpsink.ids()
        uniq = set(ids)
        dups = len(ids) - len(uniq)
        print(f"accepted {acc}, arrived {len(uniq)} unique, {dups} duplicates")
        assert ok, f"accepted {acc}, arrived only {len(uniq)}"
        # what arrived is what was acknowledged, plus at most the few in
        # flight at the kill (the client never saw their 250)
        assert len(uniq) <= acc + 50
        assert dups <= max(50, acc // 20), f"{dups} duplicates"
    finally:
        d2.stop()


def task_cpu(pid):
    """{tid: (a shard thread, utime + stime ticks)} of every thread. Shard
    threads are pinned to one CPU; io_uring's workers (iou-wrk-*) are too,
    and are told apart by their name."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                cpus = [ln.split()[1] for ln in f if ln.startswith("Cpus_allowed_list")][0]
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        pinned = re.fullmatch(r"\d+", cpus) is not None and not comm.startswith("iou-")
        out[int(tid)] = (pinned, int(fields[11]) + int(fields[12]))
    return out


def blast_shard_ticks(d, dumpsink, connections, messages, size):
    """Blast messages into d over connections sessions, wait until every
    one reached the sink; the CPU ticks each shard thread spent meanwhile."""
    before = task_cpu(d.proc.pid)
    r = subprocess.run([BLAST, "--target", f"127.0.0.1:{d.port}", "--connections", str(connections),
                        "--messages", str(messages), "--size", str(size), "--json"],
                       capture_output=True, timeout=180)
    acc = blast_json(r.stdout)["accepted"]
    assert acc == messages, r.stderr
    assert dumpsink.wait_ids(acc, 60)
    time.sleep(0.5)  # a duplicate would be on its way by now
    after = task_cpu(d.proc.pid)
    shards = {t: after[t][1] - before.get(t, (True, 0))[1] for t in after if after[t][0]}
    assert len(shards) == 2, after
    return shards


def test_hot_smarthost_keeps_every_shard_busy(dumpsink):
    d = Daemon("--smarthost", f"127.0.0.1:{dumpsink.port}", "--threads", "2")
    try:
        shards = blast_shard_ticks(d, dumpsink, 50, 4000, 4096)
        top = max(shards.values())
        print("shard CPU ticks:", shards)
        assert top > 0
        for t, ticks in shards.items():
            assert ticks >= top * 0.25, f"shard thread {t}: {ticks} ticks against {top}"
    finally:
        d.stop()


def test_one_inbound_session_spreads_delivery_over_shards(dumpsink):
    """All mail arrives over one client connection, so one shard receives
    everything; the busy shard hands delivery jobs to the other through its
    inbox, and both threads carry a real share of the work. Every message
    arrives exactly once (by Message-ID)."""
    d = Daemon("--smarthost", f"127.0.0.1:{dumpsink.port}", "--threads", "2")
    try:
        shards = blast_shard_ticks(d, dumpsink, 1, 3000, 8192)
        ids = dumpsink.ids()
        assert len(ids) == 3000, f"{len(ids) - len(set(ids))} duplicates"
        assert len(set(ids)) == 3000
        top = max(shards.values())
        low = min(shards.values())
        print("shard CPU ticks (one inbound session):", shards)
        assert top > 0
        assert low >= top * 0.25, f"the other shard did {low} ticks against {top}"
    finally:
        d.stop()


def raise_nofile():
    """In a child: as many descriptors as the hard limit allows."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def test_deferrals_under_heavy_receiving_refuse_nothing(tmp_path):
    """1000 sessions send 10 KB messages to one shard while the next hop
    fails at once (the DNS server's port is closed), so delivery journals
    a deferral for nearly every message as it arrives: spool writes pile up
    beside the bodies and commits. The spool makes request slots as load
    asks; no message may be refused (451) for want of one. (With a fixed
    4096 slots a few hundred of 20,000 were refused.)"""
    mport = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:  # a UDP port closed again
        u.bind(("127.0.0.1", 0))
        dns = u.getsockname()[1]
    d = Daemon("--threads", "1", "--dns", f"127.0.0.1:{dns}", "--max-connections", "2000",
               "--max-connections-per-ip", "2000", "--metrics", f"127.0.0.1:{mport}",
               spool=str(tmp_path / "spool"))
    try:
        r = subprocess.run([BLAST, "--target", f"127.0.0.1:{d.port}", "--connections", "1000",
                            "--messages", "20000", "--size", "10240", "--json"],
                           capture_output=True, timeout=180, preexec_fn=raise_nofile)
        out = blast_json(r.stdout)
        print("blast:", out)
        deferred = metric(mport, "ringmta_messages_deferred_total")
        assert deferred >= 10000, f"only {deferred} deferrals: the load did not reach the journal"
        assert out["accepted"] == 20000, (out, r.stderr)
        assert metric(mport, "ringmta_spool_commits_failed_total") == 0
        assert "journal record not written" not in d.logtext()
    finally:
        d.stop()


class Gate(Handler):
    """451 to every recipient until opened."""

    def __init__(self):
        super().__init__()
        self.open_gate = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not self.open_gate:
            return "451 4.3.0 not now"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def queue(spool, *args):
    return subprocess.run([QUEUE, "--spool", spool, *args], capture_output=True, timeout=30)


def wait_deferred(spool, n, timeout=15):
    """The list once n messages are queued and each was tried and
    deferred (451), or the last list seen."""
    end = time.time() + timeout
    while True:
        lines = queue(spool, "list").stdout.decode().splitlines()
        if (len(lines) == n and all(" 451 " in ln for ln in lines)) or time.time() >= end:
            return lines
        time.sleep(0.1)


def test_queue_tool_against_running_daemon(tmp_path):
    sink = Sink()
    sink.handler.__class__ = Gate
    sink.handler.open_gate = False
    spool = str(tmp_path / "spool")
    d = Daemon("--smarthost", f"127.0.0.1:{sink.port}", "--retry-schedule", "3600", spool=spool)
    try:
        st = os.stat(os.path.join(spool, "control"))
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(spool).st_mode) == 0o700
        for i in range(3):
            d.send("a@src.test", [f"r{i}@dst.test"],
                   f"Subject: q{i}\r\nMessage-ID: <q{i}@src.test>\r\n\r\nbody {i}\r\n".encode())
        lines = wait_deferred(spool, 3)
        assert len(lines) == 3 and all(" 451 " in ln and ln.endswith("not now") for ln in lines), lines
        js = json.loads(queue(spool, "--json", "list").stdout)
        assert len(js) == 3
        for m in js:
            (r,) = m["recipients"]
            assert r["state"] == "deferred" and r["last_reply"].startswith("451")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["next_attempt"])
        ids = [m["id"] for m in js]
        # show through the daemon
        sh = queue(spool, "show", ids[0])
        assert sh.returncode == 0 and b"451 " in sh.stdout and b"not now" in sh.stdout and b"Message-ID: <q" in sh.stdout
        # delete one: gone from the list, a second delete fails
        victim = queue(spool, "show", ids[1]).stdout
        vid = re.search(rb"Message-ID: (<q\d@src.test>)", victim).group(1)
        dl = queue(spool, "delete", ids[1])
        assert dl.returncode == 0 and dl.stdout.decode().strip() == f"{ids[1]} deleted", dl
        assert queue(spool, "delete", ids[1]).returncode == 1
        assert queue(spool, "delete", "0000000000000000").returncode == 1
        left = [ln.split()[0] for ln in queue(spool, "list").stdout.decode().splitlines()]
        assert sorted(left) == sorted([ids[0], ids[2]])
        # flush: delivered now, not in an hour; the deleted one never
        sink.handler.open_gate = True
        t0 = time.time()
        fl = queue(spool, "flush")
        assert fl.returncode == 0, fl
        assert sink.wait(2, timeout=10), "flush did not deliver the deferred mail"
        assert time.time() - t0 < 10
        time.sleep(1.5)
        got = [re.search(rb"Message-ID: (<[^>]*>)", m[2]).group(1) for m in sink.handler.messages]
        assert len(got) == 2 and vid not in got, got
        assert queue(spool, "list").stdout == b""
    finally:
        d.stop()
        sink.stop()
    # no daemon: flush says so and fails; the socket is gone
    r = queue(spool, "flush")
    assert r.returncode == 1 and b"no daemon" in r.stderr
    assert not os.path.exists(os.path.join(spool, "control"))


BLKIO = "/sys/fs/cgroup/blkio"


def whole_disk(dev):
    """major:minor of the disk that holds dev (throttle rules take disks)."""
    sysdir = os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if os.path.exists(os.path.join(sysdir, "partition")):
        sysdir = os.path.dirname(sysdir)
    with open(os.path.join(sysdir, "dev")) as f:
        return f.read().strip()


@contextlib.contextmanager
def slow_writes(proc, path, iops=4):
    """Slow proc's writes to the disk that holds path to iops a second,
    with a cgroup v1 blkio throttle, until the block ends (then proc goes
    back to the root cgroup). Skips the test where there is no such
    throttle."""
    if not os.path.exists(os.path.join(BLKIO, "blkio.throttle.write_iops_device")):
        pytest.skip("no cgroup v1 blkio throttling on this machine")
    cg = os.path.join(BLKIO, f"ringmta-test-{os.getpid()}")
    os.mkdir(cg)
    try:
        with open(os.path.join(cg, "blkio.throttle.write_iops_device"), "w") as f:
            f.write(f"{whole_disk(os.stat(path).st_dev)} {iops}")
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        yield
    finally:
        with open(os.path.join(BLKIO, "cgroup.procs"), "w") as f:
            if proc.poll() is None:
                f.write(str(proc.pid))
        os.rmdir(cg)


def test_delete_answers_once_its_record_is_durable(tmp_path):
    """ringmta-queue delete reports a deletion only after the journal
    record of it has been fdatasync'ed, so a crash after the answer cannot
    bring the message back. The daemon's writes to the spool's disk are
    slowed to a few a second (a blkio cgroup), which makes the record's
    fdatasync take a second or more: an answer given before it would come
    with the spool's sync count unchanged."""
    spool = str(tmp_path / "spool")
    mport = free_port()
    d = Daemon("--smarthost", "127.0.0.1:9", "--retry-schedule", "3600", "--metrics", f"127.0.0.1:{mport}",
               spool=spool)
    try:
        for i in range(2):
            d.send("a@src.test", [f"r{i}@dst.test"], f"Subject: d{i}\r\n\r\nbody {i}\r\n".encode())
        lines = wait_deferred(spool, 2)
        assert len(lines) == 2, lines
        victim = lines[0].split()[0]
        with slow_writes(d.proc, spool):
            before = metric(mport, "ringmta_spool_syncs_total")
            dl = queue(spool, "delete", victim)
            after = metric(mport, "ringmta_spool_syncs_total")
        assert dl.returncode == 0 and dl.stdout.decode().strip() == f"{victim} deleted", dl
        assert after > before, "the deletion was reported before its journal record was synced"
        left = [ln.split()[0] for ln in queue(spool, "list").stdout.decode().splitlines()]
        assert victim not in left and len(left) == 1
    finally:
        d.stop()
    # the deletion held across the restart
    d = Daemon("--smarthost", "127.0.0.1:9", "--retry-schedule", "3600", spool=spool)
    try:
        left = [ln.split()[0] for ln in queue(spool, "list").stdout.decode().splitlines()]
        assert victim not in left and len(left) == 1
    finally:
        d.stop()


def test_in_flight_gauge_shows_a_slow_disk(tmp_path):
    """ringmta_spool_requests_in_flight counts the spool's writes and
    fdatasyncs in the kernel: at rest 0, above 0 while a message's
    fdatasync crawls through a throttled disk, 0 again once it is done."""
    spool = str(tmp_path / "spool")
    mport = free_port()
    gauge = "ringmta_spool_requests_in_flight"
    d = Daemon("--smarthost", "127.0.0.1:9", "--retry-schedule", "3600", "--metrics", f"127.0.0.1:{mport}",
               spool=spool)
    try:
        d.send("a@src.test", ["r0@dst.test"], b"Subject: warm\r\n\r\nfirst\r\n")
        assert metric(mport, gauge) == 0
        seen = 0
        with slow_writes(d.proc, spool, iops=2):
            t = threading.Thread(target=d.send,
                                 args=("a@src.test", ["r1@dst.test"], b"Subject: slow\r\n\r\nsecond\r\n"))
            t.start()
            end = time.time() + 20
            while t.is_alive() and time.time() < end:
                seen = max(seen, metric(mport, gauge))
                time.sleep(0.05)
            t.join(30)
        assert seen >= 1, "no request in flight seen while the disk crawled"
        end = time.time() + 10
        while metric(mport, gauge) and time.time() < end:
            time.sleep(0.1)
        assert metric(mport, gauge) == 0
    finally:
        d.stop()


def control(spool, data, shut=True):
    """Raw bytes to the control socket; the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(os.path.join(spool, "control"))
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:  # closed with our junk unread
                return out
            if not b:
                return out
            out += b


def test_control_socket_bad_requests(tmp_path):
    spool = str(tmp_path / "spool")
    d = Daemon("--smarthost", "127.0.0.1:9", spool=spool)
    try:
        for bad in (b"\n", b"NOPE\n", b"SHOW\n", b"DELETE\n", b"\x00\xff\x01 junk\r\n",
                    b"DELETE " + b"A" * 200 + b"\n", b"SHOW ../../etc/passwd\n",
                    b"DELETE 0000000000000000\n", b"LIST", b"X" * 5000):
            ans = control(spool, bad)
            if ans:
                head, _, rest = ans.partition(b"\n")
                st, olen, elen = (int(x) for x in head.split())
                assert st in (1, 2) and olen + elen == len(rest), (bad, ans)
            else:
                assert not bad.endswith(b"\n") or len(bad) > 256, bad
        # still serving, in both formats
        ans = control(spool, b"list json\n")
        assert ans == b"0 3 0\n[]\n", ans
        assert control(spool, b"STATS\n").startswith(b"0 ")
        assert d.proc.poll() is None
    finally:
        d.stop()
