//! `--bulk`: Intercom's bulk updates (Preview API) against the mock, which implements them as
//! the Preview description says (tasks that finish later, per-item failures, closed jobs).
//!
//! Every test runs the real binary. Each was seen failing on a deliberate bug; the commit that
//! added it says which.

mod contract;
mod mock_harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contract::Spec;
use intercom_push::mock::{FaultConfig, MockConfig, MockServer, Seed, SeedCompany, SeedContact};
use mock_harness::*;
use serde_json::{json, Value};

/// Accounts and users of the export; accounts `acct-0000…`, users `u-000…`.
const N: usize = 450;
const USERS: usize = 300;
/// Accounts whose company has no users in the mock: a company search never finds them.
const WITHOUT_USERS: [usize; 5] = [3, 120, 121, 300, 449];

/// The export; `night` changes every account's `score`.
fn export(dir: &Path, night: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut accounts = String::from("externalId,accountOwnerId,mrr,score,tier\n");
    for i in 0..N {
        let owner = if i % 3 == 0 {
            format!("u-{:03}", i % USERS)
        } else {
            String::new()
        };
        accounts.push_str(&format!(
            "acct-{i:04},{owner},{},{},{}\n",
            (i * 37) % 5000,
            (i + night * 7) % 101,
            ["gold", "silver", "bronze"][i % 3]
        ));
    }
    std::fs::write(dir.join("accounts.csv"), accounts).unwrap();
    let mut users = String::from("externalId,email\n");
    for i in 0..USERS {
        users.push_str(&format!("u-{i:03},user{i}@x.example\n"));
    }
    std::fs::write(dir.join("users.csv"), users).unwrap();
}

fn seed() -> Seed {
    Seed {
        companies: (0..N)
            .map(|i| SeedCompany {
                company_id: format!("acct-{i:04}"),
                user_count: u32::from(!WITHOUT_USERS.contains(&i)),
                ..SeedCompany::default()
            })
            .collect(),
        contacts: (0..USERS)
            .map(|i| SeedContact {
                external_id: Some(format!("u-{i:03}")),
                email: Some(format!("user{i}@x.example")),
                ..SeedContact::default()
            })
            .collect(),
        data_attributes: vec![],
    }
}

fn bulk_mock(config: MockConfig) -> MockServer {
    let mock = mock(MockConfig {
        record_requests: true,
        bulk_task_delay: Duration::from_millis(150),
        ..config
    });
    mock.seed(seed()).unwrap();
    mock
}

/// Answers with status `status` to `METHOD /template` so far.
fn answered(mock: &MockServer, route: &str, status: u16) -> u64 {
    mock.stats()
        .by_route
        .get(&format!("{route} {status}"))
        .copied()
        .unwrap_or(0)
}

/// Every recorded request checked against Intercom's descriptions: with `Intercom-Version:
/// Preview` against the Preview subset (only the bulk endpoints and the company search may
/// carry it), every other against the 2.16 subset. Answers the operations seen, with counts.
fn check_contract(mock: &MockServer) -> BTreeMap<String, usize> {
    let (spec, preview) = (Spec::load(), Spec::load_preview());
    let mut seen = BTreeMap::new();
    let mut invalid = Vec::new();
    for r in mock.requests() {
        let version = r.headers["intercom-version"].as_str().unwrap_or_default();
        let bulk_or_search = r.path.contains("/bulk") || r.path == "/companies/search";
        let probe = r.method == "GET" && r.path == "/data_attributes";
        let checked = if version == "Preview" {
            // Besides the bulk endpoints and the search, only the one probe of whether the
            // workspace answers the Preview API (a read).
            if !bulk_or_search && !probe {
                invalid.push(format!(
                    "{} {} carries Intercom-Version: Preview",
                    r.method, r.path
                ));
            }
            preview.check_request(&r.method, &r.path, r.query.as_deref(), &r.headers, &r.body)
        } else {
            if bulk_or_search {
                invalid.push(format!(
                    "{} {} without Intercom-Version: Preview",
                    r.method, r.path
                ));
            }
            spec.check_request(&r.method, &r.path, r.query.as_deref(), &r.headers, &r.body)
        };
        match checked {
            Ok(op) => *seen.entry(op).or_default() += 1,
            Err(errors) => invalid.extend(errors),
        }
    }
    assert!(
        invalid.is_empty(),
        "invalid requests:\n{}",
        invalid.join("\n")
    );
    seen
}

