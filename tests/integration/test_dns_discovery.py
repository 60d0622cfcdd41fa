"""dns_sd_configs against a real dnsmasq on a private loopback port (Debian's dnsmasq-base,
installed by scripts/bootstrap.sh --test): SRV and A fan-out as Prometheus's DNS discovery
gives them, a name that does not exist, a server that never answers, and a daemon following a
record set that changes (dnsmasq re-reads its hosts file on SIGHUP)."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe_agent.config.loader import load_config
from probe_agent.core.errors import ConfigError
from tests.helpers.agent import AgentProcess
from tests.helpers.servers import PrivateDnsmasq, have


class RegistryDnsmasq(PrivateDnsmasq):
    """probe.test with SRV records for two web servers and A records from a hosts file."""

    def __init__(self) -> None:
        super().__init__("dns-sd")
        self.hosts = self.dir / "hosts"

    def start(self, addresses: list[str]) -> RegistryDnsmasq:
        self.publish(addresses)
        self.start_with(
            f"--addn-hosts={self.hosts}",
            "--srv-host=_http._tcp.shop.probe.test,web1.probe.test,8080,0,10",
            "--srv-host=_http._tcp.shop.probe.test,web2.probe.test,8081,0,10",
            "--host-record=web1.probe.test,127.0.0.21",
            "--host-record=web2.probe.test,127.0.0.22",
        )
        return self

    def publish(self, addresses: list[str]) -> None:
        """The A records of api.probe.test; a running dnsmasq reads them again on SIGHUP."""
        self.hosts.write_text("".join(f"{address} api.probe.test\n" for address in addresses))
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def registry() -> Iterator[RegistryDnsmasq]:
    if not have("dnsmasq"):
        pytest.skip("dnsmasq not installed (Debian package dnsmasq-base; scripts/bootstrap.sh --test)")
    server = RegistryDnsmasq().start(["127.0.0.31", "127.0.0.32"])
    yield server
    server.cleanup()


def group(
    sd: str, probe: str = "{type: tcp, host: '{{target.host}}', port: '{{target.port}}'}", extra: str = ""
) -> str:
    return f"target_groups:\n  - name: reg\n    dns_sd_configs: [{sd}]\n{extra}    probe: {probe}\n"


def test_srv_records_give_their_hosts_and_ports_with_prometheus_meta_labels(
    tmp_path: Path, registry: RegistryDnsmasq
) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        group(
            f"{{names: [_http._tcp.shop.probe.test], type: SRV, server: '127.0.0.1:{registry.port}'}}",
            probe="{type: tcp, host: '{{target.host}}', port: '{{target.port}}', labels: {backend: '{{target.labels.backend}}'}}",
            extra="    relabel_configs:\n"
            "      - {source_labels: [__meta_dns_srv_record_target], regex: '([^.]+)\\..*', target_label: backend}\n",
        )
    )
    config = load_config(path, env={})
    found = {(p.name, p.host, p.port, p.labels["backend"]) for p in config.probes}  # type: ignore[attr-defined]
    assert found == {
        ("reg-web1.probe.test:8080", "web1.probe.test", 8080, "web1"),
        ("reg-web2.probe.test:8081", "web2.probe.test", 8081, "web2"),
    }


def test_a_records_fan_out_with_the_port_and_a_missing_name_finds_nothing(
    tmp_path: Path, registry: RegistryDnsmasq
) -> None:
    path = tmp_path / "probes.yaml"
    server = f"server: '127.0.0.1:{registry.port}'"
    path.write_text(group(f"{{names: [api.probe.test, gone.probe.test], type: A, port: 9100, {server}}}"))
    config = load_config(path, env={})
    assert {p.name for p in config.probes} == {"reg-127.0.0.31:9100", "reg-127.0.0.32:9100"}
    [*sources] = config.discovery_sources
    assert sorted(source for _, source in sources) == [
        f"dns A api.probe.test @127.0.0.1:{registry.port}",
        f"dns A gone.probe.test @127.0.0.1:{registry.port}",
    ]


@pytest.mark.parametrize(
    ("sd", "expected"),
    [
        ("{names: [api.probe.test], type: A}", "port: required for type A"),
        ("{names: [api.probe.test], type: SRV, server: ns.probe.test}", "'ns.probe.test' is not an IP address"),
        ("{names: [api.probe.test], type: MX}", "dns_sd_configs[0].type"),
    ],
)
def test_a_lookup_that_cannot_work_is_refused_at_load(tmp_path: Path, sd: str, expected: str) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(group(sd))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    [problem] = info.value.problems
    assert expected in problem and "target_groups[0]" in problem, problem


def test_a_server_that_never_answers_is_a_problem_within_the_timeout(tmp_path: Path) -> None:
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))  # takes every query, answers none
    try:
        path = tmp_path / "probes.yaml"
        path.write_text(
            group(
                f"{{names: [api.probe.test], type: A, port: 80, timeout: 1s, server: '127.0.0.1:{hole.getsockname()[1]}'}}"
            )
        )
        started = time.monotonic()
        with pytest.raises(ConfigError) as info:
            load_config(path, env={})
    finally:
        hole.close()
    [problem] = info.value.problems
    assert "no answer within 1s" in problem and "target_groups[0] (reg)" in problem, problem
    assert time.monotonic() - started < 2.5


def test_the_daemon_follows_a_changing_record_set_and_keeps_it_while_dns_is_down(
    tmp_path: Path, registry: RegistryDnsmasq
) -> None:
    path = tmp_path / "probes.yaml"
    sd = f"{{names: [api.probe.test], type: A, port: 9, refresh_interval: 1s, timeout: 500ms, server: '127.0.0.1:{registry.port}'}}"
    path.write_text(group(sd, probe="{type: tcp, host: '{{target.host}}', port: '{{target.port}}', interval: 1m}"))
    agent = AgentProcess(path, args=["--no-watch-config"]).start()

    def names() -> set[str]:
        return {p["name"] for p in agent.health()[1]["probes"]}

    try:
        agent.wait_for(lambda: names() == {"reg-127.0.0.31:9", "reg-127.0.0.32:9"}, what="the two A records")
        registry.publish(["127.0.0.31", "127.0.0.32", "127.0.0.33"])
        agent.wait_for(lambda: "reg-127.0.0.33:9" in names(), timeout=10, what="the added record")
        registry.stop()  # DNS down: the last answer stays, the failure counted
        agent.wait_for(
            lambda: (
                'probe_agent_discovery_refresh_failures_total{group="reg",source="dns A api.probe.test'
                in agent.get("/metrics")[1]
            ),
            timeout=10,
            what="the failing lookups counted",
        )
        assert names() == {"reg-127.0.0.31:9", "reg-127.0.0.32:9", "reg-127.0.0.33:9"}
    finally:
        agent.stop()
