-- intercom-push state database. Open it with `sqlite3 intercom-push.db` to look around.
--
-- Four groups of tables:
--   extract   the last export loaded successfully (`load` replaces them all in one transaction)
--   payloads  what the current mapping makes of that export (`transform` rewrites them)
--   sync      what Intercom has accepted (`push`); survives every load and transform
--   reconcile what Intercom held that differed from what it had accepted (`reconcile`)
--
-- All statements are idempotent: the tool runs this file on every start.

-- Key/value facts about the database: schema_version, extract_version (bumped by every
-- load), payload_extract_version and mapping (what the payloads were computed from).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- ── extract ──────────────────────────────────────────────────────────────────────────────

-- One row per account. `fields` is a JSON object: field name (as in the export, nested JSON
-- keys joined with '.') → raw value (CSV cells as the text of the file, JSON values as JSON).
-- The field's type lives in account_fields.
CREATE TABLE IF NOT EXISTS accounts (
    account_key INTEGER PRIMARY KEY,      -- dense, in file order
    external_id TEXT NOT NULL UNIQUE,     -- Intercom's company_id
    vitally_id  TEXT UNIQUE,              -- the export's `id`, when it has one
    owner_ref   TEXT,                     -- accountOwnerId as given
    source_line INTEGER NOT NULL,         -- line in the accounts file, for messages
    fields      TEXT NOT NULL
);

-- One row per account field (column) with the type inferred over all its values.
CREATE TABLE IF NOT EXISTS account_fields (
    name     TEXT PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('empty', 'integer', 'float', 'boolean', 'string')),
    position INTEGER NOT NULL             -- first-seen order
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS users (
    user_key    INTEGER PRIMARY KEY,
    vitally_id  TEXT,
    external_id TEXT,                     -- Intercom contact external_id
    email       TEXT,
    record_key  TEXT NOT NULL,            -- 'e:' || external_id, or 'm:' || email without one
    source_line INTEGER NOT NULL
);

-- Elements and Success Metrics, by name (as written: trimmed, whitespace runs collapsed).
-- source_id is the export's id, NULL for one known only by name.
CREATE TABLE IF NOT EXISTS elements (
    element_key INTEGER PRIMARY KEY,
    source_id   TEXT,
    name        TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS element_counts (
    account_key INTEGER NOT NULL,
    element_key INTEGER NOT NULL,
    count       INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (account_key, element_key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS success_metrics (
    metric_key INTEGER PRIMARY KEY,
    source_id  TEXT,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL DEFAULT 'empty'   -- inferred over the metric's values
);

-- value: JSON (a CSV cell is stored as a JSON string and typed through success_metrics.kind).
CREATE TABLE IF NOT EXISTS metric_values (
    account_key INTEGER NOT NULL,
    metric_key  INTEGER NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (account_key, metric_key)
) WITHOUT ROWID;

-- Active indicators (kind 'risk' or 'opportunity') and segments; duplicates collapse.
CREATE TABLE IF NOT EXISTS account_labels (
    account_key INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('risk', 'opportunity', 'segment')),
    name        TEXT NOT NULL,
    PRIMARY KEY (account_key, kind, name)
) WITHOUT ROWID;

-- ── payloads ─────────────────────────────────────────────────────────────────────────────

-- One row per company and per user: the canonical payload JSON (sorted keys) and its
-- 128-bit xxh3 hash over the mapping version plus those bytes.
-- record_key: a company's company_id; a user's users.record_key.
-- A rowid table: rows (≈ 2 KB each) append in transform order, only the small
-- (kind, record_key) index takes random inserts; transform rewrites only changed rows.
CREATE TABLE IF NOT EXISTS payloads (
    payload_id INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('company', 'user')),
    record_key TEXT NOT NULL,
    payload    TEXT NOT NULL,
    hash       BLOB NOT NULL,
    UNIQUE (kind, record_key)
);

-- The custom data attributes the current mapping produces, with the Intercom data_type.
-- source: 'field:<name>', 'element:<name>', 'metric:<name>', 'indicators', 'segments', 'owner'.
CREATE TABLE IF NOT EXISTS attributes (
    model     TEXT NOT NULL CHECK (model IN ('company', 'contact')),
    name      TEXT NOT NULL,
    data_type TEXT NOT NULL,
    source    TEXT NOT NULL,
    PRIMARY KEY (model, name)
) WITHOUT ROWID;

-- ── sync ─────────────────────────────────────────────────────────────────────────────────

-- What Intercom last accepted for each record, written only after a 2xx answer.
-- pushed_payload is the payload then sent (for diffs and for clearing keys no longer sent).
CREATE TABLE IF NOT EXISTS sync_state (
    kind           TEXT NOT NULL CHECK (kind IN ('company', 'user')),
    record_key     TEXT NOT NULL,
    intercom_id    TEXT,                  -- Intercom's id, once resolved
    pushed_hash    BLOB,
    pushed_payload TEXT,
    pushed_at      TEXT,
    status         TEXT,                  -- last outcome: updated, not_found, ambiguous, failed
    last_error     TEXT,
    failures       INTEGER NOT NULL DEFAULT 0,   -- consecutive failed attempts
    PRIMARY KEY (kind, record_key)
); -- a rowid table: its rows carry whole payloads (≈ 2 KB), too big for a WITHOUT ROWID b-tree

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

-- ── reconcile ────────────────────────────────────────────────────────────────────────────

-- Drift found by `reconcile` and `run --reconcile`: an attribute whose value in Intercom
-- differs from the one Intercom last accepted from us (sync_state.pushed_payload). One row per
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

-- Covering indexes for "which payloads differ from what Intercom accepted" (plan, push,
-- status): the comparison reads these, never the ≈ 2 KB rows.
CREATE INDEX IF NOT EXISTS payloads_by_hash ON payloads (kind, record_key, hash);
CREATE INDEX IF NOT EXISTS sync_state_by_hash ON sync_state (kind, record_key, pushed_hash, intercom_id);
