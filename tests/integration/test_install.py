"""The install a user makes: `pip install probe-agent` (the core, no extra) into a fresh venv
from this checkout, as a wheel, not the editable checkout the other tests use. It runs the core
types and says which extra a missing type needs; the client libraries of single types are not
pulled in."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
NOT_IN_THE_CORE = ("asyncpg", "aiomysql", "redis", "nats-py", "neo4j", "aiormq", "grpcio", "kubernetes_asyncio")


def test_the_core_install_has_no_single_types_library(core_install: Path) -> None:
    listed = subprocess.run(
        [str(core_install / "pip"), "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = {line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.splitlines()}
    assert "probe-agent" in names
    assert not names & {n.lower().replace("_", "-") for n in NOT_IN_THE_CORE}, names


def test_the_core_install_checks_and_says_what_a_missing_type_needs(core_install: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        checked = subprocess.run(
            [str(core_install / "probe-agent"), "check", "--format", "nagios", "tcp", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert checked.returncode == 0 and checked.stdout.startswith("PROBE-AGENT OK"), checked
    missing = subprocess.run(
        [str(core_install / "probe-agent"), "check", "--format", "nagios", "postgres", "127.0.0.1:5432"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 3, missing
    assert "pip install 'probe-agent[postgres]'" in missing.stdout.splitlines()[0], missing


def test_a_user_without_privileges_runs_it(core_install: Path) -> None:
    """What Nagios's user does: not root, no home of its own it can write."""
    if os.geteuid() != 0:
        argv = [str(core_install / "probe-agent"), "check", "--format", "nagios", "tcp", "127.0.0.1:9"]
    else:
        argv = ["runuser", "-u", "nobody", "--", str(core_install / "probe-agent"), "check", "--format", "nagios"]
        argv += ["tcp", "127.0.0.1:9"]  # discard: nothing listens, so a clean CRITICAL
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    assert ran.returncode == 2 and ran.stdout.startswith("PROBE-AGENT CRITICAL"), ran
    assert "Traceback" not in ran.stderr and "Permission denied" not in ran.stdout + ran.stderr, ran
