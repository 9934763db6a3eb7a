//! JSON parts: a JSON array of objects, or NDJSON (one object per line; BigQuery writes it
//! into files named `.json`). Each row is parsed on the reader's thread.

use std::io::BufRead;

use serde_json::{Map, Value};

use super::{check_not_utf16, Reader, Rows, TableSpec, BATCH_ROWS};
use crate::extract::options::TableOptions;
use crate::extract::rows::json_type;
use crate::extract::source::Part;
use crate::extract::ExtractError;

pub struct NdjsonReader;
pub struct JsonArrayReader;

/// Collects rows into batches for `emit`; `false` once the consumer is gone.
struct Batcher<'e> {
    batch: Vec<(Map<String, Value>, u64)>,
    emit: &'e mut dyn FnMut(Rows) -> bool,
}

impl<'e> Batcher<'e> {
    fn new(emit: &'e mut dyn FnMut(Rows) -> bool) -> Self {
        Batcher {
            batch: Vec::with_capacity(BATCH_ROWS),
            emit,
        }
    }

    fn push(&mut self, row: Map<String, Value>, line: u64) -> bool {
        self.batch.push((row, line));
        self.batch.len() < BATCH_ROWS || self.flush()
    }

    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        (self.emit)(Rows::Json(full))
    }
}

fn open(part: &Part) -> Result<Box<dyn BufRead + Send>, ExtractError> {
    let mut reader = part.open()?;
    let start = reader
        .fill_buf()
        .map_err(|e| ExtractError::read(part, 1, e))?;
    check_not_utf16(part, start)?;
    Ok(reader)
}

impl Reader for NdjsonReader {
    fn read(
        &self,
        part: &Part,
        _options: &TableOptions,
        _spec: TableSpec,
        emit: &mut dyn FnMut(Rows) -> bool,
    ) -> Result<(), ExtractError> {
        let mut out = Batcher::new(emit);
        read_ndjson(part, open(part)?, &mut out)?;
        out.flush();
        Ok(())
    }
}

impl Reader for JsonArrayReader {
    fn read(
        &self,
        part: &Part,
        _options: &TableOptions,
        _spec: TableSpec,
        emit: &mut dyn FnMut(Rows) -> bool,
    ) -> Result<(), ExtractError> {
        let mut out = Batcher::new(emit);
        let mut reader = open(part)?;
        let empty = reader
            .fill_buf()
            .map_err(|e| ExtractError::read(part, 1, e))?
            .is_empty();
        if empty && part.may_be_empty {
            return Ok(());
        }
        read_json_array(part, reader, &mut out)?;
        out.flush();
        Ok(())
    }
}

/// Parses one row (an NDJSON line, or an element of a JSON array starting on `line`).
fn parse_object(
    part: &Part,
    bytes: &[u8],
    line: u64,
    hint: &str,
) -> Result<Map<String, Value>, ExtractError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let valid = &bytes[..e.valid_up_to()];
        let at = line + valid.iter().filter(|b| **b == b'\n').count() as u64;
        return Err(ExtractError::at(
            part,
            at,
            "the text is not valid UTF-8: re-export the file as UTF-8",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ExtractError::at(
            part,
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
                part,
                line + e.line().saturating_sub(1) as u64,
                format!("invalid JSON ({what}): {hint}"),
            ))
        }
    }
}

fn read_ndjson(
    part: &Part,
    mut reader: Box<dyn BufRead + Send>,
    out: &mut Batcher<'_>,
) -> Result<(), ExtractError> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| ExtractError::read(part, line + 1, e))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let map = parse_object(
            part,
            &buf,
            line,
            "each line must hold one complete JSON object",
        )?;
        if !out.push(map, line) {
            return Ok(());
        }
    }
}

/// Streams the elements of a top-level JSON array, each parsed on its own so that a message
/// can name the line where the element starts.
fn read_json_array(
    part: &Part,
    reader: Box<dyn BufRead + Send>,
    out: &mut Batcher<'_>,
) -> Result<(), ExtractError> {
    let mut scan = ByteScanner {
        reader,
        line: 1,
        part,
    };
    let not_array = |scan: &ByteScanner| {
        ExtractError::at(part, scan.line, "expected a JSON array of objects (`[{...}, {...}]`) or one JSON object per line (NDJSON)")
    };
    if scan.next_non_ws()? != Some(b'[') {
        return Err(not_array(&scan));
    }
    let mut element = Vec::new();
    let mut first = true;
    loop {
        let start = match scan.next_non_ws()? {
            Some(b']') if first => break,
            Some(b) => b,
            None => {
                return Err(ExtractError::at(
                    part,
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
            part,
            &element,
            start_line,
            "fix the syntax of this array element",
        )?;
        if !out.push(map, start_line) {
            return Ok(());
        }
        match after {
            Some(b',') => continue,
            Some(b']') => break,
            Some(_) => {
                return Err(ExtractError::at(
                    part,
                    scan.line,
                    "invalid JSON: expected `,` or `]` after an array element",
                ))
            }
            None => {
                return Err(ExtractError::at(
                    part,
                    scan.line,
                    "the JSON array is not closed: the file is truncated",
                ))
            }
        }
    }
    if scan.next_non_ws()?.is_some() {
        return Err(ExtractError::at(
            part,
            scan.line,
            "invalid JSON: text after the closing `]`",
        ));
    }
    Ok(())
}

struct ByteScanner<'f> {
    reader: Box<dyn BufRead + Send>,
    line: u64,
    part: &'f Part,
}

impl ByteScanner<'_> {
    fn next_byte(&mut self) -> Result<Option<u8>, ExtractError> {
        let buf = self
            .reader
            .fill_buf()
            .map_err(|e| ExtractError::read(self.part, self.line, e))?;
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
                    self.part,
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
                    self.part,
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
