-- The events a batch id was first used with (see the SQLite schema).
ALTER TABLE batches ADD COLUMN fingerprint TEXT;
