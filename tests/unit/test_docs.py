"""The docs render as written and what they show works: every code fence is closed and on a line
of its own, every YAML block parses, every probes file or probe list shown validates, and every
link between the pages leads to a page and heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import ConfigError

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(text: str) -> list[tuple[int, str, str]]:
    """(line, language, content) of every fenced block; fails on one left open."""
    found: list[tuple[int, str, str]] = []
    opened, language, body = 0, "", list[str]()
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            if opened:
                found.append((opened, language, "\n".join(body)))
                opened = 0
            else:
                opened, language, body = number, line.strip()[3:].strip(), []
        elif opened:
            body.append(line)
    assert not opened, f"the code fence opened at line {opened} is never closed"
    return found


def slug(heading: str) -> str:
    # GitHub's anchors: lower case, punctuation dropped, spaces to hyphens
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fences_are_closed_and_on_lines_of_their_own(page: Path) -> None:
    text = page.read_text()
    glued = [n for n, line in enumerate(text.splitlines(), 1) if "```" in line and not line.lstrip().startswith("```")]
    assert not glued, f"{page.name}: a fence shares a line with text at line(s) {glued}"
    blocks(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_examples_parse_and_probes_validate(page: Path) -> None:
    for line, language, body in blocks(page.read_text()):
        if language != "yaml":
            continue
        try:
            document = yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise AssertionError(f"{page.name}:{line}: YAML that does not parse: {exc}") from None
        if isinstance(document, list) and document and all(isinstance(p, dict) and "type" in p for p in document):
            text = yaml.safe_dump({"probes": document})  # a list of probes, as a type's example
        elif isinstance(document, dict) and "probes" in document and document["probes"] != ["..."]:
            text = body  # (a schematic `probes: [...]` is not an example)
        else:
            continue
        env = {name: "http://127.0.0.1:1" if "URL" in name else "x" for name in re.findall(r"\$\{(\w+)", text)}
        try:
            parse_config(text, f"{page.name}:{line}", env=env)
        except ConfigError as exc:
            raise AssertionError(f"{page.name}:{line}: an example that does not validate: {exc.problems}") from None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_pages_lead_somewhere(page: Path) -> None:
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target}: no such file"
        if anchor and linked.suffix == ".md":
            headings = {slug(h) for h in re.findall(r"^#+ (.*)$", linked.read_text(), re.M)}
            assert anchor in headings, f"{page.name}: link to {target}: no such heading"


def test_the_checker_fails_an_open_fence_and_a_glued_one() -> None:
    with pytest.raises(AssertionError, match="never closed"):
        blocks("text\n```yaml\na: 1\n")
    assert blocks("```yaml\na: 1\n```\n") == [(1, "yaml", "a: 1")]
