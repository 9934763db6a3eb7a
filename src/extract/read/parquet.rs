//! Reading one Parquet file as JSON rows, typed from the file's schema, never from the values.
//!
//! Contract (the README's "Parquet" rules):
//! - signed/unsigned integers → JSON integer; FLOAT/DOUBLE → JSON float (a FLOAT keeps its
//!   shortest decimal text: `0.1f32` is `0.1`); NaN and ±infinity → absent, counted in a warning;
//! - DECIMAL → integer when its scale is 0 and it fits an `i64`, else the float of its decimal
//!   text (`0.10` → `0.1`);
//! - BOOLEAN → boolean; strings (plain, large, view, dictionary-encoded) → string, never re-typed;
//!   a string column annotated JSON → the JSON value it holds;
//! - DATE → `"YYYY-MM-DD"`; TIME → `"HH:MM:SS"`; TIMESTAMP of any unit, with or without a time
//!   zone → RFC 3339 UTC `"YYYY-MM-DDTHH:MM:SSZ"` (a timestamp without a zone is taken as UTC),
//!   with a fraction only when it is non-zero, trailing zeros trimmed, so one instant has one
//!   text whatever the unit the warehouse chose (`…:05.5Z`, never `…:05.500000Z`);
//! - NULL → key absent; LIST → JSON array; STRUCT → JSON object; MAP → JSON object (keys as
//!   text); a UUID → its `8-4-4-4-12` text;
//! - BINARY / FIXED_LEN_BYTE_ARRAY → the column (or struct field) is skipped, with one warning
//!   naming it; other types (INTERVAL, …) are an error naming the column.
//!
//! Rows are read in record batches of [`BATCH_ROWS`], so memory stays bounded whatever the size
//! of the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{Reader, Rows, TableSpec};
use crate::extract::options::TableOptions;
use crate::extract::source::{Compression, Part, TableSource};
use crate::extract::ExtractError;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, Field, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Number, Value};

/// Rows per record batch: bounds the memory a file takes while it is read.
pub const BATCH_ROWS: usize = 8192;

/// Why a Parquet file cannot be read. Every message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("cannot read the file: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("not a Parquet file (a Parquet file starts and ends with `PAR1`): export the table as Parquet, or name the file after its real format (.csv, .json, .ndjson)")]
    NotParquet { file: String },
    #[error("the Parquet file is encrypted: export it without Parquet encryption")]
    Encrypted { file: String },
    #[error("the Parquet file is truncated or corrupt ({detail}): re-export or re-download it")]
    Corrupt { file: String, detail: String },
    #[error("column `{column}` is {data_type}, which cannot become an Intercom attribute: cast it in the export to a string, a number or a timestamp, or leave the column out")]
    Unsupported {
        file: String,
        column: String,
        data_type: String,
    },
    #[error("column `{column}` is annotated JSON but holds invalid JSON ({detail}): fix the value, or export the column as a plain string")]
    InvalidJson {
        file: String,
        row: u64,
        column: String,
        detail: String,
    },
}

impl ParquetError {
    /// Where the error is: the file, and the row when one is known.
    fn location(&self) -> String {
        match self {
            ParquetError::Io { file, .. }
            | ParquetError::NotParquet { file }
            | ParquetError::Encrypted { file }
            | ParquetError::Corrupt { file, .. }
            | ParquetError::Unsupported { file, .. } => file.clone(),
            ParquetError::InvalidJson { file, row, .. } => format!("{file}:{row}"),
        }
    }
}

impl From<ParquetError> for ExtractError {
    fn from(e: ParquetError) -> Self {
        ExtractError::Input {
            location: e.location(),
            message: e.to_string(),
        }
    }
}

/// Parquet parts, behind the reader interface: rows become JSON objects (the JSON path
/// applies the Vitally rules), batch by batch.
pub struct ParquetReader;

