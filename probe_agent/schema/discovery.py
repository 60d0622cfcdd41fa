"""`target_groups:` in a probes file: probes made from the targets a team already lists for
Prometheus (file_sd files, http_sd endpoints, DNS names), one probe per discovered target from a template.

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
`{{target.port}}`, `{{target.url}}` (the address with `http://` in front when it has no scheme),
`{{target.labels.NAME}}` (empty when the target has no such label). The
probe's name is its template's `name`, by default `{{group}}-{{target.address}}`, with any
character a probe name cannot hold made `_` (`web-_::1_:9000` for `[::1]:9000`)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from probe_agent.schema.fields import Duration

PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
TARGET_KEYS = ("target.address", "target.host", "target.port", "target.url")
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
        " {{target.port}}, {{target.url}}, {{target.labels.NAME}})"
    )


def _checked_template(probe: dict[str, Any]) -> dict[str, Any]:
    """A probe template: a type, and only placeholders there are."""
    if not isinstance(probe.get("type"), str):
        raise ValueError("type: required: the probe type every target gets")
    for key in _placeholders(probe):
        if (problem := placeholder_problem(key)) is not None:
            raise ValueError(problem)
    return probe


Template = Annotated[dict[str, Any], AfterValidator(_checked_template)]


class FileSdConfig(BaseModel):
    """As Prometheus's file_sd_configs: files (a glob in the last part of each path)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: list[str] = Field(min_length=1)
    # accepted as Prometheus has it; the agent sees a change at its watcher's interval (--watch-config)
    refresh_interval: Duration = 300.0


class RelabelConfig(BaseModel):
    """One of Prometheus's relabel_configs, the actions a target group needs: keep or drop a
    target whose source labels (joined by `separator`) match `regex` in full, or replace a label
    with `replacement` (`$1`, `${name}` from the match). `__address__` is the target itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["replace", "keep", "drop"] = "replace"
    source_labels: list[str] = []
    separator: str = ";"
    regex: str = "(.*)"
    target_label: str = ""
    replacement: str = "$1"

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            re.compile(regex)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return regex

    @model_validator(mode="after")
    def _target(self) -> RelabelConfig:
        if self.action == "replace" and not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", self.target_label):
            raise ValueError("target_label: required for replace, a label name")
        return self

    def apply(self, labels: dict[str, str]) -> dict[str, str] | None:
        """The target's labels after this step, or None when it drops the target."""
        value = self.separator.join(labels.get(name, "") for name in self.source_labels)
        match = re.fullmatch(self.regex, value)
        if self.action == "keep":
            return labels if match else None
        if self.action == "drop":
            return None if match else labels
        if match is None:
            return labels
        result = _REFERENCE.sub(lambda ref: _group(match, ref.group(1) or ref.group(2)), self.replacement)
        if result:
            return {**labels, self.target_label: result}
        return {k: v for k, v in labels.items() if k != self.target_label}  # as Prometheus: empty removes it


_REFERENCE = re.compile(r"\$(?:(\d+)|\{(\w+)\})")


def _group(match: re.Match[str], key: str) -> str:
    """A group of the match by number or name; empty when there is none (as in Prometheus)."""
    try:
        return match.group(int(key) if key.isdigit() else key) or ""
    except (IndexError, re.error):
        return ""


