"""The per-process session locks in front of PostgreSQL's (``LocalLocks``):
one holder per key, waiters in arrival order, nothing left once idle, and a
waiter cancelled at any moment never strands the key."""

from __future__ import annotations

import asyncio

import pytest

from sessionmood_server.storage.postgres.locks import LocalLocks, lock_key

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_one_holder_per_key_in_arrival_order_and_nothing_left_after() -> None:
    locks = LocalLocks()
    inside: list[int] = []
    order: list[int] = []

    async def user(n: int) -> None:
        async with locks.hold(7):
            inside.append(n)
            assert len(inside) == 1, inside
            order.append(n)
            await asyncio.sleep(0)  # let the others try to get in
            await asyncio.sleep(0)
            inside.remove(n)

    await asyncio.gather(*(user(n) for n in range(6)))
    assert order == list(range(6))
    assert len(locks) == 0


async def test_other_keys_do_not_wait() -> None:
    locks = LocalLocks()
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold(1):
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    async with asyncio.timeout(1):
        async with locks.hold(2):
            pass
    release.set()
    await task
    assert len(locks) == 0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    locks = LocalLocks()
    got: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold(1):
            await release.wait()

    async def waiter(name: str) -> None:
        async with locks.hold(1):
            got.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    gone = asyncio.create_task(waiter("gone"))
    kept = asyncio.create_task(waiter("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await asyncio.gather(first, kept)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert got == ["kept"]
    assert len(locks) == 0


async def test_a_waiter_cancelled_just_after_the_handoff_passes_the_lock_on() -> None:
    """The holder hands the key to the first waiter, and that waiter is
    cancelled before it runs: it must give the key to the next one."""
    locks = LocalLocks()
    got: list[str] = []
    handoff = asyncio.Event()

    async def waiter(name: str) -> None:
        async with locks.hold(1):
            got.append(name)

    async with locks.hold(1):
        unlucky = asyncio.create_task(waiter("unlucky"))
        lucky = asyncio.create_task(waiter("lucky"))
        await asyncio.sleep(0)  # both queued
        handoff.set()
    unlucky.cancel()  # its future already holds the key; it has not run yet
    async with asyncio.timeout(1):
        await lucky
    with pytest.raises(asyncio.CancelledError):
        await unlucky
    assert got == ["lucky"]
    assert len(locks) == 0


async def test_a_waiter_cancelled_just_before_the_release_is_skipped_cleanly() -> None:
    """Cancelled while queued, and the holder releases before it runs: the
    release skips it, and it ends with its CancelledError, not another error."""
    locks = LocalLocks()

    async def waiter() -> None:
        async with locks.hold(1):
            raise AssertionError("a cancelled waiter got the lock")

    async with locks.hold(1):
        gone = asyncio.create_task(waiter())
        await asyncio.sleep(0)  # queued
        gone.cancel()  # its future is cancelled; it has not run yet
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert len(locks) == 0
    async with asyncio.timeout(1), locks.hold(1):
        pass


def test_lock_keys_are_stable_signed_64_bit_and_differ_by_part() -> None:
    a = lock_key("session", "public", 1, "s1")
    assert a == lock_key("session", "public", 1, "s1")
    assert -(2**63) <= a < 2**63
    assert (
        len({a, lock_key("session", "public", 1, "s2"), lock_key("batch", "public", 1, "s1")}) == 3
    )
