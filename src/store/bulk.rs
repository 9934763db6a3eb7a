//! Bulk update tasks in flight (`bulk_tasks`, `bulk_items`): what Intercom accepted with a
//! 202 and has not been seen to finish. A task's records get their pushed hash only in the
//! transaction that deletes the task, after Intercom reported it `completed`.

use rusqlite::params;

use super::records::record_in;
use super::{sqlite_err, RecordOutcome, Store, StoreError, SyncRecord, SyncWriter};

/// One record of a bulk task, as its item was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem {
    pub record_id: i64,
    pub record_key: String,
    pub intercom_id: String,
    pub hash: Vec<u8>,
    /// The encoded payload the item was made of.
    pub payload: Vec<u8>,
}

/// A task Intercom accepted, with its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkTaskRow {
    pub task_id: String,
    pub kind: &'static str,
    pub job_id: String,
    /// Unix seconds of the 202.
    pub sent_at: i64,
    pub items: Vec<BulkItem>,
}

impl SyncWriter {
    /// Keeps a task Intercom accepted (before anything else happens to it).
    pub fn bulk_sent(&mut self, task: &BulkTaskRow) -> Result<(), StoreError> {
        let path = self.store.path.clone();
        let err = |e| sqlite_err(&path, e);
        let tx = self.store.write_transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO bulk_tasks (task_id, kind, job_id, sent_at) VALUES (?1, ?2, ?3, ?4)",
            params![task.task_id, task.kind, task.job_id, task.sent_at],
        )
        .map_err(err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO bulk_items (task_id, record_id, record_key, intercom_id, hash, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for item in &task.items {
                insert
                    .execute(params![
                        task.task_id,
                        item.record_id,
                        item.record_key,
                        item.intercom_id,
                        item.hash,
                        item.payload
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Forgets a finished task; with `completed`, in the same transaction, records each of its
    /// records as updated with what its item carried. (A task that is not `completed` leaves its
    /// records as they were: they are sent again.)
    pub fn bulk_finished(&mut self, task: &BulkTaskRow, completed: bool) -> Result<(), StoreError> {
        let path = self.store.path.clone();
        let err = |e| sqlite_err(&path, e);
        let tx = self.store.write_transaction()?;
        if completed {
            let outcomes: Vec<SyncRecord> = task
                .items
                .iter()
                .map(|item| SyncRecord {
                    kind: task.kind,
                    record_id: item.record_id,
                    record_key: item.record_key.clone(),
                    outcome: RecordOutcome::Updated {
                        intercom_id: item.intercom_id.clone(),
                        hash: item.hash.clone(),
                        stored: item.payload.clone(),
                    },
                })
                .collect();
            record_in(&tx, &path, &outcomes)?;
        }
        tx.execute("DELETE FROM bulk_items WHERE task_id = ?1", [&task.task_id])
            .map_err(err)?;
        tx.execute("DELETE FROM bulk_tasks WHERE task_id = ?1", [&task.task_id])
            .map_err(err)?;
        tx.commit().map_err(err)
    }
}

impl Store {
    /// The tasks of `kind` a run left in flight, oldest first, with their records.
    pub fn bulk_tasks_left(&self, kind: &'static str) -> Result<Vec<BulkTaskRow>, StoreError> {
        let mut tasks: Vec<BulkTaskRow> = self.rows_with(
            "SELECT task_id, job_id, sent_at FROM bulk_tasks WHERE kind = ?1 ORDER BY sent_at, task_id",
            [kind],
            |r| {
                Ok(BulkTaskRow {
                    task_id: r.get(0)?,
                    kind,
                    job_id: r.get(1)?,
                    sent_at: r.get(2)?,
                    items: Vec::new(),
                })
            },
        )?;
        for task in &mut tasks {
            task.items = self.rows_with(
                "SELECT record_id, record_key, intercom_id, hash, payload FROM bulk_items WHERE task_id = ?1 ORDER BY record_id",
                [&task.task_id],
                |r| {
                    Ok(BulkItem {
                        record_id: r.get(0)?,
                        record_key: r.get(1)?,
                        intercom_id: r.get(2)?,
                        hash: r.get(3)?,
                        payload: r.get(4)?,
                    })
                },
            )?;
        }
        Ok(tasks)
    }
}
