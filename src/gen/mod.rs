//! `gen`: deterministic, realistic exports in the input contract, for tests and benchmarks.
//!
//! Every row comes from a SplitMix64 stream keyed by (seed, table, account index), so a seed
//! gives the same bytes on every machine, and each table is written by its own thread.
//! CSV, NDJSON and Parquet (typed columns) hold the same data: they load to the same payloads.
//! With `--parts N` each table is a folder of N Spark-style part files plus `_SUCCESS`; an
//! account's rows (its users, counts, …) go to one part chosen by a seeded hash.
//! Per account: ≈`users_per_account` users (0..=2×), 5–15 element counts (of 40 Elements),
//! 3–7 metric values (of 15 Success Metrics), 0–4 indicators, 0–3 segments. Values are
//! long-tailed (MRR, seats, counts) and names carry accents, CJK and emoji.
//!
//! [`mutate`] changes a given share of the accounts of such an export in place.

pub mod data;
mod mutate;
mod parquet;
pub mod rng;
pub mod write;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use data::*;
pub use mutate::{mutate, MutateSummary};
use rng::{permute40, Rng};
use write::{file_name, Col, Columns, Layout, Table, V};

/// Output format of `gen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GenFormat {
    Csv,
    Ndjson,
    Parquet,
}

#[derive(Clone, Debug)]
pub struct GenOptions {
    pub accounts: u64,
    pub seed: u64,
    pub format: GenFormat,
    pub gzip: bool,
    pub users_per_account: u32,
    /// Write each table as a folder of this many part files.
    pub parts: Option<u32>,
}

/// Rows written per table file.
#[derive(Debug, Default)]
pub struct GenSummary {
    pub files: Vec<(String, u64)>,
}

