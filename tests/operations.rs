//! Nightly operations: the `--metrics-file` Prometheus metrics (through the real binary,
//! against the mock Intercom), and the recipes of docs/OPERATIONS.md (systemd units, cron
//! line, alert rules, config file) checked against the tool.

mod common;
mod mock_harness;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use intercom_push::mock::{MockConfig, MockServer, Seed, SeedCompany, SeedContact};
use mock_harness::{intercom_push, mock, Run};
use serde_json::Value;

fn fixtures() -> PathBuf {
    common::manifest_dir().join("fixtures/export")
}

/// A mock holding every fixture company but `hooli` and `zorg`, and 3 of the 9 users.
fn seeded_mock() -> (MockServer, u64) {
    let mock = mock(MockConfig::default());
    let companies: Vec<SeedCompany> = std::fs::read_to_string(fixtures().join("accounts.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .filter(|id| id != "hooli" && id != "zorg")
        .map(|company_id| SeedCompany {
            company_id,
            ..SeedCompany::default()
        })
        .collect();
    let seeded = companies.len() as u64;
    let contact = |external_id: Option<&str>, email: Option<&str>| SeedContact {
        external_id: external_id.map(str::to_string),
        email: email.map(str::to_string),
        ..SeedContact::default()
    };
    mock.seed(Seed {
        companies,
        contacts: vec![
            contact(Some("u-001"), Some("ada@acme.example")),
            contact(Some("u-002"), None),
            contact(None, Some("linus@umbrella.example")),
        ],
        data_attributes: vec![],
    })
    .unwrap();
    (mock, seeded)
}

fn run(db: &Path, base_url: &str, extra: &[&str]) -> Run {
    let input = fixtures();
    let mut args = vec![
        "run",
        "--input",
        input.to_str().unwrap(),
        "--base-url",
        base_url,
        "--json",
    ];
    args.extend_from_slice(extra);
    intercom_push(db, &args)
}

/// A parsed metrics file: `name{labels}` (labels as written) → value, and each family's type.
#[derive(Debug)]
struct Metrics {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Metrics {
    #[track_caller]
    fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in {:#?}", self.samples))
    }

    fn has(&self, key: &str) -> bool {
        self.samples.contains_key(key)
    }
}

/// Parses the text exposition format strictly: every line is a `# HELP`, a `# TYPE` or a
/// sample; every sample's family has HELP and TYPE lines before it; names and label names
/// are valid, label values quoted, values numbers; counters end in `_total`; every name has
/// the `intercom_push_` prefix; no sample is given twice; the file ends with a newline.
#[track_caller]
fn parse_metrics(path: &Path) -> Metrics {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no metrics file {}: {e}", path.display()));
    assert!(text.ends_with('\n'), "the file does not end with a newline");
    let valid_name = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut helps = BTreeMap::new();
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP without text");
            assert!(!help.trim().is_empty(), "empty HELP: {line}");
            assert!(
                helps.insert(name.to_string(), ()).is_none(),
                "HELP twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE without a type");
            assert!(
                ["gauge", "counter"].contains(&kind),
                "unexpected type: {line}"
            );
            assert!(helps.contains_key(name), "TYPE before HELP: {line}");
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "counters and only counters end in _total: {line}"
            );
            assert!(types.insert(name.to_string(), kind.to_string()).is_none());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample without value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value is not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad metric name: {line}");
        assert!(name.starts_with("intercom_push_"), "no prefix: {line}");
        assert!(
            types.contains_key(name),
            "sample before its HELP/TYPE: {line}"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels: {line}"));
            for pair in inner.split(',') {
                let (label, quoted) = pair.split_once('=').expect("label without =");
                assert!(valid_name(label), "bad label name: {line}");
                assert!(
                    quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                    "unquoted label value: {line}"
                );
            }
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "sample twice: {line}"
        );
    }
    Metrics { samples, types }
}

fn records(metrics: &Metrics, kind: &str, outcome: &str) -> f64 {
    metrics.get(&format!(
        "intercom_push_records_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}"
    ))
}

#[test]
fn the_metrics_file_of_a_run_against_the_mock_is_well_formed_and_counts_that_run() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("state.db");
    let prom = tmp.path().join("intercom_push.prom");
    let (mock, seeded) = seeded_mock();

    let first = run(
        &db,
        &mock.base_url(),
        &["--metrics-file", prom.to_str().unwrap()],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    let report: Value = serde_json::from_str(first.stdout.lines().last().unwrap()).unwrap();
    let metrics = parse_metrics(&prom);
    assert_eq!(metrics.get("intercom_push_exit_code"), 0.0);
    for (kind, key) in [("company", "companies"), ("user", "users")] {
        for outcome in ["updated", "unchanged", "not_found", "ambiguous", "failed"] {
            assert_eq!(
                records(&metrics, kind, outcome),
                report[key][outcome].as_f64().unwrap(),
                "{kind} {outcome}"
            );
        }
    }
    // The figures of this export and this mock, independently of the report.
    assert_eq!(records(&metrics, "company", "updated"), seeded as f64);
    assert_eq!(records(&metrics, "company", "not_found"), 2.0);
    assert_eq!(records(&metrics, "user", "updated"), 3.0);
    assert_eq!(records(&metrics, "user", "not_found"), 6.0);
    assert_eq!(
        metrics.get("intercom_push_api_requests_total"),
        mock.stats().total_requests as f64,
        "API calls = requests the mock received"
    );
    assert_eq!(metrics.get("intercom_push_api_rate_limited_total"), 0.0);
    assert_eq!(metrics.get("intercom_push_api_retries_total"), 0.0);
    for stage in ["load", "transform", "push"] {
        let took = metrics.get(&format!(
            "intercom_push_stage_duration_seconds{{stage=\"{stage}\"}}"
        ));
        assert!(took >= 0.0 && took <= metrics.get("intercom_push_duration_seconds"));
    }
    let success = metrics.get("intercom_push_last_success_timestamp_seconds");
    assert_eq!(
        success,
        metrics.get("intercom_push_last_run_timestamp_seconds")
    );
    assert!(success > 1.6e9, "a unix time: {success}");
    assert_eq!(metrics.types["intercom_push_records_total"], "counter");
    assert_eq!(metrics.types["intercom_push_exit_code"], "gauge");

    // node_exporter runs as another user: the file is 0644 whatever the umask; and the
    // temporary file is gone.
    let mode = std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "{mode:o}");
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".prom"))
        .collect();
    assert_eq!(names, vec!["intercom_push.prom".to_string()]);

    // The second run sends nothing new: its own counts, not the first run's added.
    let requests_before = mock.stats().total_requests;
    let second = run(
        &db,
        &mock.base_url(),
        &["--metrics-file", prom.to_str().unwrap()],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let metrics = parse_metrics(&prom);
    assert_eq!(records(&metrics, "company", "updated"), 0.0);
    assert_eq!(records(&metrics, "company", "unchanged"), seeded as f64);
    assert_eq!(
        metrics.get("intercom_push_api_requests_total"),
        (mock.stats().total_requests - requests_before) as f64
    );
}

