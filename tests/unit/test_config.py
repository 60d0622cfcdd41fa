from __future__ import annotations

from pathlib import Path

import pytest

from probe_agent.config.loader import load_config, parse_config
from probe_agent.core.errors import ConfigError
from probe_agent.probes import REGISTRY
from probe_agent.probes.types.http import HttpConfig
from probe_agent.probes.types.tcp import TcpConfig
from probe_agent.schema.fields import DEFAULT_BUCKETS, parse_duration

BAD = sorted((Path(__file__).parent / "bad_configs").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_names_probe_and_field(path: Path) -> None:
    expected = [
        line.removeprefix("# expect: ").replace("KNOWN_TYPES", ", ".join(sorted(REGISTRY)))
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]
    assert expected, "each bad config states the errors it must produce"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == expected


def test_valid_config_applies_defaults_and_expands_env() -> None:
    config = parse_config(
        """
defaults: {interval: 1m, timeout: 2s, failure_threshold: 3}
probes:
  - name: api
    type: http
    url: ${BASE:-http://127.0.0.1:1}/health
    headers: {Authorization: "Bearer ${API_TOKEN}"}
  - name: port
    type: tcp
    host: 127.0.0.1
    port: "${PORT}"
    interval: 500ms
    timeout: 100ms
""",
        env={"API_TOKEN": "s3cr3t-token-value", "PORT": "5432"},
    )
    api, port = config.probes
    assert isinstance(api, HttpConfig) and isinstance(port, TcpConfig)
    assert (api.interval, api.timeout, api.failure_threshold) == (60.0, 2.0, 3)
    assert api.url == "http://127.0.0.1:1/health"
    assert port.port == 5432 and port.interval == 0.5 and port.timeout == 0.1
    assert "s3cr3t-token-value" in config.secrets


def test_dollar_dollar_escapes() -> None:
    config = parse_config("probes: [{name: a, type: tcp, host: 127.0.0.1, port: 1, send: 'cost $$5'}]", env={})
    probe = config.probes[0]
    assert isinstance(probe, TcpConfig) and probe.send == "cost $5"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            """
probes:
  - {name: a, type: tcp, host: 127.0.0.1}
  - {name: b, type: http}
  - {name: c, type: nope}
""",
            env={},
        )
    assert [p.split(":")[0] for p in info.value.problems] == ["probe 'a'", "probe 'b'", "probe 'c'"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("15s", 15), ("1m30s", 90), ("2h", 7200), (3, 3.0), ("1.5s", 1.5), ("250us", 0.00025)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "-1s", "0s", "1x", "1s 2", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_bundled_probes_yaml_is_valid() -> None:
    root = Path(__file__).parents[2]
    config = load_config(root / "probes.yaml", env={"SHOP_URL": "http://127.0.0.1:8080"})
    # each type's own example is checked with its module (test_probe_types); this file shows the common ones
    assert {"http", "postgres", "synthetic"} <= {p.type for p in config.probes}


def test_buckets_defaults_per_probe_and_limits() -> None:
    config = parse_config(
        "defaults: {buckets: [50ms, 1s]}\n"
        "probes:\n"
        "  - {name: a, type: tcp, host: h, port: 1}\n"
        "  - {name: b, type: tcp, host: h, port: 1, buckets: [2s, 100ms, 2s], thresholds: {duration: {warning: 150ms, critical: 700ms}}}\n",
        env={},
    )
    a, b = config.probes
    assert a.buckets == (0.05, 1.0)
    assert b.buckets == (0.1, 0.15, 0.7, 2.0)  # its own, deduplicated and sorted, plus its limits
    assert parse_duration("700ms") == 0.7 and repr(parse_duration("1.1s")) == "1.1"  # le="0.7", not 0.7000000000000001
    # within the series budget a probe has only the bounds it declares; with `metrics: full` the
    # defaults, which stop at the probe's timeout, a bound (10 s unless said)
    bare, plain, quick = parse_config(
        "probes: [{name: n, type: tcp, host: h, port: 1}, {name: d, type: tcp, host: h, port: 1, metrics: full},"
        " {name: q, type: tcp, host: h, port: 1, timeout: 700ms, metrics: full}]",
        env={},
    ).probes
    assert bare.buckets == ()
    assert plain.buckets == (*DEFAULT_BUCKETS, 10.0)
    assert quick.buckets == (0.01, 0.05, 0.1, 0.25, 0.5, 0.7)
    with pytest.raises(ConfigError) as info:
        parse_config("probes: [{name: m, type: tcp, host: h, port: 1, metrics: ful}]", env={})
    assert "metrics" in info.value.problems[0] and "did you mean 'full'" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        parse_config(
            "probes: [{name: e, type: tcp, host: h, port: 1, buckets: ["
            + ", ".join(f"{i}ms" for i in range(1, 50))
            + "]}]",
            env={},
        )
    assert info.value.problems == ["probe 'e': buckets: at most 40 bucket bounds (each is a series per probe), got 49"]


ONE_PASS = """\
probes:
  - name: flow
    type: synthetic
    base_url: http://x
    interval: 5s
    timeout: 10s
    steps:
      - {name: a, path: '/{{nope}}'}
  - name: web
    type: http
    url: ${UNSET_URL}
    methd: GET
  - {name: q, type: htp}
"""


def test_validation_reports_every_problem_in_one_pass_with_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(ONE_PASS, "probes.yaml", env={})
    found = dict(zip(info.value.problems, info.value.locations, strict=True))
    # the flow's own rule is not hidden by its timeout, nor the typo by the unset variable
    assert found == {
        "probe 'flow': steps[0]: step 'a' uses undefined variable {{nope}} (defined at that point: random, timestamp, uuid)": (
            8,
            9,
        ),
        "probe 'web': url: environment variable UNSET_URL is not set (use ${UNSET_URL:-default} for a default)": (
            11,
            5,
        ),
        "probe 'web': methd: unknown field (did you mean 'method'?)": (12, 5),
        "probe 'q': type: unknown probe type 'htp' (did you mean 'http'?) (known: "
        + ", ".join(sorted(REGISTRY))
        + ")": (13, 15),
        "probe 'flow': timeout: 10s must be shorter than interval (5s)": (6, 5),
    }, found


def test_a_duration_may_be_a_plain_number_of_seconds_in_text_too() -> None:
    # YAML `timeout: "5"`, `check -t 5` and `wait --timeout 30` all reach here as text; the
    # README says a duration may be a number of seconds, and it was refused ('invalid duration')
    assert parse_duration("5") == 5.0 and parse_duration(" 2.5 ") == 2.5 and parse_duration(5) == 5.0
    assert parse_duration("0", allow_zero=True) == 0.0
    probe = parse_config('probes: [{name: p, type: tcp, host: h, port: 1, interval: "30", timeout: "5"}]', env={})
    assert (probe.probes[0].interval, probe.probes[0].timeout) == (30.0, 5.0)
    for bad in ("5 s", "-5", "5.", "1e3", "five"):
        with pytest.raises(ValueError, match=r"invalid duration|must be positive"):
            parse_duration(bad)


def test_a_warning_past_its_critical_is_refused_where_it_is_written() -> None:
    # warning: 2s, critical: 1s: every slow run is CRITICAL first, the WARNING never shows
    for text, where in (
        ("probes: [{name: t, type: tcp, host: h, port: 1, thresholds: {duration: {warning: 2s, critical: 1s}}}]", 1),
        (
            "probes:\n  - name: t\n    type: http\n    url: https://x/\n    thresholds:\n"
            "      cert_expiry_days: {warning: '< 7', critical: '< 30'}\n",
            6,
        ),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(text, env={})
        (problem,) = info.value.problems
        assert "probe 't': thresholds." in problem and "would never show" in problem, problem
        assert info.value.locations[0] is not None and info.value.locations[0][0] == where, info.value.locations
    # the right way round, and equal bounds, and mixed directions are fine
    parse_config(
        "probes: [{name: t, type: tcp, host: h, port: 1, thresholds: {duration: {warning: 1s, critical: 1s}}}]", env={}
    )
    parse_config(
        "probes: [{name: t, type: http, url: 'https://x/', thresholds: {cert_expiry_days: {warning: '< 30', critical: '< 7'}}}]",
        env={},
    )


def test_a_default_timeout_past_the_default_interval_is_one_problem_at_the_defaults() -> None:
    text = (
        "defaults: {timeout: 60s}\n"
        "probes:\n"
        "  - {name: a, type: tcp, host: h, port: 1}\n"
        "  - {name: b, type: tcp, host: h, port: 1}\n"
        "  - {name: c, type: tcp, host: h, port: 1, interval: 45s}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    found = {
        problem: where[0] if where else None
        for problem, where in zip(info.value.problems, info.value.locations, strict=True)
    }
    assert found == {
        "defaults: timeout: 60s must be shorter than interval (30s) (the probes that set neither: a, b)": 1,
        "probe 'c': timeout: 60s must be shorter than interval (45s)": 5,
    }, found


def test_a_misspelt_value_of_a_known_set_gets_a_did_you_mean() -> None:
    for text, hint in (
        ("probes: [{name: d, type: dns, server: 127.0.0.1, query_name: x, transport_protocol: tpc}]", "'tcp'"),
        ("probes: [{name: p, type: postgres, dsn: 'postgresql://x@h/db', sslmode: requre}]", "'require'"),
        ("probes: [{name: d, type: dns, server: 127.0.0.1, query_name: x, query_type: AAA}]", "'AAAA'"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(text, env={})
        (problem,) = info.value.problems
        assert f"(did you mean {hint}?)" in problem, problem
