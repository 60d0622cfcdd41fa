"""Sharding over replicas: 3, then 4 agents on one file, as local processes."""

from __future__ import annotations

import json
from pathlib import Path

from probe_agent.shard import Shard
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
    config.write_text("probes:\n" + "".join(
        f"  - {{name: probe-{i:03d}, type: tcp, host: 127.0.0.1, port: {port}, interval: 30s}}\n" for i in range(PROBES)
    ) + f"  - {{name: node-local, type: tcp, host: 127.0.0.1, port: {port}, every_shard: true}}\n")
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
