//! Parquet parts (placeholder until the Arrow-based reader lands).

use super::{Reader, Rows, TableSpec};
use crate::extract::options::TableOptions;
use crate::extract::source::Part;
use crate::extract::ExtractError;

pub struct ParquetReader;

impl Reader for ParquetReader {
    fn read(
        &self,
        part: &Part,
        _options: &TableOptions,
        _spec: TableSpec,
        _emit: &mut dyn FnMut(Rows) -> bool,
    ) -> Result<(), ExtractError> {
        Err(ExtractError::at(part, 1, "Parquet is not supported yet"))
    }
}
