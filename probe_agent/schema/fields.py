"""Field types of probes.yaml shared by every probe type: durations, limits, URLs, regexes.

Imports nothing of probe-agent's above errors, so probe types and the loader can both use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator

# Labels the agent sets itself; a user label may not shadow them.
# "tags": probe_info's, which SLO rules join on (probe_agent.outputs.rules)
RESERVED_LABELS = frozenset(
    {"probe", "type", "status", "reason", "phase", "step", "target", "tags", "le", "instance", "job"}
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|s|m|h|d)")
_PLAIN_SECONDS = re.compile(r"\d+(?:\.\d+)?")  # "5" as a command-line argument or a quoted YAML value
_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, allow_zero: bool = False) -> float:
    """'500ms', '15s', '1m30s' or a number of seconds (5, 2.5, "5") -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 15s or 1m")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        if _PLAIN_SECONDS.fullmatch(text):
            pos, seconds = len(text), float(text)
        else:
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
                pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"invalid duration {value!r}: expected a duration such as 500ms, 15s or 1m")
    else:
        raise ValueError("expected a duration such as 500ms, 15s or 1m")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"duration must be positive, got {value!r}")
    # to the nanosecond: 700 * 1e-3 is 0.7000000000000001, which as a bucket bound would
    # print le="0.7000000000000001" and match no query written for 700 ms
    return round(seconds, 9)


Duration = Annotated[float, BeforeValidator(parse_duration)]

MAX_INTERVAL = 86400.0  # a probe that runs less than daily is not monitoring anything
MAX_TIMEOUT = 3600.0


def _at_most(limit: float, text: str) -> AfterValidator:
    def check(seconds: float) -> float:
        if seconds > limit:
            raise ValueError(f"at most {text}, got {seconds:g}s")
        return seconds

    return AfterValidator(check)


Interval = Annotated[Duration, _at_most(MAX_INTERVAL, "1d")]
Timeout = Annotated[Duration, _at_most(MAX_TIMEOUT, "1h")]

_BYTE_SIZE = re.compile(r"(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?")
_BYTE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2, "GB": 1000**3, "GiB": 1024**3}
MAX_BYTE_SIZE = 256 * 1024**2  # no reader of outside data may be given more than this


