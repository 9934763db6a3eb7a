//! `load`: export directory → extract tables, atomically.

use std::path::Path;

use anyhow::Result;

use crate::config::Settings;
use crate::extract::{self, LoadSummary};
use crate::store::Store;

/// Loads the export; on failure a database this call created is removed again, so a
/// failed load leaves the filesystem as it was.
/// The caller holds the run lock.
pub fn load_export(settings: &Settings) -> Result<LoadSummary> {
    let input = settings.require_input()?;
    let existed = settings.db.exists();
    let result = (|| -> Result<LoadSummary> {
        let mut store = Store::open(&settings.db)?;
        Ok(extract::load(input, &settings.tables, &mut store)?)
    })();
    if result.is_err() && !existed {
        remove_database(&settings.db);
    }
    result
}

fn remove_database(db: &Path) {
    for path in crate::store::database_files(db) {
        let _ = std::fs::remove_file(path);
    }
}

/// What `load` and `run` say when the export is byte-identical to the one loaded: that the
/// load was skipped, and the counts in use.
pub fn skipped(store: &Store, summary: &LoadSummary) -> Result<String> {
    let (accounts, users) = store.loaded_counts()?;
    Ok(format!(
        "load skipped: export unchanged since export #{} (the same files), using its {accounts} accounts and {users} users",
        summary.extract_version
    ))
}

pub fn run(settings: &Settings) -> Result<u8> {
    settings.require_input()?;
    let _lock = super::lock(settings, "load")?;
    let summary = load_export(settings)?;
    super::print_warnings(&summary.warnings);
    if summary.unchanged {
        println!("{}", skipped(&Store::open(&settings.db)?, &summary)?);
        return Ok(0);
    }
    let tables: Vec<String> = summary
        .rows
        .iter()
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect();
    println!(
        "loaded export #{} into {}: {}",
        summary.extract_version,
        settings.db.display(),
        tables.join(", ")
    );
    Ok(0)
}