/// A loopback URL nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_failing_run_still_writes_the_metrics_file_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("state.db");
    let prom = tmp.path().join("intercom_push.prom");
    let prom_arg = prom.to_str().unwrap();
    let (mock, _) = seeded_mock();
    let ok = run(&db, &mock.base_url(), &["--metrics-file", prom_arg]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let succeeded = parse_metrics(&prom).get("intercom_push_last_success_timestamp_seconds");

    // Intercom unreachable: the push fails after its retries (exit 3).
    let unreachable = run(
        &db,
        &closed_port_url(),
        &["--metrics-file", prom_arg, "--full-resync"],
    );
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
    let metrics = parse_metrics(&prom);
    assert_eq!(metrics.get("intercom_push_exit_code"), 3.0);
    assert_eq!(
        metrics.get("intercom_push_last_success_timestamp_seconds"),
        succeeded,
        "the last success is kept from the previous file"
    );
    assert!(metrics.has("intercom_push_stage_duration_seconds{stage=\"push\"}"));
    assert!(metrics.get("intercom_push_api_retries_total") >= 1.0);
    assert!(!metrics.has("intercom_push_records_total{kind=\"company\",outcome=\"updated\"}"));

    // A bad export ends the run in the load stage (exit 2): no push stage.
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("accounts.csv"),
        "externalId,mrr\nacme,12\nacme,13\n",
    )
    .unwrap();
    let args = [
        "run",
        "--input",
        bad.to_str().unwrap(),
        "--base-url",
        &mock.base_url(),
    ];
    let failed = intercom_push(&db, &[&args[..], &["--metrics-file", prom_arg]].concat());
    assert_eq!(failed.code, 2, "{}", failed.stderr);
    let metrics = parse_metrics(&prom);
    assert_eq!(metrics.get("intercom_push_exit_code"), 2.0);
    assert!(metrics.has("intercom_push_stage_duration_seconds{stage=\"load\"}"));
    assert!(!metrics.has("intercom_push_stage_duration_seconds{stage=\"push\"}"));
    assert!(metrics.has("intercom_push_duration_seconds"));

    // Settings refused before anything runs (no token): exit 2, still written.
    let out = Command::new(common::BIN)
        .args([
            "--db",
            db.to_str().unwrap(),
            "--quiet",
            "push",
            "--metrics-file",
            prom_arg,
        ])
        .env_remove("INTERCOM_ACCESS_TOKEN")
        .env_remove("INTERCOM_PUSH_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let metrics = parse_metrics(&prom);
    assert_eq!(metrics.get("intercom_push_exit_code"), 2.0);
    assert_eq!(
        metrics.get("intercom_push_last_success_timestamp_seconds"),
        succeeded
    );

    // A flag refused while resolving the settings: written to the file the flag names.
    std::fs::remove_file(&prom).unwrap();
    let refused = intercom_push(
        &db,
        &["push", "--runs-keep", "0", "--metrics-file", prom_arg],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(parse_metrics(&prom).get("intercom_push_exit_code"), 2.0);
}

// ── docs/OPERATIONS.md ──────────────────────────────────────────────────────────────────────

fn operations_md() -> String {
    std::fs::read_to_string(common::manifest_dir().join("docs/OPERATIONS.md")).unwrap()
}

/// The fenced code blocks of `markdown` whose info string is `lang`.
fn code_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(info)) if info.trim() == lang => current = Some(String::new()),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// The unit files of the doc: `ini` blocks whose first line is `# /etc/systemd/system/NAME`.
fn unit_files() -> BTreeMap<String, String> {
    code_blocks(&operations_md(), "ini")
        .into_iter()
        .filter_map(|block| {
            let name = block
                .lines()
                .next()?
                .strip_prefix("# /etc/systemd/system/")?
                .trim()
                .to_string();
            Some((name, block))
        })
        .collect()
}

