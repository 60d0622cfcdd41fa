"""The probe series of /metrics, rendered off the event loop and cached per probe.

At 10,000 probes /metrics is about 300,000 series and 20 MB of text; building
it from scratch on every scrape, on the loop, cost seconds of stall during
which every probe in flight measured the agent instead of its target. So:

- each probe's lines are rendered once per change of its state (ProbeState
  .version) and cached, grouped by metric family, as bytes (a dict of str to
  bytes is not tracked by the garbage collector, so the cache adds nothing to
  the full collections that would hold the loop);
- a scrape re-renders only the probes that changed since the last one, on the
  loop but in batches of RENDER_BATCH probes (a few ms each) with the loop let
  go between them: a worker thread doing the same fights the loop for the GIL
  and stalled it for 40-50 ms at 1,000 probes;
- joining the pieces family by family (the text format wants a family's lines
  together) and gzip run in a worker thread: both are long C calls that copy
  or compress, and zlib lets go of the GIL.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, generate_latest

from probe_agent.core.errors import Reason
from probe_agent.core.health import Health
from probe_agent.core.results import Result, Status
from probe_agent.probes import REGISTRY
from probe_agent.probes.base import ProbeConfig
from probe_agent.runtime.state import ProbeState

GZIP_LEVEL = 1  # ~4x cheaper than the default and still ~10x smaller on this repetitive text
# Work done between two turns of the loop, about 3 ms: a render costs ~50 us, a cached probe ~4 us.
RENDER_BATCH = 60
CACHED_BATCH = 750

# name -> (type, help): the families every probe has, in the order they are written.
CORE_FAMILIES: dict[str, tuple[str, str]] = {
    "probe_success": ("gauge", "1 if the last run of the probe succeeded (status OK or WARNING), else 0."),
    "probe_status": ("gauge", "Status of the last run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
    "probe_healthy": (
        "gauge",
        "1 if the probe is healthy after failure_threshold/success_threshold, 0 if failing or stale.",
    ),
    "probe_duration_seconds": ("gauge", "Duration of the last probe run in seconds, as blackbox_exporter's."),
    "probe_run_duration_seconds": (
        "histogram",
        "Duration of probe runs; bounds include the probe's own duration limits.",
    ),
    "probe_results_total": ("counter", "Probe runs by resulting status."),
    "probe_failures_total": ("counter", "Failed probe runs by reason."),
    "probe_last_run_timestamp_seconds": ("gauge", "Unix time at which the last run started."),
    "probe_info": ("gauge", "Probe configuration; always 1."),
    "probe_maintenance": ("gauge", "1 while a maintenance window covers the probe (the window's name in `window`)."),
}


@functools.lru_cache(maxsize=256)
def bucket_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The `le` values of a histogram with these bounds (few distinct sets: cached)."""
    return (*(repr(float(b)) for b in bounds), "+Inf")


# family -> its lines for one probe. A dict of str to bytes is not tracked by the garbage collector,
# so 10,000 cached probes add nothing to the full collections that hold the loop.
Pieces = dict[str, bytes]
# How the cache keeps them: the family names, one tuple shared by every probe of the same shape,
# and the texts in that order. A tuple of 30 costs a quarter of a dict of 30: 10 MB less at
# 10,000 probes.
CachedPieces = tuple[tuple[str, ...], tuple[bytes, ...]]
_shapes: dict[tuple[str, ...], tuple[str, ...]] = {}


def compact(pieces: Pieces) -> CachedPieces:
    names = tuple(pieces)
    return _shapes.setdefault(names, names), tuple(pieces.values())


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _num(value: float) -> str:
    """The sample value as prometheus-client writes it (200 -> 200.0), without its per-call overhead."""
    if value.__class__ is int:
        return f"{value}.0"
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


# A probe's label pairs, sorted and escaped once per config: (names, `name="value"` texts, the
# whole `{...}`). A plain tuple of strings only, which the garbage collector stops tracking:
# 10,000 of them add nothing to the full collections that hold the loop.
LabelSet = tuple[tuple[str, ...], tuple[str, ...], str]


def make_label_set(labels: dict[str, str]) -> LabelSet:
    names = tuple(sorted(labels))
    texts = tuple(f'{k}="{_escape(labels[k])}"' for k in names)
    return names, texts, "{" + ",".join(texts) + "}"


