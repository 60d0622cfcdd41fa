"""The daemon reloads when its probes file changes, including a ConfigMap's symlink swap."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port


def probes(*names: str) -> str:
    port = free_port()
    return "probes:\n" + "".join(f"  - {{name: {n}, type: tcp, host: 127.0.0.1, port: {port}, interval: 1s, timeout: 500ms}}\n" for n in names)


def configmap(root: Path, version: int, text: str) -> Path:
    """Lay out files as the kubelet does: probes.yaml -> ..data/probes.yaml, ..data -> ..VERSION."""
    (root / f"..{version}").mkdir()
    (root / f"..{version}" / "probes.yaml").write_text(text)
    link = root / "..data_tmp"
    link.symlink_to(f"..{version}")
    os.replace(link, root / "..data")  # atomic, as the kubelet swaps it
    if not (root / "probes.yaml").exists():
        (root / "probes.yaml").symlink_to("..data/probes.yaml")
    return root / "probes.yaml"


def names(agent: AgentProcess) -> set[str]:
    import json

    return {p["name"] for p in json.loads(agent.get("/health")[1])["probes"]}


def reload_ok(agent: AgentProcess) -> str:
    text = agent.get("/metrics")[1]
    return next(line.split()[-1] for line in text.splitlines() if line.startswith("probe_agent_config_last_reload_successful"))


def test_a_configmap_swap_reloads_and_a_broken_file_keeps_the_probes(tmp_path: Path) -> None:
    path = configmap(tmp_path, 1, probes("a"))
    agent = AgentProcess(path, args=["--watch-config", "200ms"]).start()
    try:
        assert names(agent) == {"a"}
        configmap(tmp_path, 2, probes("a", "b"))
        swapped = time.monotonic()
        agent.wait_for(lambda: names(agent) == {"a", "b"}, timeout=10, what="the swapped ConfigMap loaded")
        assert time.monotonic() - swapped < 5
        configmap(tmp_path, 3, "probes:\n  - {name: c, type: tpc}\n")  # a typo: keep what runs
        agent.wait_for(lambda: reload_ok(agent) == "0.0", timeout=10, what="the broken file rejected")
        assert names(agent) == {"a", "b"}
        configmap(tmp_path, 4, probes("d"))
        agent.wait_for(lambda: names(agent) == {"d"} and reload_ok(agent) == "1.0", timeout=10, what="the fix loaded")
    finally:
        agent.stop()
    log = agent.log_path.read_text()
    assert "probes file changed but does not load" in log and "unknown probe type 'tpc'" in log


def test_watching_can_be_turned_off(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(probes("a"))
    agent = AgentProcess(path, args=["--no-watch-config"]).start()
    try:
        path.write_text(probes("a", "b"))
        time.sleep(3)
        assert names(agent) == {"a"}
    finally:
        agent.stop()
