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


def test_the_options_check_takes_a_value_of_are_known_to_is_adhoc() -> None:
    """is_adhoc() skips the word after an option that takes a value: its list must be every
    such option of both `check` parsers, or a new one's value would be taken for TYPE."""
    import argparse

    from probe_agent.cli import _VALUED, adhoc_parser

    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    valued = {
        option
        for parser in (commands.choices["check"], adhoc_parser())
        for action in parser._actions
        if action.option_strings and action.nargs != 0
        for option in action.option_strings
    }
    assert valued == _VALUED, (valued - _VALUED, _VALUED - valued)
