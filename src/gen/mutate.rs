//! `gen --mutate P`: change P % of an export's accounts in place, deterministically for a
//! seed: each chosen account gets a new MRR and health score and one element count + 1.
//! Works on every layout `gen` writes: one file per table or a folder of part files (read in
//! name order), CSV, NDJSON or Parquet. Files are rewritten to a temporary name and renamed
//! over the original.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use serde_json::Value;

use super::rng::Rng;
use super::write::{raw_sink, write_csv_field, RawSink};

/// Accounts are chosen in blocks of this many rows: exactly round(P % of the block).
const BLOCK: u64 = 1000;

#[derive(Debug, Default)]
pub struct MutateSummary {
    pub accounts: u64,
    pub changed: u64,
    pub counts_changed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Csv,
    Ndjson,
    Parquet,
}

/// One file of a table: the table's file, or one of its parts.
struct Found {
    path: PathBuf,
    kind: Kind,
    gzip: bool,
}

/// The kind of a file by its extension (`.gz` stripped); `.json` only inside a folder of
/// parts, where `gen` writes NDJSON as Spark does.
fn kind_of(name: &str, in_folder: bool) -> Option<(Kind, bool)> {
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let kind = match stem.rsplit_once('.')?.1 {
        "csv" => Kind::Csv,
        "ndjson" | "jsonl" => Kind::Ndjson,
        "json" if in_folder => Kind::Ndjson,
        "parquet" if !gzip => Kind::Parquet,
        _ => return None,
    };
    Some((kind, gzip))
}

/// The files of `table`: `<table>.<ext>[.gz]`, or the parts of the folder `<table>/` in name
/// order (`_SUCCESS`, `.crc` and hidden files left alone).
fn find(dir: &Path, table: &str) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    for ext in ["csv", "ndjson", "jsonl", "parquet"] {
        for gzip in [false, true] {
            let name = if gzip {
                format!("{table}.{ext}.gz")
            } else {
                format!("{table}.{ext}")
            };
            let path = dir.join(&name);
            if path.exists() {
                if !found.is_empty() {
                    bail!("{}: two files for the `{table}` table", dir.display());
                }
                let (kind, gzip) = kind_of(&name, false)
                    .with_context(|| format!("--mutate cannot rewrite {name}"))?;
                found.push(Found { path, kind, gzip });
            }
        }
    }
    let folder = dir.join(table);
    if folder.is_dir() {
        if !found.is_empty() {
            bail!(
                "{}: both a file and a folder for the `{table}` table",
                dir.display()
            );
        }
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot list {}", folder.display()))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        for name in names {
            if name.starts_with(['_', '.']) || name.ends_with(".crc") {
                continue;
            }
            let (kind, gzip) = kind_of(&name, true).with_context(|| {
                format!(
                    "{}: --mutate cannot rewrite this part",
                    folder.join(&name).display()
                )
            })?;
            found.push(Found {
                path: folder.join(name),
                kind,
                gzip,
            });
        }
    }
    if found.is_empty() && dir.join(format!("{table}.json")).exists() {
        bail!("--mutate reads CSV, NDJSON or Parquet exports (as `gen` writes them), not {table}.json");
    }
    Ok(found)
}

fn open(found: &Found) -> Result<Box<dyn BufRead>> {
    let file =
        File::open(&found.path).with_context(|| format!("cannot open {}", found.path.display()))?;
    let raw: Box<dyn Read> = if found.gzip {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            file,
        )))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, raw)))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".mutate-tmp");
    path.with_file_name(name)
}

