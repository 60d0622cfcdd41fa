"""The daemon reloads when its probes file changes, including a ConfigMap's symlink swap."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port


def probes(*names: str) -> str:
    port = free_port()
    return "probes:\n" + "".join(
        f"  - {{name: {n}, type: tcp, host: 127.0.0.1, port: {port}, interval: 1s, timeout: 500ms}}\n" for n in names
    )


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
    return next(
        line.split()[-1] for line in text.splitlines() if line.startswith("probe_agent_config_last_reload_successful")
    )


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


def test_a_file_written_in_place_with_a_pause_is_never_loaded_half_written(tmp_path: Path) -> None:
    # The writer: truncate, write 50 of 100 probes, pause 4 s, write the rest. With the
    # watcher looking every 200 ms, in place means 1 s of stillness and a loss of half the probes
    # 3 s more: the pause outlasts the first, not the second.
    import threading

    port = free_port()
    lines = [
        f"  - {{name: p{i}, type: tcp, host: 127.0.0.1, port: {port}, interval: 1s, timeout: 500ms}}\n"
        for i in range(100)
    ]
    path = tmp_path / "probes.yaml"
    path.write_text("probes:\n" + "".join(lines))
    agent = AgentProcess(path, args=["--watch-config", "200ms"]).start()
    seen: list[int] = []
    done = threading.Event()

    def watch_counts() -> None:
        while not done.is_set():
            try:
                seen.append(len(names(agent)))
            except OSError:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_counts, daemon=True)
    try:
        watcher.start()
        time.sleep(0.5)  # the file watcher starts just after the port answers: let it take its first look
        changed = [line.replace("interval: 1s", "interval: 2s") for line in lines]
        with open(path, "w") as file:  # in place: the same inode
            file.write("probes:\n" + "".join(changed[:50]))
            file.flush()
            time.sleep(4)
            file.write("".join(changed[50:]))
        time.sleep(2)  # the complete file holds still and loads
        done.set()
        watcher.join()
        assert seen and min(seen) == 100, f"the half-written file ran: probe counts seen {sorted(set(seen))}"
        code, text = agent.get("/metrics")
        assert code == 200 and "probe_agent_config_last_reload_successful 1.0" in text, (code, text[:300])
    finally:
        done.set()
        agent.stop()
    assert "would remove many probes" in agent.log_path.read_text()


def test_an_intended_shrink_is_loaded_after_its_hold(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(probes(*[f"p{i}" for i in range(10)]))
    agent = AgentProcess(path, args=["--watch-config", "200ms"]).start()
    try:
        replacement = tmp_path / "probes.yaml.new"
        replacement.write_text(probes("p0", "p1"))
        os.replace(replacement, path)  # atomic, as tools that mean it write
        started = time.monotonic()
        agent.wait_for(lambda: names(agent) == {"p0", "p1"}, timeout=30, what="the smaller file loaded")
        assert time.monotonic() - started >= 3.0, time.monotonic() - started  # held back first, then loaded
    finally:
        agent.stop()
