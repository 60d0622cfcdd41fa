"""deploy/systemd/probe-agent.service: a unit systemd accepts (`systemd-analyze verify`), hardened
(`systemd-analyze security` rates it OK), whose command line the agent itself accepts, with its
state directory where the agent keeps its history by default."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from probe_agent.cli import build_parser
from probe_agent.runtime.historyfile import DEFAULT_DIRECTORY

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "probe-agent.service"
INSTALLED = "/opt/probe-agent/bin/probe-agent"
# systemd-analyze security: 0 is locked down, 10 is root with everything; under 2 it says "OK"
MAX_EXPOSURE = 2.0


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart at this checkout's agent (verify wants the program to exist)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (scripts/bootstrap.sh --test installs it)")
    agent = Path(sys.executable).with_name("probe-agent")
    assert agent.exists(), agent
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(INSTALLED, str(agent)))
    return copy


def test_systemd_accepts_the_unit(unit: Path) -> None:
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_the_unit_is_hardened(unit: Path) -> None:
    rated = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", rated.stdout)
    assert match, rated.stdout + rated.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, rated.stdout


def test_the_agent_takes_the_units_command_line_and_keeps_its_history_in_the_state_directory() -> None:
    section = service()
    argv = shlex.split(section["ExecStart"])
    assert argv[0] == INSTALLED
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.config == "/etc/probe-agent/probes.yaml"
    assert section["ConfigurationDirectory"] == "probe-agent" and section["StateDirectory"] == "probe-agent"
    assert Path("/var/lib") / section["StateDirectory"] == DEFAULT_DIRECTORY  # the history is kept there
    assert section["DynamicUser"] == "yes" and section["NoNewPrivileges"] == "yes"
    assert section["ExecReload"] == "/bin/kill -HUP $MAINPID"  # a reload is the agent's SIGHUP
