"""`probe-agent check` and `validate` as an on-call engineer runs them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.netfaults import free_port
from tests.helpers.processes import demo_shop


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    with demo_shop() as url:
        yield url


@pytest.fixture
def config(tmp_path: Path, shop: str) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(f"""
probes:
  - {{name: live, type: http, url: "{shop}/health/liveness", tags: [shop]}}
  - {{name: ready, type: http, url: "{shop}/health/readiness", tags: [shop], expect_json: {{status: ok}}}}
  - {{name: slowish, type: http, url: "{shop}/health/liveness", tags: [slow], thresholds: {{duration: {{warning: "> 0s"}}}}}}
  - {{name: db-port, type: tcp, host: 127.0.0.1, port: {free_port()}, tags: [db]}}
""")
    return path


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe_agent", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_exit_code_is_the_worst_status(config: Path) -> None:
    assert check("-c", str(config), "--tag", "shop").returncode == 0
    assert check("-c", str(config), "--tag", "slow").returncode == 1
    assert check("-c", str(config)).returncode == 2


def test_exit_code_is_the_worst_status_wherever_the_worst_probe_is(tmp_path: Path, shop: str) -> None:
    # the critical probe first, a warning between, an ok probe last: every format exits 2
    path = tmp_path / "probes.yaml"
    path.write_text(f"""
probes:
  - {{name: a-db-port, type: tcp, host: 127.0.0.1, port: {free_port()}}}
  - {{name: b-slowish, type: http, url: "{shop}/health/liveness", thresholds: {{duration: {{warning: "> 0s"}}}}}}
  - {{name: c-live, type: http, url: "{shop}/health/liveness"}}