/// Why reading stopped early: an error, or the consumer is gone.
enum Stop {
    Failed(ParquetError),
    ConsumerGone,
}

impl From<ParquetError> for Stop {
    fn from(e: ParquetError) -> Self {
        Stop::Failed(e)
    }
}

impl Reader for ParquetReader {
    fn read(
        &self,
        part: &Part,
        _options: &TableOptions,
        _spec: TableSpec,
        emit: &mut dyn FnMut(Rows) -> bool,
    ) -> Result<(), ExtractError> {
        if part.compression != Compression::None {
            return Err(ExtractError::at(part, 1, "a Parquet file compresses its pages itself: decompress the file (gzip/zstd around Parquet is not read)"));
        }
        let mut batch = Vec::with_capacity(super::BATCH_ROWS);
        let read = read_rows(&part.path, &part.name, |row, number| -> Result<(), Stop> {
            batch.push((row, number));
            if batch.len() == super::BATCH_ROWS && !emit(Rows::Json(std::mem::take(&mut batch))) {
                return Err(Stop::ConsumerGone);
            }
            Ok(())
        });
        match read {
            Ok(summary) => {
                if !batch.is_empty() && !emit(Rows::Json(batch)) {
                    return Ok(());
                }
                if !summary.warnings.is_empty() {
                    emit(Rows::Warnings(summary.warnings));
                }
                Ok(())
            }
            Err(Stop::Failed(e)) => Err(e.into()),
            Err(Stop::ConsumerGone) => Ok(()),
        }
    }
}

/// Every part of a Parquet table must have one schema: the first difference, naming both
/// parts, is an error.
pub fn check_parts(source: &TableSource) -> Result<(), ExtractError> {
    let Some((first, rest)) = source.parts.split_first() else {
        return Ok(());
    };
    let expected = schema(&first.path, &first.name)?;
    for part in rest {
        let found = schema(&part.path, &part.name)?;
        if let Some(difference) = schema_difference(&expected, &first.name, &found, &part.name) {
            return Err(ExtractError::Input {
                location: part.name.clone(),
                message: difference,
            });
        }
    }
    Ok(())
}

/// What reading a file gave besides its rows.
#[derive(Debug, Default)]
pub struct ReadSummary {
    pub rows: u64,
    /// Skipped binary columns and non-finite floats, one line each, naming the file.
    pub warnings: Vec<String>,
}

/// The file's top-level columns as (name, type description): `INT64`, `STRING`, `DOUBLE`,
/// `DECIMAL(12,2)`, `TIMESTAMP(MICROS, UTC)`, `DATE`, `LIST<STRING>`, `STRUCT<a: INT64>`,
/// `MAP<STRING, INT64>`, `BINARY`, … Dictionary encoding is not part of the description, so
/// the parts of one table can be compared with [`schema_difference`].
pub fn schema(path: &Path, name: &str) -> Result<Vec<(String, String)>, ParquetError> {
    let builder = open(path, name)?;
    Ok(builder
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), describe(f)))
        .collect())
}

/// The first way two parts' schemas disagree, as a message naming both parts
/// (`column `x` is INT64 in part-0 and STRING in part-3`), or `None` when they agree.
pub fn schema_difference(
    a: &[(String, String)],
    a_name: &str,
    b: &[(String, String)],
    b_name: &str,
) -> Option<String> {
    for (column, a_type) in a {
        match b.iter().find(|(c, _)| c == column) {
            Some((_, b_type)) if b_type != a_type => {
                return Some(format!(
                    "column `{column}` is {a_type} in {a_name} and {b_type} in {b_name}: export every part with one schema"
                ))
            }
            Some(_) => {}
            None => {
                return Some(format!(
                    "column `{column}` is in {a_name} but not in {b_name}: export every part with one schema"
                ))
            }
        }
    }
    b.iter()
        .find(|(c, _)| !a.iter().any(|(other, _)| other == c))
        .map(|(column, _)| {
            format!("column `{column}` is in {b_name} but not in {a_name}: export every part with one schema")
        })
}

