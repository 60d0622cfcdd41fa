"""Synthetic flows against the real demo shop: the bundled signup and checkout flows, faults, cleanup, secrets."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import ConfigError, Reason
from probe_agent.core.results import Status
from probe_agent.demo import bundled_config_text
from probe_agent.demo.shop import STATE_KEY, Fault, ShopState, make_shop
from tests.conftest import ProbeOnce, ServeApp
from tests.helpers.agent import all_outputs, assert_no_secret
from tests.helpers.processes import demo_shop


@pytest.fixture
async def shop(serve_app: ServeApp) -> tuple[str, ShopState]:
    app: web.Application = make_shop(faults="")
    url = await serve_app(app)
    return url, app[STATE_KEY]


def bundled_flow(name: str, url: str, **changes: Any) -> dict[str, Any]:
    """One of the flows that ship in the demo probes file, pointed at this test's shop."""
    raw = yaml.safe_load(bundled_config_text())
    flow = next(p for p in raw["probes"] if p["name"] == name)
    return {**flow, "base_url": url, **changes}


@pytest.fixture
def run_flow(probe_once: ProbeOnce) -> ProbeOnce:
    return probe_once


@pytest.mark.parametrize("name", ["signup-flow", "checkout-flow"])
async def test_bundled_flows_pass_and_clean_up(run_flow: ProbeOnce, shop: tuple[str, ShopState], name: str) -> None:
    url, state = shop
    result = await run_flow(bundled_flow(name, url))
    assert result.status is Status.OK, result.message
    assert result.values["cleanup_failures"] == 0
    assert state.users == {}  # the test user is gone again
    assert all(order["status"] == "cancelled" for order in state.orders.values())
    assert state.requests["synthetic"] == len(result.phases) and state.requests["real"] == 0
    steps = list(result.phases)
    assert steps[-1] == "delete-account" and steps[0] == "signup"


async def test_each_run_uses_fresh_data(run_flow: ProbeOnce, shop: tuple[str, ShopState]) -> None:
    url, state = shop
    flow = bundled_flow("signup-flow", url, cleanup=[])  # keep the users to compare them
    first, second = await run_flow(flow), await run_flow(flow)
    assert first.status is Status.OK and second.status is Status.OK, (first.message, second.message)
    assert len(state.users) == 2 and all(e.startswith("probe+") for e in state.users)


@pytest.mark.parametrize(
    ("fault", "step", "message"),
    [
        (Fault("error"), "checkout", "step 'checkout': status 500, expected 201"),
        (Fault("wrong_body"), "checkout", "step 'checkout': status 200, expected 201"),
        (Fault("wrong_body"), "verify-order", "step 'verify-order': JSON path status not found in body"),
    ],
)
async def test_fault_fails_at_the_right_step_and_cleanup_runs(
    run_flow: ProbeOnce, shop: tuple[str, ShopState], fault: Fault, step: str, message: str
) -> None:
    url, state = shop
    state.faults["order" if step == "verify-order" else step] = fault
    result = await run_flow(bundled_flow("checkout-flow", url))
    assert (result.status, result.reason, result.message) == (Status.CRITICAL, Reason.ASSERTION, message)
    assert state.users == {}  # cleanup deleted the user although the flow failed
    if step == "checkout":
        assert result.details["cleanup cancel-order"] == "skipped: order_id not set"


async def test_slow_step_warns_then_fails(run_flow: ProbeOnce, shop: tuple[str, ShopState]) -> None:
    url, state = shop
    state.faults["login"] = Fault("slow", delay=0.3)
    result = await run_flow(bundled_flow("signup-flow", url))
    assert result.status is Status.WARNING and result.reason is None
    assert re.fullmatch(r"step 'login': took 3\d\d ms, limit > 250 ms", result.message), result.message
    flow = bundled_flow("signup-flow", url)
    flow["steps"][1]["thresholds"] = {"duration": {"critical": "200ms"}}
    result = await run_flow(flow)
    assert result.reason is Reason.ASSERTION and result.message.startswith("step 'login': took 3")
    assert result.message.endswith("limit > 200 ms (critical)")
    assert state.users == {}


async def test_hung_step_ends_in_time_and_cleanup_still_runs(run_flow: ProbeOnce, shop: tuple[str, ShopState]) -> None:
    url, state = shop
    state.faults["checkout"] = Fault("slow", delay=60)
    start = time.monotonic()
    result = await run_flow(bundled_flow("checkout-flow", url, timeout="3s", cleanup_timeout="1s", interval="10s"))
    elapsed = time.monotonic() - start
    assert result.reason is Reason.TIMEOUT
    assert result.message == "step 'checkout': no answer within the flow's 2s (1s kept for cleanup)"
    assert elapsed < 3.2
    assert state.users == {} and result.values["cleanup_failures"] == 0


