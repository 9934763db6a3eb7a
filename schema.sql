-- intercom-push state database. Open it with `sqlite3 intercom-push.db` to look around.
--
-- Three groups of tables:
--   extract   the last export loaded successfully (`load` replaces them all in one transaction)
--   records   per company and per user: the payload the current mapping makes of that export
--             (`transform` rewrites only what changed) and what Intercom accepted (`push`);
--             they survive every load
--   reconcile what Intercom held that differed from what it had accepted (`reconcile`)
--
-- Payloads and account fields are stored in a compact binary encoding (postcard): read them
-- with `intercom-push plan --json --all`, not with sqlite3.
--
-- All statements are idempotent: the tool runs this file on every start (after migrating an
-- older database, see src/store/migrate.rs).

-- Key/value facts about the database: schema_version, extract_version (bumped by every
-- load), extract_digest, payload_extract_version and mapping (what the payloads were computed
-- from), prefix, users_have_id.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- ── extract ──────────────────────────────────────────────────────────────────────────────

-- One row per account, in the order read (part by part). `fields`: the account's field values
-- (field_key → raw value: CSV cells as text, JSON/Parquet values typed), typed per field
-- through account_fields.kind. Uniqueness of external_id and vitally_id is checked by `load`.
CREATE TABLE IF NOT EXISTS accounts (
    account_key INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL,            -- Intercom's company_id
    vitally_id  TEXT,                     -- the export's `id`, when it has one
    owner_ref   TEXT,                     -- accountOwnerId as given
    fields      BLOB NOT NULL
);

-- Each account's child rows, packed into one blob because they are only ever read together:
-- element counts (element_key → count), Success Metric values (metric_key → raw value) and
-- labels (label_key of its indicators and segments), each sorted by key. Written in
-- account_key order at the end of `load`; accounts without children have no row.
CREATE TABLE IF NOT EXISTS account_children (
    account_key INTEGER PRIMARY KEY,
    children    BLOB NOT NULL
);

-- One row per account field (column, or nested JSON key joined with '.'), in first-seen
-- order, with the type inferred over all its values in every part of the table.
CREATE TABLE IF NOT EXISTS account_fields (
    field_key INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL CHECK (kind IN ('empty', 'integer', 'float', 'boolean', 'date', 'string'))
);

CREATE TABLE IF NOT EXISTS users (
    user_key    INTEGER PRIMARY KEY,
    vitally_id  TEXT,
    external_id TEXT,                     -- Intercom contact external_id
    email       TEXT
);

-- Elements and Success Metrics, by name (as written: trimmed, whitespace runs collapsed).
-- source_id is the export's id, NULL for one known only by name.
CREATE TABLE IF NOT EXISTS elements (
    element_key INTEGER PRIMARY KEY,
    source_id   TEXT,
    name        TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS success_metrics (
    metric_key INTEGER PRIMARY KEY,
    source_id  TEXT,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL DEFAULT 'empty'   -- inferred over the metric's values
);

-- Active indicators (kind 'risk' or 'opportunity') and segment names, each stored once.
CREATE TABLE IF NOT EXISTS labels (
    label_key INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('risk', 'opportunity', 'segment')),
    name      TEXT NOT NULL,
    UNIQUE (kind, name)
);

-- ── records ──────────────────────────────────────────────────────────────────────────────

-- The custom data attributes the current mapping produces, with the Intercom data_type.
-- source: 'field:<name>', 'element:<name>', 'metric:<name>', 'indicators', 'segments', 'owner'.
CREATE TABLE IF NOT EXISTS attributes (
    model     TEXT NOT NULL CHECK (model IN ('company', 'contact')),
    name      TEXT NOT NULL,
    data_type TEXT NOT NULL,
    source    TEXT NOT NULL,
    PRIMARY KEY (model, name)
) WITHOUT ROWID;

-- Every attribute name a stored payload refers to (payloads hold name_key, not the name).
-- Append-only: a payload Intercom accepted long ago still decodes.
CREATE TABLE IF NOT EXISTS attribute_names (
    name_key INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE
);

