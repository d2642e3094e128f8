CREATE TABLE page_moods (
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    url TEXT NOT NULL,
    mood TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, session_id, url)
) WITHOUT ROWID;
CREATE INDEX page_moods_tenant ON page_moods(tenant_id, updated_at);
CREATE TABLE mood_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    previous_mood TEXT NOT NULL,
    mood TEXT NOT NULL,
    confidence REAL NOT NULL,
    signals TEXT NOT NULL,
    suggested_action TEXT NOT NULL,
    url TEXT,
    occurred_at REAL NOT NULL
);
CREATE INDEX mood_changes_tenant ON mood_changes(tenant_id, id);
CREATE INDEX feedback_tenant ON feedback(tenant_id, created_at);
