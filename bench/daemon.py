"""What the daemon benches share: a fast local target (nginx), the real agent as a process, a bare
aiohttp + uvloop loop as the baseline process, and readings of CPU, RSS and /metrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.netfaults import free_port  # noqa: E402
from tests.helpers.processes import http_server_process  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def nginx(cpu: int | None = None) -> Iterator[str]:
    """Debian's nginx-light with a private config: answers 200 to any path; not the bottleneck.
    With `cpu`, its worker stays on that core (away from an agent pinned to another)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        sys.exit("nginx not found: run scripts/bootstrap.sh --bench (installs Debian's nginx-light)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(f"""
daemon off;
worker_processes 1;
{f"worker_cpu_affinity {1 << cpu:b};" if cpu is not None else ""}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log error;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
}}
""")
        with http_server_process([binary, "-c", str(conf), "-p", tmp], port) as url:
            yield url


def probes_file(
    directory: Path, count: int, url: str, interval: float, timeout: float, extra: str = "", head: str = ""
) -> Path:
    path = directory / f"probes-{count}.yaml"
    path.write_text(
        head
        + "probes:\n"
        + "".join(
            f'  - {{name: p{i}, type: http, url: "{url}/p/{i}", interval: {interval}s, timeout: {timeout}s}}\n'
            for i in range(count)
        )
        + extra
    )
    return path


class AgentUnderTest:
    """`probe-agent run` as its own process, exactly as an operator starts it."""

    def __init__(self, config: Path, log: Path, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.monotonic()
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "probe_agent",
                "run",
                "-c",
                str(config),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--log-level",
                os.environ.get("BENCH_LOG_LEVEL", "error"),
                "--max-config-bytes",
                str(64 << 20),
                *extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def get(self, path: str, gzip: bool = False, timeout: float = 30) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, headers={"Accept-Encoding": "gzip"} if gzip else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_all_ran(self, timeout: float) -> float:
        """Seconds from launch until no probe is pending (every probe has a first result)."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}")
            try:
                code, body = self.get("/health/ready", timeout=5)
                if code in (200, 503) and json.loads(body).get("pending") == []:
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("probes still pending")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def parse_metrics(text: str) -> dict[str, float]:
    """Agent self-metrics and sums over probe series, keyed by the sample as written (labels included)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        key, _, value = line.rpartition(" ")
        values[key] = float(value)
    return values


def sum_of(values: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in values.items() if k.startswith(prefix))


def histogram_quantile(q: float, before: dict[str, float], after: dict[str, float], name: str) -> float:
    """Upper bound of the bucket holding quantile q of the observations between two readings."""
    buckets = []
    for key, value in after.items():
        if key.startswith(f'{name}_bucket{{le="'):
            le = key.split('le="')[1].split('"')[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets.append((bound, value - before.get(key, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return float("nan")


def bare_loop_cpu_ms(url: str, count: int, interval: float, seconds: float) -> float:
    """CPU ms per request of a bare aiohttp + uvloop fixed-rate loop over the same targets
    (bench/engines.py's `aiohttp`: a fresh connection per request, nothing recorded)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.engines", "aiohttp", url, str(count), str(interval), str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
        cwd=ROOT,
    )
    cpu, done, _failed = out.stdout.split()
    return float(cpu) * 1000 / max(int(done), 1)
