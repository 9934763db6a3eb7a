//! `check`, the read-only preflight, through the binary against the mock (issue 27, part 1).

mod mock_harness;

use std::path::Path;

use intercom_push::mock::{MockConfig, MockServer, SeedAttribute};
use mock_harness::*;
use serde_json::Value;

fn check(db: &Path, url: &str) -> (i32, Value, String) {
    let run = intercom_push(db, &["check", "--base-url", url, "--json"]);
    let report = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    (run.code, report, run.stderr)
}

fn lines<'a>(report: &'a Value, status: &str) -> Vec<&'a str> {
    report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {report}"))
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["detail"].as_str().unwrap())
        .collect()
}

fn recording_mock() -> MockServer {
    mock(MockConfig {
        record_requests: true,
        ..MockConfig::default()
    })
}

/// Loads and transforms the small export (no write to Intercom: a dry run).
fn prepare(db: &Path, input: &Path, mock: &MockServer) {
    small_export(input, "u1", "6");
    let url = mock.base_url();
    let dry = intercom_push(
        db,
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--base-url",
            &url,
            "--dry-run",
        ],
    );
    assert_eq!(dry.code, 0, "{}", dry.stderr);
}

fn only_reads(mock: &MockServer) {
    let writes: Vec<String> = mock
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "check sent: {writes:?}");
}

#[test]
fn a_ready_workspace_passes_with_gets_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = recording_mock();
    seed_small(&mock);
    prepare(&db, &input, &mock);
    let (code, report, stderr) = check(&db, &mock.base_url());
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["ready"], true);
    assert!(lines(&report, "fix").is_empty(), "{report}");
    let ok = lines(&report, "ok").join("\n");
    assert!(ok.contains("workspace `Mock workspace`"), "{ok}");
    assert!(ok.contains("0 of 250 custom attributes in use"), "{ok}");
    let info = lines(&report, "info").join("\n");
    assert!(info.contains("the next push creates 8"), "{info}");
    assert!(info.contains("1667 requests per 10 s window"), "{info}");
    only_reads(&mock);
}

#[test]
fn attributes_that_would_stop_the_push_and_a_missing_database_are_each_a_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = recording_mock();
    let mut seed = small_seed();
    let attribute = |name: &str, data_type: &str, archived: bool| SeedAttribute {
        name: name.into(),
        model: "company".into(),
        data_type: data_type.into(),
        archived,
    };
    seed.data_attributes = vec![
        attribute("Vitally Plan", "integer", false),
        attribute("Vitally Mrr", "float", true),
    ];
    mock.seed(seed).unwrap();
    let (code, report, _) = check(&db, &mock.base_url());
    assert_eq!(code, 2, "{report}");
    assert!(
        lines(&report, "fix")[0].contains("no database at"),
        "{report}"
    );

    prepare(&db, &input, &mock);
    let (code, report, _) = check(&db, &mock.base_url());
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["ready"], false);
    let fix = lines(&report, "fix").join("\n");
    assert!(
        fix.contains("`Vitally Plan` exists in Intercom as integer"),
        "{fix}"
    );
    assert!(
        fix.contains("`Vitally Mrr` is archived in Intercom"),
        "{fix}"
    );
    only_reads(&mock);
}

#[test]
fn an_unreachable_intercom_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = recording_mock();
    seed_small(&mock);
    prepare(&db, &input, &mock);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let run = intercom_push(
        &db,
        &["check", "--base-url", &format!("http://127.0.0.1:{closed}")],
    );
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("could not be reached"),
        "{}",
        run.stdout
    );
}
