"""The daemon follows a file_sd file as Prometheus does: a target added to it becomes a probe
with the target's labels on its series, a target removed stops and leaves /metrics, with no
restart and no signal; a half-written or over-long file changes nothing."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port


def publish(path: Path, targets: list[str], team: str = "shop") -> None:
    """As a discovery tool writes it: aside, then renamed into place."""
    fresh = path.with_suffix(".tmp")
    fresh.write_text(json.dumps([{"targets": targets, "labels": {"team": team}}]))
    fresh.replace(path)


def names(agent: AgentProcess) -> set[str]:
    return {p["name"] for p in agent.health()[1]["probes"]}


def test_targets_come_and_go_with_the_file(tmp_path: Path) -> None:
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    ports = [s.getsockname()[1] for s in listeners]
    sd = tmp_path / "web.json"
    publish(sd, [f"127.0.0.1:{ports[0]}"])
    config = tmp_path / "probes.yaml"
    config.write_text(
        "target_groups:\n"
        "  - name: web\n"
        "    file_sd_configs: [{files: [web.json]}]\n"
        "    max_targets: 2\n"
        "    probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}',"
        " labels: {team: '{{target.labels.team}}'}, interval: 1s, timeout: 500ms}\n"
    )
    agent = AgentProcess(config, args=["--watch-config", "200ms"]).start()
    try:
        first, second = f"web-127.0.0.1:{ports[0]}", f"web-127.0.0.1:{ports[1]}"
        agent.wait_for(lambda: names(agent) == {first}, what="the first target")
        publish(sd, [f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"])
        agent.wait_for(lambda: names(agent) == {first, second}, timeout=10, what="the added target")
        agent.wait_for(
            lambda: f'probe_success{{probe="{second}",team="shop",type="tcp"}} 1.0' in agent.get("/metrics")[1],
            what="the new probe's series with the target's label",
        )
        # more targets than max_targets: refused, the running probes stay
        publish(sd, [f"127.0.0.1:{p}" for p in (*ports, free_port())])
        agent.wait_for(
            lambda: "probe_agent_config_last_reload_successful 0.0" in agent.get("/metrics")[1],
            timeout=10,
            what="the over-long file refused",
        )
        assert names(agent) == {first, second}
        publish(sd, [f"127.0.0.1:{ports[1]}"])
        agent.wait_for(lambda: names(agent) == {second}, timeout=10, what="the removed target gone")
        assert f'probe="{first}"' not in agent.get("/metrics")[1]
    finally:
        agent.stop()
        for listener in listeners:
            listener.close()
    assert "over max_targets 2" in agent.logs()
