-- Prove the intervention pays (issue 27): the same as SQLite's migration 11.
ALTER TABLE tenants ADD COLUMN holdout_share DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN holdout_salt TEXT;
ALTER TABLE tenants ADD COLUMN holdout_updated_at DOUBLE PRECISION;
ALTER TABLE sessions ADD COLUMN holdout BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE mood_changes ADD COLUMN holdout BOOLEAN NOT NULL DEFAULT false;
CREATE TABLE exposures (
    tenant_id BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    mood TEXT NOT NULL,
    action TEXT NOT NULL,
    holdout BOOLEAN NOT NULL,
    first_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, session_id, mood, action)
);
CREATE INDEX exposures_tenant ON exposures(tenant_id, first_at);
CREATE TABLE conversions (
    tenant_id BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, session_id, name)
);
