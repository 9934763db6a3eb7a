-- The state after a full push, without pushing: marks every record as accepted by Intercom
-- with its current payload, as `push` does after a 2xx (src/store/sync.rs), so bench/run.sh
-- can measure at 1M accounts the database size after a full push, `run` with nothing
-- changed and the 1 %-changed night, where a real push against the mock would take hours.
-- Run with the sqlite3 CLI on a database that `transform` has just written:
--
--     sqlite3 -bail STATE.db < bench/mark-pushed.sql
--
-- The only SQL the benchmark writes into intercom-push's state: when the schema changes,
-- change this file (and nothing else in bench/).

BEGIN;

-- Intercom's ids are 24 hex digits, which intercom-push stores as the 12 bytes they spell
-- (schema.sql, records.intercom_id): here 12 distinct bytes per record (the record_id's
-- digits; the sqlite3 CLI before 3.41 has no unhex()). Status 1 is `updated`. The pushed
-- payload is kept only while it differs from the current one: here it is the same, so NULL.
UPDATE records
SET intercom_id = CAST(printf('%012d', record_id) AS BLOB), pushed_hash = hash, pushed_payload = NULL,
    pushed_at = CAST(strftime('%s', 'now') AS INTEGER), status = 1, last_error = NULL, failures = 0
WHERE hash IS NOT NULL;

-- The data attributes a push creates (or finds) and remembers.
INSERT OR IGNORE INTO known_attributes (model, name, data_type, first_seen)
SELECT model, name, data_type, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM attributes;

COMMIT;
