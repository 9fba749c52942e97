"""benchlib.py - process handling shared by the comparison scripts in bench/.

Free loopback ports, waiting for a listener, CPU seconds and resident
memory of a process or of a whole process tree read from /proc, the sink
servers (ringmta-sink, Postfix's smtp-sink) and the load generators
(ringmta-blast, Postfix's smtp-source) with their message sizes matched.
Linux only; standard library only, so Debian's /usr/bin/python3 runs it.
"""
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import time

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"


def raise_fd_limit():
    """raise_fd_limit - soft RLIMIT_NOFILE up to the hard limit (inherited by children)"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    """free_port - a TCP port on 127.0.0.1 that nothing listens on right now"""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, what="server", timeout=10.0):
    """wait_port - return once 127.0.0.1:port accepts; fail if proc exits first"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _stat_fields(pid):
    """_stat_fields - /proc/PID/stat after the command name (field 3 is index 0)"""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    """cpu_seconds - user+system CPU seconds of one process, all its threads"""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def _children_map():
    """_children_map - parent pid -> list of child pids, from one walk of /proc"""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(name)[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree_pids(root):
    """tree_pids - root and every live descendant of it"""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def tree_cpu_seconds(root):
    """tree_cpu_seconds - CPU of a process tree: live processes' own time plus
    the time of the children each has already reaped (cutime+cstime), so
    short-lived workers that came and went are counted once"""
    total = 0
    for pid in tree_pids(root):
        try:
            f = _stat_fields(pid)
        except OSError:
            continue  # exited between the walk and the read: its parent has it now
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / TICK


def tree_memory(root, pss=False):
    """tree_memory - bytes resident over a process tree: the sum of RSS, or
    with pss=True the sum of proportional set sizes (shared pages split)"""
    total = 0
    for pid in tree_pids(root):
        try:
            if pss:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
                    total += int(m.group(1)) * 1024 if m else 0
            else:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


class CpuCgroup:
    """CpuCgroup - a fresh cgroup that counts the CPU of every process ever
    started in it, exited ones included, to the nanosecond: cgroup v1's
    cpuacct or v2's cpu.stat. available is False where neither can be made
    (then callers fall back to tree_cpu_seconds)."""

    ROOTS = (("/sys/fs/cgroup/cpuacct", "cpuacct.usage", 1e-9),
             ("/sys/fs/cgroup/unified", "cpu.stat", 1e-6), ("/sys/fs/cgroup", "cpu.stat", 1e-6))

    def __init__(self, name):
        self.path = None
        for root, stat, scale in self.ROOTS:
            path = os.path.join(root, f"{name}.{os.getpid()}.{time.monotonic_ns()}")
            try:
                os.mkdir(path)
            except OSError:
                continue
            if os.path.exists(os.path.join(path, stat)):
                self.path, self._stat, self._scale = path, stat, scale
                return
            os.rmdir(path)

    @property
    def available(self):
        return self.path is not None

    def join(self):
        """join - preexec_fn for subprocess: the child enters the cgroup before exec"""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def seconds(self):
        """seconds - CPU seconds of everything that has run in the cgroup"""
        with open(os.path.join(self.path, self._stat)) as f:
            text = f.read()
        if self._stat == "cpu.stat":
            text = re.search(r"^usage_usec (\d+)", text, re.M).group(1)
        return int(text) * self._scale

    def remove(self, timeout=5.0):
        """remove - rmdir once the last process has left (best effort)"""
        deadline = time.monotonic() + timeout
        while self.path and time.monotonic() < deadline:
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.05)


def stop(proc, sig=signal.SIGTERM, timeout=15.0):
    """stop - signal a child we started, wait for it, SIGKILL it if it lingers"""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RingmtaSink:
    """RingmtaSink - ringmta-sink on a free loopback port, counting on demand"""

    def __init__(self, build, threads=1, extra=()):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [os.path.join(build, "ringmta-sink"), "--listen", f"127.0.0.1:{self.port}",
             "--threads", str(threads), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "ringmta-sink")

    def count(self, timeout=5.0):
        """count - messages received so far (SIGUSR1, then its one stdout line)"""
        self.proc.send_signal(signal.SIGUSR1)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise SystemExit("ringmta-sink did not answer SIGUSR1")
        line = self.proc.stdout.readline().decode()
        m = re.search(r"messages=(\d+)", line)
        if not m:
            raise SystemExit(f"ringmta-sink printed {line!r}")
        return int(m.group(1))

    def close(self):
        stop(self.proc)
        self.proc.stdout.close()


class SmtpSink:
    """SmtpSink - Postfix's smtp-sink on a free loopback port (keeps nothing)"""

    def __init__(self, backlog=1024):
        self.port = free_port()
        self.proc = subprocess.Popen([SMTP_SINK, "-u", "nobody", f"127.0.0.1:{self.port}", str(backlog)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "smtp-sink")

    def close(self):
        stop(self.proc)


def blast_cmd(build, port, size, n, conns, threads=1):
    """blast_cmd - ringmta-blast argv: n messages of size bytes over conns sessions"""
    return [os.path.join(build, "ringmta-blast"), "--target", f"127.0.0.1:{port}", "--connections",
            str(conns), "--messages", str(n), "--size", str(size), "--threads", str(threads), "--json"]


def source_cmd(port, size, n, conns):
    """source_cmd - smtp-source argv sending whole messages of about size bytes"""
    # smtp-source writes about 102 header bytes and adds a CR per 79-byte line
    payload = (size - 102) * 79 // 80
    return [SMTP_SOURCE, "-d", "-s", str(conns), "-m", str(n), "-l", str(payload),
            "-f", "bench@src.test", "-t", "rcpt@sink.test", f"127.0.0.1:{port}"]


class Client:
    """Client - a load generator run: started now, its result read by wait()"""

    def __init__(self, argv):
        self.argv = argv
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait(self, n):
        """wait - block until the generator exits; return _result()"""
        _, status, ru = os.wait4(self.proc.pid, 0)
        return self._result(n, status, ru)

    def poll(self, n):
        """poll - None while the generator runs, else _result()"""
        pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
        return None if pid == 0 else self._result(n, status, ru)

    def _result(self, n, status, ru):
        """_result - dict with wall and seconds (the generator's own sending
        time when it reports one), cpu, accepted, rejected, errors, exit"""
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - self.t0
        out = self.proc.stdout.read().decode()
        err = self.proc.stderr.read().decode()
        self.proc.stdout.close()
        self.proc.stderr.close()
        r = {"wall": wall, "seconds": wall, "cpu": ru.ru_utime + ru.ru_stime, "exit": self.proc.returncode,
             "accepted": n, "rejected": 0, "errors": 0, "stderr": err.strip()}
        if self.argv[0].endswith("ringmta-blast"):
            try:
                j = json.loads(out)
            except ValueError:
                raise SystemExit(f"ringmta-blast printed {out!r} {err!r}")
            r.update(accepted=j["accepted"], rejected=j["rejected"], errors=j["errors"])
            if j["seconds"] > 0:
                r["seconds"] = j["seconds"]
        elif self.proc.returncode != 0:
            r.update(accepted=0, errors=n)  # smtp-source reports no counts
        return r


def run_client(argv, n):
    """run_client - run a load generator to the end and return Client.wait()"""
    return Client(argv).wait(n)