def with_label(labels: LabelSet, name: str) -> tuple[str, str]:
    """The text before and after where `name="value"` goes, by sorted order."""
    names, texts, _ = labels
    before = "".join(t + "," for k, t in zip(names, texts, strict=False) if k < name)
    after = "".join("," + t for k, t in zip(names, texts, strict=False) if k > name)
    return "{" + before + f'{name}="', '"' + after + "}"


def label_set(state: ProbeState) -> LabelSet:
    # One per probe config, kept on its state (a new config gets a new state).
    found = state.exposition_labels
    if found is None:
        cfg = state.config
        found = state.exposition_labels = make_label_set({"probe": cfg.name, "type": cfg.type, **cfg.labels})
    return found  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def _sorted_reasons(reasons: tuple[Reason, ...], full: bool) -> tuple[str, ...]:
    # `internal` is the agent's own failure, not one the type finds in a target: within the series
    # budget it comes with its first (docs/metrics.md, "Series per probe")
    return tuple(sorted(r.value for r in reasons if full or r is not Reason.INTERNAL))


def reason_names(reasons: tuple[Reason, ...], seen: Mapping[str, int], full: bool = True) -> tuple[str, ...]:
    """The type's failure reasons (`full`: `internal` too), and any other that happened all the
    same (a skipped run's)."""
    names = _sorted_reasons(reasons, full)
    return names if all(r in names for r in seen) else tuple(sorted({*names, *seen}))


_STATUSES = tuple(Status)


def add_phase_histogram(
    metric: str,
    label: str,
    state: ProbeState,
    families: dict[str, tuple[str, str]],
    add: Callable[[str, str], None],
) -> None:
    families.setdefault(
        metric, ("histogram", f"Duration of each {label} over all runs; bounds as probe_run_duration_seconds.")
    )
    cfg = state.config
    lines = []
    for phase, counts in state.phase_counts.items():
        with_phase = make_label_set({"probe": cfg.name, "type": cfg.type, **cfg.labels, label: phase})
        before, after = with_label(with_phase, "le")
        cumulative = 0
        for le, count in zip(bucket_labels(state.config.buckets), counts, strict=True):
            cumulative += count
            lines.append(f"{metric}_bucket{before}{le}{after} {cumulative}.0\n")
        lines.append(f"{metric}_count{with_phase[2]} {cumulative}.0\n")
        lines.append(f"{metric}_sum{with_phase[2]} {_num(state.phase_sums.get(phase, 0.0))}\n")
    add(metric, "".join(lines))


def tags_label(tags: list[str]) -> str:
    """A probe's tags as one label value, ",a,b," (Consul's `__meta_consul_tags` form): an SLO's
    rules match `tags=~".*,shop,.*"`, so a probe tagged later is counted without new rules."""
    return "," + ",".join(sorted(set(tags))) + ","


def info_labels(keys: tuple[str, ...], state: ProbeState) -> dict[str, str]:
    """The type's info details of the last run, as probe_info labels; a user label of the same
    name wins (a series cannot carry one label twice)."""
    last = state.last
    if not keys or last is None:
        return {}
    return {key: last.details[key] for key in keys if key in last.details and key not in state.config.labels}


