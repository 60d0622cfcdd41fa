"""/health/live reflects the scheduler: 200 while its loops run, 503 once one has died."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from probe_agent.config.loader import AgentConfig, parse_config
from probe_agent.core.results import Observation
from probe_agent.probes.base import Probe, ProbeConfig
from probe_agent.runtime.agent import Agent
from probe_agent.web.server import make_app


def tcp_probes(count: int, interval: str, timeout: str) -> AgentConfig:
    """`count` tcp probes p0, p1, ... of a closed port."""
    return parse_config(
        "probes:\n"
        + "".join(
            f"- {{name: p{i}, type: tcp, host: 127.0.0.1, port: 9, interval: {interval}, timeout: {timeout}}}\n"
            for i in range(count)
        ),
        env={},
    )


async def test_live_turns_503_when_the_scheduler_timer_dies() -> None:
    config = parse_config(
        "probes: [{name: a, type: tcp, host: 127.0.0.1, port: 9, interval: 1s, timeout: 500ms}]", env={}
    )
    agent = Agent(config, grace=1)
    await agent.start()
    client = TestClient(TestServer(make_app(agent), host="127.0.0.1"))
    await client.start_server()
    try:
        assert (await client.get("/health/live")).status == 200
        # the one timer that starts every run, gone (a bug, a cancelled handle): probes silently stopped
        agent._scheduler._timer.cancel()  # type: ignore[union-attr]
        await asyncio.sleep(0)
        response = await client.get("/health/live")
        assert response.status == 503 and (await response.json()) == {"status": "stalled"}
    finally:
        await client.close()
        await agent.stop()


async def test_results_that_stop_coming_turn_stale_and_fail_a_critical_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    import probe_agent.runtime.agent as agent_module
    import probe_agent.runtime.state as state_module

    monkeypatch.setattr(state_module, "STALE_MARGIN", 0.2)
    monkeypatch.setattr(agent_module, "WATCH_EVERY", 0.1)
    config = parse_config(
        "probes: [{name: a, type: tcp, host: 127.0.0.1, port: 9, interval: 300ms, timeout: 100ms, critical: true}]",
        env={},
    )
    agent = Agent(config, grace=1)
    await agent.start()
    client = TestClient(TestServer(make_app(agent), host="127.0.0.1"))
    await client.start_server()
    try:
        while agent.store.probes["a"].last is None:
            await asyncio.sleep(0.05)
        # the probe drops out of the schedule (a bug): its last result must not keep vouching for it
        agent._scheduler._probes["a"].removed = True  # type: ignore[union-attr]
        await asyncio.sleep(1.0)  # stale after max(2 x 0.3, 0.3 + 0.1 + 0.2) = 0.6 s
        response = await client.get("/health")
        body = await response.json()
        assert response.status == 503 and body["status"] == "failing"
        assert body["probes"][0]["health"] == "stale"
        assert agent.metrics.registry.get_sample_value("probe_agent_stale_probes") == 1
        ready = await (await client.get("/health/ready")).json()
        assert ready["stale"] == ["a"]
    finally:
        await client.close()
        await agent.stop()


class Stubborn(Probe[ProbeConfig]):
    """A probe that ignores cancellation: its loop never moves on (a bug a library could have)."""

    def __init__(self) -> None:
        self.released = False

    async def run(self, obs: Observation) -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if self.released:
                    raise


async def test_live_turns_503_when_the_scheduler_stops_making_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    import probe_agent.runtime.agent as agent_module
    import probe_agent.runtime.scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "STUCK_MARGIN", 0.3)
    monkeypatch.setattr(agent_module, "WATCH_EVERY", 0.1)
    config = parse_config(
        "probes: [{name: a, type: tcp, host: 127.0.0.1, port: 9, interval: 200ms, timeout: 100ms}]", env={}
    )
    agent = Agent(config, grace=0.2)
    await agent.start()
    stubborn = Stubborn()
    agent._scheduler._probes["a"].handle.probe = stubborn  # type: ignore[union-attr]
    try:
        assert agent.alive()
        await asyncio.sleep(1.5)  # stuck after interval + timeout + 0.3 s
        assert not agent.alive()
        task = agent._scheduler._probes["a"].task  # type: ignore[union-attr]
        assert task is not None and not task.done()  # the run is still there, stuck
    finally:
        stubborn.released = True
        await agent.stop()


async def test_a_reload_blocked_on_a_file_fails_in_time_and_the_agent_says_it_is_not_live(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory
) -> None:
    # No file here blocks a read for good any more (a FIFO or device is refused before opening),
    # so the hung mount is played by a load that waits on an event.
    import threading
    from pathlib import Path

    import probe_agent.runtime.agent as agent_module

    path = Path(str(tmp_path)) / "probes.yaml"
    path.write_text("probes: [{name: a, type: tcp, host: 127.0.0.1, port: 9, interval: 1s, timeout: 500ms}]")
    released = threading.Event()
    real_load = agent_module.load_config  # type: ignore[attr-defined]

    def hung_load(*args: object, **kwargs: object) -> object:
        released.wait(30)
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    config = real_load(path)
    agent = Agent(config, grace=1, config_path=path)
    await agent.start()
    monkeypatch.setattr(agent_module, "RELOAD_DEADLINE", 0.3)
    monkeypatch.setattr(agent_module, "load_config", hung_load)
    try:
        problems = await asyncio.wait_for(agent.reload(), 5)
        assert "did not finish within 0.3s" in problems[0]
        assert agent.metrics.reload_success._value.get() == 0
        assert not agent.alive()
        again = await asyncio.wait_for(agent.reload(), 5)
        assert "still blocked" in again[0]
        released.set()
        for _ in range(50):
            if agent.alive():
                break
            await asyncio.sleep(0.05)
        assert agent.alive()
    finally:
        released.set()
        await agent.stop()


class OutOfFds(Probe[ProbeConfig]):
    """Every run meets the agent's own fd limit, as under 2,000 idle connections with 1,024 fds."""

    def __init__(self) -> None:
        self.starving = True

    async def run(self, obs: Observation) -> None:
        import errno
        import os

        if self.starving:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


