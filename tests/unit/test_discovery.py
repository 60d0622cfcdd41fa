"""target_groups: probes made from Prometheus file_sd targets with a template, validated like
any probe, bounded like any file the config names."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe_agent.config.loader import load_config
from probe_agent.core.errors import ConfigError
from probe_agent.probes.types.tcp import TcpConfig
from tests.helpers.stub_http import QuietHandler, stub_http

GROUP = """target_groups:
  - name: web
    file_sd_configs: [{{files: ["{files}"]}}]
    max_targets: {max_targets}
    probe:
      type: tcp
      host: "{{{{target.host}}}}"
      port: "{{{{target.port}}}}"
      labels: {{team: "{{{{target.labels.team}}}}"}}
      interval: 10s
      timeout: 1s
"""


def write(tmp_path: Path, files: str = "sd/*.json", max_targets: int = 100, extra: str = "") -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(GROUP.format(files=files, max_targets=max_targets) + extra)
    return path


def sd(tmp_path: Path, name: str, groups: list[dict[str, object]]) -> None:
    (tmp_path / "sd").mkdir(exist_ok=True)
    (tmp_path / "sd" / name).write_text(json.dumps(groups))


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.problems


def test_a_probe_per_target_with_its_labels_from_files_next_to_the_probes_file(tmp_path: Path) -> None:
    sd(tmp_path, "a.json", [{"targets": ["10.0.0.1:8080", "10.0.0.2:8080"], "labels": {"team": "shop"}}])
    sd(tmp_path, "b.json", [{"targets": ["10.0.0.2:8080", "[::1]:9000"]}])  # listed twice: one probe
    config = load_config(write(tmp_path), env={})
    by_name = {p.name: p for p in config.probes}
    assert set(by_name) == {"web-10.0.0.1:8080", "web-10.0.0.2:8080", "web-_::1_:9000"}
    first = by_name["web-10.0.0.1:8080"]
    assert isinstance(first, TcpConfig) and (first.host, first.port, first.labels) == (
        "10.0.0.1",
        8080,
        {"team": "shop"},
    )
    v6 = by_name["web-_::1_:9000"]
    assert isinstance(v6, TcpConfig) and (v6.host, v6.port, v6.labels) == ("::1", 9000, {"team": ""})
    assert sorted(Path(f).name for f in config.discovery_files) == ["a.json", "b.json"]
    assert "web-10.0.0.1:8080" in config.all_probe_names


def test_a_template_with_an_unknown_placeholder_is_refused_by_group_and_name(tmp_path: Path) -> None:
    sd(tmp_path, "a.json", [{"targets": ["10.0.0.1:80"]}])
    path = write(tmp_path)
    path.write_text(path.read_text().replace("{{target.host}}", "{{target.hots}}"))
    [problem] = problems(path)
    assert problem.startswith("target_groups[0] (web): probe: unknown placeholder {{target.hots}}")


def test_more_targets_than_max_targets_is_a_problem_not_a_flood(tmp_path: Path) -> None:
    sd(tmp_path, "a.json", [{"targets": [f"10.0.{i // 250}.{i % 250}:80" for i in range(600)]}])
    [problem] = problems(write(tmp_path, max_targets=500))
    assert (
        problem
        == "target_groups[0] (web): its sources list 600 targets, over max_targets 500 (the running probes stay)"
    )


def test_a_bad_target_is_named_with_the_line_of_the_template_field(tmp_path: Path) -> None:
    sd(tmp_path, "a.json", [{"targets": ["10.0.0.1:http"]}])
    [problem] = problems(write(tmp_path))
    assert problem.startswith("probe 'web-10.0.0.1:http': port: Input should be a valid integer")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path), env={})
    assert info.value.locations == [(8, 7)]  # the template's `port:` line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"targets": ["a:1"]}', "expected a list of {targets: [...], labels: {...}}"),
        ('[{"targets": [1]}]', "[0].targets: 1 is not HOST:PORT"),
        ('[{"targets": ["a:1"], "labels": {"x": 1}}]', "[0].labels: expected a mapping of strings"),
        ("a: &a [1, 2]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n" * 30, ""),
    ],
)
def test_a_malformed_or_hostile_sd_file_is_a_problem(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "a.json").write_text(content)
    [problem] = problems(write(tmp_path))
    assert problem.startswith("target_groups[0] (web): "), problem
    assert expected in problem


def test_an_sd_path_that_is_not_a_regular_file_is_refused_without_opening_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "targets.fifo")  # a reader that opened it would wait for a writer for good
    [problem] = problems(write(tmp_path, files=str(tmp_path / "targets.fifo")))
    assert "is a FIFO" in problem or "not a regular file" in problem, problem


def test_no_probes_and_target_groups_that_find_nothing_yet_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "sd").mkdir()
    config = load_config(write(tmp_path), env={})
    assert config.probes == [] and config.target_groups[0].name == "web"


def test_relabelling_keeps_drops_and_rewrites_targets_as_prometheus_does(tmp_path: Path) -> None:
    sd(
        tmp_path,
        "a.json",
        [
            {"targets": ["api-1.internal:8080", "api-2.internal:8080"], "labels": {"team": "shop", "env": "prod"}},
            {"targets": ["api-9.internal:8080"], "labels": {"team": "shop", "env": "staging"}},
            {"targets": ["legacy.internal:80"], "labels": {"team": "ops", "env": "prod"}},
        ],
    )
    relabel = """    relabel_configs:
      - {action: keep, source_labels: [env], regex: prod}
      - {action: drop, source_labels: [__address__], regex: 'legacy\\..*'}
      - {source_labels: [__address__], regex: '([^:]+):\\d+', target_label: __address__, replacement: '$1:9443'}
      - {source_labels: [team, env], regex: '(.+);(.+)', target_label: team, replacement: '${1}-$2'}
