"""kubernetes_sd_configs (probe_agent.schema.discovery.KubernetesSdConfig): the Services and
Ingresses that opt in to a target group by annotation, and prometheus-operator Probe objects
whose module is the group, as targets. The API client is kubernetes_asyncio (the
`kubernetes` extra; it runs on aiohttp, like the agent), imported only when a group has such a
source. This module lists once (for `check` and `validate`) and turns a Service into targets;
the daemon's list-then-watch lives in probe_agent.runtime.kubernetes.

Bounded: a list answer is read up to MAX_LIST_BYTES within the source's timeout, a watch event
is one line of at most aiohttp's line limit (128 KiB), and the group's max_targets applies."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

from probe_agent.core.files import NamedFileError, read_named_file
from probe_agent.schema.discovery import KubernetesSdConfig

PROBE_RESOURCE = ("monitoring.coreos.com", "v1", "probes")  # prometheus-operator's Probe
HTTPROUTE_RESOURCE = ("gateway.networking.k8s.io", "v1", "httproutes")  # the Gateway API's route
SCHEME_ANNOTATION = "probe-agent.io/scheme"  # an HTTPRoute says no scheme: its Gateway's listener does
MAX_LIST_BYTES = 32 * 1024 * 1024
MAX_TOKEN_BYTES = 64 * 1024
TOKEN_REREAD = (
    60.0  # s: a rotated bearer_token_file is read again this soon  # ~30,000 Services with their labels and annotations
)
PORT_ANNOTATION = "probe-agent.io/port"
PATH_ANNOTATION = "probe-agent.io/path"
_UNSAFE_LABEL = re.compile(r"[^a-zA-Z0-9_]")

Target = tuple[str, dict[str, str]]


class KubernetesUnavailable(ValueError):
    """The extra is not installed: a problem of the file, said once per source."""


def source_names(sd: KubernetesSdConfig) -> list[tuple[str, str | None]]:
    """Each list-and-watch the source makes, by its name (as SourceKey, metrics and /health give
    it) and namespace (None: all of them)."""
    selector = f" {sd.selector}" if sd.selector else ""
    if not sd.namespaces:
        return [(f"kubernetes {sd.role} *{selector}", None)]
    return [(f"kubernetes {sd.role} {namespace}{selector}", namespace) for namespace in sd.namespaces]


def _meta(name: str) -> str:
    return _UNSAFE_LABEL.sub("_", name)


def service_targets(service: dict[str, Any], group: str, sd: KubernetesSdConfig) -> list[Target]:
    """The targets a Service gives the group: none unless its annotation names the group; one
    per port (or only the port `probe-agent.io/port` names) at NAME.NAMESPACE.svc:PORT."""
    metadata = service.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if annotations.get(sd.annotation) != group:
        return []
    name, namespace = str(metadata.get("name", "")), str(metadata.get("namespace", ""))
    if not name or not namespace:
        return []
    wanted = annotations.get(PORT_ANNOTATION)
    base = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_service_name": name,
        "namespace": namespace,
        "service": name,
        "path": str(annotations.get(PATH_ANNOTATION, "/")),
    }
    for key, value in (metadata.get("labels") or {}).items():
        base[f"__meta_kubernetes_service_label_{_meta(str(key))}"] = str(value)
    for key, value in annotations.items():
        base[f"__meta_kubernetes_service_annotation_{_meta(str(key))}"] = str(value)
    found: list[Target] = []
    for port in (service.get("spec") or {}).get("ports") or []:
        number, port_name = port.get("port"), str(port.get("name") or "")
        if not isinstance(number, int):
            continue
        if wanted is not None and wanted not in (port_name, str(number)):
            continue
        labels = {
            **base,
            "__meta_kubernetes_service_port_name": port_name,
            "__meta_kubernetes_service_port_number": str(number),
        }
        found.append((f"{name}.{namespace}.svc:{number}", labels))
    return found


def object_key(obj: dict[str, Any]) -> str:
    """NAMESPACE/NAME of an object, as the API server's JSON has it."""
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def endpointslice_targets(
    slices: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]], group: str, sd: KubernetesSdConfig
) -> list[Target]:
    """Role endpointslice: a target per ready endpoint address and port of each Service that
    opts in (its annotation names the group; `probe-agent.io/port` picks a port by name or
    number), with `namespace`, `service`, `pod`, `node` and `path`."""
    found: list[Target] = []
    for slice_ in slices.values():
        metadata = slice_.get("metadata") or {}
        namespace = str(metadata.get("namespace", ""))
        service_name = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        service = services.get(f"{namespace}/{service_name}")
        if service is None:
            continue
        annotations = (service.get("metadata") or {}).get("annotations") or {}
        if annotations.get(sd.annotation) != group:
            continue
        wanted = annotations.get(PORT_ANNOTATION)
        ports = [
            p
            for p in slice_.get("ports") or []
            if isinstance(p.get("port"), int)
            and (wanted is None or wanted in (str(p.get("name") or ""), str(p["port"])))
        ]
        for endpoint in slice_.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue  # not ready: the Service sends it nothing either
            pod = str((endpoint.get("targetRef") or {}).get("name", ""))
            node = str(endpoint.get("nodeName") or "")
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in str(address) else str(address)
                for port in ports:
                    labels = {
                        "__meta_kubernetes_namespace": namespace,
                        "__meta_kubernetes_service_name": str(service_name),
                        "__meta_kubernetes_endpointslice_name": str(metadata.get("name", "")),
                        "__meta_kubernetes_endpointslice_port_name": str(port.get("name") or ""),
                        "namespace": namespace,
                        "service": str(service_name),
                        "pod": pod,
                        "node": node,
                        "path": str(annotations.get(PATH_ANNOTATION, "/")),
                    }
                    found.append((f"{host}:{port['port']}", labels))
    return found


