"""The packages are the architecture: each module sits in a layer, and no module imports one of
a higher layer, at the top or inside a function, for type checking or not. A lower layer that
needs something of a higher one has it handed in (a callback, an argument), so every circle is
a failure here, not a lazy import that happens to work."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "probe_agent"

# lowest first; a module may import its own layer and any below it
LAYERS: list[tuple[str, ...]] = [
    ("probe_agent",),  # the package itself: __version__
    ("probe_agent.core",),
    ("probe_agent.schema",),
    ("probe_agent.probes.base",),
    ("probe_agent.probes.clients",),
    ("probe_agent.probes.types", "probe_agent.probes.registry", "probe_agent.probes"),
    ("probe_agent.config",),
    ("probe_agent.runtime",),
    ("probe_agent.outputs",),
    ("probe_agent.web", "probe_agent.commands"),
    ("probe_agent.daemon",),
    ("probe_agent.demo",),
    ("probe_agent.cli", "probe_agent.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the most specific prefix that names one."""
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS")
    return best


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every probe_agent module this file imports, anywhere in it: (line, module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "probe_agent":
            # `from probe_agent.x import y` may name a module y: count the most specific
            for alias in node.names:
                found.append((node.lineno, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "probe_agent"]
    return found


def resolve(name: str) -> str:
    """`probe_agent.x.y` as the module it names: y itself if it is a module, else x."""
    while name != "probe_agent":
        relative = Path(*name.split(".")[1:])
        if (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists():
            return name
        name = name.rsplit(".", 1)[0]
    return name


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    module = module_name(path)
    own = layer_of(module)
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target} ({' / '.join(LAYERS[layer_of(target)])})"
        for line, name in imports_of(path)
        if layer_of(target := resolve(name)) > own
    ]
    assert not wrong, f"{module} is in layer {' / '.join(LAYERS[own])} but:\n" + "\n".join(wrong)


def test_the_checker_sees_a_lazy_import_of_a_higher_layer(tmp_path: Path) -> None:
    # the test itself must be able to fail: a function-level import of the daemon from core
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from probe_agent.daemon import serve\n    return serve\n")
    assert [resolve(name) for _, name in imports_of(bad)] == ["probe_agent.daemon"]
    assert layer_of("probe_agent.daemon") > layer_of("probe_agent.core.errors")


def test_the_command_line_loads_only_what_a_command_uses() -> None:
    # `--help` (and argument errors) must answer at once: pydantic, asyncio, aiohttp and YAML are
    # the commands' business (issue 24: --help took 192 ms because the config model loaded first).
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from probe_agent import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('loaded:', *(m for m in ('pydantic', 'asyncio', 'aiohttp', 'yaml') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert "usage: probe-agent" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "loaded:", out.stdout.strip().splitlines()[-1]


def test_an_http_check_loads_no_aiohttp(tmp_path: Path) -> None:
    # the http probe runs on libcurl: a `check` of one loads neither aiohttp nor its server
    # (issue 24: aiohttp's import was 80 ms of a check's 240, and 10 MB)
    import subprocess
    import sys

    probes = tmp_path / "probes.yaml"
    probes.write_text("probes:\n- {name: web, type: http, url: 'http://127.0.0.1:9/', timeout: 1s}\n")
    probe = (
        "import sys\n"
        "from probe_agent import cli\n"
        "try:\n"
        f"    cli.main(['check', '-c', {str(probes)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('loaded:', *(m for m in ('aiohttp', 'pycurl') if m in sys.modules))\n"
        "readers = ('probe_agent.config.discovery', 'probe_agent.config.kubernetes', 'urllib.request')\n"
        "print('readers:', *(m for m in readers if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert "web" in out.stdout  # it did run the probe
    loaded, readers = out.stdout.strip().splitlines()[-2:]
    assert loaded == "loaded: pycurl", out.stdout
    # nor, for a file without target_groups, the sources' readers (urllib.request among them: 9 ms)
    assert readers == "readers:", out.stdout
