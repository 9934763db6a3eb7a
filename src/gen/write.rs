//! Streaming table writers: one file per table (or a folder of part files, `--parts N`), CSV
//! or NDJSON (optionally gzip) behind a big buffer, or Parquet. Rows are written as they are
//! generated; nothing is held beyond a Parquet batch.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::parquet::ParquetSink;
use super::rng::Rng;
use super::GenFormat;
use crate::extract::read::parquet::{date_text, instant_text};

const BUFFER: usize = 4 << 20;

/// A cell value. `Num` is number text written as is (`1234.50`); `Date` is days and
/// `Timestamp` seconds since 1970-01-01 (UTC), written as `YYYY-MM-DD` and
/// `YYYY-MM-DDTHH:MM:SSZ` in CSV and NDJSON; `Null` is an empty CSV cell, and a key left out
/// in NDJSON.
#[derive(Clone, Copy, Debug)]
pub enum V<'a> {
    Str(&'a str),
    Num(&'a str),
    Int(i64),
    Bool(bool),
    Date(i64),
    Timestamp(i64),
    Null,
}

/// A column's type, used by the Parquet output (CSV and NDJSON write the values as they
/// come). `Json` holds values of several types (a metric's value): Parquet stores its JSON
/// text in a string column annotated JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    Str,
    Float,
    Int,
    Bool,
    Date,
    Timestamp,
    Json,
}

/// A table's columns: name and type.
pub type Columns = &'static [(&'static str, Col)];

enum Sink {
    Plain(BufWriter<File>),
    Gzip(BufWriter<GzEncoder<File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(buf),
            Sink::Gzip(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}

/// The file name of `table` in `format`: `accounts.csv`, `users.ndjson.gz`, …
pub fn file_name(table: &str, format: GenFormat, gzip: bool) -> String {
    let ext = match format {
        GenFormat::Csv => "csv",
        GenFormat::Ndjson => "ndjson",
        GenFormat::Parquet => "parquet",
    };
    if gzip {
        format!("{table}.{ext}.gz")
    } else {
        format!("{table}.{ext}")
    }
}

/// How a generated export is laid out on disk.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub format: GenFormat,
    pub gzip: bool,
    /// `Some(n)`: each table is a folder `<table>/` of `n` Spark-style part files and an
    /// empty `_SUCCESS`.
    pub parts: Option<u32>,
    pub seed: u64,
}

/// Stream tag of the part an account's rows go to, and of each table's part-file uuid.
const T_PART: u64 = 0x7061_7274;
const T_UUID: u64 = 0x7575_6964;

impl Layout {
    /// What `load` is given for `table`: `accounts.csv`, or `accounts/` for parts.
    pub fn entry_name(&self, table: &str) -> String {
        match self.parts {
            None => file_name(table, self.format, self.gzip),
            Some(_) => format!("{table}/"),
        }
    }

    /// The part files of `table`, named like Spark's
    /// (`part-00003-<uuid>-c000.csv.gz`, `part-00000-<uuid>-c000.snappy.parquet`): NDJSON
    /// parts are `.json`, as Spark and BigQuery write them. The uuid comes from the seed.
    pub fn part_names(&self, table: &str, parts: u32) -> Vec<String> {
        let mut rng = Rng::stream(self.seed, T_UUID, table_tag(table));
        let (a, b) = (rng.next_u64(), rng.next_u64());
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        );
        let ext = match self.format {
            GenFormat::Csv => "csv",
            GenFormat::Ndjson => "json",
            GenFormat::Parquet => "snappy.parquet",
        };
        let gz = if self.gzip { ".gz" } else { "" };
        (0..parts)
            .map(|i| format!("part-{i:05}-{uuid}-c000.{ext}{gz}"))
            .collect()
    }
}

