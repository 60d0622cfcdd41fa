"""Goodput past saturation: the real daemon on one core, every probe an HTTP probe of a healthy
local nginx, at rising demand. What it reached, and what it said about the target.

For each demand D (runs a second asked for) the agent gets D/2 probes every 500 ms, is pinned
to one core, warmed up, and measured over the window from its own /metrics:

- goodput: runs a second that reached the target and passed (status ok);
- results: results a second of every kind (skipped ticks included);
- critical: CRITICAL results a second: about a healthy target, each one is a lie;
- skipped: ticks the agent could not start, counted apart (status="skipped").

The saturating demand is the one with the most goodput; past it, goodput should hold (>= 90%
of it at 2.7x) and critical stay 0. The agent has core 0 to itself: nginx and this process stay
on core 1 (nginx on the agent's core made every figure depend on where the kernel put it). Each
demand is measured `--repeat` times, the rounds interleaved, and the median is shown: these
machines have neighbours, and one 10-s window swings by 20%. "vs sat" is the median over the
repeats of each repeat's goodput over the same repeat's at saturation (rounds next to each other
share the machine's mood).

    .venv/bin/python bench/overload.py [--demands 1000,2000,3000,4500,6000,8000] [--window 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon import AgentUnderTest, nginx, parse_metrics, probes_file

INTERVAL = 0.5


def totals(agent: AgentUnderTest) -> dict[str, float]:
    values = parse_metrics(agent.get("/metrics", timeout=60)[1].decode())
    by_status: dict[str, float] = {}
    for key, value in values.items():
        if key.startswith("probe_results_total{"):
            status = key.split('status="')[1].split('"')[0]
            by_status[status] = by_status.get(status, 0.0) + value
    return by_status


def measure(url: str, demand: int, window: float, warmup: float) -> dict[str, float]:
    count = max(1, int(demand * INTERVAL))
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        config = probes_file(Path(tmp), count, url, INTERVAL, 0.4)
        agent = AgentUnderTest(config, Path(tmp) / "agent.log")
        try:
            os.sched_setaffinity(agent.proc.pid, {0})
            time.sleep(warmup)
            before, started = totals(agent), time.monotonic()
            time.sleep(window)
            after, elapsed = totals(agent), time.monotonic() - started
        finally:
            agent.stop()
    rate = {k: (after.get(k, 0.0) - before.get(k, 0.0)) / elapsed for k in set(after) | set(before)}
    return {
        "goodput": rate.get("ok", 0.0),
        "results": sum(rate.values()),
        "critical": rate.get("critical", 0.0),
        "unknown": rate.get("unknown", 0.0),
        "skipped": rate.get("skipped", 0.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demands", default="1000,2000,3000,4500,6000,8000")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--verbose", action="store_true", help="print every round as it ends")
    args = parser.parse_args()
    demands = [int(d) for d in args.demands.split(",")]
    rounds: dict[int, list[dict[str, float]]] = {demand: [] for demand in demands}
    # the agent gets core 0 to itself; nginx and this process (its scrapes) keep to core 1
    os.sched_setaffinity(0, {1})
    with nginx(cpu=1) as url:
        for _ in range(args.repeat):
            for demand in demands:
                rounds[demand].append(measure(url, demand, args.window, args.warmup))
                if args.verbose:
                    row = rounds[demand][-1]
                    print(
                        f"  round: demand {demand}/s goodput {row['goodput']:.0f}/s skipped {row['skipped']:.0f}/s",
                        flush=True,
                    )
    # each demand's median round by goodput, whole (its other figures are that round's)
    rows = [(demand, sorted(runs, key=lambda row: row["goodput"])[len(runs) // 2]) for demand, runs in rounds.items()]
    best_demand, best = max(rows, key=lambda row: row[1]["goodput"])
    print(
        f"probe-agent overload bench: HTTP probes of a healthy nginx, agent on one core,"
        f" median of {args.repeat} windows of {args.window:g} s"
    )
    print(
        f"{'demand/s':>9} {'x sat':>6} {'goodput/s':>10} {'vs sat':>7} {'results/s':>10} {'critical/s':>11}"
        f" {'unknown/s':>10} {'skipped/s':>10}"
    )

    # "vs sat" pairs the rounds: each repeat's goodput at a demand over the same repeat's at the
    # saturating demand, median over the repeats. The rounds of one repeat are a minute apart; the
    # machine's speed drifts by more than the effect between repeats (seen: 1,450-2,580 runs/s at
    # the same demand in one bench).
    def vs_saturation(demand: int) -> float:
        ratios = sorted(
            mine["goodput"] / theirs["goodput"]
            for mine, theirs in zip(rounds[demand], rounds[best_demand], strict=True)
            if theirs["goodput"]
        )
        return ratios[len(ratios) // 2] if ratios else 0.0

    for demand, row in rows:
        print(
            f"{demand:>9} {demand / best_demand:>6.2f} {row['goodput']:>10.0f} {vs_saturation(demand):>7.2f}"
            f" {row['results']:>10.0f} {row['critical']:>11.1f} {row['unknown']:>10.1f} {row['skipped']:>10.0f}"
        )
    print(f"saturation: {best['goodput']:.0f} runs/s at a demand of {best_demand}/s")
    print("goals: past saturation (2.7x) goodput >= 90% of it; no CRITICAL result about the healthy target")
    print(
        f"reproduce: .venv/bin/python bench/overload.py --demands {args.demands} --window {args.window:g}"
        f" --repeat {args.repeat}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
