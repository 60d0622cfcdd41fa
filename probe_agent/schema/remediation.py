"""The `remediation` of a probe: the hooks it runs when it becomes failing (HTTP actions and
commands, with templates), validated at load. What runs them is probe_agent.runtime.remediation."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from probe_agent.schema.fields import Duration, Headers

log = logging.getLogger("probe_agent")

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
TEMPLATE_KEYS = ("probe", "type", "status", "reason", "message", "target")


def _check_templates(text: str, where: str) -> None:
    unknown = [key for key in TEMPLATE.findall(text) if key not in TEMPLATE_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown template {{{{{unknown[0]}}}}} (known: {', '.join(TEMPLATE_KEYS)})")


class HttpAction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: Headers = {}  # Authorization-like values are secrets: redacted everywhere
    body: str | None = None  # sent as is, after templating
    json_body: dict[str, Any] | None = Field(None, alias="json")  # each string value templated, then encoded
    tls_verify: bool = True

    @model_validator(mode="after")
    def _templates(self) -> HttpAction:
        if self.body is not None and self.json_body is not None:
            raise ValueError("body or json, not both")
        _check_templates(self.url, "url")
        first = TEMPLATE.search(self.url)
        if first is not None and not re.match(r"^https?://[^/?#]*[/?#]", self.url[: first.start()]):
            raise ValueError("url: a template may stand only after the host, in the path, query or fragment")
        for name, value in self.headers.items():
            _check_templates(value, f"headers.{name}")
        _check_templates(self.body or "", "body")
        _check_templates(json.dumps(self.json_body or {}), "json")
        return self


class RemediationAction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # the `action` label
    http: HttpAction | None = None
    command: tuple[str, ...] | None = None  # argv, no shell: ["/usr/local/bin/flush", "--probe", "{{probe}}"]
    timeout: Duration | None = None  # default: the remediation's

    @field_validator("command")
    @classmethod
    def _argv(cls, argv: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if argv is not None:
            if not argv or not argv[0]:
                raise ValueError("an argument list with the program first, e.g. [/usr/local/bin/flush, --all]")
            for index, arg in enumerate(argv):
                _check_templates(arg, f"command[{index}]")
        return argv

    @model_validator(mode="after")
    def _one_kind(self) -> RemediationAction:
        if (self.http is None) == (self.command is None):
            raise ValueError("give exactly one of http or command")
        return self


class Remediation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    actions: tuple[RemediationAction, ...] = Field(min_length=1)
    dry_run: bool = True  # log and count what would be done; false acts
    cooldown: Duration = 60.0  # between two attempts while the probe stays failing
    max_attempts: int = Field(3, ge=1)  # per window; one more wanted is suppressed and escalates
    window: Duration = 300.0
    timeout: Duration = 10.0  # per action

    @model_validator(mode="after")
    def _names(self) -> Remediation:
        names = [a.name for a in self.actions]
        if len(set(names)) != len(names):
            raise ValueError(f"actions: duplicate name among {', '.join(names)}")
        return self