/// Reads the Parquet file at `path` (`name` is how messages call it) and calls
/// `visit(row, row_number)` for each row in file order, with row numbers from 1. Stops at the
/// first error, the visitor's included.
pub fn read_rows<E: From<ParquetError>>(
    path: &Path,
    name: &str,
    mut visit: impl FnMut(Map<String, Value>, u64) -> Result<(), E>,
) -> Result<ReadSummary, E> {
    let builder = open(path, name)?;
    let corrupt = |detail: String| ParquetError::Corrupt {
        file: name.to_string(),
        detail,
    };
    let mut columns = Vec::new();
    let mut summary = ReadSummary::default();
    for field in builder.schema().fields() {
        match support(field) {
            Ok(Support::Read) => {
                for skipped in skipped_struct_fields(field, field.name()) {
                    summary.warnings.push(binary_warning(name, &skipped));
                }
                columns.push(Some(Column {
                    name: field.name().clone(),
                    non_finite: 0,
                }));
            }
            Ok(Support::Skip) => {
                summary.warnings.push(binary_warning(name, field.name()));
                columns.push(None);
            }
            Err(()) => {
                return Err(ParquetError::Unsupported {
                    file: name.to_string(),
                    column: field.name().clone(),
                    data_type: describe(field),
                }
                .into())
            }
        }
    }
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| corrupt(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        let first_row = summary.rows + 1;
        let mut values =
            convert_batch(&batch, &mut columns).map_err(|e| ParquetError::InvalidJson {
                file: name.to_string(),
                row: first_row + e.row as u64,
                column: e.column,
                detail: e.detail,
            })?;
        for row in 0..batch.num_rows() {
            let mut map = Map::new();
            for (column, cells) in columns.iter().zip(values.iter_mut()) {
                if let (Some(column), Some(value)) =
                    (column, cells.get_mut(row).and_then(Option::take))
                {
                    map.insert(column.name.clone(), value);
                }
            }
            summary.rows += 1;
            visit(map, summary.rows)?;
        }
    }
    for column in columns.iter().flatten() {
        if column.non_finite > 0 {
            summary.warnings.push(format!(
                "{name}: column `{}`: {} NaN or infinite values, which JSON cannot hold; left out",
                column.name, column.non_finite
            ));
        }
    }
    Ok(summary)
}

/// Opens the file after checking its magic bytes, so that a file of another format and a
/// truncated one get different messages.
fn open(path: &Path, name: &str) -> Result<ParquetRecordBatchReaderBuilder<File>, ParquetError> {
    let io = |source| ParquetError::Io {
        file: name.to_string(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    if len >= 4 {
        file.read_exact(&mut head).map_err(io)?;
        file.seek(SeekFrom::End(-4)).map_err(io)?;
        file.read_exact(&mut tail).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
    }
    match (&head, &tail) {
        (_, b"PARE") => {
            return Err(ParquetError::Encrypted {
                file: name.to_string(),
            })
        }
        (b"PAR1", b"PAR1") if len >= 12 => {}
        (b"PAR1", _) => {
            return Err(ParquetError::Corrupt {
                file: name.to_string(),
                detail: "it does not end with `PAR1`".into(),
            })
        }
        _ => {
            return Err(ParquetError::NotParquet {
                file: name.to_string(),
            })
        }
    }
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| ParquetError::Corrupt {
        file: name.to_string(),
        detail: e.to_string(),
    })
}

fn binary_warning(file: &str, column: &str) -> String {
    format!("{file}: column `{column}` holds binary data, which Intercom cannot store; skipped")
}

/// A top-level column being read.
struct Column {
    name: String,
    /// NaN / infinite floats met in it (nested ones included).
    non_finite: u64,
}

/// Whether a type is read, skipped (binary), or refused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Support {
    Read,
    Skip,
}

