"""One version everywhere: the package's __version__ is the distribution's (pyproject reads it),
and every image of the agent the manifests and docs name carries it as its tag."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from probe_agent import __version__

ROOT = Path(__file__).parents[2]


def test_the_distribution_takes_its_version_from_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"].get("dynamic", []), "pyproject.toml writes a version of its own"
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "probe_agent.__version__"}


def test_every_image_of_the_agent_is_tagged_with_the_version() -> None:
    tagged: dict[str, list[str]] = {}
    for path in [
        *ROOT.glob("deploy/**/*.yaml"),
        *ROOT.glob("deploy/**/*.yml"),
        *ROOT.glob("docs/*.md"),
        ROOT / "README.md",
    ]:
        for tag in re.findall(r"probe-agent:(\d+\.\d+\.\d+)", path.read_text()):
            tagged.setdefault(tag, []).append(str(path.relative_to(ROOT)))
    assert tagged, "no image named"
    assert set(tagged) == {__version__}, tagged
