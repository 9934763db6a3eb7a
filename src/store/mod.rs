//! The only module that speaks SQL. Owns the SQLite database described in `schema.sql`.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

mod extract;
mod lock;
mod payloads;
mod reconcile;
mod sync;

pub use extract::{AccountChunk, AccountRecord, ExtractWriter, Inserted, UserRecord};
pub use lock::{lock_path, RunLock};
pub use payloads::{Attribute, PayloadRow, PayloadWriter};
pub use reconcile::{DriftRow, RecordRow};
pub use sync::{PendingRecord, RecordOutcome, RunRow, SyncRecord, SyncWriter};

const SCHEMA: &str = include_str!("../../schema.sql");
pub const SCHEMA_VERSION: &str = "1";

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
    /// A worker thread died; the message says which.
    #[error("internal error: {0}")]
    Worker(&'static str),
}

/// An open state database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies `schema.sql`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.init()?;
        Ok(store)
    }

    fn init(&mut self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -262144;",
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
        tx.execute_batch(SCHEMA).map_err(|e| sqlite_err(&path, e))?;
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
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
    pub fn extract_writer(&mut self) -> Result<ExtractWriter<'_>, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sqlite_err(&path, e))?;
        ExtractWriter::begin(tx, path)
    }

    /// A second connection to the same database, for a reader thread.
    pub fn reopen(&self) -> Result<Store, StoreError> {
        Store::open(&self.path)
    }

    fn tx(&mut self) -> Result<Transaction<'_>, StoreError> {
        let path = self.path.clone();
        self.conn.transaction().map_err(|e| sqlite_err(&path, e))
    }
}

pub(crate) fn sqlite_err(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// Whether an insert failed on a UNIQUE / PRIMARY KEY constraint.
fn is_conflict(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation)
}
