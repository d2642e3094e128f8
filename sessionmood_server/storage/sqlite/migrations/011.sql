-- Prove the intervention pays (issue 27). A tenant's holdout share (0: none)
-- and its salt (the key of its sessions' group hash, unless the deployment
-- sets SESSIONMOOD_HOLDOUT_KEY); a session's group, decided at its first
-- batch; a mood change's group, for the stream and webhooks. exposures: the
-- first time a session was suggested an action (or had it held back) per
-- mood, for the uplift; conversions: counted once per (session, name).
ALTER TABLE tenants ADD COLUMN holdout_share REAL NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN holdout_salt TEXT;
ALTER TABLE tenants ADD COLUMN holdout_updated_at REAL;
ALTER TABLE sessions ADD COLUMN holdout INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mood_changes ADD COLUMN holdout INTEGER NOT NULL DEFAULT 0;
CREATE TABLE exposures (
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    mood TEXT NOT NULL,
    action TEXT NOT NULL,
    holdout INTEGER NOT NULL,
    first_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, session_id, mood, action)
) WITHOUT ROWID;
CREATE INDEX exposures_tenant ON exposures(tenant_id, first_at);
CREATE TABLE conversions (
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, session_id, name)
) WITHOUT ROWID;
