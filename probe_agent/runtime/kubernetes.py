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

from probe_agent.config.discovery import digest_of
from probe_agent.config.kubernetes import (
    api_client,
    endpointslice_targets,
    list_call,
    list_objects,
    object_key,
    probe_targets,
    targets_of,
)
from probe_agent.config.sources import SourceKey, SourceState
from probe_agent.schema.discovery import KubernetesSdConfig

log = logging.getLogger("probe_agent.runtime.kubernetes")

WATCH_SECONDS = 240  # a watch is asked for this long, then again (the API server caps it anyway)
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
RECOMPUTE_AFTER = 0.1  # s: watch events this close together make the targets once


class ServiceWatch:
    """One source's list-then-watch; `publish(key, state)` is called on the loop when its
    targets change or it starts or stops failing. Role endpointslice follows two resources:
    the Services (whose annotation opts in) and their EndpointSlices (the addresses)."""

    def __init__(
        self,
        key: SourceKey,
        sd: KubernetesSdConfig,
        namespace: str | None,
        publish: Callable[[SourceKey, SourceState], None],
    ):
        self.key, self.sd, self.namespace = key, sd, namespace
        self._publish = publish
        # what a role's targets join: Services for their pods' slices, Ingresses for Probes
        self._roles = {"endpointslice": ("service", "endpointslice"), "probe": ("probe", "ingress")}.get(
            sd.role, (sd.role,)
        )
        # role -> namespace/name -> the object's JSON
        self._objects: dict[str, dict[str, dict[str, Any]]] = {role: {} for role in self._roles}
        self._listed: set[str] = set()  # roles listed at least once: targets only once all are
        self._errors: dict[str, str] = {}
        self.state = SourceState()
        self.lists = 0  # how many times it listed (a 410 lists again)
        self._recompute: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        backoff = BACKOFF_FIRST
        api: Any = None
        try:
            while api is None:
                try:
                    api = await api_client(self.sd)
                    self._errors.pop("client", None)  # the lists that follow publish the recovery
                except ValueError as exc:
                    self._failed("client", str(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
            async with asyncio.TaskGroup() as followers:
                for role in self._roles:
                    followers.create_task(self._follow(api, role))
        finally:
            if self._recompute is not None:
                self._recompute.cancel()
            if api is not None:
                await api.close()

    async def _follow(self, api: Any, role: str) -> None:
        # a Probe may select Ingresses of any namespace: those are watched in all of them
        namespace = None if (self.sd.role, role) == ("probe", "ingress") else self.namespace
        backoff = BACKOFF_FIRST
        while True:
            try:
                objects, version = await list_objects(api, self.sd, namespace, role)
                self.lists += 1
                self._objects[role] = {object_key(o): o for o in objects}
                self._listed.add(role)
                self._errors.pop(role, None)
                self._changed()
                backoff = BACKOFF_FIRST
                await self._watch(api, role, namespace, version)  # returns when a 410 asks for a new list
            except ValueError as exc:
                self._failed(role, str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _watch(self, api: Any, role: str, namespace: str | None, version: str) -> None:
        from kubernetes_asyncio import watch
        from kubernetes_asyncio.client.exceptions import ApiException

        listing, args = list_call(api, role, namespace)
        kwargs: dict[str, Any] = {
            "allow_watch_bookmarks": True,
            "timeout_seconds": WATCH_SECONDS,
            "_request_timeout": WATCH_SECONDS + self.sd.timeout,
        }
        if self.sd.selector and role == self.sd.role:  # the selector is for what the role lists
            kwargs["label_selector"] = self.sd.selector
        objects = self._objects[role]
        while True:
            stream = watch.Watch()
            try:
                async for event in stream.stream(listing, *args, resource_version=version, **kwargs):
                    kind, body = event["type"], event["raw_object"]
                    version = str((body.get("metadata") or {}).get("resourceVersion", version))
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        objects.pop(object_key(body), None)
                    elif kind in ("ADDED", "MODIFIED"):
                        objects[object_key(body)] = body
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
        """Targets are made again at most every RECOMPUTE_AFTER seconds, not per event: a big
        cluster's EndpointSlices change many times a second, and each pass is over them all."""
        if self._recompute is None:
            self._recompute = asyncio.get_running_loop().call_later(RECOMPUTE_AFTER, self._make_targets)

    def _make_targets(self) -> None:
        self._recompute = None
        if len(self._listed) < len(self._roles):
            return  # Services without their EndpointSlices (or the reverse) are no list yet
        group = self.key[0]
        if self.sd.role == "endpointslice":
            targets = endpointslice_targets(self._objects["endpointslice"], self._objects["service"], group, self.sd)
        elif self.sd.role == "probe":
            ingresses = self._objects["ingress"]
            targets = [
                t for obj in self._objects["probe"].values() for t in probe_targets(obj, group, self.sd, ingresses)
            ]
        else:
            targets = [t for obj in self._objects[self.sd.role].values() for t in targets_of(obj, group, self.sd)]
        digest = hashlib.sha256(digest_of(targets)).hexdigest()
        error = next(iter(self._errors.values()), None)
        if digest == self.state.digest and error == self.state.error:
            return
        self.state = SourceState(tuple(targets), digest, time.time(), error)
        self._publish(self.key, self.state)

    def _failed(self, role: str, error: str) -> None:
        if self._errors.get(role) == error:
            return
        log.warning(
            "kubernetes source failed; keeping its last targets", extra={"source": self.key[1], "detail": error}
        )
        self._errors[role] = error
        self.state = self.state.failed(error)
        self._publish(self.key, self.state)
