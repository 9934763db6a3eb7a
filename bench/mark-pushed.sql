-- The state after a full push, without pushing: marks every record as accepted by Intercom
-- with its current payload, as `push` does after a 2xx (src/store/sync.rs, SyncWriter), so
-- bench/run.sh can measure at 1M accounts the database size after a full push, `run` with
-- nothing changed and the 1 %-changed night, where a real push against the mock would take
-- hours. Run with the sqlite3 CLI on a database that `transform` has just written:
--
--     sqlite3 -bail STATE.db < bench/mark-pushed.sql
--
-- The only SQL the benchmark writes into intercom-push's state: when the schema changes,
-- change this file (and nothing else in bench/).

BEGIN;

-- Intercom's ids are 24 hex digits; a contact's too.
INSERT INTO sync_state (kind, record_key, intercom_id, pushed_hash, pushed_payload, pushed_at, status, last_error, failures)
SELECT kind, record_key, printf('%024x', payload_id), hash, payload,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'updated', NULL, 0
FROM payloads
WHERE true -- (SQLite's upsert after a SELECT needs a WHERE)
ON CONFLICT (kind, record_key) DO UPDATE SET
    intercom_id = excluded.intercom_id, pushed_hash = excluded.pushed_hash,
    pushed_payload = excluded.pushed_payload, pushed_at = excluded.pushed_at,
    status = 'updated', last_error = NULL, failures = 0;

-- The data attributes a push creates (or finds) and remembers.
INSERT OR IGNORE INTO known_attributes (model, name, data_type, first_seen)
SELECT model, name, data_type, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM attributes;

COMMIT;
