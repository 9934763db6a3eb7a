//! One row of a table, whatever format it was read from: CSV cells (text, typed later over
//! the whole column) or a JSON object (from JSON, NDJSON or Parquet, values typed).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::typing::{sniff_text, Kind};

/// A column name in the form used for matching: ASCII-lowercased with `_` removed, so
/// `externalId`, `external_id` and `EXTERNAL_ID` are one column.
pub fn normalize_column(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether `name` normalizes (see [`normalize_column`]) to `normalized`, without allocating.
/// (Asked for every cell of every account: bytes, stopping at the first that differs.)
pub fn column_is(name: &str, normalized: &str) -> bool {
    let mut wanted = normalized.bytes();
    for byte in name.bytes().filter(|b| *b != b'_') {
        if wanted.next() != Some(byte.to_ascii_lowercase()) {
            return false;
        }
    }
    wanted.next().is_none()
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
    pub fn as_key(&self) -> Result<Option<Cow<'a, str>>, String> {
        match *self {
            Cell::Text("") => Ok(None),
            Cell::Text(text) => Ok(Some(Cow::Borrowed(text))),
            Cell::Json(Value::Null) => Ok(None),
            Cell::Json(Value::String(s)) if s.is_empty() => Ok(None),
            Cell::Json(Value::String(s)) => Ok(Some(Cow::Borrowed(s))),
            Cell::Json(Value::Number(n)) => Ok(Some(Cow::Owned(n.to_string()))),
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

/// The columns of a CSV part: names as written, and where each wanted column is.
#[derive(Debug)]
pub struct CsvColumns {
    pub names: Vec<String>,
    /// Index of each of the table's wanted columns (see [`super::loader::TableSpec`]).
    pub slots: Vec<Option<usize>>,
    /// A cell equal to this is empty (the dialect's `null`).
    pub null: Option<String>,
}

impl CsvColumns {
    /// The cell as read: empty when it is the dialect's `null`.
    pub fn non_null<'a>(&self, text: &'a str) -> &'a str {
        match &self.null {
            Some(null) if text == null => "",
            _ => text,
        }
    }
}

/// CSV records of one batch as read, in one buffer of bytes: checked as UTF-8 once per batch
/// (see [`Self::finish`]), not once per record.
#[derive(Debug, Default)]
pub struct CsvBatch {
    bytes: Vec<u8>,
    /// End offset in `bytes` of every field of every record.
    ends: Vec<usize>,
    /// Per record: index of its first field in `ends`, and its line.
    records: Vec<(usize, u64)>,
}

/// A field that is not UTF-8: the line of its record, and its number (1-based).
#[derive(Debug, PartialEq, Eq)]
pub struct NotUtf8 {
    pub line: u64,
    pub field: usize,
}

impl CsvBatch {
    pub fn with_capacity(records: usize) -> CsvBatch {
        CsvBatch {
            bytes: Vec::with_capacity(records * 64),
            ends: Vec::with_capacity(records * 8),
            records: Vec::with_capacity(records),
        }
    }

    pub fn push(&mut self, record: &csv::ByteRecord, line: u64) {
        self.records.push((self.ends.len(), line));
        // The record's fields are one buffer already: copied at once, then delimited.
        let start = self.bytes.len();
        self.bytes.extend_from_slice(record.as_slice());
        self.ends
            .extend((0..record.len()).filter_map(|i| record.range(i).map(|r| start + r.end)));
    }

    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// The records as text: all of them, or those before the first record with a field that
    /// is not UTF-8, and that field.
    pub fn finish(mut self) -> (CsvRecords, Option<NotUtf8>) {
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(_) => self.bytes.len(),
            Err(e) => e.valid_up_to(),
        };
        // Every field must be UTF-8 on its own: its end inside the valid text, on a
        // character boundary (a field cut inside a character is not, even when the next
        // field completes it).
        let on_boundary =
            |end: usize| end == valid || end < valid && (self.bytes[end] & 0xC0) != 0x80;
        let mut failure = None;
        if let Some(bad) = self.ends.iter().position(|&end| !on_boundary(end)) {
            let record = self.records.partition_point(|&(first, _)| first <= bad) - 1;
            let (first, line) = self.records[record];
            let start = if first == 0 { 0 } else { self.ends[first - 1] };
            self.bytes.truncate(start);
            self.ends.truncate(first);
            self.records.truncate(record);
            failure = Some(NotUtf8 {
                line,
                field: bad - first + 1,
            });
        }
        let text = match String::from_utf8(self.bytes) {
            Ok(text) => text,
            // Not possible (the prefix kept was checked); if it were, no record is lost
            // silently: the batch fails at its first record.
            Err(_) => {
                let line = self.records.first().map_or(0, |r| r.1);
                return (CsvRecords::default(), Some(NotUtf8 { line, field: 1 }));
            }
        };
        let records = CsvRecords {
            text,
            ends: self.ends,
            records: self.records,
            kinds: Vec::new(),
        };
        (records, failure)
    }
}

/// CSV records of one batch in one string: no allocation per row or cell.
#[derive(Debug, Default)]
pub struct CsvRecords {
    text: String,
    /// End offset in `text` of every field of every record.
    ends: Vec<usize>,
    /// Per record: index of its first field in `ends`, and its line.
    records: Vec<(usize, u64)>,
    /// The kind of every field (parallel to `ends`) once [`Self::sniff`] has run, else empty.
    kinds: Vec<Kind>,
}