def ingress_targets(ingress: dict[str, Any], group: str, sd: KubernetesSdConfig) -> list[Target]:
    """An Ingress that opts in (its annotation names the group): a target per host and path of
    its rules, at HOST:443 where its TLS section covers the host, else HOST:80."""
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    if annotations.get(sd.annotation) != group:
        return []
    override = annotations.get(PATH_ANNOTATION)
    return [
        (address, {**labels, "path": str(override)} if override is not None else labels)
        for address, labels in _ingress_rules(ingress)
    ]


def _ingress_rules(ingress: dict[str, Any]) -> list[Target]:
    metadata = ingress.get("metadata") or {}
    name, namespace = str(metadata.get("name", "")), str(metadata.get("namespace", ""))
    spec = ingress.get("spec") or {}
    tls_hosts = {str(h) for entry in spec.get("tls") or [] for h in (entry.get("hosts") or [])}
    found: list[Target] = []
    for rule in spec.get("rules") or []:
        host = rule.get("host")
        if not isinstance(host, str) or not host or "*" in host:
            continue  # a wildcard host names no one host to probe
        scheme = "https" if host in tls_hosts else "http"
        paths = [str(p.get("path") or "/") for p in (rule.get("http") or {}).get("paths") or []] or ["/"]
        for path in paths:
            extra = {"__meta_kubernetes_ingress_scheme": scheme, "__meta_kubernetes_ingress_path": path}
            found.append(_web_target("ingress", name, namespace, host, scheme, path, extra))
    return found


def _web_target(
    kind: str, name: str, namespace: str, host: str, scheme: str, path: str, extra: dict[str, str] | None = None
) -> Target:
    """HOST:80 or HOST:443 of an Ingress's or HTTPRoute's host and path, with its labels."""
    labels = {
        "__meta_kubernetes_namespace": namespace,
        f"__meta_kubernetes_{kind}_name": name,
        **(extra or {}),
        "namespace": namespace,
        kind: name,
        "scheme": scheme,
        "path": path,
    }
    return f"{host}:{443 if scheme == 'https' else 80}", labels


def probe_targets(
    probe: dict[str, Any], group: str, sd: KubernetesSdConfig, ingresses: dict[str, dict[str, Any]] | None = None
) -> list[Target]:
    """A prometheus-operator Probe whose `module` is the group's name: its static targets, and
    the URLs (SCHEME://HOST/PATH) of the Ingresses its `targets.ingress` selects, as
    prometheus-operator hands them to blackbox_exporter; with the Probe's labels."""
    metadata = probe.get("metadata") or {}
    spec = probe.get("spec") or {}
    if spec.get("module") != group:
        return []
    name, namespace = str(metadata.get("name", "")), str(metadata.get("namespace", ""))
    targets = spec.get("targets") or {}
    static = targets.get("staticConfig") or {}
    extra = {str(k): str(v) for k, v in (static.get("labels") or {}).items()}
    own = {"__meta_kubernetes_probe_name": name, "probe": name}
    found: list[Target] = [
        (target, {**extra, "__meta_kubernetes_namespace": namespace, "namespace": namespace, **own})
        for target in static.get("static") or []
        if isinstance(target, str) and target
    ]
    selection = targets.get("ingress")
    if isinstance(selection, dict) and ingresses:
        for ingress in ingresses.values():
            if _selects_ingress(selection, namespace, ingress):
                for address, labels in _ingress_rules(ingress):
                    scheme, path = labels["scheme"], labels["path"]
                    host = address.rsplit(":", 1)[0]
                    found.append((f"{scheme}://{host}{path}", {**labels, **own}))
    return found


