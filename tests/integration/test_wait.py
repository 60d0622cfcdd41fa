"""`probe-agent wait`: a gate that returns once the selected probes pass, or fails at its timeout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.netfaults import free_port
from tests.helpers.processes import demo_shop, http_json


def wait(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "probe_agent", "wait", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "160"},
    )


def test_returns_once_the_probe_passes_its_success_threshold(tmp_path: Path) -> None:
    with demo_shop(faults="readiness=error") as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(
            f"probes:\n  - {{name: ready, type: http, url: '{shop}/health/readiness', success_threshold: 2, timeout: 1s}}\n"
            f"  - {{name: other, type: tcp, host: 127.0.0.1, port: {free_port()}}}\n"  # not selected: never run
        )
        started = time.monotonic()
        gate = wait("-c", str(config), "--probe", "ready", "--timeout", "30s", "--pause", "200ms")
        time.sleep(2)
        assert gate.poll() is None, gate.communicate()  # still waiting: the shop answers 500
        assert http_json("DELETE", f"{shop}/admin/faults") == 200
        out, err = gate.communicate(timeout=30)
    elapsed = time.monotonic() - started
    assert gate.returncode == 0, err
    lines = err.splitlines()
    assert "ready: critical: assertion: status 500, expected 200-399" in lines[0]
    assert any(line.endswith("ready: passing 1/2") for line in lines) and lines[-2].endswith("ready: ready")
    assert lines[-1] == "ready: 1 probe passed" and 2 < elapsed < 10
    assert "other" not in err and out == ""


def test_gives_up_at_the_timeout_with_the_check_table_and_code(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(f"probes:\n  - {{name: db, type: tcp, host: 127.0.0.1, port: {free_port()}}}\n")
    started = time.monotonic()
    gate = wait("-c", str(config), "--timeout", "1500ms", "--pause", "200ms")
    out, err = gate.communicate(timeout=30)
    assert gate.returncode == 2 and time.monotonic() - started < 5
    assert "not ready after 1.5s:" in err and "db" in out and "connection refused" in out


def test_on_a_terminal_the_progress_is_redrawn_in_place(tmp_path: Path) -> None:
    """Under a pseudo-terminal: a line per probe, redrawn with cursor movements, ending all
    ready; through a pipe (the tests above) plain lines."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    with demo_shop(faults="readiness=error") as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(
            f"probes:\n  - {{name: ready, type: http, url: '{shop}/health/readiness', timeout: 1s}}\n"
            f"  - {{name: live, type: http, url: '{shop}/health/liveness', timeout: 1s}}\n"
        )
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        gate = subprocess.Popen(
            [sys.executable, "-m", "probe_agent", "wait", "-c", str(config), "--timeout", "30s", "--pause", "200ms"],
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env={"PATH": "/usr/bin:/bin", "TERM": "xterm"},
        )
        os.close(follower)
        time.sleep(1.5)
        assert http_json("DELETE", f"{shop}/admin/faults") == 200
        gate.wait(timeout=30)
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            screen += chunk
        os.close(leader)
    text = screen.decode()
    assert gate.returncode == 0, text
    assert "\x1b[3F" in text  # back up over 2 probe lines and the summary, and redraw
    assert text.count("\x1b[2K") >= 6
    last_frame = text.rsplit("\x1b[3F", 1)[-1]
    assert "✔ ready  ready" in last_frame and "✔ live   ready" in last_frame and "2 of 2 ready" in last_frame
    assert "critical: assertion: status 500" in text  # what it was waiting on, shown meanwhile
