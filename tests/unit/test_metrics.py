from __future__ import annotations

import collections
import gzip
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import Reason
from probe_agent.core.results import Result, Status
from probe_agent.outputs.exposition import ProbeExposition
from probe_agent.runtime.metrics import AgentMetrics
from probe_agent.runtime.state import StateStore

# `defaults: {metrics: full}`: every status, reason and default bound (the budget's tests are below)
CONFIG = parse_config(
    "defaults: {metrics: full}\n"
    "probes: [{name: web, type: http, url: 'http://u:pw-secret@127.0.0.1:1/', labels: {team: core}}, "
    "{name: port, type: tcp, host: 127.0.0.1, port: 1}]",
    env={},
)


def setup() -> tuple[StateStore, ProbeExposition]:
    store = StateStore()
    store.probes = store.plan_config(CONFIG)  # as the agent does: targets redacted on the way in
    return store, ProbeExposition()


def samples(store: StateStore, exposition: ProbeExposition) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = exposition.render(list(store.probes.values())).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, labels: dict[str, str]) -> float | None:
    return found.get((name, frozenset(labels.items())))


def test_probe_series_from_results() -> None:
    store, exposition = setup()
    store.record(
        Result(
            "web",
            "http",
            Status.OK,
            None,
            "",
            0.02,
            1700000000.0,
            {"connect": 0.001, "processing": 0.01},
            {"status_code": 200, "cert_expiry_days": 3},
            {},
        )
    )
    store.record(Result("port", "tcp", Status.CRITICAL, Reason.CONNECT, "refused", 0.001, 1700000001.0, {}, {}, {}))
    found = samples(store, exposition)
    web = {"probe": "web", "type": "http", "team": "core"}
    port = {"probe": "port", "type": "tcp"}
    assert get(found, "probe_success", web) == 1 and get(found, "probe_success", port) == 0
    assert get(found, "probe_status", port) == 2
    assert get(found, "probe_duration_seconds", web) == 0.02  # the last run, a gauge as blackbox_exporter's
    assert get(found, "probe_run_duration_seconds_bucket", {**web, "le": "0.05"}) == 1
    assert get(found, "probe_run_duration_seconds_bucket", {**web, "le": "0.01"}) == 0
    assert get(found, "probe_run_duration_seconds_count", web) == 1
    assert get(found, "probe_results_total", {**port, "status": "critical"}) == 1
    assert get(found, "probe_failures_total", {**port, "reason": "connect"}) == 1
    # every reason a type can fail with is there from the start, at 0 (tcp has no logins)
    assert get(found, "probe_failures_total", {**web, "reason": "timeout"}) == 0
    assert {labels for name, labels in found if name == "probe_failures_total" and ("probe", "port") in labels} == {
        frozenset({**port, "reason": r}.items())
        for r in ("timeout", "connect", "tls", "protocol", "assertion", "internal")
    }
    assert get(found, "probe_http_duration_seconds", {**web, "phase": "processing"}) == 0.01
    assert get(found, "probe_http_status_code", web) == 200
    assert get(found, "probe_last_run_timestamp_seconds", port) == 1700000001.0
    assert get(found, "probe_info", {**web, "target": "http://u:***@127.0.0.1:1/"}) == 1
    text = exposition.render(list(store.probes.values())).decode()
    assert "cert_expiry_days" not in text  # declared as threshold-only
    assert "pw-secret" not in text


def test_cache_renders_only_what_changed_and_never_serves_old_lines() -> None:
    store, exposition = setup()
    store.record(Result("port", "tcp", Status.OK, None, "", 0.001, 1.0, {}, {}, {}))
    exposition.render(list(store.probes.values()))
    assert exposition.rendered_last_scrape == 2
    exposition.render(list(store.probes.values()))
    assert exposition.rendered_last_scrape == 0  # nothing changed: all from the cache
    store.record(Result("port", "tcp", Status.CRITICAL, Reason.TIMEOUT, "t", 1.0, 2.0, {}, {}, {}))
    found = samples(store, exposition)
    assert exposition.rendered_last_scrape == 1
    assert get(found, "probe_success", {"probe": "port", "type": "tcp"}) == 0
    assert get(found, "probe_results_total", {"probe": "port", "type": "tcp", "status": "critical"}) == 1