def _selects_ingress(selection: dict[str, Any], probe_namespace: str, ingress: dict[str, Any]) -> bool:
    """prometheus-operator's `targets.ingress`: a label selector (matchLabels) and a
    namespaceSelector (`any`, `matchNames`; by default the Probe's own namespace)."""
    metadata = ingress.get("metadata") or {}
    namespaces = selection.get("namespaceSelector") or {}
    namespace = metadata.get("namespace")
    if not namespaces.get("any"):
        allowed = namespaces.get("matchNames") or [probe_namespace]
        if namespace not in allowed:
            return False
    wanted = (selection.get("selector") or {}).get("matchLabels") or {}
    labels = metadata.get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _read_token(path: str) -> str:
    return read_named_file(path, "bearer_token_file", MAX_TOKEN_BYTES).decode("utf-8", "replace").strip()


def token_refresher(path: str) -> Callable[..., None]:
    """A hook the client calls before each request: the token file read again once it is
    TOKEN_REREAD seconds old, as a projected service account token is rotated. A file that
    cannot be read keeps the last token (the API server then says whether it still holds)."""
    read_at = time.monotonic()

    def refresh(settings: Any, *_args: object) -> None:
        nonlocal read_at
        if time.monotonic() - read_at < TOKEN_REREAD:
            return
        read_at = time.monotonic()
        try:
            settings.api_key["BearerToken"] = _read_token(path)
        except NamedFileError:
            pass

    return refresh


def configuration(sd: KubernetesSdConfig) -> Any:
    """The client's settings: `api_server` with its token and CA, else `kubeconfig_file`, else the
    pod's service account. Raises ValueError saying what is missing."""
    try:
        from kubernetes_asyncio import client, config
    except ImportError:
        raise KubernetesUnavailable(
            "kubernetes_sd_configs needs the kubernetes extra: pip install 'probe-agent[kubernetes]'"
        ) from None
    settings = client.Configuration()
    try:
        if sd.api_server is not None:
            settings.host = sd.api_server
            if sd.bearer_token_file is not None:
                settings.api_key = {"BearerToken": _read_token(sd.bearer_token_file)}
                settings.api_key_prefix = {"BearerToken": "Bearer"}
                settings.refresh_api_key_hook = token_refresher(sd.bearer_token_file)
        elif sd.kubeconfig_file is None:
            config.load_incluster_config(client_configuration=settings)  # type: ignore[no-untyped-call]
    except NamedFileError as exc:
        raise ValueError(str(exc)) from None
    except config.ConfigException as exc:
        raise ValueError(f"not in a pod ({exc}): set api_server or kubeconfig_file") from None
    if sd.ca_file is not None:
        settings.ssl_ca_cert = sd.ca_file
    settings.verify_ssl = sd.tls_verify
    return settings


async def api_client(sd: KubernetesSdConfig) -> Any:
    from kubernetes_asyncio import client, config

    settings = configuration(sd)
    if sd.api_server is None and sd.kubeconfig_file is not None:
        try:
            await config.load_kube_config(config_file=sd.kubeconfig_file, client_configuration=settings)
        except (config.ConfigException, OSError) as exc:
            raise ValueError(f"kubeconfig_file {sd.kubeconfig_file}: {exc}") from None
    return client.ApiClient(settings)


def list_call(api: Any, role: str, namespace: str | None) -> tuple[Any, tuple[Any, ...]]:
    """The client method that lists (and, with watch=True, watches) a role's objects, and its
    positional arguments."""
    from kubernetes_asyncio import client

    if role == "service":
        core = client.CoreV1Api(api)
        if namespace is None:
            return core.list_service_for_all_namespaces, ()
        return core.list_namespaced_service, (namespace,)
    if role == "endpointslice":
        discovery = client.DiscoveryV1Api(api)
        if namespace is None:
            return discovery.list_endpoint_slice_for_all_namespaces, ()
        return discovery.list_namespaced_endpoint_slice, (namespace,)
    if role == "ingress":
        networking = client.NetworkingV1Api(api)
        if namespace is None:
            return networking.list_ingress_for_all_namespaces, ()
        return networking.list_namespaced_ingress, (namespace,)
    custom = client.CustomObjectsApi(api)  # prometheus-operator's Probe, Gateway API's HTTPRoute
    group, version, plural = HTTPROUTE_RESOURCE if role == "httproute" else PROBE_RESOURCE
    if namespace is None:
        return custom.list_cluster_custom_object, (group, version, plural)
    return custom.list_namespaced_custom_object, (group, version, namespace, plural)


