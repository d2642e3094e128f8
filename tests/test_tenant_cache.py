"""The per-tenant cache the policy and holdout caches share
(sessionmood_server/services/tenant_cache.py)."""

from __future__ import annotations

import pytest

from sessionmood_server.services import tenant_cache
from sessionmood_server.services.tenant_cache import TenantCache

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_value_is_loaded_once_per_ttl_and_again_after_forget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[int] = []
    clock = [100.0]
    monkeypatch.setattr(tenant_cache.time, "monotonic", lambda: clock[0])

    async def load(tenant_id: int) -> str:
        loads.append(tenant_id)
        return f"v{tenant_id}-{len(loads)}"

    cache = TenantCache(load, ttl_s=5.0)
    assert await cache.get(1) == "v1-1"
    clock[0] += 4.9
    assert await cache.get(1) == "v1-1"  # still fresh
    assert await cache.get(2) == "v2-2"  # tenants apart
    clock[0] += 0.2
    assert await cache.get(1) == "v1-3"  # expired: loaded again
    cache.forget(1)
    assert await cache.get(1) == "v1-4"
    assert loads == [1, 2, 1, 1]


async def test_it_starts_over_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tenant_cache, "MAX_TENANTS", 3)

    async def load(tenant_id: int) -> int:
        return tenant_id

    cache = TenantCache(load, ttl_s=60.0)
    for t in range(10):
        assert await cache.get(t) == t
    assert len(cache._kept) <= 4
