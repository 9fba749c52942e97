"""test_notify.py - systemd readiness (sd_notify) without systemd.

With Type=notify, systemd passes NOTIFY_SOCKET, the address of a Unix
datagram socket, and waits for "READY=1" before it counts the service as
started; "STOPPING=1" tells it a stop is under way. The test plays systemd:
it binds such a socket (a path, and an abstract name written "@name"),
starts ringmta with NOTIFY_SOCKET pointing at it, and checks that READY=1
arrives only once /readyz answers 200, and that STOPPING=1 arrives as soon
as SIGTERM starts the drain, long before the process exits. Run with
Debian's /usr/bin/python3 -m pytest; RINGMTA_BUILD names the build.
"""
import os
import signal
import socket
import time
import uuid

import pytest

from test_server import BIN, Daemon, http_get


def notify_socket(kind, tmp):
    """A datagram socket as systemd makes it, and its NOTIFY_SOCKET value."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if kind == "path":
        path = os.path.join(tmp, "notify")
        s.bind(path)
        return s, path
    name = "ringmta-test-" + uuid.uuid4().hex
    s.bind("\0" + name)
    return s, "@" + name


def receive(s, want, timeout):
    """Datagrams until one carries the line `want`; all lines seen."""
    seen = []
    end = time.time() + timeout
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            data = s.recv(4096).decode()
        except socket.timeout:
            break
        lines = data.split("\n")
        seen += lines
        if want in lines:
            return seen
    raise AssertionError(f"no {want} from the daemon; got {seen}")


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_then_stopping(kind, tmp_path):
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    s, addr = notify_socket(kind, str(tmp_path))
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = addr
    try:
        d = Daemon("--drain-grace", "2")
    finally:
        if old is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = old
    try:
        seen = receive(s, "READY=1", 10)
        assert "STOPPING=1" not in seen
        # READY=1 comes after start-up is done: /readyz is already 200 and
        # the SMTP listener answers.
        assert http_get(d.mport, "/readyz")[0] == 200
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as c:
            assert c.recv(4) == b"220 "
        t0 = time.time()
        d.proc.send_signal(signal.SIGTERM)
        receive(s, "STOPPING=1", 1.5)
        # Told at the start of the drain, not at the exit: the process is
        # still in its grace period and /readyz says 503.
        assert d.proc.poll() is None
        assert time.time() - t0 < 1.5
        assert http_get(d.mport, "/readyz")[0] == 503
        assert d.proc.wait(timeout=40) == 0
    finally:
        s.close()
        d.stop()


def test_no_notify_socket_is_fine(tmp_path):
    """Without NOTIFY_SOCKET (not under systemd) nothing is sent and the
    daemon starts and drains as usual; a NOTIFY_SOCKET nobody listens on
    does not stop it either."""
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    os.environ["NOTIFY_SOCKET"] = str(tmp_path / "nobody")
    try:
        d = Daemon("--drain-grace", "0")
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        d.wait_ready()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=40) == 0
    finally:
        d.stop()