async def list_objects(
    api: Any, sd: KubernetesSdConfig, namespace: str | None, role: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """The objects of `role` (the source's, by default) as the API server's JSON, and the
    list's resourceVersion, bounded in bytes and time. Raises ValueError."""
    from kubernetes_asyncio.client.exceptions import ApiException

    role = role or sd.role
    method, args = list_call(api, role, namespace)
    kwargs: dict[str, Any] = {"_preload_content": False, "_request_timeout": sd.timeout}
    if sd.selector and role == sd.role:  # the selector is for what the role lists
        kwargs["label_selector"] = sd.selector
    try:
        async with asyncio.timeout(sd.timeout):
            response: Any = await method(*args, **kwargs)  # the raw aiohttp response
            if response.status != 200:  # not raised for us without _preload_content
                response.close()
                raise ValueError(f"the API server answered {response.status} {response.reason}")
            chunks, size = [], 0
            while chunk := await response.content.read(65536):
                size += len(chunk)
                if size > MAX_LIST_BYTES:
                    response.close()
                    raise ValueError(f"the list of {role} objects is over {MAX_LIST_BYTES:,} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ValueError(f"the API server did not answer the list within {sd.timeout:g}s") from None
    except ApiException as exc:
        raise ValueError(f"the API server answered {exc.status} {exc.reason}") from None
    except OSError as exc:
        raise ValueError(f"the API server: {exc}") from None
    except Exception as exc:  # aiohttp's client errors, which are not all OSErrors
        if type(exc).__module__.startswith("aiohttp"):
            raise ValueError(f"the API server: {type(exc).__name__}: {exc}") from None
        raise
    try:
        document = json.loads(b"".join(chunks))
        items = document["items"]
        version = str(document["metadata"]["resourceVersion"])
        if not isinstance(items, list):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"the API server's answer is not a list of {role} objects with a resourceVersion") from None
    return [item for item in items if isinstance(item, dict)], version


def targets_of(obj: dict[str, Any], group: str, sd: KubernetesSdConfig) -> list[Target]:
    if sd.role == "service":
        return service_targets(obj, group, sd)
    if sd.role == "ingress":
        return ingress_targets(obj, group, sd)
    if sd.role == "httproute":
        return httproute_targets(obj, group, sd)
    return probe_targets(obj, group, sd)


def httproute_targets(route: dict[str, Any], group: str, sd: KubernetesSdConfig) -> list[Target]:
    """A Gateway API HTTPRoute that opts in (its annotation names the group): a target per
    hostname and PathPrefix/Exact path of its rules, at HOST:443 with `probe-agent.io/scheme:
    https`, else HOST:80 (the route does not say which listener serves it)."""
    metadata = route.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if annotations.get(sd.annotation) != group:
        return []
    name, namespace = str(metadata.get("name", "")), str(metadata.get("namespace", ""))
    scheme = "https" if annotations.get(SCHEME_ANNOTATION) == "https" else "http"
    spec = route.get("spec") or {}
    paths: list[str] = []
    for rule in spec.get("rules") or []:
        for match in rule.get("matches") or []:
            path = (match.get("path") or {}).get("value")
            if isinstance(path, str) and path.startswith("/") and path not in paths:
                paths.append(path)
    found: list[Target] = []
    for host in spec.get("hostnames") or []:
        if not isinstance(host, str) or not host or "*" in host:
            continue  # a wildcard hostname names no one host to probe
        for path in paths or ["/"]:
            shown = str(annotations.get(PATH_ANNOTATION, path))
            found.append(_web_target("httproute", name, namespace, host, scheme, shown))
    return found


def list_targets(sd: KubernetesSdConfig, group: str, namespace: str | None) -> list[Target]:
    """One list, now (for `check` and `validate`; the daemon watches instead). Blocking."""

    async def once() -> list[Target]:
        api = await api_client(sd)
        try:
            objects, _ = await list_objects(api, sd, namespace)
            if sd.role == "endpointslice":
                services, _ = await list_objects(api, sd, namespace, "service")
                return endpointslice_targets(
                    {object_key(o): o for o in objects}, {object_key(o): o for o in services}, group, sd
                )
            if sd.role == "probe":
                ingresses, _ = await list_objects(api, sd, None, "ingress")
                by_key = {object_key(o): o for o in ingresses}
                return [t for obj in objects for t in probe_targets(obj, group, sd, by_key)]
        finally:
            await api.close()
        return [target for obj in objects for target in targets_of(obj, group, sd)]

    return asyncio.run(once())
