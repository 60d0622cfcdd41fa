"""A scraper that hangs up is no error of the agent's: aiohttp's traceback for it is dropped."""

from __future__ import annotations

import logging
import sys

from probe_agent.web.server import _client_gone


def _record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:  # noqa: BLE001
        return logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), sys.exc_info()
        )


def test_a_client_that_hung_up_is_not_logged_but_a_real_error_is() -> None:
    import aiohttp

    assert not _client_gone(_record(aiohttp.ClientConnectionResetError("Cannot write to closing transport")))
    assert _client_gone(_record(RuntimeError("a bug")))


def test_text_logs_quote_a_targets_words_so_they_never_read_as_fields_or_lines() -> None:
    from probe_agent.core.logs import TextFormatter

    record = logging.LogRecord(
        "probe_agent", logging.WARNING, __file__, 1, "probe status changed\nforged: line", (), None
    )
    record.probe = "evil"
    record.message_text = "x probe=orders-db to=ok"
    record.reason = "planned\nerror: fake line"
    record.plain = "ok"
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert 'message_text="x probe=orders-db to=ok"' in line
    assert 'reason="planned\\nerror: fake line"' in line
    assert " plain=ok" in line and " probe=evil" in line
    assert "probe status changed\\nforged: line" in line