fn bulk_run(db: &Path, input: &Path, mock: &MockServer, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["--bulk"];
    args.extend_from_slice(extra);
    run_json(db, input, mock, &args)
}

/// A scratch directory with the export of night 1 and a mock seeded for it, after the first
/// bulk push (which must succeed): (directory, database, export, mock, its report).
fn after_a_first_bulk_push() -> (tempfile::TempDir, PathBuf, PathBuf, MockServer, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    export(&input, 1);
    let mock = bulk_mock(MockConfig::default());
    let (code, report, stderr) = bulk_run(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    (tmp, db, input, mock, report)
}

#[test]
fn a_bulk_push_reaches_the_exact_state_with_a_hundredth_of_the_calls() {
    // The first push: no id is known. The company search finds every company with users; the
    // five without are looked up and written one by one.
    let (_tmp, db, input, mock, report) = after_a_first_bulk_push();
    assert_eq!(count(&report, "companies", "updated"), N as u64, "{report}");
    assert_eq!(count(&report, "users", "updated"), USERS as u64, "{report}");
    assert_mock_holds_payloads(&db, &mock, N);
    let bulk = &report["bulk"];
    let in_bulk = (N - WITHOUT_USERS.len()).div_ceil(100) + USERS.div_ceil(100);
    assert_eq!(bulk["requests"], json!(in_bulk), "{report}");
    assert_eq!(bulk["tasks_completed"], json!(in_bulk), "{report}");
    assert_eq!(mock.stats().bulk_requests, in_bulk as u64);
    assert_eq!(
        mock.stats().bulk_company_items + mock.stats().bulk_contact_items,
        (N - WITHOUT_USERS.len() + USERS) as u64
    );
    assert_eq!(
        answered(&mock, "PUT /companies/{id}", 200),
        WITHOUT_USERS.len() as u64
    );
    assert_eq!(
        answered(&mock, "GET /companies", 200),
        WITHOUT_USERS.len() as u64
    );
    assert_eq!(answered(&mock, "PUT /contacts/{id}", 200), 0);
    assert_eq!(
        answered(&mock, "GET /companies/scroll", 200),
        0,
        "no directory scroll"
    );
    assert_eq!(bulk["searches"], json!((N).div_ceil(100)), "{report}");
    assert!(bulk["polls"].as_u64().unwrap() >= 1, "{report}");

    // Every account changes: all of it in bulk, ids known now.
    export(&input, 2);
    let (code, report, stderr) = bulk_run(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(count(&report, "companies", "updated"), N as u64, "{report}");
    assert_eq!(
        report["bulk"]["requests"],
        json!(N.div_ceil(100)),
        "{report}"
    );
    assert_eq!(report["bulk"]["searches"], json!(0), "{report}");
    assert_eq!(
        answered(&mock, "PUT /companies/{id}", 200),
        WITHOUT_USERS.len() as u64
    );
    assert_mock_holds_payloads(&db, &mock, N);
    let calls = report["api_calls"].as_u64().unwrap();
    assert!(
        calls * 50 <= (N as u64) * 2 + 50,
        "{calls} calls for {N} changed companies: more than 2 % of one call each, plus polls"
    );

    // Nothing changed: not a single call.
    let (code, report, stderr) = bulk_run(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["api_calls"], json!(0), "{report}");

    let seen = check_contract(&mock);
    for op in [
        "PUT /companies/bulk",
        "GET /companies/bulk/{id}",
        "PUT /contacts/bulk",
        "GET /contacts/bulk/{id}",
        "POST /companies/search",
    ] {
        assert!(seen.contains_key(op), "never called {op}: {seen:?}");
    }
    assert!(mock.violations().is_empty());
}

#[test]
fn a_task_with_one_bad_item_sends_its_records_one_by_one_and_re_resolves_only_that_one() {
    let (_tmp, db, input, mock, _) = after_a_first_bulk_push();

    // acct-0210 is deleted and created again in Intercom: a new id, nothing on it.
    edit_behind_the_back(
        &mock,
        &json!({"companies": [{"company_id": "acct-0210", "recreate": true}]}),
    );
    let (puts, lookups) = (
        answered(&mock, "PUT /companies/{id}", 200),
        answered(&mock, "GET /companies", 200),
    );
    export(&input, 2);
    let (code, report, stderr) = bulk_run(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(count(&report, "companies", "updated"), N as u64, "{report}");
    assert_eq!(count(&report, "companies", "failed"), 0, "{report}");
    let bulk = &report["bulk"];
    assert_eq!(bulk["tasks_with_errors"], json!(1), "{report}");
    assert_eq!(
        bulk["tasks_completed"],
        json!(N.div_ceil(100) - 1),
        "{report}"
    );
    // The task of acct-0210 (the third of 100) is sent again one by one; only acct-0210's PUT
    // answers 404 and is looked up again.
    assert_eq!(bulk["resent"], json!(100), "{report}");
    assert_eq!(answered(&mock, "PUT /companies/{id}", 404), 1);
    assert_eq!(
        answered(&mock, "GET /companies", 200) - lookups,
        1,
        "one re-resolution"
    );
    assert_eq!(answered(&mock, "PUT /companies/{id}", 200) - puts, 100);
    assert_eq!(mock.stats().bulk_items_failed, 1);
    assert_mock_holds_payloads(&db, &mock, N);
    check_contract(&mock);
}

#[test]
fn without_the_preview_api_a_bulk_push_says_so_and_ends_as_the_per_record_push() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    export(&input, 1);
    let plain = bulk_mock(MockConfig::default());
    let (code, expected, stderr) = run_json(&tmp.path().join("plain.db"), &input, &plain, &[]);
    assert_eq!(code, 0, "{stderr}");

    let mock = bulk_mock(MockConfig {
        preview: false,
        ..MockConfig::default()
    });
    let db = tmp.path().join("s.db");
    let (code, report, stderr) = bulk_run(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert!(
        stderr.contains("does not answer Intercom's Preview API")
            && stderr.contains("per-record PUTs"),
        "{stderr}"
    );
    assert_eq!(report["bulk"]["fell_back"], json!(true), "{report}");
    for kind in ["companies", "users"] {
        for what in ["updated", "not_found", "ambiguous", "failed"] {
            assert_eq!(
                count(&report, kind, what),
                count(&expected, kind, what),
                "{kind}.{what}"
            );
        }
    }
    assert_eq!(mock.stats().bulk_requests, 0);
    assert_eq!(answered(&mock, "PUT /companies/{id}", 200), N as u64);
    assert_mock_holds_payloads(&db, &mock, N);
    check_contract(&mock);
}

#[test]
fn tasks_that_never_finish_time_out_and_their_records_are_written_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    export(&input, 1);
    let mock = bulk_mock(MockConfig::default());
    mock.set_faults(FaultConfig {
        bulk_stuck: true,
        ..FaultConfig::default()
    });
    let started = Instant::now();
    let (code, report, stderr) = bulk_run(&db, &input, &mock, &["--bulk-task-timeout", "2"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    let tasks = (N - WITHOUT_USERS.len()).div_ceil(100) + USERS.div_ceil(100);
    assert_eq!(report["bulk"]["tasks_timed_out"], json!(tasks), "{report}");
    assert_eq!(report["bulk"]["tasks_completed"], json!(0), "{report}");
    assert_eq!(
        report["bulk"]["resent"],
        json!(N - WITHOUT_USERS.len() + USERS),
        "{report}"
    );
    assert_eq!(count(&report, "companies", "updated"), N as u64, "{report}");
    assert_eq!(count(&report, "users", "updated"), USERS as u64, "{report}");
    assert!(stderr.contains("did not finish in time"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(mock.stats().bulk_company_items, 0, "no stuck task applied");
    assert_mock_holds_payloads(&db, &mock, N);
}

fn push_bulk(db: &Path, mock: &MockServer) -> (i32, Value, String) {
    let url = mock.base_url();
    let run = intercom_push(db, &["push", "--bulk", "--base-url", &url, "--json"]);
    let report = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    (run.code, report, run.stderr)
}

#[test]
fn a_bulk_push_killed_at_any_moment_converges_on_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    export(&input, 1);
    let template = tmp.path().join("template").join("s.db");
    std::fs::create_dir_all(template.parent().unwrap()).unwrap();
    for args in [
        vec!["load", "--input", input.to_str().unwrap()],
        vec!["transform"],
    ] {
        let run = intercom_push(&template, &args);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    // Kill moments spread over the whole push: before the first request, during the
    // searches, with tasks sent but not finished, during the polls and the one-by-one writes.
    let mut resumed = 0;
    for (trial, after_ms) in [0u64, 60, 120, 200, 280, 380, 500, 650, 800, 1000]
        .into_iter()
        .enumerate()
    {
        let mock = mock(MockConfig {
            latency: Duration::from_millis(5),
            bulk_task_delay: Duration::from_millis(300),
            ..MockConfig::default()
        });
        mock.seed(seed()).unwrap();
        let db = copy_db(&template, &tmp.path().join(format!("trial-{trial}")));
        let url = mock.base_url();
        let mut child = Command::new(env!("CARGO_BIN_EXE_intercom-push"))
            .args([
                "--quiet",
                "--db",
                db.to_str().unwrap(),
                "push",
                "--bulk",
                "--base-url",
                &url,
            ])
            .env("INTERCOM_ACCESS_TOKEN", TOKEN)
            .env_remove("INTERCOM_PUSH_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(after_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let (code, report, stderr) = push_bulk(&db, &mock);
        assert_eq!(code, 0, "trial {trial}: {stderr}\n{report}");
        assert_mock_holds_payloads(&db, &mock, N);
        resumed += report["bulk"]["resumed_tasks"].as_u64().unwrap_or(0);
        for (kind, total) in [("companies", N), ("users", USERS)] {
            let counted = count(&report, kind, "updated") + count(&report, kind, "unchanged");
            assert_eq!(
                counted, total as u64,
                "trial {trial}: {kind} counted once each: {report}"
            );
        }
        let (code, report, stderr) = push_bulk(&db, &mock);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            report["api_calls"],
            json!(0),
            "trial {trial}: converged: {report}"
        );
        assert!(mock.violations().is_empty());
    }
    assert!(
        resumed > 0,
        "no kill left a task in flight: the trials test nothing of it"
    );
}

#[test]
fn reconcile_with_bulk_repairs_the_drift_in_bulk_requests() {
    let (_tmp, db, _input, mock, _) = after_a_first_bulk_push();
    // Another integration overwrites one of our values on 150 companies.
    let edits: Vec<Value> = (0..150)
        .map(|i| json!({"company_id": format!("acct-{:04}", i * 3), "custom_attributes": {"Vitally Tier": "overwritten"}}))
        .collect();
    edit_behind_the_back(&mock, &json!({ "companies": edits }));
    let (puts, bulk_items) = (
        answered(&mock, "PUT /companies/{id}", 200),
        mock.stats().bulk_company_items,
    );
    let (code, report, stderr) = reconcile_json(&db, &mock, &["--bulk"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(
        report["reconcile"]["companies"]["drifted"],
        json!(150),
        "{report}"
    );
    assert_eq!(count(&report, "companies", "updated"), 150, "{report}");
    assert_eq!(report["bulk"]["requests"], json!(2), "{report}");
    assert_eq!(
        answered(&mock, "PUT /companies/{id}", 200),
        puts,
        "no repair one by one"
    );
    assert_eq!(mock.stats().bulk_company_items - bulk_items, 150);
    assert_mock_holds_payloads(&db, &mock, N);
    let (code, report, stderr) = reconcile_json(&db, &mock, &["--mode", "report"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        report["reconcile"]["companies"]["drifted"],
        json!(0),
        "{report}"
    );
}

#[test]
fn the_demo_runs_in_bulk_against_the_embedded_mock() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_intercom-push"))
        .args(["--quiet", "demo", "--bulk"])
        .current_dir(elsewhere.path())
        .env_remove("INTERCOM_PUSH_DB")
        .env_remove("INTERCOM_PUSH_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 create attempts"), "{stdout}");
    // The bundled export's companies with users and its users, in two bulk requests.
    assert!(
        stdout.contains("of them in bulk: 13 company and 8 contact updates in 2 bulk requests"),
        "{stdout}"
    );
}
