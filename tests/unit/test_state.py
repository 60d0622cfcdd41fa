from __future__ import annotations

import time

import pytest

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import Reason
from probe_agent.core.health import Health
from probe_agent.core.results import Result, Status
from probe_agent.runtime.state import StateStore


def health_of(store: StateStore, name: str) -> Health:
    return store.probes[name].health


def result(name: str, status: Status) -> Result:
    reason = None if status in (Status.OK, Status.WARNING) else Reason.CONNECT
    return Result(name, "tcp", status, reason, "", 0.01, 0.0, {}, {}, {})


def store(yaml: str) -> StateStore:
    s = StateStore()
    config = parse_config(yaml, env={})
    s.sync(config.probes, {p.name: "t" for p in config.probes})
    return s


def test_failure_and_success_thresholds_follow_kubernetes() -> None:
    s = store(
        "probes: [{name: a, type: tcp, host: h, port: 1, failure_threshold: 3, success_threshold: 2, critical: true}]"
    )
    s.record(result("a", Status.OK))
    assert s.probes["a"].health is Health.OK
    for expected in (Health.OK, Health.OK, Health.FAILING):
        s.record(result("a", Status.CRITICAL))
        assert s.probes["a"].health is expected
    assert s.health()[:2] == ("failing", 503)
    s.record(result("a", Status.OK))
    assert health_of(s, "a") is Health.FAILING
    s.record(result("a", Status.OK))
    assert s.probes["a"].health is Health.OK
    assert s.health()[:2] == ("ok", 200)


def test_non_critical_failure_is_degraded_not_503() -> None:
    s = store(
        "probes: [{name: a, type: tcp, host: h, port: 1}, {name: b, type: tcp, host: h, port: 1, critical: true}]"
    )
    s.record(result("a", Status.CRITICAL))
    s.record(result("b", Status.OK))
    assert s.health()[:2] == ("degraded", 200)


def test_transitions_only_on_status_change() -> None:
    s = store("probes: [{name: a, type: tcp, host: h, port: 1}]")
    changes = [s.record(result("a", st)) for st in (Status.OK, Status.OK, Status.CRITICAL, Status.CRITICAL, Status.OK)]
    assert [(t.old, t.new) if t else None for t in changes] == [
        (None, Status.OK),
        None,
        (Status.OK, Status.CRITICAL),
        None,
        (Status.CRITICAL, Status.OK),
    ]


def test_sync_keeps_unchanged_and_drops_removed() -> None:
    s = store("probes: [{name: a, type: tcp, host: h, port: 1}, {name: b, type: tcp, host: h, port: 1}]")
    s.record(result("a", Status.OK))
    config = parse_config(
        "probes: [{name: a, type: tcp, host: h, port: 1}, {name: c, type: tcp, host: h, port: 2}]", env={}
    )
    s.sync(config.probes, {"a": "t", "c": "t"})
    assert set(s.probes) == {"a", "c"}
    assert s.probes["a"].last is not None


def test_a_tick_the_agent_could_not_start_is_counted_apart_and_changes_no_health() -> None:
    from dataclasses import replace

    from probe_agent.outputs.exposition import ProbeExposition

    s = store("probes: [{name: a, type: tcp, host: h, port: 1, critical: true}]")
    s.record(result("a", Status.OK))
    skipped = replace(
        result("a", Status.UNKNOWN),
        reason=Reason.INTERNAL,
        message="not run: the agent is overloaded",
        skipped=True,
        started_at=1.0,
    )
    for _ in range(5):
        assert s.record(skipped) is None  # no status change logged per probe
    state = s.probes["a"]
    assert state.health is Health.OK and state.consecutive_failures == 0
    assert state.last is not None and state.last.status is Status.OK  # the last real result stands
    assert dict(state.results_by_status) == {Status.OK: 1} and not state.failures_by_reason
    assert state.to_dict()["skipped"] == "not run: the agent is overloaded"
    assert s.health()[:2] == ("ok", 200)
    text = ProbeExposition().render(list(s.probes.values())).decode()
    assert 'probe_results_total{probe="a",status="skipped",type="tcp"} 5.0' in text, [
        line for line in text.splitlines() if line.startswith("probe_results_total")
    ]


def test_the_staleness_clock_looks_only_at_probes_whose_moment_came(monkeypatch: pytest.MonkeyPatch) -> None:
    # The watchdog asks every second; it used to call is_stale on every probe each time (a tenth
    # of an idle core at 50,000). Now only the probes whose deadline passed are looked at.
    from probe_agent.runtime import state as state_module
    from probe_agent.runtime.state import ProbeState, StalenessClock

    s = store(
        "probes: ["
        + ", ".join(f"{{name: p{i}, type: tcp, host: h, port: 1, interval: 10s, timeout: 1s}}" for i in range(5000))
        + "]"
    )
    for name in s.probes:
        s.record(result(name, Status.OK))
    looked = []
    original = ProbeState.is_stale

    def counting(self: ProbeState, now: float) -> bool:
        looked.append(self)
        return original(self, now)

    monkeypatch.setattr(ProbeState, "is_stale", counting)
    clock = StalenessClock()
    clock.reset(s.probes.values())
    now = time.monotonic()
    assert clock.due(now + 1, s.probes) == [] and looked == []  # nothing due: nothing looked at
    # one probe stops running; every other ran again meanwhile
    s.probes["p7"].finished -= 100
    for name, probe_state in s.probes.items():
        if name != "p7":
            probe_state.finished = now + 15
    stale = clock.due(now + 25, s.probes)  # every first deadline (finished + 20 s) has passed
    assert [st.config.name for st in stale] == ["p7"] and clock.stale == 1
    looked.clear()
    assert clock.due(now + 26, s.probes) == [] and len(looked) == 0  # each put back at its new moment
    assert state_module.stale_after(s.probes["p1"].config) == 20


def test_the_staleness_clock_drops_states_a_reload_replaced() -> None:
    from probe_agent.runtime.state import StalenessClock

    s = store("probes: [{name: a, type: tcp, host: h, port: 1, interval: 10s, timeout: 1s}]")
    s.record(result("a", Status.OK))
    clock = StalenessClock()
    clock.reset(s.probes.values())
    s.probes["a"].finished -= 100
    replaced = store("probes: [{name: a, type: tcp, host: h2, port: 1, interval: 10s, timeout: 1s}]")
    assert clock.due(time.monotonic(), replaced.probes) == []  # not this config's state any more
