"""The learned-policy cache: which action each of a tenant's moods should suggest,
from its uplift and its feedback.

Learning itself is pure (``learning.learn_policy``); this keeps each tenant's
result for ``ttl_s`` seconds, so a batch or a mood read costs no analytics
query. Short-lived, so feedback sent to other replicas shows up soon; this
process's own feedback drops the entry at once (``forget``).
"""

from __future__ import annotations

from sessionmood_server.learning import Policy, learn_policy
from sessionmood_server.services.holdout import HoldoutCache
from sessionmood_server.services.tenant_cache import TenantCache
from sessionmood_server.storage import Storage

POLICY_TTL_S = 10.0


class PolicyCache:
    """Per tenant: the policy learned from its uplift and its trusted feedback,
    for ``ttl_s``."""

    def __init__(
        self, storage: Storage, holdouts: HoldoutCache, ttl_s: float = POLICY_TTL_S
    ) -> None:
        self.storage = storage
        self.holdouts = holdouts
        self._policies = TenantCache(self._learn, ttl_s)

    async def get(self, tenant_id: int) -> Policy:
        return await self._policies.get(tenant_id)

    async def _learn(self, tenant_id: int) -> Policy:
        # Only secret-key feedback teaches: publishable keys are public. The
        # uplift (any conversion, all time) comes first where it is clear.
        counts = await self.storage.action_counts(tenant_id, None, None, trusted_only=True)
        # Without a holdout ever set there is no control group to compare with.
        held = await self.holdouts.setting(tenant_id)
        uplift = (
            []
            if held.updated_at is None
            else await self.storage.uplift_counts(tenant_id, None, None, None)
        )
        return learn_policy(counts, uplift)

    def forget(self, tenant_id: int) -> None:
        """The tenant's feedback changed: learn again at the next look-up."""
        self._policies.forget(tenant_id)
