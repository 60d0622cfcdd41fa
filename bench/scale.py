"""The real daemon at 100, 1,000 and 10,000 HTTP probes, against a bare aiohttp + uvloop loop in the same run.

For each size N the probes share 1,000 runs a second (interval N/1000 s; at 100 probes,
100 ms) against a local nginx that is not the bottleneck. The agent is started as an
operator starts it (`probe-agent run`), scraped with gzip every 15 s as Prometheus does, and
measured from outside:

- first runs: seconds from launch until no probe is pending;
- RSS after the window, and its growth per probe between the smallest and largest size;
- CPU ms per probe run over the window (scheduler, runner, state and the scrapes included),
  beside the bare loop doing the same requests at the same rate, and their ratio;
- scrape: wall time of a gzip'ed /metrics, the longest of the window;
- loop stall: the longest event-loop lag seen in the window (scrapes included);
- scheduler lag p99: how late runs started (upper bound of the histogram bucket).

    .venv/bin/python bench/scale.py [--sizes 100,1000,10000] [--window 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon import (
    AgentUnderTest,
    bare_loop_cpu_ms,
    cpu_seconds,
    histogram_quantile,
    nginx,
    parse_metrics,
    probes_file,
    rss_mb,
    sum_of,
)

RATE = 1000.0  # probe runs per second, all probes together
SCRAPE_EVERY = 15.0
GOALS = "goals: first runs <= 5 s at 10,000; RSS <= 15 kB per probe; CPU <= 1.1x bare; scrape < 1 s; stall < 20 ms"


def measure(size: int, url: str, window: float, tmp: Path, head: str) -> dict[str, float]:
    interval = size / RATE
    timeout = min(interval / 2, 2.0)
    agent = AgentUnderTest(probes_file(tmp, size, url, interval, timeout, head=head), tmp / f"agent-{size}.log")
    try:
        first_runs = agent.wait_all_ran(timeout=120)
        time.sleep(max(interval, 2.0))  # one full round before measuring
        scrape_times = []

        def scrape() -> dict[str, float]:
            started = time.monotonic()
            code, body = agent.get("/metrics", gzip=True)
            scrape_times.append(time.monotonic() - started)
            assert code == 200
            import gzip

            return parse_metrics(gzip.decompress(body).decode())

        before, cpu_before, t0 = scrape(), cpu_seconds(agent.proc.pid), time.monotonic()
        stall = 0.0
        while time.monotonic() - t0 < window:
            time.sleep(min(SCRAPE_EVERY, window - (time.monotonic() - t0)))
            current = scrape()
            stall = max(stall, current["probe_agent_event_loop_lag_max_seconds"])
        after, cpu_after = current, cpu_seconds(agent.proc.pid)
        runs = sum_of(after, "probe_results_total") - sum_of(before, "probe_results_total")
        return {
            "first_runs": first_runs,
            "rss": rss_mb(agent.proc.pid),
            "cpu_ms": (cpu_after - cpu_before) * 1000 / max(runs, 1),
            "rate": runs / (time.monotonic() - t0),
            "scrape": max(scrape_times),
            "stall": stall,
            "lag_p99": histogram_quantile(0.99, before, after, "probe_agent_scheduler_lag_seconds"),
            "skipped": sum_of(after, "probe_agent_skipped_runs_total")
            - sum_of(before, "probe_agent_skipped_runs_total"),
            "distorted": after.get("probe_agent_distorted_runs_total", 0)
            - before.get("probe_agent_distorted_runs_total", 0),
        }
    finally:
        agent.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured per size")
    parser.add_argument(
        "--head", default="", help="top-level settings for the probes file, e.g. 'max_concurrency: 128'"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with nginx() as url, tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for size in sizes:
            row = measure(
                size, url, args.window, Path(tmp), args.head.replace("\\n", "\n") + ("\n" if args.head else "")
            )
            row["bare_ms"] = bare_loop_cpu_ms(url, size, size / RATE, args.window)
            rows.append((size, row))
            print(f"  measured {size} probes", file=sys.stderr, flush=True)
    print(
        f"probe-agent scale bench: {RATE:.0f} runs/s in all, gzip scrape every {SCRAPE_EVERY:.0f} s, window {args.window:.0f} s"
    )
    header = (
        f"{'probes':>7} {'first runs':>10} {'RSS MB':>7} {'runs/s':>7} {'agent ms/run':>12} {'bare ms/run':>11}"
        f" {'ratio':>6} {'scrape s':>8} {'max stall ms':>12} {'sched lag p99':>13} {'skipped':>7} {'distorted':>9}"
    )
    print(header)
    for size, r in rows:
        print(
            f"{size:>7} {r['first_runs']:>9.1f}s {r['rss']:>7.1f} {r['rate']:>7.0f} {r['cpu_ms']:>12.3f} {r['bare_ms']:>11.3f}"
            f" {r['cpu_ms'] / r['bare_ms']:>5.2f}x {r['scrape']:>8.3f} {r['stall'] * 1000:>12.1f}"
            f" {'<= ' + format(r['lag_p99'] * 1000, 'g') + ' ms':>13} {r['skipped']:>7.0f} {r['distorted']:>9.0f}"
        )
    if len(rows) > 1:
        (small, a), (large, b) = rows[0], rows[-1]
        print(f"RSS per probe: {(b['rss'] - a['rss']) * 1024 / (large - small):.1f} kB ({small} -> {large} probes)")
    print(GOALS)
    print("reproduce: .venv/bin/python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
