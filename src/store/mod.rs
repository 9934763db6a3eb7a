//! The only module that speaks SQL. Owns the SQLite database described in `schema.sql`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

mod batch;
mod bulk;
pub mod codec;
mod extract;
mod lock;
mod migrate;
mod ops;
mod private;
mod reconcile;
mod records;

pub use bulk::{BulkItem, BulkTaskRow};
pub use extract::{
    record_key, AccountInsert, AccountRecord, Catalogued, ExtractRow, ExtractWriter, UserInsert,
    UserRecord,
};
pub use lock::{lock_path, RunLock};
pub use ops::DEFAULT_RUNS_KEEP;
pub use private::{database_files, PRIVATE_MODE};
pub use reconcile::{DriftRow, RecordRow};
pub use records::{
    key_hash, Attribute, DepartedRecord, PayloadRow, PayloadWriter, PendingRecord, RecordOutcome,
    RunRow, StoredHash, SyncRecord, SyncWriter,
};

const SCHEMA: &str = include_str!("../../schema.sql");
/// 3: `records.status` a small integer, Intercom's ids 12 bytes (was 2: both text).
/// 2: packed extract rows and one `records` table with encoded payloads (was 1: a row per
/// child row, `payloads` + `sync_state` with JSON payloads).
pub const SCHEMA_VERSION: &str = "3";

/// Page size of a database this program creates (SQLite's default is 4096).
const NEW_DATABASE_PAGE_SIZE: u32 = 8192;

/// Page cache of the connection that writes a load or a transform (KiB); others use 64 MiB.
const BULK_CACHE_KIB: u32 = 160 * 1024;

/// Page cache of a load into a database this program created (KiB): under a rollback journal
/// its pages go straight to the file, so a larger cache would only hold them back (and its
/// memory, fresh for every page, costs more than the writes).
const NEW_DATABASE_LOAD_CACHE_KIB: u32 = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database {path} was written by a newer intercom-push (schema {found}, this one knows {SCHEMA_VERSION}): upgrade intercom-push or use another --db")]
    NewerSchema { path: String, found: String },
    #[error("database {path} holds no export yet: run `intercom-push load --input DIR` first")]
    NoExtract { path: String },
    #[error("{0}")]
    Locked(String),
    #[error("database {path}: {message}")]
    Damaged { path: String, message: String },
    /// The database file cannot be created private, or other users can write it (exit 2).
    #[error("{0}")]
    Private(String),
    /// A worker thread died; the message says which.
    #[error("internal error: {0}")]
    Worker(&'static str),
}

/// An open state database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// This open created the database file: a failed load removes it (see `cmd/load.rs`).
    created: bool,
    /// record_key → record_id per kind, built on the first lookup by key (see
    /// `reconcile.rs`); the records of a kind do not change while one command runs.
    key_index:
        std::cell::RefCell<std::collections::HashMap<String, std::sync::Arc<records::KeyIndex>>>,
}

