-- The events a batch id was first used with (a hash; NULL for batches
-- stored before this column existed, which replay as before): the same
-- id with other events is refused instead of silently dropped.
ALTER TABLE batches ADD COLUMN fingerprint TEXT;
