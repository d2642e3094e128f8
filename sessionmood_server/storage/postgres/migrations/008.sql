-- Claiming deliveries reads, per webhook, its due rows and its leased
-- ones (the per-endpoint cap); both indexes hold only those rows.
CREATE INDEX deliveries_hook_due
    ON webhook_deliveries(tenant_id, webhook_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX deliveries_leased ON webhook_deliveries(claimed_until)
    WHERE claimed_until IS NOT NULL;