def render_probe(state: ProbeState, families: dict[str, tuple[str, str]]) -> Pieces:
    """All lines of one probe, by family; adds the families of its type's values to `families`."""
    cfg = state.config
    labels = label_set(state)
    plain = labels[2]
    lines: dict[str, list[str]] = {}

    def add(family: str, line: str) -> None:
        lines.setdefault(family, []).append(line)

    probe_cls = REGISTRY[cfg.type]
    info = {**probe_cls.config_info(cfg), **info_labels(probe_cls.info_details, state)}
    info = {k: v for k, v in info.items() if k not in cfg.labels}
    if cfg.tags:
        info["tags"] = tags_label(cfg.tags)
    if info:
        # what the target says it is (a server version) changes rarely: one more label set then
        info_text = make_label_set({"probe": cfg.name, "type": cfg.type, **cfg.labels, "target": state.target, **info})[
            2
        ]
        add("probe_info", f"probe_info{info_text} 1.0\n")
    else:
        before, after = with_label(labels, "target")
        add("probe_info", f"probe_info{before}{_escape(state.target)}{after} 1.0\n")
    by_status = dict(state.results_by_status)
    full = cfg.metrics == "full"
    before, after = with_label(labels, "status")
    # with `metrics: full` every status is there from the start, at 0; within the series budget
    # each comes with its first result (a healthy probe has one)
    add(
        "probe_results_total",
        "".join(
            f"probe_results_total{before}{status.label}{after} {_num(by_status.get(status, 0))}\n"
            for status in _STATUSES
            if full or status in by_status
        )
        + (
            f"probe_results_total{before}maintenance{after} {state.maintenance_runs}.0\n"
            if state.maintenance_runs
            else ""
        )
        + (f"probe_results_total{before}skipped{after} {state.skipped_runs}.0\n" if state.skipped_runs else ""),
    )
    if state.maintenance is not None:
        before, after = with_label(labels, "window")
        add("probe_maintenance", f"probe_maintenance{before}{_escape(state.maintenance)}{after} 1.0\n")
    # Every reason the type can fail with is there from the start, at 0: rate() and increase()
    # see the first failure (a series born at 1 counts nothing until its second sample).
    failures = state.failures_by_reason
    before, after = with_label(labels, "reason")
    add(
        "probe_failures_total",
        "".join(
            f"probe_failures_total{before}{reason}{after} {_num(failures.get(reason, 0))}\n"
            for reason in reason_names(probe_cls.failure_reasons, failures, full)
        ),
    )
    last = state.last
    if last is not None:
        add("probe_success", f"probe_success{plain} {'1.0' if last.success else '0.0'}\n")
        add("probe_status", f"probe_status{plain} {int(last.status)}.0\n")
        add("probe_healthy", f"probe_healthy{plain} {'1.0' if state.effective_health() is Health.OK else '0.0'}\n")
        add("probe_last_run_timestamp_seconds", f"probe_last_run_timestamp_seconds{plain} {_num(last.started_at)}\n")
        add("probe_duration_seconds", f"probe_duration_seconds{plain} {_num(last.duration)}\n")
        before, after = with_label(labels, "le")
        counts, cumulative, buckets = list(state.bucket_counts), 0, []
        for le, count in zip(bucket_labels(cfg.buckets), counts, strict=True):
            cumulative += count
            buckets.append(f"probe_run_duration_seconds_bucket{before}{le}{after} {cumulative}.0\n")
        buckets.append(f"probe_run_duration_seconds_count{plain} {cumulative}.0\n")
        buckets.append(f"probe_run_duration_seconds_sum{plain} {_num(state.duration_sum)}\n")
        add("probe_run_duration_seconds", "".join(buckets))
        if probe_cls.phase_histogram and state.phase_counts:
            add_phase_histogram(probe_cls.phase_histogram, probe_cls.phase_label, state, families, add)

        if probe_cls.phase_metric and last.phases:
            metric = probe_cls.phase_metric
            families.setdefault(
                metric, ("gauge", f"Duration of each {probe_cls.phase_label} of the last {cfg.type} probe run.")
            )
            before, after = with_label(labels, probe_cls.phase_label)
            add(
                metric,
                "".join(
                    f"{metric}{before}{_escape(phase)}{after} {_num(seconds)}\n"
                    for phase, seconds in last.phases.items()
                ),
            )
        for value_name, value in last.values.items():
            spec = probe_cls.values.get(value_name)
            if spec is None or spec.metric is None:
                continue
            families.setdefault(spec.metric, ("gauge", spec.help))
            if spec.labels:
                extra = last.value_labels.get(value_name, {})
                own = {"probe": cfg.name, "type": cfg.type, **cfg.labels}
                text = make_label_set({**own, **{k: extra.get(k, "") for k in spec.labels if k not in own}})[2]
                add(spec.metric, f"{spec.metric}{text} {_num(value)}\n")
            else:
                add(spec.metric, f"{spec.metric}{plain} {_num(value)}\n")
    return {family: "".join(text).encode() for family, text in lines.items()}


