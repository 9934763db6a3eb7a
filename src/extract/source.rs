//! Table sources: where each table of the input contract is read from.
//!
//! A table is one file `<table>.<fmt>[.gz|.zst]`, a folder `<table>/` of part files, Redshift
//! `UNLOAD` parts `<table>0000_part_00…` in the input directory, or whatever the config's
//! `[tables.<table>] path` names (a file, a folder or a glob). A source resolves to the list
//! of its parts in lexical order of their names; each part has one format, from its extension
//! or, without a known one, from its content.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::options::TableOptions;
use super::ExtractError;
use crate::progress::{ByteCount, CountingReader};

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

/// How a part's rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Json => "JSON",
            Format::Ndjson => "NDJSON",
            Format::Parquet => "Parquet",
        }
    }

    /// JSON arrays and NDJSON hold the same rows: a table may mix them.
    fn family(self) -> Format {
        match self {
            Format::Ndjson => Format::Json,
            other => other,
        }
    }
}

/// How a part's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One file of a table.
#[derive(Clone, Debug)]
pub struct Part {
    pub path: PathBuf,
    /// The name used in messages: relative to the input directory when inside it.
    pub name: String,
    pub format: Format,
    pub compression: Compression,
    pub size: u64,
    /// One of several parts (a folder, a glob, Redshift parts): empty once decompressed, it
    /// holds no rows rather than being an error.
    pub may_be_empty: bool,
    /// Bytes read from disk (compressed) so far, shared by the table's parts (for progress).
    pub bytes_read: ByteCount,
}

impl Part {
    /// Opens the part as a buffered byte stream: decompressed, UTF-8 BOM removed; the bytes
    /// read from disk are counted in `bytes_read`.
    pub fn open(&self) -> Result<Box<dyn BufRead + Send>, ExtractError> {
        let file = File::open(&self.path).map_err(|e| self.io(e))?;
        let file = CountingReader::new(file, self.bytes_read.clone());
        let raw: Box<dyn Read + Send> = match self.compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                BufReader::with_capacity(1 << 16, file),
            )),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(file).map_err(|e| self.io(e))?)
            }
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

    pub fn io(&self, error: std::io::Error) -> ExtractError {
        ExtractError::Input {
            location: self.name.clone(),
            message: format!("cannot read the file: {error}"),
        }
    }
}

/// One table's parts, in the order they are read.
#[derive(Clone, Debug)]
pub struct TableSource {
    pub table: &'static str,
    pub parts: Vec<Part>,
    pub options: TableOptions,
    /// Bytes of its parts read so far (see [`Part::bytes_read`]).
    pub bytes_read: ByteCount,
}

