"""A per-tenant value, kept a few seconds: what a batch or a mood read needs of
its tenant (the learned policy, the holdout setting) without a query each time.

Short-lived, so what another replica wrote shows up soon; this process's own
writes drop the entry at once (``forget``). Past ``MAX_TENANTS`` entries the
cache starts over, so it stays bounded whatever the number of tenants.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")
MAX_TENANTS = 10_000


class _Kept(NamedTuple, Generic[T]):
    expires: float  # time.monotonic
    value: T


class TenantCache(Generic[T]):
    """``load(tenant_id)``'s answer per tenant, for ``ttl_s`` seconds."""

    def __init__(self, load: Callable[[int], Awaitable[T]], ttl_s: float) -> None:
        self.load = load
        self.ttl_s = ttl_s
        self._kept: dict[int, _Kept[T]] = {}

    async def get(self, tenant_id: int) -> T:
        hit = self._kept.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit.expires > now:
            return hit.value
        value = await self.load(tenant_id)
        if len(self._kept) > MAX_TENANTS:
            self._kept.clear()
        self._kept[tenant_id] = _Kept(now + self.ttl_s, value)
        return value

    def forget(self, tenant_id: int) -> None:
        """The tenant's data changed here: load again at the next look-up."""
        self._kept.pop(tenant_id, None)