class ProbeExposition:
    def __init__(self) -> None:
        # probe name -> serial and version of the state rendered (one int: nothing for the GC to
        # track); and -> the pieces
        self._rendered: dict[str, int] = {}
        self._pieces: dict[str, CachedPieces] = {}
        self._families: dict[str, tuple[str, str]] = dict(CORE_FAMILIES)
        self._lock = asyncio.Lock()  # two scrapes at once would render the same probes twice
        self.rendered_last_scrape = 0  # probes re-rendered by the last scrape (cache misses)

    def _collect(self, states: Sequence[ProbeState], by_family: dict[str, list[bytes]]) -> Iterator[None]:
        """Gather every probe's pieces into by_family, rendering what changed; yields between batches."""
        # A probe's new pieces replace its old ones in the cache at once: built beside the old
        # cache and swapped in at the end, every scrape of probes that all ran held two caches
        # at its peak (27 MB more at 10,000 probes, kept by the allocator as RSS).
        rendered, pieces = self._rendered, self._pieces
        misses = work = 0
        for state in states:
            name, key = state.config.name, (state.serial << 40) + state.version
            probe_pieces = pieces.get(name)
            if probe_pieces is None or rendered.get(name) != key:
                probe_pieces = pieces[name] = compact(render_probe(state, self._families))
                rendered[name] = key
                misses += 1
                work += CACHED_BATCH // RENDER_BATCH
            work += 1
            if work >= CACHED_BATCH:
                work = 0
                yield
            for family, text in zip(*probe_pieces, strict=True):
                by_family.setdefault(family, []).append(text)
        if len(pieces) > len(states):  # probes gone from the config leave the cache with it
            kept = {state.config.name for state in states}
            for name in [name for name in pieces if name not in kept]:
                del pieces[name], rendered[name]
        self.rendered_last_scrape = misses

    def _chunks(self, by_family: dict[str, list[bytes]], head: bytes) -> Iterator[bytes]:
        # Family by family, so that no single join (a C call that keeps the GIL) runs long, and
        # the whole text (30 MB at 10,000 probes) never has to exist at once.
        yield head
        for family, texts in by_family.items():
            if not texts:
                continue
            kind, help_text = self._families[family]
            yield f"# HELP {family} {_escape_help(help_text)}\n# TYPE {family} {kind}\n".encode()
            yield b"".join(texts)  # not added to the header: that would copy the family's text again

    def _assemble(self, by_family: dict[str, list[bytes]], head: bytes) -> bytes:
        return b"".join(self._chunks(by_family, head))

    def render(self, states: Sequence[ProbeState], head: bytes = b"") -> bytes:
        """`head`, then the probe families as text, all at once (tests, tools)."""
        by_family: dict[str, list[bytes]] = {name: [] for name in self._families}
        for _ in self._collect(states, by_family):
            pass
        return self._assemble(by_family, head)

    async def scrape(self, states: list[ProbeState], agent_registry: CollectorRegistry, compress: bool) -> list[bytes]:
        """The agent's own metrics and the probe families, never holding the loop for long: the
        body's pieces, in order; gzipped (one piece) if asked, compressed a family at a time."""
        async with self._lock:
            by_family: dict[str, list[bytes]] = {name: [] for name in self._families}
            for _ in self._collect(states, by_family):
                await asyncio.sleep(0)

            def finish() -> list[bytes]:
                chunks = self._chunks(by_family, generate_latest(agent_registry))
                if not compress:
                    return list(chunks)
                gzipper = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip format
                packed = [gzipper.compress(chunk) for chunk in chunks]
                packed.append(gzipper.flush())
                return [b"".join(packed)]

            return await asyncio.to_thread(finish)


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def render_run(config: ProbeConfig, result: Result) -> bytes:
    """One run as blackbox_exporter's /probe answers it: the probe's series with no labels of
    the agent's own (Prometheus adds job and instance), the phases and every value of the type
    that has a metric. For GET /probe: nothing is kept, so nothing is cached."""
    probe_cls = REGISTRY[config.type]
    families: dict[str, tuple[str, str, list[str]]] = {}

    def add(metric: str, kind: str, help_text: str, line: str) -> None:
        families.setdefault(metric, (kind, help_text, []))[2].append(line)

    add("probe_success", *CORE_FAMILIES["probe_success"], f"probe_success {'1' if result.success else '0'}\n")
    add(
        "probe_duration_seconds",
        *CORE_FAMILIES["probe_duration_seconds"],
        f"probe_duration_seconds {_num(result.duration)}\n",
    )
    if probe_cls.phase_metric and result.phases:
        metric, label = probe_cls.phase_metric, probe_cls.phase_label
        for phase, seconds in result.phases.items():
            add(
                metric,
                "gauge",
                f"Duration of each {label} of the {config.type} probe run.",
                f'{metric}{{{label}="{_escape(phase)}"}} {_num(seconds)}\n',
            )
    for value_name, value in result.values.items():
        spec = probe_cls.values.get(value_name)
        if spec is None or spec.metric is None:
            continue
        if spec.labels:
            extra = result.value_labels.get(value_name, {})
            text = make_label_set({k: extra.get(k, "") for k in spec.labels})[2]
        else:
            text = ""
        add(spec.metric, "gauge", spec.help, f"{spec.metric}{text} {_num(value)}\n")
    return "".join(
        f"# HELP {metric} {_escape_help(help_text)}\n# TYPE {metric} {kind}\n" + "".join(lines)
        for metric, (kind, help_text, lines) in families.items()
    ).encode()
