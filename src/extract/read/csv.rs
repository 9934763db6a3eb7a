//! CSV parts: RFC 4180 by default, or the table's dialect (delimiter, quote, escape, null,
//! headerless with configured `columns`).

use std::io::{BufRead, Read};
use std::sync::Arc;

use super::{check_not_utf16, Reader, Rows, TableSpec, BATCH_ROWS};
use crate::extract::options::{CsvDialect, TableOptions};
use crate::extract::rows::{normalize_column, CsvBatch, CsvColumns};
use crate::extract::source::Part;
use crate::extract::ExtractError;

pub struct CsvReader;

impl Reader for CsvReader {
    fn read(
        &self,
        part: &Part,
        options: &TableOptions,
        spec: TableSpec,
        emit: &mut dyn FnMut(Rows) -> bool,
    ) -> Result<(), ExtractError> {
        let mut stream = part.open()?;
        let start = stream
            .fill_buf()
            .map_err(|e| ExtractError::read(part, 1, e))?;
        if start.is_empty() && part.may_be_empty {
            return Ok(());
        }
        check_not_utf16(part, start)?;
        let dialect = &options.csv;
        let mut csv = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(false)
            .delimiter(dialect.delimiter)
            .quote(dialect.quote)
            .escape(dialect.escape)
            .from_reader(QuoteTracker::new(stream, dialect));
        let mut record = ::csv::ByteRecord::new();
        let names: Vec<String> = if dialect.header {
            if !next_record(part, &mut csv, &mut record)? {
                return Err(ExtractError::at(
                    part,
                    1,
                    "the file is empty: expected a header row naming the columns",
                ));
            }
            header_names(part, &record)?
        } else {
            dialect.columns.clone().ok_or_else(|| {
                ExtractError::at(part, 1, "this table is configured without a header row (`header = false`) but gives no `columns`: list the file's columns in order, e.g. `columns = [\"account_id\", \"name\"]` under its [tables.…] section")
            })?
        };
        let columns = Arc::new(check_columns(part, names, spec, dialect)?);
        // Passes a batch on; false when the consumer is gone.
        let mut send = |batch: CsvBatch| -> Result<bool, ExtractError> {
            let (mut records, not_utf8) = batch.finish();
            if spec.sniffed {
                records.sniff(&columns);
            }
            let more = records.is_empty()
                || emit(Rows::Csv {
                    columns: columns.clone(),
                    records,
                });
            match not_utf8 {
                Some(bad) => Err(not_utf8_error(part, bad.line, bad.field)),
                None => Ok(more),
            }
        };
        let mut batch = CsvBatch::with_capacity(BATCH_ROWS);
        let mut first_row = true;
        while next_record(part, &mut csv, &mut record)? {
            // Not `p.line()`: the csv crate counts a CRLF record's `\n` into the next record,
            // so every line after the first would be one short.
            let line = record
                .position()
                .map(|p| csv.get_mut().line_of(p.byte()))
                .unwrap_or(0);
            if first_row && !dialect.header && record.len() != columns.names.len() {
                return Err(ExtractError::at(
                    part,
                    line,
                    format!(
                        "this row has {} fields but `columns` names {}: fix the `columns` list (or the delimiter, now {:?})",
                        record.len(),
                        columns.names.len(),
                        dialect.delimiter as char
                    ),
                ));
            }
            first_row = false;
            batch.push(&record, line);
            if batch.record_count() == BATCH_ROWS {
                let full = std::mem::replace(&mut batch, CsvBatch::with_capacity(BATCH_ROWS));
                if !send(full)? {
                    return Ok(());
                }
            }
        }
        csv.get_ref().check_closed(part)?;
        send(batch).map(drop)
    }
}

/// The column names of a header row.
fn header_names(part: &Part, header: &::csv::ByteRecord) -> Result<Vec<String>, ExtractError> {
    header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            String::from_utf8(name.to_vec()).map_err(|_| not_utf8_error(part, 1, i + 1))
        })
        .collect()
}

/// Field `field` (1-based) of the record on `line` is not UTF-8.
fn not_utf8_error(part: &Part, line: u64, field: usize) -> ExtractError {
    ExtractError::at(
        part,
        line,
        format!("field {field} is not valid UTF-8: re-export the file as UTF-8"),
    )
}

/// Reads the next record (bytes: a batch is checked as UTF-8 at once, see [`CsvBatch`]).
fn next_record<R: Read>(
    part: &Part,
    csv: &mut ::csv::Reader<QuoteTracker<R>>,
    record: &mut ::csv::ByteRecord,
) -> Result<bool, ExtractError> {
    match csv.read_byte_record(record) {
        Ok(more) => {
            if !more {
                csv.get_ref().check_closed(part)?;
            }
            Ok(more)
        }
        Err(e) => Err(csv_error(part, e, csv.get_mut())),
    }
}