async def test_live_turns_503_while_the_agent_cannot_open_sockets_for_its_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import probe_agent.runtime.agent as agent_module

    monkeypatch.setattr(agent_module, "WATCH_EVERY", 0.1)
    monkeypatch.setattr(agent_module, "STARVATION_WINDOW", 5)
    config = tcp_probes(10, "100ms", "50ms")
    agent = Agent(config, grace=0.2)
    await agent.start()
    probes = [OutOfFds() for _ in range(10)]
    for name, probe in zip([f"p{i}" for i in range(10)], probes, strict=True):
        agent._scheduler._probes[name].handle.probe = probe  # type: ignore[union-attr]
    try:
        await asyncio.sleep(0.8)
        assert not agent.alive()
        assert agent.store.probes["p0"].last.reason == "internal"  # type: ignore[union-attr]
        for probe in probes:
            probe.starving = False
        await asyncio.sleep(1.0)
        assert agent.alive()
    finally:
        await agent.stop()


async def test_pending_is_right_from_the_first_moment_the_probes_exist() -> None:
    config = tcp_probes(100, "10m", "1s")
    agent = Agent(config, grace=0.2)
    await agent.start()
    try:
        pending = agent.metrics.registry.get_sample_value("probe_agent_pending_probes")
        not_run_yet = sum(1 for state in agent.store.probes.values() if state.last is None)
        # the gauge was set as the probes appeared; a few may have run since
        assert pending is not None and pending >= not_run_yet > 50, (pending, not_run_yet)
    finally:
        await agent.stop()


async def test_a_reload_that_changes_every_probe_adds_no_run_no_unknown_and_one_log_line(
    tmp_path: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    from collections import Counter
    from pathlib import Path

    from probe_agent.config.loader import load_config

    def probes(warning: str) -> str:
        return "probes:\n" + "".join(
            f"- {{name: p{i}, type: tcp, host: 127.0.0.1, port: 6379, interval: 2s, timeout: 1s,"
            f" thresholds: {{duration: {{warning: {warning}}}}}}}\n"
            for i in range(50)
        )

    path = Path(str(tmp_path)) / "probes.yaml"
    path.write_text(probes("5s"))
    agent = Agent(load_config(path), path, grace=0.2)
    runs: Counter[str] = Counter()
    statuses: list[str] = []
    record = agent._record

    def counting(result: object) -> None:
        runs[result.probe] += 1  # type: ignore[attr-defined]
        statuses.append(result.status.label)  # type: ignore[attr-defined]
        record(result)  # type: ignore[arg-type]

    agent._record = counting  # type: ignore[method-assign]
    await agent.start()
    try:
        await asyncio.sleep(2.5)  # every probe has run
        assert len(runs) == 50
        path.write_text(probes("4s"))  # every probe changed, its target not
        caplog.clear()
        runs.clear()
        statuses.clear()
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="probe_agent"):
            assert await agent.reload() == []
            pending = agent.metrics.registry.get_sample_value("probe_agent_pending_probes")
            await asyncio.sleep(4.0)
        window = time.monotonic() - started  # the reload's own time too: on a loaded machine, 4.2 s
        assert pending == 0, "changed probes of the same targets read as pending after the reload"
        # 4 s of 50 probes every 2 s are 100 runs, a few more where a tick lands on the window's
        # edge; an early run of each rebuilt probe made it ~150
        assert sum(runs.values()) <= math.ceil(50 * window / 2) + 5, (
            f"{sum(runs.values())} runs in 4 s of 50 probes every 2 s: {runs.most_common(3)}"
        )
        assert set(statuses) == {"ok"}, Counter(statuses)
        messages = [r.getMessage() for r in caplog.records]
        assert messages.count("config reloaded") == 1 and "probe status changed" not in messages, messages[:5]
        reloaded = next(r for r in caplog.records if r.getMessage() == "config reloaded")
        assert (reloaded.changed, reloaded.added, reloaded.removed) == (50, 0, 0)  # type: ignore[attr-defined]
        assert reloaded.changed_probes.endswith("... and 30 more")  # type: ignore[attr-defined]
    finally:
        await agent.stop()


async def test_health_ready_stays_small_at_fleet_scale() -> None:
    # /health/ready listed every pending name: 50,000 of them at start. It lists the first
    # READY_NAMES of each kind and counts them all.
    from probe_agent.web.server import READY_NAMES

    names = ", ".join(
        f"{{name: p{i}, type: tcp, host: 127.0.0.1, port: 9, interval: 1h}}" for i in range(READY_NAMES + 50)
    )
    agent = Agent(parse_config(f"probes: [{names}]", env={}), grace=0.1)
    agent.store.probes = agent.store.plan_config(agent.config)  # planned, nothing run yet
    agent.started = True
    client = TestClient(TestServer(make_app(agent), host="127.0.0.1"))
    await client.start_server()
    try:
        body = await (await client.get("/health/ready")).json()
    finally:
        await client.close()
    assert len(body["pending"]) == READY_NAMES and body["counts"]["pending"] == READY_NAMES + 50, body["counts"]
    assert body["counts"]["failing"] == 0 and body["failing"] == []
