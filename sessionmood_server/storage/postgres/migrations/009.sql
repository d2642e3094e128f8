-- Optimistic concurrency for the per-replica session cache. Every write of a
-- session row draws a new version from one sequence, so a version is never
-- reused, not even by a session erased and started again: a replica holding
-- a session's engine state at version V may fold a batch into it and store
-- the result only while the row is still at V.
CREATE SEQUENCE session_versions;
ALTER TABLE sessions ADD COLUMN version BIGINT NOT NULL DEFAULT nextval('session_versions');

-- A batch for a session this replica holds at version p_version, folded
-- already, in one round trip: the same advisory locks as every batch (batch
-- id, then session; see locks.py), then the checks, then every write.
-- o_status 0: stored at version o_version. 1: the row has moved on; it is
-- returned (o_version ...) to fold again. 2: nothing written, the full path
-- must decide (the batch id was seen, the session is not counted this month,
-- or it does not exist).
CREATE FUNCTION sm_append_cached(
    p_tenant BIGINT, p_session TEXT, p_version BIGINT,
    p_batch_lock BIGINT, p_session_lock BIGINT,
    p_batch_id TEXT, p_fingerprint TEXT, p_response TEXT, p_month TEXT,
    p_seqs BIGINT[], p_types TEXT[], p_ts DOUBLE PRECISION[], p_fields TEXT[],
    p_urls TEXT[], p_moods TEXT[],
    p_state TEXT, p_mood TEXT, p_confidence DOUBLE PRECISION, p_signals TEXT[],
    p_action TEXT, p_total BIGINT, p_last_url TEXT, p_now DOUBLE PRECISION,
    OUT o_status INT, OUT o_version BIGINT, OUT o_state TEXT, OUT o_count BIGINT,
    OUT o_last_url TEXT, OUT o_mood TEXT
) LANGUAGE plpgsql AS $$
BEGIN
    IF p_batch_lock IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(p_batch_lock);
    END IF;
    PERFORM pg_advisory_xact_lock(p_session_lock);
    o_status := 2;
    IF p_batch_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM batches b WHERE b.tenant_id = p_tenant AND b.batch_id = p_batch_id
    ) THEN
        RETURN;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM session_months m
        WHERE m.tenant_id = p_tenant AND m.month = p_month AND m.session_id = p_session
    ) THEN
        RETURN;
    END IF;
    UPDATE sessions s SET state = p_state, mood = p_mood, confidence = p_confidence,
        signals = p_signals, suggested_action = p_action, event_count = p_total,
        updated_at = p_now, last_url = p_last_url, version = nextval('session_versions')
    WHERE s.tenant_id = p_tenant AND s.session_id = p_session AND s.version = p_version
    RETURNING s.version INTO o_version;
    IF NOT FOUND THEN
        SELECT 1, s.version, s.state, s.event_count, s.last_url, s.mood
        INTO o_status, o_version, o_state, o_count, o_last_url, o_mood
        FROM sessions s WHERE s.tenant_id = p_tenant AND s.session_id = p_session;
        IF NOT FOUND THEN
            o_status := 2;
        END IF;
        RETURN;
    END IF;
    INSERT INTO events (tenant_id, session_id, seq, type, ts, received_at, fields)
    SELECT p_tenant, p_session, x.seq, x.type, x.ts, p_now, x.fields
    FROM unnest(p_seqs, p_types, p_ts, p_fields) AS x(seq, type, ts, fields);
    IF cardinality(p_urls) > 0 THEN
        INSERT INTO page_moods (tenant_id, session_id, url, url_key, mood, updated_at)
        SELECT p_tenant, p_session, p.url, sha256(convert_to(p.url, 'UTF8')), p.mood, p_now
        FROM unnest(p_urls, p_moods) AS p(url, mood)
        ON CONFLICT (tenant_id, session_id, url_key) DO UPDATE
        SET mood = excluded.mood, updated_at = excluded.updated_at;
    END IF;
    IF p_batch_id IS NOT NULL THEN
        INSERT INTO batches (tenant_id, batch_id, session_id, response, created_at, fingerprint)
        VALUES (p_tenant, p_batch_id, p_session, p_response, p_now, p_fingerprint);
    END IF;
    o_status := 0;
END
$$;
