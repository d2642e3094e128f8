-- Events are stored one row per batch, appended in arrival order: a
-- batch then writes one row at the end of the table instead of one row
-- per event scattered across the session-ordered B-tree. Each row
-- points at its session's previous one and sessions.last_batch at the
-- newest, so no index has to be kept per batch. Old events move over
-- one per row (ids consecutive per session, hence prev_id = id - 1).
-- sessions_updated goes: purge finds expired sessions per tenant
-- through sessions_tenant_updated, and every batch paid to keep both.
-- session_replay holds the oldest batch whose session row may lag
-- (see ROW_LAG_S in storage/sqlite/storage.py), or NULL.
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
