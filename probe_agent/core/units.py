"""Numbers as people read them at 3 a.m.: `507 ms > 200 ms`, `1.5 GiB`, `3 days`.

The unit comes from the value's name, as Prometheus names say it: `duration` and
`*_seconds` are times, `*_bytes` sizes, `*_days` days; anything else is a plain number.
"""

from __future__ import annotations


def duration_text(seconds: float) -> str:
    """0.507499 -> '507 ms'; 0.0004 -> '400 µs'; 75 -> '1m15s'."""
    if seconds == 0:
        return "0 s"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"


def bytes_text(count: float) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} TiB"  # pragma: no cover - the loop returns first


def value_text(name: str, value: float) -> str:
    """A measured value in the unit its name says."""
    if name == "duration" or name.endswith("_seconds"):
        return duration_text(value)
    if name.endswith("_bytes"):
        return bytes_text(value)
    if name.endswith("_days"):
        return f"{value:g} days" if value != 1 else "1 day"
    return f"{value:g}"


def unit_of(name: str) -> str:
    """The Nagios perfdata unit of a value by its name: s, B or none."""
    if name == "duration" or name.endswith("_seconds"):
        return "s"
    if name.endswith("_bytes"):
        return "B"
    return ""