impl CsvRecords {
    /// Types every field (see [`sniff_text`]; the dialect's `null` is empty), on the
    /// reader's thread, so that the single consumer only joins kinds.
    pub fn sniff(&mut self, columns: &CsvColumns) {
        let mut start = 0;
        self.kinds = self
            .ends
            .iter()
            .map(|&end| {
                let text = self.text.get(start..end).unwrap_or_default();
                start = end;
                sniff_text(columns.non_null(text))
            })
            .collect();
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// About the bytes the records took in their file: their fields and one delimiter each
    /// (quotes not counted).
    pub fn file_bytes(&self) -> usize {
        self.text.len() + self.ends.len()
    }

    /// The fields and line of every record.
    pub fn iter(&self) -> impl Iterator<Item = (CsvRecord<'_>, u64)> {
        self.records.iter().enumerate().map(|(i, &(first, line))| {
            let last = self.records.get(i + 1).map_or(self.ends.len(), |r| r.0);
            (
                CsvRecord {
                    text: &self.text,
                    start: if first == 0 { 0 } else { self.ends[first - 1] },
                    ends: &self.ends[first..last],
                    kinds: self.kinds.get(first..last).unwrap_or_default(),
                },
                line,
            )
        })
    }
}

/// One record of a [`CsvRecords`] batch.
#[derive(Clone, Copy)]
pub struct CsvRecord<'a> {
    text: &'a str,
    /// Where the first field starts.
    start: usize,
    ends: &'a [usize],
    /// Each field's kind, when the batch was sniffed (else empty).
    kinds: &'a [Kind],
}

impl<'a> CsvRecord<'a> {
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { self.start } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// The kind of field `i`, when the batch was sniffed.
    pub fn kind(&self, i: usize) -> Option<Kind> {
        self.kinds.get(i).copied()
    }

    pub fn iter(self) -> impl Iterator<Item = &'a str> {
        (0..self.ends.len()).filter_map(move |i| self.get(i))
    }
}

/// One row with its columns of interest resolved.
pub struct Row<'a> {
    record: Record<'a>,
    wanted: &'a [&'static str],
}

/// What a row was read from.
#[derive(Clone, Copy)]
pub enum Record<'a> {
    Csv {
        columns: &'a CsvColumns,
        record: CsvRecord<'a>,
    },
    Json(&'a Map<String, Value>),
}

impl<'a> Row<'a> {
    pub fn csv(
        columns: &'a CsvColumns,
        record: CsvRecord<'a>,
        wanted: &'a [&'static str],
    ) -> Row<'a> {
        Row {
            record: Record::Csv { columns, record },
            wanted,
        }
    }

    pub fn json(map: &'a Map<String, Value>, wanted: &'a [&'static str]) -> Row<'a> {
        Row {
            record: Record::Json(map),
            wanted,
        }
    }

    /// The cell of the `slot`-th wanted column, if the row has it.
    pub fn get(&self, slot: usize) -> Option<Cell<'a>> {
        match &self.record {
            Record::Csv { columns, record } => columns.slots[slot]
                .and_then(|i| record.get(i))
                .map(|text| Cell::Text(columns.non_null(text))),
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

    /// The CSV record (with its part's columns) or JSON object behind the row.
    pub fn record(&self) -> Record<'a> {
        self.record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[&[&[u8]]]) -> CsvBatch {
        let mut batch = CsvBatch::with_capacity(4);
        for (i, fields) in records.iter().enumerate() {
            batch.push(&csv::ByteRecord::from(fields.to_vec()), i as u64 + 2);
        }
        batch
    }

    fn texts(records: &CsvRecords) -> Vec<Vec<&str>> {
        records.iter().map(|(r, _)| r.iter().collect()).collect()
    }

    #[test]
    fn a_batch_keeps_the_records_before_a_field_that_is_not_utf8_and_names_it() {
        let (records, bad) =
            batch(&[&[b"a", "é".as_bytes()], &[b"b", b"caf\xe9"], &[b"c", b"d"]]).finish();
        assert_eq!(texts(&records), vec![vec!["a", "é"]]);
        assert_eq!(bad, Some(NotUtf8 { line: 3, field: 2 }));

        let (records, bad) = batch(&[&[b"a", "é".as_bytes()], &[b"", b"z"]]).finish();
        assert_eq!(texts(&records), vec![vec!["a", "é"], vec!["", "z"]]);
        assert_eq!(bad, None);
    }

    #[test]
    fn a_character_cut_between_two_fields_is_not_utf8() {
        // Together the two fields are "é"; neither is UTF-8 alone.
        let (records, bad) = batch(&[&[b"a"], &[b"\xc3", b"\xa9"]]).finish();
        assert_eq!(texts(&records), vec![vec!["a"]]);
        assert_eq!(bad, Some(NotUtf8 { line: 3, field: 1 }));
    }

    #[test]
    fn column_is_ignores_case_and_underscores_on_both_paths() {
        for (name, normalized, expected) in [
            ("externalId", "externalid", true),
            ("EXTERNAL_ID", "externalid", true),
            ("external_id", "externalid", true),
            ("_id", "id", true),
            ("ids", "id", false),
            ("external_ids", "externalid", false),
            ("extérnalId", "externalid", false),
            ("iD", "id", true),
        ] {
            assert_eq!(
                column_is(name, normalized),
                expected,
                "{name} vs {normalized}"
            );
            assert_eq!(normalize_column(name) == normalized, expected, "{name}");
        }
    }
}
