"""SQLite schema: versioned migrations, applied in order at open (see ``SQLiteStorage``)."""

# Versioned schema migrations, applied in order, each in its own transaction.
# Never edit a released migration: add a new one.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
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
        """,
    ),
    (
        2,
        """
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
        """,
    ),
    (
        3,
        """
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
        """,
    ),
    (
        4,
        """
        ALTER TABLE feedback ADD COLUMN trusted INTEGER NOT NULL DEFAULT 1;
        """,
    ),
    (
        # Events are stored one row per batch, appended in arrival order: a
        # batch then writes one row at the end of the table instead of one row
        # per event scattered across the session-ordered B-tree. Each row
        # points at its session's previous one and sessions.last_batch at the
        # newest, so no index has to be kept per batch. Old events move over
        # one per row (ids consecutive per session, hence prev_id = id - 1).
        # sessions_updated goes: purge finds expired sessions per tenant
        # through sessions_tenant_updated, and every batch paid to keep both.
        # session_replay holds the oldest batch whose session row may lag
        # (see ROW_LAG_S in sqlite.py), or NULL.
        5,
        """
        CREATE TABLE event_batches (
            id INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL,
            session_id TEXT NOT NULL,
            first_seq INTEGER NOT NULL,
            received_at REAL NOT NULL,
            events TEXT NOT NULL,
            prev_id INTEGER
        );
        ALTER TABLE sessions ADD COLUMN last_batch INTEGER;
        INSERT INTO event_batches (tenant_id, session_id, first_seq, received_at, events)
            SELECT tenant_id, session_id, seq, received_at,
                   json_array(json_patch(json_object('type', type, 'ts', ts),
                                         coalesce(fields, '{}')))
            FROM events ORDER BY tenant_id, session_id, seq;
        UPDATE event_batches SET prev_id = id - 1 WHERE EXISTS (
            SELECT 1 FROM event_batches p WHERE p.id = event_batches.id - 1
            AND p.tenant_id = event_batches.tenant_id AND p.session_id = event_batches.session_id);
        CREATE INDEX migration_5_chain ON event_batches(tenant_id, session_id);
        UPDATE sessions SET last_batch = (SELECT max(b.id) FROM event_batches b
            WHERE b.tenant_id = sessions.tenant_id AND b.session_id = sessions.session_id);
        DROP INDEX migration_5_chain;
        DROP TABLE events;
        DROP INDEX sessions_updated;
        CREATE TABLE session_replay (from_batch INTEGER);
        INSERT INTO session_replay VALUES (NULL);
        """,
    ),
    (
        # The events a batch id was first used with (a hash; NULL for batches
        # stored before this column existed, which replay as before): the same
        # id with other events is refused instead of silently dropped.
        6,
        """
        ALTER TABLE batches ADD COLUMN fingerprint TEXT;
        """,
    ),
    (
        # Claiming deliveries reads, per webhook, its due rows and its leased
        # ones (the per-endpoint cap); both indexes hold only the rows that
        # matter, so a large delivery history costs nothing. Version 7 is
        # PostgreSQL's.
        8,
        """
        CREATE INDEX deliveries_hook_due ON webhook_deliveries(webhook_id, next_attempt_at)
            WHERE status = 'pending';
        CREATE INDEX deliveries_leased ON webhook_deliveries(claimed_until)
            WHERE claimed_until IS NOT NULL;
        """,
    ),
]
