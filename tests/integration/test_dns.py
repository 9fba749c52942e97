"""MX resolution for delivery (net/dns.h) against a real DNS server: Debian's
dnsmasq on 127.0.0.1 with a free port serves MX, A/AAAA, CNAME, null MX and
NXDOMAIN answers, and the dns-lookup test helper runs an io_uring ring with
one resolver and prints what each lookup found (RFC 5321 §5.1, RFC 7505)."""
import os
import shutil
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("RINGMTA_BUILD", os.path.join(ROOT, "build"))
LOOKUP = os.path.join(BUILD, "tests", "dns-lookup")
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"

RECORDS = [
    "--local=/test/",  # everything under .test is answered here: NXDOMAIN if unknown
    # multi.test: one preferred MX, two equal backups
    "--mx-host=multi.test,mx2.multi.test,20",
    "--mx-host=multi.test,mx1.multi.test,10",
    "--mx-host=multi.test,mx3.multi.test,20",
    "--host-record=mx1.multi.test,192.0.2.1,2001:db8::1",
    "--host-record=mx2.multi.test,192.0.2.2",
    "--host-record=mx3.multi.test,2001:db8::3",
    # plain.test: no MX, addresses of its own (implicit MX)
    "--host-record=plain.test,192.0.2.9,2001:db8::9",
    # nullmx.test: MX 0 "." as raw RDATA (preference 0, the root name)
    "--dns-rr=nullmx.test,15,000000",
    # ghost.test: the only MX has no address; half.test: the first one
    "--mx-host=ghost.test,nowhere.ghost.test,10",
    "--mx-host=half.test,nowhere.ghost.test,10",
    "--mx-host=half.test,mx2.multi.test,20",
    # cname.test: the MX target is an alias of mx1
    "--mx-host=cname.test,alias.cname.test,5",
    "--cname=alias.cname.test,mx1.multi.test",
]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port, qname=b"\x05multi\x04test\x00", want=b"\x03mx1"):
    """True when a DNS server on port answers an MX query for qname (wire
    form) with want in it (this dnsmasq, not another process)."""
    q = bytes.fromhex("abcd01000001000000000000") + qname + b"\x00\x0f\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", port))
            a = s.recv(2048)
        except OSError:
            return False
    return a[:2] == b"\xab\xcd" and want in a


def run_dnsmasq(d, records, **probe):
    """A dnsmasq in directory d serving records on 127.0.0.1 and a free
    port; yields its ADDR:PORT (a generator for a fixture)."""
    assert os.access(DNSMASQ, os.X_OK), "dnsmasq (dnsmasq-base) is not installed"
    for _ in range(5):
        port = free_udp_port()
        p = subprocess.Popen([DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                              "--conf-file=/dev/null", "--listen-address=127.0.0.1",
                              "--bind-interfaces", f"--port={port}", "--user=root",
                              f"--pid-file={d}/pid", f"--log-facility={d}/log", *records],
                             stderr=subprocess.PIPE)
        deadline = time.time() + 5
        up = False
        while time.time() < deadline and p.poll() is None:
            if answers(port, **probe):
                up = True
                break
            time.sleep(0.05)
        if up:
            break
        p.kill()
        p.wait()
    else:
        pytest.fail("dnsmasq did not start")
    yield f"127.0.0.1:{port}"
    p.terminate()
    p.wait(timeout=10)


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    """A dnsmasq serving RECORDS; yields its ADDR:PORT."""
    yield from run_dnsmasq(tmp_path_factory.mktemp("dnsmasq"), RECORDS)


def lookup(server, *args, timeout=60):
    assert os.access(LOOKUP, os.X_OK), f"{LOOKUP} is not built"
    r = subprocess.run([LOOKUP, "--dns", server, *args], capture_output=True, text=True,
                       timeout=timeout)
    return r


def blocks(out):
    """Lookup blocks: a list of (first line fields, [host lines' fields])."""
    res = []
    for line in out.splitlines():
        if line.startswith("  host "):
            res[-1][1].append(line.split()[1:])
        elif not line.startswith("completed "):
            res.append((line.split(), []))
    return res


def one(server, domain):
    r = lookup(server, domain)
    assert r.returncode == 0, r.stderr
    (b,) = blocks(r.stdout)
    assert b[0][0] == domain
    return b