fn support(field: &Field) -> Result<Support, ()> {
    use DataType::*;
    Ok(match field.data_type() {
        Null | Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64
        | Float16 | Float32 | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..)
        | Decimal256(..) | Utf8 | LargeUtf8 | Utf8View | Date32 | Date64 | Time32(_)
        | Time64(_) | Timestamp(..) => Support::Read,
        FixedSizeBinary(16) if is_uuid(field) => Support::Read,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Support::Skip,
        List(item) | LargeList(item) | FixedSizeList(item, _) => support(item)?,
        Struct(children) => {
            for child in children {
                support(child)?;
            }
            Support::Read
        }
        Map(entries, _) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => match (support(&kv[0])?, support(&kv[1])?) {
                (Support::Read, Support::Read) => Support::Read,
                _ => Support::Skip,
            },
            _ => return Err(()),
        },
        Dictionary(_, values) => support(&dictionary_values(field, values))?,
        _ => return Err(()),
    })
}

/// The field of a dictionary's values: the dictionary's, with the value type.
fn dictionary_values(field: &Field, values: &DataType) -> Field {
    Field::new(field.name(), values.clone(), true).with_metadata(field.metadata().clone())
}

fn is_skipped(field: &Field) -> bool {
    support(field) == Ok(Support::Skip)
}

fn is_uuid(field: &Field) -> bool {
    field.extension_type_name() == Some("arrow.uuid")
}

fn is_json(field: &Field) -> bool {
    field.extension_type_name() == Some("arrow.json")
}

