//! Faults: the mock injects 5xx, 429, dropped connections (before and after applying a write)
//! and answers slower than the client's timeout; the run still ends with exit 0 and exactly the
//! payloads in Intercom. A permanent 5xx for one company fails that record only (exit 1), and
//! the next run retries only it.

mod mock_harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use intercom_push::mock::{MockConfig, MockServer, Seed, SeedCompany, SeedContact};
use mock_harness::*;

const EXTRA: usize = 150;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/export")
}

/// fixtures/export plus `EXTRA` accounts `bulk-000…` (so the directory is scrolled).
fn export(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let mut accounts = std::fs::read_to_string(dir.join("accounts.csv")).unwrap();
    for i in 0..EXTRA {
        accounts.push_str(&format!(
            "acc_b{i:03},bulk-{i:03},,Bulk {i},{},{},,,,,,,,,,\n",
            i * 11,
            i % 10
        ));
    }
    std::fs::write(dir.join("accounts.csv"), accounts).unwrap();
}

fn company_ids() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("accounts.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .chain((0..EXTRA).map(|i| format!("bulk-{i:03}")))
        .collect()
}

fn seed(mock: &MockServer) -> usize {
    let ids = company_ids();
    let n = ids.len();
    let contact = |external_id: Option<&str>, email: Option<&str>| SeedContact {
        external_id: external_id.map(Into::into),
        email: email.map(Into::into),
        ..SeedContact::default()
    };
    mock.seed(Seed {
        companies: ids
            .into_iter()
            .enumerate()
            .map(|(i, company_id)| SeedCompany {
                company_id,
                user_count: (i % 2) as u32,
                ..SeedCompany::default()
            })
            .collect(),
        contacts: vec![
            contact(Some("u-001"), Some("ada@acme.example")),
            contact(Some("u-002"), None),
            contact(None, Some("linus@umbrella.example")),
        ],
        data_attributes: vec![],
    })
    .unwrap();
    n
}

