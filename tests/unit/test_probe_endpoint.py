"""probe_endpoint: the modules of GET /probe, validated at load; what a module may probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe_agent.config.loader import load_config, probe_from_template
from probe_agent.core.errors import ConfigError
from probe_agent.schema.probe_endpoint import ProbeModule, target_parts


def module(*targets: str) -> ProbeModule:
    return ProbeModule(targets=list(targets), probe={"type": "tcp", "host": "{{target.host}}"})


@pytest.mark.parametrize(
    ("rules", "target", "allowed"),
    [
        (["10.0.0.0/8"], "10.1.2.3:80", True),
        (["10.0.0.0/8"], "https://10.1.2.3/healthz", True),
        (["10.0.0.0/8"], "11.0.0.1:80", False),
        (["10.0.0.0/8"], "ten.example:80", False),  # a host name is not resolved to match a CIDR
        (["::1/128"], "[::1]:9000", True),
        (["127.0.0.1"], "127.0.0.1:22", True),
        (["*.svc.cluster.local"], "web.shop.svc.cluster.local:8080", True),
        (["*.svc.cluster.local"], "https://WEB.shop.svc.cluster.local/", True),
        (["*.svc.cluster.local"], "svc.cluster.local.evil.example:80", False),
        (["*.svc.cluster.local"], "10.0.0.1:80", False),  # a glob names hosts, not addresses
        (["discovered"], "10.9.9.9:80", True),
        (["discovered"], "http://10.9.9.9:80/x", True),
        (["discovered"], "10.9.9.9:81", False),
        (["10.0.0.0/8"], "http://[bad", False),
        (["10.0.0.0/8"], "", False),
    ],
)
def test_what_a_module_may_probe(rules: list[str], target: str, allowed: bool) -> None:
    assert module(*rules).allows(target, frozenset({"10.9.9.9:80"})) is allowed


def test_target_parts_as_blackbox_exporter_reads_a_target() -> None:
    assert target_parts("example.com") == ("example.com", "", "http://example.com")
    assert target_parts("example.com:8080") == ("example.com", "8080", "http://example.com:8080")
    assert target_parts("https://example.com/x") == ("example.com", "", "https://example.com/x")
    assert target_parts("[::1]:53") == ("::1", "53", "http://[::1]:53")


def test_a_module_is_validated_at_load_with_the_field_named(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "probe_endpoint:\n  modules:\n"
        "    http_2xx: {targets: [not a cidr], probe: {type: http, url: '{{target.adress}}'}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, allow_empty=True)
    text = "\n".join(info.value.problems)
    assert "probe_endpoint: modules.http_2xx.targets" in text and "'not a cidr' is not a CIDR" in text, text
    assert "unknown placeholder {{target.adress}}" in text, text


def test_a_modules_template_keeps_its_variables_until_a_run_and_a_target_reaches_none(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "probe_endpoint:\n  modules:\n"
        "    api: {targets: [127.0.0.0/8], probe: {type: http, url: '{{target.url}}', headers: {X-Token: '${TOKEN}'}}}\n"
    )
    config = load_config(path, env={"TOKEN": "t0k3n"}, allow_empty=True)
    assert config.probe_endpoint is not None
    template = config.probe_endpoint.modules["api"].probe
    assert template["headers"] == {"X-Token": "${TOKEN}"}  # expanded per run, with its secret
    from probe_agent.config.discovery import fill_template

    entry = fill_template({**template, "name": "probe-endpoint-api"}, "api", "127.0.0.1:1/${TOKEN}", {})
    probe, secrets = probe_from_template(entry, {"TOKEN": "t0k3n"})
    assert probe.headers == {"X-Token": "t0k3n"} and "t0k3n" in secrets  # type: ignore[attr-defined]
    assert probe.url == "http://127.0.0.1:1/${TOKEN}"  # type: ignore[attr-defined]