/// Dotted names of the binary fields inside a struct column (skipped, with a warning each).
fn skipped_struct_fields(field: &Field, path: &str) -> Vec<String> {
    match field.data_type() {
        DataType::Struct(children) => children
            .iter()
            .flat_map(|child| {
                let path = format!("{path}.{}", child.name());
                if is_skipped(child) {
                    vec![path]
                } else {
                    skipped_struct_fields(child, &path)
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// How a column's type is named in messages and compared across parts.
pub fn describe(field: &Field) -> String {
    use DataType::*;
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "SECONDS",
        TimeUnit::Millisecond => "MILLIS",
        TimeUnit::Microsecond => "MICROS",
        TimeUnit::Nanosecond => "NANOS",
    };
    match field.data_type() {
        Null => "NULL".into(),
        Boolean => "BOOLEAN".into(),
        Int8 => "INT8".into(),
        Int16 => "INT16".into(),
        Int32 => "INT32".into(),
        Int64 => "INT64".into(),
        UInt8 => "UINT8".into(),
        UInt16 => "UINT16".into(),
        UInt32 => "UINT32".into(),
        UInt64 => "UINT64".into(),
        Float16 | Float32 => "FLOAT".into(),
        Float64 => "DOUBLE".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => {
            format!("DECIMAL({p},{s})")
        }
        Utf8 | LargeUtf8 | Utf8View if is_json(field) => "JSON".into(),
        Utf8 | LargeUtf8 | Utf8View => "STRING".into(),
        FixedSizeBinary(16) if is_uuid(field) => "UUID".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "BINARY".into(),
        Date32 | Date64 => "DATE".into(),
        Time32(u) | Time64(u) => format!("TIME({})", unit(u)),
        Timestamp(u, None) => format!("TIMESTAMP({})", unit(u)),
        Timestamp(u, Some(tz)) => format!("TIMESTAMP({}, {tz})", unit(u)),
        List(item) | LargeList(item) | FixedSizeList(item, _) => {
            format!("LIST<{}>", describe(item))
        }
        Struct(children) => format!(
            "STRUCT<{}>",
            children
                .iter()
                .map(|c| format!("{}: {}", c.name(), describe(c)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Map(entries, _) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => {
                format!("MAP<{}, {}>", describe(&kv[0]), describe(&kv[1]))
            }
            other => format!("MAP<{other}>"),
        },
        Dictionary(_, values) => describe(&dictionary_values(field, values)),
        other => other.to_string().to_uppercase(),
    }
}

/// A cell of a JSON-annotated column that is not JSON (reported with the file by the caller).
struct BadJson {
    /// Row in the batch.
    row: usize,
    column: String,
    detail: String,
}

/// Converts each read column of `batch` into one optional JSON value per row.
fn convert_batch(
    batch: &RecordBatch,
    columns: &mut [Option<Column>],
) -> Result<Vec<Vec<Option<Value>>>, BadJson> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter_mut().enumerate() {
        out.push(match column {
            Some(column) => {
                let field = schema.field(i);
                let mut context = Context {
                    column: &column.name,
                    non_finite: 0,
                };
                let values = convert(batch.column(i).as_ref(), field, &mut context)?;
                column.non_finite += context.non_finite;
                values
            }
            None => Vec::new(),
        });
    }
    Ok(out)
}

struct Context<'a> {
    column: &'a str,
    non_finite: u64,
}

/// One JSON value per element of `array` (`None` for null), typed from `field`.
fn convert(
    array: &dyn Array,
    field: &Field,
    context: &mut Context<'_>,
) -> Result<Vec<Option<Value>>, BadJson> {
    use DataType::*;
    let len = array.len();
    let valid = |i: usize| array.is_valid(i);
    Ok(match array.data_type() {
        Null => vec![None; len],
        Boolean => {
            let a = array.as_boolean();
            (0..len)
                .map(|i| valid(i).then(|| Value::Bool(a.value(i))))
                .collect()
        }
        Int8 => integers::<Int8Type>(array),
        Int16 => integers::<Int16Type>(array),
        Int32 => integers::<Int32Type>(array),
        Int64 => integers::<Int64Type>(array),
        UInt8 => integers::<UInt8Type>(array),
        UInt16 => integers::<UInt16Type>(array),
        UInt32 => integers::<UInt32Type>(array),
        UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            (0..len)
                .map(|i| valid(i).then(|| Value::from(a.value(i))))
                .collect()
        }
        Float16 => {
            let a = array.as_primitive::<Float16Type>();
            floats(len, valid, |i| shortest_f64(a.value(i).to_f32()), context)
        }
        Float32 => {
            let a = array.as_primitive::<Float32Type>();
            floats(len, valid, |i| shortest_f64(a.value(i)), context)
        }
        Float64 => {
            let a = array.as_primitive::<Float64Type>();
            floats(len, valid, |i| a.value(i), context)
        }
        Decimal32(_, scale) => decimals::<Decimal32Type>(array, *scale),
        Decimal64(_, scale) => decimals::<Decimal64Type>(array, *scale),
        Decimal128(_, scale) => decimals::<Decimal128Type>(array, *scale),
        Decimal256(_, scale) => decimals::<Decimal256Type>(array, *scale),
        Utf8 => strings(
            len,
            valid,
            |i| array.as_string::<i32>().value(i),
            field,
            context,
        )?,
        LargeUtf8 => strings(
            len,
            valid,
            |i| array.as_string::<i64>().value(i),
            field,
            context,
        )?,
        Utf8View => strings(
            len,
            valid,
            |i| array.as_string_view().value(i),
            field,
            context,
        )?,
        FixedSizeBinary(16) => {
            let a = array.as_fixed_size_binary();
            (0..len)
                .map(|i| valid(i).then(|| Value::String(uuid_text(a.value(i)))))
                .collect()
        }
        Date32 => {
            let a = array.as_primitive::<Date32Type>();
            (0..len)
                .map(|i| valid(i).then(|| Value::String(date_text(i64::from(a.value(i))))))
                .collect()
        }
        Date64 => {
            let a = array.as_primitive::<Date64Type>();
            (0..len)
                .map(|i| {
                    valid(i).then(|| Value::String(date_text(a.value(i).div_euclid(86_400_000))))
                })
                .collect()
        }
        Time32(unit) => {
            let values: Vec<i64> = match unit {
                TimeUnit::Second => primitive_i64::<Time32SecondType>(array),
                _ => primitive_i64::<Time32MillisecondType>(array),
            };
            times(len, valid, &values, *unit, false)
        }
        Time64(unit) => {
            let values: Vec<i64> = match unit {
                TimeUnit::Microsecond => primitive_i64::<Time64MicrosecondType>(array),
                _ => primitive_i64::<Time64NanosecondType>(array),
            };
            times(len, valid, &values, *unit, false)
        }
        Timestamp(unit, _) => {
            let values: Vec<i64> = match unit {
                TimeUnit::Second => primitive_i64::<TimestampSecondType>(array),
                TimeUnit::Millisecond => primitive_i64::<TimestampMillisecondType>(array),
                TimeUnit::Microsecond => primitive_i64::<TimestampMicrosecondType>(array),
                TimeUnit::Nanosecond => primitive_i64::<TimestampNanosecondType>(array),
            };
            times(len, valid, &values, *unit, true)
        }
        List(item) | LargeList(item) | FixedSizeList(item, _) => {
            let (offsets, values): (Vec<usize>, &ArrayRef) = match array.data_type() {
                List(_) => {
                    let a = array.as_list::<i32>();
                    (
                        a.offsets().iter().map(|o| *o as usize).collect(),
                        a.values(),
                    )
                }
                LargeList(_) => {
                    let a = array.as_list::<i64>();
                    (
                        a.offsets().iter().map(|o| *o as usize).collect(),
                        a.values(),
                    )
                }
                _ => {
                    let a = array.as_fixed_size_list();
                    let size = a.value_length() as usize;
                    ((0..=len).map(|i| i * size).collect(), a.values())
                }
            };
            let mut items = convert(values.as_ref(), item, context)?;
            split_lists(&offsets, &mut items, valid)
        }
        Struct(children) => {
            let a = array.as_struct();
            let mut converted = Vec::with_capacity(children.len());
            for (child, values) in children.iter().zip(a.columns()) {
                if is_skipped(child) {
                    continue;
                }
                converted.push((child.name(), convert(values.as_ref(), child, context)?));
            }
            (0..len)
                .map(|i| {
                    valid(i).then(|| {
                        let mut object = serde_json::Map::new();
                        for (name, values) in converted.iter_mut() {
                            if let Some(value) = values[i].take() {
                                object.insert((*name).clone(), value);
                            }
                        }
                        Value::Object(object)
                    })
                })
                .collect()
        }
        Map(entries, _) => {
            let a = array.as_map();
            let (key_field, value_field) = match entries.data_type() {
                Struct(kv) => (kv[0].clone(), kv[1].clone()),
                _ => unreachable!("support() refuses maps without key and value"),
            };
            let keys = convert(a.keys().as_ref(), &key_field, context)?;
            let mut values = convert(a.values().as_ref(), &value_field, context)?;
            let offsets: Vec<usize> = a.offsets().iter().map(|o| *o as usize).collect();
            (0..len)
                .map(|i| {
                    valid(i).then(|| {
                        let mut object = serde_json::Map::new();
                        for entry in offsets[i]..offsets[i + 1] {
                            let key = match &keys[entry] {
                                Some(Value::String(s)) => s.clone(),
                                Some(other) => other.to_string(),
                                None => continue,
                            };
                            object.insert(key, values[entry].take().unwrap_or(Value::Null));
                        }
                        Value::Object(object)
                    })
                })
                .collect()
        }
        Dictionary(_, value_type) => {
            let a = array.as_any_dictionary();
            let values = convert(
                a.values().as_ref(),
                &dictionary_values(field, value_type),
                context,
            )?;
            let keys = a.normalized_keys();
            (0..len)
                .map(|i| {
                    if a.keys().is_valid(i) {
                        values.get(keys[i]).cloned().flatten()
                    } else {
                        None
                    }
                })
                .collect()
        }
        _ => unreachable!("support() refuses {}", array.data_type()),
    })
}

fn integers<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<Option<Value>>
where
    T::Native: Into<i64>,
{
    let a = array.as_primitive::<T>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| Value::from(a.value(i).into())))
        .collect()
}

fn primitive_i64<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<i64>
where
    T::Native: Into<i64>,
{
    array
        .as_primitive::<T>()
        .values()
        .iter()
        .map(|v| (*v).into())
        .collect()
}

/// The `f64` whose shortest text is the `f32`'s: `0.1f32` → `0.1`, not `0.10000000149011612`.
fn shortest_f64(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

fn floats(
    len: usize,
    valid: impl Fn(usize) -> bool,
    value: impl Fn(usize) -> f64,
    context: &mut Context<'_>,
) -> Vec<Option<Value>> {
    (0..len)
        .map(|i| {
            if !valid(i) {
                return None;
            }
            let number = Number::from_f64(value(i));
            if number.is_none() {
                context.non_finite += 1;
            }
            number.map(Value::Number)
        })
        .collect()
}

fn decimals<T: arrow_array::types::DecimalType>(array: &dyn Array, scale: i8) -> Vec<Option<Value>>
where
    T::Native: std::fmt::Display,
{
    let a = array.as_primitive::<T>();
    (0..a.len())
        .map(|i| {
            a.is_valid(i)
                .then(|| decimal_value(&a.value(i).to_string(), scale))
        })
        .collect()
}

/// A decimal given as its unscaled integer's text and its scale: an integer when the scale is
/// 0 and it fits an `i64`, else the float of its decimal text (so `0.1` stays `0.1`).
fn decimal_value(unscaled: &str, scale: i8) -> Value {
    if scale == 0 {
        if let Ok(n) = unscaled.parse::<i64>() {
            return Value::from(n);
        }
    }
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", unscaled),
    };
    let text = if scale > 0 {
        let scale = scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        format!("{sign}{whole}.{fraction}")
    } else {
        format!(
            "{sign}{digits}{}",
            "0".repeat(scale.unsigned_abs() as usize)
        )
    };
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn strings<'a>(
    len: usize,
    valid: impl Fn(usize) -> bool,
    text: impl Fn(usize) -> &'a str,
    field: &Field,
    context: &mut Context<'_>,
) -> Result<Vec<Option<Value>>, BadJson> {
    if !is_json(field) {
        return Ok((0..len)
            .map(|i| valid(i).then(|| Value::String(text(i).to_string())))
            .collect());
    }
    (0..len)
        .map(|i| {
            if !valid(i) {
                return Ok(None);
            }
            match serde_json::from_str::<Value>(text(i)) {
                Ok(Value::Null) => Ok(None),
                Ok(value) => Ok(Some(value)),
                Err(e) => Err(BadJson {
                    row: i,
                    column: context.column.to_string(),
                    detail: e.to_string(),
                }),
            }
        })
        .collect()
}

/// Cuts `items` into one JSON array per pair of consecutive `offsets` (null items are JSON
/// null inside an array; a null list is `None`).
fn split_lists(
    offsets: &[usize],
    items: &mut [Option<Value>],
    valid: impl Fn(usize) -> bool,
) -> Vec<Option<Value>> {
    offsets
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            valid(i).then(|| {
                Value::Array(
                    items[w[0]..w[1]]
                        .iter_mut()
                        .map(|v| v.take().unwrap_or(Value::Null))
                        .collect(),
                )
            })
        })
        .collect()
}

