//! Sync state: what Intercom accepted per record, the runs table and the run lock.
//! A record's pushed hash is written only through [`SyncWriter::record`] with an
//! [`RecordOutcome::Updated`], which the loader calls after a 2xx answer.

use rusqlite::params;

use super::{sqlite_err, Store, StoreError};

/// A record the push has to send.
#[derive(Clone, Debug)]
pub struct PendingRecord {
    pub record_key: String,
    pub payload: String,
    pub hash: Vec<u8>,
    pub intercom_id: Option<String>,
    /// What Intercom last accepted (for keys to clear).
    pub pushed_payload: Option<String>,
}

/// How one record's push ended.
#[derive(Clone, Debug)]
pub enum RecordOutcome {
    /// Intercom answered 2xx to the PUT of `payload` (whose hash is `hash`).
    Updated {
        intercom_id: String,
        hash: Vec<u8>,
        payload: String,
    },
    /// No such company/contact in Intercom: looked up again on the next run.
    NotFound,
    /// Several contacts match the user's email: not guessed.
    Ambiguous(String),
    /// A terminal error or retries exhausted.
    Failed(String),
}

/// One record's outcome, as sent to the writer.
#[derive(Clone, Debug)]
pub struct SyncRecord {
    pub kind: &'static str,
    pub record_key: String,
    pub outcome: RecordOutcome,
}

