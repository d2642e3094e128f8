"""The holdout-setting cache: each tenant's share of new sessions held out.

Every batch asks which group a session that it opens goes to; the setting
is kept ``ttl_s`` seconds so that costs no query. A PUT on this replica
drops the entry at once (``forget``); other replicas follow within ``ttl_s``,
so for that long a session starting there may still be grouped with the old
share. Its group is stored at its first batch and never changes.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from sessionmood_server.holdout import Holdout
from sessionmood_server.records import HoldoutSetting
from sessionmood_server.storage import Storage

HOLDOUT_TTL_S = 5.0
MAX_TENANTS = 10_000  # entries kept before the cache starts over


class _Kept(NamedTuple):
    expires: float  # time.monotonic
    setting: HoldoutSetting


class HoldoutCache:
    """Per tenant: its holdout setting, for ``ttl_s``; ``key`` (the deployment's
    SESSIONMOOD_HOLDOUT_KEY) replaces the tenants' salts when set."""

    def __init__(self, storage: Storage, key: str | None, ttl_s: float = HOLDOUT_TTL_S) -> None:
        self.storage = storage
        self.key = key.encode() if key else None
        self.ttl_s = ttl_s
        self._kept: dict[int, _Kept] = {}

    async def setting(self, tenant_id: int) -> HoldoutSetting:
        hit = self._kept.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit.expires > now:
            return hit.setting
        setting = await self.storage.get_holdout(tenant_id)
        if len(self._kept) > MAX_TENANTS:
            self._kept.clear()
        self._kept[tenant_id] = _Kept(now + self.ttl_s, setting)
        return setting

    async def holdout(self, tenant_id: int) -> Holdout | None:
        """What decides the group of a session this tenant opens now (None: no holdout)."""
        setting = await self.setting(tenant_id)
        if setting.share <= 0:
            return None
        return Holdout(self.key or (setting.salt or "").encode(), setting.share)

    def forget(self, tenant_id: int) -> None:
        self._kept.pop(tenant_id, None)
