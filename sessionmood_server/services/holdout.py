"""The holdout-setting cache: each tenant's share of new sessions held out.

Every batch asks which group a session that it opens goes to; the setting
is kept ``ttl_s`` seconds so that costs no query. A PUT on this replica
drops the entry at once (``forget``); other replicas follow within ``ttl_s``,
so for that long a session starting there may still be grouped with the old
share. Its group is stored at its first batch and never changes.
"""

from __future__ import annotations

from sessionmood_server.holdout import Holdout
from sessionmood_server.records import HoldoutSetting
from sessionmood_server.services.tenant_cache import TenantCache
from sessionmood_server.storage import Storage

HOLDOUT_TTL_S = 5.0


class HoldoutCache:
    """Per tenant: its holdout setting, for ``ttl_s``; ``key`` (the deployment's
    SESSIONMOOD_HOLDOUT_KEY) replaces the tenants' salts when set."""

    def __init__(self, storage: Storage, key: str | None, ttl_s: float = HOLDOUT_TTL_S) -> None:
        self.key = key.encode() if key else None
        self._settings = TenantCache(storage.get_holdout, ttl_s)

    async def setting(self, tenant_id: int) -> HoldoutSetting:
        return await self._settings.get(tenant_id)

    async def holdout(self, tenant_id: int) -> Holdout | None:
        """What decides the group of a session this tenant opens now (None: no holdout)."""
        setting = await self.setting(tenant_id)
        if setting.share <= 0:
            return None
        return Holdout(self.key or (setting.salt or "").encode(), setting.share)

    def forget(self, tenant_id: int) -> None:
        self._settings.forget(tenant_id)