/// Writes a new version of `found` through `write` into a temporary file, then renames it
/// over the original (the temporary file is removed on failure).
fn replace(found: &Found, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let temp = temp_path(&found.path);
    let result = write(&temp).and_then(|()| {
        std::fs::rename(&temp, &found.path)
            .with_context(|| format!("cannot replace {}", found.path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("mutating {}", found.path.display()))
}

/// Rewrites a CSV or NDJSON `found` line by line through `edit`.
fn rewrite(
    found: &Found,
    edit: impl FnOnce(Box<dyn BufRead>, &mut RawSink) -> Result<()>,
) -> Result<()> {
    replace(found, |temp| {
        let mut out = raw_sink(temp, found.gzip)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        edit(open(found)?, &mut out)?;
        out.finish()
            .with_context(|| format!("cannot write {}", temp.display()))
    })
}

/// Rewrites a Parquet `found` batch by batch through `edit`, keeping its schema.
fn rewrite_parquet(
    found: &Found,
    edit: impl FnMut(RecordBatch) -> Result<RecordBatch>,
) -> Result<()> {
    replace(found, |temp| {
        super::parquet::rewrite(&found.path, temp, edit)
    })
}

/// Which rows of the accounts file change: per block of [`BLOCK`] rows, a seeded choice of
/// exactly the rounded share, so the total is round(rows × percent / 100).
struct Chooser {
    seed: u64,
    percent: f64,
    rows: u64,
    block: u64,
    chosen: Vec<bool>,
}

impl Chooser {
    fn new(seed: u64, percent: f64, rows: u64) -> Chooser {
        Chooser {
            seed,
            percent,
            rows,
            block: u64::MAX,
            chosen: Vec::new(),
        }
    }

    fn share(&self, upto: u64) -> u64 {
        (upto as f64 * self.percent / 100.0).round() as u64
    }

    fn is_chosen(&mut self, row: u64) -> bool {
        let block = row / BLOCK;
        if block != self.block {
            self.block = block;
            let start = block * BLOCK;
            let end = (start + BLOCK).min(self.rows);
            let size = (end - start) as usize;
            let k = (self.share(end) - self.share(start)) as usize;
            let mut rng = Rng::stream(self.seed, 0x6d75_7461_7465, block);
            let mut order: Vec<usize> = (0..size).collect();
            self.chosen = vec![false; size];
            for i in 0..k.min(size) {
                let j = i + rng.below((size - i) as u64) as usize;
                order.swap(i, j);
                self.chosen[order[i]] = true;
            }
        }
        self.chosen
            .get((row % BLOCK) as usize)
            .copied()
            .unwrap_or(false)
    }
}

/// New MRR text for an old one: +10 % + 1.00, two decimals.
fn bump_mrr(old: &str) -> String {
    let cents = match old.split_once('.') {
        Some((whole, frac)) if frac.len() == 2 => whole
            .parse::<u64>()
            .ok()
            .zip(frac.parse::<u64>().ok())
            .map(|(w, f)| w * 100 + f),
        None => old.parse::<u64>().ok().map(|w| w * 100),
        _ => None,
    }
    .or_else(|| {
        old.parse::<f64>()
            .ok()
            .map(|v| (v.max(0.0) * 100.0).round() as u64)
    })
    .unwrap_or(0);
    let new = cents + cents / 10 + 100;
    format!("{}.{:02}", new / 100, new % 100)
}

/// New health score text: moved by 0.7 within 0..10 (one decimal).
fn bump_health(old: &str) -> Option<String> {
    let tenths = (old.parse::<f64>().ok()? * 10.0).round() as i64;
    let new = if tenths + 7 <= 100 {
        tenths + 7
    } else {
        tenths - 7
    };
    Some(format!("{}.{}", new / 10, new % 10))
}

fn normalize(name: &str) -> String {
    crate::extract::rows::normalize_column(name)
}

/// The accounts pass: which rows change, and what changed.
struct AccountPass {
    chooser: Chooser,
    /// Row index over all parts of the accounts table, in order.
    row: u64,
    /// References (`id`, else `externalId`) of the changed accounts.
    chosen: HashSet<String>,
    changed: u64,
}

/// Changes `percent` % of the accounts of the export in `dir` (see the module docs).
pub fn mutate(dir: &Path, percent: f64, seed: u64) -> Result<MutateSummary> {
    if !(0.0..=100.0).contains(&percent) {
        bail!("--mutate takes a percentage between 0 and 100, not {percent}");
    }
    let accounts = find(dir, "accounts")?;
    if accounts.is_empty() {
        bail!(
            "{}: no accounts.csv, accounts.ndjson (optionally .gz), accounts.parquet or accounts/ folder to mutate",
            dir.display()
        );
    }
    // Pass 1: count the accounts, so the chosen share is exact.
    let mut rows = 0;
    for part in &accounts {
        rows += count_rows(part)?;
    }
    let mut pass = AccountPass {
        chooser: Chooser::new(seed, percent, rows),
        row: 0,
        chosen: HashSet::new(),
        changed: 0,
    };

    // Pass 2: rewrite the accounts.
    for part in &accounts {
        match part.kind {
            Kind::Csv => rewrite(part, |input, out| accounts_csv(input, out, &mut pass))?,
            Kind::Ndjson => rewrite(part, |input, out| accounts_ndjson(input, out, &mut pass))?,
            Kind::Parquet => rewrite_parquet(part, |batch| accounts_parquet(batch, &mut pass))?,
        }
    }

    // Pass 3: one element count + 1 for each chosen account.
    let mut pending = pass.chosen;
    let mut counts_changed = 0;
    for part in find(dir, "element_counts")? {
        let (pending, changed) = (&mut pending, &mut counts_changed);
        match part.kind {
            Kind::Csv => rewrite(&part, |input, out| counts_csv(input, out, pending, changed))?,
            Kind::Ndjson => rewrite(&part, |input, out| {
                counts_ndjson(input, out, pending, changed)
            })?,
            Kind::Parquet => {
                rewrite_parquet(&part, |batch| counts_parquet(batch, pending, changed))?
            }
        }
    }
    Ok(MutateSummary {
        accounts: rows,
        changed: pass.changed,
        counts_changed,
    })
}

fn count_rows(part: &Found) -> Result<u64> {
    Ok(match part.kind {
        Kind::Csv => {
            let mut csv = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(open(part)?);
            let mut record = csv::ByteRecord::new();
            let mut n = 0;
            while csv.read_byte_record(&mut record)? {
                n += 1;
            }
            n
        }
        Kind::Ndjson => {
            let mut n = 0;
            for line in open(part)?.lines() {
                if !line?.trim().is_empty() {
                    n += 1;
                }
            }
            n
        }
        Kind::Parquet => super::parquet::row_count(&part.path)?,
    })
}

fn accounts_csv(input: Box<dyn BufRead>, out: &mut RawSink, pass: &mut AccountPass) -> Result<()> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    if !csv.read_record(&mut record)? {
        bail!("accounts file is empty");
    }
    let header: Vec<String> = record.iter().map(normalize).collect();
    let col = |n: &str| header.iter().position(|h| h == n);
    let reference = col("id")
        .or(col("externalid"))
        .context("no id/externalId column")?;
    let (mrr, health) = (col("mrr"), col("healthscore"));
    write_csv_record(out, record.iter())?;
    while csv.read_record(&mut record)? {
        if pass.chooser.is_chosen(pass.row) {
            pass.chosen
                .insert(record.get(reference).unwrap_or("").to_string());
            let fields: Vec<String> = record
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if Some(i) == mrr {
                        bump_mrr(v)
                    } else if Some(i) == health && !v.is_empty() {
                        bump_health(v).unwrap_or_else(|| v.to_string())
                    } else {
                        v.to_string()
                    }
                })
                .collect();
            write_csv_record(out, fields.iter().map(String::as_str))?;
            pass.changed += 1;
        } else {
            write_csv_record(out, record.iter())?;
        }
        pass.row += 1;
    }
    Ok(())
}

