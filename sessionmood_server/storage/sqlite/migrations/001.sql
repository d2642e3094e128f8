CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    email TEXT,
    plan TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    allowed_origins TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX api_keys_prefix ON api_keys(prefix);
CREATE TABLE sessions (
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL,
    mood TEXT NOT NULL,
    confidence REAL NOT NULL,
    signals TEXT NOT NULL,
    suggested_action TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_url TEXT,
    has_feedback INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, session_id)
) WITHOUT ROWID;
CREATE INDEX sessions_mood ON sessions(tenant_id, mood);
CREATE INDEX sessions_updated ON sessions(updated_at);
CREATE TABLE events (
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    received_at REAL NOT NULL,
    fields TEXT,
    PRIMARY KEY (tenant_id, session_id, seq)
) WITHOUT ROWID;
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    mood TEXT NOT NULL,
    action_taken TEXT NOT NULL,
    was_helpful INTEGER,
    notes TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX feedback_session ON feedback(tenant_id, session_id);
CREATE TABLE batches (
    tenant_id INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, batch_id)
) WITHOUT ROWID;
CREATE INDEX batches_session ON batches(tenant_id, session_id);
CREATE TABLE session_months (
    tenant_id INTEGER NOT NULL,
    month TEXT NOT NULL,
    session_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, month, session_id)
) WITHOUT ROWID;
CREATE TABLE usage_months (
    tenant_id INTEGER NOT NULL,
    month TEXT NOT NULL,
    sessions INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, month)
) WITHOUT ROWID;
