"""Hostile and broken probes files: a clear error naming where, fast, never a traceback or a hang."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe_agent.config import load_config, parse_config
from probe_agent.errors import ConfigError
from probe_agent.runner import build_handles
from tests.helpers.netfaults import free_port

OK_PROBE = '- {name: a, type: http, url: "http://127.0.0.1:1/"}\n'

BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["probes:", "  - {name: x, type: tcp, host: 127.0.0.1, port: 1, tags: *a9}"]
)

CASES: dict[str, tuple[bytes, str]] = {
    "billion_laughs": (BILLION_LAUGHS.encode(), "aliases expand to more than"),
    "recursive_alias": (b"a: &a [1, *a]\nprobes: *a\n", "line 1: an alias refers to a collection that contains it"),
    "two_documents": (b"probes: []\n---\nprobes: []\n", "line 2: more than one YAML document in the file"),
    "deep_nesting": (b"probes: " + b"[" * 5000 + b"]" * 5000, "nested deeper than 64 levels"),
    "deep_block_nesting": (
        b"probes:\n" + b"".join(b"  " * i + b"- \n" for i in range(200)),
        "nested deeper than 64 levels",
    ),
    "binary": (b"probes:\n\x00\xff\xfe\x89PNG", "not UTF-8 text: byte 0xff at offset 9 (line 2)"),
    "latin1": ("probes:\n- {name: caf\u00e9, type: http}\n".encode("latin-1"), "not UTF-8 text: byte 0xe9 at offset 20 (line 2)"),
    "duplicate_key": (
        b'probes:\n  - name: a\n    type: http\n    url: "http://127.0.0.1:1/"\n    url: "http://127.0.0.1:2/"\n',
        "line 5: duplicate key 'url' (first on line 4)",
    ),
    "empty": (b"", "no probes configured"),
    "only_comments": (b"# nothing here\n# at all\n", "no probes configured"),
    "empty_list": (b"probes: []\n", "no probes configured"),
    "huge_interval": (
        b'probes:\n- {name: a, type: http, url: "http://127.0.0.1:1/", interval: 99999999999999h}\n',
        "probe 'a': interval: at most 1d",
    ),
    "huge_timeout": (
        b'probes:\n- {name: a, type: http, url: "http://127.0.0.1:1/", interval: 1d, timeout: 2h}\n',
        "probe 'a': timeout: at most 1h",
    ),
    "bad_dsn": (
        b"probes:\n- {name: db, type: postgres, dsn: 'not a dsn at all'}\n",
        "probe 'db': dsn: expected postgresql://[user[:password]@]host[:port]/database",
    ),
    "dsn_bad_port": (
        b"probes:\n- {name: db, type: postgres, dsn: 'postgresql://u@h:99999/db'}\n",
        "probe 'db': dsn: port 99999 is out of range",
    ),
    "missing_ca_file": (
        b'probes:\n- {name: b, type: http, url: "https://127.0.0.1:1/", ca_file: /nonexistent}\n',
        "probe 'b': ca_file: cannot load /nonexistent: No such file or directory",
    ),
    "missing_client_cert": (
        b'probes:\n- {name: b, type: tcp, host: 127.0.0.1, port: 1, tls: true, ca_file: /nonexistent/ca.pem}\n',
        "probe 'b': ca_file: cannot load /nonexistent/ca.pem: No such file or directory",
    ),
}


def _problems(data: bytes, tmp_path: Path, **kwargs: object) -> list[str]:
    path = tmp_path / "probes.yaml"
    path.write_bytes(data)
    try:
        config = load_config(path, env={}, **kwargs)  # type: ignore[arg-type]
        build_handles(config)  # what validate, check and run do next
    except ConfigError as exc:
        return exc.problems
    raise AssertionError("no ConfigError")


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file_fails_fast_with_a_clear_message(case: str, tmp_path: Path) -> None:
    data, expected = CASES[case]
    started = time.perf_counter()
    problems = _problems(data, tmp_path)
    assert time.perf_counter() - started < 1.0
    assert any(expected in p for p in problems), problems


def test_size_limit_and_the_flag_that_raises_it(tmp_path: Path) -> None:
    body = "probes:\n" + "".join(
        f'- {{name: p{i}, type: http, url: "http://127.0.0.1:1/{"x" * 40}"}}\n' for i in range(3000)
    )
    padding = "#" + "x" * 1000 + "\n"
    data = (body + padding * (9 * 1024)).encode()  # about 9.3 MB
    problems = _problems(data, tmp_path)
    assert problems == [f"file is {len(data):,} bytes, over the limit of 8,388,608 (raise it with --max-config-bytes)"]
    config = load_config(tmp_path / "probes.yaml", env={}, max_bytes=16 * 1024 * 1024)
    assert len(config.probes) == 3000


def test_an_empty_config_may_be_allowed(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("probes: []\n")
    assert load_config(path, env={}, allow_empty=True).probes == []


def test_anchors_used_sensibly_still_work() -> None:
    config = parse_config(
        """
common: &common {type: http, interval: 10s, timeout: 2s}
probes:
  - {<<: *common, name: a, url: "http://127.0.0.1:1/"}
  - {<<: *common, name: b, url: "http://127.0.0.1:2/", timeout: 3s}
""".replace("common: &common", "x-common: &common"),  # x- keys at the top hold anchors, as in compose files
        env={},
    )
    assert [(p.name, p.interval, p.timeout) for p in config.probes] == [("a", 10.0, 2.0), ("b", 10.0, 3.0)]


def test_a_merge_key_may_be_overridden_but_an_explicit_key_may_not_repeat() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('probes:\n- {name: a, type: http, url: "http://x/", name: b}\n', env={})
    assert "line 2: duplicate key 'name' (first on line 2)" in info.value.problems[0]


COMMANDS = {"validate": 1, "check": 3, "run": 1}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", ["billion_laughs", "deep_nesting", "binary", "duplicate_key", "empty", "missing_ca_file"])
def test_every_command_exits_with_its_code_and_no_traceback(case: str, command: str, tmp_path: Path) -> None:
    data, expected = CASES[case]
    path = tmp_path / "probes.yaml"
    path.write_bytes(data)
    args = [sys.executable, "-m", "probe_agent", command, "-c", str(path)]
    if command == "run":
        args += ["--listen", f"127.0.0.1:{free_port()}"]
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, timeout=20, env={"PATH": "/usr/bin:/bin"})
    elapsed = time.perf_counter() - started
    assert out.returncode == COMMANDS[command], out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert expected in out.stderr
    assert elapsed < 5  # Python start-up included; the loading itself is bounded above


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_path_that_is_not_a_regular_file_is_refused_at_once(kind: str, tmp_path: Path) -> None:
    import os

    if kind == "fifo":
        path = tmp_path / "probes.fifo"
        os.mkfifo(path)  # nobody will ever write: opening it would wait forever
    elif kind == "device":
        path = Path("/dev/zero")  # endless
    else:
        path = tmp_path
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert time.perf_counter() - started < 1.0
    assert info.value.problems == [f"{path} is not a regular file"]
