"""A probe type's client library is an installable extra (`pip install 'probe-agent[postgres]'`):
the core install carries only what every agent uses, each extra names exactly the libraries its
types import, and an agent without an extra says which one a probe needs, where it is used, in
`validate`, `run`, `check` and `types`, while every other probe works."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from probe_agent.probes.registry import BUILTIN, EXTRAS

ROOT = Path(__file__).parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def third_party_imports(path: Path) -> set[str]:
    """The distributions a module imports at its top level (what its import needs installed)."""
    tops: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
    found = packages_distributions()
    return {canonicalize_name(dist) for top in tops - {"probe_agent"} for dist in found.get(top, [])}


def module_file(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def imports_of(module: str) -> set[str]:
    """A type module's distributions, through the probe_agent modules it imports (its clients)."""
    seen: set[str] = set()
    todo, dists = [module], set()
    while todo:
        current = todo.pop()
        if current in seen or not module_file(current).exists():
            continue
        seen.add(current)
        dists |= third_party_imports(module_file(current))
        for node in ast.parse(module_file(current).read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("probe_agent"):
                todo.append(node.module)
    return dists


def test_each_extra_is_what_its_types_import_beyond_the_core() -> None:
    core = names(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    for type_name, module in BUILTIN.items():
        beyond = imports_of(module) - core
        if not beyond:
            assert type_name not in EXTRAS, f"{type_name} needs nothing beyond the core: no extra"
            continue
        assert type_name in EXTRAS, f"{type_name} imports {sorted(beyond)}, not in the core: it needs an extra"
        extra = EXTRAS[type_name]
        assert beyond <= names(extras[extra]), f"extra {extra!r} lacks {sorted(beyond - names(extras[extra]))}"
    # no client library of a single type in the core
    for extra in set(EXTRAS.values()):
        assert not names(extras[extra]) & core, f"{extra}: its libraries are in the core dependencies too"
    everything = {Requirement(r).name for r in extras["all"]}
    assert everything == {"probe-agent"}
    assert set(Requirement(extras["all"][0]).extras) == set(EXTRAS.values()) | {"kubernetes"}


def without(library: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """probe-agent ARGV in a Python where LIBRARY is not installed (its import fails as it would)."""
    program = textwrap.dedent(f"""
        import sys
        sys.modules[{library!r}] = None  # import {library} now raises ModuleNotFoundError
        from probe_agent.cli import main
        sys.exit(main({list(argv)!r}))
    """)
    return subprocess.run(
        [sys.executable, "-c", program], input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


PROBES = """\
probes:
  - name: web
    type: tcp
    host: 127.0.0.1
    port: 9
  - name: orders-db
    type: postgres
    host: 127.0.0.1
"""
NEEDS = "probe type 'postgres' needs asyncpg, which is not installed: pip install 'probe-agent[postgres]'"


def test_validate_names_the_probe_the_line_and_the_extra(tmp_path: Path) -> None:
    (tmp_path / "probes.yaml").write_text(PROBES)
    done = without("asyncpg", "validate", "--config", str(tmp_path / "probes.yaml"))
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    assert f"probes.yaml:7:5: probe 'orders-db': type: {NEEDS}" in done.stderr, done.stderr


def test_check_of_a_type_without_its_extra_is_unknown_with_the_command_to_run() -> None:
    done = without("asyncpg", "check", "--format", "nagios", "postgres", "127.0.0.1:5432")
    assert done.returncode == 3, done  # UNKNOWN: the plugin cannot tell, not the database's fault
    assert NEEDS in done.stdout and "Traceback" not in done.stderr, done


def test_types_lists_the_installed_ones_and_says_what_is_missing() -> None:
    done = without("asyncpg", "types")
    assert done.returncode == 0, done
    assert "tcp  (built-in)" in done.stdout and "postgres  (built-in)" not in done.stdout
    assert "postgres: not installed (needs asyncpg: pip install 'probe-agent[postgres]')" in done.stderr, done.stderr


def test_a_type_whose_own_module_is_broken_is_not_taken_for_a_missing_extra() -> None:
    # a bug in probe-agent (a module of its own missing) must not read as "install an extra"
    done = without("probe_agent.probes.clients.datastore", "types", "postgres")
    assert done.returncode == 1 and "pip install" not in done.stderr + done.stdout, done


def test_a_missing_extra_is_looked_for_once(tmp_path: Path) -> None:
    """A file of many probes of a type without its extra: one import attempt, not one a probe."""
    probes = "probes:\n" + "".join(f"  - {{name: db{i}, type: postgres, host: 127.0.0.1}}\n" for i in range(200))
    (tmp_path / "probes.yaml").write_text(probes)
    program = textwrap.dedent(f"""
        import builtins, sys
        sys.modules["asyncpg"] = None
        tried = []
        real = builtins.__import__
        def counting(name, *args, **kwargs):
            if name == "asyncpg":
                tried.append(name)
            return real(name, *args, **kwargs)
        builtins.__import__ = counting
        from probe_agent.cli import main
        main(["validate", "--config", {str(tmp_path / "probes.yaml")!r}])
        print("tries", len(tried))
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "tries 1\n" in done.stdout, done.stdout + done.stderr[-2000:]
    assert done.stderr.count("needs asyncpg") == 200  # each probe still told where it is
