//! Streaming table writers: one file per table, CSV or NDJSON, optionally gzip, behind a big
//! buffer. Rows are written as they are generated; nothing is held.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::GenFormat;

const BUFFER: usize = 4 << 20;

/// A cell value. `Num` is number text written as is (`1234.50`); `Null` is an empty CSV
/// cell, and a key left out in NDJSON.
#[derive(Clone, Copy, Debug)]
pub enum V<'a> {
    Str(&'a str),
    Num(&'a str),
    Int(i64),
    Bool(bool),
    Null,
}

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
    };
    if gzip {
        format!("{table}.{ext}.gz")
    } else {
        format!("{table}.{ext}")
    }
}

/// Writes one table's rows.
pub struct TableWriter {
    sink: Sink,
    format: GenFormat,
    columns: &'static [&'static str],
    path: PathBuf,
    pub rows: u64,
}

impl TableWriter {
    /// Creates `path` and writes the CSV header.
    pub fn create(
        path: &Path,
        format: GenFormat,
        gzip: bool,
        columns: &'static [&'static str],
    ) -> io::Result<TableWriter> {
        let file = File::create(path)?;
        let sink = if gzip {
            Sink::Gzip(BufWriter::with_capacity(
                BUFFER,
                GzEncoder::new(file, Compression::fast()),
            ))
        } else {
            Sink::Plain(BufWriter::with_capacity(BUFFER, file))
        };
        let mut writer = TableWriter {
            sink,
            format,
            columns,
            path: path.to_path_buf(),
            rows: 0,
        };
        if format == GenFormat::Csv {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    writer.sink.write_all(b",")?;
                }
                write_csv_field(&mut writer.sink, column.as_bytes())?;
            }
            writer.sink.write_all(b"\n")?;
        }
        Ok(writer)
    }

    /// Writes one row: one value per column.
    pub fn row(&mut self, values: &[V<'_>]) -> io::Result<()> {
        debug_assert_eq!(values.len(), self.columns.len());
        self.rows += 1;
        let out = &mut self.sink;
        match self.format {
            GenFormat::Csv => {
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    match *value {
                        V::Str(s) => write_csv_field(out, s.as_bytes())?,
                        V::Num(s) => out.write_all(s.as_bytes())?,
                        V::Int(n) => write!(out, "{n}")?,
                        V::Bool(b) => out.write_all(if b { b"true" } else { b"false" })?,
                        V::Null => {}
                    }
                }
                out.write_all(b"\n")
            }
            GenFormat::Ndjson => {
                out.write_all(b"{")?;
                let mut first = true;
                for (column, value) in self.columns.iter().zip(values) {
                    if matches!(value, V::Null) {
                        continue;
                    }
                    if !first {
                        out.write_all(b",")?;
                    }
                    first = false;
                    write_json_string(out, column)?;
                    out.write_all(b":")?;
                    match *value {
                        V::Str(s) => write_json_string(out, s)?,
                        V::Num(s) => out.write_all(s.as_bytes())?,
                        V::Int(n) => write!(out, "{n}")?,
                        V::Bool(b) => out.write_all(if b { b"true" } else { b"false" })?,
                        V::Null => unreachable!(),
                    }
                }
                out.write_all(b"}\n")
            }
        }
    }

    /// Flushes (and ends the gzip stream). Returns the rows written.
    pub fn finish(self) -> io::Result<u64> {
        let path = self.path.display().to_string();
        let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{path}: {e}"));
        match self.sink {
            Sink::Plain(mut w) => w.flush().map_err(with_path)?,
            Sink::Gzip(w) => {
                let encoder = w.into_inner().map_err(|e| with_path(e.into_error()))?;
                encoder
                    .finish()
                    .map_err(with_path)?
                    .flush()
                    .map_err(with_path)?;
            }
        }
        Ok(self.rows)
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
