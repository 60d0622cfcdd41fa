"""`target_groups:` in a probes file: probes made from the targets a team already lists for
Prometheus, one probe per discovered target from a template.

    target_groups:
      - name: web
        file_sd_configs:                  # Prometheus's own file_sd format (JSON or YAML)
          - files: [/etc/prometheus/targets/web-*.json]
        max_targets: 1000                 # more is a config problem: the running probes stay
        probe:                            # any probe's fields, with placeholders
          type: http
          url: "https://{{target.address}}/healthz"
          labels: {team: "{{target.labels.team}}"}
          interval: 30s

Placeholders: `{{group}}`, `{{target.address}}` (HOST:PORT as listed), `{{target.host}}`,
`{{target.port}}`, `{{target.labels.NAME}}` (empty when the target has no such label). The
probe's name is its template's `name`, by default `{{group}}-{{target.address}}`, with any
character a probe name cannot hold made `_` (`web-_::1_:9000` for `[::1]:9000`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from probe_agent.schema.fields import Duration

PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
TARGET_KEYS = ("target.address", "target.host", "target.port")
DEFAULT_NAME = "{{group}}-{{target.address}}"
MAX_FILES = 100  # files one group's globs may match
MAX_SD_FILE_BYTES = 4 * 1024 * 1024  # a file_sd file of 50,000 targets is ~2 MB


def placeholder_problem(key: str) -> str | None:
    """Why a placeholder is not one a template may use, or None."""
    if key == "group" or key in TARGET_KEYS:
        return None
    if key.startswith("target.labels.") and re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key[len("target.labels.") :]):
        return None
    return (
        f"unknown placeholder {{{{{key}}}}} (known: {{{{group}}}}, {{{{target.address}}}}, {{{{target.host}}}},"
        " {{target.port}}, {{target.labels.NAME}})"
    )


class FileSdConfig(BaseModel):
    """As Prometheus's file_sd_configs: files (a glob in the last part of each path)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: list[str] = Field(min_length=1)
    # accepted as Prometheus has it; the agent sees a change at its watcher's interval (--watch-config)
    refresh_interval: Duration = 300.0


class TargetGroup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    file_sd_configs: list[FileSdConfig] = Field(min_length=1)
    max_targets: int = Field(1000, ge=1, le=50_000)
    probe: dict[str, Any]  # the template, checked once per target by the type's own model

    @field_validator("probe")
    @classmethod
    def _template(cls, probe: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(probe.get("type"), str):
            raise ValueError("type: required: the probe type every target gets")
        for key in _placeholders(probe):
            if (problem := placeholder_problem(key)) is not None:
                raise ValueError(problem)
        return probe


def _placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [key for item in value.values() for key in _placeholders(item)]
    if isinstance(value, list):
        return [key for item in value for key in _placeholders(item)]
    return []


def fill(value: Any, values: dict[str, str]) -> Any:
    """The template with every placeholder replaced (a missing target label is empty)."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), value)
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    return value