impl Store {
    /// Opens (creating if needed, mode 0600) the database at `path` and applies `schema.sql`.
    /// A database that other users can write is refused.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let created = private::prepare_database_file(path)?;
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            created,
            key_index: Default::default(),
        };
        store.init()?;
        Ok(store)
    }

    fn init(&mut self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        if self.created {
            // Only an empty file takes a page size. 8 KiB pages halve the pages, WAL frames
            // and B-tree steps of the bulk writes of `load` and `transform` (≈5 % faster at
            // 1M accounts, 2 % smaller); a database made with 4 KiB pages keeps them.
            self.conn
                .execute_batch(&format!("PRAGMA page_size = {NEW_DATABASE_PAGE_SIZE};"))
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -65536;",
            )
            .map_err(|e| self.err(e))?;
        if let Some(found) = self.meta("schema_version")? {
            if found.parse::<u32>().unwrap_or(u32::MAX) > SCHEMA_VERSION.parse::<u32>().unwrap_or(0)
            {
                return Err(StoreError::NewerSchema {
                    path: self.path.display().to_string(),
                    found,
                });
            }
        }
        let path = self.path.clone();
        let tx = self.tx()?;
        migrate::migrate(&tx, &path)?;
        tx.execute_batch(SCHEMA).map_err(|e| sqlite_err(&path, e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION],
        )
        .map_err(|e| sqlite_err(&path, e))?;
        tx.commit().map_err(|e| sqlite_err(&path, e))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        sqlite_err(&self.path, source)
    }

    /// A `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let found = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional();
        match found {
            Ok(v) => Ok(v),
            // Before the schema exists there is no meta table: no value.
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
                Ok(None)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![key, value])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Fails with [`StoreError::NoExtract`] when no export was ever loaded.
    pub fn require_extract(&self) -> Result<u64, StoreError> {
        match self.meta("extract_version")? {
            Some(v) => Ok(v.parse().unwrap_or(0)),
            None => Err(StoreError::NoExtract {
                path: self.path.display().to_string(),
            }),
        }
    }

    /// Begins replacing the extract: one transaction that empties the extract tables.
    /// Nothing is visible to others until [`ExtractWriter::commit`]; dropping the writer rolls back.
    ///
    /// Into a database this open created, the load is written once: under a rollback journal,
    /// which holds only the few pages that existed (SQLite does not journal pages appended to
    /// the file), instead of the WAL, whose every frame the checkpoint then copies into the
    /// database a second time. The commit returns the database to WAL. A load into an older
    /// database keeps the WAL: its new rows reuse the pages of the old extract.
    pub fn extract_writer(&mut self) -> Result<ExtractWriter<'_>, StoreError> {
        let journal = if self.created {
            self.rollback_journal()
        } else {
            Journal::Wal
        };
        self.cache_kib(match journal {
            Journal::Rollback => NEW_DATABASE_LOAD_CACHE_KIB,
            Journal::Wal => BULK_CACHE_KIB,
        })?;
        let tx = Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Deferred)
            .map_err(|e| self.err(e))?;
        ExtractWriter::begin(&self.conn, tx, self.path.clone(), journal)
    }

    /// Leaves WAL for a rollback journal when this is the only connection to the database
    /// (SQLite refuses otherwise, and the WAL is kept).
    fn rollback_journal(&self) -> Journal {
        let mode = self
            .conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| {
                r.get::<_, String>(0)
            });
        match mode {
            Ok(mode) if mode.eq_ignore_ascii_case("delete") => Journal::Rollback,
            _ => Journal::Wal,
        }
    }

    /// A larger page cache for a connection that writes a whole export or every payload in one
    /// transaction: fewer pages spilled to the WAL before the commit.
    fn bulk_cache(&self) -> Result<(), StoreError> {
        self.cache_kib(BULK_CACHE_KIB)
    }

    fn cache_kib(&self, kib: u32) -> Result<(), StoreError> {
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{kib};"))
            .map_err(|e| self.err(e))
    }

    /// Checkpoints the WAL on its own connection and thread every quarter second until
    /// dropped, for a writer that commits in steps (PASSIVE: it never waits for the writer,
    /// and copies only committed frames no reader still needs).
    pub fn checkpointer(&self) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(&self.path).map_err(|e| self.err(e))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("checkpointer".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::debug!("background checkpoint: {e}");
                    }
                }
            })
            .map_err(|_| StoreError::Worker("the checkpointer thread could not start"))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// A second connection to the same database, for a reader thread.
    pub fn reopen(&self) -> Result<Store, StoreError> {
        Store::open(&self.path)
    }

    /// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`), for a connection
    /// that writes beside others: a deferred one that read first could not become a writer
    /// after another connection's commit (`SQLITE_BUSY_SNAPSHOT`, which no busy timeout waits out).
    pub(super) fn write_transaction(&mut self) -> Result<Transaction<'_>, StoreError> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| sqlite_err(&path, e))
    }

    /// [`Store::write_transaction`] on a store held shared (nothing else may run on this
    /// connection meanwhile).
    pub(super) fn shared_write_transaction(&self) -> Result<Transaction<'_>, StoreError> {
        Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))
    }

    fn tx(&mut self) -> Result<Transaction<'_>, StoreError> {
        let path = self.path.clone();
        self.conn.transaction().map_err(|e| sqlite_err(&path, e))
    }
}

/// The journal a load writes under (see [`Store::extract_writer`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Journal {
    Wal,
    Rollback,
}

/// See [`Store::checkpointer`]; stops (and waits for its last checkpoint) when dropped.
pub struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn sqlite_err(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// Whether `cause` (one link of an error chain) is SQLite failing a write for want of space
/// (`SQLITE_FULL`), or for a quota or a file-size limit (reported as `SQLITE_IOERR_WRITE`).
pub fn is_out_of_space(cause: &(dyn std::error::Error + 'static)) -> bool {
    matches!(cause.downcast_ref::<rusqlite::Error>(), Some(rusqlite::Error::SqliteFailure(e, _))
        if e.code == rusqlite::ErrorCode::DiskFull || e.extended_code == rusqlite::ffi::SQLITE_IOERR_WRITE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_size(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_database_gets_8k_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        drop(Store::open(&new).unwrap());
        assert_eq!(page_size(&new), i64::from(NEW_DATABASE_PAGE_SIZE));

        let old = dir.path().join("old.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x);")
            .unwrap();
        drop(Store::open(&old).unwrap());
        assert_eq!(page_size(&old), 4096);
    }
}
