"""A Kubernetes API server double for Services, Ingresses and prometheus-operator Probes, on loopback, written from the API's concepts
(no cluster can run here): the real kubernetes_asyncio client talks to it.

- GET /api/v1/services, /api/v1/namespaces/NS/services, and the same under
  /apis/GROUP/VERSION/ for ingresses and probes: a list whose metadata
  carries the resourceVersion of the newest change; `labelSelector` of k=v terms.
- The same with `watch=true`: a chunked stream of one JSON event per line (ADDED, MODIFIED,
  DELETED) newer than `resourceVersion`, BOOKMARK events when `allowWatchBookmarks` asks for
  them, ending after `timeoutSeconds`; a `resourceVersion` older than the kept history gets
  an ERROR event with a `410 Expired` Status, as the API server sends after a compaction.
- `failing`: every request answers 503 and open watches end (the API server down).
- `hostile`: a list that never ends (spew), no answer at all (hang), or bytes that are no JSON."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.helpers.stub_http import QuietHandler, stub_http

BOOKMARK_EVERY = 0.5


class KubeApi:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.version = 100
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, namespace, name) -> object
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # (version, plural, type, object)
        self.oldest = self.version  # a watch from before this is 410
        self.failing = False
        self.token: str | None = None  # when set, a request without "Bearer TOKEN" is 401
        self.hostile: str | None = None  # "spew" (never stops sending), "hang" (never answers), "garbage"
        self.lists = 0
        self.watches = 0
        self.url = ""

    def service(
        self,
        namespace: str,
        name: str,
        ports: list[dict[str, Any]],
        annotations: dict[str, str],
        labels: dict[str, str],
    ) -> dict[str, Any]:
        return {
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{namespace}-{name}",
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {"ports": ports, "type": "ClusterIP"},
        }

    def put(
        self,
        namespace: str,
        name: str,
        ports: list[dict[str, Any]],
        annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.put_object("services", self.service(namespace, name, ports, annotations or {}, labels or {}))

    def put_object(self, plural: str, body: dict[str, Any]) -> None:
        """Create or replace an object of any kind (ingresses, probes: `plural` as in its URL)."""
        metadata = body["metadata"]
        key = (plural, metadata["namespace"], metadata["name"])
        with self.lock:
            self.version += 1
            body = {**body, "metadata": {**metadata, "resourceVersion": str(self.version)}}
            kind = "MODIFIED" if key in self.objects else "ADDED"
            self.objects[key] = body
            self.events.append((self.version, plural, kind, body))
            self.lock.notify_all()

    def delete(self, namespace: str, name: str, plural: str = "services") -> None:
        with self.lock:
            body = self.objects.pop((plural, namespace, name))
            self.version += 1
            body = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
            self.events.append((self.version, plural, "DELETED", body))
            self.lock.notify_all()

    def compact(self) -> None:
        """Forget the history: a watch resuming from before now gets 410."""
        with self.lock:
            self.events.clear()
            self.version += 1
            self.oldest = self.version
            self.lock.notify_all()

    def set_failing(self, failing: bool) -> None:
        with self.lock:
            self.failing = failing
            self.lock.notify_all()


def kube_object(
    kind: str, api_version: str, namespace: str, name: str, spec: dict[str, Any], annotations: dict[str, str]
) -> dict[str, Any]:
    """An object as the API server serves one (put_object gives it its resourceVersion)."""
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": spec,
    }


def _selected(body: dict[str, Any], namespace: str | None, selector: str) -> bool:
    metadata = body["metadata"]
    if namespace is not None and metadata["namespace"] != namespace:
        return False
    labels = metadata.get("labels") or {}
    terms = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(k) == v for k, v in terms)


def handler_for(api: KubeApi) -> type[QuietHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            path = parts.path.strip("/").split("/")
            core = path[:2] == ["api", "v1"]
            grouped = len(path) >= 4 and path[0] == "apis"
            if not (core or grouped):
                return self._json(404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": self.path})
            rest = path[2:] if core else path[3:]
            namespace = rest[1] if len(rest) == 3 and rest[0] == "namespaces" else None
            plural = rest[-1]
            with api.lock:
                failing, token = api.failing, api.token
            if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                return self._json(
                    401, {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "Unauthorized"}
                )
            if failing:
                return self._json(
                    503, {"kind": "Status", "code": 503, "reason": "ServiceUnavailable", "message": "down"}
                )
            if api.hostile is not None:
                return self._hostile(api.hostile)
            selector = query.get("labelSelector", "")
            if query.get("watch") in ("true", "True", "1"):
                return self._watch(plural, namespace, selector, query)
            with api.lock:
                api.lists += 1
                items = [b for (p, _, _), b in api.objects.items() if p == plural and _selected(b, namespace, selector)]
                version = api.version
            self._json(
                200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(version)}, "items": items}
            )

        def _hostile(self, how: str) -> None:
            if how == "hang":
                time.sleep(30)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if how == "garbage":
                data = b"\x00\xff<html>not a list</html>" * 10
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.end_headers()  # spew: a list that never ends
            try:
                self.wfile.write(b'{"kind": "List", "items": [')
                chunk = b'{"metadata": {"name": "x", "namespace": "y"}},' * 1000
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    self.wfile.write(chunk)
            except OSError:
                pass
            self.close_connection = True

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _event(self, kind: str, body: dict[str, Any]) -> None:
            line = json.dumps({"type": kind, "object": body}).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        def _watch(self, plural: str, namespace: str | None, selector: str, query: dict[str, str]) -> None:
            since = int(query.get("resourceVersion") or 0)
            ends = time.monotonic() + float(query.get("timeoutSeconds") or 60)
            bookmarks = query.get("allowWatchBookmarks") in ("true", "True", "1")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with api.lock:
                api.watches += 1
            try:
                if since < api.oldest:
                    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
                    self._event("ERROR", status)
                    return
                next_bookmark = time.monotonic() + BOOKMARK_EVERY
                while time.monotonic() < ends:
                    with api.lock:
                        if api.failing:
                            return
                        if since < api.oldest:  # compacted while watching: the API server ends the watch
                            return
                        newer = [(v, k, b) for v, p, k, b in api.events if v > since and p == plural]
                        fresh = [(v, k, b) for v, k, b in newer if _selected(b, namespace, selector)]
                        if newer and not fresh:  # changes of other namespaces: passed over
                            since = newer[-1][0]
                        elif not newer and api.events:  # changes of other kinds: passed over
                            since = max(since, api.events[-1][0])
                        version = api.version
                        if not fresh:
                            api.lock.wait(0.1)
                    for v, kind, body in fresh:
                        self._event(kind, body)
                        since = v
                    if bookmarks and time.monotonic() >= next_bookmark:
                        self._event(
                            "BOOKMARK",
                            {"kind": "Service", "apiVersion": "v1", "metadata": {"resourceVersion": str(version)}},
                        )
                        since = max(since, version)
                        next_bookmark = time.monotonic() + BOOKMARK_EVERY
            except (BrokenPipeError, ConnectionResetError):
                return
            finally:
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

    return Handler


@contextmanager
def kube_api() -> Iterator[KubeApi]:
    api = KubeApi()
    with stub_http(handler_for(api)) as url:
        api.url = url
        yield api
