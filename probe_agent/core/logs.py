"""Logging set-up: JSON lines for the daemon (or logfmt), plain text for `check`; every line redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from probe_agent.core.redact import Redactor

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class RedactingFilter(logging.Filter):
    """Last net: whatever a library put into a log line, secrets are masked before it is written."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, (str, list, tuple, dict)):
                setattr(record, key, self._redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

    def _redact(self, value: Any) -> Any:
        """Every field, lists and nested values included (a rejected reload logs its problem list)."""
        if isinstance(value, str):
            return self.redactor.redact(value)
        if isinstance(value, (list, tuple)):
            return [self._redact(v) for v in value]
        if isinstance(value, dict):
            return {k: self._redact(v) for k, v in value.items()}
        return value


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


MAX_TEXT_VALUE = 4096  # characters of one field in a text line; a target's text may be longer
_LOGFMT_PLAIN = re.compile(r"[^\s\"=\\\x00-\x1f\x7f]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def logfmt_value(value: object) -> str:
    """A field's value as logfmt writes it: bare when it is one plain word, else quoted with its
    quotes, backslashes and control characters escaped, so a target's text (`x probe=orders-db
    to=ok`, a newline in a reason) can never read as other fields or another line."""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, default=str)
        if isinstance(value, (list, dict))
        else str(value)
    )
    if len(text) > MAX_TEXT_VALUE:
        text = text[:MAX_TEXT_VALUE] + "…"
    if _LOGFMT_PLAIN.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _CONTROL.sub(lambda m: json.dumps(m.group(0))[1:-1], escaped) + '"'


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={logfmt_value(v)}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and v is not None and v != ""
        )
        message = _CONTROL.sub(lambda m: json.dumps(m.group(0))[1:-1], record.getMessage()[:MAX_TEXT_VALUE])
        line = f"{_timestamp(record)} {record.levelname.lower()}: {message}" + (f" {extras}" if extras else "")
        return line + (f"\n{record.exc_text}" if record.exc_text else "")


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=... logger=... msg="..." key=value ...`, one line a record: the logfmt of
    Prometheus and its exporters (`--log.format logfmt`), values quoted and escaped as the text
    lines' are, so a target's text stays one value of one line."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = [
            ("ts", _timestamp(record)),
            ("level", record.levelname.lower()),
            ("logger", record.name),
            ("msg", record.getMessage()),
            *((k, v) for k, v in record.__dict__.items() if k not in _STANDARD and v is not None and v != ""),
        ]
        if record.exc_text:
            pairs.append(("exception", record.exc_text))
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in pairs)


FORMATTERS = {"json": JsonFormatter, "text": TextFormatter, "logfmt": LogfmtFormatter}


def setup_logging(fmt: str, level: str, redactor: Redactor) -> RedactingFilter:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS.get(fmt, TextFormatter)())
    redacting = RedactingFilter(redactor)
    handler.addFilter(redacting)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp logs every request to /metrics at info; that is noise for a prober
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return redacting
