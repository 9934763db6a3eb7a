//! Metrics of one `run` or `push` in Prometheus's text exposition format, for node_exporter's
//! textfile collector (`--metrics-file`). Names follow Prometheus's naming guide: the
//! `intercom_push_` prefix, base units (`_seconds`), `_total` on counters, labels `kind`,
//! `outcome` and `stage`.
//!
//! Contract: the file is replaced atomically (a temporary file in the same directory, then a
//! rename), so a scrape sees the previous run's file or this one's, never a mix; it is written
//! whatever the run's outcome, including errors that end it before the push; the counters
//! count this run only (each run starts from 0, as a restarted process does); the last
//! success time is carried over from the previous file when this run is not a success.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::intercom::ClientStats;
use crate::push::bulk::BulkReport;
use crate::push::report::{KindReport, PushReport};

/// What [`RunMetrics`] measured, for a notification.
pub struct RunSummary<'a> {
    /// Per kind: updated, unchanged, not_found, ambiguous, failed, departed.
    pub records: &'a [(&'static str, [u64; 6])],
    pub duration: Duration,
    pub drifted: Option<u64>,
    pub error_codes: &'a [(String, u64)],
    pub dry_run: bool,
}

/// The Intercom error code in a record's failure (`… HTTP 400 parameter_invalid: …`).
fn error_code(reason: &str) -> Option<String> {
    let after = &reason[reason.find("HTTP ")? + 5..];
    let mut words = after.split_whitespace();
    let status = words.next()?;
    let code = words.next().unwrap_or("").trim_end_matches(':');
    let code_ok = !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    Some(if code_ok {
        format!("{status} {code}")
    } else {
        status.to_string()
    })
}

/// A metrics file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the metrics file {path}: {source}; check that its directory exists and that this user may write it (--metrics-file)")]
pub struct MetricsError {
    pub path: String,
    pub source: std::io::Error,
}

const PREFIX: &str = "intercom_push_";
const LAST_SUCCESS: &str = "last_success_timestamp_seconds";

