//! Readers: one per format, behind one interface. A reader parses one part file into
//! batches of rows in file order. [`read_all`] runs readers on the rayon pool, every part at
//! once (bounded), and hands the batches to a single consumer in table-then-part order, so
//! what the consumer sees never depends on which thread finished first.

mod csv;
mod json;
mod parquet;

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
#[derive(Clone, Copy, Debug)]
pub struct TableSpec {
    pub wanted: &'static [&'static str],
    pub required: &'static [&'static str],
}

impl TableSpec {
    pub fn of(table: &str) -> TableSpec {
        let (wanted, required): (&'static [&'static str], &'static [&'static str]) = match table
        {
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
            "indicators" => (&["accountid", "kind", "name"], &["accountid", "kind", "name"]),
            "segments" => (&["accountid", "name"], &["accountid", "name"]),
            _ => (&[], &[]),
        };
        TableSpec { wanted, required }
    }
}

/// Parsed rows of one part, each with its line (CSV, NDJSON, JSON) or row number (Parquet).
pub enum Rows {
    Csv {
        columns: Arc<CsvColumns>,
        records: CsvRecords,
    },
    Json(Vec<(Map<String, Value>, u64)>),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::Csv { records, .. } => records.len(),
            Rows::Json(rows) => rows.len(),
        }
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

/// What the consumer of [`read_all`] is given, in order.
pub enum Event<'s> {
    /// The next batch of rows of `part` (the `part`-th of the table's parts).
    Rows {
        table: &'s TableSource,
        part: usize,
        rows: Rows,
    },
    /// Every part of `table` was consumed.
    TableEnd(&'s TableSource),
}

/// Reads every part of `sources` on the rayon pool and calls `consume` on this thread with
/// their rows: table by table, part by part, in order. At most a few batches per part wait
/// in memory. The first error (of a reader or of `consume`) stops everything.
pub fn read_all(
    sources: &[&TableSource],
    mut consume: impl FnMut(Event<'_>) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    let jobs: Vec<(&TableSource, usize)> = sources
        .iter()
        .flat_map(|s| (0..s.parts.len()).map(move |i| (*s, i)))
        .collect();
    let (senders, receivers): (Vec<_>, Vec<_>) = jobs
        .iter()
        .map(|_| {
            let (tx, rx) = mpsc::sync_channel::<Result<Rows, ExtractError>>(4);
            // Taken by the worker that reads the part, dropped when it is done: that ends the
            // consumer's iteration over the part.
            (std::sync::Mutex::new(Some(tx)), rx)
        })
        .unzip();
    let next = AtomicUsize::new(0);
    let workers = rayon::current_num_threads().max(1);
    std::thread::scope(|scope| {
        let senders = &senders;
        let jobs = &jobs;
        let next = &next;
        scope.spawn(move || {
            rayon::scope(|pool| {
                for _ in 0..workers {
                    pool.spawn(move |_| {
                        // Parts start in order, so the part the consumer waits for is always
                        // being read.
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some((source, part)) = jobs.get(i) else {
                                break;
                            };
                            let part_file = &source.parts[*part];
                            let Some(sender) = senders[i].lock().ok().and_then(|mut s| s.take())
                            else {
                                continue;
                            };
                            let result = reader_for(part_file.format).read(
                                part_file,
                                &source.options,
                                TableSpec::of(source.table),
                                &mut |rows| sender.send(Ok(rows)).is_ok(),
                            );
                            if let Err(e) = result {
                                let _ = sender.send(Err(e));
                            }
                        }
                    });
                }
            });
        });
        let result = (|| {
            let mut current: Option<&TableSource> = None;
            for ((source, part), receiver) in jobs.iter().zip(&receivers) {
                if let Some(previous) = current.filter(|c| !std::ptr::eq(*c, *source)) {
                    consume(Event::TableEnd(previous))?;
                }
                current = Some(source);
                for rows in receiver {
                    consume(Event::Rows {
                        table: source,
                        part: *part,
                        rows: rows?,
                    })?;
                }
            }
            if let Some(last) = current {
                consume(Event::TableEnd(last))?;
            }
            Ok(())
        })();
        // Unblock the readers still running (their sends fail from now on).
        drop(receivers);
        result
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