impl TableSource {
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// What was found for the export.
#[derive(Debug, Default)]
pub struct Discovery {
    pub tables: BTreeMap<&'static str, TableSource>,
    /// Files in the input directory that are not read, and why (a warning each).
    pub ignored: Vec<(String, String)>,
}

impl Discovery {
    /// The sources in load order.
    pub fn in_load_order(&self) -> impl Iterator<Item = &TableSource> {
        TABLES.iter().filter_map(|t| self.tables.get(t))
    }
}

/// Finds every table of the export in `dir`, with the per-table `options` of the config.
/// A missing `accounts` table, two sources for one table or a table without parts is an error.
pub fn discover(
    dir: &Path,
    options: &BTreeMap<&'static str, TableOptions>,
) -> Result<Discovery, ExtractError> {
    let listing_error = |e: std::io::Error| ExtractError::Input {
        location: dir.display().to_string(),
        message: format!(
            "cannot read the input directory: {e}; pass --input DIR with the export's files"
        ),
    };
    let mut entries: Vec<(String, PathBuf, bool)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(listing_error)? {
        let entry = entry.map_err(listing_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.path().is_dir();
        entries.push((name, entry.path(), is_dir));
    }
    entries.sort();

    let mut found = Discovery::default();
    let mut claimed: BTreeMap<&'static str, Vec<(String, PathBuf, bool)>> = BTreeMap::new();
    for (name, path, is_dir) in entries {
        if is_marker(&name) {
            continue;
        }
        match table_of_entry(&name, is_dir) {
            Some(table) => claimed.entry(table).or_default().push((name, path, is_dir)),
            None if is_dir => {}
            None => found
                .ignored
                .push((name, "not a table of the input contract".into())),
        }
    }
    for table in TABLES {
        let table_options = options.get(table).cloned().unwrap_or_default();
        let parts = if let Some(pattern) = &table_options.path {
            // The configured path is the table: what discovery would take for it is not also
            // read (a Redshift glob names the very parts found here); other files are ignored.
            let parts = resolve_configured(dir, table, pattern)?;
            for (name, path, _) in claimed.remove(table).unwrap_or_default() {
                if !parts.iter().any(|(part, _)| part.starts_with(&path)) {
                    let why = format!("the config's path names another source for `{table}`");
                    found.ignored.push((name, why));
                }
            }
            parts
        } else {
            match claimed.remove(table) {
                None => continue,
                Some(entries) => parts_of_entries(dir, table, entries)?,
            }
        };
        let mut parts = parts
            .into_iter()
            .map(|(path, name)| classify(path, name, table_options.format))
            .collect::<Result<Vec<Part>, _>>()?;
        let several = parts.len() > 1
            || table_options.path.is_some()
            || parts.iter().any(|p| p.name.contains('/'));
        let bytes_read = ByteCount::default();
        for part in &mut parts {
            part.may_be_empty = several;
            part.bytes_read = bytes_read.clone();
        }
        if let [first, ..] = parts.as_slice() {
            if let Some(other) = parts
                .iter()
                .find(|p| p.format.family() != first.format.family())
            {
                return Err(ExtractError::Input {
                    location: other.name.clone(),
                    message: format!(
                        "this part of `{table}` is {} but {} is {}: every part of a table must have one format",
                        other.format.name(),
                        first.name,
                        first.format.name()
                    ),
                });
            }
        }
        found.tables.insert(
            table,
            TableSource {
                table,
                parts,
                options: table_options,
                bytes_read,
            },
        );
    }
    match found.tables.get("accounts") {
        None => Err(ExtractError::Input {
            location: dir.display().to_string(),
            message: "no accounts file: the export needs accounts.csv, accounts.json or accounts.ndjson (optionally .gz or .zst), accounts.parquet, a folder accounts/ of part files, or `[tables.accounts] path = …` in the config".into(),
        }),
        Some(accounts) if accounts.parts.is_empty() => Err(ExtractError::Input {
            location: dir.display().to_string(),
            message: "the accounts table has no data files (only markers or empty files): was the export interrupted?".into(),
        }),
        Some(_) => Ok(found),
    }
}

/// Files that warehouses write next to the data and that hold none: `_SUCCESS`,
/// `_committed_*`, `_started_*`, `*.crc` checksums and hidden files.
fn is_marker(name: &str) -> bool {
    name == "_SUCCESS"
        || name.starts_with("_committed_")
        || name.starts_with("_started_")
        || name.ends_with(".crc")
        || name.starts_with('.')
}

/// The table an entry of the input directory belongs to: `<table>.<ext>…`, a folder
/// `<table>`, or a Redshift part `<table>0000_part_00`.
fn table_of_entry(name: &str, is_dir: bool) -> Option<&'static str> {
    TABLES.into_iter().find(|table| {
        let Some(rest) = name.strip_prefix(table) else {
            return false;
        };
        if is_dir {
            return rest.is_empty();
        }
        rest.strip_prefix('.')
            .is_some_and(|ext| ext_format(strip_compression(ext).0).is_some())
            || is_redshift_part_suffix(rest)
    })
}

/// A part file without bytes: warehouses write them for slices that held no rows.
fn is_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
}

/// `0000_part_00` (with any number of digits, and an optional extension).
fn is_redshift_part_suffix(rest: &str) -> bool {
    let rest = rest.split('.').next().unwrap_or_default();
    let Some((slice, part)) = rest.split_once("_part_") else {
        return false;
    };
    !slice.is_empty()
        && !part.is_empty()
        && slice.bytes().all(|b| b.is_ascii_digit())
        && part.bytes().all(|b| b.is_ascii_digit())
}

/// The parts named by a table's entries of the input directory: one file, one folder, or
/// Redshift parts only.
fn parts_of_entries(
    dir: &Path,
    table: &str,
    entries: Vec<(String, PathBuf, bool)>,
) -> Result<Vec<(PathBuf, String)>, ExtractError> {
    let is_redshift = |e: &(String, PathBuf, bool)| {
        !e.2 && e.0.strip_prefix(table).is_some_and(is_redshift_part_suffix)
    };
    let others: Vec<&str> = entries
        .iter()
        .filter(|e| !is_redshift(e))
        .map(|e| e.0.as_str())
        .collect();
    if others.len() > 1 || others.len() == 1 && entries.len() > 1 {
        let what = if entries.iter().any(|e| e.2) {
            "two sources"
        } else {
            "two files"
        };
        return Err(ExtractError::Input {
            location: entries[1].0.clone(),
            message: format!(
                "{what} for the table `{table}` ({} and this one): keep exactly one file or one folder",
                entries[0].0
            ),
        });
    }
    match entries.iter().find(|e| e.2) {
        Some((name, path, _)) => list_folder(dir, path, name),
        // One file (an empty one is reported when read), or Redshift parts (often empty).
        None if others.len() == 1 => Ok(entries
            .into_iter()
            .map(|(name, path, _)| (path, name))
            .collect()),
        None => Ok(entries
            .into_iter()
            .filter(|e| !is_empty_file(&e.1))
            .map(|(name, path, _)| (path, name))
            .collect()),
    }
}