impl Store {
    /// Number of records of `kind` to push (changed, or all with `full_resync`) and how many
    /// of those have no known Intercom id.
    pub fn pending_counts(&self, kind: &str, full_resync: bool) -> Result<(u64, u64), StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(s.intercom_id IS NULL), 0)
                 FROM payloads p LEFT JOIN sync_state s ON s.kind = p.kind AND s.record_key = p.record_key
                 WHERE p.kind = ?1 AND (?2 OR s.pushed_hash IS NULL OR s.pushed_hash <> p.hash)",
                params![kind, full_resync],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.err(e))
    }

    /// The next page of records to push, in record_key order after `after`.
    pub fn pending_page(
        &self,
        kind: &str,
        full_resync: bool,
        after: &str,
        limit: usize,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        self.rows_with(
            "SELECT p.record_key, p.payload, p.hash, s.intercom_id, s.pushed_payload
             FROM payloads p LEFT JOIN sync_state s ON s.kind = p.kind AND s.record_key = p.record_key
             WHERE p.kind = ?1 AND p.record_key > ?3 AND (?2 OR s.pushed_hash IS NULL OR s.pushed_hash <> p.hash)
             ORDER BY p.record_key LIMIT ?4",
            params![kind, full_resync, after, limit as i64],
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

    /// Remembers the attributes a push is about to send as ours.
    pub fn remember_attributes(&self, attributes: &[super::Attribute]) -> Result<(), StoreError> {
        for a in attributes {
            self.conn
                .execute(
                    "INSERT OR IGNORE INTO known_attributes (model, name, data_type, first_seen) VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    params![a.model, a.name, a.data_type],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// (model, name) of every attribute this tool ever created or sent.
    pub fn known_attributes(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(
            "SELECT model, name FROM known_attributes ORDER BY model, name",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// (kind, attribute name, records) for every attribute Intercom holds a value of ours for.
    pub fn held_value_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.rows(
            "SELECT s.kind, j.key, COUNT(*) FROM sync_state s, json_each(s.pushed_payload, '$.custom_attributes') j
             WHERE s.pushed_payload IS NOT NULL GROUP BY s.kind, j.key ORDER BY s.kind, j.key",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// The last `limit` runs: (run_id, command, started_at, finished_at, exit_code, report).
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        self.rows_with(
            "SELECT run_id, command, started_at, finished_at, exit_code, report FROM runs ORDER BY run_id DESC LIMIT ?1",
            [limit as i64],
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
    }

    /// Records whose last outcome is `status` (not_found, failed, ambiguous) with at least
    /// `min_failures` consecutive failures: (kind, record_key, failures, last_error).
    pub fn records_with_status(
        &self,
        status: &str,
        min_failures: i64,
        limit: usize,
    ) -> Result<(u64, Vec<(String, String, i64, Option<String>)>), StoreError> {
        let total: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sync_state WHERE status = ?1 AND failures >= ?2",
                params![status, min_failures],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let rows = self.rows_with(
            "SELECT kind, record_key, failures, last_error FROM sync_state WHERE status = ?1 AND failures >= ?2 ORDER BY kind, record_key LIMIT ?3",
            params![status, min_failures, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        Ok((total as u64, rows))
    }

    /// Starts a `runs` row; returns its id.
    pub fn start_run(&self, command: &str) -> Result<i64, StoreError> {
        self.conn
            .execute("INSERT INTO runs (command, started_at) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", [command])
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(
        &self,
        run_id: i64,
        exit_code: u8,
        report_json: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), exit_code = ?2, report = ?3 WHERE run_id = ?1",
                params![run_id, exit_code, report_json],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// A writer for outcomes, on its own connection (for the writer thread).
    pub fn sync_writer(&self) -> Result<SyncWriter, StoreError> {
        Ok(SyncWriter {
            store: self.reopen()?,
        })
    }
}

/// A row of the `runs` table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub run_id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    #[serde(skip)]
    pub report: Option<String>,
}

/// Records outcomes; each [`SyncWriter::record`] call is one transaction.
pub struct SyncWriter {
    store: Store,
}

impl SyncWriter {
    /// Writes a batch of outcomes in one transaction. `Updated` sets the pushed hash and
    /// payload; the other outcomes never touch them.
    pub fn record(&mut self, batch: &[SyncRecord]) -> Result<(), StoreError> {
        let path = self.store.path.clone();
        let tx = self
            .store
            .conn
            .transaction()
            .map_err(|e| sqlite_err(&path, e))?;
        for record in batch {
            let key = (record.kind, record.record_key.as_str());
            let result = match &record.outcome {
                RecordOutcome::Updated { intercom_id, hash, payload } => tx.execute(
                    "INSERT INTO sync_state (kind, record_key, intercom_id, pushed_hash, pushed_payload, pushed_at, status, last_error, failures)
                     VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'updated', NULL, 0)
                     ON CONFLICT (kind, record_key) DO UPDATE SET intercom_id = excluded.intercom_id, pushed_hash = excluded.pushed_hash,
                       pushed_payload = excluded.pushed_payload, pushed_at = excluded.pushed_at, status = 'updated', last_error = NULL, failures = 0",
                    params![key.0, key.1, intercom_id, hash, payload],
                ),
                RecordOutcome::NotFound => tx.execute(
                    "INSERT INTO sync_state (kind, record_key, status) VALUES (?1, ?2, 'not_found')
                     ON CONFLICT (kind, record_key) DO UPDATE SET intercom_id = NULL, status = 'not_found', last_error = NULL",
                    params![key.0, key.1],
                ),
                RecordOutcome::Ambiguous(reason) | RecordOutcome::Failed(reason) => {
                    let status = if matches!(record.outcome, RecordOutcome::Ambiguous(_)) { "ambiguous" } else { "failed" };
                    tx.execute(
                        "INSERT INTO sync_state (kind, record_key, status, last_error, failures) VALUES (?1, ?2, ?3, ?4, 1)
                         ON CONFLICT (kind, record_key) DO UPDATE SET status = excluded.status, last_error = excluded.last_error, failures = failures + 1",
                        params![key.0, key.1, status, reason],
                    )
                }
            };
            result.map_err(|e| sqlite_err(&path, e))?;
        }
        tx.commit().map_err(|e| sqlite_err(&path, e))
    }

    /// Remembers Intercom ids found by a lookup, before any write.
    pub fn remember_ids(&mut self, kind: &str, ids: &[(String, String)]) -> Result<(), StoreError> {
        let path = self.store.path.clone();
        let tx = self
            .store
            .conn
            .transaction()
            .map_err(|e| sqlite_err(&path, e))?;
        for (record_key, intercom_id) in ids {
            tx.execute(
                "INSERT INTO sync_state (kind, record_key, intercom_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, record_key) DO UPDATE SET intercom_id = excluded.intercom_id",
                params![kind, record_key, intercom_id],
            )
            .map_err(|e| sqlite_err(&path, e))?;
        }
        tx.commit().map_err(|e| sqlite_err(&path, e))
    }
}
