"""A probe's recent past, for the status page: uptime over the last day and its incidents.

Bounded and small, since it is per probe (10,000 probes are 10,000 of these):
- uptime in BUCKETS time slots of BUCKET_SECONDS each (24 hours of 15 minutes): per slot
  the slot's number (to tell this day's slot from yesterday's in the same place) and the
  runs that succeeded and that counted, in three flat arrays: about 1.1 KB a probe whatever the
  interval (tests/unit/test_history.py measures it);
- the last INCIDENTS changes of health (failing, ok again, stale, maintenance), in a deque
  made at the first change: nothing for a probe that never changed.
Runs inside a maintenance window do not count for uptime, as they do not for the SLOs.
"""

from __future__ import annotations

import base64
import collections
import time
from array import array
from dataclasses import dataclass

BUCKET_SECONDS = 900
BUCKETS = 96  # 24 hours
INCIDENTS = 20
MESSAGE_CHARS = 300  # of an incident's message read back from a file (what the runner keeps)


@dataclass(frozen=True, slots=True)
class Incident:
    at: float  # Unix time
    old: str  # health before
    new: str  # health after
    message: str  # what the run said (redacted, as every output)


class ProbeHistory:
    __slots__ = ("incidents", "ok", "since", "slot_ids", "total")

    def __init__(self) -> None:
        self.slot_ids = array("i", [-1]) * BUCKETS  # Unix time / 900 fits 32 bits until the year 60,000
        self.ok = array("H", [0]) * BUCKETS
        self.total = array("H", [0]) * BUCKETS
        self.incidents: collections.deque[Incident] | tuple[()] = ()  # a deque from the first change on
        self.since = 0.0  # Unix time of the first counted run (0: none yet), for "up over 8 min"

    def count(self, success: bool, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not self.since:
            self.since = now
        slot_id = int(now // BUCKET_SECONDS)
        index = slot_id % BUCKETS
        if self.slot_ids[index] != slot_id:  # a day-old slot: start it over
            self.slot_ids[index], self.ok[index], self.total[index] = slot_id, 0, 0
        if self.total[index] < 65535:  # a run a second fills a slot with 900: far from the cap
            self.total[index] += 1
            self.ok[index] += success

    def counts(self, now: float | None = None) -> tuple[int, int]:
        """Counted runs that succeeded, and all counted runs, over the last 24 hours."""
        oldest = int((time.time() if now is None else now) // BUCKET_SECONDS) - BUCKETS + 1
        ok = total = 0
        for slot_id, slot_ok, slot_total in zip(self.slot_ids, self.ok, self.total, strict=True):
            if slot_id >= oldest:
                ok += slot_ok
                total += slot_total
        return ok, total

    def uptime(self, now: float | None = None) -> float | None:
        """The share of counted runs that succeeded over the last 24 hours; None without runs."""
        ok, total = self.counts(now)
        return ok / total if total else None

    def known_for(self, now: float | None = None) -> float:
        """Seconds of the last day that the uptime covers: since the first counted run, at most 24 h."""
        if not self.since:
            return 0.0
        return min((time.time() if now is None else now) - self.since, BUCKETS * BUCKET_SECONDS)

    def slots(self, now: float | None = None) -> list[float | None]:
        """Uptime per slot, oldest first (None: no counted run), for the page's bar."""
        current = int((time.time() if now is None else now) // BUCKET_SECONDS)
        found: list[float | None] = []
        for slot_id in range(current - BUCKETS + 1, current + 1):
            index = slot_id % BUCKETS
            total = self.total[index] if self.slot_ids[index] == slot_id else 0
            found.append(self.ok[index] / total if total else None)
        return found

    def change(self, old: str, new: str, message: str, now: float | None = None) -> None:
        if not isinstance(self.incidents, collections.deque):
            self.incidents = collections.deque(maxlen=INCIDENTS)
        self.incidents.append(Incident(time.time() if now is None else now, old, new, message))

    # --- kept in a file over restarts (probe_agent.runtime.historyfile) ---------------------------------

    def to_record(self) -> dict[str, object]:
        """This history as JSON-ready data: the three slot arrays as base64, the incidents as lists."""
        return {
            "since": self.since,
            "slots": base64.b64encode(self.slot_ids.tobytes() + self.ok.tobytes() + self.total.tobytes()).decode(),
            "incidents": [[i.at, i.old, i.new, i.message] for i in self.incidents],
        }

    @classmethod
    def from_record(cls, record: object) -> ProbeHistory:
        """The inverse of to_record; ValueError for anything else (a file is outside data)."""
        if not isinstance(record, dict):
            raise ValueError("not a mapping")
        history = cls()
        raw = base64.b64decode(str(record.get("slots", "")), validate=True)
        sizes = (history.slot_ids.itemsize * BUCKETS, history.ok.itemsize * BUCKETS, history.total.itemsize * BUCKETS)
        if len(raw) != sum(sizes):
            raise ValueError("slots of the wrong size")
        history.slot_ids = array("i", raw[: sizes[0]])
        history.ok = array("H", raw[sizes[0] : sizes[0] + sizes[1]])
        history.total = array("H", raw[sizes[0] + sizes[1] :])
        since = record.get("since", 0.0)
        history.since = float(since) if isinstance(since, (int, float)) and since >= 0 else 0.0
        incidents = record.get("incidents", [])
        if not isinstance(incidents, list):
            raise ValueError("incidents not a list")
        for entry in incidents[-INCIDENTS:]:
            if not (
                isinstance(entry, list)
                and len(entry) == 4
                and isinstance(entry[0], (int, float))
                and all(isinstance(text, str) for text in entry[1:])
            ):
                raise ValueError("an incident of the wrong shape")
            at, old, new, message = entry
            history.change(old[:32], new[:32], message[:MESSAGE_CHARS], float(at))
        return history