""")
    for fmt in ("table", "json", "nagios", "junit", "prometheus"):
        assert check("-c", str(path), "--format", fmt).returncode == 2, fmt
    assert check("-c", str(path), "--probe", "b-slowish", "--probe", "c-live").returncode == 1


def test_table_shows_what_on_call_needs(config: Path) -> None:
    out = check("-c", str(config))
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["PROBE", "TYPE", "STATUS", "LATENCY", "DETAIL"]
    # worst first, so the problem is at the top, with its target on a line of its own
    assert lines[1].split()[:3] == ["db-port", "tcp", "CRITICAL"]
    assert lines[1].endswith("connect: connection refused")
    assert lines[2].strip().startswith("target: 127.0.0.1:")
    assert lines[3].split()[:3] == ["slowish", "http", "WARNING"]
    # human units, and what the probe measured
    assert re.search(r"duration [\d.]+ ms > 0 s \(warning\) \(status_code 200, body_bytes \d+ B\)", lines[3]), lines[3]
    ok_rows = [line for line in lines if " OK " in line]
    assert len(ok_rows) == 2 and all("status_code 200" in row for row in ok_rows)
    assert lines[-1] == "CRITICAL: 2 OK, 1 WARNING, 1 CRITICAL"


def test_table_gives_detail_the_room_on_a_narrow_terminal(tmp_path: Path) -> None:
    long = "x" * 20
    path = tmp_path / "probes.yaml"
    path.write_text(f"probes:\n  - {{name: a-rather-long-probe-name, type: tcp, host: {long}.invalid, port: 1}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "probe_agent", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines  # wrapped at words, never folded mid-word
    assert not any(line.rstrip().endswith("-") for line in lines)
    detail = " ".join(
        line.strip() for line in lines[1:] if not line.strip().startswith(("target:", "CRITICAL:")) and line.strip()
    )
    assert f"cannot resolve host {long}.invalid" in detail


def test_probe_selection(config: Path) -> None:
    out = check("-c", str(config), "--probe", "live", "--probe", "ready", "--format", "json")
    document = json.loads(out.stdout)
    assert out.returncode == 0 and document["status"] == "ok" and document["exit_code"] == 0
    assert sorted(p["probe"] for p in document["probes"]) == ["live", "ready"]
    live = next(p for p in document["probes"] if p["probe"] == "live")
    assert (
        live["values"]["status_code"] == 200 and live["success"] is True and live["target"].endswith("/health/liveness")
    )


def test_unknown_probe_or_bad_config_is_unknown(config: Path, tmp_path: Path) -> None:
    out = check("-c", str(config), "--probe", "nope")
    assert out.returncode == 3 and "--probe nope: no probe with that name" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("probes: [{name: a, type: http}]")
    out = check("-c", str(bad))
    assert out.returncode == 3 and "probe 'a': url: Field required" in out.stderr
    out = check("-c", str(tmp_path / "missing.yaml"))
    assert out.returncode == 3 and "cannot read config" in out.stderr


def test_validate(config: Path, tmp_path: Path) -> None:
    run = [sys.executable, "-m", "probe_agent", "validate", "-c"]
    ok = subprocess.run([*run, str(config)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("ok, 4 probes")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "probes:\n  - {name: a, type: http, url: 'http://x/', bogus: 1}\n  - {name: a, type: tcp, host: h, port: 0}\n"
    )
    out = subprocess.run([*run, str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"{bad}: 3 problems:",
        f"  - {bad}:2:45: probe 'a': bogus: unknown field",
        f"  - {bad}:3:6: probe 'a': name: duplicate name (also probes[0])",
        f"  - {bad}:3:35: probe 'a': port: Input should be greater than or equal to 1",
    ]


def test_config_from_environment_variable(config: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "probe_agent", "validate"],
        capture_output=True,
        text=True,
        env={"PROBE_AGENT_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr


def test_demo_command_serves_the_shop_and_probes_it() -> None:
    import signal
    import time
    import urllib.request

    agent_port, shop_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probe_agent",
            "demo",
            "--listen",
            f"127.0.0.1:{agent_port}",
            "--shop-listen",
            f"127.0.0.1:{shop_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, health = time.monotonic() + 20, {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{agent_port}/health", timeout=2) as resp:
                    health = json.load(resp)
                if health["probes"] and all(p["status"] == "ok" for p in health["probes"]):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert health.get("status") == "ok", health
        assert {p["type"] for p in health["probes"]} >= {"http", "tcp"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{agent_port}/metrics" in out


def test_run_refuses_a_taken_address(tmp_path: Path) -> None:
    import socket

    config = tmp_path / "probes.yaml"
    config.write_text("probes: []\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "probe_agent",
                "run",
                "-c",
                str(config),
                "--allow-empty",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr


NAGIOS_PERF = re.compile(r"^'[^'=]+'=-?[\d.e+-]+(s|B|)?;[\d.:]*;[\d.:]*;\d*;$")


def test_nagios_plugin_output(config: Path) -> None:
    run = check("-c", str(config), "--format", "nagios")
    assert run.returncode == 2, run.stderr
    first, *long_output = run.stdout.splitlines()
    status, _, perf = first.partition(" | ")
    # the status line Nagios shows: the worst state, how many, and what failed first
    assert (
        status == "PROBE-AGENT CRITICAL - 1 of 4 critical: db-port connect: connection refused (and 1 more not ok)"
    ), status
    items = perf.split(" ")
    assert all(NAGIOS_PERF.match(item) for item in items), [i for i in items if not NAGIOS_PERF.match(i)]
    assert "'slowish/duration'=" in perf and ";0:;" not in perf  # '> 0s' is a warn range of 0
    assert any(i.startswith("'slowish/duration'=") and i.endswith("s;0;;0;") for i in items), perf
    assert any(i.startswith("'live/status_code'=200;;;;") for i in items), perf
    # the long output: a line per probe, the worst first
    assert [line.split()[:2] for line in long_output] == [
        ["CRITICAL", "db-port"],
        ["WARNING", "slowish"],
        ["OK", "live"],
        ["OK", "ready"],
    ]


def test_junit_for_ci(config: Path) -> None:
    from xml.etree import ElementTree

    run = check("-c", str(config), "--format", "junit")
    assert run.returncode == 2
    suite = ElementTree.fromstring(run.stdout).find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "0")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["db-port"].find("failure")
    assert (
        failure is not None
        and failure.get("message") == "connect: connection refused"
        and failure.get("type") == "connect"
    )
    assert cases["live"].find("failure") is None and cases["slowish"].findtext("system-out", "").startswith(
        "WARNING: duration"
    )


def test_prometheus_textfile_passes_promtool(config: Path, tmp_path: Path) -> None:
    run = check("-c", str(config), "--format", "prometheus")
    assert run.returncode == 2
    assert 'probe_success{probe="db-port",type="tcp"} 0.0' in run.stdout
    assert 'probe_failures_total{probe="db-port",reason="connect",type="tcp"} 1.0' in run.stdout
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=run.stdout, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_check_resolves_variables_of_the_selected_probes_only(tmp_path: Path, shop: str) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(f"""
probes:
  - {{name: web, type: http, url: "{shop}/health/liveness", tags: [shop]}}
  - {{name: prod-db, type: postgres, host: 127.0.0.1, password: "${{PROD_PG_PASSWORD}}", tags: [db]}}
