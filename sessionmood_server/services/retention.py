"""Retention: sessions live for their plan's window after their last activity.

starter 7 days, growth 30, pro 90 (``keys.PLAN_INFO``). Purging erases the
session's events, state, feedback, page and change history and webhook
deliveries. Monthly usage is history and is kept, so quotas stay exact; the
analytics simply no longer count the erased sessions. Safe to run from several
processes at once: each chunk is one transaction over whatever is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sessionmood_server.keys import PLAN_INFO
from sessionmood_server.storage import Storage

log = logging.getLogger("sessionmood")

DAY_S = 86_400.0


def cutoffs(now: float) -> dict[str, float]:
    """Per plan: sessions last active before this instant are expired."""
    return {name: now - info.retention_days * DAY_S for name, info in PLAN_INFO.items()}


async def purge_expired(storage: Storage, now: float, chunk: int = 1000) -> int:
    """Erase every expired session as of ``now`` (an injected clock in tests)."""
    total = 0
    while True:
        n = await storage.purge_expired(cutoffs(now), chunk)  # type: ignore[arg-type]
        total += n
        if n < chunk:
            return total


class RetentionPurger:
    """A purge every ``interval_s`` seconds beside the requests (the app's
    lifespan starts and stops it); a failed pass is logged and retried next
    period."""

    def __init__(self, storage: Storage, interval_s: float) -> None:
        self.storage = storage
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sessionmood-retention")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                total = await purge_expired(self.storage, time.time())
                if total:
                    log.info("retention purge erased %d session(s)", total)
            except Exception:  # a failed pass is retried next period
                log.exception("retention purge failed")
            await asyncio.sleep(self.interval_s)
