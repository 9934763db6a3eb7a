//! Multi-row inserts: rows of one shape buffered and written `ROWS` per statement, which
//! spreads SQLite's per-statement cost (cursor, halt, bind) over many rows.

use rusqlite::{Statement, ToSql, Transaction};

/// Rows per INSERT statement (each row binds its columns; SQLite allows 32,766 parameters).
const ROWS: usize = 64;

/// A row that binds itself: its `i`-th column to parameter `first + i`.
pub trait BindRow {
    const COLUMNS: usize;
    fn bind(&self, stmt: &mut Statement<'_>, first: usize) -> rusqlite::Result<()>;
}

/// Buffers rows for `INSERT OR FAIL INTO <target> VALUES (…), (…), …`. (`OR FAIL`: a
/// violated constraint stops the statement without undoing its earlier rows, so SQLite keeps
/// no statement journal; the caller's transaction is rolled back on any error anyway.)
pub struct BatchInsert<T: BindRow> {
    /// `table (columns)`.
    target: &'static str,
    /// The statement for a full batch.
    full: String,
    rows: Vec<T>,
}

impl<T: BindRow> BatchInsert<T> {
    pub fn new(target: &'static str) -> Self {
        BatchInsert {
            target,
            full: sql(target, T::COLUMNS, ROWS),
            rows: Vec::with_capacity(ROWS),
        }
    }

    /// Adds a row; writes the buffered rows once there are `ROWS` of them.
    pub fn push(&mut self, tx: &Transaction<'_>, row: T) -> rusqlite::Result<()> {
        self.rows.push(row);
        if self.rows.len() == ROWS {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Writes the buffered rows.
    pub fn flush(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut stmt = if self.rows.len() == ROWS {
            tx.prepare_cached(&self.full)?
        } else {
            tx.prepare_cached(&sql(self.target, T::COLUMNS, self.rows.len()))?
        };
        for (i, row) in self.rows.iter().enumerate() {
            row.bind(&mut stmt, i * T::COLUMNS + 1)?;
        }
        stmt.raw_execute()?;
        self.rows.clear();
        Ok(())
    }
}

fn sql(target: &str, columns: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; columns].join(", "));
    format!(
        "INSERT OR FAIL INTO {target} VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// Binds `values` to consecutive parameters from `first`.
pub fn bind_all(
    stmt: &mut Statement<'_>,
    first: usize,
    values: &[&dyn ToSql],
) -> rusqlite::Result<()> {
    for (i, value) in values.iter().enumerate() {
        stmt.raw_bind_parameter(first + i, value)?;
    }
    Ok(())
}
