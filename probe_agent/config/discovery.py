"""The probes of `target_groups` (probe_agent.schema.discovery): read each group's file_sd files,
bounded (regular files only, at most MAX_FILES a group and MAX_SD_FILE_BYTES each), and make
one probe entry per target from the group's template. The entries then go through the same
validation as every probe in the file, so a discovered probe is an ordinary probe everywhere."""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from probe_agent import __version__
from probe_agent.config.kubernetes import list_targets, source_names
from probe_agent.config.sources import SourceKey, SourceState, Target
from probe_agent.core.errors import ConfigError
from probe_agent.core.files import NamedFileError, read_named_file
from probe_agent.core.yamlload import load_yaml
from probe_agent.schema.discovery import (
    DEFAULT_NAME,
    MAX_FILES,
    MAX_SD_FILE_BYTES,
    DnsSdConfig,
    HttpSdConfig,
    KubernetesSdConfig,
    TargetGroup,
    fill,
)
from probe_agent.schema.probe_endpoint import target_parts

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
MAX_LISTED = 200_000  # targets a group's files may list before relabelling keeps some


def discovery_base(config_path: str | Path | None) -> Path:
    """The folder relative sd paths start from: the probes file's, else the current one."""
    path = Path(config_path) if config_path is not None else None
    return path.parent if path is not None and path.is_file() else Path.cwd()


def sd_files(group: TargetGroup, base: Path) -> list[str]:
    """The files a group's globs match now (relative paths are from the probes file's folder)."""
    found: list[str] = []
    for sd in group.file_sd_configs:
        for pattern in sd.files:
            path = pattern if os.path.isabs(pattern) else str(base / pattern)
            matched = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
            found.extend(m for m in matched if m not in found)
    return found


