//! Queries for running the tool unattended: the size of the loaded export, and keeping the
//! `runs` history bounded.

use super::{Store, StoreError};

/// Default number of `runs` rows kept (`runs_keep`).
pub const DEFAULT_RUNS_KEEP: u64 = 400;

impl Store {
    /// (accounts, users) of the loaded export.
    pub fn loaded_counts(&self) -> Result<(u64, u64), StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM users)",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.err(e))
    }

    /// Deletes all but the `keep` most recent `runs` rows; returns how many were deleted.
    pub fn prune_runs(&self, keep: u64) -> Result<u64, StoreError> {
        self.conn
            .execute(
                "DELETE FROM runs WHERE run_id <= (SELECT run_id FROM runs ORDER BY run_id DESC LIMIT 1 OFFSET ?1)",
                [i64::try_from(keep).unwrap_or(i64::MAX)],
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_database_is_out_of_space_and_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        // A database capped at its current size stands for a full disk: SQLITE_FULL.
        store
            .conn
            .execute_batch("PRAGMA max_page_count = 1; PRAGMA page_count;")
            .ok();
        let error = store
            .conn
            .execute_batch("CREATE TABLE filler (x); INSERT INTO filler VALUES (zeroblob(100000));")
            .map_err(|e| store.err(e))
            .unwrap_err();
        let error = anyhow::Error::new(error);
        assert!(
            error.chain().any(super::super::is_out_of_space),
            "{error:#}"
        );
        let said = crate::cmd::error_text(&error);
        assert_eq!(
            said.matches("database or disk is full").count(),
            1,
            "{said}"
        );
        assert!(said.contains("free space"), "{said}");
    }

    #[test]
    fn prune_runs_keeps_the_most_recent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        for _ in 0..5 {
            store.start_run("push").unwrap();
        }
        assert_eq!(store.prune_runs(2).unwrap(), 3);
        assert_eq!(store.prune_runs(2).unwrap(), 0);
        let kept: Vec<i64> = store
            .recent_runs(10)
            .unwrap()
            .iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(kept, vec![5, 4]);
    }
}
