"""Reload when the probes file changes, as a ConfigMap update does.

Kubernetes swaps a ConfigMap's files by re-pointing a `..data` symlink, so the file's own
modification time need not change: the watcher compares what `stat` says of the file the
path leads to (device, inode, size, modification time), every `interval`. A change that does
not load (a typo) keeps the running probes, as every reload does, and is not tried again until
the file changes once more.

A file caught half-written must never run. How long a change must hold still depends on how
it came:
- a new file at the path (another inode: the ConfigMap's symlink swap, an editor's or
  `mv`'s rename) is complete the moment it appears: half a second (at most one look);
- the same file written in place (`>`, `cat >`, a tool that truncates and writes) can pause
  between its writes: IN_PLACE_LOOKS looks of stillness first (10 s at the default 2 s);
- and however it came, a change that would remove a large share of the running probes
  (SHRINK_SHARE) is held back for SHRINK_LOOKS more looks of stillness (30 s), with a log
  line: a writer that paused longer than any hold shows as a file that lost half its probes,
  which is rarely meant at once (and if it is, it is loaded a little later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

log = logging.getLogger("probe_agent")

Signature = tuple[int, int, int, int] | None

IN_PLACE_LOOKS = 5  # looks a file written in place must hold still for
SHRINK_SHARE = 0.25  # a change removing this share of the running probes (and 2 or more) ...
SHRINK_LOOKS = 15  # ... is held back for this many more looks of stillness


class ReloadHeld(Exception):
    """The new config would remove many of the running probes: not applied yet."""

    def __init__(self, removed: int, running: int):
        self.removed, self.running = removed, running
        super().__init__(f"the changed file would remove {removed} of {running} probes")


def signature(path: Path) -> Signature:
    try:
        st = os.stat(path)  # follows symlinks: a swapped ..data link gives another inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


Reload = Callable[..., Awaitable[list[str]]]  # reload(cautious=True) may raise ReloadHeld


Snapshot = dict[str, Signature]  # path -> what stat says of it


def snapshot(path: Path, extra: Callable[[], Sequence[str]]) -> Snapshot:
    """The probes file and the files it draws on (file_sd files, globs matched afresh)."""
    return {str(path): signature(path), **{name: signature(Path(name)) for name in extra()}}


async def _holds_still(take: Callable[[], Snapshot], seen: Snapshot, seconds: float, look: float) -> bool:
    """Whether the files keep the snapshot `seen` for `seconds`, looked at every `look` seconds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        await asyncio.sleep(min(look, left))
        if await asyncio.to_thread(take) != seen:
            return False
    return True


def _no_files() -> Sequence[str]:
    return ()


async def watch(
    path: Path,
    reload: Reload,
    interval: float = 2.0,
    extra: Callable[[], Sequence[str]] = _no_files,
    loaded: Snapshot | None = None,
) -> None:
    """Run until cancelled; calls `reload` once per settled change of the file, or of one of the
    files it draws on (`extra`: the file_sd files its target groups match now). `loaded`: the
    snapshot taken before the running config was read; without it the first look is the
    baseline, and a change made between the read and that look would never be loaded."""

    def take() -> Snapshot:
        return snapshot(path, extra)

    now = await asyncio.to_thread(take)  # stat off the loop: the files may be on NFS
    # files named since (target groups' files) are as the first look finds them
    loaded = now if loaded is None else {name: loaded.get(name, sig) for name, sig in now.items()}
    while True:
        await asyncio.sleep(interval)
        seen = await asyncio.to_thread(take)
        if seen == loaded or seen.get(str(path)) is None:
            continue  # unchanged, or gone for a moment (a swap in progress): keep what runs
        changed = [name for name, sig in seen.items() if loaded.get(name) != sig]
        # a file written in place (same device and inode) may pause between its writes
        in_place = any(
            (old := loaded.get(name)) is not None and (new := seen[name]) is not None and new[:2] == old[:2]
            for name in changed
        )
        hold = IN_PLACE_LOOKS * interval if in_place else min(interval, 0.5)
        if not await _holds_still(take, seen, hold, min(interval, 0.5)):
            continue  # still being written: look again next time
        try:
            problems = await reload(cautious=True)
        except ReloadHeld as held:
            log.warning(
                "probes file changed and would remove many probes: loading it once it holds still for %gs more",
                SHRINK_LOOKS * interval,
                extra={"config": str(path), "removed": held.removed, "running": held.running},
            )
            if not await _holds_still(take, seen, SHRINK_LOOKS * interval, interval):
                continue  # it was still being written after all
            problems = await reload()
        # What the reload read is at least as new as `seen` (the files held still as `seen` before
        # it read them): a write while it read differs from `seen`, and is loaded next time. The
        # files the new config names for the first time are as they are now.
        after = await asyncio.to_thread(take)
        loaded = {name: seen.get(name, sig) for name, sig in after.items()}
        if problems:
            log.error("probes file changed but does not load; keeping the running probes", extra={"problems": problems})
        else:
            log.info("probes file changed: reloaded", extra={"config": str(path), "changed": changed[:10]})


@contextlib.asynccontextmanager
async def watching(
    path: Path | None,
    reload: Reload,
    interval: float,
    extra: Callable[[], Sequence[str]] = _no_files,
    loaded: Snapshot | None = None,
) -> AsyncIterator[None]:
    """Watch while the block runs (interval 0 or no file: not at all); `loaded` as watch() takes it."""
    task = (
        asyncio.create_task(watch(path, reload, interval, extra, loaded)) if path is not None and interval > 0 else None
    )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
