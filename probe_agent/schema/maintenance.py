"""Maintenance windows: while one covers a probe, the probe still runs, but reads MAINTENANCE.

It does not fail /health, its runs count as `probe_results_total{status="maintenance"}` (not
as failures, not in the run-duration histogram), and `probe_maintenance{window}` is 1, which
the shipped alert rules and the generated SLO rules honour.

Two kinds, the same model:
- scheduled, in the probes file under `maintenance:`: once (`start` and `end`, with a time
  zone) or recurring (`every` day or weekday, `at` a local time, for a `duration`, in a
  `timezone`), as Gatus and Uptime Kuma users write them;
- ad hoc, from `probe-agent maintenance start` (POST /-/maintenance, behind
  --web.enable-lifecycle): from now, for a duration. Kept in memory: a restart forgets them,
  a reload keeps them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from probe_agent.schema.fields import Duration

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__  # type: ignore[attr-defined]
MAX_RECURRING = 7 * 86400.0  # a weekly window may last a week at most: longer is not "recurring"


def _weekday(value: Any) -> Any:
    """'mon' and 'Monday' are 'monday'; 'day' is every day."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("day", "daily", "everyday"):
            return list(WEEKDAYS)
        found = [day for day in WEEKDAYS if day.startswith(text) and len(text) >= 3]
        return found[0] if len(found) == 1 else text
    return value


class MaintenanceWindow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    probes: tuple[str, ...] = ()  # by name, and/or
    tags: tuple[str, ...] = ()  # every probe with one of these tags
    reason: str = ""  # shown on /health, the status page and in logs
    # once
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    # recurring
    every: tuple[Weekday, ...] = ()
    at: dt.time | None = None  # local time in `timezone`, e.g. "03:00"
    duration: Duration | None = None
    timezone: str = "UTC"

    @field_validator("every", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            days: list[Any] = []
            for item in value:
                found = _weekday(item)
                days.extend(found if isinstance(found, list) else [found])
            return days
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a date and time such as 2026-11-24T02:00:00Z") from None
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no time zone: add Z (UTC) or an offset such as +01:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC or Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MaintenanceWindow:
        once = self.start is not None or self.end is not None
        recurring = bool(self.every) or self.at is not None or self.duration is not None
        if not self.probes and not self.tags:
            raise ValueError("name the probes or tags it covers (probes: [...] and/or tags: [...])")
        if once and recurring:
            raise ValueError("either start and end (once) or every, at and duration (recurring), not both")
        if once:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if self.end <= self.start:
                raise ValueError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        elif not (self.every and self.at is not None and self.duration is not None):
            raise ValueError("give start and end (once), or every, at and duration (recurring)")
        elif not 0 < self.duration <= MAX_RECURRING:
            raise ValueError("duration of a recurring window: more than 0, at most 7 days")
        return self

    def covers(self, name: str, tags: Iterable[str]) -> bool:
        return name in self.probes or any(tag in self.tags for tag in tags)

    def active_until(self, now: dt.datetime) -> dt.datetime | None:
        """When the occurrence that `now` falls in ends; None when none does."""
        if self.start is not None and self.end is not None:
            return self.end if self.start <= now < self.end else None
        assert self.at is not None and self.duration is not None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        length = dt.timedelta(seconds=self.duration)
        # an occurrence that began on an earlier day may still be running
        for back in range(length.days + 2):
            day = local.date() - dt.timedelta(days=back)
            if WEEKDAYS[day.weekday()] not in self.every:
                continue
            begins = dt.datetime.combine(day, self.at, tzinfo=zone)
            if begins <= local < begins + length:
                return (begins + length).astimezone(dt.UTC)
        return None

    def describe(self) -> dict[str, Any]:
        """What /health, /-/maintenance and the status page show of it."""
        view: dict[str, Any] = {
            "name": self.name,
            "probes": list(self.probes),
            "tags": list(self.tags),
            "reason": self.reason,
        }
        if self.start is not None and self.end is not None:
            view |= {"start": self.start.isoformat(), "end": self.end.isoformat()}
        else:
            view |= {
                "every": list(self.every),
                "at": self.at.strftime("%H:%M") if self.at else None,
                "duration_seconds": self.duration,
                "timezone": self.timezone,
            }
        return view


def ad_hoc(request: Mapping[str, Any], now: dt.datetime) -> MaintenanceWindow:
    """A window from now on, from `probe-agent maintenance start` (POST /-/maintenance). Raises
    ValueError (pydantic's ValidationError) on a bad request."""
    from probe_agent.schema.fields import parse_duration

    unknown = set(request) - {"name", "probes", "tags", "reason", "duration"}
    if unknown:
        raise ValueError(
            f"unknown field(s): {', '.join(sorted(unknown))} (known: name, probes, tags, reason, duration)"
        )
    seconds = parse_duration(request.get("duration", "1h"))
    name = request.get("name") or f"adhoc-{now:%Y%m%dT%H%M%SZ}"
    return MaintenanceWindow.model_validate(
        {
            "name": name,
            "probes": request.get("probes") or [],
            "tags": request.get("tags") or [],
            "reason": request.get("reason") or "",
            "start": now,
            "end": now + dt.timedelta(seconds=seconds),
        }
    )


def active_windows(
    windows: Iterable[MaintenanceWindow], now: dt.datetime
) -> list[tuple[MaintenanceWindow, dt.datetime]]:
    """The windows in effect at `now`, each with when it ends."""
    found = []
    for window in windows:
        until = window.active_until(now)
        if until is not None:
            found.append((window, until))
    return found


def window_of(name: str, tags: Iterable[str], active: list[tuple[MaintenanceWindow, dt.datetime]]) -> str | None:
    """The name of the first active window covering the probe, or None."""
    tags = tuple(tags)
    return next((window.name for window, _ in active if window.covers(name, tags)), None)
