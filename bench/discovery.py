"""Discovered probes against static ones: N HTTP probes of a local nginx written out in the
probes file, and the same N made by a target group from a Prometheus file_sd file, each in the
real daemon, in the same run. Then 20 refreshes that each change 1% of the targets: how many
probes each restarts (the others keep their schedule and state), and whether the runs bunch
in the interval afterwards (each probe's offset derives from its name, so they should not).

    .venv/bin/python bench/discovery.py [--probes 10000] [--churns 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon import AgentUnderTest, nginx, parse_metrics, probes_file, rss_mb

INTERVAL = 30.0


def targets(address: str, count: int, first: int = 0) -> str:
    # nginx answers any path; the query string makes each target (and so each probe) its own
    return json.dumps([{"targets": [f"{address}?t={i}" for i in range(first, first + count)]}])


def measure(config: Path, log: Path, extra: tuple[str, ...] = ()) -> tuple[float, float, AgentUnderTest]:
    agent = AgentUnderTest(config, log, extra)
    ran = agent.wait_all_ran(timeout=180)
    time.sleep(2)
    return ran, rss_mb(agent.proc.pid), agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=10_000)
    parser.add_argument("--churns", type=int, default=20, help="refreshes of 1%% churn, one after another")
    args = parser.parse_args()
    n = args.probes
    with nginx() as url, tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
        root = Path(tmp)
        static_ran, static_rss, agent = measure(probes_file(root, n, url, INTERVAL, 5.0), root / "static.log")
        agent.stop()
        address = urlsplit(url).netloc
        sd = root / "targets.json"
        sd.write_text(targets(address, n))
        config = root / "discovered.yaml"
        config.write_text(
            "target_groups:\n  - name: fleet\n    file_sd_configs: [{files: [targets.json]}]\n"
            f"    max_targets: {n}\n"
            "    probe: {type: http, name: 'p{{target.address}}', url: 'http://{{target.address}}',"
            f" interval: {INTERVAL:g}s, timeout: 5s}}\n"
        )
        os.environ["BENCH_LOG_LEVEL"] = "info"  # the reload's one line says what it restarted
        found_ran, found_rss, agent = measure(config, root / "discovered.log", ("--watch-config", "1s"))
        try:
            churn = max(1, n // 100)
            restarts: list[tuple[int, int, int]] = []
            reload_seconds = []
            for round_ in range(1, args.churns + 1):
                fresh = root / "targets.new"
                fresh.write_text(targets(address, n, first=churn * round_))  # 1% gone, 1% new
                started = time.monotonic()
                fresh.replace(sd)
                while time.monotonic() - started < 120:
                    log = (root / "discovered.log").read_text()
                    lines = [x for x in log.splitlines() if '"msg": "config reloaded"' in x]
                    if len(lines) >= round_:
                        entry = json.loads(lines[-1])
                        restarts.append((entry.get("added"), entry.get("changed"), entry.get("removed")))
                        break
                    time.sleep(0.2)
                reload_seconds.append(time.monotonic() - started)
            # every probe runs once more after the last refresh: where in the interval do runs fall?
            time.sleep(INTERVAL + 5)
            metrics = parse_metrics(agent.get("/metrics", timeout=60)[1].decode())
            phases = [
                value % INTERVAL
                for key, value in metrics.items()
                if key.startswith("probe_last_run_timestamp_seconds{")
            ]
            bins = [0] * 100
            for phase in phases:
                bins[min(99, int(phase / INTERVAL * 100))] += 1
            bunching = max(bins) / (len(phases) / 100)
        finally:
            agent.stop()
    print(f"probe-agent discovery bench: {n} HTTP probes of nginx, static or from a file_sd file")
    print(f"{'':>12} {'all ran s':>10} {'RSS MB':>8}")
    print(f"{'static':>12} {static_ran:>10.1f} {static_rss:>8.1f}")
    print(f"{'discovered':>12} {found_ran:>10.1f} {found_rss:>8.1f}")
    print(f"discovered / static RSS: {found_rss / static_rss:.2f}")
    if restarts:
        first = restarts[0]
        print(
            f"a refresh with 1% churn ({churn} gone, {churn} new): added {first[0]}, changed {first[1]},"
            f" removed {first[2]}, loaded {reload_seconds[0]:.1f} s after the file changed"
        )
        exact = sum(1 for r in restarts if r == (churn, 0, churn))
        print(
            f"{len(restarts)} such refreshes: {exact} restarted exactly the {churn} gone and {churn} new;"
            f" loaded after {min(reload_seconds):.1f}-{max(reload_seconds):.1f} s"
        )
        print(
            f"runs bunched after them: the busiest 1% of the {INTERVAL:g}-s interval holds {bunching:.2f}x the"
            f" mean share ({len(phases)} probes' last runs; goal <= 2)"
        )
    print("reproduce: .venv/bin/python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
