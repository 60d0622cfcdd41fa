"""blackbox_exporter compatibility: the real blackbox_exporter (Debian's
prometheus-blackbox-exporter) and the agent probe the same targets (plain, TLS, an expired
certificate, a 500, a server that never answers), one real Prometheus scrapes both, and
queries typical of blackbox_exporter dashboards and alerts must find the same series shapes
(names, label names and values) and agreeing values on both."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.agent import AgentProcess
from tests.helpers.certs import make_cert
from tests.helpers.netfaults import BlackHole, free_port
from tests.helpers.processes import http_server_process, wait_port
from tests.helpers.prometheus import Prometheus, prometheus

BBE = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
pytestmark = pytest.mark.service("blackbox_exporter")

# What the agent and blackbox_exporter must agree on: the query, and how values compare.
EXACT, PRESENT, BOTH_POSITIVE = "exact", "present", "both positive"
TCP_QUERIES = [
    ("probe_success", EXACT),
    ("probe_duration_seconds", BOTH_POSITIVE),
    ("probe_ip_protocol", EXACT),
    ("probe_ip_addr_hash", EXACT),
    ("probe_dns_lookup_time_seconds", PRESENT),
    ("probe_failed_due_to_regex", EXACT),
    ("probe_ssl_earliest_cert_expiry", EXACT),
    ("probe_ssl_last_chain_expiry_timestamp_seconds", EXACT),
    ("probe_tls_version_info", EXACT),
    ("probe_ssl_last_chain_info", EXACT),
]
QUERIES = [
    ("probe_success", EXACT),
    ("probe_http_status_code", EXACT),
    ("probe_duration_seconds", BOTH_POSITIVE),
    ("probe_http_duration_seconds", PRESENT),  # the five phases, by label
    ("probe_http_ssl", EXACT),
    ("probe_http_version", EXACT),
    ("probe_http_redirects", EXACT),
    ("probe_http_content_length", EXACT),
    ("probe_http_uncompressed_body_length", EXACT),
    ("probe_failed_due_to_regex", EXACT),
    ("probe_ip_protocol", EXACT),
    ("probe_ip_addr_hash", EXACT),
    ("probe_dns_lookup_time_seconds", PRESENT),
    ("probe_ssl_earliest_cert_expiry", EXACT),
    ("probe_ssl_last_chain_expiry_timestamp_seconds", EXACT),
    ("probe_tls_version_info", EXACT),
    ("probe_ssl_last_chain_info", EXACT),
    # as alerts and dashboards write them
    ("probe_success == 0", EXACT),
    ("probe_ssl_earliest_cert_expiry - time() < 86400 * 14", PRESENT),
    ("probe_http_status_code >= 500", EXACT),
    ("sum by (phase) (probe_http_duration_seconds) >= 0", PRESENT),
]
# Labels only one side has: where it runs (job, instance) and the agent's own (probe, type).
OWN_LABELS = {"job", "instance", "probe", "type", "__name__"}


@contextmanager
def blackbox_exporter(tmp_path: Path, ca_file: Path) -> Iterator[int]:
    if BBE is None:
        pytest.skip("blackbox_exporter not installed (Debian package prometheus-blackbox-exporter)")
    config = {
        "modules": {
            "http_2xx": {
                "prober": "http",
                "timeout": "2s",
                "http": {"preferred_ip_protocol": "ip4", "tls_config": {"ca_file": str(ca_file)}},
            },
            "tcp_connect": {"prober": "tcp", "timeout": "2s", "tcp": {"preferred_ip_protocol": "ip4"}},
            "tcp_tls": {
                "prober": "tcp",
                "timeout": "2s",
                "tcp": {"preferred_ip_protocol": "ip4", "tls": True, "tls_config": {"ca_file": str(ca_file)}},
            },
        }
    }
    (tmp_path / "blackbox.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [BBE, f"--config.file={tmp_path / 'blackbox.yml'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def target(cert: tuple[Path, Path] | None = None) -> Any:
    port = free_port()
    argv = [sys.executable, "-m", "tests.helpers.target_server", str(port), *(map(str, cert) if cert else ())]
    return http_server_process(argv, port)


def labelled(label: str, value: str, metric: dict[str, str]) -> bool:
    return metric.get(label) == value


def values(
    prom: Prometheus, query: str, side: Callable[[dict[str, str]], bool]
) -> dict[frozenset[tuple[str, str]], float]:
    """One side's series of an instant query: their labels (less where they ran) and values."""
    series = prom.api("/api/v1/query?" + urllib.parse.urlencode({"query": query}))["result"]
    return {
        frozenset((k, v) for k, v in s["metric"].items() if k not in OWN_LABELS): float(s["value"][1])
        for s in series
        if side(s["metric"])
    }


