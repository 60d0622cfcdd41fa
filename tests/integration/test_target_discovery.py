"""The daemon follows a file_sd file as Prometheus does: a target added to it becomes a probe
with the target's labels on its series, a target removed stops and leaves /metrics, with no
restart and no signal; a half-written or over-long file changes nothing."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port
from tests.helpers.prometheus import prometheus
from tests.helpers.stub_http import QuietHandler, stub_http


def publish(path: Path, targets: list[str], team: str = "shop") -> None:
    """As a discovery tool writes it: aside, then renamed into place."""
    fresh = path.with_suffix(".tmp")
    fresh.write_text(json.dumps([{"targets": targets, "labels": {"team": team}}]))
    fresh.replace(path)


def answering(answer: dict[str, tuple[int, bytes]] | Callable[[], tuple[int, bytes]]) -> type[QuietHandler]:
    """An http_sd endpoint answering whatever (status, body) answer["now"] holds at each
    request (or what `answer()` gives)."""

    class Endpoint(QuietHandler):
        def do_GET(self) -> None:
            status, body = answer() if callable(answer) else answer["now"]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Endpoint


def http_sd_group(tmp_path: Path, url: str) -> Path:
    """A target group of tcp probes from the http_sd endpoint at `url`, asked every second."""
    config = tmp_path / "probes.yaml"
    config.write_text(
        "target_groups:\n  - name: api\n"
        f"    http_sd_configs: [{{url: '{url}', refresh_interval: 1s, timeout: 2s}}]\n"
        "    probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}', interval: 1s, timeout: 500ms}\n"
    )
    return config


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
        # more targets than max_targets: the group keeps its running probes, counted and shown
        publish(sd, [f"127.0.0.1:{p}" for p in (*ports, free_port())])
        failure = f'probe_agent_discovery_refresh_failures_total{{group="web",source="{sd}"}} 1.0'
        agent.wait_for(lambda: failure in agent.get("/metrics")[1], timeout=10, what="the over-long file counted")
        assert names(agent) == {first, second}
        metrics = agent.get("/metrics")[1]
        assert 'probe_agent_discovery_targets{group="web"} 2.0' in metrics
        assert f'probe_agent_discovery_source_targets{{group="web",source="{sd}"}} 2.0' in metrics  # the kept ones
        [trouble] = agent.health()[1]["discovery"]
        assert trouble["state"] == "stale" and "over max_targets 2" in trouble["error"], trouble
        publish(sd, [f"127.0.0.1:{ports[1]}"])
        agent.wait_for(lambda: names(agent) == {second}, timeout=10, what="the removed target gone")
        assert f'probe="{first}"' not in agent.get("/metrics")[1]
    finally:
        agent.stop()
        for listener in listeners:
            listener.close()
    assert "over max_targets 2" in agent.logs()


def test_the_same_file_sd_file_gives_prometheus_and_the_agent_the_same_targets(tmp_path: Path) -> None:
    # The format is Prometheus's own: a real Prometheus reads the very file the agent reads, with
    # two groups of labels and a YAML file beside the JSON one.
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "a.json").write_text(
        json.dumps(
            [
                {"targets": ["127.0.0.1:9", "127.0.0.2:9"], "labels": {"team": "shop"}},
                {"targets": ["127.0.0.3:9"], "labels": {"team": "pay"}},
            ]
        )
    )
    (tmp_path / "sd" / "b.yaml").write_text("- targets: ['127.0.0.4:9']\n  labels: {team: search}\n")
    files = f"['{tmp_path}/sd/*.json', '{tmp_path}/sd/*.yaml']"
    config = tmp_path / "probes.yaml"
    config.write_text(
        "target_groups:\n"
        "  - name: web\n"
        f"    file_sd_configs: [{{files: {files}}}]\n"
        "    probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}',"
        " labels: {team: '{{target.labels.team}}'}, interval: 1m, timeout: 500ms}\n"
    )
    agent = AgentProcess(config).start()
    try:
        agent.wait_for(lambda: agent.get("/metrics")[1].count("probe_success{") == 4, what="four discovered probes run")
        _, text = agent.get("/metrics")
    finally:
        agent.stop()
    ours = {
        (line.split('probe="web-')[1].split('"')[0], line.split('team="')[1].split('"')[0])
        for line in text.splitlines()
        if line.startswith("probe_success{")
    }
    with prometheus(tmp_path, f"  - job_name: fleet\n    file_sd_configs: [{{files: {files}}}]\n") as prom:
        deadline = time.monotonic() + 30
        theirs: set[tuple[str, str]] = set()
        while time.monotonic() < deadline and len(theirs) < 4:
            active = prom.api("/api/v1/targets")["activeTargets"]
            theirs = {(t["labels"]["instance"], t["labels"].get("team", "")) for t in active}
            time.sleep(0.5)
    assert (
        ours
        == theirs
        == {
            ("127.0.0.1:9", "shop"),
            ("127.0.0.2:9", "shop"),
            ("127.0.0.3:9", "pay"),
            ("127.0.0.4:9", "search"),
        }
    )


def test_the_daemon_asks_http_sd_again_and_keeps_the_last_good_targets(tmp_path: Path) -> None:
    answer: dict[str, tuple[int, bytes]] = {}

    Endpoint = answering(answer)

    def listing(*ports: int) -> tuple[int, bytes]:
        return 200, json.dumps([{"targets": [f"127.0.0.1:{p}" for p in ports]}]).encode()

    ports = [free_port() for _ in range(4)]
    answer["now"] = listing(*ports[:3])
    with stub_http(Endpoint) as base:
        url = f"{base}/sd"
        config = http_sd_group(tmp_path, url)
        agent = AgentProcess(config, args=["--no-watch-config"]).start()
        try:
            expected = {f"api-127.0.0.1:{p}" for p in ports[:3]}
            agent.wait_for(lambda: names(agent) == expected, what="the three targets")
            answer["now"] = listing(*ports)  # one more
            expected = {f"api-127.0.0.1:{p}" for p in ports}
            agent.wait_for(lambda: names(agent) == expected, timeout=10, what="the added target")
            answer["now"] = (500, b"down")  # failing: the last good targets keep running, counted
            failures = f'probe_agent_discovery_refresh_failures_total{{group="api",source="{url}"}} '
            agent.wait_for(lambda: failures in agent.get("/metrics")[1], timeout=10, what="the failure counted")
            assert names(agent) == expected
            # a list that would drop 3 of 4 probes loads only once a second refresh agrees
            answer["now"] = listing(ports[0])
            agent.wait_for(lambda: names(agent) == {f"api-127.0.0.1:{ports[0]}"}, timeout=15, what="the big drop")
        finally:
            agent.stop()
    assert "answered a list that would remove many probes" in agent.logs()


def test_a_failing_source_holds_neither_its_targets_nor_the_rest_of_the_file(tmp_path: Path) -> None:
    # A file_sd file turned malformed keeps its targets running; a probe added to the probes file
    # meanwhile still loads (a failing source used to refuse the whole reload).
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sd = tmp_path / "web.json"
    publish(sd, [f"127.0.0.1:{port}"])
    template = (
        "target_groups:\n  - name: web\n    file_sd_configs: [{files: [web.json]}]\n"
        "    probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}', interval: 1s, timeout: 500ms}\n"
    )
    config = tmp_path / "probes.yaml"
    config.write_text(template)
    agent = AgentProcess(config, args=["--watch-config", "200ms"]).start()
    try:
        discovered = f"web-127.0.0.1:{port}"
        agent.wait_for(lambda: names(agent) == {discovered}, what="the discovered probe")
        broken = sd.with_suffix(".tmp")
        broken.write_text("[{not json")
        broken.replace(sd)
        fresh = config.with_suffix(".new")
        fresh.write_text(template + f"probes:\n  - {{name: added, type: tcp, host: 127.0.0.1, port: {port}}}\n")
        fresh.replace(config)
        agent.wait_for(lambda: names(agent) == {discovered, "added"}, timeout=10, what="the static probe added")
        agent.wait_for(lambda: "discovery" in agent.health()[1], timeout=10, what="the failing source shown")
        [trouble] = agent.health()[1]["discovery"]
        assert trouble["group"] == "web" and trouble["state"] == "stale" and trouble["last_success"], trouble
        assert "probe_agent_config_last_reload_successful 1.0" in agent.get("/metrics")[1]
    finally:
        agent.stop()
        listener.close()
    assert "discovery source failed; keeping its last targets" in agent.logs()


def test_a_group_whose_endpoint_has_not_answered_is_pending_until_it_does(tmp_path: Path) -> None:
    # At start the endpoint is down: the daemon starts anyway (the rest of the file runs), and
    # the group is pending, never absent from the verdict and never "ok"; its probes come once
    # the endpoint answers. The template is critical: /health/ready is 503 meanwhile.
    answer: dict[str, tuple[int, bytes]] = {"now": (503, b"starting")}

    Endpoint = answering(answer)

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with stub_http(Endpoint) as base:
        config = tmp_path / "probes.yaml"
        config.write_text(
            "target_groups:\n  - name: api\n"
            f"    http_sd_configs: [{{url: '{base}/sd', refresh_interval: 1s, timeout: 2s}}]\n"
            "    probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}', interval: 1s, timeout: 500ms,"
            " critical: true}\n"
            f"probes:\n  - {{name: static, type: tcp, host: 127.0.0.1, port: {port}, interval: 1s, timeout: 500ms}}\n"
        )
        agent = AgentProcess(config, args=["--no-watch-config"]).start()
        try:
            agent.wait_for(
                lambda: json.loads(agent.get("/health/ready")[1]).get("discovery_pending") == ["api"],
                what="the group pending",
            )
            code, body = agent.get("/health/ready")
            assert code == 503 and json.loads(body)["status"] == "pending", body
            assert names(agent) == {"static"}
            assert (
                'probe_agent_discovery_last_success_timestamp_seconds{group="api",source="' in agent.get("/metrics")[1]
            )
            answer["now"] = (200, json.dumps([{"targets": [f"127.0.0.1:{port}"]}]).encode())
            agent.wait_for(
                lambda: names(agent) == {"static", f"api-127.0.0.1:{port}"}, timeout=10, what="the group's probe"
            )
            agent.wait_for(lambda: agent.get("/health/ready")[0] == 200, timeout=10, what="ready once it ran")
        finally:
            agent.stop()
            listener.close()
    assert "discovery source failed; its targets are pending" in agent.logs()


def test_a_refresh_loads_the_answer_it_saw_without_asking_again(tmp_path: Path) -> None:
    # The endpoint gives the new list once, then fails: a reload that asked again (as it did,
    # two requests per change) would load the failure and keep the old targets.
    answers: list[tuple[int, bytes]] = []
    ports = [free_port() for _ in range(2)]

    def listing(port: int) -> tuple[int, bytes]:
        return 200, json.dumps([{"targets": [f"127.0.0.1:{port}"]}]).encode()

    Endpoint = answering(lambda: answers.pop(0) if answers else (500, b"gone"))

    answers.append(listing(ports[0]))
    with stub_http(Endpoint) as base:
        config = http_sd_group(tmp_path, f"{base}/sd")
        agent = AgentProcess(config, args=["--no-watch-config"]).start()
        try:
            agent.wait_for(lambda: names(agent) == {f"api-127.0.0.1:{ports[0]}"}, what="the first list")
            answers.append(listing(ports[1]))  # the next request only
            agent.wait_for(lambda: names(agent) == {f"api-127.0.0.1:{ports[1]}"}, timeout=10, what="the new list")
        finally:
            agent.stop()
