"""The daemon's side of kubernetes_sd_configs: for each source, list its objects (Services,
Ingresses, Probes), then watch them from the list's resourceVersion, and hand the agent the source's targets whenever they
change (probe_agent.config.kubernetes turns a Service into targets).

- BOOKMARK events move the resourceVersion on without a change.
- `410 Gone` (the API server compacted the history past our resourceVersion): list again. The
  targets of an unchanged list are the same, so running probes are not touched.
- The API server down, slow or answering errors: the last list stays (its probes keep running)
  and the source says so (failed, with the error, on /health and in the failure counter); the
  watch asks again after 1 s, doubling to 30 s.
- A watch that ends (its timeoutSeconds) is asked again from where it was."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from probe_agent.config.discovery import SourceKey, SourceState, digest_of
from probe_agent.config.kubernetes import api_client, list_call, list_objects, targets_of
from probe_agent.schema.discovery import KubernetesSdConfig

log = logging.getLogger("probe_agent.runtime.kubernetes")

WATCH_SECONDS = 240  # a watch is asked for this long, then again (the API server caps it anyway)
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0


class ServiceWatch:
    """One source's list-then-watch; `publish(key, state)` is called on the loop when its
    targets change or it starts or stops failing."""

    def __init__(
        self,
        key: SourceKey,
        sd: KubernetesSdConfig,
        namespace: str | None,
        publish: Callable[[SourceKey, SourceState], None],
    ):
        self.key, self.sd, self.namespace = key, sd, namespace
        self._publish = publish
        self._services: dict[str, dict[str, Any]] = {}  # namespace/name -> the object's JSON
        self.state = SourceState()
        self.lists = 0  # how many times it listed (a 410 lists again)

    async def run(self) -> None:
        backoff = BACKOFF_FIRST
        api: Any = None
        try:
            while True:
                try:
                    if api is None:
                        api = await api_client(self.sd)
                    services, version = await list_objects(api, self.sd, self.namespace)
                    self.lists += 1
                    self._services = {_key_of(s): s for s in services}
                    self._changed()
                    backoff = BACKOFF_FIRST
                    await self._watch(api, version)  # returns when a 410 asks for a new list
                except ValueError as exc:
                    self._failed(str(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            if api is not None:
                await api.close()

    async def _watch(self, api: Any, version: str) -> None:
        from kubernetes_asyncio import watch
        from kubernetes_asyncio.client.exceptions import ApiException

        listing, args = list_call(api, self.sd.role, self.namespace)
        kwargs: dict[str, Any] = {
            "allow_watch_bookmarks": True,
            "timeout_seconds": WATCH_SECONDS,
            "_request_timeout": WATCH_SECONDS + self.sd.timeout,
        }
        if self.sd.selector:
            kwargs["label_selector"] = self.sd.selector
        while True:
            stream = watch.Watch()
            try:
                async for event in stream.stream(listing, *args, resource_version=version, **kwargs):
                    kind, body = event["type"], event["raw_object"]
                    version = str((body.get("metadata") or {}).get("resourceVersion", version))
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self._services.pop(_key_of(body), None)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._services[_key_of(body)] = body
                    self._changed()
            except ApiException as exc:
                if exc.status == 410:
                    log.info("kubernetes watch expired (410): listing again", extra={"source": self.key[1]})
                    return
                raise ValueError(f"the API server answered the watch {exc.status} {exc.reason}") from None
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"the API server's watch: {type(exc).__name__}: {exc}") from None
            except Exception as exc:  # aiohttp's client errors; a line over its limit
                if type(exc).__module__.startswith("aiohttp") or isinstance(exc, ValueError):
                    raise ValueError(f"the API server's watch: {type(exc).__name__}: {exc}") from None
                raise
            finally:
                await stream.close()

    def _changed(self) -> None:
        group = self.key[0]
        targets = [t for obj in self._services.values() for t in targets_of(obj, group, self.sd)]
        digest = hashlib.sha256(digest_of(targets)).hexdigest()
        if digest == self.state.digest and self.state.error is None:
            return
        self.state = SourceState(tuple(targets), digest, time.time(), None)
        self._publish(self.key, self.state)

    def _failed(self, error: str) -> None:
        if self.state.error == error:
            return
        log.warning(
            "kubernetes source failed; keeping its last targets", extra={"source": self.key[1], "detail": error}
        )
        self.state = self.state.failed(error)
        self._publish(self.key, self.state)


def _key_of(service: dict[str, Any]) -> str:
    metadata = service.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