def compat_targets(
    stack: ExitStack, tmp_path: Path, blackhole: BlackHole
) -> tuple[Any, dict[str, tuple[str, str, dict[str, Any]]]]:
    """The test CA and the targets both sides probe: name -> (blackbox_exporter module, its
    target, the agent's probe)."""
    ca = make_cert(tmp_path, "server")
    expired = make_cert(tmp_path, "expired", expired=True)
    plain = stack.enter_context(target())
    tls = stack.enter_context(target((ca.cert, ca.key))).replace("http://", "https://")
    stale = stack.enter_context(target((expired.cert, expired.key))).replace("http://", "https://")
    http = {"expect_status": ["2xx"], "ca_file": str(ca.cert)}
    tcp_port = int(tls.rsplit(":", 1)[1])
    targets: dict[str, tuple[str, str, dict[str, Any]]] = {
        "plain": ("http_2xx", f"{plain}/", {"type": "http", "url": f"{plain}/", **http}),
        "error": ("http_2xx", f"{plain}/500", {"type": "http", "url": f"{plain}/500", **http}),
        "tls": ("http_2xx", f"{tls}/", {"type": "http", "url": f"{tls}/", **http}),
        "expired": ("http_2xx", f"{stale}/", {"type": "http", "url": f"{stale}/", **http}),
        "hung": (
            "http_2xx",
            f"http://127.0.0.1:{blackhole.port}/",
            {"type": "http", "url": f"http://127.0.0.1:{blackhole.port}/", **http},
        ),
        "tcp": ("tcp_connect", f"127.0.0.1:{tcp_port}", {"type": "tcp", "host": "127.0.0.1", "port": tcp_port}),
        "tcp-tls": (
            "tcp_tls",
            f"localhost:{tcp_port}",
            {"type": "tcp", "host": "localhost", "port": tcp_port, "tls": True, "ca_file": str(ca.cert)},
        ),
        "tcp-refused": ("tcp_connect", f"127.0.0.1:{free_port()}", {"type": "tcp", "host": "127.0.0.1", "port": 1}),
    }
    targets["tcp-refused"][2]["port"] = int(targets["tcp-refused"][1].rsplit(":", 1)[1])
    return ca, targets


def compare(
    prom: Prometheus,
    targets: dict[str, tuple[str, str, dict[str, Any]]],
    theirs: Callable[[str], Callable[[dict[str, str]], bool]],
    ours: Callable[[str], Callable[[dict[str, str]], bool]],
) -> list[str]:
    """Every query of each target on both sides: the differences in series or values."""
    differences = []
    compared = 0
    for name, (module, _where, _probe) in targets.items():
        for query, how in QUERIES if module.startswith("http") else TCP_QUERIES:
            bbe = values(prom, query, theirs(name))
            mine_all = values(prom, query, ours(name))
            compared += 1
            if set(bbe) != set(mine_all):
                differences.append(
                    f"{query} [{name}]: series differ: blackbox_exporter {sorted(map(sorted, bbe))}, agent {sorted(map(sorted, mine_all))}"
                )
                continue
            for labels, value in bbe.items():
                mine = mine_all[labels]
                if how == EXACT and value != mine:
                    differences.append(f"{query} [{name}] {dict(labels)}: blackbox_exporter {value}, agent {mine}")
                if how == BOTH_POSITIVE and not (value > 0 and mine > 0):
                    differences.append(f"{query} [{name}]: blackbox_exporter {value}, agent {mine}")
    print(f"compared {compared} query results over {len(targets)} targets")
    return differences


