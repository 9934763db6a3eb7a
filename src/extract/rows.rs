//! Reading a table file row by row, whatever its format: CSV (header row), JSON (array of
//! objects) or NDJSON (one object per line). Rows stream; only one is held at a time.

use std::io::BufRead;

use serde_json::{Map, Value};

use super::files::{Format, TableFile};
use super::ExtractError;

/// A column name in the form used for matching: ASCII-lowercased with `_` removed, so
/// `externalId`, `external_id` and `EXTERNAL_ID` are one column.
pub fn normalize_column(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether `name` normalizes (see [`normalize_column`]) to `normalized`, without allocating.
pub fn column_is(name: &str, normalized: &str) -> bool {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .eq(normalized.chars())
}

/// One cell of a row: CSV text, or a JSON value.
#[derive(Clone, Copy, Debug)]
pub enum Cell<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl<'a> Cell<'a> {
    /// The cell as a key (an id or a name): text as is, JSON strings and numbers as text.
    /// Empty text and JSON null are `None`.
    pub fn as_key(&self) -> Result<Option<String>, String> {
        match self {
            Cell::Text("") => Ok(None),
            Cell::Text(text) => Ok(Some((*text).to_string())),
            Cell::Json(Value::Null) => Ok(None),
            Cell::Json(Value::String(s)) if s.is_empty() => Ok(None),
            Cell::Json(Value::String(s)) => Ok(Some(s.clone())),
            Cell::Json(Value::Number(n)) => Ok(Some(n.to_string())),
            Cell::Json(other) => Err(format!(
                "expected a string or number, found {}",
                json_type(other)
            )),
        }
    }
}

/// `"an object"`, `"an array"`, … for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One row with its columns of interest resolved.
pub struct Row<'a> {
    record: Record<'a>,
    wanted: &'a [&'static str],
    slots: &'a [Option<usize>],
}

enum Record<'a> {
    Csv {
        headers: &'a [String],
        record: &'a csv::StringRecord,
    },
    Json(&'a Map<String, Value>),
}

impl<'a> Row<'a> {
    /// The cell of the `slot`-th wanted column, if the row has it.
    pub fn get(&self, slot: usize) -> Option<Cell<'a>> {
        match &self.record {
            Record::Csv { record, .. } => {
                self.slots[slot].and_then(|i| record.get(i)).map(Cell::Text)
            }
            Record::Json(map) => {
                let want = self.wanted[slot];
                map.get(want)
                    .or_else(|| {
                        map.iter()
                            .find(|(k, _)| normalize_column(k) == want)
                            .map(|(_, v)| v)
                    })
                    .map(Cell::Json)
            }
        }
    }

    /// Every column of the row with its name as written, in file order.
    pub fn cells(&self) -> Box<dyn Iterator<Item = (&'a str, Cell<'a>)> + 'a> {
        match self.record {
            Record::Csv { headers, record } => Box::new(
                headers
                    .iter()
                    .map(String::as_str)
                    .zip(record.iter().map(Cell::Text)),
            ),
            Record::Json(map) => Box::new(map.iter().map(|(k, v)| (k.as_str(), Cell::Json(v)))),
        }
    }

    /// The JSON object behind the row (`None` for CSV).
    pub fn json(&self) -> Option<&'a Map<String, Value>> {
        match self.record {
            Record::Json(map) => Some(map),
            Record::Csv { .. } => None,
        }
    }
}