fn accounts_ndjson(
    input: Box<dyn BufRead>,
    out: &mut RawSink,
    pass: &mut AccountPass,
) -> Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if pass.chooser.is_chosen(pass.row) {
            let mut object: serde_json::Map<String, Value> =
                serde_json::from_str(&line).context("an accounts line is not a JSON object")?;
            let key_of = |object: &serde_json::Map<String, Value>, want: &str| {
                object.keys().find(|k| normalize(k) == want).cloned()
            };
            let reference = key_of(&object, "id")
                .or_else(|| key_of(&object, "externalid"))
                .and_then(|k| object.get(&k).cloned())
                .context("an account without id/externalId")?;
            pass.chosen.insert(match reference {
                Value::String(s) => s,
                other => other.to_string(),
            });
            let mrr_key = key_of(&object, "mrr").unwrap_or_else(|| "mrr".into());
            let old = object.get(&mrr_key).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let new = bump_mrr(old.as_deref().unwrap_or("0"));
            object.insert(mrr_key, serde_json::from_str(&new)?);
            if let Some(key) = key_of(&object, "healthscore") {
                if let Some(new) = object.get(&key).and_then(|v| bump_health(&v.to_string())) {
                    object.insert(key, serde_json::from_str(&new)?);
                }
            }
            serde_json::to_writer(&mut *out, &object)?;
            out.write_all(b"\n")?;
            pass.changed += 1;
        } else {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        pass.row += 1;
    }
    Ok(())
}

/// The index of the column named (normalized) `want`, if any.
fn column(batch: &RecordBatch, want: &str) -> Option<usize> {
    batch
        .schema()
        .fields()
        .iter()
        .position(|f| normalize(f.name()) == want)
}

/// A string column's values (`gen` writes ids as strings).
fn strings(batch: &RecordBatch, index: usize) -> Result<Vec<Option<String>>> {
    let array = batch
        .column(index)
        .as_string_opt::<i32>()
        .with_context(|| {
            format!(
                "column `{}` is not a string column",
                batch.schema().field(index).name()
            )
        })?;
    Ok(array.iter().map(|v| v.map(str::to_string)).collect())
}

