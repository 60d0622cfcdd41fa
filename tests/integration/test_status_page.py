"""The status page in a real headless Chromium (Debian's, driven by Playwright): it renders,
shows an injected fault within a probe interval without a reload, shows maintenance banners
and incidents, keeps secrets out, and reads on a phone. Screenshots are kept for a look."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port
from tests.helpers.processes import demo_shop, http_json
from tests.helpers.screens import SAVED

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# the flags this sandbox needs: no setuid sandbox as root, and no calls home (refused here)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("PROBE_AGENT_SCREENSHOTS", Path(__file__).parents[2] / ".screenshots"))
TOKEN = "s3cret-Bearer-Token-42"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed (scripts/bootstrap.sh --test installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SAVED.append(str(path))  # listed in pytest's summary
    return path


def row(page: Page, probe: str) -> str:
    return page.locator(f'li.probe[data-probe="{probe}"]').inner_text()


def test_page_renders_and_shows_a_fault_within_an_interval(tmp_path: Path, browser: Browser) -> None:
    with demo_shop() as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(f"""
defaults: {{interval: 1s, timeout: 800ms}}
probes:
  - name: shop-readiness
    type: http
    url: {shop}/health/readiness
    headers: {{Authorization: "Bearer ${{SHOP_TOKEN}}"}}
    critical: true
  - {{name: payments, type: tcp, host: 127.0.0.1, port: {free_port()}, tags: [pay]}}
maintenance:
  - {{name: psp-upgrade, tags: [pay], reason: "PSP cut-over <img src=x onerror=alert(1)>", every: day, at: "00:00", duration: 7d}}
""")
        agent = AgentProcess(config, env={"SHOP_TOKEN": TOKEN}).start()
        try:
            agent.wait_for(lambda: all(p["status"] for p in agent.health()[1]["probes"]), what="first results")
            page = browser.new_page(viewport={"width": 1024, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            response = page.goto(agent.url + "/")  # / sends the browser to the status page
            assert response is not None and response.ok and page.url.endswith("/status")
            assert "Content-Security-Policy" in {k.title(): v for k, v in response.headers.items()}
            assert page.title() == "Status — probe-agent"
            assert page.locator("#verdict").inner_text() == "All probes are passing"
            assert "OK" in row(page, "shop-readiness")
            assert "MAINTENANCE" in row(page, "payments") and "in maintenance window psp-upgrade" in row(
                page, "payments"
            )
            banner = page.locator(".banner").inner_text()
            assert "Maintenance psp-upgrade" in banner and "PSP cut-over" in banner and "tag pay" in banner
            # markup in what the config says is shown as text, never run
            assert "<img src=x onerror=alert(1)>" in banner and page.locator("img").count() == 0
            page.evaluate("window.loadedOnce = 'yes'")  # gone if the page were reloaded
            shot(page, "status-ok")

            http_json("POST", f"{shop}/admin/faults", json.dumps({"endpoint": "readiness", "mode": "error"}).encode())
            injected = time.monotonic()
            # (a locator, not wait_for_function: the page's CSP forbids the eval that one uses)
            page.locator('li.failing[data-probe="shop-readiness"] .health').wait_for(timeout=10_000)
            seen_after = time.monotonic() - injected
            # within one interval (1 s) of the probe, plus the page's own 1 s refresh and slack
            assert seen_after < 1 + 1 + 1.5, f"the fault showed after {seen_after:.1f}s"
            assert page.evaluate("window.loadedOnce") == "yes"
            assert page.locator("#verdict").inner_text() == "A critical probe is failing"
            assert "status 500" in row(page, "shop-readiness")
            incidents = page.locator("ol.incidents").inner_text()
            assert "shop-readiness: ok → failing" in incidents
            html = page.content()
            assert TOKEN not in html and TOKEN not in page.locator("body").inner_text()
            shot(page, "status-fault")

            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2)
            phone.goto(agent.url + "/status")
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
            shot(phone, "status-phone")
            assert errors == []  # the CSP let the page's own script and style run, and nothing else failed
        finally:
            agent.stop()


def test_restricted_detail_hides_messages(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(
        f"probes:\n  - {{name: db, type: tcp, host: 127.0.0.1, port: {free_port()}, interval: 1s, timeout: 500ms}}\n"
    )
    agent = AgentProcess(config, args=["--web.health-detail", "status"]).start()
    try:
        agent.wait_for(lambda: agent.health()[1]["probes"][0].get("status"), what="a result")
        with urllib.request.urlopen(agent.url + "/status", timeout=5) as answer:
            page = answer.read().decode()
        assert 'data-probe="db"' in page and "FAILING" in page
        assert "connection refused" not in page and "127.0.0.1" not in page
        with urllib.request.urlopen(agent.url + "/status?partial=1", timeout=5) as answer:
            fragment = answer.read().decode()
        assert fragment.startswith('<p class="verdict') and "<html" not in fragment
    finally:
        agent.stop()


def test_the_verdict_tells_the_truth_at_a_glance(tmp_path: Path, browser: Browser) -> None:
    with demo_shop() as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(f"""