def test_agent_and_blackbox_exporter_agree(tmp_path: Path, blackhole: BlackHole) -> None:
    with ExitStack() as stack:
        ca, targets = compat_targets(stack, tmp_path, blackhole)
        bbe_port = stack.enter_context(blackbox_exporter(tmp_path, ca.cert))
        # blackbox_exporter trusts only the test CA; the expired certificate is its own issuer
        probes = [
            {"name": name, "interval": "3s", "timeout": "2s", **probe} for name, (_m, _t, probe) in targets.items()
        ]
        (tmp_path / "probes.yaml").write_text(yaml.safe_dump({"probes": probes}))
        agent = AgentProcess(tmp_path / "probes.yaml").start()
        stack.callback(agent.stop)
        scrape = (
            "".join(
                f"  - job_name: bbe-{name}\n    scrape_interval: 3s\n    scrape_timeout: 3s\n    metrics_path: /probe\n"
                f"    params: {{module: [{module}], target: ['{where}']}}\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{bbe_port}']}}]\n"
                for name, (module, where, _p) in targets.items()
            )
            + f"  - job_name: agent\n    static_configs: [{{targets: ['127.0.0.1:{agent.port}']}}]\n"
        )
        prom = stack.enter_context(prometheus(tmp_path, scrape))
        # every target has been probed by both (the hung one takes its 2 s timeout)
        for name in targets:
            prom.query_until(f'probe_success{{job="bbe-{name}"}}', timeout=45)
            prom.query_until(f'probe_success{{probe="{name}"}}', timeout=45)
        time.sleep(4)  # a full round of both after the first

        differences = compare(
            prom,
            targets,
            lambda name: partial(labelled, "job", f"bbe-{name}"),
            lambda name: partial(labelled, "probe", name),
        )
        assert not differences, "\n".join(differences)


def test_the_probe_endpoint_is_a_drop_in_for_blackbox_exporter(tmp_path: Path, blackhole: BlackHole) -> None:
    # The same Prometheus scrape config, with the usual __param_target relabelling, pointed once at
    # blackbox_exporter and once at the agent's /probe: the same series, the same values.
    with ExitStack() as stack:
        ca, targets = compat_targets(stack, tmp_path, blackhole)
        bbe_port = stack.enter_context(blackbox_exporter(tmp_path, ca.cert))
        timeout = {"timeout": "2s"}
        modules = {
            "http_2xx": {
                "type": "http",
                "url": "{{target.url}}",
                "expect_status": ["2xx"],
                "ca_file": str(ca.cert),
                **timeout,
            },
            "tcp_connect": {"type": "tcp", "host": "{{target.host}}", "port": "{{target.port}}", **timeout},
            "tcp_tls": {
                "type": "tcp",
                "host": "{{target.host}}",
                "port": "{{target.port}}",
                "tls": True,
                "ca_file": str(ca.cert),
                **timeout,
            },
        }
        config = {
            "probe_endpoint": {
                "modules": {name: {"targets": ["127.0.0.0/8", "localhost"], "probe": p} for name, p in modules.items()}
            }
        }
        (tmp_path / "probes.yaml").write_text(yaml.safe_dump(config))
        agent = AgentProcess(tmp_path / "probes.yaml", args=["--allow-empty"]).start()
        stack.callback(agent.stop)

        def job(side: str, port: int, module: str) -> str:
            where = [t for m, t, _p in targets.values() if m == module]
            return (
                f"  - job_name: {side}-{module}\n    scrape_interval: 3s\n    scrape_timeout: 3s\n"
                f"    metrics_path: /probe\n    params: {{module: [{module}]}}\n"
                f"    static_configs: [{{targets: {where!r}}}]\n"
                "    relabel_configs:\n"
                "      - {source_labels: [__address__], target_label: __param_target}\n"
                "      - {source_labels: [__param_target], target_label: instance}\n"
                f"      - {{target_label: __address__, replacement: '127.0.0.1:{port}'}}\n"
            )

        scrape = "".join(
            job(side, port, module) for side, port in (("bbe", bbe_port), ("agent", agent.port)) for module in modules
        )
        prom = stack.enter_context(prometheus(tmp_path, scrape))
        for side in ("bbe", "agent"):
            for _module, where, _p in targets.values():
                prom.query_until(f'probe_success{{job=~"{side}-.*",instance="{where}"}}', timeout=45)
        time.sleep(4)

        def side_of(side: str) -> Callable[[str], Callable[[dict[str, str]], bool]]:
            def wanted(name: str) -> Callable[[dict[str, str]], bool]:
                module, where, _p = targets[name]
                return lambda m: m.get("job") == f"{side}-{module}" and m.get("instance") == where

            return wanted

        differences = compare(prom, targets, side_of("bbe"), side_of("agent"))
        assert not differences, "\n".join(differences)
        # not an open proxy: a target outside the module's list is refused, and counted
        code, body = agent.get("/probe?module=tcp_connect&target=192.0.2.1:80")
        assert code == 403 and "not in its targets" in body
        assert (
            'probe_agent_probe_endpoint_requests_total{module="tcp_connect",outcome="forbidden"} 1.0'
            in agent.get("/metrics")[1]
        )
