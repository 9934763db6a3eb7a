//! Upgrading a database written by an older intercom-push, inside the opening transaction.
//!
//! Schema 2 before date kinds: `account_fields.kind` did not allow `'date'`; the table is
//! rebuilt with the new CHECK, its rows kept (see [`allow_date_kind`]).
//!
//! Schema 2 → 3: `records.status` becomes a small integer and Intercom's ids (24 hex digits)
//! 12 bytes, in place (see [`compact_sync_columns`]).
//!
//! Schema 3 as first released kept the records needing attention in an index on
//! `status IN (2, 3, 4)`, which no query used and every insert paid for: it is created again
//! on `status >= 2` (see [`attention_by_range`]).
//!
//! Schema 1 → 2: what Intercom accepted (`sync_state`, JSON payloads) moves into `records`
//! (encoded payloads) unchanged, hashes included, so nothing is sent again for it. The old
//! extract and payload tables are dropped: the next `load` (every `run` starts with one) and
//! `transform` rebuild them, and records whose payload did not change stay unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::Value;

use super::codec::{self, Payload, Scalar};
use super::records::{status_code, stored_intercom_id};
use super::{sqlite_err, StoreError};

/// Tables of schema 1 that schema 2 no longer has or reshaped.
const DROPPED_IN_2: [&str; 9] = [
    "accounts",
    "account_fields",
    "users",
    "elements",
    "element_counts",
    "success_metrics",
    "metric_values",
    "account_labels",
    "payloads",
];

/// Brings the schema up to date (before `schema.sql` runs).
pub fn migrate(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    from_schema_1(tx, path)?;
    compact_sync_columns(tx, path)?;
    attention_by_range(tx, path)?;
    allow_date_kind(tx, path)
}

/// Drops the index of records needing attention made on an IN list; `schema.sql` creates it
/// again on a range (see the module's documentation).
fn attention_by_range(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    let err = |e| sqlite_err(path, e);
    let index = created_as(tx, "index", "records_attention").map_err(err)?;
    if index.is_some_and(|sql| sql.contains("IN (2, 3, 4)")) {
        tx.execute_batch("DROP INDEX records_attention;")
            .map_err(err)?;
    }
    Ok(())
}

/// Schema 2 → 3, told by the index of records needing attention, which schema 2 keyed on
/// status words: the words become their codes, 24-hex-digit ids their 12 bytes, and
/// `schema.sql` creates the index again on the codes.
fn compact_sync_columns(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    let err = |e| sqlite_err(path, e);
    let index = created_as(tx, "index", "records_attention").map_err(err)?;
    if !index.is_some_and(|sql| sql.contains("'not_found'")) {
        return Ok(());
    }
    let mut codes = String::from("CASE status");
    for word in ["updated", "not_found", "ambiguous", "failed"] {
        codes += &format!(
            " WHEN '{word}' THEN {}",
            status_code(word).unwrap_or_default()
        );
    }
    tx.execute_batch(&format!(
        "DROP INDEX records_attention;
         UPDATE records SET status = {codes} END WHERE typeof(status) = 'text';
         UPDATE records SET intercom_id = {} WHERE typeof(intercom_id) = 'text';",
        stored_intercom_id("intercom_id")
    ))
    .map_err(err)
}

/// The statement that created the `kind` (table, index) `name`, if it exists.
fn created_as(tx: &Transaction<'_>, kind: &str, name: &str) -> rusqlite::Result<Option<String>> {
    tx.query_row(
        "SELECT sql FROM sqlite_master WHERE type = ?1 AND name = ?2",
        [kind, name],
        |r| r.get(0),
    )
    .optional()
}

/// `account_fields` as created before fields could be dates: rebuilt by `schema.sql` with the
/// CHECK that allows `'date'`, its rows copied, so the loaded extract stays usable (a version
/// of this tool that knows no dates reads a `date` kind as a string).
fn allow_date_kind(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    let err = |e| sqlite_err(path, e);
    let created = created_as(tx, "table", "account_fields").map_err(err)?;
    if created.is_none_or(|sql| sql.contains("'date'")) {
        return Ok(());
    }
    tx.execute_batch("ALTER TABLE account_fields RENAME TO account_fields_before_dates;")
        .map_err(err)?;
    tx.execute_batch(super::SCHEMA).map_err(err)?;
    tx.execute_batch(
        "INSERT INTO account_fields (field_key, name, kind)
             SELECT field_key, name, kind FROM account_fields_before_dates;
         DROP TABLE account_fields_before_dates;",
    )
    .map_err(err)
}