/// Validates the column names and finds the table's wanted columns among them.
fn check_columns(
    part: &Part,
    names: Vec<String>,
    spec: TableSpec,
    dialect: &CsvDialect,
) -> Result<CsvColumns, ExtractError> {
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(ExtractError::at(
                part,
                1,
                format!("column {} has no name in the header row", i + 1),
            ));
        }
        if name.contains('\u{feff}') {
            return Err(ExtractError::at(
                part,
                1,
                format!("the name of column {} contains a byte-order mark (U+FEFF), which belongs only at the very start of a file: the file was probably made by concatenating exports; remove the stray mark", i + 1),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(ExtractError::at(
                part,
                1,
                format!("the column `{name}` appears twice in the header row: keep one"),
            ));
        }
    }
    let normalized: Vec<String> = names.iter().map(|h| normalize_column(h)).collect();
    for want in spec.wanted {
        let mut same = names
            .iter()
            .zip(&normalized)
            .filter(|(_, n)| n == want)
            .map(|(h, _)| h);
        if let (Some(first), Some(second)) = (same.next(), same.next()) {
            return Err(ExtractError::at(
                part,
                1,
                format!("`{first}` and `{second}` are the same column (camelCase and snake_case spellings of one name): keep one"),
            ));
        }
    }
    for need in spec.required {
        if !normalized.iter().any(|n| n == need) {
            let (row, fix) = if dialect.header {
                (
                    "the header row",
                    "add it — camelCase or snake_case both work",
                )
            } else {
                ("`columns`", "name it in the table's `columns` list")
            };
            return Err(ExtractError::at(
                part,
                1,
                format!(
                    "{row} has no `{}` column (found: {}); {fix}",
                    camel(need),
                    names.join(", ")
                ),
            ));
        }
    }
    let slots = spec
        .wanted
        .iter()
        .map(|w| normalized.iter().position(|n| n == w))
        .collect();
    Ok(CsvColumns {
        names,
        slots,
        null: dialect.null.clone(),
    })
}

/// Passes a CSV byte stream through while following its quoting the way the `csv` crate
/// reads it, because that crate silently ends a record at end of file when a quoted field
/// was never closed (the rest of the file becomes one cell). Also counts lines, so that a
/// read error (a truncated gzip) can name the line the stream broke on.
struct QuoteTracker<R> {
    inner: R,
    state: QuoteState,
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
    /// Line of the next byte (1-based).
    line: u64,
    /// Line where the quoted field now open started.
    opened_at: u64,
    /// Bytes passed through.
    offset: u64,
    /// Offsets of the `\n`s passed through and not yet counted by [`Self::line_of`].
    newlines: std::collections::VecDeque<u64>,
    /// `\n`s counted by [`Self::line_of`].
    counted: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuoteState {
    /// Outside quotes, and the last byte ended a field (or there was none yet).
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: closes it, or starts a doubled-quote escape.
    QuoteInQuoted,
    /// The escape byte inside a quoted field: the next byte is taken as is.
    EscapeInQuoted,
}

impl<R> QuoteTracker<R> {
    fn new(inner: R, dialect: &CsvDialect) -> Self {
        QuoteTracker {
            inner,
            state: QuoteState::FieldStart,
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            escape: dialect.escape,
            line: 1,
            opened_at: 0,
            offset: 0,
            newlines: std::collections::VecDeque::new(),
            counted: 0,
        }
    }

    /// Whether a field starts after byte `b`.
    fn is_boundary(&self, b: u8) -> bool {
        b == self.delimiter || b == b'\n' || b == b'\r'
    }

