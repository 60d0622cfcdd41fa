"""Reload when the probes file changes, as a ConfigMap update does.

Kubernetes swaps a ConfigMap's files by re-pointing a `..data` symlink, so the file's own
modification time need not change: the watcher compares what `stat` says of the file the
path leads to (device, inode, size, modification time), every `interval`. A change must hold
still for one more look before it is loaded, so a file caught half-written is not; a change
that does not load (a typo) keeps the running probes, as every reload does, and is not tried
again until the file changes once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

log = logging.getLogger("probe_agent")

Signature = tuple[int, int, int, int] | None


def signature(path: Path) -> Signature:
    try:
        st = os.stat(path)  # follows symlinks: a swapped ..data link gives another inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


async def watch(path: Path, reload: Callable[[], Awaitable[list[str]]], interval: float = 2.0) -> None:
    """Run until cancelled; calls `reload` once per settled change of the file."""
    loaded = await asyncio.to_thread(signature, path)  # stat off the loop: the file may be on NFS
    while True:
        await asyncio.sleep(interval)
        seen = await asyncio.to_thread(signature, path)
        if seen == loaded or seen is None:
            continue  # unchanged, or gone for a moment (a swap in progress): keep what runs
        await asyncio.sleep(min(interval, 0.5))
        if await asyncio.to_thread(signature, path) != seen:
            continue  # still being written: look again next time
        loaded = seen
        problems = await reload()
        if problems:
            log.error("probes file changed but does not load; keeping the running probes", extra={"problems": problems})
        else:
            log.info("probes file changed: reloaded", extra={"config": str(path)})


@contextlib.asynccontextmanager
async def watching(path: Path | None, reload: Callable[[], Awaitable[list[str]]], interval: float) -> AsyncIterator[None]:
    """Watch while the block runs (interval 0 or no file: not at all)."""
    task = asyncio.create_task(watch(path, reload, interval)) if path is not None and interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
