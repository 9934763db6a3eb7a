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

/// Reads `file` and calls `visit(row, line)` for each row. `wanted` are normalized column
/// names (see [`normalize_column`]); those in `required` must be in a CSV header.
/// Returns the number of rows.
pub fn read_rows(
    file: &TableFile,
    wanted: &[&'static str],
    required: &[&'static str],
    mut visit: impl FnMut(&Row<'_>, u64) -> Result<(), ExtractError>,
) -> Result<u64, ExtractError> {
    let reader = file.open()?;
    match file.format {
        Format::Csv => read_csv(file, reader, wanted, required, &mut visit),
        Format::Json => read_json_array(file, reader, wanted, &mut visit),
        Format::Ndjson => read_ndjson(file, reader, wanted, &mut visit),
    }
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
        .from_reader(reader);
    let mut record = csv::StringRecord::new();
    if !csv
        .read_record(&mut record)
        .map_err(|e| csv_error(file, e))?
    {
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
        .map_err(|e| csv_error(file, e))?
    {
        let line = record.position().map(|p| p.line()).unwrap_or(0);
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
    Ok(rows)
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

fn csv_error(file: &TableFile, error: csv::Error) -> ExtractError {
    let line = error.position().map(|p| p.line()).unwrap_or(0);
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

fn parse_object(
    file: &TableFile,
    bytes: &[u8],
    line: u64,
) -> Result<Map<String, Value>, ExtractError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ExtractError::at(
            file,
            line,
            format!(
                "expected a JSON object for each row, found {}",
                json_type(&other)
            ),
        )),
        Err(e) => Err(ExtractError::at(
            file,
            line + e.line().saturating_sub(1) as u64,
            format!("invalid JSON: {e}"),
        )),
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
        let map = parse_object(file, &buf, line)?;
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
        if start == b'{' || start == b'[' {
            scan.copy_nested(&mut element)?;
        }
        let mut after = scan.next_non_ws()?;
        if start != b'{' && start != b'[' {
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
        let map = parse_object(file, &element, start_line)?;
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
