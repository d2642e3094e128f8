CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    moods TEXT,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL,
    deleted_at REAL
);
CREATE INDEX webhooks_tenant ON webhooks(tenant_id);
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    change_id INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    claimed_until REAL,
    last_status_code INTEGER,
    last_error TEXT,
    latency_ms REAL,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX deliveries_pending ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX deliveries_order ON webhook_deliveries(webhook_id, session_id, id);
CREATE INDEX deliveries_session ON webhook_deliveries(tenant_id, session_id);
CREATE INDEX sessions_tenant_updated ON sessions(tenant_id, updated_at);
