//! The loader against the in-repo mock Intercom: the real binary, a real HTTP server on
//! 127.0.0.1, and the mock's state compared with the payloads.

mod common;
mod mock_harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use intercom_push::mock::{MockConfig, Seed, SeedCompany, SeedContact};
use mock_harness::*;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/export")
}

#[test]
fn first_run_updates_every_existing_record_and_creates_nothing_then_second_run_sends_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("state.db");
    let mock = mock(MockConfig::default());
    // All fixture companies but two, all users but one.
    let ids: Vec<String> = std::fs::read_to_string(fixtures().join("accounts.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    let companies: Vec<SeedCompany> = ids
        .iter()
        .filter(|id| *id != "hooli" && *id != "zorg")
        .enumerate()
        .map(|(i, id)| SeedCompany {
            company_id: id.clone(),
            user_count: u32::from(i % 3 != 0),
            ..SeedCompany::default()
        })
        .collect();
    let seeded = companies.len();
    let contacts = vec![
        SeedContact {
            external_id: Some("u-001".into()),
            email: Some("ada@acme.example".into()),
            ..SeedContact::default()
        },
        SeedContact {
            external_id: Some("u-002".into()),
            ..SeedContact::default()
        },
        SeedContact {
            email: Some("linus@umbrella.example".into()),
            ..SeedContact::default()
        },
    ];
    mock.seed(Seed {
        companies,
        contacts,
        data_attributes: vec![],
    })
    .unwrap();

    let (code, report, stderr) = run_json(&db, &fixtures(), &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(count(&report, "companies", "updated"), seeded as u64);
    assert_eq!(count(&report, "companies", "not_found"), 2);
    assert_eq!(count(&report, "users", "updated"), 3);
    assert_eq!(count(&report, "users", "not_found"), 6);
    assert_mock_holds_payloads(&db, &mock, seeded);

    let writes_before = mock.stats().company_writes + mock.stats().contact_writes;
    let (code, report, stderr) = run_json(&db, &fixtures(), &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 0);
    assert_eq!(count(&report, "users", "updated"), 0);
    assert_eq!(count(&report, "companies", "unchanged"), seeded as u64);
    assert_eq!(
        mock.stats().company_writes + mock.stats().contact_writes,
        writes_before,
        "second run wrote"
    );
    // Missing companies are looked up again (they may appear), never created.
    assert_eq!(count(&report, "companies", "not_found"), 2);
    assert!(mock.violations().is_empty());
}

#[test]
fn changing_one_account_resends_exactly_that_company() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(
        (code, count(&report, "companies", "updated")),
        (0, 3),
        "{stderr}"
    );
    small_export(&input, "u1", "9");
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0);
    assert_eq!(count(&report, "companies", "updated"), 1);
    assert_eq!(count(&report, "users", "updated"), 0);
    assert_eq!(
        report["api_calls"].as_u64(),
        Some(3),
        "2 attribute lists + 1 PUT: {report}"
    );
    assert_mock_holds_payloads(&db, &mock, 3);
}

#[test]
fn a_changed_owner_resends_exactly_the_two_affected_users() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    small_export(&input, "u3", "6");
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0);
    assert_eq!(count(&report, "users", "updated"), 2, "{report}");
    assert_eq!(count(&report, "companies", "updated"), 0);
    let state = mock.dump();
    let owner = |id: &str| {
        state["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["external_id"] == id)
            .unwrap()["custom_attributes"]["Vitally Account Owner"]
            .clone()
    };
    assert_eq!(
        (owner("u1"), owner("u2"), owner("u3")),
        (Value::Bool(false), Value::Bool(true), Value::Bool(true))
    );
}

