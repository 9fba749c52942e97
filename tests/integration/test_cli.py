"""Command-line front doors of the four programs (CONTRACT.md "Programs"
and "ringmta flags"): --help, --version, unknown flags and bad values,
and ringmta's settings from defaults, a config file and flags, checked
through --check-config."""
import os
import socket
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("RINGMTA_BUILD", os.path.join(ROOT, "build"))
PROGRAMS = ["ringmta", "ringmta-blast", "ringmta-sink", "ringmta-queue"]


def run(prog, *args, cwd=None):
    path = os.path.join(BUILD, prog)
    assert os.access(path, os.X_OK), f"{path} is not built"
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=30, cwd=cwd)


def settings(*args, cwd=None):
    """--check-config output as a list of (key, value) in order."""
    r = run("ringmta", "--check-config", *args, cwd=cwd)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, sep, value = line.partition(" = ")
        assert sep, f"not a key = value line: {line!r}"
        out.append((key, value))
    return out


def values(pairs, key):
    return [v for k, v in pairs if k == key]


def one_error_line(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize("prog", PROGRAMS)
def test_help(prog):
    r = run(prog, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"Usage: {prog}")
    assert "--version" in r.stdout


@pytest.mark.parametrize("prog", PROGRAMS)
def test_version(prog):
    r = run(prog, "--version")
    assert r.returncode == 0
    assert r.stdout == f"{prog} 0.1.0\n"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_unknown_flag(prog):
    one_error_line(run(prog, "--no-such-flag"), "--no-such-flag")
    one_error_line(run(prog, "--no-such-flag=1"), "--no-such-flag")


def test_ringmta_help_lists_every_flag_with_default():
    out = run("ringmta", "--help").stdout
    for flag, default in [("--listen", "127.0.0.1:2525"), ("--max-message-size", "52428800"),
                          ("--retry-schedule", "60,300,900,3600"), ("--relay-net", "127.0.0.0/8, ::1/128"),
                          ("--outbound-tls", "opportunistic"), ("--min-free-space", "1073741824"),
                          ("--drain-grace", "5"), ("--log-format", "text"), ("--proxy-protocol", "off")]:
        line = next(l for l in out.splitlines() if f"{flag} " in l + " ")
        assert f"(default: {default})" in line, line


CONTRACT_DEFAULTS = {
    "listen": ["127.0.0.1:2525"],
    "listen-tls": ["none"],
    "spool": ["./spool"],
    "smarthost": ["none"],
    "mx-port": ["25"],
    "relay-net": ["127.0.0.0/8", "::1/128"],
    "relay-domain": ["none"],
    "outbound-tls": ["opportunistic"],
    "proxy-protocol": ["no"],
    "proxy-trusted": ["127.0.0.0/8", "::1/128"],
    "max-message-size": ["52428800"],
    "max-recipients": ["1000"],
    "max-connections": ["20000"],
    "max-connections-per-ip": ["200"],
    "max-errors": ["20"],
    "command-timeout": ["300"],
    "data-timeout": ["300"],
    "dest-max-connections": ["20"],
    "dest-max-messages-per-connection": ["100"],
    "retry-schedule": ["60,300,900,3600"],
    "max-queue-lifetime": ["432000"],
    "min-free-space": ["1073741824"],
    "user": ["none"],
    "drain-grace": ["5"],
    "metrics": ["none"],
    "log-format": ["text"],
}


def test_check_config_defaults():
    s = settings()
    for key, want in CONTRACT_DEFAULTS.items():
        assert values(s, key) == want, key
    assert values(s, "hostname") == [socket.gethostname()]
    assert values(s, "threads") == [str(os.cpu_count())]


def test_check_config_output_is_a_config_file(tmp_path):
    first = run("ringmta", "--check-config", "--listen", "[::1]:2525", "--relay-domain", "Example.ORG").stdout
    conf = tmp_path / "round.conf"
    conf.write_text(first)
    again = run("ringmta", "-c", str(conf), "--check-config").stdout
    strip = lambda t: [l for l in t.splitlines() if not l.startswith("#")]
    assert strip(again) == strip(first)
    assert "relay-domain = example.org" in first


def test_config_file_comments_repeats_and_overrides(tmp_path):
    conf = tmp_path / "ringmta.conf"
    conf.write_text(
        "# ringmta test configuration\n"
        "\n"
        "listen = 127.0.0.1:3525\n"
        "listen = [::1]:3525   # IPv6 too\n"
        "  threads = 3\n"
        "relay-net = 10.0.0.0/8\n"
        "relay-net = 2001:db8::/32\r\n"
        "relay-domain = a.test\n"
        "max-errors = 7\n"
        "proxy-protocol = yes\n"
        "smarthost = relay.example.net:587\n"
        "route = b.test=[2001:db8::25]:25\n"
        "retry-schedule = 10,20\n"
    )
    s = settings("-c", str(conf))
    assert values(s, "listen") == ["127.0.0.1:3525", "[::1]:3525"]  # file replaces the default
    assert values(s, "threads") == ["3"]
    assert values(s, "relay-net") == ["10.0.0.0/8", "2001:db8::/32"]
    assert values(s, "proxy-trusted") == ["127.0.0.0/8", "::1/128"]  # untouched default
    assert values(s, "proxy-protocol") == ["yes"]
    assert values(s, "smarthost") == ["relay.example.net:587"]
    assert values(s, "route") == ["b.test=[2001:db8::25]:25"]
    assert values(s, "retry-schedule") == ["10,20"]

    # flags override the file; a list on the command line replaces the file's
    s = settings(f"--config={conf}", "--threads", "1", "--max-errors=9", "--relay-net", "192.168.0.0/16",
                 "--relay-net", "::1/128", "--listen", "127.0.0.1:4525")
    assert values(s, "threads") == ["1"]
    assert values(s, "max-errors") == ["9"]
    assert values(s, "relay-net") == ["192.168.0.0/16", "::1/128"]
    assert values(s, "listen") == ["127.0.0.1:4525"]
    assert values(s, "relay-domain") == ["a.test"]  # not given on the command line: the file's

    # "none" empties a list
    s = settings("-c", str(conf), "--relay-domain", "none", "--relay-net", "none")
    assert values(s, "relay-domain") == ["none"]
    assert values(s, "relay-net") == ["none"]


def test_list_flag_replaces_default():
    s = settings("--proxy-trusted", "10.1.2.0/24")
    assert values(s, "proxy-trusted") == ["10.1.2.0/24"]
    assert values(s, "relay-net") == ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize("args,needle", [
    (["--listen", "127.0.0.1"], "--listen"),
    (["--listen", "127.0.0.1:0"], "--listen"),
    (["--listen", "127.0.0.1:65536"], "--listen"),
    (["--listen", "::1:25"], "--listen"),
    (["--listen", "[::g]:25"], "--listen"),
    (["--listen", "300.0.0.1:25"], "--listen"),
    (["--relay-net", "10.0.0.1/8"], "--relay-net"),
    (["--relay-net", "10.0.0.0/33"], "--relay-net"),
    (["--proxy-trusted", "fe80::/129"], "--proxy-trusted"),
    (["--threads", "0"], "--threads"),
    (["--threads", "x"], "--threads"),
    (["--threads", "-1"], "--threads"),
    (["--max-message-size", "10M"], "--max-message-size"),
    (["--max-recipients", "99999999999999999999999"], "--max-recipients"),
    (["--outbound-tls", "sometimes"], "--outbound-tls"),
    (["--log-format", "xml"], "--log-format"),
    (["--retry-schedule", "60,,300"], "--retry-schedule"),
    (["--route", "example.org"], "--route"),
    (["--route", "bad_domain!=h:25"], "--route"),
    (["--smarthost", "host"], "--smarthost"),
    (["--hostname", "bad host"], "--hostname"),
    (["--mx-port", "0"], "--mx-port"),
    (["--proxy-protocol=maybe"], "--proxy-protocol"),
    (["--tls-cert", "c.pem"], "tls-key"),
    (["--listen-tls", "127.0.0.1:465"], "--listen-tls"),
    (["--listen"], "--listen"),
    (["stray"], "stray"),
])
def test_bad_values(args, needle):
    one_error_line(run("ringmta", "--check-config", *args), needle)


def test_bad_config_file(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("listen = 127.0.0.1:2525\nno-such-key = 1\n")
    one_error_line(run("ringmta", "-c", str(conf), "--check-config"), "bad.conf:2", "no-such-key")
    conf.write_text("# ok\nthreads = lots\n")
    one_error_line(run("ringmta", "-c", str(conf), "--check-config"), "bad.conf:2", "threads", "lots")
    conf.write_text("threads 4\n")
    one_error_line(run("ringmta", "-c", str(conf), "--check-config"), "bad.conf:1")
    one_error_line(run("ringmta", "-c", str(tmp_path / "missing.conf"), "--check-config"), "missing.conf")


@pytest.mark.parametrize("prog,args,needle", [
    ("ringmta-blast", [], "--target"),
    ("ringmta-blast", ["--target", "127.0.0.1"], "--target"),
    ("ringmta-blast", ["--target", "127.0.0.1:25", "--connections", "0"], "--connections"),
    ("ringmta-blast", ["--target", "127.0.0.1:25", "--size", "1k"], "--size"),
    ("ringmta-blast", ["--target", "127.0.0.1:25", "--from", "no-at-sign"], "--from"),
    ("ringmta-sink", ["--listen", "nowhere"], "--listen"),
    ("ringmta-sink", ["--fail-rcpt", "*@bad.test=250"], "--fail-rcpt"),
    ("ringmta-sink", ["--advertise-chunking", "maybe"], "--advertise-chunking"),
    ("ringmta-sink", ["--tls-key", "k.pem"], "tls-cert"),
    ("ringmta-queue", ["list"], "--spool"),
    ("ringmta-queue", ["--spool", "/nonexistent/spool", "list"], "--spool"),
    ("ringmta-queue", ["--spool", "."], "COMMAND"),
    ("ringmta-queue", ["--spool", ".", "frobnicate"], "frobnicate"),
    ("ringmta-queue", ["--spool", ".", "show"], "show"),
    ("ringmta-queue", ["--spool", ".", "delete", "x;y"], "x;y"),
    ("ringmta-queue", ["--spool", ".", "list", "extra"], "extra"),
])
def test_tool_bad_values(prog, args, needle):
    one_error_line(run(prog, *args), needle)


# ringmta-blast and ringmta-sink have bodies now: test_blast.py, test_sink.py
@pytest.mark.parametrize("prog,args", [
    ("ringmta-queue", ["--spool", ".", "--json", "show", "ABC123"]),
])
def test_tool_good_flags_reach_the_body(prog, args, tmp_path):
    # valid flags pass parsing and reach the body: an empty spool has no
    # such message (exit 1; the rest is in test_queue_tool.py)
    r = run(prog, *args, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "no such message" in r.stderr
