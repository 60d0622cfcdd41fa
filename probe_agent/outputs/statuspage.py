"""The status page (/status): every probe's health and last message, uptime over the last
day, recent incidents and maintenance banners, as one server-rendered HTML page.

No external assets (it must work where only the agent is reachable) and no framework: the
page refreshes its <main> from `/status?partial=1` with a few lines of inline script, so it
updates without a reload and keeps the reader's scroll position. Built like /health: probes
are turned into HTML in batches with the loop let go between them, the join in a thread.
Everything it shows was redacted where it was made (run messages, targets); what is typed
into the config (a window's reason) goes through the agent's redactor here, and every text
is HTML-escaped. With --web.health-detail=status it shows names and health only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
from html import escape
from typing import TYPE_CHECKING

from probe_agent.core.health import Health, Verdict
from probe_agent.outputs.badges import warning
from probe_agent.runtime.history import Incident
from probe_agent.runtime.state import ProbeState, Tally

if TYPE_CHECKING:
    from probe_agent.runtime.agent import Agent

BATCH = 100  # probes turned into HTML between two turns of the loop (~2 ms)
BARS_UP_TO = 500  # above this many probes, no per-slot uptime bars (96 elements each): the % only
SHOWN_INCIDENTS = 50
ORDER = {Health.FAILING: 0, Health.STALE: 1, Health.PENDING: 2, Health.MAINTENANCE: 3, Health.OK: 5}
WARNING_RANK = 4  # a healthy probe past a warning threshold: after the troubles, before the quiet
VERDICT = {
    Verdict.OK: "All probes are passing",
    Verdict.DEGRADED: "Some probes are failing or warning",
    Verdict.FAILING: "A critical probe is failing",
    Verdict.PENDING: "Waiting for first results",
}

STYLE = """
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--muted:#57606a;--maint:#0969da;--bg:#fff;--fg:#1f2328;--line:#d0d7de}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;--line:#30363d}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
header,main,footer{max-width:960px;margin:0 auto;padding:12px 16px}h1{font-size:1.4em;margin:8px 0}h2{font-size:1.1em;margin:20px 0 8px}
.verdict{padding:12px 14px;border-radius:8px;color:#fff;font-weight:600}.verdict.ok{background:var(--ok)}
.verdict.degraded,.verdict.pending{background:var(--warn)}.verdict.failing{background:var(--bad)}
.banner{border:1px solid var(--maint);border-left-width:6px;border-radius:6px;padding:8px 12px;margin:10px 0}
ul.probes{list-style:none;padding:0;margin:0}li.probe{border-bottom:1px solid var(--line);padding:10px 2px}
.row{display:flex;flex-wrap:wrap;gap:4px 12px;align-items:baseline}.name{font-weight:600;word-break:break-all}
.health{font-size:.8em;font-weight:700;padding:1px 7px;border-radius:10px;color:#fff;background:var(--muted)}
.ok .health{background:var(--ok)}.failing .health,.stale .health{background:var(--bad)}.maintenance .health{background:var(--maint)}
.warning .health{background:var(--warn)}.uptime{color:var(--muted);margin-left:auto;font-variant-numeric:tabular-nums}
.msg{margin:4px 0 0;color:var(--muted);overflow-wrap:anywhere}.bar{display:flex;gap:1px;height:14px;margin-top:6px}
.bar i{flex:1;border-radius:1px;background:var(--line)}.bar i.u{background:var(--ok)}.bar i.p{background:var(--warn)}.bar i.d{background:var(--bad)}
header{display:flex;flex-wrap:wrap;align-items:center;gap:6px 12px}.environment{font-size:.85em;font-weight:700;padding:2px 9px;border-radius:10px;border:1px solid var(--line)}
.details{color:var(--muted);font-size:.9em;margin:2px 0;overflow-wrap:anywhere}.count{color:var(--muted);font-weight:400}
ol.incidents{padding-left:18px}ol.incidents li{margin:4px 0;overflow-wrap:anywhere}time{color:var(--muted);font-variant-numeric:tabular-nums}
footer{color:var(--muted);font-size:.85em}footer a{color:inherit}
"""

SCRIPT = """
(function(){var main=document.getElementById('status');var every=Number(main.dataset.refresh)*1000;
async function refresh(){try{var r=await fetch('status?partial=1',{cache:'no-store'});
if(r.ok){main.innerHTML=await r.text();document.getElementById('stale').hidden=true;return later();}}catch(e){}
lost();later();}function later(){setTimeout(refresh,every);}
function lost(){var v=document.getElementById('verdict');document.getElementById('stale').hidden=false;
if(v&&!v.dataset.lost){v.dataset.lost='1';v.className='verdict failing';
v.textContent='Cannot reach the agent since '+new Date().toLocaleTimeString()+': below is its last answer';}}
setTimeout(refresh,every);})();
"""


def _csp_hash(text: str) -> str:
    import base64
    import hashlib

    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only its own inline style and script run, only the agent is fetched, and nothing embeds it.
CSP = (
    f"default-src 'none'; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _when(unix: float) -> str:
    moment = dt.datetime.fromtimestamp(unix, dt.UTC)
    return f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M:%S} UTC</time>'


def _span(seconds: float) -> str:
    if seconds >= 86400 - 60:
        return "24 h"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{max(seconds, 60) / 60:.0f} min"


def _percent(share: float | None, known_for: float) -> str:
    if share is None:
        return "no counted runs in 24 h"
    text = f"{share * 100:.3f}".rstrip("0").rstrip(".")
    return f"{text}% up over {_span(known_for)}"  # over what is known: not "24 h" after 8 minutes


def _duration(seconds: float) -> str:
    """How long an incident lasted: 42 s, 17 min, 3 h 5 min."""
    if seconds < 60:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if rest >= 60 else f"{hours} h"


def _latency(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    milliseconds = seconds * 1000
    return f"{milliseconds:.1f} ms" if milliseconds < 10 else f"{milliseconds:.0f} ms"


# the order a count of probes is told in: the troubles first
SUMMARY_ORDER = ("failing", "stale", "warning", "pending", "maintenance", "ok")


def _summary(counts: dict[str, int]) -> str:
    """'1 failing, 3 ok': probes by what they show (a warning as a warning, not as ok)."""
    return ", ".join(f"{counts[label]} {label}" for label in SUMMARY_ORDER if counts.get(label))


def _rank(state: ProbeState) -> int:
    health = state.reported_health()
    return WARNING_RANK if warning(state, health) else ORDER[health]


def _bar(state: ProbeState) -> str:
    cells = []
    for share in state.history.slots():
        kind = (
            "" if share is None else ' class="u"' if share >= 0.999 else ' class="p"' if share >= 0.9 else ' class="d"'
        )
        cells.append(f"<i{kind}></i>")
    return f'<div class="bar" title="each bar: 15 minutes, oldest left">{"".join(cells)}</div>'


def _probe(state: ProbeState, brief: bool, bars: bool) -> str:
    health = state.reported_health()
    last = state.last
    label = health.value.upper()
    css = health.value
    if warning(state, health):
        label, css = "WARNING", "ok warning"
    parts = [
        f'<li class="probe {css}" data-probe="{escape(state.config.name)}"><div class="row">',
        f'<span class="name">{escape(state.config.name)}</span><span class="health">{label}</span>',
        f'<span class="uptime">{_percent(state.history.uptime(), state.history.known_for())}</span></div>',
    ]
    if not brief:
        # what it is and how fast it answered: the target as every output shows it (redacted)
        details = [state.config.type, state.target, *([_latency(last.duration)] if last is not None else [])]
        parts.append(f'<p class="details">{escape(" · ".join(details))}</p>')
        message = last.message if last is not None else "no run has finished yet"
        if state.maintenance is not None:
            message = (
                f"in maintenance window {state.maintenance}; last run: {message or last.status.label if last else '-'}"
            )
        if message:
            parts.append(f'<p class="msg">{escape(message)}</p>')
    if bars:
        parts.append(_bar(state))
    parts.append("</li>")
    return "".join(parts)


def _episodes(incidents: list[Incident]) -> list[tuple[Incident, Incident | None]]:
    """A probe's changes as episodes: each change with the one that ended it (None: it lasts).
    A recovery to ok is the end of the trouble before it, shown with it, not on its own."""
    found = []
    for k, incident in enumerate(incidents):
        if incident.new == Health.OK and k and incidents[k - 1].new != Health.OK:
            continue
        found.append((incident, incidents[k + 1] if k + 1 < len(incidents) else None))
    return found


def _incident(name: str, episode: tuple[Incident, Incident | None], brief: bool, now: float) -> str:
    incident, ended = episode
    if ended is not None and incident.new != Health.OK:  # over: from when to when, and for how long
        text = (
            f"{escape(name)}: <b>{escape(incident.new)}</b> from {_when(incident.at)} to {_when(ended.at)},"
            f" for {_duration(ended.at - incident.at)}"
        )
        if ended.new != Health.OK:
            text += f", then {escape(ended.new)}"
    else:
        text = f"{_when(incident.at)} {escape(name)}: {escape(incident.old)} → <b>{escape(incident.new)}</b>"
        if incident.new != Health.OK:
            text += f", for {_duration(now - incident.at)} so far"
    if not brief and incident.message:
        text += f" — {escape(incident.message)}"
    return f"<li>{text}</li>"


def _group_heading(name: str, counts: dict[str, int]) -> str:
    return f'<h2>{escape(name)} <span class="count">· {_summary(counts)}</span></h2>'


def _banners(agent: Agent) -> str:
    found = []
    for window, until in agent.maintenance.active:
        covers = ", ".join([*window.probes, *(f"tag {t}" for t in window.tags)])
        reason = f": {agent.redactor.redact(window.reason)}" if window.reason else ""
        found.append(
            f'<div class="banner" role="status"><b>Maintenance {escape(window.name)}</b>{escape(reason)}'
            f" — {escape(covers)}, until {_when(until.timestamp())}</div>"
        )
    return "".join(found)


async def render(agent: Agent, *, brief: bool, partial: bool) -> bytes:
    # the sort keys in batches, then one sort of plain tuples (a C loop): 10,000 probes sorted
    # by a Python key function would hold the loop ~10 ms at once
    keyed: list[tuple[int, str, int]] = []
    all_states = list(agent.store.probes.values())
    for i, state in enumerate(all_states):
        keyed.append((_rank(state), state.config.name, i))
        if i % (BATCH * 5) == 0:
            await asyncio.sleep(0)
    keyed.sort()
    states = [all_states[i] for _, _, i in keyed]
    bars = len(states) <= BARS_UP_TO
    settings = agent.config.status_page
    by_tag = settings.group_by == "tag"
    # a section per tag, in the order the tags first appear in the file; untagged last
    group_order: dict[str | None, int] = {}
    if by_tag:
        for state in all_states:
            group_order.setdefault(state.config.tags[0] if state.config.tags else None, len(group_order))
        group_order[None] = len(group_order) + 1  # "Other" last
    grouped: dict[str | None, list[str]] = {}
    group_counts: dict[str | None, dict[str, int]] = {}
    tally, items = Tally(), []
    counts: dict[str, int] = {}  # probes by what they show, for the summary
    episodes: list[tuple[float, int, int, str, tuple[Incident, Incident | None]]] = []  # a heap of the newest
    for i, state in enumerate(states, 1):
        health = tally.add(state)
        label = "warning" if warning(state, health) else health.value
        counts[label] = counts.get(label, 0) + 1
        html = _probe(state, brief, bars)
        if by_tag:
            group = state.config.tags[0] if state.config.tags else None
            grouped.setdefault(group, []).append(html)
            in_group = group_counts.setdefault(group, {})
            in_group[label] = in_group.get(label, 0) + 1
        else:
            items.append(html)
        for k, episode in enumerate(_episodes(list(state.history.incidents))):
            entry = (episode[0].at, i, k, state.config.name, episode)
            if len(episodes) < SHOWN_INCIDENTS:
                heapq.heappush(episodes, entry)
            elif entry[:3] > episodes[0][:3]:
                heapq.heapreplace(episodes, entry)
        if i % BATCH == 0:
            await asyncio.sleep(0)
    if by_tag:
        sections = sorted(grouped, key=lambda g: group_order[g])
        items = [
            f'<section class="group" data-group="{escape(g or "")}">'
            + _group_heading(g or "Other", group_counts[g])
            + '<ul class="probes">'
            + "".join(grouped[g])
            + "</ul></section>"
            for g in sections
        ]
    overall = tally.overall()[0] if agent.started else Verdict.PENDING
    newest = sorted(episodes, key=lambda e: e[:3], reverse=True)
    now = dt.datetime.now(dt.UTC).timestamp()
    refresh = max(1.0, min(10.0, min((s.config.interval for s in states), default=5.0)))

    def build() -> bytes:
        summary = _summary(counts)
        main = [
            f'<p class="verdict {overall}" id="verdict">{VERDICT.get(overall, overall)}</p>',
            _banners(agent),
            f"<p>{len(states)} probes: {summary or 'none'}. Updated {_when(now)}</p>",
            *(items if by_tag else ['<ul class="probes">', *items, "</ul>"]),
            "<h2>Recent incidents</h2>",
        ]
        main.append(
            '<ol class="incidents">'
            + "".join(_incident(name, episode, brief, now) for _, _, _, name, episode in newest)
            + "</ol>"
            if newest
            else "<p>None in memory (the agent keeps the last 20 changes of each probe).</p>"
        )
        fragment = "".join(main)
        if partial:
            return fragment.encode()
        page_name = f"{settings.title} ({settings.environment})" if settings.environment else settings.title
        environment = f'<span class="environment">{escape(settings.environment)}</span>' if settings.environment else ""
        return "".join(
            [
                '<!doctype html><html lang="en"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width,initial-scale=1">',
                f"<title>{escape(page_name)} — probe-agent</title><style>{STYLE}</style></head><body>",
                f"<header><h1>{escape(settings.title)}</h1>{environment}</header>",
                f'<main id="status" data-refresh="{refresh:g}" aria-live="polite">{fragment}</main>',
                '<footer><p id="stale" hidden>Cannot reach the agent; showing the last answer.</p>',
                '<p><a href="metrics">/metrics</a> · <a href="health">/health</a> · <a href="-/maintenance">/-/maintenance</a>',
                f" · refreshes every {refresh:g} s</p></footer>",
                f"<script>{SCRIPT}</script></body></html>",
            ]
        ).encode()

    return await asyncio.to_thread(build)
