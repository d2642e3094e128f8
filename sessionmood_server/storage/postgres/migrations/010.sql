-- Where visitors struggle (issue 26): the same two tables as SQLite's
-- migration 10. element_sessions: what one session did to one element
-- (tracker.js's `target`) on one page; frustrated is set when the session
-- turned frustrated or confused within 10 s (last_ts, the events' clock)
-- after acting on it. Keyed by the page's hash (as page_moods, migration 7):
-- a btree entry must fit in a page. journey_steps: a session's first page
-- views in order, the mood it left each in, whether it was frustrated there.
CREATE TABLE element_sessions (
    tenant_id BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    page_key BYTEA NOT NULL,
    page TEXT NOT NULL,
    target TEXT NOT NULL,
    clicks INT NOT NULL,
    rage_clicks INT NOT NULL,
    dead_clicks INT NOT NULL,
    error_clicks INT NOT NULL,
    hesitations INT NOT NULL,
    frustrated INT NOT NULL DEFAULT 0,
    last_ts DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, session_id, page_key, target)
);
CREATE INDEX element_sessions_tenant ON element_sessions(tenant_id, updated_at);
CREATE TABLE journey_steps (
    tenant_id BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    step INT NOT NULL,
    url TEXT NOT NULL,
    mood TEXT NOT NULL,
    frustrated INT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, session_id, step)
);
CREATE INDEX journey_steps_tenant ON journey_steps(tenant_id, started_at);

-- sm_append_cached (migration 9) also adds up the batches' element rows: the
-- fast path stores every batch without a mood change, and nearly every
-- batch from tracker.js names elements. Journey steps change only with a
-- page view or a mood change, which take the full path. The old signature
-- goes: upgrade every replica together (an old one's fast-path writes
-- would fail with "function does not exist" until it runs this code).
DROP FUNCTION sm_append_cached(
    BIGINT[], TEXT[], BIGINT[], BIGINT[], BIGINT[], TEXT[], TEXT[], TEXT[], TEXT[],
    TEXT[], TEXT[], DOUBLE PRECISION[], TEXT[], BIGINT[], TEXT[], DOUBLE PRECISION[],
    INT[], BIGINT[], TEXT[], DOUBLE PRECISION[], TEXT[], INT[], TEXT[], TEXT[], INT[], TEXT[]
);
CREATE FUNCTION sm_append_cached(
    p_tenant BIGINT[], p_session TEXT[], p_version BIGINT[],
    p_batch_lock BIGINT[], p_session_lock BIGINT[],
    p_batch_id TEXT[], p_fingerprint TEXT[], p_response TEXT[], p_month TEXT[],
    p_state TEXT[], p_mood TEXT[], p_confidence DOUBLE PRECISION[], p_action TEXT[],
    p_total BIGINT[], p_last_url TEXT[], p_now DOUBLE PRECISION[],
    p_ev_batch INT[], p_seqs BIGINT[], p_types TEXT[], p_ts DOUBLE PRECISION[],
    p_fields TEXT[],
    p_page_batch INT[], p_urls TEXT[], p_moods TEXT[],
    p_signal_batch INT[], p_signals TEXT[],
    p_el_batch INT[], p_el_page TEXT[], p_el_target TEXT[], p_el_clicks INT[],
    p_el_rage INT[], p_el_dead INT[], p_el_error INT[], p_el_hesitations INT[],
    p_el_ts DOUBLE PRECISION[]
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
    INSERT INTO element_sessions AS e (tenant_id, session_id, page_key, page, target, clicks,
        rage_clicks, dead_clicks, error_clicks, hesitations, last_ts, updated_at)
    SELECT p_tenant[x.b], p_session[x.b], sha256(convert_to(x.page, 'UTF8')), x.page, x.target,
        x.clicks, x.rage, x.dead, x.error, x.hes, x.ts, p_now[x.b]
    FROM unnest(p_el_batch, p_el_page, p_el_target, p_el_clicks, p_el_rage, p_el_dead,
        p_el_error, p_el_hesitations, p_el_ts) AS x(b, page, target, clicks, rage, dead, error,
        hes, ts)
    WHERE x.b = ANY(stored)
    ON CONFLICT (tenant_id, session_id, page_key, target) DO UPDATE
    SET clicks = e.clicks + excluded.clicks, rage_clicks = e.rage_clicks + excluded.rage_clicks,
        dead_clicks = e.dead_clicks + excluded.dead_clicks,
        error_clicks = e.error_clicks + excluded.error_clicks,
        hesitations = e.hesitations + excluded.hesitations,
        last_ts = GREATEST(e.last_ts, excluded.last_ts), updated_at = excluded.updated_at;
    INSERT INTO batches (tenant_id, batch_id, session_id, response, created_at, fingerprint)
    SELECT p_tenant[x.b], p_batch_id[x.b], p_session[x.b], p_response[x.b], p_now[x.b],
        p_fingerprint[x.b]
    FROM unnest(stored) AS x(b) WHERE p_batch_id[x.b] IS NOT NULL;
END
$$;
