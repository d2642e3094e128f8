-- Where visitors struggle (issue 26). element_sessions: what one session
-- did to one element (tracker.js's `target`) on one page, so
-- GET /v1/analytics/elements sums rows instead of scanning events;
-- frustrated is set when the session turned frustrated or confused within
-- 10 s (last_ts, the events' clock) after acting on it. journey_steps: a
-- session's first page views in order (consecutive repeats collapsed), the
-- mood it left each in and whether it was frustrated there; started_at is
-- when its first step was stored, for since/until. Version 9 is PostgreSQL's.
CREATE TABLE element_sessions (
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    page TEXT NOT NULL,
    target TEXT NOT NULL,
    clicks INTEGER NOT NULL,
    rage_clicks INTEGER NOT NULL,
    dead_clicks INTEGER NOT NULL,
    error_clicks INTEGER NOT NULL,
    hesitations INTEGER NOT NULL,
    frustrated INTEGER NOT NULL DEFAULT 0,
    last_ts REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, page, target, session_id)
) WITHOUT ROWID;
-- Keyed by element first: the analytics group by (page, target) in key
-- order, without sorting the rows (a million of them in one tenant took 2 s
-- to sort), and one page's elements are a range. A session's rows (struggle
-- marks, erasure) are found through this index.
CREATE INDEX element_sessions_session ON element_sessions(tenant_id, session_id);
CREATE TABLE journey_steps (
    tenant_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    url TEXT NOT NULL,
    mood TEXT NOT NULL,
    frustrated INTEGER NOT NULL,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, session_id, step)
) WITHOUT ROWID;
CREATE INDEX journey_steps_tenant ON journey_steps(tenant_id, started_at);