#[test]
fn with_5xx_429_drops_and_timeouts_injected_the_run_ends_with_exit_0_and_the_payloads_in_intercom()
{
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    export(&input);
    let mock = mock(MockConfig {
        p_5xx: 0.10,
        p_429: 0.05,
        p_drop_before: 0.01,
        p_drop_after: 0.01,
        p_slow: 0.01,
        // Past the client's 1 s timeout (set below): the write is applied, the answer is lost.
        slow: Duration::from_millis(2000),
        // A 429 makes the client wait for the rate window's reset: keep the window short.
        window: Duration::from_secs(1),
        seed: 20_261_125,
        ..MockConfig::default()
    });
    let n = seed(&mock);
    let (code, report, stderr) = run_json(&db, &input, &mock, &["--timeout", "1"]);
    let stats = mock.stats();
    eprintln!(
        "faults: {n} companies + 9 users, {} requests: injected 5xx {}, injected 429 {}, \
         dropped before applying {}, dropped after applying {}, slow (> timeout) {}, \
         rate-limited {}; company writes {}; client retries {}, exit {code}, {:.1} s",
        stats.total_requests,
        stats.injected_5xx,
        stats.injected_429,
        stats.dropped_before,
        stats.dropped_after,
        stats.slowed,
        stats.rate_limited,
        stats.company_writes,
        report["retries"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(count(&report, "companies", "updated"), n as u64, "{report}");
    assert_eq!(count(&report, "companies", "failed"), 0);
    assert_eq!(count(&report, "users", "updated"), 3, "{report}");
    // Every kind of fault really happened.
    for (kind, injected) in [
        ("5xx", stats.injected_5xx),
        ("429", stats.injected_429),
        ("drop before", stats.dropped_before),
        ("drop after", stats.dropped_after),
        ("slow", stats.slowed),
    ] {
        assert!(injected > 0, "no {kind} fault was injected: {stats:?}");
    }
    assert!(report["retries"].as_u64().unwrap() > 0, "{report}");
    assert_mock_holds_payloads(&db, &mock, n);

    // Nothing left to send: a second run under the same faults writes nothing.
    let writes = mock.stats().company_writes + mock.stats().contact_writes;
    let (code, report, stderr) = run_json(&db, &input, &mock, &["--timeout", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 0);
    assert_eq!(
        mock.stats().company_writes + mock.stats().contact_writes,
        writes
    );
}

#[test]
fn a_permanent_5xx_fails_only_that_record_and_the_next_run_retries_only_it() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    export(&input);
    let mock = mock(MockConfig {
        fail_company_ids: vec!["bulk-042".into()],
        record_requests: true,
        ..MockConfig::default()
    });
    let n = seed(&mock);
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 1, "{stderr}\n{report}");
    assert_eq!(count(&report, "companies", "failed"), 1, "{report}");
    assert_eq!(count(&report, "companies", "updated"), n as u64 - 1);
    let problem = &report["companies"]["problems"][0];
    assert_eq!(problem["record"], "bulk-042", "{report}");
    let reason = problem["reason"].as_str().unwrap();
    assert!(
        reason.contains("500"),
        "the reason names the status: {reason}"
    );
    let failed_put = |mock: &MockServer| {
        mock.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.status == 500)
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    };
    let first_failures = failed_put(&mock);
    assert!(!first_failures.is_empty());
    let bad_path = first_failures[0].clone();
    assert!(first_failures.iter().all(|p| *p == bad_path));
    let permanent_after_first = mock.stats().permanent_failures;
    eprintln!(
        "faults: permanent 5xx: {} attempts on bulk-042 (all 500), {} other companies updated, exit {code}",
        permanent_after_first,
        n - 1
    );

    // The next run (still failing) sends only that record.
    let before = mock.requests().len();
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(count(&report, "companies", "failed"), 1);
    assert_eq!(count(&report, "companies", "updated"), 0);
    assert_eq!(count(&report, "companies", "unchanged"), n as u64 - 1);
    let puts: Vec<_> = mock.requests()[before..]
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.clone())
        .collect();
    assert!(
        !puts.is_empty() && puts.iter().all(|p| *p == bad_path),
        "{puts:?}"
    );

    // Intercom recovers: the next run sends that one record and everything matches.
    let mut faults = mock.faults();
    faults.fail_company_ids.clear();
    mock.set_faults(faults);
    let writes = mock.stats().company_writes;
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(count(&report, "companies", "updated"), 1);
    assert_eq!(mock.stats().company_writes, writes + 1);
    assert_mock_holds_payloads(&db, &mock, n);
    eprintln!(
        "faults: permanent 5xx scenario: 3 runs, {} permanent 500s in all, {:.1} s",
        mock.stats().permanent_failures,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_timeout_flag_bounds_each_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    small_export(&input, "u1", "6");
    // Every answer comes 5 s late: with --timeout 0.3 each attempt is abandoned, so the first
    // call (the data attribute list) uses up its 6 attempts and the run ends with exit 3 (as
    // docs/RELIABILITY.md says). Counted, not timed: the client's attempts and the mock's
    // requests.
    let mock = mock(MockConfig {
        p_slow: 1.0,
        slow: Duration::from_secs(5),
        record_requests: true,
        ..MockConfig::default()
    });
    seed_small(&mock);
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--timeout", "0.3"]);
    let requests: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    eprintln!(
        "faults: every answer 5 s late, --timeout 0.3: exit {code}, {} requests received",
        requests.len()
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("GET /data_attributes failed: no HTTP answer: timed out")
            && stderr.contains("gave up after 6 attempts"),
        "{stderr}"
    );
    // The company and contact attribute lists are read at once: 6 attempts each at most.
    assert!(
        (1..=12).contains(&requests.len()) && requests.iter().all(|r| r == "GET /data_attributes"),
        "only the abandoned attempts of the first calls: {requests:?}"
    );
    // The setting is validated, in flags and in the config file.
    let bad = intercom_push(
        &db,
        &["push", "--base-url", &mock.base_url(), "--timeout", "0"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--timeout"), "{}", bad.stderr);
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, "timeout = \"soon\"\n").unwrap();
    let bad = intercom_push(
        &db,
        &[
            "--config",
            config.to_str().unwrap(),
            "push",
            "--base-url",
            &mock.base_url(),
        ],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
