"""`check --format nagios` as the plugin guidelines have it: perfdata values in plain decimal
(PNP4Nagios-style parsers misread 3.66892e+09), a few items by default (duration, what has a
threshold, what the type shows at a glance: check_http gives 2, one HTTP probe gave 11), all on
request, and a status line that gives the figure."""

from __future__ import annotations

import io
import re

from probe_agent.config.loader import parse_config
from probe_agent.core.results import Result, Status
from probe_agent.outputs.reports import render_nagios

CONFIG = parse_config(
    "probes: [{name: web, type: http, url: 'http://127.0.0.1:1/', thresholds: {content_length: {warning: '> 1000'}}},"
    " {name: port, type: tcp, host: 127.0.0.1, port: 1}]",
    env={},
)
CONFIGS = {p.name: p for p in CONFIG.probes}
PLAIN = re.compile(r"^'[^'=]+'=-?\d+(\.\d+)?(s|B|)?;[\d.:~@]*;[\d.:~@]*;\d*;$")


def web(duration: float = 0.000417403) -> Result:
    values = {"status_code": 200, "content_length": 612, "body_bytes": 612, "ip_addr_hash": 3668920000.0}
    values |= {"http_version": 1.1, "ssl": 0, "dns_lookup_seconds": 1.5e-05}
    return Result("web", "http", Status.OK, None, "", duration, 1.0, {}, values, {})


def nagios(results: list[Result], perfdata: str = "default") -> str:
    out = io.StringIO()
    render_nagios(results, CONFIGS, out, perfdata)
    return out.getvalue()


def items(text: str) -> list[str]:
    return text.splitlines()[0].partition(" | ")[2].split(" ")


def test_values_are_plain_decimal_in_every_item() -> None:
    every = items(nagios([web()], "all"))
    assert all(PLAIN.match(item) for item in every), [i for i in every if not PLAIN.match(i)]
    assert "'web/ip_addr_hash'=3668920000;;;;" in every
    assert "'web/duration'=0.000417s;;;0;" in every
    assert "'web/dns_lookup_seconds'=0.000015s;;;0;" in every


def test_by_default_the_duration_what_has_a_threshold_and_what_the_type_shows() -> None:
    shown = items(nagios([web()]))
    assert [item.split("=")[0] for item in shown] == [
        "'web/duration'",
        "'web/status_code'",
        "'web/body_bytes'",
        "'web/content_length'",
    ], shown
    assert "'web/content_length'=612;1000;;;" in shown
    named = items(nagios([web()], "duration,ssl"))
    assert [item.split("=")[0] for item in named] == ["'web/duration'", "'web/ssl'"]


def test_the_status_line_gives_the_figure() -> None:
    one = nagios([web(0.0123)]).splitlines()[0]
    assert one.startswith("PROBE-AGENT OK - web: ok in 12 ms | "), one
    port = Result("port", "tcp", Status.OK, None, "", 0.0021, 1.0, {}, {}, {})
    two = nagios([web(0.0123), port]).splitlines()[0]
    assert two.startswith("PROBE-AGENT OK - 2 of 2 ok, slowest web in 12 ms | "), two


def test_an_adhoc_probe_is_named_after_its_target_without_its_credentials() -> None:
    import yaml

    from probe_agent.commands.check import adhoc_config

    def name(probe_type: str, target: str, *sets: str) -> str:
        entry = yaml.safe_load(adhoc_config(probe_type, target, sets, "5s", None, None, None))["probes"][0]
        return str(entry["name"])

    assert name("http", "https://shop.example:8443/health/ready?x=1") == "shop.example:8443"
    assert name("postgres", "postgresql://probe:s3cret@db.internal/app") == "db.internal"
    assert name("redis", "cache.internal:6379") == "cache.internal:6379"
    assert name("tcp", "[::1]:25") == "tcp_::1:25"
    assert name("tcp", "smtp:25", "name=mail") == "mail"  # --set name= still wins


def test_the_plugins_own_line_is_short_whatever_a_problem_quotes(capsys: object) -> None:
    from probe_agent.outputs.problems import MAX_PLUGIN_LINE, print_problems

    print_problems([f"probe 'p': url: invalid URL {'x' * 100_000!r}"], "probes.yaml", plugin=True)
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.startswith("PROBE-AGENT UNKNOWN - probes.yaml: probe 'p': url: invalid URL")
    assert out.count("\n") == 1 and len(out) <= len("PROBE-AGENT UNKNOWN - ") + MAX_PLUGIN_LINE + 1


def test_what_the_agent_writes_for_a_plugin_is_ascii(capsys: object) -> None:
    """Its own words and units in ASCII, as the monitoring-plugins write them: µs and … reach
    NRPE, NSCA and PNP4Nagios-style parsers that take bytes for Latin-1 or drop them."""
    from probe_agent.outputs.problems import print_problems

    slow = Result("port", "tcp", Status.WARNING, None, "duration 400 µs > 300 µs (warning)", 0.0004, 1.0, {}, {}, {})
    text = nagios([web(0.0004)]) + nagios([slow])
    assert "ok in 400 us" in text and "duration 400 us > 300 us" in text, text
    print_problems([f"probe 'p': url: invalid URL {'x' * 1000!r}"], "probes.yaml", plugin=True)
    text += capsys.readouterr().out  # type: ignore[attr-defined]
    assert text.isascii(), [c for c in text if not c.isascii()]
