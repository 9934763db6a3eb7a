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

/// `(kind, record_key, payload JSON, hex(hash))` of every payload, in key order.
pub fn payloads(db: &Path) -> Vec<(String, String, String, String)> {
    let conn = read_only(db);
    let mut stmt = conn
        .prepare(
            "SELECT kind, record_key, payload, hex(hash) FROM payloads ORDER BY kind, record_key",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
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

/// Records that Intercom accepted `payload` with `hash` for one record, as a push would.
pub fn record_pushed(db: &Path, kind: &str, record_key: &str, hash: &[u8], payload: &str) {
    Connection::open(db)
        .unwrap()
        .execute(
            "INSERT INTO sync_state (kind, record_key, pushed_hash, pushed_payload) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![kind, record_key, hash, payload],
        )
        .unwrap();
}

/// Records the current payload and hash of each of `record_keys` as accepted by Intercom.
pub fn record_current_payloads_pushed(db: &Path, record_keys: &[&str]) {
    let conn = Connection::open(db).unwrap();
    for key in record_keys {
        conn.execute(
            "INSERT INTO sync_state (kind, record_key, pushed_hash, pushed_payload) \
             SELECT kind, record_key, hash, payload FROM payloads WHERE record_key = ?1",
            [key],
        )
        .unwrap();
    }
}

/// Companies whose current payload hash is recorded as accepted by Intercom.
pub fn companies_pushed(db: &Path) -> u64 {
    read_only(db)
        .query_row(
            "SELECT COUNT(*) FROM payloads p JOIN sync_state s USING (kind, record_key) \
             WHERE p.kind = 'company' AND s.pushed_hash = p.hash",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
}

/// Records (companies and users) with any hash recorded as accepted by Intercom.
pub fn records_pushed(db: &Path) -> u64 {
    read_only(db)
        .query_row(
            "SELECT COUNT(*) FROM sync_state WHERE pushed_hash IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
}
