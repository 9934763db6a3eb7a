//! Finding the export's table files and opening them (gzip, BOM) as byte streams.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::ExtractError;

/// The tables of the input contract, in the order they are loaded (referenced tables first).
pub const TABLES: [&str; 8] = [
    "elements",
    "success_metrics",
    "users",
    "accounts",
    "element_counts",
    "metric_values",
    "indicators",
    "segments",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Ndjson,
    Parquet,
}

/// One table's file.
#[derive(Clone, Debug)]
pub struct TableFile {
    pub table: &'static str,
    pub path: PathBuf,
    pub format: Format,
    pub gzip: bool,
}

impl TableFile {
    /// The file's name as used in messages (`accounts.csv.gz`).
    pub fn display_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// Opens the file as a buffered byte stream: gunzipped if `.gz`, UTF-8 BOM removed.
    pub fn open(&self) -> Result<Box<dyn BufRead + Send>, ExtractError> {
        let file = File::open(&self.path).map_err(|e| ExtractError::io(self, e))?;
        let raw: Box<dyn Read + Send> = if self.gzip {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 16,
                file,
            )))
        } else {
            Box::new(file)
        };
        let mut reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 20, raw));
        let head = reader
            .fill_buf()
            .map_err(|e| ExtractError::read(self, 1, e))?;
        if head.starts_with(b"\xEF\xBB\xBF") {
            reader.consume(3);
        }
        Ok(reader)
    }
}

/// What was found in the input directory.
#[derive(Debug, Default)]
pub struct Discovery {
    pub tables: BTreeMap<&'static str, TableFile>,
    /// Files that are not a table of the contract (reported as a warning, not read).
    pub ignored: Vec<String>,
}

/// A digest (xxh3-128, hex) of the table files' names and bytes: equal digests mean an
/// identical export, which `load` then skips.
pub fn digest(found: &Discovery) -> Result<String, ExtractError> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for file in found.tables.values() {
        hasher.update(file.display_name().as_bytes());
        hasher.update(&[0]);
        let mut reader = File::open(&file.path).map_err(|e| ExtractError::io(file, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| ExtractError::io(file, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        hasher.update(&[0]);
    }
    Ok(format!("{:032x}", hasher.digest128()))
}

/// Lists `dir` and maps each `<table>.<csv|json|ndjson|jsonl|parquet>[.gz]` file to its table.
/// Two files for one table, or a missing `accounts` file, is an error.
pub fn discover(dir: &Path) -> Result<Discovery, ExtractError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ExtractError::Input {
        location: dir.display().to_string(),
        message: format!(
            "cannot read the input directory: {e}; pass --input DIR with the export's files"
        ),
    })?;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ExtractError::Input {
            location: dir.display().to_string(),
            message: format!("cannot list the input directory: {e}"),
        })?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            names.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    names.sort();
    let mut found = Discovery::default();
    for (name, path) in names {
        let Some((table, format, gzip)) = classify(&name) else {
            found.ignored.push(name);
            continue;
        };
        let file = TableFile {
            table,
            path,
            format,
            gzip,
        };
        if let Some(previous) = found.tables.get(table) {
            return Err(ExtractError::Input {
                location: name,
                message: format!(
                    "two files for the table `{table}` ({} and this one): keep exactly one",
                    previous.display_name()
                ),
            });
        }
        found.tables.insert(table, file);
    }
    if !found.tables.contains_key("accounts") {
        return Err(ExtractError::Input {
            location: dir.display().to_string(),
            message: "no accounts file: the export needs accounts.csv, accounts.json or accounts.ndjson (optionally .gz)".into(),
        });
    }
    Ok(found)
}

fn classify(name: &str) -> Option<(&'static str, Format, bool)> {
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let (table, ext) = stem.rsplit_once('.')?;
    let format = match ext {
        "csv" => Format::Csv,
        "json" => Format::Json,
        "ndjson" | "jsonl" => Format::Ndjson,
        "parquet" => Format::Parquet,
        _ => return None,
    };
    let table = TABLES.iter().find(|t| **t == table)?;
    Some((table, format, gzip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_contract_file_names() {
        assert_eq!(
            classify("accounts.csv"),
            Some(("accounts", Format::Csv, false))
        );
        assert_eq!(
            classify("users.jsonl.gz"),
            Some(("users", Format::Ndjson, true))
        );
        assert_eq!(
            classify("segments.json"),
            Some(("segments", Format::Json, false))
        );
        assert_eq!(
            classify("accounts.parquet"),
            Some(("accounts", Format::Parquet, false))
        );
        assert_eq!(classify("notes.csv"), None);
        assert_eq!(classify("accounts.txt"), None);
        assert_eq!(classify("accounts"), None);
    }
}
