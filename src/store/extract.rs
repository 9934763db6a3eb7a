//! Extract tables: written by `load` in one transaction, read in account-key chunks by
//! `transform`.

use std::path::PathBuf;

use rusqlite::{params, Connection, Statement, Transaction};

use super::batch::{bind_all, BatchInsert, BindRow};
use super::{sqlite_err, Journal, Store, StoreError};

const EXTRACT_TABLES: [&str; 7] = [
    "accounts",
    "account_children",
    "account_fields",
    "users",
    "elements",
    "success_metrics",
    "labels",
];

/// Writes a new extract inside one transaction. Dropping it without [`commit`](Self::commit)
/// leaves the database as it was. Keys are given by the caller (dense, from 1); uniqueness is
/// the caller's to check.
pub struct ExtractWriter<'c> {
    conn: &'c Connection,
    tx: Transaction<'c>,
    journal: Journal,
    path: PathBuf,
    accounts: BatchInsert<AccountInsert>,
    users: BatchInsert<UserInsert>,
    children: BatchInsert<ChildrenInsert>,
}

/// One write of a load (for the thread that holds the transaction).
pub enum ExtractRow {
    Account(AccountInsert),
    User(UserInsert),
    /// (account key, encoded children)
    Children(u32, Vec<u8>),
    /// (field key, name, kind)
    Field(u32, String, &'static str),
    /// (element key, source id, name)
    Element(u32, Option<String>, String),
    /// (metric key, source id, name, kind)
    Metric(u32, Option<String>, String, &'static str),
    /// (label key, kind, name)
    Label(u32, &'static str, String),
    Meta(&'static str, String),
}

/// An account row as `load` writes it.
pub struct AccountInsert {
    pub key: u32,
    pub external_id: String,
    pub vitally_id: Option<String>,
    pub owner_ref: Option<String>,
    /// Encoded [`super::codec::Fields`].
    pub fields: Vec<u8>,
}

impl BindRow for AccountInsert {
    const COLUMNS: usize = 5;
    fn bind(&self, stmt: &mut Statement<'_>, first: usize) -> rusqlite::Result<()> {
        bind_all(
            stmt,
            first,
            &[
                &self.key,
                &self.external_id,
                &self.vitally_id,
                &self.owner_ref,
                &self.fields,
            ],
        )
    }
}

pub struct UserInsert {
    pub key: u32,
    pub vitally_id: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
}

impl BindRow for UserInsert {
    const COLUMNS: usize = 4;
    fn bind(&self, stmt: &mut Statement<'_>, first: usize) -> rusqlite::Result<()> {
        bind_all(
            stmt,
            first,
            &[&self.key, &self.vitally_id, &self.external_id, &self.email],
        )
    }
}

struct ChildrenInsert {
    account: u32,
    children: Vec<u8>,
}

impl BindRow for ChildrenInsert {
    const COLUMNS: usize = 2;
    fn bind(&self, stmt: &mut Statement<'_>, first: usize) -> rusqlite::Result<()> {
        bind_all(stmt, first, &[&self.account, &self.children])
    }
}

impl<'c> ExtractWriter<'c> {
    pub(super) fn begin(
        conn: &'c Connection,
        tx: Transaction<'c>,
        path: PathBuf,
        journal: Journal,
    ) -> Result<Self, StoreError> {
        for table in EXTRACT_TABLES {
            tx.execute(&format!("DELETE FROM {table}"), [])
                .map_err(|e| sqlite_err(&path, e))?;
        }
        Ok(ExtractWriter {
            conn,
            tx,
            journal,
            path,
            accounts: BatchInsert::new(
                "accounts (account_key, external_id, vitally_id, owner_ref, fields)",
            ),
            users: BatchInsert::new("users (user_key, vitally_id, external_id, email)"),
            children: BatchInsert::new("account_children (account_key, children)"),
        })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite_err(&self.path, e)
    }

    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.execute(params).map(drop).map_err(|e| self.err(e))
    }

    pub fn insert_account(&mut self, account: AccountInsert) -> Result<(), StoreError> {
        self.accounts
            .push(&self.tx, account)
            .map_err(|e| sqlite_err(&self.path, e))
    }

    /// An account's packed child rows (encoded [`super::codec::Children`]).
    pub fn insert_children(&mut self, account: u32, children: Vec<u8>) -> Result<(), StoreError> {
        self.children
            .push(&self.tx, ChildrenInsert { account, children })
            .map_err(|e| sqlite_err(&self.path, e))
    }

    pub fn insert_user(&mut self, user: UserInsert) -> Result<(), StoreError> {
        self.users
            .push(&self.tx, user)
            .map_err(|e| sqlite_err(&self.path, e))
    }

    /// Applies one write of a load.
    pub fn write(&mut self, row: ExtractRow) -> Result<(), StoreError> {
        match row {
            ExtractRow::Account(account) => self.insert_account(account),
            ExtractRow::User(user) => self.insert_user(user),
            ExtractRow::Children(account, blob) => self.insert_children(account, blob),
            ExtractRow::Field(key, name, kind) => self.insert_field(key, &name, kind),
            ExtractRow::Element(key, id, name) => self.insert_element(key, id.as_deref(), &name),
            ExtractRow::Metric(key, id, name, kind) => {
                self.insert_metric(key, id.as_deref(), &name, kind)
            }
            ExtractRow::Label(key, kind, name) => self.insert_label(key, kind, &name),
            ExtractRow::Meta(key, value) => self.set_meta(key, &value),
        }
    }

    pub fn insert_field(&self, key: u32, name: &str, kind: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO account_fields (field_key, name, kind) VALUES (?1, ?2, ?3)",
            params![key, name, kind],
        )
    }

    pub fn insert_element(
        &self,
        key: u32,
        source_id: Option<&str>,
        name: &str,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO elements (element_key, source_id, name) VALUES (?1, ?2, ?3)",
            params![key, source_id, name],
        )
    }

    pub fn insert_metric(
        &self,
        key: u32,
        source_id: Option<&str>,
        name: &str,
        kind: &str,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO success_metrics (metric_key, source_id, name, kind) VALUES (?1, ?2, ?3, ?4)",
            params![key, source_id, name, kind],
        )
    }