async def test_cleanup_failure_is_reported_apart(run_flow: ProbeOnce, shop: tuple[str, ShopState]) -> None:
    url, state = shop
    state.faults["delete_account"] = Fault("error")
    result = await run_flow(bundled_flow("signup-flow", url))
    assert result.status is Status.WARNING  # the flow worked; the leftover user is worth a warning
    assert result.values["cleanup_failures"] == 1
    assert result.details["cleanup"] == "step 'delete-account': status 500, expected 204"
    state.faults["profile"] = Fault("error")
    result = await run_flow(bundled_flow("signup-flow", url))
    # the flow's own failure stays the message; cleanup's is beside it
    assert result.message == "step 'profile': status 500, expected 200-399"
    assert result.details["cleanup"] == "step 'delete-account': status 500, expected 204"


async def test_tokens_and_passwords_are_redacted(run_flow: ProbeOnce, shop: tuple[str, ShopState]) -> None:
    url, state = shop
    flow = bundled_flow("signup-flow", url)
    flow["steps"][1]["expect_json"] = {"token": "not-the-token"}  # the failure message would show the token
    result = await run_flow(flow, env={"SYNTHETIC_PASSWORD": "Pa55-from-env-var"})
    # the issued token is masked; the expected value is ordinary text, whatever its key
    assert result.message == 'step \'login\': JSON token is "***", expected "not-the-token"'
    issued = list(state.sessions) or ["(none left)"]
    text = repr(result)
    assert "Pa55-from-env-var" not in text
    assert not any(token in text for token in issued)


async def test_marker_header_can_be_turned_off(run_flow: ProbeOnce, shop: tuple[str, ShopState]) -> None:
    url, state = shop
    result = await run_flow(bundled_flow("signup-flow", url, marker={}))
    assert result.status is Status.OK
    assert state.requests == {"synthetic": 0, "real": 4}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"steps": [{"name": "a", "path": "/x/{{order}}"}]},
            "probe 'f': steps[0]: step 'a' uses undefined variable {{order}} (defined at that point: random, timestamp, uuid)",
        ),
        (
            {"base_url": None, "steps": [{"name": "a", "path": "/x"}]},
            "probe 'f': base_url: needed by step 'a', which gives a path",
        ),
        (
            {"steps": [{"name": "a", "path": "/x"}, {"name": "a", "path": "/y"}]},
            "probe 'f': steps: duplicate step names ['a']",
        ),
        (
            {"steps": [{"name": "a", "path": "/x", "json": {}, "body": "x"}]},
            "probe 'f': steps[0]: give at most one of json, form and body",
        ),
        (
            {"cleanup": [{"name": "c", "path": "/x"}], "cleanup_timeout": "10s"},
            "probe 'f': cleanup_timeout: 10s must be shorter than timeout (5s)",
        ),
    ],
)
def test_flow_validation(change: dict[str, Any], problem: str) -> None:
    definition = {
        "name": "f",
        "type": "synthetic",
        "base_url": "http://127.0.0.1:1",
        "timeout": "5s",
        "steps": [{"name": "a", "path": "/"}],
        **change,
    }
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump({"probes": [{k: v for k, v in definition.items() if v is not None}]}), env={})
    assert info.value.problems == [problem]


def test_secrets_never_leak_through_the_agent(tmp_path: Path) -> None:
    with demo_shop() as url:
        raw = yaml.safe_load(bundled_config_text())
        flows = [p for p in raw["probes"] if p["type"] == "synthetic"]
        failing = {**flows[0], "name": "leaky-login"}
        failing["steps"] = [dict(s) for s in failing["steps"]]
        failing["steps"][1] = {**failing["steps"][1], "expect_json": {"token": "not-the-token"}}
        for flow in (*flows, failing):
            flow.update(interval="1s", timeout="900ms", cleanup_timeout="400ms")
        config = tmp_path / "probes.yaml"
        config.write_text(yaml.safe_dump({"probes": [*flows, failing]}))
        outputs = all_outputs(config, env={"SHOP_URL": url, "SYNTHETIC_PASSWORD": "Pa55-from-env-var"})
    assert 'JSON token is \\"***\\"' in outputs["health"]
    assert_no_secret(outputs, {"SYNTHETIC_PASSWORD": "Pa55-from-env-var"})
    for where, text in outputs.items():
        assert "Bearer " not in text.replace("Bearer ***", ""), where
