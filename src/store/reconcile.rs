//! What `reconcile` and the streaming company directory read and write: the payloads
//! Intercom last accepted (compared with what it holds now), the ids found on the way, the
//! drift found per run, and records marked to be sent again.
//!
//! Intercom names records by key (company_id, external_id, email); `records` has no index on
//! keys (building one costs more than everything else `transform` does at a million
//! records), so a lookup by key goes through a record_key → record_id map of the kind, read
//! once per command on first use. Lists of ids are passed as one JSON array parameter
//! (`json_each`); `CROSS JOIN` keeps that list the outer loop.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use super::codec::{self, Payload};
use super::records::{
    selection, stored_intercom_id, KeyIndex, HAS_PUSHED, INTERCOM_ID, PUSHED_PAYLOAD,
};
use super::{sqlite_err, PendingRecord, RunRow, Store, StoreError};

/// Reconciles whose drift rows are kept (older ones are deleted when a reconcile starts).
const DRIFT_RUNS_KEPT: i64 = 10;

/// A record: its Intercom id, if resolved, and its current payload.
#[derive(Clone, Debug)]
pub struct RecordRow {
    pub record_id: i64,
    pub record_key: String,
    pub intercom_id: Option<String>,
    /// The current payload (a user's lookup keys are in it).
    pub payload: String,
}

/// One attribute whose value in Intercom differs from what Intercom last accepted from us.
/// Values are JSON text; `intercom_value` is `null` when Intercom holds no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftRow {
    pub kind: String,
    pub record_key: String,
    pub attribute: String,
    pub intercom_value: String,
    pub expected_value: String,
}

fn ids_json(ids: &[i64]) -> String {
    serde_json::Value::from(ids).to_string()
}

impl Store {
    /// The record_key → record_id map of `kind` (read once, then kept).
    fn key_index(&self, kind: &str) -> Result<Arc<KeyIndex>, StoreError> {
        if let Some(index) = self.key_index.borrow().get(kind) {
            return Ok(index.clone());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT record_key, record_id FROM records WHERE kind = ?1")
            .map_err(|e| self.err(e))?;
        let index: KeyIndex = stmt
            .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let index = Arc::new(index);
        self.key_index
            .borrow_mut()
            .insert(kind.to_string(), index.clone());
        Ok(index)
    }

    /// The record_ids of those `record_keys` of `kind` that are records of ours.
    fn ids_of<'k>(
        &self,
        kind: &str,
        record_keys: impl IntoIterator<Item = &'k String>,
    ) -> Result<Vec<i64>, StoreError> {
        let index = self.key_index(kind)?;
        Ok(record_keys
            .into_iter()
            .filter_map(|k| index.get(k).copied())
            .collect())
    }

