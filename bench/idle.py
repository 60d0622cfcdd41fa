"""What an idle agent costs: the real daemon with N probes of an hourly interval (so, after
their first runs, nothing is due), measured over a window in which no run is due and nobody
scrapes. Everything it spends then is its own bookkeeping: the watchdog, the loop monitor,
timers. Beside it, in the same run, a bare uvloop process holding N timers an hour away.

    .venv/bin/python bench/idle.py [--sizes 10000,50000] [--window 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon import AgentUnderTest, cpu_seconds

BARE = """
import asyncio, sys, time, uvloop
async def main(count, seconds):
    loop = asyncio.get_running_loop()
    for i in range(count):
        loop.call_later(3600 + i / count, lambda: None)
    await asyncio.sleep(seconds)
uvloop.run(main(int(sys.argv[1]), float(sys.argv[2])))
"""


def bare_cpu_share(count: int, seconds: float) -> float:
    proc = subprocess.Popen([sys.executable, "-c", BARE, str(count), str(seconds + 3)])
    time.sleep(2)  # its timers are set
    before = cpu_seconds(proc.pid)
    time.sleep(seconds)
    used = cpu_seconds(proc.pid) - before
    proc.wait(30)
    return used / seconds


def agent_cpu_share(count: int, seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        config = Path(tmp) / "probes.yaml"
        # a refused port: each first run ends at once, and nothing else is due for an hour
        config.write_text(
            "probes:\n"
            + "".join(
                f"  - {{name: p{i}, type: tcp, host: 127.0.0.1, port: 1, interval: 1h, timeout: 1s}}\n"
                for i in range(count)
            )
        )
        agent = AgentUnderTest(config, Path(tmp) / "agent.log")
        try:
            ran = agent.wait_all_ran(timeout=300)
            time.sleep(3)  # the last first runs' results recorded, the start-up garbage gone
            before = cpu_seconds(agent.proc.pid)
            time.sleep(seconds)
            used = cpu_seconds(agent.proc.pid) - before
        finally:
            agent.stop()
    return used / seconds, ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    print(f"probe-agent idle cost: nothing due and no scrape for {args.window:g} s, in % of one core")
    print(f"{'probes':>8} {'agent':>7} {'bare':>7} {'first runs s':>13}")
    for size in (int(s) for s in args.sizes.split(",")):
        agent, ran = agent_cpu_share(size, args.window)
        bare = bare_cpu_share(size, args.window)
        print(f"{size:>8} {agent * 100:>6.2f}% {bare * 100:>6.2f}% {ran:>13.1f}")
    print("goal: an idle agent at 50,000 probes uses <= 2% of a core")
    print("reproduce: .venv/bin/python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
