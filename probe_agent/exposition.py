"""The probe series of /metrics, rendered off the event loop and cached per probe.

At 10,000 probes /metrics is about 300,000 series and 20 MB of text; building
it from scratch on every scrape, on the loop, cost seconds of stall during
which every probe in flight measured the agent instead of its target. So:

- each probe's lines are rendered once per change of its state (ProbeState
  .version) and cached, grouped by metric family;
- a scrape, in a worker thread, re-renders only the probes that changed since
  the last scrape, joins the cached pieces family by family (the text format
  wants a family's lines together) and gzips the result when asked to;
- the loop only copies the list of states and hands the work over.

The thread reads probe states while the loop may record new results: each
piece of state is read once (a list or dict copy is atomic under the GIL), so a
probe's lines are consistent with one result, or at worst one run behind.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.utils import floatToGoString

from probe_agent.model import Status
from probe_agent.probes import REGISTRY
from probe_agent.state import DURATION_BUCKETS, Health, ProbeState

GZIP_LEVEL = 1  # ~4x cheaper than the default and still ~10x smaller on this repetitive text

# name -> (type, help): the families every probe has, in the order they are written.
CORE_FAMILIES: dict[str, tuple[str, str]] = {
    "probe_success": ("gauge", "1 if the last run of the probe succeeded (status OK or WARNING), else 0."),
    "probe_status": ("gauge", "Status of the last run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
    "probe_healthy": ("gauge", "1 if the probe is healthy after failure_threshold/success_threshold, 0 if failing or stale."),
    "probe_duration_seconds": ("histogram", "Duration of probe runs."),
    "probe_results_total": ("counter", "Probe runs by resulting status."),
    "probe_failures_total": ("counter", "Failed probe runs by reason."),
    "probe_last_run_timestamp_seconds": ("gauge", "Unix time at which the last run started."),
    "probe_info": ("gauge", "Probe configuration; always 1."),
}
_BUCKET_LABELS = [*(floatToGoString(b) for b in DURATION_BUCKETS), "+Inf"]

# family -> its lines for one probe. A dict of str to bytes is not tracked by the garbage collector,
# so 10,000 cached probes add nothing to the full collections that hold the loop.
Pieces = dict[str, bytes]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(base: dict[str, str], **extra: str) -> str:
    merged = {**base, **extra} if extra else base
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(merged.items())) + "}"


def render_probe(state: ProbeState, families: dict[str, tuple[str, str]]) -> Pieces:
    """All lines of one probe, by family; adds the families of its type's values to `families`."""
    cfg = state.config
    base = {"probe": cfg.name, "type": cfg.type, **cfg.labels}
    plain = _labels(base)
    lines: dict[str, list[str]] = {}

    def add(family: str, sample: str, labels: str, value: float) -> None:
        lines.setdefault(family, []).append(f"{sample}{labels} {floatToGoString(value)}\n")

    add("probe_info", "probe_info", _labels(base, target=state.target), 1)
    by_status = dict(state.results_by_status)
    for status in Status:
        add("probe_results_total", "probe_results_total", _labels(base, status=status.label), by_status.get(status, 0))
    for reason, count in sorted(dict(state.failures_by_reason).items()):
        add("probe_failures_total", "probe_failures_total", _labels(base, reason=reason), count)
    last = state.last
    if last is not None:
        add("probe_success", "probe_success", plain, 1 if last.success else 0)
        add("probe_status", "probe_status", plain, int(last.status))
        add("probe_healthy", "probe_healthy", plain, 1 if state.effective_health() is Health.OK else 0)
        add("probe_last_run_timestamp_seconds", "probe_last_run_timestamp_seconds", plain, last.started_at)
        counts, cumulative = list(state.bucket_counts), 0
        for le, count in zip(_BUCKET_LABELS, counts):
            cumulative += count
            add("probe_duration_seconds", "probe_duration_seconds_bucket", _labels(base, le=le), cumulative)
        add("probe_duration_seconds", "probe_duration_seconds_count", plain, cumulative)
        add("probe_duration_seconds", "probe_duration_seconds_sum", plain, state.duration_sum)

        probe_cls = REGISTRY[cfg.type]
        if probe_cls.phase_metric and last.phases:
            families.setdefault(
                probe_cls.phase_metric,
                ("gauge", f"Duration of each {probe_cls.phase_label} of the last {cfg.type} probe run."),
            )
            for phase, seconds in last.phases.items():
                add(probe_cls.phase_metric, probe_cls.phase_metric, _labels(base, **{probe_cls.phase_label: phase}), seconds)
        for value_name, value in last.values.items():
            spec = probe_cls.values.get(value_name)
            if spec is None or spec.metric is None:
                continue
            families.setdefault(spec.metric, ("gauge", spec.help))
            add(spec.metric, spec.metric, plain, value)
    return {family: "".join(text).encode() for family, text in lines.items()}


class ProbeExposition:
    def __init__(self) -> None:
        # probe name -> (serial of the state rendered, its version then); and -> the pieces
        self._rendered: dict[str, tuple[int, int]] = {}
        self._pieces: dict[str, Pieces] = {}
        self._families: dict[str, tuple[str, str]] = dict(CORE_FAMILIES)
        self._lock = asyncio.Lock()  # two scrapes at once would render the same probes twice
        self.rendered_last_scrape = 0  # probes re-rendered by the last scrape (cache misses)

    def render(self, states: Iterable[ProbeState], head: bytes = b"") -> bytes:
        """`head`, then the probe families as text. Blocking: run it in a worker thread."""
        by_family: dict[str, list[bytes]] = {name: [] for name in self._families}
        rendered: dict[str, tuple[int, int]] = {}
        pieces: dict[str, Pieces] = {}
        misses = 0
        for state in states:
            name, key = state.config.name, (state.serial, state.version)
            probe_pieces = self._pieces.get(name)
            if probe_pieces is None or self._rendered.get(name) != key:
                probe_pieces = render_probe(state, self._families)
                misses += 1
            rendered[name], pieces[name] = key, probe_pieces
            for family, text in probe_pieces.items():
                by_family.setdefault(family, []).append(text)
        # Probes gone from the config leave the cache with it.
        self._rendered, self._pieces = rendered, pieces
        self.rendered_last_scrape = misses
        out: list[bytes] = [head]
        for family, texts in by_family.items():
            if not texts:
                continue
            kind, help_text = self._families[family]
            out.append(f"# HELP {family} {_escape_help(help_text)}\n# TYPE {family} {kind}\n".encode())
            out.extend(texts)
        return b"".join(out)

    async def scrape(self, states: list[ProbeState], agent_registry: CollectorRegistry, compress: bool) -> bytes:
        """The agent's own metrics and the probe families, gzipped if asked; all off the loop."""

        def work() -> bytes:
            body = self.render(states, head=generate_latest(agent_registry))
            return gzip.compress(body, GZIP_LEVEL) if compress else body

        async with self._lock:
            return await asyncio.to_thread(work)


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")