def test_removed_probe_disappears() -> None:
    store, exposition = setup()
    store.record(Result("port", "tcp", Status.OK, None, "", 0.001, 1.0, {}, {}, {}))
    assert get(samples(store, exposition), "probe_success", {"probe": "port", "type": "tcp"}) == 1
    store.sync([], {})
    assert b'probe="port"' not in exposition.render(list(store.probes.values()))


async def test_scrape_gzips_when_asked() -> None:
    store, exposition = setup()
    store.record(Result("port", "tcp", Status.OK, None, "", 0.001, 1.0, {}, {}, {}))
    metrics = AgentMetrics()
    plain = b"".join(await exposition.scrape(list(store.probes.values()), metrics.registry, compress=False))
    packed = await exposition.scrape(list(store.probes.values()), metrics.registry, compress=True)
    assert len(packed) == 1 and gzip.decompress(packed[0]) == plain
    assert b"probe_agent_build_info" in plain and b'probe_success{probe="port",type="tcp"} 1.0' in plain
    # a counter's or histogram's _created series is one more series each, of no use to a rule
    metrics.scrapes.inc()
    again = b"".join(await exposition.scrape(list(store.probes.values()), metrics.registry, compress=False))
    assert b"_created" not in again and b"probe_agent_scrapes_total 1.0" in again


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
async def test_exposition_passes_promtool() -> None:
    store, exposition = setup()
    store.record(
        Result("web", "http", Status.WARNING, None, "slow", 0.3, 1.0, {"connect": 0.001}, {"status_code": 200}, {})
    )
    store.record(Result("port", "tcp", Status.CRITICAL, Reason.TIMEOUT, "t", 1.0, 1.0, {}, {}, {}))
    metrics = AgentMetrics()
    metrics.scheduler_lag.observe(0.001)
    body = b"".join(await exposition.scrape(list(store.probes.values()), metrics.registry, compress=False))
    out = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()


def test_step_histograms_have_the_step_limits_as_bounds_and_only_configured_steps() -> None:
    config = parse_config(
        "probes:\n  - name: flow\n    type: synthetic\n    base_url: http://127.0.0.1:1\n"
        "    thresholds: {duration: {warning: 2500ms}}\n"
        "    steps:\n      - {name: login, path: /l, thresholds: {duration: {warning: 260ms, critical: 1s}}}\n"
        "      - {name: cart, path: /c}\n",
        env={},
    )
    assert {0.26, 2.5} <= set(config.probes[0].buckets)  # step and flow limits are bounds
    store = StateStore()
    store.probes = store.plan_config(config)
    for login in (0.25, 0.27):
        store.record(
            Result(
                "flow",
                "synthetic",
                Status.OK,
                None,
                "",
                0.5,
                1.0,
                {"login": login, "cart": 0.02, "not-a-step": 9.0},
                {},
                {},
            )
        )
    exposition = ProbeExposition()
    found = samples(store, exposition)
    flow = {"probe": "flow", "type": "synthetic"}
    assert get(found, "probe_step_run_duration_seconds_bucket", {**flow, "step": "login", "le": "0.26"}) == 1
    assert get(found, "probe_step_run_duration_seconds_bucket", {**flow, "step": "login", "le": "+Inf"}) == 2
    assert get(found, "probe_step_run_duration_seconds_count", {**flow, "step": "cart"}) == 2
    assert get(found, "probe_run_duration_seconds_bucket", {**flow, "le": "2.5"}) == 2
    text = exposition.render(list(store.probes.values())).decode()
    assert "not-a-step" not in text.split("probe_step_run_duration_seconds", 1)[1].split("# HELP", 1)[0]
    assert "# TYPE probe_step_run_duration_seconds histogram" in text


