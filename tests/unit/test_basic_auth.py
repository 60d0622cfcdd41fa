"""Basic auth on the agent's port: refusals take the same time whether or not the user exists,
and a flood of wrong passwords cannot queue out a right login. Real bcrypt, cost 10."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time

import bcrypt

from probe_agent.web.webconfig import BasicAuth

HASH = bcrypt.hashpw(b"right-password", bcrypt.gensalt(10)).decode()


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def _timed(auth: BasicAuth, value: str, client: str) -> float:
    started = time.perf_counter()
    assert not await auth.allows(value, client)
    return time.perf_counter() - started


async def test_an_unknown_user_is_refused_as_slowly_as_a_wrong_password() -> None:
    auth = BasicAuth({"prometheus": HASH})
    await _timed(auth, header("nobody", "x"), "a")  # the stand-in hash is made once, on first use
    unknown = statistics.median([await _timed(auth, header("nobody", "x"), "a") for _ in range(5)])
    wrong = statistics.median([await _timed(auth, header("prometheus", "x"), "a") for _ in range(5)])
    assert 0.5 < unknown / wrong < 2.0, f"unknown user {unknown * 1000:.0f} ms, wrong password {wrong * 1000:.0f} ms"


async def test_fifty_wrong_passwords_at_once_do_not_queue_out_a_right_login() -> None:
    auth = BasicAuth({"prometheus": HASH})
    one = await _timed(auth, header("prometheus", "warm-up"), "w")
    flood = [asyncio.create_task(auth.allows(header("prometheus", f"guess-{i}"), f"10.0.0.{i % 3}")) for i in range(50)]
    await asyncio.sleep(0)
    started = time.perf_counter()
    assert await auth.allows(header("prometheus", "right-password"), "10.1.1.1")
    waited = time.perf_counter() - started
    await asyncio.gather(*flood)
    assert waited < 4 * one + 0.1, f"a right login waited {waited:.2f}s behind the flood (one check {one:.3f}s)"
    # and two concurrent first requests with the same right credentials share one check
    auth = BasicAuth({"prometheus": HASH})
    both = await asyncio.gather(*(auth.allows(header("prometheus", "right-password"), "10.1.1.1") for _ in range(2)))
    assert both == [True, True]
