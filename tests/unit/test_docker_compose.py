"""docker-compose.test.yml cannot run here (no Docker engine); check it as the data it is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from probe_agent.config.loader import load_config
from probe_agent.probes import REGISTRY
from probe_agent.probes.base import ProbeConfig
from probe_agent.probes.types.nats_jetstream import NatsJetstreamConfig

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.test.yml").read_text())
SERVICES = COMPOSE["services"]

# services that are not servers the agent probes: itself, the one-shot set-up, the CI gate
NOT_PROBED = {"agent", "nats-setup", "gate"}


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def agent_probes() -> list[ProbeConfig]:
    volume = SERVICES["agent"]["volumes"][0].split(":")[0]
    return load_config(ROOT / volume, env={"NEO4J_PASSWORD": "x"}).probes


def test_every_service_has_a_healthcheck_so_up_wait_works() -> None:
    for name, service in SERVICES.items():
        if service.get("restart") == "no" or service.get("profiles"):
            continue  # a one-shot is waited for by its exit, not its health
        assert service.get("healthcheck", {}).get("test"), f"service {name} has no healthcheck"


def endpoints(probe) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """Every (host, port) a probe talks to, whatever its type calls the fields."""
    urls = [getattr(probe, f, None) for f in ("url", "uri", "base_url", "monitor_url")] + list(
        getattr(probe, "servers", [])
    )
    found = [(urlsplit(u).hostname, urlsplit(u).port) for u in urls if u]
    if getattr(probe, "host", None) and getattr(probe, "port", None):
        found.append((probe.host, probe.port))
    return found


def test_agent_probes_every_service_by_name_and_port() -> None:
    probes = agent_probes()
    assert {p.type for p in probes} <= set(REGISTRY)
    probed = set()
    for probe in probes:
        assert endpoints(probe), f"probe {probe.name}: no endpoint found"
        for host, port in endpoints(probe):
            assert host in SERVICES, f"probe {probe.name} targets {host}, which is not a compose service"
            assert port in container_ports(SERVICES[host]), (
                f"probe {probe.name}: port {port} is not published by {host}"
            )
            probed.add(host)
    assert probed == set(SERVICES) - NOT_PROBED


def test_agent_waits_for_every_service_and_is_built_from_the_repo_once() -> None:
    agent = SERVICES["agent"]
    assert agent["build"] == "." and (ROOT / "Dockerfile").exists()
    assert set(agent["depends_on"]) == set(SERVICES) - {"agent", "gate"}
    for name, dependency in agent["depends_on"].items():
        one_shot = SERVICES[name].get("restart") == "no"
        # a one-shot adopted by a long-running service: `up --wait` then accepts its exit 0
        assert dependency["condition"] == ("service_completed_successfully" if one_shot else "service_healthy")
    built = [name for name, service in SERVICES.items() if "build" in service]
    assert built == ["agent"], "the project's image is built once; the others use it by name"
    for name, service in SERVICES.items():
        if service.get("image") == agent["image"] and name != "agent":
            assert service["pull_policy"] == "never", f"{name}: the image is built here, never pulled"


def test_images_are_pinned_to_a_release() -> None:
    for name, service in SERVICES.items():
        if "build" in service or service.get("pull_policy") == "never":
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        # PostgreSQL numbers its releases MAJOR.MINOR since 10; the others MAJOR.MINOR.PATCH
        release = r"\d+\.\d+" if repository == "postgres" else r"\d+\.\d+\.\d+"
        assert re.fullmatch(release + r"(-[a-z]+)?", tag), f"{name}: {image} floats; pin the full version"


def test_the_compose_probe_set_is_green_on_a_fresh_up() -> None:
    """Every stream a nats_jetstream probe watches is created by nats-setup, which runs
    before the agent; nothing else the probes need is missing on a fresh `up`."""
    setup = " ".join(SERVICES["nats-setup"]["command"])
    for probe in agent_probes():
        if isinstance(probe, NatsJetstreamConfig):
            assert f"stream add {probe.stream} " in setup and f"stream info {probe.stream} " in setup


def test_gate_waits_for_the_agents_probes() -> None:
    gate, agent = SERVICES["gate"], SERVICES["agent"]
    command = gate["command"]
    assert command[0] == "wait" and "--timeout" in command
    assert command[command.index("-c") + 1] == agent["command"][agent["command"].index("-c") + 1]
    assert gate["volumes"] == agent["volumes"] and gate["environment"] == agent["environment"]
    assert gate["profiles"] == ["gate"]  # `up` does not start it; `run --rm gate` does
    assert gate["depends_on"] == {"agent": {"condition": "service_healthy"}}


def test_published_ports_are_where_the_suite_looks() -> None:
    from tests.integration.conftest import SHARED

    for kind, port in SHARED.items():
        service = SERVICES[kind]
        assert f"127.0.0.1:{port}:{port}" in service["ports"], f"{kind} must publish {port} on loopback"