fn accounts_parquet(batch: RecordBatch, pass: &mut AccountPass) -> Result<RecordBatch> {
    let reference = column(&batch, "id")
        .or(column(&batch, "externalid"))
        .context("no id/externalId column")?;
    let references = strings(&batch, reference)?;
    let doubles = |name: &str| -> Result<Option<(usize, Vec<Option<f64>>)>> {
        let Some(index) = column(&batch, name) else {
            return Ok(None);
        };
        let array = batch
            .column(index)
            .as_primitive_opt::<Float64Type>()
            .with_context(|| format!("column `{name}` is not DOUBLE"))?;
        Ok(Some((index, array.iter().collect())))
    };
    let mut mrr = doubles("mrr")?;
    let mut health = doubles("healthscore")?;
    for (i, reference) in references.into_iter().enumerate() {
        if pass.chooser.is_chosen(pass.row) {
            pass.chosen.insert(reference.unwrap_or_default());
            if let Some((_, values)) = &mut mrr {
                let old = values[i].map(|v| format!("{v:.2}")).unwrap_or_default();
                values[i] = bump_mrr(&old).parse().ok();
            }
            if let Some((_, values)) = &mut health {
                if let Some(old) = values[i] {
                    values[i] = bump_health(&old.to_string()).and_then(|t| t.parse().ok());
                }
            }
            pass.changed += 1;
        }
        pass.row += 1;
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (index, values) in [mrr, health].into_iter().flatten() {
        columns[index] = Arc::new(Float64Array::from(values));
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn counts_csv(
    input: Box<dyn BufRead>,
    out: &mut RawSink,
    pending: &mut HashSet<String>,
    changed: &mut u64,
) -> Result<()> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    if !csv.read_record(&mut record)? {
        return Ok(());
    }
    let header: Vec<String> = record.iter().map(normalize).collect();
    let account = header.iter().position(|h| h == "accountid");
    let count = header.iter().position(|h| h == "count");
    write_csv_record(out, record.iter())?;
    while csv.read_record(&mut record)? {
        let hit = match (account, count) {
            (Some(a), Some(c)) => record
                .get(c)
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|_| pending.remove(record.get(a).unwrap_or("")))
                .map(|n| (c, n + 1)),
            _ => None,
        };
        match hit {
            Some((c, n)) => {
                let n = n.to_string();
                let fields: Vec<&str> = record
                    .iter()
                    .enumerate()
                    .map(|(i, v)| if i == c { n.as_str() } else { v })
                    .collect();
                write_csv_record(out, fields.into_iter())?;
                *changed += 1;
            }
            None => write_csv_record(out, record.iter())?,
        }
    }
    Ok(())
}

fn counts_ndjson(
    input: Box<dyn BufRead>,
    out: &mut RawSink,
    pending: &mut HashSet<String>,
    changed: &mut u64,
) -> Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut object: serde_json::Map<String, Value> =
            serde_json::from_str(&line).context("an element_counts line is not a JSON object")?;
        let account = object
            .iter()
            .find(|(k, _)| normalize(k) == "accountid")
            .map(|(_, v)| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let count_key = object.keys().find(|k| normalize(k) == "count").cloned();
        let bumped = match (account, count_key) {
            (Some(a), Some(k)) if pending.contains(&a) => {
                match object.get(&k).and_then(Value::as_u64) {
                    Some(n) => {
                        pending.remove(&a);
                        object.insert(k, Value::from(n + 1));
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if bumped {
            serde_json::to_writer(&mut *out, &object)?;
            *changed += 1;
        } else {
            out.write_all(line.as_bytes())?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn counts_parquet(
    batch: RecordBatch,
    pending: &mut HashSet<String>,
    changed: &mut u64,
) -> Result<RecordBatch> {
    let (Some(account), Some(count)) = (column(&batch, "accountid"), column(&batch, "count"))
    else {
        return Ok(batch);
    };
    let accounts = strings(&batch, account)?;
    let mut counts: Vec<Option<i64>> = batch
        .column(count)
        .as_primitive_opt::<Int64Type>()
        .context("column `count` is not INT64")?
        .iter()
        .collect();
    for (account, n) in accounts.iter().zip(counts.iter_mut()) {
        if let (Some(account), Some(value)) = (account, n.as_mut()) {
            if pending.remove(account) {
                *value += 1;
                *changed += 1;
            }
        }
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[count] = Arc::new(Int64Array::from(counts));
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn write_csv_record<'a>(out: &mut impl Write, fields: impl Iterator<Item = &'a str>) -> Result<()> {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_csv_field(out, field.as_bytes())?;
    }
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps() {
        assert_eq!(bump_mrr("1200.50"), "1321.55");
        assert_eq!(bump_mrr("100"), "111.00");
        assert_eq!(bump_mrr(""), "1.00");
        assert_eq!(bump_health("9.5").as_deref(), Some("8.8"));
        assert_eq!(bump_health("3.0").as_deref(), Some("3.7"));
    }

    #[test]
    fn chooser_share_is_exact() {
        let rows = 2_345;
        let mut chooser = Chooser::new(7, 10.0, rows);
        let chosen = (0..rows).filter(|&r| chooser.is_chosen(r)).count();
        assert_eq!(chosen, 235);
    }
}