class HttpSdConfig(BaseModel):
    """As Prometheus's http_sd_configs: a URL answering the file_sd format as JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://[^/\s]+")
    refresh_interval: Duration = 60.0  # asked again this often (Prometheus's default)
    timeout: Duration = 10.0  # the whole answer, not each read


class DnsSdConfig(BaseModel):
    """As Prometheus's dns_sd_configs: each name looked up as SRV (a target per record: its host
    and port), A or AAAA (a target per address, with `port`), again every refresh_interval.
    The agent's own additions: `timeout` (all lookups of one name) and `server` (a nameserver's
    IP address, else the system's resolver). Each target carries Prometheus's meta labels
    `__meta_dns_name`, `__meta_dns_srv_record_target` and `__meta_dns_srv_record_port`, for
    relabel_configs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    names: list[str] = Field(min_length=1, max_length=100)
    type: Literal["SRV", "A", "AAAA"] = "SRV"
    port: int | None = Field(None, ge=1, le=65535)  # required for A and AAAA
    refresh_interval: Duration = 30.0  # Prometheus's default
    timeout: Duration = 5.0
    server: str | None = None  # "IP" or "IP:PORT" ("[IPv6]:PORT")

    @model_validator(mode="after")
    def _port_and_server(self) -> DnsSdConfig:
        if self.type != "SRV" and self.port is None:
            raise ValueError(f"port: required for type {self.type} (an SRV record carries its own)")
        if self.server is not None and self.nameserver() is None:
            raise ValueError(f"server: {self.server!r} is not an IP address, IP:PORT or [IPv6]:PORT")
        return self

    def nameserver(self) -> tuple[str, int] | None:
        """(IP, port) of `server`; None when it is not one (or not set)."""
        if self.server is None:
            return None
        host, port = self.server, "53"
        if self.server.startswith("["):
            host, _, rest = self.server[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ("53" if not rest else "")
        elif self.server.count(":") == 1:
            host, _, port = self.server.partition(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        return (host, int(port)) if port.isdigit() and 0 < int(port) < 65536 else None


class KubernetesSdConfig(BaseModel):
    """Objects of a Kubernetes cluster, listed and then watched (probe_agent.config.kubernetes):
    - role service: Services that opt in by annotation (`probe-agent.io/probe: GROUP`), a
      target per port (`probe-agent.io/port` picks one) at `NAME.NAMESPACE.svc:PORT`, with
      `namespace`, `service` and `path` (`probe-agent.io/path`, default `/`);
    - role endpointslice: the ready addresses of the Services that opt in, a target per pod
      address and port, with `namespace`, `service`, `pod`, `node` and `path`;
    - role ingress: Ingresses that opt in the same way, a target per rule's host and path at
      HOST:443 (TLS) or HOST:80, with `namespace`, `ingress`, `scheme` and `path`;
    - role httproute: Gateway API HTTPRoutes that opt in the same way, a target per hostname
      and path, HOST:80 (or HOST:443 with `probe-agent.io/scheme: https`);
    - role probe: prometheus-operator Probe objects whose `module` is the group's name, their
      static targets with the Probe's labels and `namespace`, `probe`.
    Each target also has Prometheus's `__meta_kubernetes_*` labels, for relabelling.

    Credentials: in a pod, its service account (the default); else `kubeconfig_file`, or
    `api_server` with `bearer_token_file` and `ca_file`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["service", "endpointslice", "ingress", "httproute", "probe"] = "service"
    namespaces: list[str] = Field([], max_length=100)  # none: every namespace
    selector: str | None = Field(None, max_length=1024)  # a label selector, as kubectl -l takes it
    annotation: str = "probe-agent.io/probe"  # its value names the group a Service joins
    api_server: str | None = Field(None, pattern=r"^https?://[^/\s]+")
    kubeconfig_file: str | None = None
    bearer_token_file: str | None = None
    ca_file: str | None = None
    tls_verify: bool = True
    timeout: Duration = 10.0  # a list, and the wait for each watch event before asking again


class TargetGroup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    file_sd_configs: list[FileSdConfig] = []
    http_sd_configs: list[HttpSdConfig] = []
    dns_sd_configs: list[DnsSdConfig] = []
    kubernetes_sd_configs: list[KubernetesSdConfig] = []
    max_targets: int = Field(1000, ge=1, le=50_000)
    relabel_configs: list[RelabelConfig] = []  # applied to each target before its probe is made
    probe: Template  # checked once per target by the type's own model

    @model_validator(mode="after")
    def _a_source(self) -> TargetGroup:
        if not (self.file_sd_configs or self.http_sd_configs or self.dns_sd_configs or self.kubernetes_sd_configs):
            raise ValueError(
                "file_sd_configs, http_sd_configs, dns_sd_configs or kubernetes_sd_configs:"
                " a group needs a source of targets"
            )
        return self


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
