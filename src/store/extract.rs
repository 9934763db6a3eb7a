//! Extract tables: written by `load` in one transaction, read in account-key chunks by
//! `transform`.

use std::path::PathBuf;

use rusqlite::{params, Transaction};

use super::{is_conflict, sqlite_err, Store, StoreError};

const EXTRACT_TABLES: [&str; 8] = [
    "accounts",
    "account_fields",
    "users",
    "elements",
    "element_counts",
    "success_metrics",
    "metric_values",
    "account_labels",
];

/// Result of an insert into a table with a unique key.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
}

/// Writes a new extract inside one transaction. Dropping it without [`commit`](Self::commit)
/// leaves the database as it was.
pub struct ExtractWriter<'c> {
    tx: Transaction<'c>,
    path: PathBuf,
}

impl<'c> ExtractWriter<'c> {
    pub(super) fn begin(tx: Transaction<'c>, path: PathBuf) -> Result<Self, StoreError> {
        for table in EXTRACT_TABLES {
            tx.execute(&format!("DELETE FROM {table}"), [])
                .map_err(|e| sqlite_err(&path, e))?;
        }
        Ok(ExtractWriter { tx, path })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite_err(&self.path, e)
    }

    fn insert(&self, sql: &str, params: impl rusqlite::Params) -> Result<Inserted, StoreError> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(|e| self.err(e))?;
        match stmt.execute(params) {
            Ok(_) => Ok(Inserted::New),
            Err(e) if is_conflict(&e) => Ok(Inserted::Duplicate),
            Err(e) => Err(self.err(e)),
        }
    }

    pub fn insert_element(
        &self,
        key: i64,
        source_id: Option<&str>,
        name: &str,
    ) -> Result<Inserted, StoreError> {
        self.insert(
            "INSERT INTO elements (element_key, source_id, name) VALUES (?1, ?2, ?3)",
            params![key, source_id, name],
        )
    }

    pub fn insert_metric(
        &self,
        key: i64,
        source_id: Option<&str>,
        name: &str,
    ) -> Result<Inserted, StoreError> {
        self.insert(
            "INSERT INTO success_metrics (metric_key, source_id, name) VALUES (?1, ?2, ?3)",
            params![key, source_id, name],
        )
    }

    pub fn set_metric_kind(&self, key: i64, kind: &str) -> Result<(), StoreError> {
        self.insert(
            "UPDATE success_metrics SET kind = ?2 WHERE metric_key = ?1",
            params![key, kind],
        )
        .map(drop)
    }

    pub fn insert_user(
        &self,
        key: i64,
        user: &UserRecord,
        line: u64,
    ) -> Result<Inserted, StoreError> {
        self.insert(
            "INSERT INTO users (user_key, vitally_id, external_id, email, record_key, source_line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![key, user.vitally_id, user.external_id, user.email, user.record_key(), line as i64],
        )
    }

    /// Inserts an account; `Duplicate` when its external_id or id is already taken.
    pub fn insert_account(
        &self,
        key: i64,
        account: &AccountRecord,
        vitally_id: Option<&str>,
        line: u64,
    ) -> Result<Inserted, StoreError> {
        self.insert(
            "INSERT INTO accounts (account_key, external_id, vitally_id, owner_ref, source_line, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![key, account.external_id, vitally_id, account.owner_ref, line as i64, account.fields],
        )
    }

    pub fn insert_field(&self, name: &str, kind: &str, position: usize) -> Result<(), StoreError> {
        self.insert(
            "INSERT INTO account_fields (name, kind, position) VALUES (?1, ?2, ?3)",
            params![name, kind, position as i64],
        )
        .map(drop)
    }

    pub fn insert_count(
        &self,
        account: i64,
        element: i64,
        count: i64,
    ) -> Result<Inserted, StoreError> {
        self.insert(
            "INSERT INTO element_counts (account_key, element_key, count) VALUES (?1, ?2, ?3)",
            params![account, element, count],
        )
    }

    pub fn insert_metric_value(
        &self,
        account: i64,
        metric: i64,
        value_json: &str,
    ) -> Result<Inserted, StoreError> {
        self.insert(
            "INSERT INTO metric_values (account_key, metric_key, value) VALUES (?1, ?2, ?3)",
            params![account, metric, value_json],
        )
    }

    /// Inserts an indicator or segment; exact duplicates collapse.
    pub fn insert_label(&self, account: i64, kind: &str, name: &str) -> Result<(), StoreError> {
        self.insert(
            "INSERT OR IGNORE INTO account_labels (account_key, kind, name) VALUES (?1, ?2, ?3)",
            params![account, kind, name],
        )
        .map(drop)
    }

    /// The external_id of the account already holding `external_id` or `vitally_id`, for messages.
    pub fn account_line(
        &self,
        external_id: &str,
        vitally_id: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        use rusqlite::OptionalExtension;
        self.tx
            .query_row(
                "SELECT source_line FROM accounts WHERE external_id = ?1 OR (?2 IS NOT NULL AND vitally_id = ?2)",
                params![external_id, vitally_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.insert(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )
        .map(drop)
    }

    /// Makes the new extract visible; bumps `extract_version`.
    pub fn commit(self) -> Result<u64, StoreError> {
        let version: u64 = self
            .tx
            .query_row("SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'extract_version'), 0) + 1", [], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))? as u64;
        self.set_meta("extract_version", &version.to_string())?;
        self.tx.commit().map_err(|e| sqlite_err(&self.path, e))?;
        Ok(version)
    }
}

