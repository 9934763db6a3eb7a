//! Extract stage: reads a warehouse export (see the README's input contract) and replaces the
//! database's extract tables with it in one transaction. On any error nothing changes.
//!
//! `source` finds each table's parts, `read` parses them on every core (one reader per
//! format), and `loader`, the single consumer, resolves, types and writes the rows.

pub mod accounts;
mod loader;
pub mod options;
pub mod read;
pub mod rows;
pub mod source;
pub mod typing;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::Receiver;

use crate::progress::Progress;
use crate::store::{Store, StoreError};
use loader::{ChildLoader, ChildState, Loader, Location, Sink, UserLoader, WriterMessage};
pub use loader::{DATE_NOTES, MAX_FIELDS};
use options::TableOptions;
use read::{Rows, TableSpec};
use rows::Row;
use source::{Part, TableSource};

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
///
/// Threads: readers parse every part (rayon); one consumer takes `users`, another the other
/// tables in load order; one writer holds the transaction. The first error in table order
/// is reported and nothing is committed.
pub fn load(
    dir: &Path,
    options: &BTreeMap<&'static str, TableOptions>,
    store: &mut Store,
) -> Result<LoadSummary, ExtractError> {
    let found = source::discover(dir, options)?;
    let mut summary = LoadSummary::default();
    for (name, why) in &found.ignored {
        summary.warnings.push(format!("{name}: {why}; ignored"));
    }
    let digest = source::digest(&found)?;
    if store.meta("extract_digest")?.as_deref() == Some(digest.as_str()) {
        summary.extract_version = store.require_extract()?;
        summary.unchanged = true;
        return Ok(summary);
    }
    let sources: Vec<&TableSource> = found.in_load_order().collect();
    for source in &sources {
        read::check_parts(source)?;
        summary.parts.insert(source.table, source.parts.len());
    }
    let (committed, outcome) = read::read_all(&sources, |tables| {
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<WriterMessage>(16);
            let writer = scope.spawn(move || write_extract(store, &digest, rx));
            let (users, others): (Vec<_>, Vec<_>) =
                tables.into_iter().partition(|t| t.source.table == "users");
            let users_tx = tx.clone();
            let users = scope.spawn(move || -> Consumed {
                let mut loader = UserLoader::new(Sink::new(users_tx));
                let mut report = Report::default();
                for table in users {
                    consume(table, &mut report, |row, at| loader.row(row, at))?;
                }
                loader.finish().map_err(|e| ("users", e))?;
                Ok(report)
            });
            let main = (|| -> Consumed {
                let mut loader = Loader::new(Sink::new(tx.clone()));
                let mut report = Report::default();
                let (parents, children): (Vec<_>, Vec<_>) = others.into_iter().partition(|t| {
                    ["elements", "success_metrics", "accounts"].contains(&t.source.table)
                });
                for table in parents {
                    let name = table.source.table;
                    consume(table, &mut report, |row, at| loader.row(name, row, at))?;
                    if name == "accounts" && loader.accounts() == 0 {
                        let source = sources.iter().find(|s| s.table == "accounts");
                        if let Some(first) = source.and_then(|s| s.parts.first()) {
                            return Err((name, ExtractError::at(first, 1, "no accounts in the file: refusing to load an empty export (was the warehouse query empty?)")));
                        }
                    }
                }
                // Every account is known: the child tables resolve against them at once, in
                // three groups (each with the catalog it resolves through).
                let (states, accounts) = loader.split_for_children();
                let mut groups: [Vec<read::TableRows<'_>>; 3] = Default::default();
                for table in children {
                    let group = match table.source.table {
                        "element_counts" => 0,
                        "metric_values" => 1,
                        _ => 2,
                    };
                    groups[group].push(table);
                }
                let consumed: Vec<Result<(ChildState, Report), Failure>> =
                    std::thread::scope(|scope| {
                        let running: Vec<_> = states
                            .into_iter()
                            .zip(groups)
                            .map(|(state, tables)| {
                                scope.spawn(move || {
                                    let mut child = ChildLoader::new(accounts, state);
                                    let mut report = Report::default();
                                    for table in tables {
                                        let name = table.source.table;
                                        consume(table, &mut report, |row, at| {
                                            child.row(name, row, at)
                                        })?;
                                    }
                                    Ok((child.state, report))
                                })
                            })
                            .collect();
                        running
                            .into_iter()
                            .map(|t| {
                                t.join()
                                    .unwrap_or_else(|_| Err(("", worker_died("a load consumer"))))
                            })
                            .collect()
                    });
                let mut states = Vec::new();
                let mut failed: Option<Failure> = None;
                for result in consumed {
                    match result {
                        Ok((state, more)) => {
                            states.push(state);
                            report.merge(more);
                        }
                        Err(error) => failed = Some(earliest(failed, error)),
                    }
                }
                if let Some(error) = failed {
                    return Err(error);
                }
                if let Ok(states) = <[ChildState; 3]>::try_from(states) {
                    loader.join_children(states);
                }
                report
                    .warnings
                    .extend(loader.finish().map_err(|e| ("", e))?);
                Ok(report)
            })();
            let users = users
                .join()
                .unwrap_or_else(|_| Err(("users", worker_died("a load consumer"))));
            let outcome = first_error(main, users);
            // Commit only when every consumer succeeded; otherwise the writer rolls back.
            let _ = tx.send(if outcome.is_ok() {
                WriterMessage::Commit
            } else {
                WriterMessage::Abandon
            });
            drop(tx);
            let committed = writer
                .join()
                .unwrap_or_else(|_| Err(StoreError::Worker("the database writer panicked")));
            (committed, outcome)
        })
    });
    // A database error explains the consumers' "writer stopped" errors: it comes first.
    let version = committed?;
    let report = outcome?;
    summary.rows = report.rows;
    summary.warnings.extend(report.warnings);
    summary.extract_version = version.unwrap_or_default();
    Ok(summary)
}