def test_a_target_group_that_is_gone_leaves_no_series() -> None:
    metrics = AgentMetrics()
    metrics.count_discovered(["web", "api"], {"web": 2})
    value = metrics.registry.get_sample_value
    assert (
        value("probe_agent_discovery_targets", {"group": "web"}),
        value("probe_agent_discovery_targets", {"group": "api"}),
    ) == (2.0, 0.0)
    metrics.count_discovered(["api"], {"api": 5})
    assert value("probe_agent_discovery_targets", {"group": "web"}) is None
    assert value("probe_agent_discovery_targets", {"group": "api"}) == 5.0


async def _series_of_one_http_run(extra: str = "", slos: str = "") -> list[str]:
    """The series names of probe `web` (type http, `extra` its own settings) after one run against
    a real server."""
    from aiohttp import web

    from probe_agent.probes.types.http import HttpProbe
    from probe_agent.runtime.runner import build_handles, run_probe
    from tests.helpers.webapp import served

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", answer)
    async with served(app) as port:
        config = parse_config(
            f"probes: [{{name: web, type: http, url: 'http://127.0.0.1:{port}/'{extra}}}]\n{slos}", env={}
        )
        store = StateStore()
        store.probes = store.plan_config(config)
        (handle,) = build_handles(config)
        result = await run_probe(handle)
        await HttpProbe.aclose_shared()
    assert result.success, result
    store.record(result)
    return [name for name, labels in samples(store, ProbeExposition()) if ("probe", "web") in labels]


