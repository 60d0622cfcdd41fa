"""What a target group's sources gave at a load: the types the config model and the daemon
share, apart from probe_agent.config.discovery (which reads the sources) so that loading a
probes file without target groups (every `check`) does not import the readers, urllib among them."""

from __future__ import annotations

from dataclasses import dataclass

Target = tuple[str, dict[str, str]]  # (address, labels) as a source lists it
SourceKey = tuple[str, str]  # (group name, file path or URL)


@dataclass(frozen=True, slots=True)
class SourceState:
    """What one source of a group (a file_sd file, an http_sd URL) gave at the last load.

    The daemon hands each load the states of the one before: a source that fails then keeps its
    last good targets (`error` says why they are not new), as Prometheus keeps a failing
    source's last list; one that never answered has none (`answered_at` None: its targets are
    pending). Without them (`check`, `validate`) a failing source is a problem of the file."""

    targets: tuple[Target, ...] = ()
    digest: str | None = None  # of the last good answer (http_sd: a refresh compares to it)
    answered_at: float | None = None  # wall-clock time of the last good answer
    error: str | None = None  # why the last try failed; None: it answered

    def failed(self, error: str) -> SourceState:
        return SourceState(self.targets, self.digest, self.answered_at, error)