    /// The payload Intercom last accepted (canonical JSON) for each of `record_keys` that has
    /// one and is in the export: (record_key, payload). The only read of accepted payloads that
    /// reconcile makes; a departed record is not drift.
    pub fn pushed_payloads(
        &self,
        kind: &str,
        record_keys: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let ids = self.ids_of(kind, record_keys)?;
        let rows: Vec<(String, Vec<u8>)> = self.rows_with(
            &format!(
                "SELECT r.record_key, {PUSHED_PAYLOAD} AS pushed FROM json_each(?1) k
                 CROSS JOIN records r ON r.record_id = k.value
                 WHERE pushed IS NOT NULL AND r.hash IS NOT NULL"
            ),
            params![ids_json(&ids)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let names = self.json_names()?;
        rows.into_iter()
            .map(|(key, blob)| {
                let payload: Payload<'_> =
                    codec::decode("payload", &blob).map_err(|e| StoreError::Damaged {
                        path: self.path.display().to_string(),
                        message: e.to_string(),
                    })?;
                Ok((key, payload.to_json(&names)))
            })
            .collect()
    }

    /// Records of `kind` with a payload Intercom accepted (what reconcile can compare).
    pub fn pushed_record_count(&self, kind: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT COUNT(*) FROM records r WHERE r.kind = ?1 AND {HAS_PUSHED}"),
                [kind],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The records to push among `record_keys` (changed, or all with `full_resync`), as
    /// [`Store::pending_page`] gives them.
    pub fn pending_for_keys(
        &self,
        kind: &str,
        full_resync: bool,
        record_keys: &[String],
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let ids = self.ids_of(kind, record_keys)?;
        self.pending_where(
            &format!(
                "FROM json_each(?1) k CROSS JOIN records r ON r.record_id = k.value WHERE {}",
                selection("?2", full_resync)
            ),
            params![ids_json(&ids), kind],
        )
    }

    /// The next page of every record of `kind` with a payload (pending or not), in record_id
    /// order after `after`, with its Intercom id when resolved.
    pub fn record_page(
        &self,
        kind: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let names = self.json_names()?;
        let rows: Vec<(i64, String, Option<String>, Vec<u8>)> = self.rows_with(
            &format!(
                "SELECT r.record_id, r.record_key, {INTERCOM_ID}, r.payload FROM records r
                 WHERE r.record_id > ?2 AND r.kind = ?1 AND r.payload IS NOT NULL
                 ORDER BY r.record_id LIMIT ?3"
            ),
            params![kind, after, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        rows.into_iter()
            .map(|(record_id, record_key, intercom_id, blob)| {
                Ok(RecordRow {
                    record_id,
                    record_key,
                    intercom_id,
                    payload: self.payload_json(&names, Some(&blob))?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Remembers Intercom ids read from Intercom, (record_key, id), for the records we have
    /// whose id is unknown or different (keys that are not ours are ignored). Only those are
    /// written (one transaction), so an up-to-date page costs a read. Returns how many ids were
    /// new or changed.
    pub fn remember_found_ids(
        &self,
        kind: &str,
        found: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let index = self.key_index(kind)?;
        let found_json = serde_json::Value::from(
            found
                .iter()
                .filter_map(|(key, id)| Some(serde_json::json!([index.get(key)?, id])))
                .collect::<Vec<_>>(),
        )
        .to_string();
        let changed: Vec<(i64, String)> = self.rows_with(
            &format!(
                "SELECT r.record_id, f.value ->> 1 FROM json_each(?1) f
                 CROSS JOIN records r ON r.record_id = f.value ->> 0
                 WHERE r.intercom_id IS NOT {}",
                stored_intercom_id("(f.value ->> 1)")
            ),
            params![found_json],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if changed.is_empty() {
            return Ok(0);
        }
        let path = self.path.clone();
        // `&self`: the push holds the store shared; nothing else runs on this connection meanwhile.
        let tx = self.shared_write_transaction()?;
        {
            let mut update = tx
                .prepare_cached(&format!(
                    "UPDATE records SET intercom_id = {} WHERE record_id = ?1",
                    stored_intercom_id("?2")
                ))
                .map_err(|e| sqlite_err(&path, e))?;
            for (record_id, intercom_id) in &changed {
                update
                    .execute(params![record_id, intercom_id])
                    .map_err(|e| sqlite_err(&path, e))?;
            }
        }
        tx.commit().map_err(|e| sqlite_err(&path, e))?;
        Ok(changed.len() as u64)
    }

    /// Records the drift one reconcile (`run_id`) found, and forgets the pushed hash of the
    /// `resend` records, (kind, record_key), so that the push sends them again (their pushed
    /// payload is kept: it still says which keys are ours to clear). One transaction: a crash
    /// leaves both or neither.
    pub fn record_drift(
        &self,
        run_id: i64,
        rows: &[DriftRow],
        resend: &[(&str, String)],
    ) -> Result<(), StoreError> {
        if rows.is_empty() && resend.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        // `&self`: the push holds the store shared; nothing else runs on this connection meanwhile.
        let tx = self.shared_write_transaction()?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO drift (run_id, kind, record_key, attribute, intercom_value, expected_value)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| sqlite_err(&path, e))?;
            for row in rows {
                insert
                    .execute(params![
                        run_id,
                        row.kind,
                        row.record_key,
                        row.attribute,
                        row.intercom_value,
                        row.expected_value
                    ])
                    .map_err(|e| sqlite_err(&path, e))?;
            }
            // The pushed copy is made explicit before its hash goes (see records.rs).
            let mut forget = tx
                .prepare_cached(&format!(
                    "UPDATE records AS r SET pushed_payload = {PUSHED_PAYLOAD}, pushed_hash = NULL WHERE record_id = ?1"
                ))
                .map_err(|e| sqlite_err(&path, e))?;
            for (kind, record_key) in resend {
                for id in self.ids_of(kind, [record_key])? {
                    forget.execute([id]).map_err(|e| sqlite_err(&path, e))?;
                }
            }
        }
        tx.commit().map_err(|e| sqlite_err(&path, e))
    }

    /// Deletes the drift rows of all but the last reconciles.
    pub fn prune_drift(&self) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM drift WHERE run_id NOT IN
                   (SELECT DISTINCT run_id FROM drift ORDER BY run_id DESC LIMIT ?1)",
                [DRIFT_RUNS_KEPT],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Every drift row of one run, in (kind, record_key, attribute) order.
    pub fn drift_rows<E: From<StoreError>>(
        &self,
        run_id: i64,
        mut visit: impl FnMut(DriftRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT kind, record_key, attribute, intercom_value, expected_value FROM drift
                 WHERE run_id = ?1 ORDER BY kind, record_key, attribute",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = (|| {
                Ok::<_, rusqlite::Error>(DriftRow {
                    kind: r.get(0)?,
                    record_key: r.get(1)?,
                    attribute: r.get(2)?,
                    intercom_value: r.get(3)?,
                    expected_value: r.get(4)?,
                })
            })()
            .map_err(|e| self.err(e))?;
            visit(row)?;
        }
        Ok(())
    }

    /// Over the kept reconciles: (kind, attribute, reconciles that found it drifted, drifted
    /// records in all), most drifted records first.
    pub fn drift_history(&self) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        self.rows(
            "SELECT kind, attribute, COUNT(DISTINCT run_id), COUNT(*) FROM drift
             GROUP BY kind, attribute ORDER BY COUNT(*) DESC, kind, attribute",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    /// The last run that reconciled (its report has a `reconcile` section).
    pub fn last_reconcile_run(&self) -> Result<Option<RunRow>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM runs
                     WHERE json_valid(report) AND json_type(report, '$.reconcile') = 'object'
                     ORDER BY run_id DESC LIMIT 1",
                    RunRow::COLUMNS
                ),
                [],
                RunRow::from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