#[test]
fn faults_5xx_429_and_dropped_connections_end_with_the_payloads_in_intercom() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.db");
    // A 1 s rate window: a 429 makes the client wait for the window's reset, so keep it short.
    let window = std::time::Duration::from_secs(1);
    let mock = mock(MockConfig {
        p_5xx: 0.10,
        p_429: 0.05,
        p_drop_before: 0.02,
        p_drop_after: 0.02,
        seed: 7,
        window,
        ..MockConfig::default()
    });
    let ids: Vec<String> = std::fs::read_to_string(fixtures().join("accounts.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    let companies = ids
        .iter()
        .map(|id| SeedCompany {
            company_id: id.clone(),
            user_count: 1,
            ..SeedCompany::default()
        })
        .collect();
    mock.seed(Seed {
        companies,
        contacts: vec![],
        data_attributes: vec![],
    })
    .unwrap();
    let (code, report, stderr) = run_json(&db, &fixtures(), &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(count(&report, "companies", "updated"), ids.len() as u64);
    // Every kind of fault really happened (the fault RNG is seeded: the same requests get
    // the same faults on every run).
    let stats = mock.stats();
    eprintln!(
        "faults: {} requests, injected 5xx {}, injected 429 {}, dropped before applying {}, \
         dropped after applying {}; client retries {}",
        stats.total_requests,
        stats.injected_5xx,
        stats.injected_429,
        stats.dropped_before,
        stats.dropped_after,
        report["retries"]
    );
    for (kind, injected) in [
        ("5xx", stats.injected_5xx),
        ("429", stats.injected_429),
        ("dropped connection before applying", stats.dropped_before),
        ("dropped connection after applying", stats.dropped_after),
    ] {
        assert!(injected > 0, "no {kind} fault was injected: {stats:?}");
    }
    // The client met each of them (a refused or dropped attempt) and retried it once.
    assert_eq!(
        report["retries"].as_u64(),
        Some(stats.injected_5xx + stats.injected_429 + stats.dropped_before + stats.dropped_after),
        "one retry per injected fault: {report}"
    );
    assert_mock_holds_payloads(&db, &mock, ids.len());
}

#[test]
fn a_permanent_5xx_fails_that_record_only_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig {
        fail_company_ids: vec!["b".into()],
        ..MockConfig::default()
    });
    seed_small(&mock);
    small_export(&input, "u1", "6");
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(count(&report, "companies", "failed"), 1);
    assert_eq!(count(&report, "companies", "updated"), 2);
    assert!(
        report["companies"]["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{report}"
    );
}

#[test]
fn renaming_an_element_clears_the_old_attribute_on_every_company_that_had_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    std::fs::write(input.join("elements.csv"), "id,name\ne1,Dashboards V2\n").unwrap();
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0);
    assert_eq!(count(&report, "companies", "updated"), 3);
    for company in mock.dump()["companies"].as_array().unwrap() {
        let attrs = company["custom_attributes"].as_object().unwrap();
        assert!(
            !attrs.contains_key("Vitally Dashboards"),
            "old attribute still set: {company}"
        );
        assert!(attrs.contains_key("Vitally Dashboards V2"), "{company}");
    }
}

#[test]
fn a_second_run_on_the_same_database_is_refused_while_the_first_holds_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    small_export(&input, "u1", "6");
    assert_eq!(
        intercom_push(&db, &["load", "--input", input.to_str().unwrap()]).code,
        0
    );
    // A live holder: this process locks `<db>.lock` the way a running intercom-push does.
    let lock_path = tmp.path().join("s.db.lock");
    let holder = std::fs::File::create(&lock_path).unwrap();
    std::fs::write(&lock_path, "pid 4242, `run`, started at unix time 0").unwrap();
    holder.lock().unwrap();
    let refused = intercom_push(&db, &["transform"]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("one run at a time") && refused.stderr.contains("pid 4242"),
        "{}",
        refused.stderr
    );
    // The holder dies (kill -9 releases its lock the same way): its lock file stays behind.
    drop(holder);
    assert!(lock_path.exists());
    let taken_over = intercom_push(&db, &["transform"]);
    assert_eq!(taken_over.code, 0, "{}", taken_over.stderr);
    assert!(
        taken_over
            .stderr
            .contains("took over the lock left by a run that is gone (pid 4242"),
        "{}",
        taken_over.stderr
    );
    assert!(!lock_path.exists(), "a finished run removes its lock file");
}

/// An export of `n` accounts `acct-0000…` with one numeric field set to `version`.
fn wide_export(dir: &Path, n: usize, version: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("externalId,mrr,score\n");
    for i in 0..n {
        csv.push_str(&format!(
            "acct-{i:04},{},{}\n",
            10 * i,
            version * 1000 + i as u32
        ));
    }
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
}