/// section → key → values, as systemd reads a unit file (comments and blank lines skipped).
fn unit_sections(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            sections.entry(section.clone()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not `key=value` in [{section}]: {line}"));
        assert!(!section.is_empty(), "a key before any section: {line}");
        sections
            .get_mut(&section)
            .unwrap()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    sections
}

/// Every `--flag` of `command` is one the binary's `--help` for that subcommand lists.
#[track_caller]
fn assert_flags_exist(command: &str) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let sub = words
        .iter()
        .find(|w| ["run", "push"].contains(w))
        .unwrap_or_else(|| panic!("no run/push in {command}"));
    let help = Command::new(common::BIN)
        .args([sub, "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for flag in words.iter().filter(|w| w.starts_with("--")) {
        let flag = flag.split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "`{flag}` of `{command}` is not in `{sub} --help`"
        );
    }
}

#[test]
fn the_unit_files_in_operations_md_are_valid_systemd_units() {
    let units = unit_files();
    let service = units.get("intercom-push.service").expect(
        "docs/OPERATIONS.md has no `# /etc/systemd/system/intercom-push.service` ini block",
    );
    let timer = units
        .get("intercom-push.timer")
        .expect("docs/OPERATIONS.md has no intercom-push.timer ini block");

    // Structure, checked everywhere.
    let s = unit_sections(service);
    let one = |section: &str, key: &str| -> String {
        let values = s[section]
            .get(key)
            .unwrap_or_else(|| panic!("the service has no {key}= in [{section}]"));
        values.last().unwrap().clone()
    };
    assert_eq!(one("Service", "Type"), "oneshot");
    assert!(one("Service", "EnvironmentFile").starts_with("/etc/"));
    let nice: i32 = one("Service", "Nice").parse().expect("Nice= is a number");
    assert!((1..=19).contains(&nice), "Nice={nice}");
    let exec = one("Service", "ExecStart");
    assert!(exec.starts_with("/usr/local/bin/intercom-push "), "{exec}");
    assert!(
        exec.contains(" run") && exec.contains("--metrics-file"),
        "{exec}"
    );
    assert_flags_exist(&exec);
    let environment = s["Service"].get("Environment").cloned().unwrap_or_default();
    assert!(
        !environment.concat().contains("TOKEN") && !exec.contains("TOKEN"),
        "the token belongs in the EnvironmentFile, not in the unit"
    );
    let t = unit_sections(timer);
    assert!(
        t["Timer"].contains_key("OnCalendar"),
        "the timer has no OnCalendar="
    );
    assert_eq!(t["Timer"]["Persistent"], vec!["true".to_string()]);
    assert_eq!(t["Install"]["WantedBy"], vec!["timers.target".to_string()]);

    // systemd's own parser, where there is one.
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: checked the structure only");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("intercom-push.service", service),
        ("intercom-push.timer", timer),
    ] {
        // verify wants the ExecStart binary to exist: the one under test.
        let text = text.replace("/usr/local/bin/intercom-push", common::BIN);
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("intercom-push.service"))
        .arg(dir.path().join("intercom-push.timer"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown keys and bad values are warnings about our files (exit code 0 all the same).
    let ours: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("intercom-push."))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{said}"
    );
    if !said.trim().is_empty() {
        eprintln!("systemd-analyze verify said, about other units:\n{said}");
    }
}