    pub fn insert_label(&self, key: u32, kind: &str, name: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO labels (label_key, kind, name) VALUES (?1, ?2, ?3)",
            params![key, kind, name],
        )
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )
    }

    /// Makes the new extract visible; bumps `extract_version`. The payloads computed from
    /// the previous extract become stale (`transform` recomputes them).
    pub fn commit(mut self) -> Result<u64, StoreError> {
        let path = self.path.clone();
        self.accounts
            .flush(&self.tx)
            .and_then(|()| self.users.flush(&self.tx))
            .and_then(|()| self.children.flush(&self.tx))
            .map_err(|e| sqlite_err(&path, e))?;
        let version: u64 = self
            .tx
            .query_row("SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'extract_version'), 0) + 1", [], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))? as u64;
        self.set_meta("extract_version", &version.to_string())?;
        self.tx.commit().map_err(|e| sqlite_err(&self.path, e))?;
        if self.journal == Journal::Rollback {
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .map_err(|e| sqlite_err(&self.path, e))?;
        }
        Ok(version)
    }
}

/// A user of the extract.
#[derive(Clone, Debug, Default)]
pub struct UserRecord {
    pub key: u32,
    pub vitally_id: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
}

impl UserRecord {
    /// The user's key in payloads and sync state: `e:<external_id>`, or `m:<email>` for a
    /// user known by email only.
    pub fn record_key(&self) -> String {
        record_key(self.external_id.as_deref(), self.email.as_deref())
    }
}

/// A user's record key from its external_id and email (see [`UserRecord::record_key`]).
pub fn record_key(external_id: Option<&str>, email: Option<&str>) -> String {
    // Concatenated, not `format!`ed: this runs for each of millions of users.
    match (external_id, email) {
        (Some(id), _) => ["e:", id].concat(),
        (None, email) => ["m:", email.unwrap_or_default()].concat(),
    }
}

/// An account as `transform` reads it: its row and its packed children.
#[derive(Clone, Debug, Default)]
pub struct AccountRecord {
    pub key: u32,
    pub external_id: String,
    pub owner_ref: Option<String>,
    /// Encoded [`super::codec::Fields`].
    pub fields: Vec<u8>,
    /// Encoded [`super::codec::Children`]; empty when the account has none.
    pub children: Vec<u8>,
}

/// A named column of the extract with its inferred kind (`account_fields`, `success_metrics`).
#[derive(Clone, Debug)]
pub struct Catalogued {
    pub key: u32,
    pub name: String,
    pub kind: String,
}

impl Store {
    /// Every account field, in first-seen order.
    pub fn account_fields(&self) -> Result<Vec<Catalogued>, StoreError> {
        self.rows(
            "SELECT field_key, name, kind FROM account_fields ORDER BY field_key",
            |r| {
                Ok(Catalogued {
                    key: r.get(0)?,
                    name: r.get(1)?,
                    kind: r.get(2)?,
                })
            },
        )
    }