impl GenSummary {
    pub fn rows(&self, file_prefix: &str) -> u64 {
        self.files
            .iter()
            .filter(|(f, _)| f.starts_with(file_prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

// Stream tags: one independent stream per (table, account).
const T_USERS_PER_ACCOUNT: u64 = 1;
const T_ACCOUNT: u64 = 2;
const T_USER: u64 = 3;
const T_COUNTS: u64 = 4;
const T_METRICS: u64 = 5;
const T_INDICATORS: u64 = 6;
const T_SEGMENTS: u64 = 7;
const T_IDS: u64 = 8;

pub const ACCOUNT_COLUMNS: Columns = &[
    ("id", Col::Str),
    ("externalId", Col::Str),
    ("accountOwnerId", Col::Str),
    ("name", Col::Str),
    ("mrr", Col::Float),
    ("healthScore", Col::Float),
    ("type", Col::Str),
    ("npsScore", Col::Int),
    ("nextRenewalDate", Col::Date),
    ("zipCode", Col::Str),
    ("isEnterprise", Col::Bool),
    ("seats", Col::Int),
    ("plan", Col::Str),
    ("industry", Col::Str),
    ("country", Col::Str),
    ("createdAt", Col::Timestamp),
    ("churnProbability", Col::Float),
];
const USER_COLUMNS: Columns = &[
    ("id", Col::Str),
    ("externalId", Col::Str),
    ("email", Col::Str),
];
const CATALOG_COLUMNS: Columns = &[("id", Col::Str), ("name", Col::Str)];
const COUNT_COLUMNS: Columns = &[
    ("account_id", Col::Str),
    ("element_id", Col::Str),
    ("count", Col::Int),
];
/// A metric's value is an integer, a decimal or a word, depending on the metric.
const METRIC_VALUE_COLUMNS: Columns = &[
    ("account_id", Col::Str),
    ("metric_id", Col::Str),
    ("value", Col::Json),
];
const INDICATOR_COLUMNS: Columns = &[
    ("account_id", Col::Str),
    ("kind", Col::Str),
    ("name", Col::Str),
];
const SEGMENT_COLUMNS: Columns = &[("account_id", Col::Str), ("name", Col::Str)];

/// The tables a generated export has, in the order written.
pub const TABLES: [&str; 8] = [
    "elements",
    "success_metrics",
    "accounts",
    "users",
    "element_counts",
    "metric_values",
    "indicators",
    "segments",
];

fn users_of(seed: u64, account: u64, per_account: u32) -> u64 {
    Rng::stream(seed, T_USERS_PER_ACCOUNT, account).below(2 * per_account as u64 + 1)
}

fn account_id(out: &mut String, account: u64) {
    out.clear();
    let _ = write!(out, "acc_{:08}", account + 1);
}

/// Writes a generated export into `dir` (created if needed).
pub fn generate(dir: &Path, options: &GenOptions) -> Result<GenSummary> {
    if options.accounts == 0 {
        bail!("--accounts must be at least 1");
    }
    if options.parts == Some(0) {
        bail!("--parts must be at least 1");
    }
    if options.gzip && options.format == GenFormat::Parquet {
        bail!("Parquet files are compressed inside (snappy): drop --gzip");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let layout = Layout {
        format: options.format,
        gzip: options.gzip,
        parts: options.parts,
        seed: options.seed,
    };
    refuse_other_layouts(dir, &layout)?;
    let mut summary = GenSummary::default();
    let create = |table: &str, columns| {
        Table::create(dir, table, &layout, columns)
            .with_context(|| format!("cannot create {}", dir.join(table).display()))
    };

    // Catalogs: tiny, written first.
    let mut elements = create("elements", CATALOG_COLUMNS)?;
    for (i, name) in ELEMENTS.iter().enumerate() {
        // One name with extra inner and outer whitespace: the loader collapses it.
        let padded;
        let name = if i == 1 {
            padded = format!("  {} ", name.replace(' ', "   "));
            padded.as_str()
        } else {
            name
        };
        elements.account(i as u64);
        elements.row(&[V::Str(&format!("el_{:02}", i + 1)), V::Str(name)])?;
    }
    summary
        .files
        .push((layout.entry_name("elements"), elements.finish()?));
    let mut metrics = create("success_metrics", CATALOG_COLUMNS)?;
    for (i, (name, _)) in METRICS.iter().enumerate() {
        metrics.account(i as u64);
        metrics.row(&[V::Str(&format!("sm_{:02}", i + 1)), V::Str(name)])?;
    }
    summary
        .files
        .push((layout.entry_name("success_metrics"), metrics.finish()?));

    type Job = fn(&mut Table, &GenOptions) -> std::io::Result<()>;
    let jobs: [(&str, Columns, Job); 6] = [
        ("accounts", ACCOUNT_COLUMNS, write_accounts),
        ("users", USER_COLUMNS, write_users),
        ("element_counts", COUNT_COLUMNS, write_counts),
        ("metric_values", METRIC_VALUE_COLUMNS, write_metric_values),
        ("indicators", INDICATOR_COLUMNS, write_indicators),
        ("segments", SEGMENT_COLUMNS, write_segments),
    ];
    let results: Vec<Result<(String, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(table, columns, job)| {
                let layout = &layout;
                let create = &create;
                scope.spawn(move || -> Result<(String, u64)> {
                    let mut writer = create(table, columns)?;
                    job(&mut writer, options)
                        .with_context(|| format!("cannot write {}", dir.join(table).display()))?;
                    let rows = writer.finish()?;
                    Ok((layout.entry_name(table), rows))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread panicked"))
            .collect()
    });
    for result in results {
        summary.files.push(result?);
    }
    Ok(summary)
}

/// A table in another format or layout next to ours would make the export ambiguous for
/// `load`; so would stale part files of an earlier `--parts`.
fn refuse_other_layouts(dir: &Path, layout: &Layout) -> Result<()> {
    let refuse = |path: PathBuf, table: &str| -> Result<()> {
        bail!(
            "{} already exists: `load` would find two sources for the `{table}` table; \
             generate into an empty directory (or remove it)",
            path.display()
        )
    };
    for table in TABLES {
        let ours = dir.join(file_name(table, layout.format, layout.gzip));
        for format in [GenFormat::Csv, GenFormat::Ndjson, GenFormat::Parquet] {
            for gzip in [false, true] {
                let other = dir.join(file_name(table, format, gzip));
                if (layout.parts.is_some() || other != ours) && other.exists() {
                    refuse(other, table)?;
                }
            }
        }
        let folder = dir.join(table);
        if !folder.is_dir() {
            continue;
        }
        let expected: Vec<String> = match layout.parts {
            Some(n) => layout.part_names(table, n),
            None => Vec::new(),
        };
        for entry in std::fs::read_dir(&folder)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name != "_SUCCESS" && !expected.contains(&name) {
                refuse(folder.join(name), table)?;
            }
        }
    }
    Ok(())
}

const DAY_2026_01_01: i64 = 20_454;

fn text(s: &str) -> V<'_> {
    if s.is_empty() {
        V::Null
    } else {
        V::Str(s)
    }
}

fn num(s: &str) -> V<'_> {
    if s.is_empty() {
        V::Null
    } else {
        V::Num(s)
    }
}

fn write_accounts(w: &mut Table, o: &GenOptions) -> std::io::Result<()> {
    let (mut id, mut external, mut owner, mut name) =
        (String::new(), String::new(), String::new(), String::new());
    let (mut mrr, mut health, mut churn) = (String::new(), String::new(), String::new());
    let mut zip = String::new();
    let mut first_user = 0u64;
    for i in 0..o.accounts {
        w.account(i);
        let mut r = Rng::stream(o.seed, T_ACCOUNT, i);
        let users = users_of(o.seed, i, o.users_per_account);
        account_id(&mut id, i);
        external.clear();
        let _ = write!(external, "cust_{:010x}", permute40(i, o.seed ^ T_IDS));
        // The owner is one of the account's users, most of the time.
        let has_owner = users > 0 && r.chance(85);
        let owner_index = first_user + r.below(users.max(1));
        owner.clear();
        if has_owner {
            let _ = write!(owner, "usr_{:08}", owner_index + 1);
        }
        first_user += users;

        name.clear();
        name.push_str(r.pick(&COMPANY_FIRST));
        name.push(' ');
        name.push_str(r.pick(&COMPANY_SECOND));
        if r.chance(4) {
            name.push_str(r.pick(&EMOJI));
        }

        // MRR in cents: Pareto-like, tail exponent ≈ ln 2 / ln 1.75 ≈ 1.24.
        let has_mrr = !r.chance(2);
        let cents = r.long_tail(2_000, 60_000, 7, 4, 14);
        let cents = if r.chance(30) {
            cents / 100 * 100
        } else {
            cents
        };
        mrr.clear();
        if has_mrr {
            let _ = write!(mrr, "{}.{:02}", cents / 100, cents % 100);
        }
        let tenths = r.below(101);
        health.clear();
        if !r.chance(5) {
            let _ = write!(health, "{}.{}", tenths / 10, tenths % 10);
        }
        let mut pick = r.below(100);
        let mut kind = TYPES[0].0;
        for (t, weight) in TYPES {
            if pick < weight {
                kind = t;
                break;
            }
            pick -= weight;
        }
        let nps = r.range(-100, 100);
        let has_nps = !r.chance(40);
        let renewal = DAY_2026_01_01 + r.below(3 * 365) as i64;
        let has_renewal = !r.chance(10);
        zip.clear();
        let _ = write!(zip, "{:05}", r.below(100_000));
        let enterprise = cents >= 1_000_000;
        let seats = r.long_tail(1, 10, 2, 1, 10) as i64;
        let plan = match cents {
            c if c >= 1_000_000 => PLANS[3],
            c if c >= 200_000 => PLANS[2],
            c if c >= 50_000 => PLANS[1],
            _ => PLANS[0],
        };
        let industry = r.pick(&INDUSTRIES);
        let country = r.pick(&COUNTRIES);
        let created_day = DAY_2026_01_01 - 1 - r.below(8 * 365) as i64;
        let created = created_day * 86_400 + r.below(86_400) as i64;
        churn.clear();
        let _ = write!(churn, "0.{:03}", r.below(1000));

        w.row(&[
            V::Str(&id),
            V::Str(&external),
            text(&owner),
            V::Str(&name),
            num(&mrr),
            num(&health),
            V::Str(kind),
            if has_nps { V::Int(nps) } else { V::Null },
            if has_renewal {
                V::Date(renewal)
            } else {
                V::Null
            },
            V::Str(&zip),
            V::Bool(enterprise),
            V::Int(seats),
            V::Str(plan),
            V::Str(industry),
            V::Str(country),
            V::Timestamp(created),
            V::Num(&churn),
        ])?;
    }
    Ok(())
}

fn write_users(w: &mut Table, o: &GenOptions) -> std::io::Result<()> {
    let (mut id, mut external, mut email) = (String::new(), String::new(), String::new());
    let mut user = 0u64;
    for i in 0..o.accounts {
        w.account(i);
        let mut r = Rng::stream(o.seed, T_USER, i);
        let domain = r.pick(&DOMAINS);
        for _ in 0..users_of(o.seed, i, o.users_per_account) {
            id.clear();
            let _ = write!(id, "usr_{:08}", user + 1);
            let has_external = !r.chance(10);
            external.clear();
            if has_external {
                let _ = write!(external, "u-{:010x}", permute40(user, o.seed ^ T_USER));
            }
            email.clear();
            if !has_external || !r.chance(5) {
                let _ = write!(
                    email,
                    "{}.{}.{}@{}",
                    r.pick(&FIRST_NAMES),
                    r.pick(&LAST_NAMES),
                    user + 1,
                    domain
                );
            }
            w.row(&[V::Str(&id), text(&external), text(&email)])?;
            user += 1;
        }
    }
    Ok(())
}

fn write_counts(w: &mut Table, o: &GenOptions) -> std::io::Result<()> {
    let (mut id, mut element) = (String::new(), String::new());
    let mut picked = Vec::new();
    for i in 0..o.accounts {
        w.account(i);
        let mut r = Rng::stream(o.seed, T_COUNTS, i);
        account_id(&mut id, i);
        let k = r.range(5, 15) as usize;
        r.distinct(ELEMENTS.len(), k, &mut picked);
        for &e in &picked {
            element.clear();
            let _ = write!(element, "el_{:02}", e + 1);
            let count = if r.chance(15) {
                0
            } else {
                r.long_tail(1, 20, 2, 1, 16)
            };
            w.row(&[V::Str(&id), V::Str(&element), V::Int(count as i64)])?;
        }
    }
    Ok(())
}

fn write_metric_values(w: &mut Table, o: &GenOptions) -> std::io::Result<()> {
    let (mut id, mut metric, mut value) = (String::new(), String::new(), String::new());
    let mut picked = Vec::new();
    for i in 0..o.accounts {
        w.account(i);
        let mut r = Rng::stream(o.seed, T_METRICS, i);
        account_id(&mut id, i);
        let k = r.range(3, 7) as usize;
        r.distinct(METRICS.len(), k, &mut picked);
        for &m in &picked {
            metric.clear();
            let _ = write!(metric, "sm_{:02}", m + 1);
            value.clear();
            let cell = match METRICS[m].1 {
                MetricType::Int => V::Int(r.long_tail(0, 50, 2, 1, 14) as i64),
                MetricType::Float => {
                    let thousandths = r.long_tail(1, 999, 3, 2, 8);
                    let _ = write!(value, "{}.{:03}", thousandths / 1000, thousandths % 1000);
                    V::Num(&value)
                }
                MetricType::Text => V::Str(r.pick(&METRIC_WORDS)),
            };
            w.row(&[V::Str(&id), V::Str(&metric), cell])?;
        }
    }
    Ok(())
}

fn write_indicators(w: &mut Table, o: &GenOptions) -> std::io::Result<()> {
    let mut id = String::new();
    let mut picked = Vec::new();
    for i in 0..o.accounts {
        w.account(i);
        let mut r = Rng::stream(o.seed, T_INDICATORS, i);
        let k = r.range(0, 4) as usize;
        if k == 0 {
            continue;
        }
        account_id(&mut id, i);
        r.distinct(RISKS.len() + OPPORTUNITIES.len(), k, &mut picked);
        for &p in &picked {
            let (kind, name) = if p < RISKS.len() {
                ("risk", RISKS[p])
            } else {
                ("opportunity", OPPORTUNITIES[p - RISKS.len()])
            };
            w.row(&[V::Str(&id), V::Str(kind), V::Str(name)])?;
        }
    }
    Ok(())
}

fn write_segments(w: &mut Table, o: &GenOptions) -> std::io::Result<()> {
    let mut id = String::new();
    let mut picked = Vec::new();
    for i in 0..o.accounts {
        w.account(i);
        let mut r = Rng::stream(o.seed, T_SEGMENTS, i);
        let k = r.range(0, 3) as usize;
        if k == 0 {
            continue;
        }
        account_id(&mut id, i);
        r.distinct(SEGMENTS.len(), k, &mut picked);
        for &s in &picked {
            w.row(&[V::Str(&id), V::Str(SEGMENTS[s])])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::read::parquet::civil_from_days;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(DAY_2026_01_01), (2026, 1, 1));
        assert_eq!(civil_from_days(DAY_2026_01_01 + 58), (2026, 2, 28));
        assert_eq!(civil_from_days(DAY_2026_01_01 + 59), (2026, 3, 1));
        assert_eq!(civil_from_days(19_417), (2023, 3, 1));
    }

    #[test]
    fn names_are_unique_and_clean() {
        let mut seen = std::collections::HashSet::new();
        for name in ELEMENTS.iter().chain(METRICS.iter().map(|(n, _)| n)) {
            assert!(seen.insert(name.to_lowercase()), "{name} twice");
        }
    }
}
