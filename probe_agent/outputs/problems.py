"""How a config's problems are shown: one line each, with file:line:column where known, redacted."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from probe_agent.core.redact import Redactor


def print_problems(
    problems: Sequence[str],
    source: Path | str,
    locations: Sequence[tuple[int, int] | None] = (),
    *,
    plugin: bool = False,
) -> None:
    """Every problem on stderr; with `plugin` (check, wait) also the Nagios plugin's one line on
    stdout: the first problem, and how many more. That line comes first: Icinga 2 reads a
    plugin's stdout and stderr as one stream, and its status line is the first line of it."""
    # A problem may quote what was written (an invalid URL with a password in it): the
    # redactor's patterns mask the secret forms even where no config could be loaded.
    redact = Redactor().redact
    source = "standard input" if str(source) == "-" else source
    if plugin:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        plugin_unknown(f"{source}: {problems[0] if problems else 'invalid'}{more}")
    print(f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:", file=sys.stderr)
    name = "<stdin>" if source == "standard input" else source
    for problem, where in zip(problems, [*locations, *[None] * len(problems)], strict=False):
        at = f"{name}:{where[0]}:{where[1]}: " if where else ""
        print(f"  - {at}{redact(problem)}", file=sys.stderr)


# What Nagios shows as the service's output: the plugin's name starts its status line
# (probe_agent.outputs.reports writes the line of a check that ran). A plugin's line is short:
# a problem may quote a long value, so it is cut.
PLUGIN = "PROBE-AGENT"
MAX_PLUGIN_LINE = 400


def plugin_ascii(text: str) -> str:
    """The agent's own non-ASCII in a plugin's output, as the monitoring-plugins write it: NRPE,
    NSCA and perfdata parsers may read bytes as Latin-1 or drop them. A target's text stays."""
    return text.replace("µs", "us").replace("…", "...").replace("→", "->")


def plugin_unknown(text: str) -> None:
    """The one line a Nagios plugin prints on stdout for its own problem (exit 3, UNKNOWN).
    '|' would start perfdata: it may not appear."""
    line = " ".join(Redactor().redact(text).split()).replace("|", "/")
    if len(line) > MAX_PLUGIN_LINE:
        line = line[: MAX_PLUGIN_LINE - 3] + "..."
    print(f"{PLUGIN} UNKNOWN - {plugin_ascii(line)}", flush=True)  # before anything on stderr (print_problems)


def stdout_gone() -> None:
    """The reader of stdout left (`check ... | head -1`): it has what it wanted. Later writes,
    and the flush at exit, go nowhere instead of ending in a BrokenPipeError traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
