"""--log-format logfmt (Prometheus's and its exporters' `--log.format logfmt`): one line of
key=value pairs a record, which Loki's and Vector's logfmt parsers read back field by field,
whatever text a target put in a value."""

from __future__ import annotations

import logging
import re

from probe_agent.core.logs import LogfmtFormatter

PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"=]+)(?: |$)')


def parse(line: str) -> dict[str, str]:
    pairs, pos = {}, 0
    for match in PAIR.finditer(line):
        assert match.start() == pos, f"not logfmt at {pos}: {line[pos : pos + 40]!r}"
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), value[1:-1])
        pairs[match.group(1)] = value
        pos = match.end()
    assert pos == len(line), line
    return pairs


def test_a_record_is_one_line_of_pairs_whatever_a_target_wrote() -> None:
    record = logging.LogRecord("probe_agent", logging.WARNING, __file__, 1, "probe status changed", None, None)
    record.probe = "orders-db"
    record.detail = 'x probe=evil level=info\n"quoted" \\ back'
    record.duration_seconds = 0.0123
    line = LogfmtFormatter().format(record)
    assert "\n" not in line
    fields = parse(line)
    assert fields["level"] == "warning" and fields["msg"] == "probe status changed"
    assert fields["logger"] == "probe_agent" and fields["probe"] == "orders-db"
    assert fields["detail"] == 'x probe=evil level=info\n"quoted" \\ back'
    assert fields["duration_seconds"] == "0.0123"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["ts"])
