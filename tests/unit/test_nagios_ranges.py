"""Threshold ranges as the monitoring-plugins guidelines write them (`-w`/`-c` of every plugin):
`10` (alert outside 0..10), `10:` (below 10), `~:10` (above 10), `10:20` (outside 10..20) and
`@10:20` (inside 10..20), in `check -w/-c` and in a probes file's thresholds alike."""

from __future__ import annotations

import math
import socket
import subprocess
import sys

import pytest
from pydantic import ValidationError

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import ConfigError
from probe_agent.schema.fields import Limit, Threshold

CASES: dict[str, tuple[list[float], list[float]]] = {
    # text: (values breaching it, values that do not)
    "10:": ([9.99, -1], [10, 11, 1e9]),
    "~:10": ([10.01, 1e9], [10, 0, -1e9]),
    "10:20": ([9.9, 20.1, -5], [10, 15, 20]),
    "@10:20": ([10, 15, 20], [9.9, 20.1]),
    "@10": ([0, 5, 10], [-0.1, 10.1]),
    "@~:10": ([-1e9, 10], [10.1]),
    "250ms:1s": ([0.2, 1.5], [0.25, 0.5, 1]),
}


@pytest.mark.parametrize("text", sorted(CASES))
def test_each_range_form_alerts_where_the_guidelines_say(text: str) -> None:
    limit = Limit.model_validate(text)
    breaching, within = CASES[text]
    assert [v for v in breaching if not limit.breached_by(v)] == []
    assert [v for v in within if limit.breached_by(v)] == []
    # it reads back as written (perfdata carries it in the same syntax)
    assert Limit.model_validate(str(limit)) == limit


def test_a_plain_number_and_a_comparison_keep_their_meaning() -> None:
    assert Limit.model_validate("10").breached_by(10.5) and not Limit.model_validate("10").breached_by(10)
    assert Limit.model_validate("< 7").breached_by(6)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("20:10", "start 20 is above end 10"),
        ("@", "invalid threshold"),
        ("a:b", "invalid threshold"),
        ("1:2:3", "invalid threshold"),
    ],
)
def test_a_malformed_range_is_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        Limit.model_validate(text)
    assert says in str(info.value)


def test_ranges_are_not_taken_for_an_inverted_pair() -> None:
    # a warning band inside a critical band is what ranges are for
    Threshold.model_validate({"warning": "10:20", "critical": "5:30"})
    config = parse_config(
        "probes: [{name: q, type: tcp, host: h, port: 1, thresholds: {duration: {warning: '@0:100ms', critical: '2s:'}}}]",
        env={},
    )
    # a range's finite ends are bounds of the histogram, as a comparison's bound is
    assert 0.1 in config.probes[0].buckets and 2.0 in config.probes[0].buckets
    assert all(math.isfinite(b) for b in config.probes[0].buckets)
    with pytest.raises(ConfigError) as info:
        parse_config(
            "probes: [{name: q, type: tcp, host: h, port: 1, thresholds: {duration: {warning: '3:1'}}}]", env={}
        )
    assert (
        "thresholds.duration.warning" in info.value.problems[0] and "start 3 is above end 1" in info.value.problems[0]
    )


def test_check_takes_a_nagios_range_and_reports_it_in_perfdata() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        # a connect on loopback takes well under 10 s: inside @0:10s is WARNING, below 5s: is CRITICAL
        warn = subprocess.run(
            [
                sys.executable,
                "-m",
                "probe_agent",
                "check",
                "--format",
                "nagios",
                "-w",
                "@0:10s",
                "tcp",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        crit = subprocess.run(
            [
                sys.executable,
                "-m",
                "probe_agent",
                "check",
                "tcp",
                f"127.0.0.1:{port}",
                "-c",
                "5:",
                "--format",
                "nagios",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        listener.close()
    assert warn.returncode == 1, warn.stdout + warn.stderr
    assert f"'127.0.0.1:{port}/duration'=" in warn.stdout and ";@0:10;" in warn.stdout, warn.stdout
    assert crit.returncode == 2, crit.stdout + crit.stderr
    assert "inside @0:10" not in crit.stdout and "outside 5:" in crit.stdout, crit.stdout
