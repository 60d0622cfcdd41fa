"""A real Prometheus (Debian's `prometheus`) on a free loopback port, scraping what a test says."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.netfaults import free_port
from tests.helpers.processes import wait_port


class Prometheus:
    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}"

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.load(resp)["data"]

    def query_until(self, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Poll an instant query until it returns series. The first scrape shows after ~6 s."""
        query = urllib.parse.urlencode({"query": promql})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                series = self.api(f"/api/v1/query?{query}")["result"]
                if series:
                    return series  # type: ignore[no-any-return]
            except urllib.error.HTTPError as exc:
                # the port opens before the storage is ready: 503 until then
                assert exc.code == 503, exc  # noqa: PT017 - a poll loop, not a test of the error
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never returned {promql}; targets: {self.api('/api/v1/targets')}")


def _wait_ready(url: str, timeout: float = 30) -> None:
    """The port opens before the storage is: every API answers 503 until /-/ready says 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus at {url} not ready after {timeout:.0f} s")
        time.sleep(0.2)


@contextmanager
def prometheus(tmp_path: Path, scrape_configs: str, rule_files: list[Path] | None = None) -> Iterator[Prometheus]:
    """`scrape_configs`: the YAML list under scrape_configs, indented by two spaces."""
    port = free_port()
    rules = f"rule_files: {json.dumps([str(p) for p in rule_files])}\n" if rule_files else ""
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n" + rules + "scrape_configs:\n" + scrape_configs
    )
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        _wait_ready(f"http://127.0.0.1:{port}")
        yield Prometheus(port)
    finally:
        proc.terminate()
        proc.wait(10)
