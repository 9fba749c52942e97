"""test_deploy_files.py - the deployment files in tools/ are valid and agree.

README.md's "Deployment" section points at tools/ringmta.service,
tools/ringmta-example.conf and tools/haproxy-example.cfg. Here each is
checked by the program that reads it (systemd-analyze verify, ringmta
--check-config, haproxy -c), and the numbers that must fit together do:
systemd waits longer than a whole drain, the unit allows the descriptors
--max-connections needs, and the drain grace outlasts HAProxy's time to
take a draining instance out of rotation. The rolling restart itself runs
in test_rolling_restart.py. Run with Debian's /usr/bin/python3 -m pytest;
RINGMTA_BUILD names the build.
"""
import configparser
import os
import re
import shutil
import subprocess

import pytest

from test_server import BIN, ROOT

TOOLS = os.path.join(ROOT, "tools")
UNIT = os.path.join(TOOLS, "ringmta.service")
CONF = os.path.join(TOOLS, "ringmta-example.conf")
HACFG = os.path.join(TOOLS, "haproxy-example.cfg")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
DRAIN_MAX_SESSIONS_S = 30  # CONTRACT.md: open sessions get at most 30 s more


def unit():
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read(UNIT)
    return p["Service"]


def effective_settings():
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    out = subprocess.run([BIN, "--check-config", "-c", CONF], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    settings = {}
    for line in out.stdout.splitlines():
        if " = " in line and not line.startswith("#"):
            k, v = line.split(" = ", 1)
            settings.setdefault(k, []).append(v)
    return settings


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s)?", text)
    assert m, text
    return int(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def test_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} not built")
    # verify wants ExecStart's program to exist: point it at the build.
    with open(UNIT) as fh:
        text = fh.read()
    assert "/usr/local/sbin/ringmta " in text
    copy = tmp_path / "ringmta.service"
    copy.write_text(text.replace("/usr/local/sbin/ringmta ", BIN + " "))
    out = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=30)
    # verify exits 0 on unknown keys and bad values; it only warns.
    problems = [ln for ln in out.stderr.splitlines() if "ringmta.service" in ln]
    assert out.returncode == 0 and not problems, out.stderr


def test_unit_fits_the_daemon():
    s = unit()
    assert s["Type"] == "notify"
    assert s["KillSignal"] == "SIGTERM"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "--config /etc/ringmta/ringmta.conf" in s["ExecStart"]
    settings = effective_settings()
    grace = int(settings["drain-grace"][0])
    assert int(s["TimeoutStopSec"]) > grace + DRAIN_MAX_SESSIONS_S
    # The daemon wants max-connections + 64 per shard + 64 descriptors.
    assert int(s["LimitNOFILE"]) >= int(settings["max-connections"][0]) + 64 * 64 + 64
    assert settings["spool"][0].startswith("/var/lib/" + s["StateDirectory"] + "/")


def test_example_conf_is_behind_a_balancer():
    settings = effective_settings()
    assert settings["proxy-protocol"] == ["yes"]
    assert settings["metrics"] != ["none"]
    assert all(n != "127.0.0.0/8" for n in settings["proxy-trusted"])


def test_haproxy_config_checks_and_times_fit():
    if not os.access(HAPROXY, os.X_OK):
        pytest.skip("haproxy is not installed (tools/install-deps installs it)")
    out = subprocess.run([HAPROXY, "-c", "-f", HACFG], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    with open(HACFG) as fh:
        text = fh.read()
    assert re.search(r"(?m)^\s*mode tcp$", text)
    assert re.search(r"(?m)^\s*option httpchk GET /readyz$", text)
    default = re.search(r"(?m)^\s*default-server (.*)$", text).group(1).split()
    assert "send-proxy-v2" in default and "check" in default
    opt = {default[i]: default[i + 1] for i in range(len(default) - 1)}
    inter, fast, fall = seconds(opt["inter"]), seconds(opt["fastinter"]), int(opt["fall"])
    check_timeout = seconds(re.search(r"(?m)^\s*timeout check (\S+)$", text).group(1))
    out_of_rotation = inter + (fall - 1) * fast + check_timeout
    grace = int(effective_settings()["drain-grace"][0])
    assert grace > out_of_rotation + 1, (grace, out_of_rotation)
    # The balancer must not cut a session ringmta still allows.
    settings = effective_settings()
    idle = max(int(settings["command-timeout"][0]), int(settings["data-timeout"][0]))
    for side in ("client", "server"):
        assert seconds(re.search(rf"(?m)^\s*timeout {side} (\S+)$", text).group(1)) > idle
    servers = re.findall(r"(?m)^\s*server \S+ \S+:(\d+) .*check port (\d+)", text)
    assert len(servers) >= 2
    for smtp_port, check_port in servers:
        assert f":{smtp_port}" in settings["listen"][0]
        assert settings["metrics"][0].endswith(f":{check_port}")
