"""Sharding over replicas: 3, then 4 agents on one file, as local processes."""

from __future__ import annotations

import json
from pathlib import Path

from probe_agent.config.shard import Shard
from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port

PROBES = 60


def own(agent: AgentProcess) -> set[str]:
    return {p["name"] for p in json.loads(agent.get("/health")[1])["probes"]}


def run_replicas(config: Path, count: int) -> list[set[str]]:
    agents = [AgentProcess(config, args=["--shard", f"{i}/{count}"]).start() for i in range(count)]
    try:
        shares = [own(a) for a in agents]
        info = agents[-1].get("/metrics")[1]
        assert f'probe_agent_shard_info{{shard="{count - 1}",shards="{count}"}} 1.0' in info
        return shares
    finally:
        for agent in agents:
            agent.stop()


def test_each_probe_runs_on_exactly_one_replica_and_few_move(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "probes.yaml"
    config.write_text(
        "probes:\n"
        + "".join(
            f"  - {{name: probe-{i:03d}, type: tcp, host: 127.0.0.1, port: {port}, interval: 30s}}\n"
            for i in range(PROBES)
        )
        + f"  - {{name: node-local, type: tcp, host: 127.0.0.1, port: {port}, every_shard: true}}\n"
    )
    everything = {f"probe-{i:03d}" for i in range(PROBES)}
    for count in (3, 4):
        shares = run_replicas(config, count)
        assert all("node-local" in share for share in shares)  # pinned to every replica
        sharded = [share - {"node-local"} for share in shares]
        assert set().union(*sharded) == everything, "every probe runs somewhere"
        assert sum(len(s) for s in sharded) == PROBES, "and on one replica only"
        assert all(len(s) > PROBES / count / 3 for s in sharded), [len(s) for s in sharded]  # spread, not piled
        if count == 3:
            three = {name: i for i, share in enumerate(sharded) for name in share}
        else:
            four = {name: i for i, share in enumerate(sharded) for name in share}
    moved = {name for name in everything if three[name] != four[name]}
    # 3 -> 4 replicas moves about a quarter, all of it to the new replica
    assert 0.1 < len(moved) / PROBES < 0.45, len(moved)
    assert all(four[name] == 3 for name in moved)


def test_shard_from_a_statefulset_pods_name() -> None:
    assert Shard.parse("auto/3", "probe-agent-2") == Shard(2, 3)
    for bad, host in (("auto/3", "probe-agent"), ("3/3", ""), ("1", ""), ("x/2", "")):
        try:
            Shard.parse(bad, host)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_a_killed_shard_is_noticed_by_the_shipped_alert_in_a_real_prometheus(tmp_path: Path) -> None:
    import signal
    import urllib.parse

    import yaml

    from tests.helpers.prometheus import prometheus

    config = tmp_path / "probes.yaml"
    config.write_text(
        "probes:\n"
        + "".join(
            f"  - {{name: p{i}, type: tcp, host: 127.0.0.1, port: {free_port()}, interval: 1s, timeout: 500ms}}\n"
            for i in range(12)
        )
    )
    rules = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "alerts.yml").read_text())
    shard_rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "ProbeAgentShardMissing")
    agents = [AgentProcess(config, args=["--shard", f"{i}/3"]).start() for i in range(3)]
    try:
        targets = ", ".join(f'"127.0.0.1:{a.port}"' for a in agents)
        with prometheus(
            tmp_path, f"  - job_name: probe-agent\n    static_configs: [{{targets: [{targets}]}}]\n"
        ) as prom:
            prom.query_until('count(up{job="probe-agent"} == 1) == 3')
            query = urllib.parse.urlencode({"query": shard_rule["expr"]})
            assert not prom.api(f"/api/v1/query?{query}")["result"], "the alert's condition holds with every shard up"
            assert agents[1].proc is not None
            agents[1].proc.send_signal(signal.SIGKILL)  # as a node dies: no goodbye
            fired = prom.query_until(shard_rule["expr"], timeout=30)
            assert fired[0]["metric"] == {"job": "probe-agent"} and fired[0]["value"][1] == "2", fired
    finally:
        for agent in agents:
            agent.stop()
