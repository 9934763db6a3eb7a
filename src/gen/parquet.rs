//! Parquet output of `gen`: typed columns, snappy pages, rows buffered in batches of
//! [`BATCH_ROWS`] and row groups of [`ROW_GROUP_ROWS`], so memory stays bounded.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::write::{Col, Columns, V};

const BATCH_ROWS: usize = 8192;
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The Arrow field of a generated column. Every column is nullable; a JSON column is a string
/// annotated JSON (its cells are JSON text), which readers take as the value it holds.
fn field(name: &str, col: Col) -> Field {
    let data_type = match col {
        Col::Str | Col::Json => DataType::Utf8,
        Col::Float => DataType::Float64,
        Col::Int => DataType::Int64,
        Col::Bool => DataType::Boolean,
        Col::Date => DataType::Date32,
        Col::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    };
    let field = Field::new(name, data_type, true);
    if col == Col::Json {
        field.with_extension_type(arrow_schema::extension::Json::default())
    } else {
        field
    }
}

/// The Arrow schema `gen` writes for a table.
pub fn schema(columns: Columns) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|&(name, col)| field(name, col))
            .collect::<Vec<_>>(),
    ))
}

/// The writer properties of every Parquet file `gen` writes (also used by `--mutate`).
pub fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

enum Builder {
    Str(StringBuilder),
    Float(Float64Builder),
    Int(Int64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(col: Col) -> Builder {
        match col {
            Col::Str | Col::Json => Builder::Str(StringBuilder::new()),
            Col::Float => Builder::Float(Float64Builder::new()),
            Col::Int => Builder::Int(Int64Builder::new()),
            Col::Bool => Builder::Bool(BooleanBuilder::new()),
            Col::Date => Builder::Date(Date32Builder::new()),
            Col::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
        }
    }

    /// Appends one cell; a value of the wrong type for the column is a generator bug.
    fn append(&mut self, col: Col, value: &V<'_>) -> io::Result<()> {
        match (self, value) {
            (Builder::Str(b), V::Null) => b.append_null(),
            (Builder::Float(b), V::Null) => b.append_null(),
            (Builder::Int(b), V::Null) => b.append_null(),
            (Builder::Bool(b), V::Null) => b.append_null(),
            (Builder::Date(b), V::Null) => b.append_null(),
            (Builder::Timestamp(b), V::Null) => b.append_null(),
            (Builder::Str(b), V::Str(s)) if col == Col::Str => b.append_value(s),
            (Builder::Str(b), value) if col == Col::Json => b.append_value(json_text(value)?),
            (Builder::Float(b), V::Num(s)) => b.append_value(s.parse::<f64>().map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("number `{s}`: {e}"))
            })?),
            (Builder::Int(b), V::Int(n)) => b.append_value(*n),
            (Builder::Bool(b), V::Bool(v)) => b.append_value(*v),
            (Builder::Date(b), V::Date(days)) => b.append_value(*days as i32),
            (Builder::Timestamp(b), V::Timestamp(seconds)) => b.append_value(seconds * 1_000_000),
            (_, value) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("generator bug: {value:?} in a {col:?} column"),
                ))
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// A JSON column's cell as JSON text (what NDJSON would hold for it).
fn json_text(value: &V<'_>) -> io::Result<String> {
    let mut out = Vec::new();
    super::write::write_json_value(&mut out, value)?;
    String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One Parquet file being written.
pub struct ParquetSink {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    columns: Columns,
    builders: Vec<Builder>,
    buffered: usize,
}

impl ParquetSink {
    pub fn create(path: &Path, columns: Columns) -> io::Result<ParquetSink> {
        let schema = schema(columns);
        let writer = ArrowWriter::try_new(File::create(path)?, schema.clone(), Some(properties()))
            .map_err(io::Error::other)?;
        Ok(ParquetSink {
            writer,
            schema,
            columns,
            builders: columns.iter().map(|&(_, col)| Builder::new(col)).collect(),
            buffered: 0,
        })
    }

    pub fn row(&mut self, values: &[V<'_>]) -> io::Result<()> {
        for ((builder, &(_, col)), value) in self.builders.iter_mut().zip(self.columns).zip(values)
        {
            builder.append(col, value)?;
        }
        self.buffered += 1;
        if self.buffered == BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(io::Error::other)?;
        self.writer.write(&batch).map_err(io::Error::other)?;
        self.buffered = 0;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        if self.buffered > 0 {
            self.flush_batch()?;
        }
        self.writer.close().map_err(io::Error::other)?;
        Ok(())
    }
}

/// The rows of a Parquet file, from its footer.
pub fn row_count(path: &Path) -> anyhow::Result<u64> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    Ok(u64::try_from(reader.metadata().file_metadata().num_rows())?)
}

/// Writes `path`'s batches, each passed through `edit`, into `out` with the same schema and
/// the properties `gen` writes with (used by `--mutate`).
pub fn rewrite(
    path: &Path,
    out: &Path,
    mut edit: impl FnMut(RecordBatch) -> anyhow::Result<RecordBatch>,
) -> anyhow::Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let schema = builder.schema().clone();
    let mut writer = ArrowWriter::try_new(File::create(out)?, schema, Some(properties()))?;
    for batch in builder.with_batch_size(BATCH_ROWS).build()? {
        writer.write(&edit(batch?)?)?;
    }
    writer.close()?;
    Ok(())
}