def _counted(names: list[str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(collections.Counter(names).items()))


async def test_a_default_http_probe_stays_within_its_series_budget() -> None:
    """Each series is a cost in the user's Prometheus, 50,000 times over: a default HTTP probe,
    run once against a real server, exports blackbox_exporter's 17, the agent's 4 of state, the 5
    failure reasons its type can produce, born at zero (`internal`, the agent's own, comes with its
    first), the status it had (each status comes with its first result), and the run histogram's
    +Inf, sum and count (no bound is declared): 30 (43 before, 49 before 0.2)."""
    names = await _series_of_one_http_run()
    assert len(names) <= 30, _counted(names)
    assert names.count("probe_run_duration_seconds_bucket") == 1  # +Inf: no limit declared
    assert names.count("probe_failures_total") == 5  # no `auth`: an HTTP 401 is an unexpected status
    assert names.count("probe_results_total") == 1
    for name in ("probe_success", "probe_duration_seconds", "probe_http_status_code", "probe_ip_addr_hash"):
        assert name in names  # blackbox_exporter's stay


async def test_metrics_full_brings_the_whole_set_back() -> None:
    """`metrics: full`: the default bounds below the timeout and the timeout, every status and
    every reason born at zero: 43 for a default HTTP probe (as before the budget)."""
    names = await _series_of_one_http_run(", metrics: full")
    assert len(names) == 43, _counted(names)
    assert names.count("probe_run_duration_seconds_bucket") == 10
    assert names.count("probe_failures_total") == 6
    assert names.count("probe_results_total") == 4


async def test_a_probe_an_slo_counts_has_its_statuses_born_at_zero() -> None:
    """An SLO's ratio reads probe_results_total: a status series born at 1 would hide its first
    run from rate(), so a probe an SLO names exports the full set unless it says otherwise."""
    slo = "slos: [{name: web-slo, probes: [web], availability: 99.9}]"
    names = await _series_of_one_http_run(slos=slo)
    assert names.count("probe_results_total") == 4, _counted(names)
    mine = await _series_of_one_http_run(", metrics: default", slos=slo)
    assert mine.count("probe_results_total") == 1, _counted(mine)


async def test_a_scrape_of_probes_that_all_ran_never_holds_two_caches() -> None:
    """Each probe's new pieces replace its old ones as they are made: a scrape after every probe
    ran peaks at about one cache, not two (the old one was kept until the new one was whole, and
    the allocator keeps such a peak as RSS: 27 MB at 10,000 probes)."""
    import tracemalloc

    count = 2000
    config = parse_config(
        "probes: ["
        + ", ".join(f"{{name: p{i}, type: http, url: 'http://127.0.0.1:1/{i}'}}" for i in range(count))
        + "]",
        env={},
    )
    store = StateStore()
    store.probes = store.plan_config(config)
    exposition, metrics = ProbeExposition(), AgentMetrics()

    def all_ran(at: float) -> None:
        for probe in config.probes:
            store.record(Result(probe.name, "http", Status.OK, None, "", 0.002, at, {"connect": 0.001}, {}, {}))

    tracemalloc.start()
    try:
        all_ran(1.0)
        before = tracemalloc.get_traced_memory()[0]
        await exposition.scrape(list(store.probes.values()), metrics.registry, compress=True)
        cache = tracemalloc.get_traced_memory()[0] - before
        all_ran(2.0)
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        await exposition.scrape(list(store.probes.values()), metrics.registry, compress=True)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert exposition.rendered_last_scrape == count
    assert peak < 0.5 * cache, (peak, cache)  # one family of text at a time, and its gzip


def test_within_the_budget_a_status_and_internal_come_with_their_first() -> None:
    """Within the series budget a status series and the `internal` reason (the agent's own
    failure) are born with their first result: absent before, there with its count after."""
    config = parse_config("probes: [{name: port, type: tcp, host: 127.0.0.1, port: 1}]", env={})
    store = StateStore()
    store.probes = store.plan_config(config)
    port = {"probe": "port", "type": "tcp"}
    store.record(Result("port", "tcp", Status.OK, None, "", 0.001, 1.0, {}, {}, {}))
    found = samples(store, ProbeExposition())
    assert get(found, "probe_results_total", {**port, "status": "ok"}) == 1
    assert get(found, "probe_results_total", {**port, "status": "unknown"}) is None
    assert get(found, "probe_failures_total", {**port, "reason": "connect"}) == 0  # the type's own: born at 0
    assert get(found, "probe_failures_total", {**port, "reason": "internal"}) is None
    store.record(Result("port", "tcp", Status.UNKNOWN, Reason.INTERNAL, "bug", 0.001, 2.0, {}, {}, {}))
    found = samples(store, ProbeExposition())
    assert get(found, "probe_results_total", {**port, "status": "unknown"}) == 1
    assert get(found, "probe_failures_total", {**port, "reason": "internal"}) == 1


def test_probe_info_carries_the_tags_slo_rules_join_on() -> None:
    store = StateStore()
    tagged = parse_config(
        "probes: [{name: web, type: tcp, host: 127.0.0.1, port: 1, tags: [shop, edge, shop]},"
        " {name: plain, type: tcp, host: 127.0.0.1, port: 2}]",
        env={},
    )
    store.probes = store.plan_config(tagged)
    found = samples(store, ProbeExposition())
    web = {"probe": "web", "type": "tcp", "target": "127.0.0.1:1"}
    assert get(found, "probe_info", {**web, "tags": ",edge,shop,"}) == 1  # sorted, once each, commas round
    assert get(found, "probe_info", {"probe": "plain", "type": "tcp", "target": "127.0.0.1:2"}) == 1  # no tags label


@pytest.mark.parametrize(
    ("probe", "problem"),
    [
        ("tags: ['shop,edge']", "tags: 'shop,edge' is not a tag: one word, no comma"),
        ("labels: {tags: x}", "label 'tags' is reserved by probe-agent"),
    ],
)
def test_a_tag_with_a_comma_or_a_tags_label_is_refused(probe: str, problem: str) -> None:
    from probe_agent.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config(f"probes: [{{name: web, type: tcp, host: 127.0.0.1, port: 1, {probe}}}]", env={})
    assert any(problem in p for p in caught.value.problems), caught.value.problems
