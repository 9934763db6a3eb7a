//! `gen`: deterministic, realistic exports in the input contract, for tests and benchmarks.
//!
//! Every row comes from a SplitMix64 stream keyed by (seed, table, account index), so a seed
//! gives the same bytes on every machine, and each table is written by its own thread.
//! Per account: ≈`users_per_account` users (0..=2×), 5–15 element counts (of 40 Elements),
//! 3–7 metric values (of 15 Success Metrics), 0–4 indicators, 0–3 segments. Values are
//! long-tailed (MRR, seats, counts) and names carry accents, CJK and emoji.
//!
//! [`mutate`] changes a given share of the accounts of such an export in place.

pub mod data;
mod mutate;
pub mod rng;
pub mod write;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use data::*;
pub use mutate::{mutate, MutateSummary};
use rng::{permute40, Rng};
use write::{file_name, TableWriter, V};

/// Output format of `gen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GenFormat {
    Csv,
    Ndjson,
}

#[derive(Clone, Debug)]
pub struct GenOptions {
    pub accounts: u64,
    pub seed: u64,
    pub format: GenFormat,
    pub gzip: bool,
    pub users_per_account: u32,
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

pub const ACCOUNT_COLUMNS: &[&str] = &[
    "id",
    "externalId",
    "accountOwnerId",
    "name",
    "mrr",
    "healthScore",
    "type",
    "npsScore",
    "nextRenewalDate",
    "zipCode",
    "isEnterprise",
    "seats",
    "plan",
    "industry",
    "country",
    "createdAt",
    "churnProbability",
];
const USER_COLUMNS: &[&str] = &["id", "externalId", "email"];
const CATALOG_COLUMNS: &[&str] = &["id", "name"];
const COUNT_COLUMNS: &[&str] = &["account_id", "element_id", "count"];
const METRIC_VALUE_COLUMNS: &[&str] = &["account_id", "metric_id", "value"];
const INDICATOR_COLUMNS: &[&str] = &["account_id", "kind", "name"];
const SEGMENT_COLUMNS: &[&str] = &["account_id", "name"];

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
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    refuse_other_formats(dir, options)?;
    let path = |table: &str| dir.join(file_name(table, options.format, options.gzip));
    let mut summary = GenSummary::default();

    // Catalogs: tiny, written first.
    let mut elements = TableWriter::create(
        &path("elements"),
        options.format,
        options.gzip,
        CATALOG_COLUMNS,
    )?;
    for (i, name) in ELEMENTS.iter().enumerate() {
        // One name with extra inner and outer whitespace: the loader collapses it.
        let padded;
        let name = if i == 1 {
            padded = format!("  {} ", name.replace(' ', "   "));
            padded.as_str()
        } else {
            name
        };
        elements.row(&[V::Str(&format!("el_{:02}", i + 1)), V::Str(name)])?;
    }
    summary.files.push((
        file_name("elements", options.format, options.gzip),
        elements.finish()?,
    ));
    let mut metrics = TableWriter::create(
        &path("success_metrics"),
        options.format,
        options.gzip,
        CATALOG_COLUMNS,
    )?;
    for (i, (name, _)) in METRICS.iter().enumerate() {
        metrics.row(&[V::Str(&format!("sm_{:02}", i + 1)), V::Str(name)])?;
    }
    summary.files.push((
        file_name("success_metrics", options.format, options.gzip),
        metrics.finish()?,
    ));

    type Job = fn(&mut TableWriter, &GenOptions) -> std::io::Result<()>;
    let jobs: [(&str, &'static [&'static str], Job); 6] = [
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
                let file: PathBuf = path(table);
                scope.spawn(move || -> Result<(String, u64)> {
                    let mut writer =
                        TableWriter::create(&file, options.format, options.gzip, columns)
                            .with_context(|| format!("cannot create {}", file.display()))?;
                    job(&mut writer, options)
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    let rows = writer.finish()?;
                    Ok((file_name(table, options.format, options.gzip), rows))
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

/// A table file of another format next to ours would make the export ambiguous for `load`.
fn refuse_other_formats(dir: &Path, options: &GenOptions) -> Result<()> {
    for table in TABLES {
        for format in [GenFormat::Csv, GenFormat::Ndjson] {
            for gzip in [false, true] {
                if format == options.format && gzip == options.gzip {
                    continue;
                }
                let other = dir.join(file_name(table, format, gzip));
                if other.exists() {
                    bail!(
                        "{} already exists: `load` would find two files for the `{table}` table; \
                         generate into an empty directory (or remove it)",
                        other.display()
                    );
                }
            }
        }
    }
    Ok(())
}

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian; Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
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

fn write_accounts(w: &mut TableWriter, o: &GenOptions) -> std::io::Result<()> {
    let (mut id, mut external, mut owner, mut name) =
        (String::new(), String::new(), String::new(), String::new());
    let (mut mrr, mut health, mut renewal, mut created, mut churn) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    let mut zip = String::new();
    let mut first_user = 0u64;
    for i in 0..o.accounts {
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
        let (y, m, d) = civil_from_days(DAY_2026_01_01 + r.below(3 * 365) as i64);
        renewal.clear();
        if !r.chance(10) {
            let _ = write!(renewal, "{y:04}-{m:02}-{d:02}");
        }
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
        let (y, m, d) = civil_from_days(DAY_2026_01_01 - 1 - r.below(8 * 365) as i64);
        let secs = r.below(86_400);
        created.clear();
        let _ = write!(
            created,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
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
            text(&renewal),
            V::Str(&zip),
            V::Bool(enterprise),
            V::Int(seats),
            V::Str(plan),
            V::Str(industry),
            V::Str(country),
            V::Str(&created),
            V::Num(&churn),
        ])?;
    }
    Ok(())
}

fn write_users(w: &mut TableWriter, o: &GenOptions) -> std::io::Result<()> {
    let (mut id, mut external, mut email) = (String::new(), String::new(), String::new());
    let mut user = 0u64;
    for i in 0..o.accounts {
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

fn write_counts(w: &mut TableWriter, o: &GenOptions) -> std::io::Result<()> {
    let (mut id, mut element) = (String::new(), String::new());
    let mut picked = Vec::new();
    for i in 0..o.accounts {
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

fn write_metric_values(w: &mut TableWriter, o: &GenOptions) -> std::io::Result<()> {
    let (mut id, mut metric, mut value) = (String::new(), String::new(), String::new());
    let mut picked = Vec::new();
    for i in 0..o.accounts {
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

fn write_indicators(w: &mut TableWriter, o: &GenOptions) -> std::io::Result<()> {
    let mut id = String::new();
    let mut picked = Vec::new();
    for i in 0..o.accounts {
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

fn write_segments(w: &mut TableWriter, o: &GenOptions) -> std::io::Result<()> {
    let mut id = String::new();
    let mut picked = Vec::new();
    for i in 0..o.accounts {
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
