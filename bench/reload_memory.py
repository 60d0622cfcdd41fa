"""Memory of the real daemon across reloads that change every probe.

`probe-agent run` with N http probes (against a refused port: no target needed) is reloaded
with SIGHUP (`--by sighup`) or by its config watcher (`--by watcher`: each new file is renamed
into place, as a ConfigMap update swaps it), every probe's URL changed each time; RSS is read
from /proc every 20 reloads.
What a reload builds is frozen out of the garbage collector's full collections (see
probe_agent/runtime/agent.py), so any cyclic garbage alive at that moment is kept: this bench
shows how much.

    .venv/bin/python bench/reload_memory.py [--probes 1000] [--reloads 120] [--by sighup|watcher]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon import AgentUnderTest, parse_metrics, rss_mb


def config_text(probes: int, version: int) -> str:
    return "probes:\n" + "".join(
        f'  - {{name: p{i}, type: http, url: "http://127.0.0.1:1/v{version}/{i}", interval: 1d, timeout: 2s}}\n'
        for i in range(probes)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--reloads", type=int, default=120)
    parser.add_argument("--by", choices=("sighup", "watcher"), default="sighup")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as tmp:
        path = Path(tmp) / "probes.yaml"
        path.write_text(config_text(args.probes, 0))
        watching = ("--watch-config", "200ms") if args.by == "watcher" else ("--no-watch-config",)
        agent = AgentUnderTest(path, Path(tmp) / "agent.log", watching)
        try:
            agent.wait_all_ran(timeout=60)
            print(f"probe-agent reload memory: {args.probes} probes, every one changed by each reload ({args.by})")
            print(f"{'reloads':>7} {'RSS MB':>7}")
            print(f"{0:>7} {rss_mb(agent.proc.pid):>7.1f}")
            first = rss_mb(agent.proc.pid)
            warm = first
            for n in range(1, args.reloads + 1):
                before = parse_metrics(agent.get("/metrics")[1].decode())[
                    "probe_agent_config_last_reload_success_timestamp_seconds"
                ]
                if args.by == "watcher":
                    fresh = path.with_suffix(".new")
                    fresh.write_text(config_text(args.probes, n))
                    fresh.replace(path)  # a new file at the path: loaded once it holds still
                else:
                    path.write_text(config_text(args.probes, n))
                    agent.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    now = parse_metrics(agent.get("/metrics")[1].decode())[
                        "probe_agent_config_last_reload_success_timestamp_seconds"
                    ]
                    if now != before:
                        break
                    time.sleep(0.05)
                if n % 20 == 0:
                    print(f"{n:>7} {rss_mb(agent.proc.pid):>7.1f}")
                if n == 20:
                    warm = rss_mb(agent.proc.pid)  # two configs' worth of arenas exist from here on
            growth = (rss_mb(agent.proc.pid) - first) / args.reloads
            print(f"growth: {growth * 1024:.0f} kB per reload of {args.probes} changed probes")
            if args.reloads > 20:
                after = rss_mb(agent.proc.pid) - warm
                print(
                    f"after the first 20 reloads: {after:+.1f} MB over {args.reloads - 20} more (goal: < 2 MB over 100)"
                )
        finally:
            agent.stop()
    print("reproduce: .venv/bin/python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
