"""`probe_endpoint:` in a probes file: blackbox_exporter's `GET /probe?module=M&target=T`,
so scrape configs, dashboards and prometheus-operator Probe objects written for it work
against the agent unchanged. Off unless this section is there.

    probe_endpoint:
      max_concurrency: 16          # runs in flight at once; more is 429
      max_per_second: 100          # runs started a second; more is 429
      modules:
        http_2xx:
          targets: [10.0.0.0/8, "*.svc.cluster.local", discovered]   # what it may probe
          probe: {type: http, url: "{{target.url}}", timeout: 5s}

A module is a probe template with the placeholders of a target group's (`{{target.address}}`
is the target as asked, `{{target.url}}` it with `http://` in front when it has no scheme,
as blackbox_exporter's http prober reads it). It is not an open proxy: a target whose host is
not in the module's `targets` (CIDRs, host globs, or `discovered`: an address one of the
target groups' sources lists) is 403."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import urllib.parse

from pydantic import BaseModel, ConfigDict, Field, field_validator

from probe_agent.schema.discovery import Template

DISCOVERED = "discovered"
_HOST_GLOB = re.compile(r"[A-Za-z0-9*?._-]+")


def target_parts(target: str) -> tuple[str, str, str]:
    """(host, port, url) of a target as blackbox_exporter takes one: `HOST:PORT`, `HOST`,
    `[IPv6]:PORT` or a URL; the port is "" where there is none."""
    url = target if "://" in target else f"http://{target}"
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", str(parts.port or "")
    except ValueError:  # a port that is not a number, a bracket left open
        return "", "", url
    return host, port, url


class ProbeModule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    targets: list[str] = Field(min_length=1)
    probe: Template

    @field_validator("targets")
    @classmethod
    def _rules(cls, rules: list[str]) -> list[str]:
        for rule in rules:
            if rule == DISCOVERED or _HOST_GLOB.fullmatch(rule):
                continue
            try:
                ipaddress.ip_network(rule, strict=False)
            except ValueError:
                raise ValueError(
                    f"{rule!r} is not a CIDR, a host glob (*.svc.cluster.local) or {DISCOVERED!r}"
                ) from None
        return rules

    def allows(self, target: str, discovered: frozenset[str]) -> bool:
        """Whether this module may probe `target`: its host is in a CIDR or matches a host glob
        of `targets`, or (with `discovered`) the target is an address a source lists. A host
        name is not resolved to match a CIDR: what it resolves to may change under the check."""
        host, port, _ = target_parts(target)
        if not host:
            return False
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for rule in self.targets:
            if rule == DISCOVERED:
                if target in discovered or (port and f"{host}:{port}" in discovered):
                    return True
            elif "/" in rule or _is_address(rule):
                if address is not None and address in ipaddress.ip_network(rule, strict=False):
                    return True
            elif address is None and fnmatch.fnmatchcase(host.lower(), rule.lower()):
                return True
        return False


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ProbeEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    modules: dict[str, ProbeModule] = Field(min_length=1)
    max_concurrency: int = Field(16, ge=1, le=1000)
    max_per_second: float = Field(100.0, gt=0, le=10_000)

    @field_validator("modules")
    @classmethod
    def _names(cls, modules: dict[str, ProbeModule]) -> dict[str, ProbeModule]:
        for name in modules:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
                raise ValueError(f"{name!r}: a module name is letters, digits, _ . - (at most 64)")
        return modules
