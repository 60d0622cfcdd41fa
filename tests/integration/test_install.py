"""The install a user makes: `pip install probe-agent` (the core, no extra) into a fresh venv
from this checkout, as a wheel, not the editable checkout the other tests use. It runs the core
types and says which extra a missing type needs; the client libraries of single types are not
pulled in."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import need_shared

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


def test_pipx_installs_the_wheel_for_a_user_without_privileges(tmp_path: Path) -> None:
    """The install docs/install.md gives a user of their own: pipx, from the wheel, with an
    extra; a user that is not root runs the result against a real Redis."""
    if shutil.which("pipx") is None:
        pytest.skip("pipx not installed (scripts/bootstrap.sh --test installs it)")
    port = need_shared("redis")
    folder = Path(tempfile.mkdtemp(prefix="probe-agent-pipx-"))
    try:
        folder.chmod(0o755)
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(ROOT)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert built.returncode == 0, built.stderr[-2000:]
        wheel = next(folder.glob("probe_agent-*.whl"))
        shutil.copy(ROOT / "constraints.txt", folder)
        home = folder / "home"
        home.mkdir()
        user = [] if os.geteuid() != 0 else [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "nobody", "--"]
        if user:
            shutil.chown(home, "nobody")
        env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}  # the machine's package index
        env |= {"HOME": str(home), "PATH": "/usr/bin:/bin"}
        user += ["/usr/bin/env", *(f"{k}={v}" for k, v in env.items())]  # runuser sets its own HOME
        installed = subprocess.run(
            [*user, "pipx", "install", f"--pip-args=-c {folder / 'constraints.txt'}", f"{wheel}[redis]"],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd=folder,
        )
        assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
        program = home / ".local" / "bin" / "probe-agent"
        checked = subprocess.run(
            [*user, str(program), "check", "--format", "nagios", "redis", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=folder,
        )
        assert checked.returncode == 0 and checked.stdout.startswith("PROBE-AGENT OK"), checked
    finally:
        shutil.rmtree(folder, ignore_errors=True)