/// Schema 1 → 2 (see the module's documentation).
fn from_schema_1(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    let err = |e| sqlite_err(path, e);
    let has_sync_state: bool = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_state'",
            [],
            |_| Ok(true),
        )
        .optional()
        .map_err(err)?
        .unwrap_or(false);
    if !has_sync_state {
        return Ok(());
    }
    for table in DROPPED_IN_2 {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {table};"))
            .map_err(err)?;
    }
    tx.execute_batch(super::SCHEMA).map_err(err)?;
    let mut names: BTreeMap<String, u32> = BTreeMap::new();
    let rows: Vec<SyncStateRow> = {
        let mut stmt = tx
            .prepare(
                "SELECT kind, record_key, intercom_id, pushed_hash, pushed_payload, pushed_at, status, last_error, failures FROM sync_state",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SyncStateRow {
                    kind: r.get(0)?,
                    record_key: r.get(1)?,
                    intercom_id: r.get(2)?,
                    pushed_hash: r.get(3)?,
                    pushed_payload: r.get(4)?,
                    pushed_at: r.get(5)?,
                    status: r.get(6)?,
                    last_error: r.get(7)?,
                    failures: r.get(8)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)?
    };
    for row in rows {
        let encoded = row
            .pushed_payload
            .as_deref()
            .map(|json| encode_json_payload(tx, path, &row.kind, &row.record_key, json, &mut names))
            .transpose()?;
        tx.execute(
            &format!(
                "INSERT INTO records (kind, record_key, intercom_id, pushed_hash, pushed_payload, pushed_at, status, last_error, failures)
                 VALUES (?1, ?2, {}, ?4, ?5, unixepoch(?6), ?7, ?8, ?9)",
                stored_intercom_id("?3")
            ),
            params![row.kind, row.record_key, row.intercom_id, row.pushed_hash, encoded, row.pushed_at, row.status.as_deref().and_then(status_code), row.last_error, row.failures],
        )
        .map_err(err)?;
    }
    tx.execute_batch(
        "DROP TABLE sync_state;
         DELETE FROM meta WHERE key IN ('extract_version', 'extract_digest', 'payload_extract_version', 'users_have_id');",
    )
    .map_err(err)
}

struct SyncStateRow {
    kind: String,
    record_key: String,
    intercom_id: Option<String>,
    pushed_hash: Option<Vec<u8>>,
    pushed_payload: Option<String>,
    pushed_at: Option<String>,
    status: Option<String>,
    last_error: Option<String>,
    failures: i64,
}

/// A schema-1 payload (canonical JSON) in the schema-2 encoding.
fn encode_json_payload(
    tx: &Transaction<'_>,
    path: &Path,
    kind: &str,
    record_key: &str,
    json: &str,
    names: &mut BTreeMap<String, u32>,
) -> Result<Vec<u8>, StoreError> {
    let damaged = |message: String| StoreError::Damaged {
        path: path.display().to_string(),
        message: format!("upgrading the pushed payload of {kind} `{record_key}`: {message}"),
    };
    let value: Value = serde_json::from_str(json).map_err(|e| damaged(e.to_string()))?;
    let mut attributes = Vec::new();
    for (name, value) in value
        .get("custom_attributes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let scalar = match value {
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Scalar::Int(i),
                None => Scalar::Float(n.as_f64().unwrap_or_default()),
            },
            Value::String(s) => Scalar::Str(s.as_str().into()),
            other => return Err(damaged(format!("`{name}` holds {other}, not a scalar"))),
        };
        let key = match names.get(name) {
            Some(key) => *key,
            None => {
                tx.execute(
                    "INSERT OR IGNORE INTO attribute_names (name) VALUES (?1)",
                    [name],
                )
                .map_err(|e| sqlite_err(path, e))?;
                let key: u32 = tx
                    .query_row(
                        "SELECT name_key FROM attribute_names WHERE name = ?1",
                        [name],
                        |r| r.get(0),
                    )
                    .map_err(|e| sqlite_err(path, e))?;
                names.insert(name.clone(), key);
                key
            }
        };
        attributes.push((key, scalar));
    }
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(Into::into);
    let payload = if kind == "company" {
        Payload::Company {
            company_id: text("company_id").unwrap_or_else(|| record_key.into()),
            monthly_spend: value.get("monthly_spend").and_then(Value::as_i64),
            attributes,
        }
    } else {
        Payload::User {
            external_id: text("external_id"),
            email: text("email"),
            attributes,
        }
    };
    Ok(codec::encode(&payload))
}

#[cfg(test)]
mod tests {
    use super::super::Store;

    #[test]
    fn the_attention_index_on_an_in_list_is_made_again_on_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let store = Store::open(&db).unwrap();
        store
            .conn
            .execute_batch(
                "DROP INDEX records_attention;
                 CREATE INDEX records_attention ON records (status, kind, record_key)
                     WHERE status IN (2, 3, 4);",
            )
            .unwrap();
        drop(store);
        let store = Store::open(&db).unwrap();
        let sql: String = store
            .conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'records_attention'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.ends_with("WHERE status >= 2"), "{sql}");
    }
}