def parse_byte_size(value: Any) -> int:
    """'64KiB', '4MiB', '1MB' or a number of bytes -> bytes, at most MAX_BYTE_SIZE."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("expected a size such as 65536, 64KiB or 4MiB")
    if isinstance(value, int):
        size = value
    else:
        match = _BYTE_SIZE.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"invalid size {value[:40]!r}: expected a size such as 65536, 64KiB or 4MiB")
        size = int(match.group(1)) * _BYTE_UNITS[match.group(2)]
    if size < 1:
        raise ValueError(f"size must be positive, got {value!r}")
    if size > MAX_BYTE_SIZE:
        raise ValueError(f"at most 256MiB, got {size} bytes")
    return size


ByteSize = Annotated[int, BeforeValidator(parse_byte_size)]  # bytes: 65536, 64KiB, 4MiB; at most 256MiB


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return pattern


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return url


# The run-duration histogram's default bounds with `metrics: full` (within the series budget a
# probe has only the bounds it declares): eight, roughly 2-2.5x apart, because each is a series per
# probe in the user's Prometheus (50,000 probes: 400,000 series). Exact ratios do not depend on
# them: every duration limit a probe declares (its thresholds, the latency of its SLOs) is added to
# its own bounds, and so is its timeout, above which defaults are dropped
# (probe_agent.config.loader). docs/metrics.md gives the fourteen before 0.2.
DEFAULT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MAX_BUCKETS = 40  # each is a series per probe


def _check_buckets(bounds: tuple[float, ...]) -> tuple[float, ...]:
    if len(bounds) > MAX_BUCKETS:
        raise ValueError(f"at most {MAX_BUCKETS} bucket bounds (each is a series per probe), got {len(bounds)}")
    return tuple(sorted(set(bounds)))


def _check_host(host: str) -> str:
    text = host.strip()
    if not text:
        raise ValueError("a host name or address is required")
    if "://" in text:
        raise ValueError(f"{text[:80]!r} is a URL: write the host name or address alone")
    if text.startswith("[") and "]:" in text:
        name, port = text[1:].split("]:", 1)
    elif text.count(":") == 1:
        name, port = text.split(":")
    else:
        name = port = ""
    if port:
        raise ValueError(f"{text[:80]!r} has a port in it: write host: {name[:80]} and port: {port[:10]}")
    if any(c.isspace() or c in "/@?#" for c in text):
        raise ValueError(f"{text[:80]!r} is not a host name or address")
    return text


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name[:60]!r} is not a valid header name")
        # the value may be a secret (${TOKEN}): say where the problem is, never what it is
        if any(c in value for c in "\r\n\0"):
            raise ValueError(
                f"header {name}: the value has a line break or NUL in it (from a ${{VAR}} read with its newline?)"
            )
    return headers


Host = Annotated[str, AfterValidator(_check_host)]  # a name or address, no port, scheme or path
Headers = Annotated[dict[str, str], AfterValidator(_check_headers)]  # names are tokens; values one line
Buckets = Annotated[tuple[Duration, ...], AfterValidator(_check_buckets)]  # histogram bounds, sorted
Regex = Annotated[str, AfterValidator(_check_regex)]  # a regular expression, compiled once to check it
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]  # kept as the user wrote it (no normalising)

_LIMIT = re.compile(r"^\s*(>=|<=|>|<)?\s*(.+?)\s*$")
# The monitoring-plugins guidelines' range, [@][start:][end]: `~` is minus infinity, no end is
# plus infinity, no start is 0; alert outside it, or inside it with `@`.
_RANGE = re.compile(r"^\s*(@)?\s*(?:([^:@]*?)\s*:)?\s*([^:@]*?)\s*$")
_LIMIT_HELP = (
    "expected a number, a comparison such as '> 100', '< 7' or '> 500ms', or a Nagios range such as '10:20' or '@10:20'"
)
RANGE_OPS = ("outside", "inside")


def _limit_number(text: str, data: Any) -> float:
    try:
        return float(text)
    except ValueError:
        try:
            return parse_duration(text, allow_zero=True)
        except ValueError:
            raise ValueError(f"invalid threshold {data!r}: {_LIMIT_HELP}") from None


def _range_text(value: float) -> str:
    return f"{value:g}"


class Limit(BaseModel):
    """One threshold bound: breached when `value OP bound`. A bare number means '>'. A Nagios
    range (a ':' or a leading '@') is op `outside` or `inside`, from `low` to `bound`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    op: str
    bound: float
    low: float | None = None  # a range's start

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return data
        if isinstance(data, bool):
            raise ValueError(_LIMIT_HELP)
        if isinstance(data, (int, float)):
            return {"op": ">", "bound": float(data)}
        text = str(data)
        if ":" in text or text.lstrip().startswith("@"):
            return cls._parse_range(text, data)
        match = _LIMIT.match(text)
        if not match:
            raise ValueError(f"invalid threshold {data!r}")
        return {"op": match.group(1) or ">", "bound": _limit_number(match.group(2), data)}

    @staticmethod
    def _parse_range(text: str, data: Any) -> dict[str, Any]:
        match = _RANGE.match(text)
        if not match or not (match.group(2) or match.group(3)):
            raise ValueError(f"invalid threshold {data!r}: {_LIMIT_HELP}")
        inside, start, end = bool(match.group(1)), match.group(2), match.group(3)
        low = -math.inf if start == "~" else _limit_number(start, data) if start else 0.0
        high = _limit_number(end, data) if end else math.inf
        if low > high:
            raise ValueError(f"invalid threshold {data!r}: start {_range_text(low)} is above end {_range_text(high)}")
        return {"op": "inside" if inside else "outside", "bound": high, "low": low}

    def breached_by(self, value: float) -> bool:
        if self.op in RANGE_OPS:
            within = (self.low if self.low is not None else 0.0) <= value <= self.bound
            return within if self.op == "inside" else not within
        return {
            ">": value > self.bound,
            ">=": value >= self.bound,
            "<": value < self.bound,
            "<=": value <= self.bound,
        }[self.op]

    def ends(self) -> tuple[float, ...]:
        """Its finite, positive ends (bounds for a duration histogram)."""
        return tuple(v for v in (self.low, self.bound) if v is not None and 0 < v < math.inf)

    def nagios(self, number: Callable[[float], str] = _range_text) -> str:
        """The Nagios range that alerts where this does: '> 1' is '1', '< 7' is '7:' (an '='
        has no range of its own: the guidelines' ends belong to the range); a range with its
        start always written ('0:10', not '10', which a probes file reads as '> 10')."""
        if self.op not in RANGE_OPS:
            return f"{number(self.bound)}:" if self.op in ("<", "<=") else number(self.bound)
        low = self.low if self.low is not None else 0.0
        start = "~" if low == -math.inf else number(low)
        end = "" if self.bound == math.inf else number(self.bound)
        return f"{'@' if self.op == 'inside' else ''}{start}:{end}"

    def describe(self, text: Callable[[float], str]) -> str:
        """'> 250 ms', or 'outside 10:20' with the ends as `text` writes them."""
        if self.op in RANGE_OPS:
            return f"{self.op} {self.nagios()}"
        return f"{self.op} {text(self.bound)}"

    def __str__(self) -> str:
        return self.nagios() if self.op in RANGE_OPS else f"{self.op} {self.bound:g}"


class Threshold(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    warning: Limit | None = None
    critical: Limit | None = None

    @model_validator(mode="after")
    def _warning_comes_first(self) -> Threshold:
        # Both above ('>'): the warning bound must not lie past the critical one, or every value
        # breaching it breaches critical first and WARNING never shows; below ('<'), mirrored.
        warning, critical = self.warning, self.critical
        if warning is None or critical is None or (warning.op[0] == ">") != (critical.op[0] == ">"):
            return self
        if warning.op in RANGE_OPS or critical.op in RANGE_OPS:
            return self  # a warning band inside a critical one is what ranges are for
        inverted = warning.bound > critical.bound if warning.op[0] == ">" else warning.bound < critical.bound
        if inverted:
            raise ValueError(
                f"warning ({warning}) lies past critical ({critical}): WARNING would never show (swap them?)"
            )
        return self
