"""The status page's history kept over restarts: one small local file, so a rollout of the agent
does not erase the incident on-call is looking at.

- Written every `save_every` seconds and when the agent stops, off the loop: to a temporary
  file beside it, flushed to disk, then renamed over the old one. A `kill -9` in the middle
  leaves the old file or the new one, never half of one.
- Read once at start, as warily as any file (probe_agent.core.files): a regular file of at most
  MAX_FILE_BYTES, JSON of the expected shape; each probe's entry is checked on its own. An
  unreadable file means starting empty and saying so, never a refusal to start.
- What it holds per probe: its uptime slots (768 bytes, ~1 KB as base64) and its last 20
  incidents: about 1.1 KB a probe without incidents, 11 MB at 10,000 probes. Probes no longer
  in the config are dropped at the next write.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from probe_agent.core.files import NamedFileError, read_named_file
from probe_agent.core.jsonpath import loads
from probe_agent.runtime.history import ProbeHistory

log = logging.getLogger("probe_agent")

FORMAT = 1
MAX_FILE_BYTES = 256 * 1024 * 1024  # past 200,000 probes with incidents; larger is not ours
DEFAULT_DIRECTORY = Path("/var/lib/probe-agent")  # an emptyDir in the manifests


def default_path() -> Path | None:
    """Where the history goes unless told: DEFAULT_DIRECTORY, when it is there and writable."""
    if DEFAULT_DIRECTORY.is_dir() and os.access(DEFAULT_DIRECTORY, os.W_OK):
        return DEFAULT_DIRECTORY / "history.json"
    return None


def encode(records: dict[str, dict[str, object]]) -> bytes:
    """The file's bytes for these probes' ProbeHistory.to_record() (blocking: 10,000 probes are
    ~11 MB of JSON)."""
    return json.dumps({"format": FORMAT, "saved_at": time.time(), "probes": records}, separators=(",", ":")).encode()


def write(path: Path, data: bytes) -> None:
    """Replace the file atomically (blocking: call it in a thread)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself, through a power cut
    finally:
        os.close(directory)


def read(path: Path) -> dict[str, ProbeHistory]:
    """The histories in the file, by probe name; {} for no file. Blocking. Never raises for what
    is in the file: a problem is logged and the history starts empty (or without that probe)."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # a write that a kill -9 cut short
        leftover.unlink(missing_ok=True)
    if not path.exists():
        return {}
    try:
        document = loads(read_named_file(str(path), "--history-file", MAX_FILE_BYTES))
    except (NamedFileError, ValueError) as exc:  # unreadable, or not JSON
        log.warning(
            "history file unreadable: starting with an empty history",
            extra={"file": str(path), "problem": str(exc)[:300]},
        )
        return {}
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or not isinstance(document.get("probes"), dict)
    ):
        log.warning("history file of another format: starting with an empty history", extra={"file": str(path)})
        return {}
    found, broken = {}, 0
    for name, record in document["probes"].items():
        try:
            found[str(name)] = ProbeHistory.from_record(record)
        except (ValueError, TypeError):
            broken += 1
    if broken:
        log.warning(
            "history file: some probes' entries are broken and start empty", extra={"file": str(path), "broken": broken}
        )
    return found