fn table_tag(table: &str) -> u64 {
    table.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One table of a generated export: one file, or the part files of its folder. Rows go to
/// the part of the account last given to [`Table::account`] (a seeded hash of the account,
/// so parts are not ordered by account).
pub struct Table {
    parts: Vec<TableWriter>,
    current: usize,
    seed: u64,
    folder: Option<PathBuf>,
}

impl Table {
    /// Creates the table's file, or its folder with its part files.
    pub fn create(dir: &Path, table: &str, layout: &Layout, columns: Columns) -> io::Result<Table> {
        let mut folder = None;
        let paths = match layout.parts {
            None => vec![dir.join(file_name(table, layout.format, layout.gzip))],
            Some(n) => {
                let path = dir.join(table);
                std::fs::create_dir_all(&path)?;
                let paths = layout
                    .part_names(table, n)
                    .iter()
                    .map(|name| path.join(name))
                    .collect();
                folder = Some(path);
                paths
            }
        };
        let parts = paths
            .iter()
            .map(|path| TableWriter::create(path, layout.format, layout.gzip, columns))
            .collect::<io::Result<_>>()?;
        Ok(Table {
            parts,
            current: 0,
            seed: layout.seed,
            folder,
        })
    }

    /// The rows that follow belong to account `index` (row `index` for the catalogs).
    pub fn account(&mut self, index: u64) {
        if self.parts.len() > 1 {
            self.current =
                Rng::stream(self.seed, T_PART, index).below(self.parts.len() as u64) as usize;
        }
    }

    pub fn row(&mut self, values: &[V<'_>]) -> io::Result<()> {
        self.parts[self.current].row(values)
    }

    /// Finishes every part (and writes `_SUCCESS` last, as Spark does). Returns the rows.
    pub fn finish(self) -> io::Result<u64> {
        let mut rows = 0;
        for part in self.parts {
            rows += part.finish()?;
        }
        if let Some(folder) = self.folder {
            File::create(folder.join("_SUCCESS"))?;
        }
        Ok(rows)
    }
}

enum Output {
    Text(Sink, GenFormat),
    Parquet(Box<ParquetSink>),
}

/// Writes one file's rows.
pub struct TableWriter {
    output: Output,
    columns: Columns,
    path: PathBuf,
    pub rows: u64,
}

impl TableWriter {
    /// Creates `path` and writes the CSV header.
    pub fn create(
        path: &Path,
        format: GenFormat,
        gzip: bool,
        columns: Columns,
    ) -> io::Result<TableWriter> {
        if format == GenFormat::Parquet {
            return Ok(TableWriter {
                output: Output::Parquet(Box::new(ParquetSink::create(path, columns)?)),
                columns,
                path: path.to_path_buf(),
                rows: 0,
            });
        }
        let mut sink = raw_sink(path, gzip)?.0;
        if format == GenFormat::Csv {
            for (i, (column, _)) in columns.iter().enumerate() {
                if i > 0 {
                    sink.write_all(b",")?;
                }
                write_csv_field(&mut sink, column.as_bytes())?;
            }
            sink.write_all(b"\n")?;
        }
        Ok(TableWriter {
            output: Output::Text(sink, format),
            columns,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    /// Writes one row: one value per column.
    pub fn row(&mut self, values: &[V<'_>]) -> io::Result<()> {
        debug_assert_eq!(values.len(), self.columns.len());
        self.rows += 1;
        match &mut self.output {
            Output::Parquet(sink) => sink.row(values),
            Output::Text(out, GenFormat::Csv) => {
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    match *value {
                        V::Str(s) => write_csv_field(out, s.as_bytes())?,
                        V::Null => {}
                        _ => write_plain(out, value)?,
                    }
                }
                out.write_all(b"\n")
            }
            Output::Text(out, _) => {
                out.write_all(b"{")?;
                let mut first = true;
                for ((column, _), value) in self.columns.iter().zip(values) {
                    if matches!(value, V::Null) {
                        continue;
                    }
                    if !first {
                        out.write_all(b",")?;
                    }
                    first = false;
                    write_json_string(out, column)?;
                    out.write_all(b":")?;
                    write_json_value(out, value)?;
                }
                out.write_all(b"}\n")
            }
        }
    }

    /// Flushes (and ends the gzip stream or the Parquet file). Returns the rows written.
    pub fn finish(self) -> io::Result<u64> {
        let path = self.path.display().to_string();
        let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{path}: {e}"));
        match self.output {
            Output::Parquet(sink) => sink.finish().map_err(with_path)?,
            Output::Text(sink, _) => RawSink(sink).finish().map_err(with_path)?,
        }
        Ok(self.rows)
    }
}

/// A value that is not a string as CSV writes it (`1234.50`, `true`, `2026-03-01`).
fn write_plain(out: &mut impl Write, value: &V<'_>) -> io::Result<()> {
    match *value {
        V::Str(s) | V::Num(s) => out.write_all(s.as_bytes()),
        V::Int(n) => write!(out, "{n}"),
        V::Bool(b) => out.write_all(if b { b"true" } else { b"false" }),
        V::Date(days) => out.write_all(date_text(days).as_bytes()),
        V::Timestamp(seconds) => {
            out.write_all(instant_text(seconds, arrow_schema::TimeUnit::Second, true).as_bytes())
        }
        V::Null => Ok(()),
    }
}

/// A value as NDJSON writes it (`null` for `Null`).
pub fn write_json_value(out: &mut impl Write, value: &V<'_>) -> io::Result<()> {
    match *value {
        V::Str(s) => write_json_string(out, s),
        V::Num(_) | V::Int(_) | V::Bool(_) => write_plain(out, value),
        V::Date(_) | V::Timestamp(_) => {
            out.write_all(b"\"")?;
            write_plain(out, value)?;
            out.write_all(b"\"")
        }
        V::Null => out.write_all(b"null"),
    }
}

/// Opens an output file for raw lines (used by `--mutate`), gzip when `gzip`.
pub fn raw_sink(path: &Path, gzip: bool) -> io::Result<RawSink> {
    let file = File::create(path)?;
    Ok(RawSink(if gzip {
        Sink::Gzip(BufWriter::with_capacity(
            BUFFER,
            GzEncoder::new(file, Compression::fast()),
        ))
    } else {
        Sink::Plain(BufWriter::with_capacity(BUFFER, file))
    }))
}

/// A plain byte sink (see [`raw_sink`]).
pub struct RawSink(Sink);

impl Write for RawSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl RawSink {
    pub fn finish(self) -> io::Result<()> {
        match self.0 {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gzip(w) => w
                .into_inner()
                .map_err(|e| e.into_error())?
                .finish()?
                .flush(),
        }
    }
}

/// A CSV field, quoted (RFC 4180) only when it holds a comma, quote or line break.
pub fn write_csv_field(out: &mut impl Write, field: &[u8]) -> io::Result<()> {
    if !field
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        return out.write_all(field);
    }
    out.write_all(b"\"")?;
    for part in field.split_inclusive(|&b| b == b'"') {
        out.write_all(part)?;
        if part.ends_with(b"\"") {
            out.write_all(b"\"")?;
        }
    }
    out.write_all(b"\"")
}

/// A JSON string literal; non-ASCII characters are written as UTF-8.
pub fn write_json_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.write_all(&bytes[start..i])?;
                write!(out, "\\u{b:04x}")?;
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        out.write_all(escape)?;
        start = i + 1;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        let mut out = Vec::new();
        write_csv_field(&mut out, b"plain").unwrap();
        out.push(b'|');
        write_csv_field(&mut out, b"Smith, \"Jones\"").unwrap();
        assert_eq!(out, b"plain|\"Smith, \"\"Jones\"\"\"");
    }

    #[test]
    fn json_escaping() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\u{1}é😀").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            serde_json::from_str::<String>(&text).unwrap(),
            "a\"b\\c\u{1}é😀"
        );
    }
}
