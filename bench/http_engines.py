"""CPU per HTTP request of candidate engines beside the real daemon, in the same run.

Issue 24's first question: which HTTP engine would bring the daemon within 2x of the floor?
Each row is a process of its own pinned to core 0 (nginx keeps to core 1), asking `--probes`
targets once a second each (the agent's pacing: a fresh connection per request, the whole body
read) for `--window` seconds; the rows are interleaved over `--rounds` rounds and the median
is printed. The engines are in bench/engines.py: aiohttp as the agent uses it, libcurl's multi
interface through pycurl on the event loop, and a bare asyncio.Protocol with httptools' parser
(the floor). `agent` is `probe-agent run` with as many http probes at the same rate (its CPU
over the window, per result, scrapes at the start and end of the window included).

    .venv/bin/python bench/http_engines.py [--probes 1000] [--window 10] [--rounds 3]

Needs scripts/bootstrap.sh --bench (nginx, and the `bench` extra: pycurl, httptools).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import reproduce_line
from bench.daemon import ROOT, AgentUnderTest, cpu_seconds, nginx, parse_metrics, probes_file, sum_of

ENGINES = ("raw", "curl", "aiohttp")
GOAL = 2.0  # the daemon within 2x of the floor (issue 24)
AGENT_CORE, TARGET_CORE = 0, 1


def engine_ms(engine: str, url: str, probes: int, window: float) -> tuple[float, int]:
    """(CPU ms per request, failed requests) of one engine's fixed-rate loop."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.engines", engine, url, str(probes), "1.0", str(window)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    os.sched_setaffinity(proc.pid, {AGENT_CORE})
    try:
        out, _ = proc.communicate(timeout=window + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SystemExit(f"engine {engine} did not finish a {window:g} s window within a minute more") from None
    if proc.returncode != 0:
        raise SystemExit(f"engine {engine} failed ({proc.returncode})")
    cpu, done, failed = out.split()
    return float(cpu) * 1000 / max(int(done), 1), int(failed)


def agent_ms(url: str, probes: int, window: float, tmp: Path) -> tuple[float, int]:
    """(CPU ms per result, results that were not OK) of the daemon at the same rate."""
    agent = AgentUnderTest(probes_file(tmp, probes, url, 1.0, 0.5), tmp / "agent.log")
    os.sched_setaffinity(agent.proc.pid, {AGENT_CORE})
    try:
        agent.wait_all_ran(timeout=120)
        time.sleep(2.0)  # a full round before measuring

        def scrape() -> dict[str, float]:
            code, body = agent.get("/metrics")
            assert code == 200
            return parse_metrics(body.decode())

        before, cpu_before = scrape(), cpu_seconds(agent.proc.pid)
        time.sleep(window)
        after, cpu_after = scrape(), cpu_seconds(agent.proc.pid)
    finally:
        agent.stop()
    runs = sum_of(after, "probe_results_total") - sum_of(before, "probe_results_total")
    not_ok = sum(
        v - before.get(k, 0.0)
        for k, v in after.items()
        if k.startswith("probe_results_total{") and 'status="ok"' not in k
    )
    return (cpu_after - cpu_before) * 1000 / max(runs, 1), int(not_ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=1000, help="targets, each asked once a second")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-agent", action="store_true", help="the engines only")
    args = parser.parse_args()
    rows = [*ENGINES, *([] if args.no_agent else ["agent"])]
    figures: dict[str, list[float]] = {row: [] for row in rows}
    failures: dict[str, int] = dict.fromkeys(rows, 0)
    with nginx(cpu=TARGET_CORE) as url, tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        for _ in range(args.rounds):
            for row in rows:
                if row == "agent":
                    ms, failed = agent_ms(url, args.probes, args.window, Path(tmp))
                else:
                    ms, failed = engine_ms(row, url, args.probes, args.window)
                figures[row].append(ms)
                failures[row] += failed
    medians = {row: statistics.median(values) for row, values in figures.items()}
    floor = medians["raw"]
    print(
        f"http engines bench: {args.probes} targets once a second each, fresh connections, "
        f"one core; median of {args.rounds} rounds of {args.window:g} s"
    )
    print(f"{'engine':>8} {'ms CPU/request':>15} {'vs floor':>9} {'failed':>7}  rounds")
    for row in rows:
        rounds = ", ".join(f"{v:.3f}" for v in figures[row])
        print(f"{row:>8} {medians[row]:15.3f} {medians[row] / floor:8.2f}x {failures[row]:7d}  {rounds}")
    if "agent" in medians:
        print(
            f"agent / aiohttp: {medians['agent'] / medians['aiohttp']:.2f}x; agent / floor (raw): "
            f"{medians['agent'] / floor:.2f}x (goal <= {GOAL:g}x)"
        )
    print(reproduce_line())


if __name__ == "__main__":
    main()
