"""The status page's history over restarts: kept in one local file, written atomically, read
warily. A restart keeps the incident on-call is looking at; a kill -9 at any moment leaves a
file that loads; an unreadable file means starting empty and saying so."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from probe_agent.runtime import historyfile
from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port


def config(tmp_path: Path, idle: int = 0) -> Path:
    """Two probes, and `idle` more that do not run for an hour (they make the start-up take a while)."""
    path = tmp_path / "probes.yaml"
    fillers = "".join(
        f"  - {{name: idle-{i}, type: tcp, host: 127.0.0.1, port: 6379, interval: 1h, timeout: 1s}}\n"
        for i in range(idle)
    )
    path.write_text(f"""
probes:
  - {{name: broken-db, type: tcp, host: 127.0.0.1, port: {free_port()}, interval: 300ms, timeout: 200ms}}
  - {{name: cache, type: tcp, host: 127.0.0.1, port: 6379, interval: 300ms, timeout: 200ms}}
{fillers}""")
    return path


def page(agent: AgentProcess) -> str:
    return agent.get("/status?partial=1")[1]


def test_a_restart_keeps_the_incidents_and_uptime(tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    args = ["--history-file", str(history), "--history-save-interval", "200ms", "--no-watch-config"]
    agent = AgentProcess(config(tmp_path), args=args).start()
    try:
        agent.wait_for(lambda: "broken-db: pending → <b>failing</b>" in page(agent), what="the incident")
    finally:
        agent.stop()
    assert history.exists()
    again = AgentProcess(config(tmp_path), args=args).start()
    try:
        # /health/live answers before the probes are loaded (the page then has none: the test
        # below holds that state to its own promise); read the page once they are
        again.wait_for(lambda: any(e.get("msg") == "agent started" for e in again.log_entries()), what="start")
        shown = page(again)  # before a run of the new process could have made the incident again
        assert "broken-db: pending → <b>failing</b>" in shown, shown[-1500:]
        assert "no counted runs" not in shown
        assert any(e.get("msg") == "history restored" and e.get("probes") == 2 for e in again.log_entries())
    finally:
        again.stop()


def test_the_page_never_shows_a_probe_without_its_restored_history(tmp_path: Path) -> None:
    """From the first answer of a restarted agent on: the page answers while the probes are still
    being built, and a probe listed there already carries the incident of the last process."""
    history = tmp_path / "history.json"
    args = ["--history-file", str(history), "--history-save-interval", "200ms", "--no-watch-config"]
    probes = config(tmp_path, idle=3000)
    agent = AgentProcess(probes, args=args).start()
    try:
        agent.wait_for(lambda: "broken-db: pending → <b>failing</b>" in page(agent), what="the incident", timeout=30)
    finally:
        agent.stop()
    again = AgentProcess(probes, args=args).start()
    try:
        listed = 0
        while not any(e.get("msg") == "agent started" for e in again.log_entries()):
            shown = page(again)
            if 'data-probe="broken-db"' in shown:
                listed += 1
                assert "broken-db: pending → <b>failing</b>" in shown, f"page {listed} lacks the incident"
        assert "broken-db: pending → <b>failing</b>" in page(again)
    finally:
        again.stop()


def test_a_kill_at_any_moment_leaves_a_file_that_loads(tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    args = ["--history-file", str(history), "--history-save-interval", "50ms", "--no-watch-config"]
    chance = random.Random(7)
    for _ in range(6):
        agent = AgentProcess(config(tmp_path), args=args).start()
        time.sleep(chance.uniform(0.3, 0.8))
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGKILL)  # mid-write, now and then
        agent.stop()
        loaded = historyfile.read(history)  # it logs and returns {} for a file it cannot load
        assert set(loaded) == {"broken-db", "cache"}, loaded.keys()


def test_an_unreadable_history_file_means_starting_empty_and_saying_so(tmp_path: Path) -> None:
    for name, make in (
        ("garbage", lambda p: p.write_bytes(b"\x00\xffnot json at all")),
        ("fifo", lambda p: os.mkfifo(p)),
        ("wrong shape", lambda p: p.write_text('{"format": 1, "probes": {"cache": {"slots": "AAAA"}}}')),
    ):
        history = tmp_path / f"history-{name.replace(' ', '-')}.json"
        make(history)
        agent = AgentProcess(config(tmp_path), args=["--history-file", str(history), "--no-watch-config"]).start()
        try:
            assert agent.get("/status")[0] == 200
            messages = [e.get("msg", "") for e in agent.log_entries()]
            assert any(m.startswith("history file") for m in messages), (name, messages)
        finally:
            agent.stop()