-- One row per company and per user: the current payload and its hash (NULL once the record
-- left the export), and what Intercom last accepted, written only after a 2xx answer.
-- record_key: a company's company_id; a user's 'e:' || external_id, or 'm:' || email.
-- hash: 128-bit xxh3 over the mapping version plus the payload's canonical JSON.
-- pushed_payload is what Intercom accepted, kept only while it differs from `payload`
-- (pushed_hash <> hash): one copy, not two.
CREATE TABLE IF NOT EXISTS records (
    record_id      INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('company', 'user')),
    record_key     TEXT NOT NULL,
    hash           BLOB,
    intercom_id    BLOB,                  -- Intercom's id, once resolved: 12 bytes when it is 24 hex
                                          -- digits (as Intercom's ids are), else the text as given
    pushed_hash    BLOB,
    pushed_at      INTEGER,               -- unix seconds of the last accepted write
    status         INTEGER,               -- last outcome: 1 updated, 2 not_found, 3 ambiguous, 4 failed,
                                          -- 0 departed (left the export; handled, see records_departed)
    last_error     TEXT,
    failures       INTEGER NOT NULL DEFAULT 0,   -- consecutive failed attempts
    payload        BLOB,                  -- encoded, last: scans of the columns above skip it
    pushed_payload BLOB
);

-- "What would a push send": only the records whose payload differs from what Intercom
-- accepted are in this index, so plan, push and status cost what changed, not the export.
-- Keyed by record_id, so that rows inserted in order extend it at its end.
CREATE INDEX IF NOT EXISTS records_changed ON records (kind, record_id)
    WHERE hash IS NOT NULL AND hash IS NOT pushed_hash;

-- Records that left the export (no payload) after Intercom accepted a payload of theirs, and
-- whose departure is not handled yet (`departed = "clear"`: the PUT that clears what we sent;
-- `"keep"`: only marked). Status 0 once handled; a record that leaves again is reset to NULL.
CREATE INDEX IF NOT EXISTS records_departed ON records (kind, record_id)
    WHERE hash IS NULL AND pushed_hash IS NOT NULL AND status IS NOT 0;

-- Records needing attention (status lists them; its queries repeat `status >= 2`, as SQLite
-- uses a partial index only for a query whose WHERE has the index's own terms). A range, not
-- `IN (2, 3, 4)`: SQLite evaluates an IN list for every row inserted into records (about
-- 1 µs each, a third of the cost of inserting a user's record), and never used that index.
CREATE INDEX IF NOT EXISTS records_attention ON records (status, kind, record_key)
    WHERE status >= 2;

-- Every data attribute this tool ever created or sent (with the model), so `attributes` can
-- tell ours (current or stale) from foreign ones that merely share the prefix.
CREATE TABLE IF NOT EXISTS known_attributes (
    model      TEXT NOT NULL,
    name       TEXT NOT NULL,
    data_type  TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (model, name)
) WITHOUT ROWID;

-- One row per run of push/run, with its report as JSON.
CREATE TABLE IF NOT EXISTS runs (
    run_id      INTEGER PRIMARY KEY,
    command     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    exit_code   INTEGER,
    report      TEXT
);

-- ── bulk ─────────────────────────────────────────────────────────────────────────────────

-- Bulk update tasks (Preview API, `bulk = true`) that Intercom accepted (202) and whose outcome
-- is not recorded yet: written when the 202 arrives, deleted in the transaction that records
-- the outcome of its records. A run killed meanwhile finds them here and polls them first.
CREATE TABLE IF NOT EXISTS bulk_tasks (
    task_id TEXT PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('company', 'user')),
    job_id  TEXT NOT NULL,
    sent_at INTEGER NOT NULL               -- unix seconds of the 202
) WITHOUT ROWID;

-- The records of each task as its items carried them: a completed task records exactly what
-- was sent (pushed hash and payload), whatever the payloads have become since.
CREATE TABLE IF NOT EXISTS bulk_items (
    task_id     TEXT NOT NULL,
    record_id   INTEGER NOT NULL,
    record_key  TEXT NOT NULL,
    intercom_id TEXT NOT NULL,
    hash        BLOB NOT NULL,
    payload     BLOB NOT NULL,
    PRIMARY KEY (task_id, record_id)
) WITHOUT ROWID;

-- ── reconcile ────────────────────────────────────────────────────────────────────────────

-- Drift found by `reconcile` and `run --reconcile`: an attribute whose value in Intercom
-- differs from the one Intercom last accepted from us (records' pushed payload). One row per
-- run (the `runs` row), record and attribute (a custom attribute's name, or monthly_spend);
-- values are JSON, intercom_value 'null' when Intercom holds none. The rows of the last 10
-- reconciles are kept.
CREATE TABLE IF NOT EXISTS drift (
    run_id         INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('company', 'user')),
    record_key     TEXT NOT NULL,
    attribute      TEXT NOT NULL,
    intercom_value TEXT NOT NULL,
    expected_value TEXT NOT NULL,
    PRIMARY KEY (run_id, kind, record_key, attribute)
) WITHOUT ROWID;