    /// Follows the quoting through `bytes`, jumping with `memchr` from one byte that can
    /// change the state to the next.
    fn track(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        let first_newline = self.newlines.len();
        for at in memchr::memchr_iter(b'\n', bytes) {
            self.newlines.push_back(self.offset + at as u64);
        }
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                FieldStart | Unquoted => {
                    // Outside quotes only a quote at the start of a field changes the state:
                    // jump from quote to quote, not from field to field.
                    let Some(j) = memchr::memchr(self.quote, &bytes[i..]) else {
                        // Where the next chunk starts: at a field start, or inside a field.
                        if let Some(&last) = bytes[i..].last() {
                            self.state = if self.is_boundary(last) {
                                FieldStart
                            } else {
                                Unquoted
                            };
                        }
                        i = bytes.len();
                        continue;
                    };
                    let quote = i + j;
                    let opens = if j == 0 {
                        self.state == FieldStart
                    } else {
                        self.is_boundary(bytes[quote - 1])
                    };
                    if opens {
                        let at = self.offset + quote as u64;
                        // Newlines of this chunk before the quote (the deque is sorted).
                        let before = self.newlines.partition_point(|n| *n < at) - first_newline;
                        self.opened_at = self.line + before as u64;
                        self.state = Quoted;
                    } else {
                        // A quote inside an unquoted field is an ordinary byte.
                        self.state = Unquoted;
                    }
                    i = quote + 1;
                }
                Quoted => {
                    let found = match self.escape {
                        Some(escape) => memchr::memchr2(self.quote, escape, &bytes[i..]),
                        None => memchr::memchr(self.quote, &bytes[i..]),
                    };
                    match found {
                        Some(j) => {
                            i += j;
                            self.state = if bytes[i] == self.quote {
                                QuoteInQuoted
                            } else {
                                EscapeInQuoted
                            };
                            i += 1;
                        }
                        None => i = bytes.len(),
                    }
                }
                EscapeInQuoted => {
                    self.state = Quoted;
                    i += 1;
                }
                QuoteInQuoted => {
                    let b = bytes[i];
                    self.state = if b == self.quote {
                        Quoted
                    } else if self.is_boundary(b) {
                        FieldStart
                    } else {
                        Unquoted
                    };
                    i += 1;
                }
            }
        }
        self.line += (self.newlines.len() - first_newline) as u64;
        self.offset += bytes.len() as u64;
    }

    /// The line of a record that the csv crate says starts at byte `byte` (1-based). That
    /// offset is just after the previous record's terminator, or on the `\n` of its CRLF:
    /// either way the `\n`s up to and including it are the lines before. Calls must come
    /// in increasing order of `byte`.
    fn line_of(&mut self, byte: u64) -> u64 {
        while self.newlines.front().is_some_and(|&n| n <= byte) {
            self.newlines.pop_front();
            self.counted += 1;
        }
        self.counted + 1
    }

    fn check_closed(&self, part: &Part) -> Result<(), ExtractError> {
        if matches!(self.state, QuoteState::Quoted | QuoteState::EscapeInQuoted) {
            return Err(ExtractError::at(
                part,
                self.opened_at,
                "malformed CSV: a quoted field opened on this line is never closed (the file ends inside it): add the closing `\"`, and write a quote inside a field as `\"\"`",
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for QuoteTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.track(&buf[..n]);
        Ok(n)
    }
}

/// The camelCase spelling of a normalized contract column, for messages.
fn camel(normalized: &str) -> &str {
    match normalized {
        "externalid" => "externalId",
        "accountid" => "account_id",
        "elementid" => "element_id",
        "metricid" => "metric_id",
        "accountownerid" => "accountOwnerId",
        other => other,
    }
}

fn csv_error<R>(part: &Part, error: ::csv::Error, tracker: &mut QuoteTracker<R>) -> ExtractError {
    let line = match error.position() {
        Some(p) => tracker.line_of(p.byte()),
        None => tracker.line,
    };
    match error.into_kind() {
        ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => ExtractError::at(
            part,
            line,
            format!("this row has {len} fields but the header has {expected_len}: check for a missing or extra delimiter or an unclosed quote"),
        ),
        ::csv::ErrorKind::Io(e) => ExtractError::read(part, line, e),
        other => ExtractError::at(part, line, format!("malformed CSV: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The quoting of `bytes` followed one byte at a time: the state after the last byte,
    /// and the line of the quote that opened the field still open.
    fn byte_by_byte(bytes: &[u8], escape: Option<u8>) -> (QuoteState, u64) {
        use QuoteState::*;
        let boundary = |b: u8| b == b',' || b == b'\n' || b == b'\r';
        let (mut state, mut line, mut opened_at) = (FieldStart, 1, 0);
        for &b in bytes {
            state = match state {
                FieldStart if b == b'"' => {
                    opened_at = line;
                    Quoted
                }
                FieldStart | Unquoted if boundary(b) => FieldStart,
                FieldStart | Unquoted => Unquoted,
                Quoted if b == b'"' => QuoteInQuoted,
                Quoted if Some(b) == escape => EscapeInQuoted,
                Quoted => Quoted,
                EscapeInQuoted => Quoted,
                QuoteInQuoted if b == b'"' => Quoted,
                QuoteInQuoted if boundary(b) => FieldStart,
                QuoteInQuoted => Unquoted,
            };
            line += u64::from(b == b'\n');
        }
        (state, opened_at)
    }

    proptest! {
        #[test]
        fn the_tracker_follows_quotes_as_one_byte_at_a_time_in_any_chunking(
            bytes in proptest::collection::vec(proptest::sample::select(b"a,\"\n\r\\".to_vec()), 0..120),
            cuts in proptest::collection::vec(0usize..120, 0..6),
            escaped in any::<bool>(),
        ) {
            let dialect = CsvDialect { escape: escaped.then_some(b'\\'), ..CsvDialect::default() };
            let mut tracker = QuoteTracker::new(std::io::empty(), &dialect);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut from = 0;
            for cut in cuts {
                tracker.track(&bytes[from..cut]);
                from = cut;
            }
            let (state, opened_at) = byte_by_byte(&bytes, dialect.escape);
            prop_assert_eq!(tracker.state, state);
            if matches!(state, QuoteState::Quoted | QuoteState::EscapeInQuoted) {
                prop_assert_eq!(tracker.opened_at, opened_at);
            }
            let lines = 1 + bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            prop_assert_eq!(tracker.line, lines);
        }
    }
}
