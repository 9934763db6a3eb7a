//! `gen --mutate P`: change P % of an export's accounts in place, deterministically for a
//! seed: each chosen account gets a new MRR and health score and one element count + 1.
//! Files are rewritten to a temporary name and renamed over the original.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
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
}

struct Found {
    path: PathBuf,
    kind: Kind,
    gzip: bool,
}

fn find(dir: &Path, table: &str) -> Result<Option<Found>> {
    let mut found = None;
    for (ext, kind) in [
        ("csv", Kind::Csv),
        ("ndjson", Kind::Ndjson),
        ("jsonl", Kind::Ndjson),
    ] {
        for gzip in [false, true] {
            let name = if gzip {
                format!("{table}.{ext}.gz")
            } else {
                format!("{table}.{ext}")
            };
            let path = dir.join(&name);
            if path.exists() {
                if found.is_some() {
                    bail!("{}: two files for the `{table}` table", dir.display());
                }
                found = Some(Found { path, kind, gzip });
            }
        }
    }
    if found.is_none() && dir.join(format!("{table}.json")).exists() {
        bail!("--mutate reads CSV or NDJSON exports (as `gen` writes them), not {table}.json");
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

/// Rewrites `found` line by line through `edit`, then renames the result over it.
fn rewrite(
    found: &Found,
    edit: impl FnOnce(Box<dyn BufRead>, &mut RawSink) -> Result<()>,
) -> Result<()> {
    let temp = temp_path(&found.path);
    let result = (|| -> Result<()> {
        let mut out = raw_sink(&temp, found.gzip)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        edit(open(found)?, &mut out)?;
        out.finish()
            .with_context(|| format!("cannot write {}", temp.display()))?;
        std::fs::rename(&temp, &found.path)
            .with_context(|| format!("cannot replace {}", found.path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("mutating {}", found.path.display()))
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

/// Changes `percent` % of the accounts of the export in `dir` (see the module docs).
pub fn mutate(dir: &Path, percent: f64, seed: u64) -> Result<MutateSummary> {
    if !(0.0..=100.0).contains(&percent) {
        bail!("--mutate takes a percentage between 0 and 100, not {percent}");
    }
    let accounts = find(dir, "accounts")?.with_context(|| {
        format!(
            "{}: no accounts.csv or accounts.ndjson (optionally .gz) to mutate",
            dir.display()
        )
    })?;
    // Pass 1: count the accounts, so the chosen share is exact.
    let rows = match accounts.kind {
        Kind::Csv => {
            let mut csv = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(open(&accounts)?);
            let mut record = csv::ByteRecord::new();
            let mut n = 0;
            while csv.read_byte_record(&mut record)? {
                n += 1;
            }
            n
        }
        Kind::Ndjson => {
            let mut n = 0;
            for line in open(&accounts)?.lines() {
                if !line?.trim().is_empty() {
                    n += 1;
                }
            }
            n
        }
    };
    let mut chooser = Chooser::new(seed, percent, rows);
    let mut chosen_refs: HashSet<String> = HashSet::new();
    let mut summary = MutateSummary {
        accounts: rows,
        ..MutateSummary::default()
    };

    // Pass 2: rewrite the accounts.
    rewrite(&accounts, |input, out| {
        match accounts.kind {
            Kind::Csv => {
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
                let mut row = 0;
                while csv.read_record(&mut record)? {
                    if chooser.is_chosen(row) {
                        chosen_refs.insert(record.get(reference).unwrap_or("").to_string());
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
                        summary.changed += 1;
                    } else {
                        write_csv_record(out, record.iter())?;
                    }
                    row += 1;
                }
            }
            Kind::Ndjson => {
                let mut row = 0;
                for line in input.lines() {
                    let line = line?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    if chooser.is_chosen(row) {
                        let mut object: serde_json::Map<String, Value> =
                            serde_json::from_str(&line)
                                .context("an accounts line is not a JSON object")?;
                        let key_of = |object: &serde_json::Map<String, Value>, want: &str| {
                            object.keys().find(|k| normalize(k) == want).cloned()
                        };
                        let reference = key_of(&object, "id")
                            .or_else(|| key_of(&object, "externalid"))
                            .and_then(|k| object.get(&k).cloned())
                            .context("an account without id/externalId")?;
                        chosen_refs.insert(match reference {
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
                            if let Some(new) =
                                object.get(&key).and_then(|v| bump_health(&v.to_string()))
                            {
                                object.insert(key, serde_json::from_str(&new)?);
                            }
                        }
                        serde_json::to_writer(&mut *out, &object)?;
                        out.write_all(b"\n")?;
                        summary.changed += 1;
                    } else {
                        out.write_all(line.as_bytes())?;
                        out.write_all(b"\n")?;
                    }
                    row += 1;
                }
            }
        }
        Ok(())
    })?;

    // Pass 3: one element count + 1 for each chosen account.
    if let Some(counts) = find(dir, "element_counts")? {
        let mut pending = chosen_refs;
        rewrite(&counts, |input, out| {
            match counts.kind {
                Kind::Csv => {
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
                                summary.counts_changed += 1;
                            }
                            None => write_csv_record(out, record.iter())?,
                        }
                    }
                }
                Kind::Ndjson => {
                    for line in input.lines() {
                        let line = line?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        let mut object: serde_json::Map<String, Value> =
                            serde_json::from_str(&line)
                                .context("an element_counts line is not a JSON object")?;
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
                            summary.counts_changed += 1;
                        } else {
                            out.write_all(line.as_bytes())?;
                        }
                        out.write_all(b"\n")?;
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(summary)
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
