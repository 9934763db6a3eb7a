//! Extract stage: reads a warehouse export (see the README's input contract) and replaces the
//! database's extract tables with it in one transaction. On any error nothing changes.
//!
//! `source` finds each table's parts, `read` parses them on every core (one reader per
//! format), and `loader`, the single consumer, resolves, types and writes the rows.

pub mod accounts;
mod loader;
pub mod options;
mod read;
pub mod rows;
pub mod source;
pub mod typing;

use std::collections::BTreeMap;
use std::path::Path;

use crate::progress::Progress;
use crate::store::{Store, StoreError};
use loader::{Loader, Location};
pub use loader::MAX_FIELDS;
use options::TableOptions;
use read::{Event, Rows, TableSpec};
use rows::Row;
use source::Part;

/// Why a load failed. `Input` errors name `file:line` and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{location}: {message}")]
    Input { location: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ExtractError {
    pub fn at(part: &Part, line: u64, message: impl Into<String>) -> ExtractError {
        ExtractError::Input {
            location: format!("{}:{line}", part.name),
            message: message.into(),
        }
    }

    /// A read error in the middle of a file: usually a truncated or corrupt compressed stream.
    pub fn read(part: &Part, line: u64, error: std::io::Error) -> ExtractError {
        let hint = match part.compression {
            source::Compression::Gzip => {
                "the gzip stream is truncated or corrupt: re-export or re-download the file"
            }
            source::Compression::Zstd => {
                "the zstd stream is truncated or corrupt: re-export or re-download the file"
            }
            source::Compression::None if error.kind() == std::io::ErrorKind::InvalidData => {
                "the file is not valid UTF-8: re-export it as UTF-8"
            }
            source::Compression::None => "cannot read the file",
        };
        ExtractError::at(part, line, format!("{hint} ({error})"))
    }
}

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadSummary {
    /// Rows read per table.
    pub rows: BTreeMap<&'static str, u64>,
    /// Parts read per table.
    pub parts: BTreeMap<&'static str, usize>,
    pub warnings: Vec<String>,
    pub extract_version: u64,
    /// The files are byte-identical to the last load's: nothing was rewritten.
    pub unchanged: bool,
}

/// An Element or Metric name as used in attribute names: trimmed, whitespace runs collapsed.
pub fn clean_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Loads the export in `dir` (with the per-table `options` of the config) into `store`,
/// replacing the previous extract atomically.
pub fn load(
    dir: &Path,
    options: &BTreeMap<&'static str, TableOptions>,
    store: &mut Store,
) -> Result<LoadSummary, ExtractError> {
    let found = source::discover(dir, options)?;
    let mut summary = LoadSummary::default();
    for name in &found.ignored {
        summary.warnings.push(format!(
            "{name}: not a table of the input contract; ignored"
        ));
    }
    let digest = source::digest(&found)?;
    if store.meta("extract_digest")?.as_deref() == Some(digest.as_str()) {
        summary.extract_version = store.require_extract()?;
        summary.unchanged = true;
        return Ok(summary);
    }
    let mut writer = store.extract_writer()?;
    writer.set_meta("extract_digest", &digest)?;
    let mut loader = Loader::new(&mut writer);
    let sources: Vec<_> = found.in_load_order().collect();
    let mut progress: Option<Progress> = None;
    read::read_all(&sources, |event| match event {
        Event::Rows { table, part, rows } => {
            let progress = progress.get_or_insert_with(|| {
                Progress::new(&format!("loading {}", table.table), "rows")
            });
            progress.inc(rows.len() as u64);
            *summary.rows.entry(table.table).or_default() += rows.len() as u64;
            let spec = TableSpec::of(table.table);
            let at = |line| Location {
                source: table,
                part_index: part,
                line,
            };
            match &rows {
                Rows::Csv { columns, records } => {
                    for (record, line) in records.iter() {
                        loader.row(table.table, &Row::csv(columns, record, spec.wanted), at(line))?;
                    }
                }
                Rows::Json(objects) => {
                    for (object, line) in objects {
                        loader.row(table.table, &Row::json(object, spec.wanted), at(*line))?;
                    }
                }
            }
            Ok(())
        }
        Event::TableEnd(table) => {
            if let Some(progress) = progress.take() {
                progress.finish();
            }
            summary.rows.entry(table.table).or_default();
            summary.parts.insert(table.table, table.parts.len());
            if table.table == "accounts" && loader.accounts() == 0 {
                let first = &table.parts[0];
                return Err(ExtractError::at(first, 1, "no accounts in the file: refusing to load an empty export (was the warehouse query empty?)"));
            }
            Ok(())
        }
    })?;
    summary.warnings.append(&mut loader.finish()?);
    summary.extract_version = writer.commit()?;
    Ok(summary)
}