/// The data files of a folder, sorted by name. A subfolder is an error: a partitioned export
/// (`date=…/`) would otherwise lose rows silently.
fn list_folder(
    input: &Path,
    folder: &Path,
    shown: &str,
) -> Result<Vec<(PathBuf, String)>, ExtractError> {
    let listing_error = |e: std::io::Error| ExtractError::Input {
        location: shown.to_string(),
        message: format!("cannot list the folder: {e}"),
    };
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(listing_error)? {
        let entry = entry.map_err(listing_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_marker(&name) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            return Err(ExtractError::Input {
                location: display_name(input, &path),
                message: "a folder inside a table's folder: partitioned exports (`key=value/` folders) are not read — export the table unpartitioned, or point `[tables.<table>] path` at a glob of its files".into(),
            });
        }
        if !is_empty_file(&path) {
            parts.push((display_name(input, &path), path));
        }
    }
    parts.sort();
    Ok(parts.into_iter().map(|(name, path)| (path, name)).collect())
}

/// The files of a configured `path`: a glob, a folder or a file, relative to the input
/// directory unless absolute.
fn resolve_configured(
    dir: &Path,
    table: &str,
    pattern: &str,
) -> Result<Vec<(PathBuf, String)>, ExtractError> {
    let full = dir.join(pattern);
    let shown = full.display().to_string();
    let config_error = |message: String| ExtractError::Input {
        location: format!("[tables.{table}] path = {pattern:?}"),
        message,
    };
    if pattern.contains(['*', '?', '[']) {
        let paths = glob::glob(&shown)
            .map_err(|e| config_error(format!("not a valid glob pattern: {e}")))?;
        let mut parts = Vec::new();
        for path in paths {
            let path = path.map_err(|e| config_error(format!("cannot read a match: {e}")))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if path.is_file() && !is_marker(&name) && !is_empty_file(&path) {
                parts.push((display_name(dir, &path), path));
            }
        }
        parts.sort();
        if parts.is_empty() {
            return Err(config_error(format!(
                "the glob matches no file ({shown}): check the path, or remove it to read `{table}` from the input directory"
            )));
        }
        return Ok(parts.into_iter().map(|(name, path)| (path, name)).collect());
    }
    if full.is_dir() {
        return list_folder(dir, &full, &display_name(dir, &full));
    }
    if full.is_file() {
        return Ok(vec![(full.clone(), display_name(dir, &full))]);
    }
    Err(config_error(format!(
        "no such file or folder ({shown}): check the path"
    )))
}

/// `path` relative to the input directory when inside it, else as given.
fn display_name(input: &Path, path: &Path) -> String {
    path.strip_prefix(input)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Splits a compression extension off: `csv.gz` → (`csv`, Gzip).
fn strip_compression(name: &str) -> (&str, Compression) {
    if let Some(stem) = name.strip_suffix(".gz") {
        (stem, Compression::Gzip)
    } else if let Some(stem) = name.strip_suffix(".zst") {
        (stem, Compression::Zstd)
    } else if name == "gz" {
        ("", Compression::Gzip)
    } else if name == "zst" {
        ("", Compression::Zstd)
    } else {
        (name, Compression::None)
    }
}

/// The format an extension names (`json` is decided by the content: array or NDJSON).
fn ext_format(ext: &str) -> Option<Option<Format>> {
    Some(match ext.rsplit('.').next().unwrap_or(ext) {
        "csv" | "tsv" | "psv" => Some(Format::Csv),
        "json" => None,
        "ndjson" | "jsonl" => Some(Format::Ndjson),
        "parquet" => Some(Format::Parquet),
        _ => return None,
    })
}

/// A part with its compression and format: from its name, else from its first bytes.
fn classify(path: PathBuf, name: String, forced: Option<Format>) -> Result<Part, ExtractError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let size = std::fs::metadata(&path)
        .map(|m| m.len())
        .map_err(|e| ExtractError::Input {
            location: name.clone(),
            message: format!("cannot read the file: {e}"),
        })?;
    let (stem, mut compression) = strip_compression(&file_name);
    let named = stem.rsplit_once('.').and_then(|(_, ext)| ext_format(ext));
    let mut part = Part {
        path,
        name,
        format: forced.or(named.flatten()).unwrap_or(Format::Csv),
        compression,
        size,
        may_be_empty: false,
        bytes_read: ByteCount::default(),
    };
    if size == 0 {
        // Reported by its reader ("the file is empty").
        return Ok(part);
    }
    let head = sniff_head(&part)?;
    if compression == Compression::None {
        // An extension-less or mis-named compressed file: trust the magic bytes.
        if head.starts_with(&[0x1f, 0x8b]) {
            compression = Compression::Gzip;
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            compression = Compression::Zstd;
        }
        part.compression = compression;
    }
    part.format = match (forced, named) {
        (Some(format), _) => format,
        (None, Some(Some(format))) => format,
        (None, _) => {
            if compression == Compression::None && head.starts_with(b"PAR1") {
                Format::Parquet
            } else {
                let text = if compression == Compression::None {
                    head
                } else {
                    decompressed_head(&part)?
                };
                let first = text
                    .iter()
                    .find(|b| !(b.is_ascii_whitespace() || matches!(b, 0xEF | 0xBB | 0xBF)));
                match (first, named) {
                    (Some(b'{'), _) => Format::Ndjson,
                    // A `.json` file that is not NDJSON is read as an array (which says what
                    // is wrong when it is not one either).
                    (Some(b'['), _) | (_, Some(None)) => Format::Json,
                    _ => Format::Csv,
                }
            }
        }
    };
    Ok(part)
}

