"""Every file a probes file names (every `*_file` field of every type) is read like the probes
file: a FIFO, a device, a directory or an oversized file is a located problem in `validate`, in
well under a second, never a hang or a read without end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from probe_agent.probes import REGISTRY
from tests.helpers.probe_examples import hostile_definition

FILE_FIELDS = [
    (type_name, field)
    for type_name in sorted(REGISTRY)
    for field in REGISTRY[type_name].config_model.model_fields
    if field.endswith("_file")
]


def _probes_naming(path: str) -> str:
    probes = []
    for type_name, field in FILE_FIELDS:
        definition = hostile_definition(type_name, 1)
        definition.pop("password", None)  # password_file stands for it
        definition.update({"name": f"{type_name}-{field}", field: path})
        if field in ("ca_file", "cert_file", "key_file") and "tls" in REGISTRY[type_name].config_model.model_fields:
            definition["tls"] = True
        probes.append(definition)
    return yaml.safe_dump({"probes": probes})


def _validate(tmp_path: Path, path: str) -> tuple[int, str, float]:
    config = tmp_path / "probes.yaml"
    config.write_text(_probes_naming(path))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "probe_agent", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, done.stderr, time.monotonic() - started


def _fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return str(path)


def _big(tmp_path: Path) -> str:
    path = tmp_path / "big.pem"
    with open(path, "wb") as file:
        file.truncate(3 * 1024 * 1024)  # sparse: 3 MB that cost nothing on disk
    return str(path)


KINDS = {
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "device": (lambda _tmp: "/dev/zero", "is a character device, not a regular file"),
    "directory": (lambda tmp: str(tmp), "is a directory, not a regular file"),
    "oversized": (_big, "over the limit of"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_named_file_must_be_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    make, words = KINDS[kind]
    code, stderr, seconds = _validate(tmp_path, make(tmp_path))
    assert code == 1, stderr
    assert seconds < 10, f"validate took {seconds:.1f}s"
    lines = [line for line in stderr.splitlines() if line.lstrip().startswith("-")]
    for type_name, field in FILE_FIELDS:
        mine = [line for line in lines if f"'{type_name}-{field}'" in line]
        assert mine, f"{type_name}.{field}: no problem reported\n{stderr}"
        assert any(field in line and words in line for line in mine), f"{type_name}.{field}: {mine}"


def test_dev_null_is_an_empty_file() -> None:
    # `password_file: /dev/null` (no password) is a common way to say "none"; it reads as empty
    from probe_agent.core.files import read_named_file

    assert read_named_file("/dev/null", "password_file") == b""
