"""The config watcher never misses a change: not one made while the agent was starting (between
reading the file and the watch's first look), not one made while a reload was reading it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from probe_agent.runtime.watch import snapshot, watch


def no_files() -> list[str]:
    return []


def replace(path: Path, text: str) -> None:
    new = path.with_suffix(".new")
    new.write_text(text)
    os.replace(new, path)  # atomic, as a ConfigMap swap: another inode


async def watched(path: Path, reload: object, seconds: float, **kwargs: object) -> None:
    task = asyncio.create_task(watch(path, reload, 0.05, no_files, **kwargs))  # type: ignore[arg-type]
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_change_made_while_the_agent_started_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("probes: []\n")
    read = snapshot(path, no_files)  # what the agent saw when it read the file
    replace(path, "probes: [{name: a}]\n")  # before the watch began: CI's test wrote it then
    calls: list[bool] = []

    async def reload(cautious: bool = False) -> list[str]:
        calls.append(cautious)
        return []

    await watched(path, reload, 0.6, loaded=read)
    assert calls, "the change made before the watch's first look was never loaded"


async def test_a_change_made_while_a_reload_read_the_file_is_loaded_next(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("probes: []\n")
    read = snapshot(path, no_files)
    replace(path, "probes: [{name: a}]\n")
    calls: list[bool] = []

    async def reload(cautious: bool = False) -> list[str]:
        calls.append(cautious)
        if len(calls) == 1:
            replace(path, "probes: [{name: a}, {name: b}]\n")  # written while this reload reads
        return []

    await watched(path, reload, 1.0, loaded=read)
    assert len(calls) == 2, calls  # the second write is loaded too, and nothing more