fn sniff_head(part: &Part) -> Result<Vec<u8>, ExtractError> {
    let mut head = Vec::with_capacity(64);
    File::open(&part.path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .map_err(|e| part.io(e))?;
    Ok(head)
}

fn decompressed_head(part: &Part) -> Result<Vec<u8>, ExtractError> {
    let mut reader = part.open()?;
    let head = reader
        .fill_buf()
        .map_err(|e| ExtractError::read(part, 1, e))?;
    Ok(head[..head.len().min(4096)].to_vec())
}

/// A digest (xxh3-128, hex) of every part's name and bytes and of the settings that change
/// how they are read: equal digests mean an identical export, which `load` then skips.
pub fn digest(found: &Discovery) -> Result<String, ExtractError> {
    use rayon::prelude::*;
    let parts: Vec<&Part> = found.in_load_order().flat_map(|t| &t.parts).collect();
    let per_part: Vec<u128> = parts
        .par_iter()
        .map(|part| {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            let mut reader = File::open(&part.path).map_err(|e| part.io(e))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = reader.read(&mut buf).map_err(|e| part.io(e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Ok(hasher.digest128())
        })
        .collect::<Result<_, ExtractError>>()?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(concat!("intercom-push ", env!("CARGO_PKG_VERSION"), "\0").as_bytes());
    hasher.update(super::typing::KINDS_VERSION.as_bytes());
    for table in found.in_load_order() {
        hasher.update(format!("{}\0{:?}\0", table.table, table.options).as_bytes());
    }
    for (part, digest) in parts.iter().zip(per_part) {
        hasher.update(part.name.as_bytes());
        hasher.update(&[0]);
        hasher.update(&digest.to_le_bytes());
    }
    Ok(format!("{:032x}", hasher.digest128()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_the_input_directory_map_to_tables() {
        assert_eq!(table_of_entry("accounts.csv", false), Some("accounts"));
        assert_eq!(table_of_entry("users.jsonl.gz", false), Some("users"));
        assert_eq!(table_of_entry("segments.json.zst", false), Some("segments"));
        assert_eq!(table_of_entry("accounts.parquet", false), Some("accounts"));
        assert_eq!(table_of_entry("accounts", true), Some("accounts"));
        assert_eq!(
            table_of_entry("accounts0000_part_00", false),
            Some("accounts")
        );
        assert_eq!(
            table_of_entry("accounts0001_part_00.gz", false),
            Some("accounts")
        );
        assert_eq!(table_of_entry("notes.csv", false), None);
        assert_eq!(table_of_entry("accounts.txt", false), None);
        assert_eq!(table_of_entry("accounts", false), None);
        assert_eq!(table_of_entry("accounts_old", true), None);
    }

    #[test]
    fn markers_are_not_data() {
        for name in [
            "_SUCCESS",
            "_committed_123",
            "_started_9",
            ".part-0.crc",
            "x.crc",
            ".hidden",
        ] {
            assert!(is_marker(name), "{name}");
        }
        assert!(!is_marker("part-00000-abc-c000.snappy.parquet"));
    }

    #[test]
    fn compression_and_format_come_from_the_name() {
        assert_eq!(strip_compression("a.csv.gz"), ("a.csv", Compression::Gzip));
        assert_eq!(strip_compression("a.csv.zst"), ("a.csv", Compression::Zstd));
        assert_eq!(ext_format("snappy.parquet"), Some(Some(Format::Parquet)));
        assert_eq!(ext_format("json"), Some(None));
        assert_eq!(ext_format("00"), None);
    }
}
