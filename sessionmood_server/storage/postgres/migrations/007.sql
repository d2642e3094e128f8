-- page_moods was keyed by the URL itself, and a btree entry must fit in
-- a third of a page (2,704 bytes): a valid 2,048-character URL of CJK
-- text (6 KB of UTF-8), or a long URL on a session id of 256 emoji,
-- failed the batch with a 500. Key by the URL's SHA-256 instead (written
-- with each row, see _append); the URL stays in its column.
ALTER TABLE page_moods ADD COLUMN url_key BYTEA;
UPDATE page_moods SET url_key = sha256(convert_to(url, 'UTF8'));
ALTER TABLE page_moods ALTER COLUMN url_key SET NOT NULL;
ALTER TABLE page_moods DROP CONSTRAINT page_moods_pkey;
ALTER TABLE page_moods ADD PRIMARY KEY (tenant_id, session_id, url_key);