#[test]
fn a_push_killed_at_any_moment_resumes_without_losing_and_duplicates_at_most_the_in_flight_requests(
) {
    const N: usize = 600;
    const CONCURRENCY: u64 = 16;
    let mut killed_mid_push = 0;
    for (trial, kill_after_ms) in [700u64, 1500, 2600].into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
        let mock = mock(MockConfig {
            latency: std::time::Duration::from_millis(10),
            ..MockConfig::default()
        });
        let companies = (0..N)
            .map(|i| SeedCompany {
                company_id: format!("acct-{i:04}"),
                user_count: 1,
                ..SeedCompany::default()
            })
            .collect();
        mock.seed(Seed {
            companies,
            contacts: vec![],
            data_attributes: vec![],
        })
        .unwrap();
        wide_export(&input, N, 1);
        assert_eq!(
            intercom_push(&db, &["load", "--input", input.to_str().unwrap()]).code,
            0
        );
        assert_eq!(intercom_push(&db, &["transform"]).code, 0);

        let url = mock.base_url();
        let mut push = Command::new(env!("CARGO_BIN_EXE_intercom-push"))
            .args([
                "--quiet",
                "--db",
                db.to_str().unwrap(),
                "push",
                "--base-url",
                &url,
                "--concurrency",
                "16",
            ])
            .env("INTERCOM_ACCESS_TOKEN", TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(kill_after_ms));
        push.kill().unwrap(); // SIGKILL
        push.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100)); // let the mock finish what it received
        let written_before_kill = mock.stats().company_writes;
        let committed = common::db::companies_pushed(&db);
        println!("trial {trial}: killed after {kill_after_ms} ms with {committed} of {N} recorded, {written_before_kill} written");
        killed_mid_push += usize::from(committed > 0 && committed < N as u64);
        assert!(
            committed <= written_before_kill,
            "trial {trial}: a hash was saved without a write ({committed} > {written_before_kill})"
        );

        let (code, report, stderr) = {
            let run = intercom_push(&db, &["push", "--base-url", &url, "--json"]);
            (
                run.code,
                serde_json::from_str::<Value>(run.stdout.trim()).unwrap_or(Value::Null),
                run.stderr,
            )
        };
        assert_eq!(code, 0, "trial {trial}: {stderr}");
        let resent = count(&report, "companies", "updated");
        assert_eq!(
            resent,
            N as u64 - committed,
            "trial {trial}: the resume sends exactly what was not recorded"
        );
        let duplicates = written_before_kill - committed;
        assert!(duplicates <= CONCURRENCY, "trial {trial}: {duplicates} writes were repeated, more than the {CONCURRENCY} in flight");
        assert_eq!(
            mock.stats().company_writes,
            N as u64 + duplicates,
            "trial {trial}"
        );
        assert_mock_holds_payloads(&db, &mock, N);
    }
    assert!(
        killed_mid_push >= 2,
        "the kills must land while records are being pushed"
    );
}

#[test]
fn many_unknown_companies_are_resolved_by_scrolling_not_one_lookup_each() {
    const N: usize = 400;
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    // Half of them have no users: a list API would miss those; the scroll must not.
    let companies = (0..N)
        .map(|i| SeedCompany {
            company_id: format!("acct-{i:04}"),
            user_count: (i % 2) as u32,
            ..SeedCompany::default()
        })
        .collect();
    mock.seed(Seed {
        companies,
        contacts: vec![],
        data_attributes: vec![],
    })
    .unwrap();
    wide_export(&input, N + 5, 1); // 5 that Intercom doesn't have
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), N as u64);
    assert_eq!(count(&report, "companies", "not_found"), 5);
    let calls = report["api_calls"].as_u64().unwrap();
    // 2 attribute lists + 3 creates + 9 scroll pages (50 a page) + 5 confirming lookups + N PUTs.
    assert!(
        calls <= N as u64 + 25,
        "{calls} calls for {N} companies: {report}"
    );
    assert_mock_holds_payloads(&db, &mock, N);
}

#[test]
fn an_unchanged_export_is_not_reloaded_recomputed_or_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    let load = intercom_push(&db, &["load", "--input", input.to_str().unwrap()]);
    assert!(
        load.stdout.contains("export unchanged since export #1"),
        "{}",
        load.stdout
    );
    let transform = intercom_push(&db, &["transform"]);
    assert!(
        transform.stdout.contains("payloads are up to date"),
        "{}",
        transform.stdout
    );
    let calls_before = mock.stats().total_requests;
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0);
    assert_eq!(report["api_calls"], 0, "{report}");
    assert_eq!(mock.stats().total_requests, calls_before);
    // A changed setting recomputes (and re-sends) even with the same files.
    let transform = intercom_push(&db, &["transform", "--prefix", "CS"]);
    assert!(
        transform.stdout.contains("computed 3 company"),
        "{}",
        transform.stdout
    );
}
