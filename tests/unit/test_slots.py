"""Slots: first come, first served; a waiter that leaves costs nothing and loses no slot."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from probe_agent.core.slots import Slots


async def test_waiters_are_served_in_the_order_they_came() -> None:
    slots = Slots(1)
    await slots.acquire()
    served: list[int] = []

    async def wait(i: int) -> None:
        await slots.acquire()
        served.append(i)
        await asyncio.sleep(0)
        slots.release()

    tasks = [asyncio.create_task(wait(i)) for i in range(5)]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*tasks)
    assert served == [0, 1, 2, 3, 4]
    assert not slots.locked() and slots.waiting == 0


async def test_a_released_slot_goes_to_the_first_waiter_not_a_newcomer() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()
    assert slots.locked()  # handed over: a newcomer must wait
    newcomer = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    assert waiter.done() and not newcomer.done()
    slots.release()
    await newcomer


async def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    slots = Slots(1)
    await slots.acquire()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await slots.acquire()
    assert slots.waiting == 0
    slots.release()
    assert not slots.locked()


async def test_a_waiter_cancelled_after_it_was_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # handed to `first`, which has not woken yet
    first.cancel()
    await asyncio.sleep(0)
    assert first.cancelled()
    await asyncio.wait_for(second, 1)  # the slot reached the next waiter
    slots.release()
    assert not slots.locked() and slots.waiting == 0


async def test_a_cancelled_waiter_is_skipped_by_a_release_before_its_task_runs() -> None:
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    first.cancel()
    slots.release()  # `first` is cancelled but has not run its handler: the slot goes to `second`
    await asyncio.wait_for(second, 1)
    await asyncio.gather(first, return_exceptions=True)
    slots.release()
    assert not slots.locked() and slots.waiting == 0


async def cancel_all(count: int, shuffled: bool) -> float:
    """Seconds to cancel `count` waiters (in queue order or shuffled) and let them all leave."""
    slots = Slots(1)
    await slots.acquire()
    tasks = [asyncio.create_task(slots.acquire()) for _ in range(count)]
    await asyncio.sleep(0)
    order = tasks[:]
    if shuffled:
        random.Random(1).shuffle(order)
    started = time.perf_counter()
    for task in order:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert slots.waiting == 0
    return time.perf_counter() - started


async def test_waiters_leave_in_any_order_at_the_same_cost() -> None:
    # A reload cancels queued runs in config order, not queue order. asyncio.Semaphore's deque
    # scans for each leaver: 20,000 shuffled took 11x as long as in order (2.7 s against 0.25 s);
    # these take 0.31 s against 0.23 s.
    in_order = min([await cancel_all(20_000, shuffled=False) for _ in range(2)])
    shuffled = min([await cancel_all(20_000, shuffled=True) for _ in range(2)])
    assert shuffled < 3 * in_order, f"shuffled {shuffled * 1000:.0f} ms, in order {in_order * 1000:.0f} ms"


async def test_a_waiter_with_a_deadline_leaves_at_it_and_loses_no_slot() -> None:
    slots = Slots(1)
    await slots.acquire()
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await slots.acquire(loop.time() + 0.05)
    assert 0.04 <= time.monotonic() - started < 0.5
    assert slots.waiting == 0
    # a deadline that never comes due: served in turn, and its timer is gone with it
    late = asyncio.create_task(slots.acquire(loop.time() + 60))
    await asyncio.sleep(0)
    slots.release()
    await late
    assert slots.locked()
    slots.release()
    assert not slots.locked()


async def test_a_waiter_handed_a_slot_as_its_deadline_passes_keeps_it() -> None:
    # release() hands the slot over and the timer fires before the waiter wakes: the slot is the
    # waiter's (taken, not lost, not given twice)
    slots = Slots(1)
    await slots.acquire()
    loop = asyncio.get_running_loop()
    waiter = asyncio.create_task(slots.acquire(loop.time() + 0.01))
    await asyncio.sleep(0)
    slots.release()
    time.sleep(0.02)  # the timer is due before the waiter runs again
    await waiter
    assert slots.locked() and slots.waiting == 0
    slots.release()
    assert not slots.locked()