defaults: {{interval: 1s, timeout: 800ms}}
probes:
  - {{name: a-quiet, type: http, url: "{shop}/health/liveness"}}
  - {{name: z-slowish, type: http, url: "{shop}/health/liveness", thresholds: {{duration: {{warning: 1us}}}}}}
""")
        agent = AgentProcess(config).start()
        pages = []
        try:
            agent.wait_for(lambda: all(p["status"] for p in agent.health()[1]["probes"]), what="first results")
            for width, height in ((1024, 768), (390, 844)):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(agent.url + "/status")
                pages.append((page, height))
            page = pages[0][0]
            main = page.locator("main").inner_text()
            assert "2 probes: 1 warning, 1 ok." in main, main
            names = page.locator("li.probe").evaluate_all("items => items.map(i => i.dataset.probe)")
            assert names == ["z-slowish", "a-quiet"], names  # the warning first, though its name sorts last
            assert "WARNING" in row(page, "z-slowish")
            uptime = page.locator('li.probe[data-probe="a-quiet"] .uptime').inner_text()
            assert uptime.endswith("up over 1 min"), uptime  # not "24 h" after a few seconds
        finally:
            agent.stop()  # the agent goes away under the open pages
        for page, height in pages:
            verdict = page.locator("#verdict")
            page.locator("#verdict.failing").wait_for(timeout=5_000)
            assert verdict.inner_text().startswith("Cannot reach the agent since "), verdict.inner_text()
            box = verdict.bounding_box()
            assert box is not None and box["y"] + box["height"] <= height, box  # above the fold
            shot(page, f"status-unreachable-{height}")


def svg_texts(body: bytes) -> list[str]:
    """The words an SVG badge shows (it must parse as XML: a name with markup is escaped)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(body)
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_a_wall_screen_page_and_badges(tmp_path: Path, browser: Browser) -> None:
    with demo_shop() as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(f"""
defaults: {{interval: 1s, timeout: 800ms}}
status_page: {{title: "Shop <b>platform</b>", environment: production, group_by: tag}}
probes:
  - {{name: shop-readiness, type: http, url: "http://probe:{TOKEN}@{shop.removeprefix("http://")}/health/readiness",
      tags: [shop]}}
  - {{name: shop-port, type: tcp, host: 127.0.0.1, port: {shop.rsplit(":", 1)[1]}, tags: [shop]}}
  - {{name: psp, type: tcp, host: 127.0.0.1, port: {free_port()}, tags: ["pay<x>"]}}
  - {{name: loose, type: tcp, host: 127.0.0.1, port: {shop.rsplit(":", 1)[1]}}}
""")
        agent = AgentProcess(config).start()
        try:
            agent.wait_for(lambda: all(p["status"] for p in agent.health()[1]["probes"]), what="first results")
            http_json("POST", f"{shop}/admin/faults", json.dumps({"endpoint": "readiness", "mode": "error"}).encode())
            agent.wait_for(
                lambda: any(
                    p["status"] == "critical" for p in agent.health()[1]["probes"] if p["name"] == "shop-readiness"
                ),
                what="the fault seen",
            )
            http_json("DELETE", f"{shop}/admin/faults")
            agent.wait_for(
                lambda: any(p["status"] == "ok" for p in agent.health()[1]["probes"] if p["name"] == "shop-readiness"),
                what="the recovery seen",
            )
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(agent.url + "/status")
            # the title and the environment, as text (the markup in the title is not run)
            assert page.title() == "Shop <b>platform</b> (production) — probe-agent"
            assert page.locator("header h1").inner_text() == "Shop <b>platform</b>"
            assert page.locator("header .environment").inner_text() == "production"
            # groups by tag, in their order in the file; the untagged last
            groups = page.locator("section.group h2").all_inner_texts()
            assert [g.split(" ")[0] for g in groups] == ["shop", "pay<x>", "Other"], groups
            assert "1 failing" in groups[1], groups
            shop_group = page.locator('section.group[data-group="shop"]').inner_text()
            assert "shop-readiness" in shop_group and "shop-port" in shop_group and "loose" not in shop_group
            # each probe's type, target (redacted) and last latency
            details = page.locator('li.probe[data-probe="shop-readiness"] .details').inner_text()
            assert details.startswith("http · http://probe:***@127.0.0.1:") and re.search(r"· [\d.]+ ms$", details), (
                details
            )
            assert TOKEN not in page.content()
            # the incident with its duration: failing from ... to ..., for N s
            incident = page.locator("ol.incidents li").filter(has_text="shop-readiness").first.inner_text()
            assert re.search(r"shop-readiness: failing from .* to .*, for \d+ s", incident), incident
            shot(page, "status-wall")
            assert errors == []
            # badges: SVG any README or wiki can embed, one per probe and per tag
            for path, words in (
                ("/badge/probe/shop-port/status.svg", ["shop-port", "ok"]),
                ("/badge/probe/psp/status.svg", ["psp", "failing"]),
                ("/badge/tag/shop/status.svg", ["shop", "ok"]),
                ("/badge/tag/pay%3Cx%3E/status.svg", ["pay<x>", "failing"]),  # escaped in the SVG
            ):
                with urllib.request.urlopen(agent.url + path, timeout=5) as answer:
                    assert answer.headers["Content-Type"].startswith("image/svg+xml")
                    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
                    assert answer.headers["Cache-Control"] == "no-cache"
                    texts = svg_texts(answer.read())
                assert texts[:1] == [words[0]] and texts[-1] == words[1], (path, texts)
            with urllib.request.urlopen(agent.url + "/badge/probe/shop-port/uptime.svg", timeout=5) as answer:
                texts = svg_texts(answer.read())
            assert texts[0] == "shop-port" and re.fullmatch(r"[\d.]+%", texts[-1]), texts
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(agent.url + "/badge/probe/nothing-here/status.svg", timeout=5)
            assert missing.value.code == 404 and svg_texts(missing.value.read())[-1] == "not found"
            # as a README embeds them: images another page loads, drawn by the browser
            badge = browser.new_page(viewport={"width": 420, "height": 60})
            badge.set_content(
                f'<img id="s" src="{agent.url}/badge/tag/shop/status.svg"> '
                f'<img id="u" src="{agent.url}/badge/probe/shop-port/uptime.svg"> '
                f'<img id="f" src="{agent.url}/badge/probe/psp/status.svg">'
            )
            for image in ("s", "u", "f"):
                badge.locator(f"#{image}").wait_for()
                assert badge.locator(f"#{image}").evaluate("i => i.complete && i.naturalWidth") > 40
            shot(badge, "badges")
        finally:
            agent.stop()