/// What a consumer read: rows per table, and warnings.
#[derive(Default)]
struct Report {
    rows: BTreeMap<&'static str, u64>,
    warnings: Vec<String>,
}

/// The table a consumer failed on, with the error.
type Failure = (&'static str, ExtractError);

/// A consumer's report, or its failure.
type Consumed = Result<Report, Failure>;

impl Report {
    fn merge(&mut self, other: Report) {
        self.rows.extend(other.rows);
        self.warnings.extend(other.warnings);
    }
}

/// Of two failures, the one of the earlier table in load order.
fn earliest(a: Option<Failure>, b: Failure) -> Failure {
    let order = |table: &str| {
        source::TABLES
            .iter()
            .position(|t| *t == table)
            .unwrap_or(usize::MAX)
    };
    match a {
        Some(a) if order(a.0) <= order(b.0) => a,
        _ => b,
    }
}

/// The error of the earliest table (in load order), else both consumers' reports combined.
fn first_error(a: Consumed, b: Consumed) -> Result<Report, ExtractError> {
    match (a, b) {
        (Ok(mut a), Ok(b)) => {
            a.merge(b);
            Ok(a)
        }
        (Err(a), Err(b)) => Err(earliest(Some(a), b).1),
        (Err((_, e)), _) | (_, Err((_, e))) => Err(e),
    }
}

/// Feeds every row of `table` to `row`, counting them and keeping the readers' warnings
/// (once each: a warning about a part is said of the table); the error names its table.
fn consume<'s>(
    table: read::TableRows<'s>,
    report: &mut Report,
    mut row: impl FnMut(&Row<'_>, Location<'_>) -> Result<(), ExtractError>,
) -> Result<(), (&'static str, ExtractError)> {
    let source = table.source;
    let spec = TableSpec::of(source.table);
    let label = match source.parts.as_slice() {
        [one] => one.name.clone(),
        parts => format!("{} ({} parts)", source.table, parts.len()),
    };
    let progress = Progress::for_file(
        &format!("loading {label}"),
        "rows",
        source.bytes(),
        source.bytes_read.clone(),
    );
    let count = report.rows.entry(source.table).or_default();
    let warnings = &mut report.warnings;
    let mut expected_rows = None;
    table
        .for_each(|part, rows| {
            *count += rows.row_count() as u64;
            progress.inc(rows.row_count() as u64);
            let expected_rows = *expected_rows.get_or_insert_with(|| estimated_rows(source, &rows));
            let at = |line| Location {
                source,
                part_index: part,
                line,
                expected_rows,
            };
            match &rows {
                Rows::Csv { columns, records } => {
                    for (record, line) in records.iter() {
                        row(&Row::csv(columns, record, spec.wanted), at(line))?;
                    }
                }
                Rows::Json(objects) => {
                    for (object, line) in objects {
                        row(&Row::json(object, spec.wanted), at(*line))?;
                    }
                }
                Rows::Warnings(found) => {
                    let part_name = &source.parts[part].name;
                    for warning in found {
                        let warning = match warning.strip_prefix(part_name.as_str()) {
                            Some(rest) if source.parts.len() > 1 => {
                                format!("{} ({} parts){rest}", source.table, source.parts.len())
                            }
                            _ => warning.clone(),
                        };
                        if !warnings.contains(&warning) {
                            warnings.push(warning);
                        }
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| (source.table, e))
}

/// About how many rows a table holds: its size in bytes over the bytes per row of its first
/// CSV batch (0 when that cannot be told: JSON, or an empty batch). Compressed parts give too
/// low a figure, which only costs the maps some growing.
fn estimated_rows(source: &TableSource, first: &Rows) -> usize {
    /// Bounds a guess from a first batch of unusually short rows.
    const AT_MOST: usize = 1 << 26;
    match first {
        Rows::Csv { records, .. } if !records.is_empty() => {
            let bytes_per_row = (records.file_bytes() / records.len()).max(1);
            (source.bytes() as usize / bytes_per_row).min(AT_MOST)
        }
        _ => 0,
    }
}

fn worker_died(what: &'static str) -> ExtractError {
    ExtractError::Store(StoreError::Worker(what))
}

/// The writer thread: replaces the extract in one transaction, committed only on `Commit`.
/// Returns the new extract version (`None` when abandoned).
fn write_extract(
    store: &mut Store,
    digest: &str,
    rx: Receiver<WriterMessage>,
) -> Result<Option<u64>, StoreError> {
    let mut writer = store.extract_writer()?;
    writer.set_meta("extract_digest", digest)?;
    for message in rx {
        match message {
            WriterMessage::Rows(rows) => {
                for row in rows {
                    writer.write(row)?;
                }
            }
            WriterMessage::Commit => return writer.commit().map(Some),
            WriterMessage::Abandon => return Ok(None),
        }
    }
    Ok(None)
}
