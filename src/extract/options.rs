//! Per-table read settings (`[tables.<table>]` in the config file): where the table is and,
//! for CSV, its dialect. Validated once, when the settings are resolved.

use super::source::{Format, TABLES};

/// How one table is found and read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// A file, folder or glob (relative to the input directory unless absolute).
    pub path: Option<String>,
    /// The parts' format, when neither their names nor their content tell it.
    pub format: Option<Format>,
    pub csv: CsvDialect,
}

/// A CSV dialect. The default is RFC 4180 with a header row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvDialect {
    /// The first row names the columns. Without one, `columns` must.
    pub header: bool,
    /// Column names of a headerless file, in order.
    pub columns: Option<Vec<String>>,
    pub delimiter: u8,
    pub quote: u8,
    /// The escape byte inside quoted fields (e.g. `\`); without one, quotes are doubled.
    pub escape: Option<u8>,
    /// A cell equal to this is empty (e.g. `\N` from MySQL or Redshift).
    pub null: Option<String>,
}

impl Default for CsvDialect {
    fn default() -> Self {
        CsvDialect {
            header: true,
            columns: None,
            delimiter: b',',
            quote: b'"',
            escape: None,
            null: None,
        }
    }
}

/// `[tables.<table>]` as written in the config file.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    pub path: Option<String>,
    pub format: Option<Format>,
    pub header: Option<bool>,
    pub columns: Option<Vec<String>>,
    pub delimiter: Option<String>,
    pub quote: Option<String>,
    pub escape: Option<String>,
    pub null: Option<String>,
}

impl TableConfig {
    /// Validates the settings of `table`; the error says what to write instead.
    pub fn validate(&self, table: &str) -> Result<(&'static str, TableOptions), String> {
        let Some(table) = TABLES.iter().find(|t| **t == table) else {
            return Err(format!(
                "[tables.{table}]: no such table; the tables are {}",
                TABLES.join(", ")
            ));
        };
        let byte = |key: &str, value: &Option<String>, default: Option<u8>| {
            match value.as_deref() {
            None => Ok(default),
            Some(text) if text.len() == 1 && text.is_ascii() => Ok(Some(text.as_bytes()[0])),
            Some(text) => Err(format!(
                "[tables.{table}] {key} = {text:?}: give one ASCII character, e.g. {key} = \"|\" or \"\\t\" for a tab"
            )),
        }
        };
        let csv = CsvDialect {
            header: self.header.unwrap_or(true),
            columns: self.columns.clone(),
            delimiter: byte("delimiter", &self.delimiter, Some(b','))?.unwrap_or(b','),
            quote: byte("quote", &self.quote, Some(b'"'))?.unwrap_or(b'"'),
            escape: byte("escape", &self.escape, None)?,
            null: self.null.clone(),
        };
        if let Some(columns) = &csv.columns {
            if columns.is_empty() {
                return Err(format!(
                    "[tables.{table}] columns = []: name every column of the file, in order"
                ));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(twice) = columns.iter().find(|c| !seen.insert(c.as_str())) {
                return Err(format!("[tables.{table}] columns: `{twice}` appears twice"));
            }
            if csv.header {
                return Err(format!("[tables.{table}] columns is given but header is not false: with a header row the file names its columns; add `header = false` for a headerless file"));
            }
        }
        if csv.delimiter == csv.quote {
            return Err(format!(
                "[tables.{table}]: the delimiter and the quote are the same character"
            ));
        }
        Ok((
            table,
            TableOptions {
                path: self.path.clone(),
                format: self.format,
                csv,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_settings_are_validated_with_a_fix() {
        let config = TableConfig {
            header: Some(false),
            columns: Some(vec!["id".into(), "name".into()]),
            delimiter: Some("|".into()),
            null: Some("\\N".into()),
            ..Default::default()
        };
        let (table, options) = config.validate("accounts").unwrap();
        assert_eq!(table, "accounts");
        assert_eq!(options.csv.delimiter, b'|');
        assert!(!options.csv.header);
        let err = TableConfig::default().validate("acounts").unwrap_err();
        assert!(err.contains("the tables are"), "{err}");
        let err = TableConfig {
            delimiter: Some("||".into()),
            ..Default::default()
        }
        .validate("users")
        .unwrap_err();
        assert!(err.contains("one ASCII character"), "{err}");
        let err = TableConfig {
            columns: Some(vec!["id".into()]),
            ..Default::default()
        }
        .validate("users")
        .unwrap_err();
        assert!(err.contains("header = false"), "{err}");
    }
}