/// What one run measured; [`RunMetrics::write`] turns it into the file.
#[derive(Debug)]
pub struct RunMetrics {
    path: Option<PathBuf>,
    started: Instant,
    stages: Vec<(&'static str, Duration)>,
    /// Per kind (`company`, `user`): updated, unchanged, not_found, ambiguous, failed, departed.
    records: Vec<(&'static str, [u64; 6])>,
    /// Records found departed before the push (companies, users).
    departed: Option<(u64, u64)>,
    /// Drifted records the run's reconcile found, if it reconciled.
    drifted: Option<u64>,
    /// Intercom's error codes of the run's failed records, with their counts, most first.
    error_codes: Vec<(String, u64)>,
    /// Notifications that could not be delivered (0 or 1).
    notify_failures: u64,
    api: Option<ClientStats>,
    /// What the push's bulk path did, if it was used.
    bulk: Option<BulkReport>,
    dry_run: bool,
}

const OUTCOMES: [&str; 6] = [
    "updated",
    "unchanged",
    "not_found",
    "ambiguous",
    "failed",
    "departed",
];

impl RunMetrics {
    /// Starts the clock; nothing is written without a `path`.
    pub fn start(path: Option<PathBuf>) -> RunMetrics {
        RunMetrics {
            path,
            started: Instant::now(),
            stages: Vec::new(),
            records: Vec::new(),
            departed: None,
            drifted: None,
            error_codes: Vec::new(),
            notify_failures: 0,
            api: None,
            bulk: None,
            dry_run: false,
        }
    }

    /// Where to write (once the settings, which may name it, are resolved).
    pub fn set_path(&mut self, path: Option<PathBuf>) {
        self.path = path;
    }

    /// A dry run is never a success: nothing reached Intercom.
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    /// Runs `stage` and records how long it took, whether it succeeded or not.
    pub fn time<T>(&mut self, stage: &'static str, run: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = run();
        self.stages.push((stage, started.elapsed()));
        result
    }

    /// The push's record outcomes per kind.
    pub fn record_push(&mut self, report: &PushReport) {
        let counts = |k: &KindReport| {
            [
                k.updated,
                k.unchanged,
                k.not_found,
                k.ambiguous,
                k.failed,
                k.departed,
            ]
        };
        self.records = vec![
            ("company", counts(&report.companies)),
            ("user", counts(&report.users)),
        ];
        self.bulk = report.bulk.clone();
        self.drifted = report
            .reconcile
            .as_ref()
            .map(|r| r.companies.drifted + r.users.drifted);
        let mut codes: std::collections::BTreeMap<String, u64> = Default::default();
        for problem in report
            .companies
            .problems
            .iter()
            .chain(&report.users.problems)
        {
            if let Some(code) = error_code(&problem.reason) {
                *codes.entry(code).or_default() += 1;
            }
        }
        self.error_codes = codes.into_iter().collect();
        self.error_codes
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    }

    /// A notification could not be delivered.
    pub fn notify_failed(&mut self) {
        self.notify_failures += 1;
    }

    /// What a notification tells of the run (see `crate::notify`).
    pub fn summary(&self) -> RunSummary<'_> {
        RunSummary {
            records: &self.records,
            duration: self.started.elapsed(),
            drifted: self.drifted,
            error_codes: &self.error_codes,
            dry_run: self.dry_run,
        }
    }

    /// The records that left the export, found before the push (also when its guard
    /// stops it).
    pub fn record_departed(&mut self, companies: u64, users: u64) {
        self.departed = Some((companies, users));
    }

    /// The API client's counters (also after a failed push).
    pub fn record_api(&mut self, stats: ClientStats) {
        self.api = Some(stats);
    }

    /// Writes the file for a run that ends with `exit_code` (nothing without a path).
    pub fn write(&self, exit_code: u8) -> Result<(), MetricsError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last_success = if exit_code == 0 && !self.dry_run {
            now
        } else {
            previous_last_success(path).unwrap_or(0)
        };
        let text = self.render(exit_code, now, last_success);
        replace_atomically(path, text.as_bytes()).map_err(|source| MetricsError {
            path: path.display().to_string(),
            source,
        })
    }

