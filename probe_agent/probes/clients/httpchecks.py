"""What the http and synthetic probes check in an answer, whichever client fetched it: status
ranges, the method, JSON paths, and the body's text, pattern and JSON. Imports no HTTP client."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from probe_agent.core import jsonpath
from probe_agent.core.errors import ProbeError, Reason

_STATUS_RANGE = re.compile(r"^([1-5])xx$|^(\d{3})(?:-(\d{3}))?$")


def parse_status_ranges(value: Any) -> tuple[tuple[int, int], ...]:
    items = value if isinstance(value, list) else [value]
    ranges = []
    for item in items:
        match = _STATUS_RANGE.match(str(item).strip())
        if not match:
            raise ValueError(f"invalid status {item!r}: expected 200, '2xx' or '200-299'")
        if match.group(1):
            low = int(match.group(1)) * 100
            ranges.append((low, low + 99))
        else:
            low = int(match.group(2))
            ranges.append((low, int(match.group(3) or low)))
    return tuple(ranges)


def format_status_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


def _check_method(method: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+", method):
        raise ValueError(f"invalid HTTP method {method!r}")
    return method.upper()


def _check_json_paths(paths: dict[str, Any]) -> dict[str, Any]:
    for path in paths:
        jsonpath.parse_path(path)
    return paths


# Field types shared with the synthetic probe's steps.
HttpMethod = Annotated[str, AfterValidator(_check_method)]
StatusRanges = Annotated[tuple[tuple[int, int], ...], BeforeValidator(parse_status_ranges)]
JsonExpectations = Annotated[dict[str, Any], AfterValidator(_check_json_paths)]


class BodyMismatch(ProbeError):
    """The body lacks the text or pattern it must have (blackbox_exporter's probe_failed_due_to_regex)."""


def check_body(body: bytes, contains: str | None, regex: str | None, expect_json: dict[str, Any]) -> None:
    """The body expectations shared by http and synthetic probes."""
    text = body.decode("utf-8", errors="replace") if (contains or regex) else ""
    if contains is not None and contains not in text:
        raise BodyMismatch(Reason.ASSERTION, f"body does not contain {contains!r}")
    if regex is not None and not re.search(regex, text):
        raise BodyMismatch(Reason.ASSERTION, f"body does not match /{regex}/")
    if expect_json:
        document = parse_json(body)
        for path, expected in expect_json.items():
            try:
                actual = jsonpath.lookup(document, path)
            except jsonpath.PathNotFound:
                raise ProbeError(Reason.ASSERTION, f"JSON path {path} not found in body") from None
            if actual != expected:
                raise ProbeError(
                    Reason.ASSERTION, f"JSON {path} is {json.dumps(actual)[:80]}, expected {json.dumps(expected)}"
                )


def parse_json(body: bytes) -> Any:
    try:
        return jsonpath.loads(body)
    except ValueError:
        raise ProbeError(Reason.ASSERTION, "body is not valid JSON") from None