slos:
  - {{name: db, probes: [prod-db], availability: 99.9}}
""")
    by_name = check("-c", str(path), "--probe", "web")
    by_tag = check("-c", str(path), "--tag", "shop")
    everything = check("-c", str(path))
    typo = check("-c", str(path), "--probe", "webb")
    assert (by_name.returncode, by_tag.returncode) == (0, 0), by_name.stderr + by_tag.stderr
    assert everything.returncode == 3 and "environment variable PROD_PG_PASSWORD is not set" in everything.stderr
    assert typo.returncode == 3 and "--probe webb: no probe with that name (did you mean 'web'?)" in typo.stderr


def test_config_from_standard_input(shop: str) -> None:
    def run(*args: str, text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "probe_agent", *args],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
        )

    good = f"probes:\n  - {{name: live, type: http, url: '{shop}/health/liveness'}}\n"
    assert run("validate", "-c", "-", text=good).stdout == "standard input: ok, 1 probes\n"
    assert run("check", "-c", "-", "--format", "json", text=good).returncode == 0
    bad = run("validate", "-c", "-", text="probes:\n  - {name: x, type: htp}\n")
    assert bad.returncode == 1 and bad.stderr.startswith("standard input: 1 problem:")
    daemon = run("run", "-c", "-", text=good)
    assert daemon.returncode == 1 and "the daemon reloads its file" in daemon.stderr


def test_text_logs_have_timestamps_and_no_empty_fields() -> None:
    import logging

    from probe_agent.core.logs import TextFormatter

    record = logging.LogRecord("probe_agent", logging.WARNING, "x", 1, "probe %s failing", ("web",), None)
    record.probe, record.reason, record.previous = "web", "timeout", None
    line = TextFormatter().format(record)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warning: probe web failing probe=web reason=timeout", line
    ), line


def test_adhoc_checks_without_a_file(shop: str) -> None:
    from tests.integration.conftest import need_shared

    redis_port = need_shared("redis")

    def adhoc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "probe_agent", "check", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", **(env or {})},
        )

    ok = adhoc("http", f"{shop}/health/liveness", "-w", "1s", "-c", "2s", "--expect-status", "2xx")
    slow = adhoc("http", f"{shop}/health/liveness", "-w", "0s")  # Nagios style: -w and -c are duration limits
    redis = adhoc("redis", f"127.0.0.1:{redis_port}", "--set", "measure=[clients]", "--format", "nagios")
    refused = adhoc("tcp", f"127.0.0.1:{free_port()}", "--format", "json")
    assert ok.returncode == 0 and "status_code 200" in ok.stdout, ok.stdout + ok.stderr
    assert slow.returncode == 1 and "(warning)" in slow.stdout
    assert redis.returncode == 0 and redis.stdout.startswith(f"PROBE-AGENT OK - 127.0.0.1:{redis_port}: ok in ")
    assert f"'127.0.0.1:{redis_port}/connected_clients'=" in redis.stdout
    assert refused.returncode == 2 and json.loads(refused.stdout)["probes"][0]["reason"] == "connect"
    # a secret from the environment is a secret: masked in every output
    # (Redis answers an unknown command by quoting it: the token would be in the message)
    secret = adhoc(
        "tcp",
        f"127.0.0.1:{redis_port}",
        "--set",
        "send=${ADHOC_TOKEN}",
        "--set",
        "expect=NOPE",
        "--set",
        "max_read_bytes=40",
        "-t",
        "2s",
        "--format",
        "json",
        env={"ADHOC_TOKEN": "Adh0c-s3cret-tok\r\n"},
    )
    message = json.loads(secret.stdout)["probes"][0]["message"]
    assert secret.returncode == 2 and "unknown command" in message and "***" in message, message
    assert "Adh0c-s3cret-tok" not in secret.stdout + secret.stderr
    typo = adhoc("htp", "http://x")
    assert typo.returncode == 3 and "unknown probe type 'htp' (did you mean 'http'?)" in typo.stderr
    flow = adhoc("synthetic", "x")
    assert flow.returncode == 3 and "a synthetic probe has no one-word target" in flow.stderr


def test_validate_points_at_file_line_and_column(tmp_path: Path) -> None:
    from tests.unit.test_config import ONE_PASS

    path = tmp_path / "probes.yaml"
    path.write_text(ONE_PASS)
    out = subprocess.run(
        [sys.executable, "-m", "probe_agent", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    lines = out.stderr.splitlines()
    assert out.returncode == 1 and lines[0] == f"{path}: 5 problems:"
    assert f"  - {path}:12:5: probe 'web': methd: unknown field (did you mean 'method'?)" in lines
    assert f"  - {path}:6:5: probe 'flow': timeout: 10s must be shorter than interval (5s)" in lines


NAGIOS_UNKNOWN = re.compile(r"^PROBE-AGENT UNKNOWN - \S.*\n$")


def test_check_is_a_nagios_plugin_for_its_own_errors_too(config: Path, tmp_path: Path) -> None:
    """monitoring-plugins' guidelines: a usage or config error is UNKNOWN (3) with one line on
    stdout that names the problem (Nagios showed CRITICAL '(No output on stdout)' for a typo)."""
    redis_port = "6379"
    bad = tmp_path / "bad.yaml"
    bad.write_text("probes: [{name: a, type: http}]")
    for args, named in (
        (("--bogus",), "--bogus"),
        (("http", "http://127.0.0.1:1/", "--bogus"), "--bogus"),
        (("http",), "target"),
        (("-c", str(tmp_path / "missing.yaml")), "cannot read config"),
        (("-c", str(bad)), "url: Field required"),
        (("-c", str(config), "--probe", "nope"), "no probe with that name"),
        (("http", "http://127.0.0.1:1/", "-t", "soon"), "invalid duration"),
    ):
        out = check(*args)
        assert out.returncode == 3, (args, out.stdout, out.stderr)
        assert NAGIOS_UNKNOWN.match(out.stdout) and named in out.stdout, (args, out.stdout)
        assert "Traceback" not in out.stderr
    # options before TYPE TARGET, and plain seconds wherever a duration goes
    first = check("--format", "nagios", "-w", "250ms", "-t", "5", "tcp", f"127.0.0.1:{redis_port}")
    assert first.returncode == 0 and first.stdout.startswith("PROBE-AGENT OK - "), first.stdout + first.stderr
    # a probe named like a type is still a name: --probe takes it, and the file is read
    like_a_type = tmp_path / "named.yaml"
    like_a_type.write_text(f"probes: [{{name: http, type: tcp, host: 127.0.0.1, port: {redis_port}}}]")
    assert check("-c", str(like_a_type), "--probe", "http").returncode == 0


def test_a_closed_pipe_is_a_quiet_exit(config: Path) -> None:
    """`check --format nagios | head -1` died with a BrokenPipeError traceback and exit 1."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: every write fails
    try:
        run = subprocess.run(
            [sys.executable, "-m", "probe_agent", "check", "-c", str(config), "--format", "nagios"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run.stderr
    assert run.returncode == 2  # still the check's state: db-port is CRITICAL


def test_a_plugins_timeout_caps_a_files_probes(tmp_path: Path, blackhole: Any) -> None:
    """-t with a probes file, as every monitoring plugin takes it (Icinga's CheckCommand passes
    it): no probe of the file runs longer, whatever its own timeout."""
    probes = tmp_path / "probes.yaml"
    probes.write_text(f"""
probes:
  - {{name: hung, type: http, url: "http://127.0.0.1:{blackhole.port}/", interval: 1m, timeout: 20s}}
  - {{name: hung-tcp, type: tcp, host: 127.0.0.1, port: {blackhole.port}, expect: x, interval: 1m, timeout: 20s}}
""")
    started = time.monotonic()
    done = check("-c", str(probes), "--format", "nagios", "-t", "500ms")
    assert time.monotonic() - started < 5, done
    assert done.returncode == 2 and done.stdout.startswith("PROBE-AGENT CRITICAL - 2 of 2 critical"), done
    lines = done.stdout.splitlines()[1:]  # a line per probe after the status line
    assert sum("no answer within 0.5s" in line for line in lines) == 2, done.stdout
    # more than a probe's own timeout changes nothing: -t is a cap, not a new timeout
    probes.write_text(probes.read_text().replace("timeout: 20s", "timeout: 300ms"))
    done = check("-c", str(probes), "--format", "nagios", "--timeout", "5")
    assert sum("no answer within 0.3s" in line for line in done.stdout.splitlines()[1:]) == 2, done.stdout
