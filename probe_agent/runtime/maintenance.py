"""Every maintenance window the agent knows, in one place: the config's scheduled windows, the
ones started by hand (POST /-/maintenance, kept over reloads but not restarts), and which of
them are in effect now. The daemon's watchdog refreshes it every second; `check` builds one from
its config to name the window a probe is in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from probe_agent.schema.maintenance import MaintenanceWindow, active_windows, ad_hoc, window_of


@dataclass
class Change:
    """What a refresh found: windows that began (with when they end) and names that ended."""

    started: list[tuple[MaintenanceWindow, dt.datetime]] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.started or self.ended)


class MaintenanceBook:
    def __init__(self, scheduled: Iterable[MaintenanceWindow] = ()) -> None:
        self.scheduled = list(scheduled)
        self.ad_hoc: dict[str, MaintenanceWindow] = {}
        self.active: list[tuple[MaintenanceWindow, dt.datetime]] = []  # in effect, each with when it ends

    def windows(self) -> list[MaintenanceWindow]:
        return [*self.scheduled, *self.ad_hoc.values()]

    def kind(self, name: str) -> str:
        return "ad hoc" if name in self.ad_hoc else "scheduled"

    def replace_scheduled(self, windows: Iterable[MaintenanceWindow]) -> None:
        """A reloaded config's windows; the ones started by hand stay."""
        self.scheduled = list(windows)

    def refresh(self, now: dt.datetime) -> Change:
        """Drop ad hoc windows that are over and recompute which windows are in effect."""
        for name, window in list(self.ad_hoc.items()):
            if window.end is not None and window.end <= now:
                del self.ad_hoc[name]
        before = {window.name for window, _ in self.active}
        self.active = active_windows(self.windows(), now)
        after = {window.name for window, _ in self.active}
        return Change(
            started=[(window, until) for window, until in self.active if window.name not in before],
            ended=sorted(before - after),
        )

    def covering(self, probe: str, tags: Iterable[str]) -> str | None:
        """The name of the window in effect that covers this probe (as of the last refresh)."""
        return window_of(probe, tags, self.active) if self.active else None

    def start(
        self, request: Mapping[str, Any], now: dt.datetime, probes: Iterable[tuple[str, Iterable[str]]]
    ) -> MaintenanceWindow:
        """An ad hoc window from now on over some of `probes` (name, tags). Raises ValueError
        with what is wrong with the request."""
        window = ad_hoc(request, now)
        if window.name in {w.name for w in self.scheduled}:
            raise ValueError(f"name {window.name!r} is a scheduled window's; choose another")
        if not any(window.covers(name, tuple(tags)) for name, tags in probes):
            raise ValueError("it covers no probe of this agent (check probes and tags)")
        self.ad_hoc[window.name] = window
        return window

    def end(self, name: str) -> bool:
        """End an ad hoc window now; False when there is none of that name."""
        return self.ad_hoc.pop(name, None) is not None