fn times(
    len: usize,
    valid: impl Fn(usize) -> bool,
    values: &[i64],
    unit: TimeUnit,
    with_date: bool,
) -> Vec<Option<Value>> {
    (0..len)
        .map(|i| valid(i).then(|| Value::String(instant_text(values[i], unit, with_date))))
        .collect()
}

/// `"YYYY-MM-DD"` for a count of days since 1970-01-01.
pub fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// An instant (`value` in `unit` since the epoch) as RFC 3339 UTC, or a time of day
/// (`HH:MM:SS`) when `!with_date`; the fraction only when non-zero, trailing zeros trimmed.
pub fn instant_text(value: i64, unit: TimeUnit, with_date: bool) -> String {
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let seconds = value.div_euclid(per_second);
    let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
    let of_day = seconds.rem_euclid(86_400);
    let mut text = if with_date {
        format!("{}T", date_text(seconds.div_euclid(86_400)))
    } else {
        String::new()
    };
    text.push_str(&format!(
        "{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    ));
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    if with_date {
        text.push('Z');
    }
    text
}

fn uuid_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::TimestampMicrosecondArray;

    #[test]
    fn decimals_keep_their_decimal_value() {
        assert_eq!(decimal_value("10", 1), serde_json::json!(1.0));
        assert_eq!(decimal_value("1", 1).to_string(), "0.1");
        assert_eq!(decimal_value("-5", 3).to_string(), "-0.005");
        assert_eq!(decimal_value("123456", 2).to_string(), "1234.56");
        assert_eq!(decimal_value("42", 0), serde_json::json!(42));
        assert_eq!(decimal_value("-42", 0), serde_json::json!(-42));
        assert_eq!(decimal_value("12", -2).to_string(), "1200.0");
        assert_eq!(
            decimal_value("99999999999999999999", 0).to_string(),
            "1e+20"
        );
    }

    #[test]
    fn instants_are_utc_with_a_trimmed_fraction() {
        assert_eq!(
            instant_text(0, TimeUnit::Second, true),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            instant_text(1_700_000_000_500, TimeUnit::Millisecond, true),
            "2023-11-14T22:13:20.5Z"
        );
        assert_eq!(
            instant_text(1_700_000_000_000_000, TimeUnit::Microsecond, true),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            instant_text(-1, TimeUnit::Nanosecond, true),
            "1969-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            instant_text(3_723_250, TimeUnit::Millisecond, false),
            "01:02:03.25"
        );
        assert_eq!(date_text(19_417), "2023-03-01");
        assert_eq!(date_text(-1), "1969-12-31");
    }

    #[test]
    fn floats_keep_their_shortest_text() {
        assert_eq!(shortest_f64(0.1f32), 0.1);
        assert_eq!(shortest_f64(3.0f32), 3.0);
    }

    #[test]
    fn schema_describes_columns_as_parquet_names_them() {
        use arrow_array::{ArrayRef, DictionaryArray, Int64Array, StringArray};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-0.parquet");
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from(vec![1]))),
            ("name", Arc::new(StringArray::from(vec!["a"]))),
            (
                "plan",
                Arc::new(["pro"].into_iter().collect::<DictionaryArray<Int32Type>>()),
            ),
            (
                "at",
                Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let described: Vec<String> = schema(&path, "part-0")
            .unwrap()
            .into_iter()
            .map(|(name, data_type)| format!("{name} {data_type}"))
            .collect();
        assert_eq!(
            described,
            [
                "id INT64",
                "name STRING",
                "plan STRING",
                "at TIMESTAMP(MICROS, UTC)"
            ]
        );
    }

    #[test]
    fn schema_differences_name_both_parts() {
        let a = vec![("x".to_string(), "INT64".to_string())];
        let b = vec![("x".to_string(), "STRING".to_string())];
        assert_eq!(
            schema_difference(&a, "part-0", &b, "part-3").as_deref(),
            Some("column `x` is INT64 in part-0 and STRING in part-3: export every part with one schema")
        );
        assert_eq!(schema_difference(&a, "part-0", &a, "part-1"), None);
        assert!(schema_difference(&a, "part-0", &[], "part-1")
            .is_some_and(|m| m.contains("not in part-1")));
    }
}
