"""Every probe type is one self-describing module: what it declares is what the loader, /metrics
and the docs use. These checks run over the registry, so a new type's module is all they need."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import yaml

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import ConfigError
from probe_agent.probes import PROBE_TYPES, REGISTRY
from probe_agent.probes.base import Probe, ProbeConfig

DOCS = Path(__file__).parents[2] / "docs"
TYPES_PAGE = (DOCS / "probe-types.md").read_text()
METRICS_PAGE = (DOCS / "metrics.md").read_text()
TYPES = list(REGISTRY)
# docs/probe-types.md documents the built-in types; an installed one documents itself (`probe-agent types`)
BUILTIN_TYPES = [name for name in TYPES if REGISTRY.builtin(name)]


def readme_section(probe_type: str) -> str:
    """The section of docs/probe-types.md whose heading names this type in backticks."""
    for match in re.finditer(r"^## (.*)$", TYPES_PAGE, re.M):
        if f"`{probe_type}`" in match.group(1):
            end = TYPES_PAGE.find("\n## ", match.end())
            return TYPES_PAGE[match.end() : end if end != -1 else len(TYPES_PAGE)]
    raise AssertionError(f"docs/probe-types.md has no section heading naming `{probe_type}`")


def as_config(example: str) -> str:
    return "probes:\n" + "".join(f"  {line}\n" for line in example.splitlines())


def test_every_module_of_the_types_package_is_registered() -> None:
    # a module under probes/types/ that the registry does not list would be a type nobody can use
    modules = {p.stem for p in (Path(__file__).parents[2] / "probe_agent" / "probes" / "types").glob("*.py")}
    assert {name for name in PROBE_TYPES if REGISTRY.builtin(name)} == modules - {"__init__"}
    assert "http" in REGISTRY and "base" not in REGISTRY and "nope" not in REGISTRY
    with pytest.raises(KeyError):
        REGISTRY["nope"]


@pytest.mark.parametrize("probe_type", TYPES)
def test_type_module_declares_itself(probe_type: str) -> None:
    cls = REGISTRY[probe_type]
    assert issubclass(cls, Probe) and issubclass(cls.config_model, ProbeConfig)
    # the model's `type` field accepts exactly the module's name
    assert typing.get_args(cls.config_model.model_fields["type"].annotation) == (probe_type,)
    assert cls.__doc__ or __import__(cls.__module__).__doc__, "say what the type checks"
    for name, spec in cls.values.items():
        assert re.fullmatch(r"[a-z_]+", name), name
        assert spec.help.strip(), f"{probe_type}.{name}: help text"
        assert spec.metric is None or spec.metric.startswith("probe_"), spec.metric
    assert not cls.phase_metric or cls.phase_metric.endswith("_seconds")


@pytest.mark.parametrize("probe_type", TYPES)
def test_example_is_valid(probe_type: str) -> None:
    example = REGISTRY[probe_type].example
    assert example, f"{probe_type}: set `example` on the probe class"
    config = parse_config(as_config(example), env={})
    assert [p.type for p in config.probes] == [probe_type]


@pytest.mark.parametrize("probe_type", BUILTIN_TYPES)
def test_the_readme_shows_the_example(probe_type: str) -> None:
    example = REGISTRY[probe_type].example
    assert example in readme_section(probe_type), (
        f"docs/probe-types.md: the section of `{probe_type}` should show its example"
    )


@pytest.mark.parametrize("probe_type", BUILTIN_TYPES)
def test_every_metric_of_the_type_is_documented(probe_type: str) -> None:
    cls = REGISTRY[probe_type]
    metrics = {spec.metric for spec in cls.values.values() if spec.metric} | ({cls.phase_metric} - {""})
    documented = set(re.findall(r"`(probe_[a-z0-9_]+)", METRICS_PAGE))
    assert metrics <= documented, f"not in docs/metrics.md: {sorted(metrics - documented)}"


@pytest.mark.parametrize("probe_type", TYPES)
def test_default_thresholds_name_known_values_and_yield_to_the_probe(probe_type: str) -> None:
    cls = REGISTRY[probe_type]
    raw = yaml.safe_load(cls.example)[0]
    known = {"duration", *cls.values}
    for key in cls.config_model.default_thresholds(raw):
        assert key in known, f"{probe_type}: default threshold on unknown value {key}"
        # the probe's own limit on the same key wins over the type's default
        own = {**raw, "thresholds": {key: {"warning": "> 12345"}}}
        probe = parse_config(yaml.safe_dump({"probes": [own]}), env={}).probes[0]
        assert str(probe.thresholds[key].warning) == "> 12345"
        assert probe.thresholds[key].critical is None


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("probes:\n  - {name: x, type: nope}\n", env={})
    assert f"known: {', '.join(sorted(PROBE_TYPES))}" in str(info.value.problems)


@pytest.mark.parametrize("probe_type", TYPES)
def test_types_command_documents_every_type(probe_type: str) -> None:
    # an installed type's reference is `probe-agent types`: its own fields, metrics and example
    from probe_agent.outputs.types import describe, render_text

    cls = REGISTRY[probe_type]
    entry = describe(probe_type, cls, REGISTRY.origin(probe_type))
    own = set(cls.config_model.model_fields) - set(ProbeConfig.model_fields)
    assert {f["name"] for f in entry["fields"]} == own
    assert entry["example"] == cls.example and entry["summary"]
    text = render_text([entry])
    assert all(f"    {name}: " in text for name in own)


class _NotAProbe:
    pass


def test_an_entry_point_that_is_no_probe_type_is_refused_by_name() -> None:
    from probe_agent.probes.registry import _as_probe_class

    with pytest.raises(TypeError, match=r"'smtp' .*acme.smtp.* is not a probe_agent Probe subclass"):
        _as_probe_class("smtp", _NotAProbe, "entry point acme.smtp:X")
    # a type whose config says another name would load under one and validate as the other
    with pytest.raises(TypeError, match=r"config_model's `type` must be Literal\['smtp'\]"):
        _as_probe_class("smtp", REGISTRY["tcp"], "entry point acme.smtp:X")
    assert _as_probe_class("tcp", REGISTRY["tcp"], "x") is REGISTRY["tcp"]


def test_an_entry_point_may_not_replace_a_built_in_type(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from importlib.metadata import EntryPoint

    from probe_agent.probes import registry

    points = [
        EntryPoint("http", "evil:Probe", registry.ENTRY_POINT_GROUP),
        EntryPoint("smtp", "acme.smtp:SmtpProbe", registry.ENTRY_POINT_GROUP),
        EntryPoint("smtp", "other.smtp:SmtpProbe", registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: points if group == registry.ENTRY_POINT_GROUP else [])
    found = registry._declared()
    assert set(found) == {"smtp"} and found["smtp"].value == "acme.smtp:SmtpProbe"
    assert "ignored probe type 'http' from entry point evil:Probe: a built-in type has that name" in caplog.text
    assert (
        "ignored probe type 'smtp' from entry point other.smtp:SmtpProbe: acme.smtp:SmtpProbe declares it too"
        in caplog.text
    )


# What each built-in type's integration tests probe, on a fresh machine: a real server that
# scripts/bootstrap.sh --test installs and scripts/services.sh starts (and its test skips only
# where that is missing: a failure in CI), or a peer the tests serve themselves on loopback.
REAL_SERVERS = {  # type -> (Debian package in bootstrap.sh, how services.sh starts it)
    "postgres": ("postgresql", "pg_ctlcluster"),
    "mysql": ("mariadb-server", "mariadbd"),
    "redis": ("redis-server", "redis-server --daemonize"),
    "nats": ("nats-server", "nats-server"),
    "nats_jetstream": ("nats-server", "nats-server"),
    "amqp": ("rabbitmq-server", "rabbitmq-server"),
}
SERVED_BY_THE_TESTS = {  # type -> what plays the server (a real one where it can run here)
    "http": "aiohttp servers and the demo shop",
    "synthetic": "the demo shop",
    "tcp": "asyncio listeners",
    "dns": "a private dnsmasq (bootstrap.sh installs dnsmasq-base)",
    "grpc": "a grpcio health server",
    "neo4j": "tests/helpers/bolt.py, a Bolt-protocol peer (no Neo4j can run here; a real one with NEO4J_URI)",
}


@pytest.mark.parametrize("probe_type", BUILTIN_TYPES)
def test_every_built_in_type_is_tested_against_a_server_a_fresh_machine_gets(probe_type: str) -> None:
    root = Path(__file__).parents[2]
    assert probe_type in REAL_SERVERS or probe_type in SERVED_BY_THE_TESTS, (
        f"{probe_type}: say what its integration tests probe (REAL_SERVERS: install it in scripts/bootstrap.sh"
        " and start it in scripts/services.sh; or SERVED_BY_THE_TESTS)"
    )
    if probe_type in REAL_SERVERS:
        package, start = REAL_SERVERS[probe_type]
        assert package in (root / "scripts" / "bootstrap.sh").read_text(), f"bootstrap.sh does not install {package}"
        assert start in (root / "scripts" / "services.sh").read_text(), f"services.sh does not start {package}"
    uses = re.compile(rf"""type["']?\s*[:=]\s*["']?{probe_type}\b""")
    tests = [p for p in (root / "tests" / "integration").glob("test_*.py") if uses.search(p.read_text())]
    assert tests, f"no integration test runs a {probe_type} probe"
