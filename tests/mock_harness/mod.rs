//! Shared by the tests that run the binary against the mock Intercom.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use intercom_push::mock::{MockConfig, MockServer, Seed, SeedCompany, SeedContact};
use serde_json::Value;

pub const TOKEN: &str = "test-token-5f1e";

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn intercom_push(db: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_intercom-push"))
        .arg("--db")
        .arg(db)
        .arg("--quiet")
        .args(args)
        .env("INTERCOM_ACCESS_TOKEN", TOKEN)
        .env_remove("INTERCOM_PUSH_CONFIG")
        .output()
        .expect("run intercom-push");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn mock(config: MockConfig) -> MockServer {
    MockServer::start_background(MockConfig {
        token: TOKEN.into(),
        ..config
    })
    .expect("start mock")
}

/// `run --json` against the mock; returns the parsed report.
pub fn run_json(
    db: &Path,
    input: &Path,
    mock: &MockServer,
    extra: &[&str],
) -> (i32, Value, String) {
    let url = mock.base_url();
    let mut args = vec![
        "run",
        "--input",
        input.to_str().unwrap(),
        "--base-url",
        &url,
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = intercom_push(db, &args);
    let report = run
        .stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (run.code, report, run.stderr)
}

pub fn count(report: &Value, kind: &str, what: &str) -> u64 {
    report[kind][what]
        .as_u64()
        .unwrap_or_else(|| panic!("report has no {kind}.{what}: {report}"))
}

/// Every payload (`plan --json --all`) by key.
pub fn payloads(db: &Path) -> Vec<Value> {
    let run = intercom_push(db, &["plan", "--json", "--all"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts that nothing was created (the mock's violation log is empty) and that every
/// company/contact the mock has holds exactly the payload's values.
pub fn assert_mock_holds_payloads(db: &Path, mock: &MockServer, expect_companies: usize) {
    let created: Vec<String> = mock
        .violations()
        .iter()
        .map(|v| format!("{} {} {}", v.method, v.path, v.body))
        .collect();
    assert!(created.is_empty(), "create calls: {created:?}");
    let state = mock.dump();
    let mut matched = 0;
    for payload in payloads(db) {
        if payload["type"] == "company" {
            let Some(company) = state["companies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["company_id"] == payload["company_id"])
            else {
                continue;
            };
            assert_eq!(
                company["custom_attributes"], payload["custom_attributes"],
                "company {}",
                payload["company_id"]
            );
            if let Some(spend) = payload.get("monthly_spend") {
                assert_eq!(
                    company["monthly_spend"].as_f64(),
                    spend.as_f64(),
                    "monthly_spend of {}",
                    payload["company_id"]
                );
            }
            matched += 1;
        } else {
            let contact = state["contacts"].as_array().unwrap().iter().find(|c| {
                (payload["external_id"].is_string() && c["external_id"] == payload["external_id"])
                    || (payload["external_id"].is_null() && c["email"] == payload["email"])
            });
            if let Some(contact) = contact {
                assert_eq!(
                    contact["custom_attributes"], payload["custom_attributes"],
                    "contact {payload}"
                );
            }
        }
    }
    assert_eq!(
        matched, expect_companies,
        "companies in the mock matching a payload"
    );
}

/// A small export: accounts a, b, c (owned by u1, u2, nobody), users u1..u3.
pub fn small_export(dir: &Path, owner_of_a: &str, health_of_b: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("accounts.csv"),
        format!("externalId,accountOwnerId,mrr,healthScore,plan\na,{owner_of_a},100,5,pro\nb,u2,200.5,{health_of_b},team\nc,,,7,free\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("users.csv"),
        "externalId,email\nu1,one@x.example\nu2,two@x.example\nu3,three@x.example\n",
    )
    .unwrap();
    std::fs::write(dir.join("elements.csv"), "id,name\ne1,Dashboards\n").unwrap();
    std::fs::write(
        dir.join("element_counts.csv"),
        "account_id,element_id,count\na,e1,3\n",
    )
    .unwrap();
}

/// The workspace of [`small_export`]: companies a, b, c, users u1..u3 and a lead with u2's
/// email, no attributes.
pub fn small_seed() -> Seed {
    let company = |id: &str| SeedCompany {
        company_id: id.into(),
        user_count: 1,
        ..SeedCompany::default()
    };
    let contact = |id: &str, email: &str| SeedContact {
        external_id: Some(id.into()),
        email: Some(email.into()),
        ..SeedContact::default()
    };
    Seed {
        companies: vec![company("a"), company("b"), company("c")],
        contacts: vec![
            contact("u1", "one@x.example"),
            contact("u2", "two@x.example"),
            contact("u3", "three@x.example"),
            // A visitor who became u2: a lead with the same email, never to be written.
            SeedContact {
                email: Some("two@x.example".into()),
                role: Some("lead".into()),
                ..SeedContact::default()
            },
        ],
        data_attributes: vec![],
    }
}

/// Replaces the mock's data with [`small_seed`].
pub fn seed_small(mock: &MockServer) {
    mock.seed(small_seed()).unwrap();
}

/// The mock's data attribute `name`, if it has one.
pub fn mock_attribute(mock: &MockServer, name: &str) -> Option<Value> {
    mock.dump()["data_attributes"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
}

/// The record of `list` (`companies`, `contacts`) in the mock's `state` (its dump) whose `key`
/// is `value`.
pub fn find_in<'a>(state: &'a Value, list: &str, key: &str, value: &str) -> &'a Value {
    state[list]
        .as_array()
        .and_then(|records| records.iter().find(|r| r[key] == value))
        .unwrap_or_else(|| panic!("no {list} with {key} {value}"))
}

/// One HTTP request to the mock (`headers` as `Name: value\r\n` lines): (status, JSON body,
/// `null` when the body is not JSON).
pub fn http(
    mock: &MockServer,
    method: &str,
    path: &str,
    headers: &str,
    body: &Value,
) -> (u16, Value) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut stream = std::net::TcpStream::connect(mock.addr()).expect("connect to the mock");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Changes records in the mock behind the tool's back, through its `POST /_mock/edit` control
/// endpoint (as another integration or a teammate in Intercom's UI would); returns the answer.
pub fn edit_behind_the_back(mock: &MockServer, edit: &Value) -> Value {
    let (status, answer) = http(mock, "POST", "/_mock/edit", "", edit);
    assert_eq!(status, 200, "/_mock/edit refused: {answer}");
    answer
}

/// `reconcile --json` (plus `extra`) against the mock: exit code, the report (with its
/// `drift` list) and stderr.
pub fn reconcile_json(db: &Path, mock: &MockServer, extra: &[&str]) -> (i32, Value, String) {
    let url = mock.base_url();
    let mut args = vec!["reconcile", "--base-url", &url, "--json"];
    args.extend_from_slice(extra);
    let run = intercom_push(db, &args);
    let report = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    (run.code, report, run.stderr)
}

/// Writes that Intercom (the mock) applied: company and contact PUTs, and bulk items.
pub fn writes(mock: &MockServer) -> u64 {
    let stats = mock.stats();
    stats.company_writes
        + stats.contact_writes
        + stats.bulk_company_items
        + stats.bulk_contact_items
}

/// Copies the database (and its WAL files, if any) into `dir`.
pub fn copy_db(template: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", template.display()));
        if from.exists() {
            std::fs::copy(&from, dir.join(format!("s.db{suffix}"))).unwrap();
        }
    }
    dir.join("s.db")
}
