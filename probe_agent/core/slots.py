"""Slots: a first-come, first-served semaphore whose waiters can leave at no cost.

asyncio.Semaphore keeps its waiters in a deque, and a waiter that gives up (cancelled, or
timed out) removes itself with deque.remove(): a scan from the front. A reload that replaces
10,000 probes whose runs all wait for one target's slots cancels them in config order, not in
the order they queued, and the scans added up to a third of a second with the loop held
(10,000 waiters, half a queue each). Here the waiters are an OrderedDict: joining, leaving and
taking the first are all O(1) (its linked list; a plain dict would rescan the deleted slots at
its front each time the first is taken).

A released slot is handed to the first waiter directly, so a newcomer cannot take it between the
release and the waiter's wake-up (the queue stays fair); a waiter handed a slot and cancelled
before it woke passes it on.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class Slots:
    __slots__ = ("_free", "_waiters")

    def __init__(self, count: int):
        if count < 1:
            raise ValueError("a pool needs at least one slot")
        self._free = count
        self._waiters: OrderedDict[asyncio.Future[None], None] = OrderedDict()

    def locked(self) -> bool:
        """No slot can be taken without waiting."""
        return self._free == 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, deadline: float | None = None) -> None:
        """Take a slot, waiting in turn. With `deadline` (the loop's time), raise TimeoutError if
        none came by then: one loop timer that ends the wait, not asyncio.timeout()'s cancellation
        of the whole task (its context, the cancel and uncancel cost a loaded agent, where every
        run waits, 7% of the runs it could make at 2.7x saturation)."""
        if self._free:
            self._free -= 1
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters[waiter] = None
        timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        except BaseException:
            # Cancelled or out of time while waiting: leave the queue. Cancelled after release()
            # handed this waiter a slot but before it woke: the slot is passed on, not lost.
            handed = self._waiters.pop(waiter, False) is False and waiter.done() and not waiter.cancelled()
            if handed and waiter.exception() is None:
                self.release()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter, _ = waiters.popitem(last=False)
            if not waiter.done():  # a cancelled waiter whose task has not run yet is skipped
                waiter.set_result(None)
                return
        self._free += 1


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # not handed a slot yet: it leaves the queue when it wakes
        waiter.set_exception(TimeoutError())