def test_mx_preference_order_and_addresses(dns):
    r = lookup(dns, "--repeat", "40", "multi.test")
    assert r.returncode == 0, r.stderr
    seen = set()
    for head, hosts in blocks(r.stdout):
        assert head[:3] == ["multi.test", "ok", "implicit=0"]
        names = [h[1] for h in hosts]
        assert names[0] == "mx1.multi.test"
        assert sorted(names[1:]) == ["mx2.multi.test", "mx3.multi.test"]
        assert [h[0] for h in hosts] == ["10", "20", "20"]
        seen.add(tuple(names[1:]))
        by = {h[1]: h[2:] for h in hosts}
        assert by["mx1.multi.test"] == ["192.0.2.1", "2001:db8::1"]  # IPv4 first
        assert by["mx2.multi.test"] == ["192.0.2.2"]
        assert by["mx3.multi.test"] == ["2001:db8::3"]
    # Equal preferences come in random order (RFC 5321 §5.1).
    assert len(seen) == 2, seen


def test_no_mx_falls_back_to_the_domain_itself(dns):
    head, hosts = one(dns, "plain.test")
    assert head[1:3] == ["ok", "implicit=1"]
    assert hosts == [["0", "plain.test", "192.0.2.9", "2001:db8::9"]]


def test_ttl_is_reported(dns, tmp_path):
    # dnsmasq answers its own records with TTL 0 unless --local-ttl says
    head, _ = one(dns, "multi.test")
    assert head[4] == "ttl=0", head
    gen = run_dnsmasq(tmp_path, ["--local=/test/", "--local-ttl=77", "--mx-host=t.test,mx.t.test,10",
                                 "--host-record=mx.t.test,192.0.2.77"], qname=b"\x01t\x04test\x00", want=b"\x02mx")
    server = next(gen)
    try:
        head, hosts = one(server, "t.test")
        assert head[1] == "ok" and head[4] == "ttl=77", head
        assert hosts == [["10", "mx.t.test", "192.0.2.77"]]
    finally:
        next(gen, None)  # stops it


def test_null_mx_is_a_permanent_failure(dns):
    head, hosts = one(dns, "nullmx.test")
    assert head[1:4] == ["perm", "556", "5.1.10"] and hosts == []


def test_nxdomain_is_a_permanent_failure(dns):
    head, _ = one(dns, "nosuchdomain.test")
    assert head[1:4] == ["perm", "550", "5.1.2"]


def test_refused_is_a_temporary_failure(dns):
    # Outside --local=/test/ with no upstream: dnsmasq answers REFUSED.
    head, _ = one(dns, "elsewhere.example")
    assert head[1:4] == ["temp", "451", "4.4.3"]


def test_mx_hosts_without_addresses(dns):
    head, hosts = one(dns, "ghost.test")
    assert head[1:4] == ["perm", "550", "5.4.4"] and hosts == []
    head, hosts = one(dns, "half.test")
    assert head[1] == "ok"
    assert hosts == [["20", "mx2.multi.test", "192.0.2.2"]]


def test_cname_target_is_followed(dns):
    head, hosts = one(dns, "cname.test")
    assert head[1] == "ok"
    assert hosts == [["5", "alias.cname.test", "192.0.2.1", "2001:db8::1"]]


def test_silent_server_is_a_temporary_failure_within_the_timeout():
    # A UDP socket that never answers: c-ares tries twice, 300 ms then 600 ms.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        server = "127.0.0.1:%d" % s.getsockname()[1]
        t = time.monotonic()
        r = lookup(server, "--timeout-ms", "300", "--tries", "2", "--repeat", "5",
                   "silent.test")
        took = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    bs = blocks(r.stdout)
    assert len(bs) == 5
    for head, _ in bs:
        assert head[1:4] == ["temp", "451", "4.4.3"]
        ms = int(head[4].split("=")[1])
        assert 800 <= ms <= 3000, head
    assert took < 5


def test_many_lookups_in_parallel_all_complete(dns):
    t = time.monotonic()
    r = lookup(dns, "--repeat", "100", "multi.test", "plain.test")
    took = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    bs = blocks(r.stdout)
    assert len(bs) == 200
    assert all(head[1] == "ok" for head, _ in bs), [h for h, _ in bs if h[1] != "ok"][:3]
    assert r.stdout.splitlines()[-1] == "completed 200 cancelled 0"
    # Paced, not lost: no lookup waited for a retry after a dropped answer.
    assert took < 2.5, took


def test_resolver_hosted_under_another_modules_op(dns):
    r = lookup(dns, "--hosted", "--repeat", "20", "multi.test", "plain.test")
    assert r.returncode == 0, r.stderr
    assert "foreign" not in r.stderr
    bs = blocks(r.stdout)
    assert len(bs) == 40 and all(head[1] == "ok" for head, _ in bs)


def test_cancelled_lookups_never_call_back(dns):
    r = lookup(dns, "--repeat", "50", "--cancel-odd", "multi.test", "nosuchdomain.test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "completed 50 cancelled 50"
    assert len(blocks(r.stdout)) == 50


def test_bad_server_list_is_refused():
    r = lookup("not-an-address", "x.test")
    assert r.returncode == 2
    assert "bad server list" in r.stderr