/// Reads `file` and calls `visit(row, line)` for each row (for Parquet, `line` is the row
/// number). `wanted` are normalized column names (see [`normalize_column`]); those in
/// `required` must be in a CSV header. Warnings about the file go to `warnings`.
/// Returns the number of rows.
pub fn read_rows(
    file: &TableFile,
    warnings: &mut Vec<String>,
    wanted: &[&'static str],
    required: &[&'static str],
    mut visit: impl FnMut(&Row<'_>, u64) -> Result<(), ExtractError>,
) -> Result<u64, ExtractError> {
    if file.format == Format::Parquet {
        return read_parquet(file, warnings, wanted, &mut visit);
    }
    let mut reader = file.open()?;
    // A UTF-16 export (Excel's "Unicode text") is not UTF-8: say so rather than report its
    // first zero byte as bad UTF-8 or bad JSON.
    let start = reader
        .fill_buf()
        .map_err(|e| ExtractError::read(file, 1, e))?;
    if start.starts_with(&[0xFF, 0xFE]) || start.starts_with(&[0xFE, 0xFF]) {
        return Err(ExtractError::at(
            file,
            1,
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark): re-export it as UTF-8",
        ));
    }
    match file.format {
        Format::Csv => read_csv(file, reader, wanted, required, &mut visit),
        Format::Json => read_json_array(file, reader, wanted, &mut visit),
        Format::Ndjson => read_ndjson(file, reader, wanted, &mut visit),
        Format::Parquet => unreachable!("Parquet is read above"),
    }
}

/// A Parquet file's rows, as JSON objects typed from its schema (see [`super::parquet`]).
fn read_parquet(
    file: &TableFile,
    warnings: &mut Vec<String>,
    wanted: &[&'static str],
    visit: &mut dyn FnMut(&Row<'_>, u64) -> Result<(), ExtractError>,
) -> Result<u64, ExtractError> {
    if file.gzip {
        return Err(ExtractError::at(
            file,
            1,
            "a Parquet file is compressed inside: gunzip it (or export it again without gzip)",
        ));
    }
    let summary = super::parquet::read_rows(&file.path, &file.display_name(), |map, row| {
        let row_view = Row {
            record: Record::Json(&map),
            wanted,
            slots: &[],
        };
        visit(&row_view, row)
    })?;
    warnings.extend(summary.warnings);
    Ok(summary.rows)
}

fn read_csv(
    file: &TableFile,
    reader: Box<dyn BufRead + Send>,
    wanted: &[&'static str],
    required: &[&'static str],
    visit: &mut dyn FnMut(&Row<'_>, u64) -> Result<(), ExtractError>,
) -> Result<u64, ExtractError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(QuoteTracker::new(reader));
    let mut record = csv::StringRecord::new();
    if !csv
        .read_record(&mut record)
        .map_err(|e| csv_error(file, e, csv.get_mut()))?
    {
        csv.get_ref().check_closed(file)?;
        return Err(ExtractError::at(
            file,
            1,
            "the file is empty: expected a header row naming the columns",
        ));
    }
    let headers: Vec<String> = record.iter().map(str::to_string).collect();
    let mut seen = std::collections::HashSet::new();
    for (i, name) in headers.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(ExtractError::at(
                file,
                1,
                format!("column {} has no name in the header row", i + 1),
            ));
        }
        if name.contains('\u{feff}') {
            return Err(ExtractError::at(
                file,
                1,
                format!("the name of column {} contains a byte-order mark (U+FEFF), which belongs only at the very start of a file: the file was probably made by concatenating exports; remove the stray mark", i + 1),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(ExtractError::at(
                file,
                1,
                format!("the column `{name}` appears twice in the header row: keep one"),
            ));
        }
    }
    let normalized: Vec<String> = headers.iter().map(|h| normalize_column(h)).collect();
    let slots: Vec<Option<usize>> = wanted
        .iter()
        .map(|w| normalized.iter().position(|n| n == w))
        .collect();
    for want in wanted {
        let mut same = headers
            .iter()
            .zip(&normalized)
            .filter(|(_, n)| *n == want)
            .map(|(h, _)| h);
        if let (Some(first), Some(second)) = (same.next(), same.next()) {
            return Err(ExtractError::at(
                file,
                1,
                format!("`{first}` and `{second}` are the same column (camelCase and snake_case spellings of one name): keep one"),
            ));
        }
    }
    for need in required {
        if !normalized.iter().any(|n| n == need) {
            return Err(ExtractError::at(
                file,
                1,
                format!("the header row has no `{}` column (found: {}); add it — camelCase or snake_case both work", camel(need), headers.join(", ")),
            ));
        }
    }
    let mut rows = 0;
    while csv
        .read_record(&mut record)
        .map_err(|e| csv_error(file, e, csv.get_mut()))?
    {
        // Not `p.line()`: the csv crate counts a CRLF record's `\n` into the next record,
        // so every line after the first would be one short.
        let line = record
            .position()
            .map(|p| csv.get_mut().line_of(p.byte()))
            .unwrap_or(0);
        let row = Row {
            record: Record::Csv {
                headers: &headers,
                record: &record,
            },
            wanted,
            slots: &slots,
        };
        visit(&row, line)?;
        rows += 1;
    }
    csv.get_ref().check_closed(file)?;
    Ok(rows)
}

/// Passes a CSV byte stream through while following its quoting the way the `csv` crate
/// reads it, because that crate silently ends a record at end of file when a quoted field
/// was never closed (the rest of the file becomes one cell). Also counts lines, so that a
/// read error (a truncated gzip) can name the line the stream broke on.
struct QuoteTracker<R> {
    inner: R,
    state: QuoteState,
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: closes it, or starts a `""` escape.
    QuoteInQuoted,
}

impl<R> QuoteTracker<R> {
    fn new(inner: R) -> Self {
        QuoteTracker {
            inner,
            state: QuoteState::FieldStart,
            line: 1,
            opened_at: 0,
            offset: 0,
            newlines: std::collections::VecDeque::new(),
            counted: 0,
        }
    }

    fn track(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        for &b in bytes {
            self.state = match (self.state, b) {
                (FieldStart, b'"') => {
                    self.opened_at = self.line;
                    Quoted
                }
                (Quoted, b'"') => QuoteInQuoted,
                (Quoted, _) => Quoted,
                (QuoteInQuoted, b'"') => Quoted,
                (_, b',' | b'\n' | b'\r') => FieldStart,
                _ => Unquoted,
            };
            if b == b'\n' {
                self.line += 1;
                self.newlines.push_back(self.offset);
            }
            self.offset += 1;
        }
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

    fn check_closed(&self, file: &TableFile) -> Result<(), ExtractError> {
        if self.state == QuoteState::Quoted {
            return Err(ExtractError::at(
                file,
                self.opened_at,
                "malformed CSV: a quoted field opened on this line is never closed (the file ends inside it): add the closing `\"`, and write a quote inside a field as `\"\"`",
            ));
        }
        Ok(())
    }
}

impl<R: std::io::Read> std::io::Read for QuoteTracker<R> {
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

/// `reached` is the line the reader had got to, for errors without a position (I/O).
fn csv_error<R>(
    file: &TableFile,
    error: csv::Error,
    tracker: &mut QuoteTracker<R>,
) -> ExtractError {
    let line = match error.position() {
        Some(p) => tracker.line_of(p.byte()),
        None => tracker.line,
    };
    match error.into_kind() {
        csv::ErrorKind::Utf8 { err, .. } => ExtractError::at(
            file,
            line,
            format!("field {} is not valid UTF-8: re-export the file as UTF-8", err.field() + 1),
        ),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => ExtractError::at(
            file,
            line,
            format!("this row has {len} fields but the header has {expected_len}: check for a missing or extra delimiter or an unclosed quote"),
        ),
        csv::ErrorKind::Io(e) => ExtractError::read(file, line, e),
        other => ExtractError::at(file, line, format!("malformed CSV: {other:?}")),
    }
}

/// Parses one row (an NDJSON line, or an element of a JSON array starting on `line`).
fn parse_object(
    file: &TableFile,
    bytes: &[u8],
    line: u64,
    hint: &str,
) -> Result<Map<String, Value>, ExtractError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let valid = &bytes[..e.valid_up_to()];
        let at = line + valid.iter().filter(|b| **b == b'\n').count() as u64;
        return Err(ExtractError::at(
            file,
            at,
            "the text is not valid UTF-8: re-export the file as UTF-8",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ExtractError::at(
            file,
            line,
            format!(
                "expected a JSON object for each row, found {}: write each row as one object, `{{\"column\": value, …}}`",
                json_type(&other)
            ),
        )),
        Err(e) => {
            // serde_json's position is relative to this row's text; the line is made
            // absolute below, the rest of the message is kept without it.
            let text = e.to_string();
            let what = text.rfind(" at line ").map_or(text.as_str(), |i| &text[..i]);
            Err(ExtractError::at(
                file,
                line + e.line().saturating_sub(1) as u64,
                format!("invalid JSON ({what}): {hint}"),
            ))
        }
    }
}

fn read_ndjson(
    file: &TableFile,
    mut reader: Box<dyn BufRead + Send>,
    wanted: &[&'static str],
    visit: &mut dyn FnMut(&Row<'_>, u64) -> Result<(), ExtractError>,
) -> Result<u64, ExtractError> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut rows = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| ExtractError::read(file, line + 1, e))?;
        if n == 0 {
            return Ok(rows);
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let map = parse_object(
            file,
            &buf,
            line,
            "each line must hold one complete JSON object",
        )?;
        visit(
            &Row {
                record: Record::Json(&map),
                wanted,
                slots: &[],
            },
            line,
        )?;
        rows += 1;
    }
}

/// Streams the elements of a top-level JSON array, each parsed on its own so that a message
/// can name the line where the element starts.
fn read_json_array(
    file: &TableFile,
    reader: Box<dyn BufRead + Send>,
    wanted: &[&'static str],
    visit: &mut dyn FnMut(&Row<'_>, u64) -> Result<(), ExtractError>,
) -> Result<u64, ExtractError> {
    let mut scan = ByteScanner {
        reader,
        line: 1,
        file,
    };
    let not_array = |scan: &ByteScanner| {
        ExtractError::at(file, scan.line, "expected a JSON array of objects (`[{...}, {...}]`); for one object per line name the file .ndjson")
    };
    if scan.next_non_ws()? != Some(b'[') {
        return Err(not_array(&scan));
    }
    let mut rows = 0;
    let mut element = Vec::new();
    let mut first = true;
    loop {
        let start = match scan.next_non_ws()? {
            Some(b']') if first => break,
            Some(b) => b,
            None => {
                return Err(ExtractError::at(
                    file,
                    scan.line,
                    "the JSON array is not closed: the file is truncated",
                ))
            }
        };
        first = false;
        let start_line = scan.line;
        element.clear();
        element.push(start);
        let delimited = matches!(start, b'{' | b'[' | b'"');
        if start == b'"' {
            scan.copy_string(&mut element)?;
        } else if delimited {
            scan.copy_nested(&mut element)?;
        }
        let mut after = scan.next_non_ws()?;
        if !delimited {
            // A scalar: runs until the next separator.
            while let Some(b) = after {
                if b == b',' || b == b']' || b.is_ascii_whitespace() {
                    break;
                }
                element.push(b);
                after = scan.next_byte()?;
            }
            if after.is_some_and(|b| b.is_ascii_whitespace()) {
                after = scan.next_non_ws()?;
            }
        }
        let map = parse_object(
            file,
            &element,
            start_line,
            "fix the syntax of this array element",
        )?;
        visit(
            &Row {
                record: Record::Json(&map),
                wanted,
                slots: &[],
            },
            start_line,
        )?;
        rows += 1;
        match after {
            Some(b',') => continue,
            Some(b']') => break,
            Some(_) => {
                return Err(ExtractError::at(
                    file,
                    scan.line,
                    "invalid JSON: expected `,` or `]` after an array element",
                ))
            }
            None => {
                return Err(ExtractError::at(
                    file,
                    scan.line,
                    "the JSON array is not closed: the file is truncated",
                ))
            }
        }
    }
    if scan.next_non_ws()?.is_some() {
        return Err(ExtractError::at(
            file,
            scan.line,
            "invalid JSON: text after the closing `]`",
        ));
    }
    Ok(rows)
}

struct ByteScanner<'f> {
    reader: Box<dyn BufRead + Send>,
    line: u64,
    file: &'f TableFile,
}

impl ByteScanner<'_> {
    fn next_byte(&mut self) -> Result<Option<u8>, ExtractError> {
        let buf = self
            .reader
            .fill_buf()
            .map_err(|e| ExtractError::read(self.file, self.line, e))?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.reader.consume(1);
        if b == b'\n' {
            self.line += 1;
        }
        Ok(Some(b))
    }

    fn next_non_ws(&mut self) -> Result<Option<u8>, ExtractError> {
        loop {
            match self.next_byte()? {
                Some(b) if b.is_ascii_whitespace() => continue,
                other => return Ok(other),
            }
        }
    }

    /// Copies bytes into `out` until the string opened by `out[0]` closes.
    fn copy_string(&mut self, out: &mut Vec<u8>) -> Result<(), ExtractError> {
        let mut escaped = false;
        loop {
            let Some(b) = self.next_byte()? else {
                return Err(ExtractError::at(
                    self.file,
                    self.line,
                    "invalid JSON: the file ends inside a string (truncated?)",
                ));
            };
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => return Ok(()),
                _ => {}
            }
        }
    }

    /// Copies bytes into `out` until the bracket opened by `out[0]` closes (strings honoured).
    fn copy_nested(&mut self, out: &mut Vec<u8>) -> Result<(), ExtractError> {
        let mut depth = 1usize;
        let mut in_string = false;
        let mut escaped = false;
        while depth > 0 {
            let Some(b) = self.next_byte()? else {
                return Err(ExtractError::at(
                    self.file,
                    self.line,
                    "invalid JSON: the file ends inside a value (truncated?)",
                ));
            };
            out.push(b);
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }
}