def fetch_http_sd(sd: HttpSdConfig) -> bytes:
    """The body an http_sd endpoint answers: status 200, at most MAX_SD_FILE_BYTES, all of it
    within `sd.timeout` (a socket timeout alone would let an endpoint that drips a byte at a time
    hold the reload for good). Sends X-Prometheus-Refresh-Interval-Seconds as Prometheus does.
    Raises ValueError saying what went wrong."""
    deadline = time.monotonic() + sd.timeout
    request = urllib.request.Request(
        sd.url,
        headers={
            "Accept": "application/json",
            "User-Agent": f"probe-agent/{__version__}",
            "X-Prometheus-Refresh-Interval-Seconds": f"{sd.refresh_interval:g}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=sd.timeout) as response:
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read1(65536):
                size += len(chunk)
                if size > MAX_SD_FILE_BYTES:
                    raise ValueError(f"{sd.url}: answered more than {MAX_SD_FILE_BYTES:,} bytes")
                if time.monotonic() > deadline:
                    raise ValueError(f"{sd.url}: did not finish answering within {sd.timeout:g}s")
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{sd.url}: answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ValueError(f"{sd.url}: {reason}") from None


def _parse_targets(data: bytes, path: str) -> list[tuple[str, dict[str, str]]]:
    try:
        document = load_yaml(data.decode("utf-8", errors="replace"))
    except ConfigError as exc:  # the bounded YAML reader's: not YAML, too deep, too many aliases...
        raise ValueError(f"{path}: {'; '.join(exc.problems)}") from None
    if document is None:
        return []
    if not isinstance(document, list):
        raise ValueError(f"{path}: expected a list of {{targets: [...], labels: {{...}}}}")
    found = []
    for index, entry in enumerate(document):
        if not isinstance(entry, dict) or not isinstance(entry.get("targets", []), list):
            raise ValueError(f"{path}: [{index}]: expected {{targets: [HOST:PORT, ...], labels: {{...}}}}")
        labels = entry.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError(f"{path}: [{index}].labels: expected a mapping of strings")
        for address in entry.get("targets", []):
            if not isinstance(address, str) or not address:
                raise ValueError(f"{path}: [{index}].targets: {address!r} is not HOST:PORT")
            found.append((address, {str(k): v for k, v in labels.items()}))
    return found


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


Reader = Callable[[], tuple[list[Target], bytes]]  # a source's targets, and what its digest is of


class Source(NamedTuple):
    name: str  # the file's path, the URL, "dns SRV NAME": in SourceKey, metrics, /health
    refresh_interval: float  # files: the watcher sees changes; the others are asked again this often
    read: Reader
    # Kubernetes: the daemon lists and then watches (probe_agent.runtime.kubernetes) and hands its
    # list to each load; `read` lists once, for check and validate.
    watched: bool = False


def digest_of(targets: list[Target]) -> bytes:
    """What a digest of a list of targets is taken over (the sources that answer no bytes)."""
    return repr(sorted((address, sorted(labels.items())) for address, labels in targets)).encode()


def sources_of(group: TargetGroup, files: list[str]) -> list[Source]:
    """Each source of a group, with how to read it (`files`: what its globs match now)."""

    def file(path: str) -> tuple[list[Target], bytes]:
        data = read_named_file(path, "file_sd_configs", MAX_SD_FILE_BYTES)
        return _parse_targets(data, path), data

    def http(sd: HttpSdConfig) -> tuple[list[Target], bytes]:
        data = fetch_http_sd(sd)
        return _parse_targets(data, sd.url), data

    def dns_name(sd: DnsSdConfig, name: str) -> tuple[list[Target], bytes]:
        found = resolve_dns_sd(sd, name)
        return found, digest_of(found)

    def kubernetes(sd: KubernetesSdConfig, namespace: str | None) -> tuple[list[Target], bytes]:
        found = list_targets(sd, group.name, namespace)
        return found, digest_of(found)

    sources = [Source(path, 0.0, functools.partial(file, path)) for path in files]
    sources += [Source(sd.url, sd.refresh_interval, functools.partial(http, sd)) for sd in group.http_sd_configs]
    sources += [
        Source(dns_source(sd, name), sd.refresh_interval, functools.partial(dns_name, sd, name))
        for sd in group.dns_sd_configs
        for name in sd.names
    ]
    sources += [
        Source(name, 0.0, functools.partial(kubernetes, sd, namespace), watched=True)
        for sd in group.kubernetes_sd_configs
        for name, namespace in source_names(sd)
    ]
    return sources


def dns_source(sd: DnsSdConfig, name: str) -> str:
    return f"dns {sd.type} {name}" + (f" @{sd.server}" if sd.server else "")


def resolve_dns_sd(sd: DnsSdConfig, name: str) -> list[Target]:
    """The targets a DNS name gives, as Prometheus's dns_sd: SRV records' host:port, or the A or
    AAAA addresses with `sd.port`. All lookups within `sd.timeout`; a name that does not exist
    or has no such records gives no targets (the registry lists none), a server that fails or
    does not answer raises ValueError (the source keeps its last targets). The answers are DNS
    messages, at most 64 KiB each: bounded by the protocol."""
    import dns.exception  # dnspython costs 30 ms to import: only where a group looks names up
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=sd.server is None)
    if (nameserver := sd.nameserver()) is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    resolver.lifetime = resolver.timeout = sd.timeout
    found: list[Target] = []
    try:
        answer = resolver.resolve(name, sd.type, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise ValueError(f"{dns_source(sd, name)}: no answer within {sd.timeout:g}s") from None
    except dns.exception.DNSException as exc:
        raise ValueError(f"{dns_source(sd, name)}: {exc}") from None
    for record in answer:
        labels = {"__meta_dns_name": name}
        if sd.type == "SRV":
            host = record.target.to_text(omit_final_dot=True)
            labels["__meta_dns_srv_record_target"] = host
            labels["__meta_dns_srv_record_port"] = str(record.port)
            found.append((f"{host}:{record.port}", labels))
        else:
            address = record.to_text()
            found.append((f"[{address}]:{sd.port}" if ":" in address else f"{address}:{sd.port}", labels))
    return found


def _read_sources(
    group: TargetGroup,
    files: list[str],
    label: str,
    previous: dict[SourceKey, SourceState] | None,
    answers: dict[SourceKey, SourceState],
) -> tuple[dict[SourceKey, SourceState], list[str]]:
    """Each source of a group read now (or taken from `answers`, what a refresh just read); a
    failing one kept from `previous` (or a problem without it)."""
    states: dict[SourceKey, SourceState] = {}
    problems: list[str] = []
    for source in sources_of(group, files):
        key = (group.name, source.name)
        if key in answers:  # the refresh that asked for this load read it a moment ago
            states[key] = answers[key]
            continue
        if source.watched and previous is not None:
            # the daemon's watch keeps this list: what it had at the last change (or pending)
            states[key] = previous.get(key) or SourceState()  # pending: no list yet, and no failure either
            continue
        try:
            found, data = source.read()
            targets = tuple(found)
        except (NamedFileError, ValueError) as exc:
            if previous is None:
                problems.append(f"{label}: {exc}")
            else:
                states[key] = previous.get(key, SourceState()).failed(str(exc))
            continue
        states[key] = SourceState(targets, digest(data), time.time())
    return states, problems


def discovered_probes(
    groups: list[TargetGroup],
    base: Path,
    problems: list[str],
    previous: dict[SourceKey, SourceState] | None = None,
    answers: dict[SourceKey, SourceState] | None = None,
) -> tuple[list[dict[str, Any]], list[int], tuple[str, ...], dict[SourceKey, SourceState]]:
    """Probe entries for every target of every group, the index of the group each came from,
    the files they came from (to watch), and what each source gave (see SourceState: with
    `previous`, the daemon's, a failing source or group keeps its last targets)."""
    entries: list[dict[str, Any]] = []
    group_indexes: list[int] = []
    watched: list[str] = []
    sources: dict[SourceKey, SourceState] = {}
    for index, group in enumerate(groups):
        label = f"target_groups[{index}] ({group.name})"
        files = sd_files(group, base)
        watched.extend(files)

        def refuse(problem: str, group: TargetGroup = group) -> None:
            """A problem of the whole group: without memory, the file's; with it, each of the
            group's sources keeps what it had."""
            if previous is None:
                problems.append(problem)
                return
            for key, state in previous.items():
                if key[0] == group.name:
                    sources[key] = state.failed(problem)

        if len(files) > MAX_FILES:
            refuse(f"{label}: file_sd_configs match {len(files)} files, over the limit of {MAX_FILES}")
            continue
        states, failures = _read_sources(group, files, label, previous, answers or {})
        if failures:
            problems.extend(failures)
            continue
        targets = [target for state in states.values() for target in state.targets]
        if len(targets) > MAX_LISTED:
            refuse(f"{label}: its sources list {len(targets):,} targets, over the limit of {MAX_LISTED:,}")
            continue
        made = _instantiate(group, targets)
        if len(made) > group.max_targets:
            refuse(
                f"{label}: its sources list {len(made):,} targets, over max_targets {group.max_targets:,}"
                " (the running probes stay)"
            )
            if previous is not None:  # the group's last good targets, as they were
                made = _instantiate(group, [t for k, st in sources.items() if k[0] == group.name for t in st.targets])
            else:
                continue
        else:
            sources.update(states)
        entries.extend(made)
        group_indexes.extend([index] * len(made))
    return entries, group_indexes, tuple(watched), sources


def fill_template(template: dict[str, Any], group: str, address: str, labels: dict[str, str]) -> dict[str, Any]:
    """A probe entry from a template for one target (HOST:PORT, or a URL as /probe takes one)."""
    host, port, url = target_parts(address)
    if not host and "://" not in address:  # not parseable as a URL: as listed
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    values = {
        "group": group,
        "target.address": address,
        "target.host": host.strip("[]"),
        "target.port": port,
        "target.url": url,
    }
    values.update({f"target.labels.{k}": v for k, v in labels.items()})
    # What a source lists is text, never a ${VAR} of the agent's environment: the entry is
    # expanded once, as every probe entry, and `$$` is a literal `$` there.
    entry: dict[str, Any] = fill(template, {k: v.replace("$", "$$") for k, v in values.items()})
    return entry


def _instantiate(group: TargetGroup, targets: list[Target]) -> list[dict[str, Any]]:
    """The group's template filled in for each target that relabelling keeps, once per name."""
    made: list[dict[str, Any]] = []
    names: set[str] = set()
    for listed, listed_labels in targets:
        relabelled: dict[str, str] | None = {"__address__": listed, **listed_labels}
        for step in group.relabel_configs:
            relabelled = step.apply(relabelled) if relabelled is not None else None
        if relabelled is None or not relabelled.get("__address__"):
            continue  # dropped by a keep or drop step
        labels = {k: v for k, v in relabelled.items() if not k.startswith("__")}
        entry = fill_template({"name": DEFAULT_NAME, **group.probe}, group.name, relabelled["__address__"], labels)
        # an IPv6 address's brackets (or a label's slash) cannot be in a probe's name
        entry["name"] = _NAME_UNSAFE.sub("_", str(entry["name"]))
        if entry["name"] in names:
            continue  # listed twice (in two files, say): one probe, as Prometheus keeps one target
        names.add(entry["name"])
        made.append(entry)
    return made
