"""docker-compose.test.yml cannot run here (no Docker engine); check it as the data it is."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from probe_agent.config import load_config
from probe_agent.probes import REGISTRY

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.test.yml").read_text())
SERVICES = COMPOSE["services"]

def container_ports(service: dict) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def agent_probes():  # type: ignore[no-untyped-def]
    volume = SERVICES["agent"]["volumes"][0].split(":")[0]
    return load_config(ROOT / volume, env={"NEO4J_PASSWORD": "x"}).probes


def test_every_service_has_a_healthcheck_so_up_wait_works() -> None:
    for name, service in SERVICES.items():
        assert service.get("healthcheck", {}).get("test"), f"service {name} has no healthcheck"


def endpoints(probe) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """Every (host, port) a probe talks to, whatever its type calls the fields."""
    urls = [getattr(probe, f, None) for f in ("url", "uri", "base_url", "monitor_url")] + list(getattr(probe, "servers", []))
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
            assert port in container_ports(SERVICES[host]), f"probe {probe.name}: port {port} is not published by {host}"
            probed.add(host)
    assert probed == set(SERVICES) - {"agent"}


def test_agent_waits_for_healthy_services_and_is_built_from_the_repo() -> None:
    agent = SERVICES["agent"]
    assert agent["build"] == "."
    assert set(agent["depends_on"]) == set(SERVICES) - {"agent"}
    assert all(v["condition"] == "service_healthy" for v in agent["depends_on"].values())
    assert (ROOT / "Dockerfile").exists()


def test_published_ports_are_where_the_suite_looks() -> None:
    from tests.integration.conftest import SHARED

    for kind, port in SHARED.items():
        service = SERVICES[kind]
        assert f"127.0.0.1:{port}:{port}" in service["ports"], f"{kind} must publish {port} on loopback"
