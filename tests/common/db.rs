//! Every SQL statement the integration tests run against intercom-push's database, in one
//! place: when the storage layout changes, these are the queries to port. (Tests read the
//! state through the binary wherever it shows it, e.g. `plan --json --all`.)

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

fn read_only(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// `kind/record_key → hex(hash)` of every payload (companies and users).
pub fn hashes(db: &Path) -> BTreeMap<String, String> {
    payloads(db)
        .into_iter()
        .map(|(kind, key, _, hash)| (format!("{kind}/{key}"), hash))
        .collect()
}

/// `(kind, record_key, payload JSON, hex(hash))` of every payload, in key order (payloads
/// are stored encoded: the store decodes them).
pub fn payloads(db: &Path) -> Vec<(String, String, String, String)> {
    let store = intercom_push::store::Store::open(db).unwrap();
    let mut out = Vec::new();
    store
        .payload_rows(
            true,
            |row| -> Result<(), intercom_push::store::StoreError> {
                let hash = intercom_push::transform::hash::hex(&row.hash).to_uppercase();
                out.push((row.kind, row.record_key, row.payload, hash));
                Ok(())
            },
        )
        .unwrap();
    out
}

/// The loaded accounts' `externalId`s, in the order of the export.
pub fn account_external_ids(db: &Path) -> Vec<String> {
    let conn = read_only(db);
    let mut stmt = conn
        .prepare("SELECT external_id FROM accounts ORDER BY account_key")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// Records that Intercom accepted, for one record, a payload whose hash is `hash` and whose
/// encoded form is `payload` (e.g. the current `payload` column of another record or
/// database), as a push would.
pub fn record_pushed(db: &Path, kind: &str, record_key: &str, hash: &[u8], payload: &[u8]) {
    Connection::open(db)
        .unwrap()
        .execute(
            "UPDATE records SET pushed_hash = ?3, pushed_payload = ?4, intercom_id = 'ic-' || record_key
             WHERE kind = ?1 AND record_key = ?2",
            rusqlite::params![kind, record_key, hash, payload],
        )
        .unwrap();
}

/// The current (hash, encoded payload) of one record.
pub fn current_payload(db: &Path, kind: &str, record_key: &str) -> (Vec<u8>, Vec<u8>) {
    read_only(db)
        .query_row(
            "SELECT hash, payload FROM records WHERE kind = ?1 AND record_key = ?2",
            [kind, record_key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// Records the current payload and hash of each of `record_keys` as accepted by Intercom.
pub fn record_current_payloads_pushed(db: &Path, record_keys: &[&str]) {
    let conn = Connection::open(db).unwrap();
    for key in record_keys {
        conn.execute(
            "UPDATE records SET pushed_hash = hash, pushed_payload = NULL, intercom_id = 'ic-' || record_key
             WHERE record_key = ?1",
            [key],
        )
        .unwrap();
    }
}

/// Companies whose current payload hash is recorded as accepted by Intercom.
pub fn companies_pushed(db: &Path) -> u64 {
    read_only(db)
        .query_row(
            "SELECT COUNT(*) FROM records WHERE kind = 'company' AND pushed_hash = hash",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
}

/// Records (companies and users) with any hash recorded as accepted by Intercom.
pub fn records_pushed(db: &Path) -> u64 {
    read_only(db)
        .query_row(
            "SELECT COUNT(*) FROM records WHERE pushed_hash IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
}

/// The ids of the `runs` rows kept, oldest first.
pub fn run_ids(db: &Path) -> Vec<i64> {
    let conn = read_only(db);
    let mut stmt = conn
        .prepare("SELECT run_id FROM runs ORDER BY run_id")
        .unwrap();
    let ids = stmt.query_map([], |r| r.get(0)).unwrap();
    ids.map(Result::unwrap).collect()
}

/// (Intercom id, hex of the pushed hash) of one record.
pub fn pushed_state(db: &Path, kind: &str, record_key: &str) -> (Option<String>, Option<String>) {
    read_only(db)
        .query_row(
            "SELECT CASE typeof(intercom_id) WHEN 'blob' THEN lower(hex(intercom_id)) ELSE intercom_id END,
                    hex(pushed_hash)
             FROM records WHERE kind = ?1 AND record_key = ?2",
            [kind, record_key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// Puts back `account_fields` as intercom-push created it before fields could be dates (its
/// CHECK refuses `'date'`; what it would have stored as `string` stays), and a digest of the
/// export from that older build.
pub fn restore_account_fields_without_date_kind(db: &Path) {
    Connection::open(db)
        .unwrap()
        .execute_batch(
            "BEGIN;
             ALTER TABLE account_fields RENAME TO account_fields_now;
             CREATE TABLE account_fields (
                 field_key INTEGER PRIMARY KEY,
                 name      TEXT NOT NULL UNIQUE,
                 kind      TEXT NOT NULL CHECK (kind IN ('empty', 'integer', 'float', 'boolean', 'string'))
             );
             INSERT INTO account_fields SELECT field_key, name, CASE kind WHEN 'date' THEN 'string' ELSE kind END FROM account_fields_now;
             DROP TABLE account_fields_now;
             UPDATE meta SET value = 'digest of an older build' WHERE key = 'extract_digest';
             COMMIT;",
        )
        .unwrap();
}

/// Every row of every table, as text, table by table in name order: two equal dumps mean
/// the database holds the same data.
pub fn contents(db: &Path) -> Vec<String> {
    let conn = read_only(db);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(format!("{table}: {}", cells.join(" | ")))
            })
            .unwrap();
        let mut rows: Vec<String> = rows.map(Result::unwrap).collect();
        rows.sort();
        out.extend(rows);
    }
    out
}
