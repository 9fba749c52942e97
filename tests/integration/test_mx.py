"""test_mx.py - delivery by MX lookup (RFC 5321 §5.1) against a real DNS
server: Debian's dnsmasq on loopback serves MX and A records pointing at
aiosmtpd sinks on other 127.0.0.x addresses (one --mx-port for all), and
ringmta resolves through --dns. Preference order, fallback to the next host
when the preferred one is down, equal preferences both used, the A record
when there is no MX, and a null MX or NXDOMAIN bouncing at once. Run with
Debian's /usr/bin/python3."""
import socket
import time

import pytest

pytest.importorskip("aiosmtpd.controller")
from test_delivery import BODY, Sink, daemons, free_port, sinks  # noqa: E402,F401
from test_dns import run_dnsmasq  # noqa: E402
from test_bounces import report_fields, parse, wait_log  # noqa: E402

RECORDS = [
    "--local=/test/",
    "--mx-host=pref.test,mx2.pref.test,20",
    "--mx-host=pref.test,mx1.pref.test,10",
    "--host-record=mx1.pref.test,127.0.0.2",
    "--host-record=mx2.pref.test,127.0.0.3",
    "--mx-host=down.test,mx1.down.test,10",
    "--mx-host=down.test,mx2.down.test,20",
    "--host-record=mx1.down.test,127.0.0.12",
    "--host-record=mx2.down.test,127.0.0.13",
    "--mx-host=equal.test,e1.equal.test,10",
    "--mx-host=equal.test,e2.equal.test,10",
    "--host-record=e1.equal.test,127.0.0.4",
    "--host-record=e2.equal.test,127.0.0.5",
    "--host-record=plain.test,127.0.0.6",
    "--dns-rr=nullmx.test,15,000000",
]


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    """A dnsmasq serving RECORDS; yields its ADDR:PORT."""
    yield from run_dnsmasq(tmp_path_factory.mktemp("dnsmasq"), RECORDS, qname=b"\x04pref\x04test\x00")


MX_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.12",
            "127.0.0.13")


def free_port_all(hosts=MX_HOSTS, tries=50):
    """A port free on every one of hosts: a port free on 127.0.0.1 may be in
    use on 127.0.0.2 (other tests bind client sockets there)."""
    for _ in range(tries):
        port, ok = free_port(), True
        for h in hosts:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((h, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise AssertionError("no port free on every MX address")


@pytest.fixture
def mxport():
    port = free_port_all()
    made = []

    def make(host):
        s = Sink(host=host, port=port)
        made.append(s)
        return s
    yield port, make
    for s in made:
        s.stop()


def relay(daemons, dns, port, *extra):
    return daemons("--dns", dns, "--mx-port", str(port), "--retry-schedule", "1", *extra)


def test_preferred_mx_gets_the_mail(dns, mxport, daemons):
    port, make = mxport
    one, two = make("127.0.0.2"), make("127.0.0.3")
    d = relay(daemons, dns, port)
    for i in range(3):
        d.send("a@src.test", [f"r{i}@pref.test"], BODY)
    assert one.wait(3), d.logtext()
    time.sleep(0.3)
    assert len(two.handler.messages) == 0


def test_preferred_down_falls_back_to_the_next(dns, mxport, daemons):
    port, make = mxport
    two = make("127.0.0.13")  # mx1.down.test (127.0.0.12) has no listener
    d = relay(daemons, dns, port)
    d.send("a@src.test", ["r@down.test"], BODY)
    assert two.wait(1), d.logtext()
    assert two.handler.messages[0][1] == ["r@down.test"]
    assert "outcome=deferred" not in d.logtext()


def test_equal_preferences_both_used(dns, mxport, daemons):
    port, make = mxport
    e1, e2 = make("127.0.0.4"), make("127.0.0.5")
    d = relay(daemons, dns, port, "--dest-max-messages-per-connection", "1")
    n = 16
    for i in range(n):
        d.send("a@src.test", [f"r{i}@equal.test"], BODY)
    end = time.time() + 20
    while time.time() < end and len(e1.handler.messages) + len(e2.handler.messages) < n:
        time.sleep(0.05)
    got = (len(e1.handler.messages), len(e2.handler.messages))
    assert sum(got) == n, d.logtext()
    assert got[0] > 0 and got[1] > 0, got


def test_no_mx_uses_the_a_record(dns, mxport, daemons):
    port, make = mxport
    s = make("127.0.0.6")
    d = relay(daemons, dns, port)
    d.send("a@src.test", ["r@plain.test"], BODY)
    assert s.wait(1), d.logtext()


def test_null_mx_and_nxdomain_bounce_at_once(dns, mxport, daemons, sinks):
    port, make = mxport
    src = sinks()
    d = relay(daemons, dns, port, "--route", f"src.test=127.0.0.1:{src.port}")
    d.send("a@src.test", ["r@nullmx.test"], BODY)
    assert src.wait(1), d.logtext()
    rcpts, _ = report_fields(parse(src.handler.messages[0][2]))
    assert rcpts[0]["action"] == "failed" and rcpts[0]["status"] == "5.1.10"
    assert "556" in rcpts[0]["diagnostic-code"]
    d.send("a@src.test", ["r@nowhere.test"], BODY)
    assert src.wait(2), d.logtext()
    rcpts, _ = report_fields(parse(src.handler.messages[1][2]))
    assert rcpts[0]["status"] == "5.1.2"
    assert "outcome=deferred" not in d.logtext()
    assert wait_log(d, "outcome=bounced")
