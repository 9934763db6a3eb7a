//! Payload rows: what `transform` computed, read by `plan` and `push`.

use std::path::PathBuf;

use rusqlite::{params, Transaction};

use super::{sqlite_err, Store, StoreError};

/// A custom data attribute the mapping produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub model: &'static str,
    pub name: String,
    pub data_type: &'static str,
    pub source: String,
}

/// A payload with its hash and what Intercom last accepted for the same record.
#[derive(Clone, Debug)]
pub struct PayloadRow {
    pub kind: String,
    pub record_key: String,
    pub payload: String,
    pub hash: Vec<u8>,
    pub pushed_hash: Option<Vec<u8>>,
    pub pushed_payload: Option<String>,
    pub intercom_id: Option<String>,
}

impl PayloadRow {
    /// True when the payload differs from what Intercom last accepted.
    pub fn is_changed(&self) -> bool {
        self.pushed_hash.as_deref() != Some(self.hash.as_slice())
    }
}

/// Replaces all payloads and the attribute catalog in one transaction: rows whose hash is
/// unchanged are not rewritten, rows of records no longer in the extract are deleted at commit.
pub struct PayloadWriter<'c> {
    tx: Transaction<'c>,
    path: PathBuf,
}

impl Store {
    pub fn payload_writer(&mut self) -> Result<PayloadWriter<'_>, StoreError> {
        let path = self.path.clone();
        let tx = self.tx()?;
        tx.execute_batch("DELETE FROM attributes;")
            .map_err(|e| sqlite_err(&path, e))?;
        Ok(PayloadWriter { tx, path })
    }

    /// Payload rows in plan order (companies by company_id, then users by external_id, then
    /// email), only the changed ones unless `all`.
    pub fn payload_rows<E: From<StoreError>>(
        &self,
        all: bool,
        mut visit: impl FnMut(PayloadRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = format!(
            "SELECT p.kind, p.record_key, p.payload, p.hash, s.pushed_hash, s.pushed_payload, s.intercom_id
             FROM payloads p LEFT JOIN sync_state s ON s.kind = p.kind AND s.record_key = p.record_key
             {}
             ORDER BY p.kind, p.record_key",
            if all { "" } else { "WHERE s.pushed_hash IS NULL OR s.pushed_hash <> p.hash" }
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = (|| {
                Ok::<_, rusqlite::Error>(PayloadRow {
                    kind: r.get(0)?,
                    record_key: r.get(1)?,
                    payload: r.get(2)?,
                    hash: r.get(3)?,
                    pushed_hash: r.get(4)?,
                    pushed_payload: r.get(5)?,
                    intercom_id: r.get(6)?,
                })
            })()
            .map_err(|e| self.err(e))?;
            visit(row)?;
        }
        Ok(())
    }

    /// (total, changed) payload counts per kind: [(kind, total, changed)].
    pub fn payload_counts(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.rows(
            "SELECT p.kind, COUNT(*), SUM(s.pushed_hash IS NULL OR s.pushed_hash <> p.hash)
             FROM payloads p LEFT JOIN sync_state s ON s.kind = p.kind AND s.record_key = p.record_key
             GROUP BY p.kind ORDER BY p.kind",
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<i64>>(2)?.unwrap_or(0))),
        )
    }

    /// The attribute catalog of the current mapping.
    pub fn attributes(&self) -> Result<Vec<Attribute>, StoreError> {
        self.rows(
            "SELECT model, name, data_type, source FROM attributes ORDER BY model, name",
            |r| {
                let model: String = r.get(0)?;
                let data_type: String = r.get(2)?;
                Ok(Attribute {
                    model: if model == "company" {
                        "company"
                    } else {
                        "contact"
                    },
                    name: r.get(1)?,
                    data_type: static_data_type(&data_type),
                    source: r.get(3)?,
                })
            },
        )
    }
}

fn static_data_type(text: &str) -> &'static str {
    match text {
        "integer" => "integer",
        "float" => "float",
        "boolean" => "boolean",
        _ => "string",
    }
}

impl PayloadWriter<'_> {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite_err(&self.path, e)
    }

    pub fn insert_payload(
        &self,
        kind: &str,
        record_key: &str,
        payload: &str,
        hash: &[u8],
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO payloads (kind, record_key, payload, hash) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, record_key) DO UPDATE SET payload = excluded.payload, hash = excluded.hash
                 WHERE payloads.hash <> excluded.hash",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![kind, record_key, payload, hash])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn insert_attribute(&self, attribute: &Attribute) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO attributes (model, name, data_type, source) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![
            attribute.model,
            attribute.name,
            attribute.data_type,
            attribute.source
        ])
        .map(drop)
        .map_err(|e| self.err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.tx
            .execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![key, value])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Deletes the payloads of records no longer in the extract, then commits.
    pub fn commit(self) -> Result<(), StoreError> {
        self.tx
            .execute_batch(
                "DELETE FROM payloads WHERE kind = 'company' AND record_key NOT IN (SELECT external_id FROM accounts);
                 DELETE FROM payloads WHERE kind = 'user' AND record_key NOT IN (SELECT record_key FROM users);",
            )
            .map_err(|e| sqlite_err(&self.path, e))?;
        self.tx.commit().map_err(|e| sqlite_err(&self.path, e))
    }
}
