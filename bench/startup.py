"""Wall time of `probe-agent check` of one HTTP probe and of `--help`, beside `python -c pass`, in the same run.

What a shell loop or a CI gate pays per try. Both run as fresh processes, alternately, the
target a loopback HTTP server in its own process; the median of each is printed.

    .venv/bin/python bench/startup.py [--runs 15]
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

from tests.helpers.netfaults import free_port
from tests.helpers.processes import http_server_process

GOALS = {"check": 0.12, "help": 0.06}  # issue 24, wall seconds


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    port = free_port()
    target = [sys.executable, "-m", "tests.helpers.target_server", str(port)]
    with http_server_process(target, port) as url, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "probes.yaml"
        config.write_text(f"probes:\n  - {{name: web, type: http, url: '{url}/'}}\n")
        check = [sys.executable, "-m", "probe_agent", "check", "-c", str(config)]
        bare = [sys.executable, "-c", "pass"]
        usage = [sys.executable, "-m", "probe_agent", "--help"]
        # warm the page cache and write the bytecode caches an installed package has (this
        # sandbox sets PYTHONDONTWRITEBYTECODE, which would make every run compile its modules)
        timed(check, {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
        checks, bares, helps = [], [], []
        for _ in range(args.runs):
            checks.append(timed(check))
            bares.append(timed(bare))
            helps.append(timed(usage))
    check_s, bare_s, help_s = statistics.median(checks), statistics.median(bares), statistics.median(helps)
    print(f"probe-agent start-up bench: {args.runs} runs each, medians")
    print(f"  python -c pass                 {bare_s * 1000:6.0f} ms")
    print(
        f"  probe-agent check (1 http)     {check_s * 1000:6.0f} ms  (min {min(checks) * 1000:.0f}, max {max(checks) * 1000:.0f})"
    )
    print(f"  check minus bare interpreter   {(check_s - bare_s) * 1000:6.0f} ms")
    print(f"  probe-agent --help             {help_s * 1000:6.0f} ms")
    print(f"goals: check <= {GOALS['check'] * 1000:.0f} ms, --help <= {GOALS['help'] * 1000:.0f} ms wall")
    print(f"reproduce: .venv/bin/python bench/startup.py --runs {args.runs}")


if __name__ == "__main__":
    main()