    /// The exposition text.
    fn render(&self, exit_code: u8, now: u64, last_success: u64) -> String {
        let mut out = Exposition::default();
        out.family("exit_code", "gauge", "Exit code of the last run: 0 every record succeeded, 1 some records failed, 2 bad input or settings, 3 any other error.");
        out.sample("exit_code", &[], exit_code);
        out.family(
            "last_run_timestamp_seconds",
            "gauge",
            "When the last run ended, in unix time.",
        );
        out.sample("last_run_timestamp_seconds", &[], now);
        out.family(
            LAST_SUCCESS,
            "gauge",
            "When a run last ended with exit code 0 (not a dry run), in unix time; 0 if none has.",
        );
        out.sample(LAST_SUCCESS, &[], last_success);
        out.family(
            "duration_seconds",
            "gauge",
            "How long the last run took, start to exit.",
        );
        out.sample("duration_seconds", &[], seconds(self.started.elapsed()));
        if !self.stages.is_empty() {
            out.family("stage_duration_seconds", "gauge", "How long each stage of the last run took (load, transform, push); a stage the run did not reach is absent.");
            for (stage, took) in &self.stages {
                out.sample(
                    "stage_duration_seconds",
                    &[("stage", stage)],
                    seconds(*took),
                );
            }
        }
        if !self.records.is_empty() {
            out.family("records_total", "counter", "Records of the last push by kind and outcome (not_found: Intercom has no such company or contact; ambiguous: several contacts match; departed: left the export, what we sent cleared or, with departed = keep, kept).");
            for (kind, counts) in &self.records {
                for (outcome, count) in OUTCOMES.iter().zip(counts) {
                    out.sample(
                        "records_total",
                        &[("kind", kind), ("outcome", outcome)],
                        count,
                    );
                }
            }
        }
        if let Some((companies, users)) = self.departed {
            out.family("departed_records", "gauge", "Records that left the export after Intercom accepted them, found by the last push (before its max_departed guard).");
            out.sample("departed_records", &[("kind", "company")], companies);
            out.sample("departed_records", &[("kind", "user")], users);
        }
        if self.notify_failures > 0 {
            out.family(
                "notify_failures_total",
                "counter",
                "Notifications (notify_url) of the last run that could not be delivered.",
            );
            out.sample("notify_failures_total", &[], self.notify_failures);
        }
        if let Some(bulk) = &self.bulk {
            out.family("bulk_requests_total", "counter", "Bulk update requests (Preview API) Intercom accepted in the last push, each one task of at most 100 records.");
            out.sample("bulk_requests_total", &[], bulk.requests);
            out.family("bulk_tasks_total", "counter", "Bulk tasks of the last push by how they ended (with_errors and timed_out: their records were sent again one by one).");
            for (state, n) in [
                ("completed", bulk.tasks_completed),
                ("with_errors", bulk.tasks_with_errors),
                ("timed_out", bulk.tasks_timed_out),
            ] {
                out.sample("bulk_tasks_total", &[("state", state)], n);
            }
            out.family("bulk_polls_total", "counter", "Polls of bulk jobs (GET /companies/bulk/{id}, GET /contacts/bulk/{id}) in the last push.");
            out.sample("bulk_polls_total", &[], bulk.polls);
            out.family("bulk_resent_records_total", "counter", "Records of the last push sent again one by one because their bulk task did not complete.");
            out.sample("bulk_resent_records_total", &[], bulk.resent);
            out.family("bulk_fell_back", "gauge", "1 when the last push was asked to use bulk updates but the workspace does not answer the Preview API, so it used per-record PUTs.");
            out.sample("bulk_fell_back", &[], u8::from(bulk.fell_back));
        }
        if let Some(api) = &self.api {
            out.family(
                "api_requests_total",
                "counter",
                "Requests the last run sent to the Intercom API, retries included.",
            );
            out.sample("api_requests_total", &[], api.requests_sent);
            out.family(
                "api_rate_limited_total",
                "counter",
                "Answers 429 (rate limited) the last run got from the Intercom API.",
            );
            out.sample("api_rate_limited_total", &[], api.rate_limited);
            out.family("api_retries_total", "counter", "Requests the last run sent again after a 429, a 5xx, a timeout or a dropped connection.");
            out.sample("api_retries_total", &[], api.retries);
        }
        out.0
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.6}", duration.as_secs_f64())
}

/// Text exposition format, family by family.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.0, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.0, "{PREFIX}{name}");
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(label, value)| format!("{label}=\"{}\"", escape_label(value)))
                .collect();
            let _ = write!(self.0, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The last success time in the file a previous run wrote, if any.
fn previous_last_success(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let name = format!("{PREFIX}{LAST_SUCCESS} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&name))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
}

/// Writes `bytes` to a temporary file beside `path` (a name the textfile collector ignores,
/// as it reads only `*.prom`), flushes it to disk and renames it over `path`. The file is
/// 0644: metrics hold no secret, and node_exporter usually runs as another user.
fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temp_name = path.file_name().unwrap_or_default().to_owned();
    temp_name.push(format!(".tmp.{}", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }

    #[test]
    fn the_last_success_is_read_back_from_a_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        let mut metrics = RunMetrics::start(Some(path.clone()));
        metrics.write(0).unwrap();
        let first = previous_last_success(&path).unwrap();
        assert!(first > 1_700_000_000, "{first}");
        metrics.set_dry_run(true);
        std::fs::write(&path, "intercom_push_last_success_timestamp_seconds 1234\n").unwrap();
        metrics.write(0).unwrap();
        assert_eq!(
            previous_last_success(&path),
            Some(1234),
            "a dry run is no success"
        );
    }
}