"""
    path = write(tmp_path, max_targets=2)  # three prod targets are listed, two are kept: within the limit
    path.write_text(path.read_text().replace("    probe:\n", relabel + "    probe:\n"))
    config = load_config(path, env={})
    probes = {p.name: p for p in config.probes}
    assert set(probes) == {"web-api-1.internal:9443", "web-api-2.internal:9443"}
    first = probes["web-api-1.internal:9443"]
    assert isinstance(first, TcpConfig) and (first.port, first.labels) == (9443, {"team": "shop-prod"})


def test_a_relabel_step_with_a_bad_regex_or_no_target_label_is_refused(tmp_path: Path) -> None:
    sd(tmp_path, "a.json", [{"targets": ["a:1"]}])
    path = write(tmp_path)
    path.write_text(
        path.read_text().replace(
            "    probe:\n", "    relabel_configs: [{regex: '(', target_label: x}, {}]\n    probe:\n"
        )
    )
    found = problems(path)
    assert any("relabel_configs" in p and "invalid regex" in p for p in found), found
    assert any("target_label: required for replace" in p for p in found), found


class _SdHandler(QuietHandler):
    """An http_sd endpoint whose answer the test sets: (status, body, seconds between bytes)."""

    answer: tuple[int, bytes, float] = (200, b"[]", 0.0)
    headers_seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        status, body, drip = type(self).answer
        type(self).headers_seen.append(dict(self.headers))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if drip:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(drip)
            else:
                self.wfile.write(body)
        except OSError:
            pass


@pytest.fixture
def http_sd() -> Iterator[str]:
    with stub_http(_SdHandler) as url:
        yield f"{url}/sd"


def http_group(tmp_path: Path, url: str, timeout: str = "2s") -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "target_groups:\n  - name: api\n"
        f"    http_sd_configs: [{{url: '{url}', refresh_interval: 30s, timeout: {timeout}}}]\n"
        "    probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}', interval: 10s, timeout: 1s}\n"
    )
    return path


def test_http_sd_targets_and_the_header_prometheus_sends(tmp_path: Path, http_sd: str) -> None:
    _SdHandler.answer = (200, json.dumps([{"targets": ["10.1.0.1:80", "10.1.0.2:80"]}]).encode(), 0.0)
    _SdHandler.headers_seen = []
    config = load_config(http_group(tmp_path, http_sd), env={})
    assert {p.name for p in config.probes} == {"api-10.1.0.1:80", "api-10.1.0.2:80"}
    assert _SdHandler.headers_seen[-1]["X-Prometheus-Refresh-Interval-Seconds"] == "30"
    [(key, state)] = config.discovery_sources.items()
    assert key == ("api", http_sd) and state.digest is not None and state.error is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((500, b"oops", 0.0), "answered 500"),
        ((200, b"{not json", 0.0), "/sd: "),
        ((200, b"[" + b'{"targets": ["10.0.0.1:80"]},' * 200_000 + b"{}]", 0.0), "more than 4,194,304 bytes"),
        ((200, b'[{"targets": ["10.0.0.1:80"]}]' * 3, 0.3), "did not finish answering within 1s"),
    ],
    ids=["500", "invalid", "huge", "drip"],
)
def test_a_failing_http_sd_endpoint_is_a_problem_within_its_timeout(
    tmp_path: Path, http_sd: str, answer: tuple[int, bytes, float], expected: str
) -> None:
    _SdHandler.answer = answer
    started = time.monotonic()
    [problem] = problems(http_group(tmp_path, http_sd, timeout="1s"))
    assert problem.startswith("target_groups[0] (api): ") and expected in problem, problem
    assert time.monotonic() - started < 3.5  # the timeout is for the whole answer (at most twice it)


def test_an_http_sd_endpoint_that_never_answers_is_a_problem_within_its_timeout(tmp_path: Path) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # accepts in the kernel, never answers
    try:
        started = time.monotonic()
        [problem] = problems(http_group(tmp_path, f"http://127.0.0.1:{hole.getsockname()[1]}/sd", timeout="1s"))
    finally:
        hole.close()
    assert "timed out" in problem, problem
    assert time.monotonic() - started < 2.5


# --- the daemon's loads: each source keeps its last good targets -----------------------------


def test_a_source_that_fails_keeps_its_last_targets_while_the_rest_of_the_file_loads(tmp_path: Path) -> None:
    # The daemon passes what each source gave at the last load. A file_sd file turned malformed
    # (or an endpoint answering 500) keeps its targets running, as Prometheus keeps a failing
    # source's last list; a probe added beside it in the probes file still loads.
    sd(tmp_path, "a.json", [{"targets": ["10.0.0.1:80", "10.0.0.2:80"], "labels": {"team": "shop"}}])
    sd(tmp_path, "b.json", [{"targets": ["10.0.0.3:80"], "labels": {"team": "pay"}}])
    first = load_config(write(tmp_path), env={}, discovery={})
    (tmp_path / "sd" / "b.json").write_text("[{not json")
    static = "probes:\n  - {name: added, type: tcp, host: 127.0.0.1, port: 1}\n"
    second = load_config(write(tmp_path, extra=static), env={}, discovery=first.discovery_sources)
    names = {p.name for p in second.probes}
    assert names == {"web-10.0.0.1:80", "web-10.0.0.2:80", "web-10.0.0.3:80", "added"}
    states = {Path(key[1]).name: state for key, state in second.discovery_sources.items()}
    assert states["a.json"].error is None and states["b.json"].error is not None
    assert "b.json" in states["b.json"].error
    before = {Path(key[1]).name: state for key, state in first.discovery_sources.items()}
    assert states["b.json"].answered_at == before["b.json"].answered_at is not None
    assert states["b.json"].targets == before["b.json"].targets
    # the file fixed: its new targets load, the failure is gone
    sd(tmp_path, "b.json", [{"targets": ["10.0.0.4:80"], "labels": {"team": "pay"}}])
    third = load_config(write(tmp_path), env={}, discovery=second.discovery_sources)
    assert {p.name for p in third.probes} == {"web-10.0.0.1:80", "web-10.0.0.2:80", "web-10.0.0.4:80"}
    assert all(state.error is None for state in third.discovery_sources.values())


def test_a_group_over_max_targets_keeps_its_last_targets_in_the_daemon(tmp_path: Path) -> None:
    sd(tmp_path, "a.json", [{"targets": ["10.0.0.1:80", "10.0.0.2:80"]}])
    first = load_config(write(tmp_path, max_targets=2), env={}, discovery={})
    sd(tmp_path, "a.json", [{"targets": ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]}])
    second = load_config(write(tmp_path, max_targets=2), env={}, discovery=first.discovery_sources)
    assert {p.name for p in second.probes} == {"web-10.0.0.1:80", "web-10.0.0.2:80"}
    [state] = second.discovery_sources.values()
    assert state.error is not None and "over max_targets 2" in state.error


def test_a_source_that_never_answered_is_pending_in_the_daemon_and_a_problem_for_check(tmp_path: Path) -> None:
    # At start the daemon cannot know the targets of a source that does not answer: its group has
    # no probes yet and says so (pending), while the rest of the file runs. `check` (no memory)
    # must answer now: a problem, as before.
    path = write(tmp_path, files="sd/missing.json", extra="probes:\n  - {name: static, type: tcp, host: h, port: 1}\n")
    config = load_config(path, env={}, discovery={})
    assert [p.name for p in config.probes] == ["static"]
    [(key, state)] = config.discovery_sources.items()
    assert key[0] == "web" and state.answered_at is None and state.error is not None
    assert "missing.json" in state.error
    [problem] = problems(path)
    assert "missing.json" in problem


def test_a_target_cannot_reach_the_agents_environment_through_a_placeholder(tmp_path: Path) -> None:
    # A file_sd file (or an http_sd answer) is written by someone else: a label of
    # "${DATABASE_URL}" must stay that text, not become the agent's environment variable in a
    # probe's label (and /metrics). Only the probes file's own ${VAR} references are expanded.
    sd(tmp_path, "a.json", [{"targets": ["10.0.0.1:80"], "labels": {"team": "${DATABASE_URL}-$$x"}}])
    config = load_config(write(tmp_path), env={"DATABASE_URL": "postgres://u:hunter2@db/x"})
    [probe] = config.probes
    assert probe.labels == {"team": "${DATABASE_URL}-$$x"}


def test_a_templates_own_secret_is_expanded_once_and_masked_in_each_probe_it_makes(tmp_path: Path) -> None:
    sd(tmp_path, "a.json", [{"targets": ["10.0.0.1:80", "10.0.0.2:80"]}])
    path = tmp_path / "probes.yaml"
    path.write_text(
        "target_groups:\n  - name: api\n    file_sd_configs: [{files: [sd/a.json]}]\n"
        "    probe: {type: http, url: 'http://{{target.address}}/', headers: {X-Token: '${API_TOKEN}'}}\n"
    )
    config = load_config(path, env={"API_TOKEN": "s3cr3t-$$-token"})
    assert [p.headers["X-Token"] for p in config.probes] == ["s3cr3t-$$-token"] * 2  # type: ignore[attr-defined]
    for probe in config.probes:  # each probe's own outputs mask it, not only the agent's logs
        assert "s3cr3t" not in config.redactor(probe.name).redact("sent X-Token s3cr3t-$$-token")


def test_an_http_sd_endpoint_of_100000_targets_is_refused_whole_or_relabelled_down(
    tmp_path: Path, http_sd: str
) -> None:
    # 100,000 targets (~2.3 MB of JSON): over max_targets is one clear problem, within seconds;
    # a keep step that selects 1,000 of them loads those.
    listing = [{"targets": [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:80" for i in range(100_000)]}]
    for entry in listing:
        entry["labels"] = {"zone": "a"}  # type: ignore[assignment]
    _SdHandler.answer = (200, json.dumps(listing).encode(), 0.0)
    started = time.monotonic()
    [problem] = problems(http_group(tmp_path, http_sd))
    assert "100,000 targets, over max_targets 1,000" in problem, problem
    path = tmp_path / "probes.yaml"
    path.write_text(
        path.read_text().replace(
            "    probe:",
            "    relabel_configs: [{action: keep, source_labels: [__address__], regex: '10\\.0\\.[0-2]\\..*'}]\n    probe:",
        )
    )
    config = load_config(path, env={})
    assert len(config.probes) == 768
    assert time.monotonic() - started < 20


def test_a_rotated_bearer_token_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from probe_agent.config import kubernetes

    token = tmp_path / "token"
    token.write_text("first\n")
    monkeypatch.setattr(kubernetes, "TOKEN_REREAD", 0.0)
    refresh = kubernetes.token_refresher(str(token))

    class Settings:
        api_key = {"BearerToken": "first"}

    token.write_text("second\n")  # the kubelet rotated the projected token
    refresh(Settings)
    assert Settings.api_key["BearerToken"] == "second"
    token.unlink()  # unreadable for a moment: the last token stays
    refresh(Settings)
    assert Settings.api_key["BearerToken"] == "second"