/// A user of the extract.
#[derive(Clone, Debug, Default)]
pub struct UserRecord {
    pub key: i64,
    pub vitally_id: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
}

impl UserRecord {
    /// The user's key in payloads and sync state: `e:<external_id>`, or `m:<email>` for a
    /// user known by email only.
    pub fn record_key(&self) -> String {
        match (&self.external_id, &self.email) {
            (Some(id), _) => format!("e:{id}"),
            (None, email) => format!("m:{}", email.as_deref().unwrap_or_default()),
        }
    }
}

/// An account as `transform` reads it.
#[derive(Clone, Debug, Default)]
pub struct AccountRecord {
    pub key: i64,
    pub external_id: String,
    pub owner_ref: Option<String>,
    /// JSON object: field → raw value.
    pub fields: String,
}

/// Accounts with keys in one range and all their child rows.
#[derive(Debug, Default)]
pub struct AccountChunk {
    pub accounts: Vec<AccountRecord>,
    /// (account_key, element_key, count)
    pub counts: Vec<(i64, i64, i64)>,
    /// (account_key, metric_key, value JSON)
    pub metric_values: Vec<(i64, i64, String)>,
    /// (account_key, kind, name), sorted by account then kind.
    pub labels: Vec<(i64, String, String)>,
}

impl Store {
    /// (name, kind) of every account field, in first-seen order.
    pub fn account_fields(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(
            "SELECT name, kind FROM account_fields ORDER BY position",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// (element_key, name) of every element.
    pub fn elements(&self) -> Result<Vec<(i64, String)>, StoreError> {
        self.rows(
            "SELECT element_key, name FROM elements ORDER BY element_key",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// (metric_key, name, kind) of every Success Metric.
    pub fn metrics(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        self.rows(
            "SELECT metric_key, name, kind FROM success_metrics ORDER BY metric_key",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Every account's external_id, in file order.
    pub fn account_external_ids(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT external_id FROM accounts ORDER BY account_key",
            |r| r.get(0),
        )
    }

    /// Every distinct accountOwnerId.
    pub fn owner_refs(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT DISTINCT owner_ref FROM accounts WHERE owner_ref IS NOT NULL",
            |r| r.get(0),
        )
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.rows(
            "SELECT user_key, vitally_id, external_id, email FROM users ORDER BY user_key",
            |r| {
                Ok(UserRecord {
                    key: r.get(0)?,
                    vitally_id: r.get(1)?,
                    external_id: r.get(2)?,
                    email: r.get(3)?,
                })
            },
        )
    }

    /// The largest account key (0 when there are none).
    pub fn max_account_key(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(account_key), 0) FROM accounts",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Accounts with `lo <= account_key < hi` and their child rows.
    pub fn account_chunk(&self, lo: i64, hi: i64) -> Result<AccountChunk, StoreError> {
        let range = params![lo, hi];
        Ok(AccountChunk {
            accounts: self.rows_with(
                "SELECT account_key, external_id, owner_ref, fields FROM accounts WHERE account_key >= ?1 AND account_key < ?2 ORDER BY account_key",
                range,
                |r| Ok(AccountRecord { key: r.get(0)?, external_id: r.get(1)?, owner_ref: r.get(2)?, fields: r.get(3)? }),
            )?,
            counts: self.rows_with(
                "SELECT account_key, element_key, count FROM element_counts WHERE account_key >= ?1 AND account_key < ?2 ORDER BY account_key",
                range,
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?,
            metric_values: self.rows_with(
                "SELECT account_key, metric_key, value FROM metric_values WHERE account_key >= ?1 AND account_key < ?2 ORDER BY account_key",
                range,
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?,
            labels: self.rows_with(
                "SELECT account_key, kind, name FROM account_labels WHERE account_key >= ?1 AND account_key < ?2 ORDER BY account_key, kind",
                range,
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?,
        })
    }

    pub(super) fn rows<T>(
        &self,
        sql: &str,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        self.rows_with(sql, [], map)
    }

    pub(super) fn rows_with<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params, map).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<T>, _>>().map_err(|e| self.err(e))
    }
}
