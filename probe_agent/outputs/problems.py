"""How a config's problems are shown: one line each, with file:line:column where known, redacted."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from probe_agent.core.redact import Redactor


def print_problems(
    problems: Sequence[str], source: Path | str, locations: Sequence[tuple[int, int] | None] = ()
) -> None:
    # A problem may quote what was written (an invalid URL with a password in it): the
    # redactor's patterns mask the secret forms even where no config could be loaded.
    redact = Redactor().redact
    source = "standard input" if str(source) == "-" else source
    print(f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:", file=sys.stderr)
    name = "<stdin>" if source == "standard input" else source
    for problem, where in zip(problems, [*locations, *[None] * len(problems)], strict=False):
        at = f"{name}:{where[0]}:{where[1]}: " if where else ""
        print(f"  - {at}{redact(problem)}", file=sys.stderr)
