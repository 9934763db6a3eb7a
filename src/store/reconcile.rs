//! What `reconcile` reads and writes: the payloads Intercom last accepted (compared with what it
//! holds now), the ids found on the way, the drift found per run, and records marked to be sent
//! again. Record keys are passed as one JSON array parameter (`json_each`), whatever their number;
//! `CROSS JOIN` keeps that list the outer loop (SQLite would otherwise scan every record of the
//! kind for each list, not knowing how short it is).

use rusqlite::{params, OptionalExtension};

use super::{sqlite_err, PendingRecord, RunRow, Store, StoreError};

/// Reconciles whose drift rows are kept (older ones are deleted when a reconcile starts).
const DRIFT_RUNS_KEPT: i64 = 10;

/// A record: its Intercom id, if resolved, and its current payload.
#[derive(Clone, Debug)]
pub struct RecordRow {
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

fn keys_json(record_keys: &[String]) -> String {
    serde_json::Value::from(record_keys).to_string()
}

impl Store {
    /// The payload Intercom last accepted (canonical JSON) for each of `record_keys` that has one:
    /// (record_key, payload). The only read of accepted payloads that reconcile makes.
    pub fn pushed_payloads(
        &self,
        kind: &str,
        record_keys: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.rows_with(
            "SELECT s.record_key, s.pushed_payload FROM json_each(?2) k
             CROSS JOIN sync_state s ON s.kind = ?1 AND s.record_key = k.value
             WHERE s.pushed_payload IS NOT NULL",
            params![kind, keys_json(record_keys)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Records of `kind` with a payload Intercom accepted (what reconcile can compare).
    pub fn pushed_record_count(&self, kind: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM payloads p JOIN sync_state s ON s.kind = p.kind AND s.record_key = p.record_key
                 WHERE p.kind = ?1 AND s.pushed_payload IS NOT NULL",
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
        self.rows_with(
            "SELECT p.record_key, p.payload, p.hash, s.intercom_id, s.pushed_payload
             FROM json_each(?3) k
             CROSS JOIN payloads p ON p.kind = ?1 AND p.record_key = k.value
             LEFT JOIN sync_state s ON s.kind = p.kind AND s.record_key = p.record_key
             WHERE ?2 OR s.pushed_hash IS NULL OR s.pushed_hash <> p.hash",
            params![kind, full_resync, keys_json(record_keys)],
            |r| {
                Ok(PendingRecord {
                    record_key: r.get(0)?,
                    payload: r.get(1)?,
                    hash: r.get(2)?,
                    intercom_id: r.get(3)?,
                    pushed_payload: r.get(4)?,
                })
            },
        )
    }

    /// The next page of every record of `kind` (pending or not), in record_key order after
    /// `after`, with its Intercom id when resolved.
    pub fn record_page(
        &self,
        kind: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<RecordRow>, StoreError> {
        self.rows_with(
            "SELECT p.record_key, s.intercom_id, p.payload
             FROM payloads p LEFT JOIN sync_state s ON s.kind = p.kind AND s.record_key = p.record_key
             WHERE p.kind = ?1 AND p.record_key > ?2 ORDER BY p.record_key LIMIT ?3",
            params![kind, after, limit as i64],
            |r| {
                Ok(RecordRow {
                    record_key: r.get(0)?,
                    intercom_id: r.get(1)?,
                    payload: r.get(2)?,
                })
            },
        )
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
        let found_json = serde_json::Value::from(
            found
                .iter()
                .map(|(key, id)| serde_json::json!([key, id]))
                .collect::<Vec<_>>(),
        )
        .to_string();
        let changed: Vec<(String, String)> = self.rows_with(
            "SELECT f.value ->> 0, f.value ->> 1 FROM json_each(?2) f
             CROSS JOIN payloads p ON p.kind = ?1 AND p.record_key = f.value ->> 0
             LEFT JOIN sync_state s ON s.kind = p.kind AND s.record_key = p.record_key
             WHERE s.intercom_id IS NOT f.value ->> 1",
            params![kind, found_json],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if changed.is_empty() {
            return Ok(0);
        }
        let path = self.path.clone();
        // `&self`: the push holds the store shared; nothing else runs on this connection meanwhile.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| sqlite_err(&path, e))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO sync_state (kind, record_key, intercom_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, record_key) DO UPDATE SET intercom_id = excluded.intercom_id",
                )
                .map_err(|e| sqlite_err(&path, e))?;
            for (record_key, intercom_id) in &changed {
                upsert
                    .execute(params![kind, record_key, intercom_id])
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
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| sqlite_err(&path, e))?;
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
            let mut forget = tx
                .prepare_cached(
                    "UPDATE sync_state SET pushed_hash = NULL WHERE kind = ?1 AND record_key = ?2",
                )
                .map_err(|e| sqlite_err(&path, e))?;
            for (kind, record_key) in resend {
                forget
                    .execute(params![kind, record_key])
                    .map_err(|e| sqlite_err(&path, e))?;
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
                "SELECT run_id, command, started_at, finished_at, exit_code, report FROM runs
                 WHERE json_valid(report) AND json_type(report, '$.reconcile') = 'object'
                 ORDER BY run_id DESC LIMIT 1",
                [],
                |r| {
                    Ok(RunRow {
                        run_id: r.get(0)?,
                        command: r.get(1)?,
                        started_at: r.get(2)?,
                        finished_at: r.get(3)?,
                        exit_code: r.get(4)?,
                        report: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
