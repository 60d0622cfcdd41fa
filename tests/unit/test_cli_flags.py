"""Prometheus-style flag spellings, as the exporters SREs run spell them, beside the agent's own."""

from __future__ import annotations

from probe_agent.cli import build_parser, is_adhoc


def test_prometheus_style_spellings_are_the_same_options() -> None:
    ours = build_parser().parse_args(
        ["run", "--listen", "127.0.0.1:9999", "--log-level", "debug", "--log-format", "json"]
    )
    theirs = build_parser().parse_args(
        ["run", "--web.listen-address", "127.0.0.1:9999", "--log.level", "debug", "--log.format", "json"]
    )
    assert (theirs.listen, theirs.log_level, theirs.log_format) == (ours.listen, ours.log_level, ours.log_format)
    assert theirs.listen == ("127.0.0.1", 9999)
    checked = build_parser().parse_args(["check", "--log.level", "info"])
    assert checked.log_level == "info"
    assert not is_adhoc(["--log.level", "info", "-c", "probes.yaml"])  # its value is no TYPE


def test_run_takes_logfmt_as_prometheus_spells_it() -> None:
    assert build_parser().parse_args(["run", "--log.format", "logfmt"]).log_format == "logfmt"
