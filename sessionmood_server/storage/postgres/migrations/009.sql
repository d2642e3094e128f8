-- Optimistic concurrency for the per-replica session cache. Every write of a
-- session row draws a new version from one sequence, so a version is never
-- reused, not even by a session erased and started again: a replica holding
-- a session's engine state at version V may fold a batch into it and store
-- the result only while the row is still at V.
CREATE SEQUENCE session_versions;
ALTER TABLE sessions ADD COLUMN version BIGINT NOT NULL DEFAULT nextval('session_versions');

-- Batches for sessions this replica holds, folded already, each at the
-- version it was folded from: one call, one transaction, one commit for the
-- whole group (index k: the k-th element of every per-batch array; events,
-- pages and signals are flattened with the index of their batch). Locks: every
-- batch id's (in key order), then every session's (the caller sorts the
-- batches by session lock key): the order of locks.py, so groups of two
-- replicas, and a group and a batch on the full path, never wait in a cycle.
-- One row per batch: o_status 0: stored at version o_version. 1: the row has
-- moved on; it is returned (o_version ...) to fold again. 2: nothing written
-- for it, the full path must decide (the batch id was seen, the session is
-- not counted this month, or it does not exist).
CREATE FUNCTION sm_append_cached(
    p_tenant BIGINT[], p_session TEXT[], p_version BIGINT[],
    p_batch_lock BIGINT[], p_session_lock BIGINT[],
    p_batch_id TEXT[], p_fingerprint TEXT[], p_response TEXT[], p_month TEXT[],
    p_state TEXT[], p_mood TEXT[], p_confidence DOUBLE PRECISION[], p_action TEXT[],
    p_total BIGINT[], p_last_url TEXT[], p_now DOUBLE PRECISION[],
    p_ev_batch INT[], p_seqs BIGINT[], p_types TEXT[], p_ts DOUBLE PRECISION[],
    p_fields TEXT[],
    p_page_batch INT[], p_urls TEXT[], p_moods TEXT[],
    p_signal_batch INT[], p_signals TEXT[]
) RETURNS TABLE (
    o_batch INT, o_status INT, o_version BIGINT, o_state TEXT, o_count BIGINT,
    o_last_url TEXT, o_mood TEXT
) LANGUAGE plpgsql AS $$
DECLARE
    k INT;
    stored INT[] := '{}';
    lock_key BIGINT;
BEGIN
    FOR lock_key IN
        SELECT DISTINCT l FROM unnest(p_batch_lock) AS l WHERE l IS NOT NULL ORDER BY l
    LOOP
        PERFORM pg_advisory_xact_lock(lock_key);
    END LOOP;
    FOR k IN 1 .. cardinality(p_tenant) LOOP
        PERFORM pg_advisory_xact_lock(p_session_lock[k]);
        o_batch := k;
        o_status := 2;
        o_version := NULL;
        o_state := NULL;
        o_count := NULL;
        o_last_url := NULL;
        o_mood := NULL;
        IF p_batch_id[k] IS NOT NULL AND EXISTS (
            SELECT 1 FROM batches b WHERE b.tenant_id = p_tenant[k] AND b.batch_id = p_batch_id[k]
        ) OR NOT EXISTS (
            SELECT 1 FROM session_months m WHERE m.tenant_id = p_tenant[k]
            AND m.month = p_month[k] AND m.session_id = p_session[k]
        ) THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        UPDATE sessions s SET state = p_state[k], mood = p_mood[k],
            confidence = p_confidence[k],
            signals = ARRAY(SELECT x.sig FROM unnest(p_signal_batch, p_signals)
                WITH ORDINALITY AS x(b, sig, n) WHERE x.b = k ORDER BY x.n),
            suggested_action = p_action[k], event_count = p_total[k], updated_at = p_now[k],
            last_url = p_last_url[k], version = nextval('session_versions')
        WHERE s.tenant_id = p_tenant[k] AND s.session_id = p_session[k]
        AND s.version = p_version[k]
        RETURNING s.version INTO o_version;
        IF FOUND THEN
            o_status := 0;
            stored := stored || k;
        ELSE
            SELECT 1, s.version, s.state, s.event_count, s.last_url, s.mood
            INTO o_status, o_version, o_state, o_count, o_last_url, o_mood
            FROM sessions s WHERE s.tenant_id = p_tenant[k] AND s.session_id = p_session[k];
            IF NOT FOUND THEN
                o_status := 2;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
    IF cardinality(stored) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO events (tenant_id, session_id, seq, type, ts, received_at, fields)
    SELECT p_tenant[x.b], p_session[x.b], x.seq, x.type, x.ts, p_now[x.b], x.fields
    FROM unnest(p_ev_batch, p_seqs, p_types, p_ts, p_fields) AS x(b, seq, type, ts, fields)
    WHERE x.b = ANY(stored);
    INSERT INTO page_moods (tenant_id, session_id, url, url_key, mood, updated_at)
    SELECT p_tenant[x.b], p_session[x.b], x.url, sha256(convert_to(x.url, 'UTF8')), x.mood,
        p_now[x.b]
    FROM unnest(p_page_batch, p_urls, p_moods) AS x(b, url, mood)
    WHERE x.b = ANY(stored)
    ON CONFLICT (tenant_id, session_id, url_key) DO UPDATE
    SET mood = excluded.mood, updated_at = excluded.updated_at;
    INSERT INTO batches (tenant_id, batch_id, session_id, response, created_at, fingerprint)
    SELECT p_tenant[x.b], p_batch_id[x.b], p_session[x.b], p_response[x.b], p_now[x.b],
        p_fingerprint[x.b]
    FROM unnest(stored) AS x(b) WHERE p_batch_id[x.b] IS NOT NULL;
END
$$;
