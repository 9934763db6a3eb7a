//! Readers: one per format, behind one interface. A reader parses one part file into
//! batches of rows in file order. [`read_all`] runs readers on the rayon pool, every part at
//! once (bounded), and hands the batches to a single consumer in table-then-part order, so
//! what the consumer sees never depends on which thread finished first.

mod csv;
mod json;
pub mod parquet;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::options::TableOptions;
use super::rows::{CsvColumns, CsvRecords};
use super::source::{Format, Part, TableSource};
use super::ExtractError;

/// The columns a table is read for: `wanted` are normalized names (see
/// [`super::rows::normalize_column`]) addressed by slot; `required` must be in a CSV header.
/// A `sniffed` table's CSV cells are typed by the reader (see [`CsvRecords::sniff`]).
#[derive(Clone, Copy, Debug)]
pub struct TableSpec {
    pub wanted: &'static [&'static str],
    pub required: &'static [&'static str],
    pub sniffed: bool,
}

impl TableSpec {
    pub fn of(table: &str) -> TableSpec {
        let (wanted, required): (&'static [&'static str], &'static [&'static str]) = match table {
            "elements" | "success_metrics" => (&["id", "name"], &["name"]),
            "users" => (&["id", "externalid", "email"], &[]),
            "accounts" => (&[], &["externalid"]),
            "element_counts" => (
                &["accountid", "elementid", "count"],
                &["accountid", "elementid", "count"],
            ),
            "metric_values" => (
                &["accountid", "metricid", "value"],
                &["accountid", "metricid", "value"],
            ),
            "indicators" => (
                &["accountid", "kind", "name"],
                &["accountid", "kind", "name"],
            ),
            "segments" => (&["accountid", "name"], &["accountid", "name"]),
            _ => (&[], &[]),
        };
        TableSpec {
            wanted,
            required,
            sniffed: table == "accounts",
        }
    }
}

/// Parsed rows of one part, each with its line (CSV, NDJSON, JSON) or row number (Parquet).
pub enum Rows {
    Csv {
        columns: Arc<CsvColumns>,
        records: CsvRecords,
    },
    Json(Vec<(Map<String, Value>, u64)>),
    /// What a reader found worth a warning (e.g. a Parquet column it cannot read).
    Warnings(Vec<String>),
}

impl Rows {
    /// The number of rows (a warning is none).
    pub fn row_count(&self) -> usize {
        match self {
            Rows::Csv { records, .. } => records.len(),
            Rows::Json(rows) => rows.len(),
            Rows::Warnings(_) => 0,
        }
    }
}

/// Checks that the parts of `source` can be read as one table before any is read (Parquet
/// parts must share one schema).
pub fn check_parts(source: &TableSource) -> Result<(), ExtractError> {
    match source.parts.first().map(|p| p.format) {
        Some(Format::Parquet) => parquet::check_parts(source),
        _ => Ok(()),
    }
}

/// Rows handed to the consumer per batch.
pub const BATCH_ROWS: usize = 2048;

/// A reader of one format.
pub trait Reader: Sync {
    /// Parses `part` and passes its rows in order, in batches, to `emit`; stops early when
    /// `emit` returns false (the consumer is gone).
    fn read(
        &self,
        part: &Part,
        options: &TableOptions,
        spec: TableSpec,
        emit: &mut dyn FnMut(Rows) -> bool,
    ) -> Result<(), ExtractError>;
}

fn reader_for(format: Format) -> &'static dyn Reader {
    match format {
        Format::Csv => &csv::CsvReader,
        Format::Json => &json::JsonArrayReader,
        Format::Ndjson => &json::NdjsonReader,
        Format::Parquet => &parquet::ParquetReader,
    }
}

/// The parsed rows of one table, part by part.
pub struct TableRows<'s> {
    pub source: &'s TableSource,
    parts: Vec<mpsc::Receiver<Result<Rows, ExtractError>>>,
}

impl TableRows<'_> {
    /// Calls `consume(part index, rows)` for every batch of the table, in order; stops at the
    /// first error (of a reader or of `consume`).
    pub fn for_each(
        self,
        mut consume: impl FnMut(usize, Rows) -> Result<(), ExtractError>,
    ) -> Result<(), ExtractError> {
        for (part, receiver) in self.parts.into_iter().enumerate() {
            for rows in receiver {
                consume(part, rows?)?;
            }
        }
        Ok(())
    }
}

/// Reads every part of `sources` on the rayon pool (parts start in order, a few batches per
/// part wait in memory) while `body` consumes the tables' rows, each table in part order.
/// Readers still running when `body` returns stop at their next batch.
pub fn read_all<'s, R>(
    sources: &[&'s TableSource],
    body: impl FnOnce(Vec<TableRows<'s>>) -> R,
) -> R {
    let jobs: Vec<(&TableSource, usize)> = sources
        .iter()
        .flat_map(|s| (0..s.parts.len()).map(move |i| (*s, i)))
        .collect();
    // One channel per part (in the order of `jobs`). Its sender is taken by the worker that
    // reads the part and dropped when it is done: that ends the consumer's iteration.
    let mut senders = Vec::new();
    let mut tables = Vec::new();
    for source in sources {
        let mut parts = Vec::new();
        for _ in &source.parts {
            let (tx, rx) = mpsc::sync_channel::<Result<Rows, ExtractError>>(4);
            senders.push(std::sync::Mutex::new(Some(tx)));
            parts.push(rx);
        }
        tables.push(TableRows { source, parts });
    }
    let next = AtomicUsize::new(0);
    let workers = rayon::current_num_threads().max(1);
    std::thread::scope(|scope| {
        let senders = &senders;
        let jobs = &jobs;
        let next = &next;
        scope.spawn(move || {
            rayon::scope(|pool| {
                for _ in 0..workers {
                    pool.spawn(move |_| loop {
                        // Parts start in order, so every part a consumer waits for is being
                        // read or done.
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some((source, part)) = jobs.get(i) else {
                            break;
                        };
                        let Some(sender) = senders[i].lock().ok().and_then(|mut s| s.take()) else {
                            continue;
                        };
                        let part_file = &source.parts[*part];
                        let result = reader_for(part_file.format).read(
                            part_file,
                            &source.options,
                            TableSpec::of(source.table),
                            &mut |rows| sender.send(Ok(rows)).is_ok(),
                        );
                        if let Err(e) = result {
                            let _ = sender.send(Err(e));
                        }
                    });
                }
            });
        });
        // `body` owns the receivers: when it returns they are dropped, which unblocks the
        // readers still sending.
        body(tables)
    })
}

/// Whether a stream starts with a UTF-16 byte-order mark.
pub fn check_not_utf16(part: &Part, start: &[u8]) -> Result<(), ExtractError> {
    if start.starts_with(&[0xFF, 0xFE]) || start.starts_with(&[0xFE, 0xFF]) {
        return Err(ExtractError::at(
            part,
            1,
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark): re-export it as UTF-8",
        ));
    }
    Ok(())
}