    /// (element_key, name) of every element.
    pub fn elements(&self) -> Result<Vec<(u32, String)>, StoreError> {
        self.rows(
            "SELECT element_key, name FROM elements ORDER BY element_key",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Every Success Metric with its kind.
    pub fn metrics(&self) -> Result<Vec<Catalogued>, StoreError> {
        self.rows(
            "SELECT metric_key, name, kind FROM success_metrics ORDER BY metric_key",
            |r| {
                Ok(Catalogued {
                    key: r.get(0)?,
                    name: r.get(1)?,
                    kind: r.get(2)?,
                })
            },
        )
    }

    /// (label_key, kind, name) of every indicator and segment name.
    pub fn labels(&self) -> Result<Vec<(u32, String, String)>, StoreError> {
        self.rows(
            "SELECT label_key, kind, name FROM labels ORDER BY label_key",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Every distinct accountOwnerId. (Made distinct here, not by `SELECT DISTINCT`: SQLite
    /// would sort them in a temporary b-tree, five times the cost of the scan at 1M accounts.)
    pub fn owner_refs(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let owners = self.rows(
            "SELECT owner_ref FROM accounts WHERE owner_ref IS NOT NULL",
            |r| r.get(0),
        )?;
        Ok(owners.into_iter().collect())
    }

    /// Every account's external_id, in the order read.
    pub fn account_external_ids(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT external_id FROM accounts ORDER BY account_key",
            |r| r.get(0),
        )
    }

    /// Every user, in the order read.
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.user_chunk(0, u32::MAX)
    }

    /// The largest account and user keys (0 when there are none).
    pub fn max_keys(&self) -> Result<(u32, u32), StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT COALESCE(MAX(account_key), 0) FROM accounts), (SELECT COALESCE(MAX(user_key), 0) FROM users)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// Accounts with `lo <= account_key < hi`, with their children, in key order.
    pub fn account_chunk(&self, lo: u32, hi: u32) -> Result<Vec<AccountRecord>, StoreError> {
        self.rows_with(
            "SELECT a.account_key, a.external_id, a.owner_ref, a.fields, c.children
             FROM accounts a LEFT JOIN account_children c ON c.account_key = a.account_key
             WHERE a.account_key >= ?1 AND a.account_key < ?2 ORDER BY a.account_key",
            params![lo, hi],
            |r| {
                Ok(AccountRecord {
                    key: r.get(0)?,
                    external_id: r.get(1)?,
                    owner_ref: r.get(2)?,
                    fields: r.get(3)?,
                    children: r.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default(),
                })
            },
        )
    }

    /// Users with `lo <= user_key < hi`, in key order.
    pub fn user_chunk(&self, lo: u32, hi: u32) -> Result<Vec<UserRecord>, StoreError> {
        self.rows_with(
            "SELECT user_key, vitally_id, external_id, email FROM users WHERE user_key >= ?1 AND user_key < ?2 ORDER BY user_key",
            params![lo, hi],
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

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_mode(conn: &rusqlite::Connection) -> String {
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    }

    fn load_one_account(store: &mut Store, during: impl FnOnce(&ExtractWriter<'_>)) {
        let mut writer = store.extract_writer().unwrap();
        during(&writer);
        writer
            .insert_account(AccountInsert {
                key: 1,
                external_id: "a1".into(),
                vitally_id: None,
                owner_ref: None,
                fields: Vec::new(),
            })
            .unwrap();
        writer.commit().unwrap();
    }

    #[test]
    fn a_load_into_a_new_database_is_written_once_then_the_database_is_wal_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut store = Store::open(&db).unwrap();
        load_one_account(&mut store, |writer| {
            assert_eq!(
                journal_mode(writer.conn),
                "delete",
                "no WAL for a new database"
            );
        });
        assert_eq!(journal_mode(&store.conn), "wal");
        assert_eq!(store.loaded_counts().unwrap().0, 1);
        drop(store);

        // The next load replaces rows: under the WAL, like every other write.
        let mut store = Store::open(&db).unwrap();
        load_one_account(&mut store, |writer| {
            assert_eq!(journal_mode(writer.conn), "wal");
        });
        assert!(!dir.path().join("s.db-journal").exists());
    }

    #[test]
    fn a_new_database_open_elsewhere_keeps_the_wal_for_its_load() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut store = Store::open(&db).unwrap();
        let reader = Store::open(&db).unwrap();
        reader.meta("extract_version").unwrap();
        load_one_account(&mut store, |writer| {
            assert_eq!(
                journal_mode(writer.conn),
                "wal",
                "another connection is open"
            );
        });
        assert_eq!(reader.loaded_counts().unwrap().0, 1);
    }
}
