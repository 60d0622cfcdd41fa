"""Hostile and broken probes files: a clear error naming where, fast, never a traceback or a hang."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe_agent.config.loader import load_config, parse_config
from probe_agent.core.errors import ConfigError
from probe_agent.runtime.runner import build_handles
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
    "latin1": (
        "probes:\n- {name: caf\u00e9, type: http}\n".encode("latin-1"),
        "not UTF-8 text: byte 0xe9 at offset 20 (line 2)",
    ),
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
    # validate = run: each of these validated, then every run was UNKNOWN or failed
    "header_crlf": (
        b'probes:\n- {name: h, type: http, url: "http://127.0.0.1:1/", headers: {X-A: "one\\r\\nX-B: two"}}\n',
        "probe 'h': headers: header X-A: the value has a line break or NUL in it",
    ),
    "header_name": (
        b'probes:\n- {name: h, type: http, url: "http://127.0.0.1:1/", headers: {"X A": "v"}}\n',
        "'X A' is not a valid header name",
    ),
    "userinfo_and_authorization": (
        b'probes:\n- {name: h, type: http, url: "http://u:p@127.0.0.1:1/", headers: {Authorization: "Bearer abcdefgh"}}\n',
        "url has credentials (user:password@) and headers has Authorization: keep one of them",
    ),
    "redis_host_with_port": (
        b'probes:\n- {name: r, type: redis, host: "127.0.0.1:6379"}\n',
        "'127.0.0.1:6379' has a port in it: write host: 127.0.0.1 and port: 6379",
    ),
    "tcp_host_with_port": (
        b'probes:\n- {name: t, type: tcp, host: "[::1]:25", port: 25}\n',
        "'[::1]:25' has a port in it: write host: ::1 and port: 25",
    ),
    "grpc_host_is_url": (
        b'probes:\n- {name: g, type: grpc, host: "http://payments:50051"}\n',
        "is a URL: write the host name or address alone",
    ),
    "remediation_header_crlf": (
        b"probes:\n- {name: h, type: tcp, host: 127.0.0.1, port: 1, remediation: {actions: [{name: a, http: "
        b'{url: "http://127.0.0.1:1/", headers: {X-A: "a\\nb"}}}]}}\n',
        "header X-A: the value has a line break or NUL in it",
    ),
    "deep_alias_chain": (  # 120 anchors each 50 deep, each inside the next: a RecursionError before
        (
            "\n".join(["x0: &x0 [1]"] + [f"x{i}: &x{i} {'[' * 50}*x{i - 1}{']' * 50}" for i in range(1, 121)])
            + "\nprobes: [{name: a, type: tcp, host: 127.0.0.1, port: 1, tags: *x120}]\n"
        ).encode(),
        "nested deeper than 64 levels once aliases are expanded",
    ),
    "missing_ca_file": (
        b'probes:\n- {name: b, type: http, url: "https://127.0.0.1:1/", ca_file: /nonexistent}\n',
        "probe 'b': ca_file: cannot load /nonexistent: No such file or directory",
    ),
    "missing_client_cert": (
        b"probes:\n- {name: b, type: tcp, host: 127.0.0.1, port: 1, tls: true, ca_file: /nonexistent/ca.pem}\n",
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
@pytest.mark.parametrize(
    "case", ["billion_laughs", "deep_nesting", "binary", "duplicate_key", "empty", "missing_ca_file"]
)
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


def test_a_line_break_from_an_environment_variable_is_refused_without_showing_it() -> None:
    text = 'probes:\n- {name: h, type: http, url: "http://127.0.0.1:1/", headers: {Authorization: "Bearer ${TOKEN}"}}\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={"TOKEN": "s3cret-token-value\n"})
    problems = "\n".join(caught.value.problems)
    assert "header Authorization: the value has a line break or NUL in it" in problems
    assert "s3cret-token-value" not in problems


@pytest.mark.parametrize("field", ["name", "variable"])
def test_huge_values_fail_or_load_fast(field: str) -> None:
    big = "x" * 100_000
    if field == "name":
        text, env = f"probes:\n- {{name: {big}, type: tcp, host: 127.0.0.1, port: 1}}\n", {}
    else:
        text, env = 'probes:\n- {name: a, type: http, url: "http://127.0.0.1:1/?token=${BIG}"}\n', {"BIG": big}
    started = time.process_time()
    problems: list[str] = []
    try:
        parse_config(text, env=env)
    except ConfigError as exc:
        problems = exc.problems
    assert time.process_time() - started < 1.0
    assert all(len(p) < 2000 for p in problems), [len(p) for p in problems]


def test_check_refuses_a_bad_slo_as_validate_does(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("probes:\n- {name: a, type: tcp, host: 127.0.0.1, port: 9}\nslos:\n- {name: s, objective: 2}\n")
    for command in (["validate"], ["check"]):
        done = subprocess.run(
            [sys.executable, "-m", "probe_agent", *command, "-c", str(path)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == (1 if command == ["validate"] else 3), (command, done.stdout, done.stderr)
        assert "slos[0]" in done.stderr, (command, done.stderr)
