"""SVG badges of a probe's or a tag's status and uptime (`/badge/probe/NAME/status.svg`,
`/badge/tag/TAG/uptime.svg`), for a README, a wiki or a wall screen.

Drawn here, flat in the common two-part style: a grey label and a coloured value. Text is
XML-escaped and cut (a tag is free text from the probes file), the widths are estimated from
the characters (no font is measured: an SVG image cannot load one), and nothing in it fetches
or runs anything."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from probe_agent.core.health import Health

if TYPE_CHECKING:
    from probe_agent.runtime.state import ProbeState

COLOURS = {
    "ok": "#1a7f37",
    "warning": "#9a6700",
    "failing": "#cf222e",
    "stale": "#cf222e",
    "maintenance": "#0969da",
    "pending": "#6e7781",
    "not found": "#6e7781",
}
MAX_TEXT = 40  # characters of a label or value shown
# the order a group takes its status from: the worst of its probes
WORST_FIRST = ("failing", "stale", "warning", "pending", "maintenance", "ok")


def _width(text: str) -> int:
    # about 6.5 px a character at 11 px Verdana/DejaVu Sans, wide ones more, plus padding
    wide = sum(1 for c in text if c.isupper() or c in "mwMW%@")
    return int(len(text) * 6.5 + wide * 1.5) + 12


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def badge(label: str, value: str, colour: str) -> bytes:
    label, value = _cut(label), _cut(value)
    left, right = _width(label), _width(value)
    total = left + right
    shown_label, shown_value = escape(label), escape(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img"'
        f' aria-label="{shown_label}: {shown_value}">'
        f"<title>{shown_label}: {shown_value}</title>"
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">'
        f'<text x="{left / 2:g}" y="14">{shown_label}</text>'
        f'<text x="{left + right / 2:g}" y="14">{shown_value}</text>'
        "</g></svg>"
    ).encode()


def warning(state: ProbeState, health: Health) -> bool:
    """A healthy probe whose last run was past a warning threshold: shown as a warning, not ok."""
    return health is Health.OK and state.last is not None and state.last.status.label == "warning"


def shown_status(state: ProbeState) -> str:
    health = state.reported_health()
    return "warning" if warning(state, health) else health.value


def badge_value(states: list[ProbeState], kind: str) -> tuple[str, str] | None:
    """What a badge of these probes says, and its colour: the worst status, or the uptime of
    all their counted runs of the last day; None without probes."""
    if not states:
        return None
    if kind == "status":
        worst = min((shown_status(s) for s in states), key=WORST_FIRST.index)
        return worst, COLOURS[worst]
    ok = total = 0
    for state in states:
        counted = state.history.counts()
        ok, total = ok + counted[0], total + counted[1]
    if not total:
        return "no runs", COLOURS["pending"]
    share = ok / total
    colour = COLOURS["ok" if share >= 0.999 else "warning" if share >= 0.99 else "failing"]
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + "%", colour