#[test]
fn the_cron_line_in_operations_md_holds_flock_and_a_valid_schedule() {
    let blocks = code_blocks(&operations_md(), "crontab");
    let line = blocks
        .iter()
        .flat_map(|b| b.lines())
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit() || c == '*'))
        .expect("docs/OPERATIONS.md has no crontab block with a job line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (field, (lo, hi)) in fields.iter().zip(ranges) {
        for part in field.split(',') {
            let part = part.split('/').next().unwrap();
            if part == "*" {
                continue;
            }
            for n in part.split('-') {
                let n: u32 = n
                    .parse()
                    .unwrap_or_else(|_| panic!("bad schedule field {field}"));
                assert!((lo..=hi).contains(&n), "{field} out of {lo}-{hi}");
            }
        }
    }
    let command = fields[5..].join(" ");
    assert!(command.starts_with("flock -n "), "{command}");
    assert!(command.contains("intercom-push "), "{command}");
    assert_flags_exist(&command);
}

#[test]
fn the_alert_rules_and_config_in_operations_md_use_what_the_tool_writes_and_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("state.db");
    let prom = tmp.path().join("intercom_push.prom");
    let (mock, _) = seeded_mock();
    let ok = run(
        &db,
        &mock.base_url(),
        &["--metrics-file", prom.to_str().unwrap()],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let metrics = parse_metrics(&prom);

    let rules = code_blocks(&operations_md(), "yaml").join("\n");
    assert!(
        rules.contains("alert:"),
        "no alert rules in docs/OPERATIONS.md"
    );
    let mut used = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("intercom_push_") {
            assert!(
                metrics.types.contains_key(word),
                "the alert rules use {word}, which the tool does not write"
            );
            used += 1;
        }
    }
    assert!(used >= 3, "the rules use {used} of our metrics");

    let configs = code_blocks(&operations_md(), "toml");
    assert!(!configs.is_empty(), "no config file example");
    for config in configs {
        intercom_push::config::parse_file(&config)
            .unwrap_or_else(|e| panic!("the config example is refused: {e}\n{config}"));
    }
}
