"""One set of exact versions: constraints.txt pins every package pyproject.toml asks for, within
its range, and the image, CI and the set-up script all install through it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[\w.+-]+", version), f"constraints.txt: {line!r} is not NAME==VERSION"
            found[canonicalize_name(name)] = version
    return found


def test_every_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    extras = project["optional-dependencies"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for extra, listed in extras.items() if extra != "all" for r in listed]
    for requirement in wanted:
        if requirement.marker and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in constraints.txt: run scripts/lock.sh"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pinned[name]}, outside pyproject.toml's {requirement.specifier}"
        )


def test_image_ci_and_setup_install_through_the_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
    assert "constraints.txt" in next(line for line in dockerfile.splitlines() if line.startswith("COPY"))
    base = next(line for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert re.fullmatch(r"FROM python:\d+\.\d+\.\d+-slim-\w+", base), f"{base}: pin the base image's full version"
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "pip install" in bootstrap and all(
        "-c constraints.txt" in line for line in bootstrap.splitlines() if "pip install" in line
    )
    # CI runs the README's test command, which sets up through bootstrap.sh
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "bootstrap.sh --test" in (ROOT / "scripts" / "test.sh").read_text()
