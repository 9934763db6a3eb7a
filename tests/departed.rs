//! Records that leave the export: what we sent them is cleared once (`departed = "clear"`),
//! and an export that lost too much stops the push before any write (issue 25).

mod mock_harness;

use std::path::Path;

use intercom_push::mock::{MockConfig, MockServer, Seed, SeedAttribute, SeedCompany, SeedContact};
use mock_harness::*;
use serde_json::{json, Value};

const ACCOUNTS: usize = 40;

/// Accounts a0..a39 (a0..a9 owned by u0..u9), users u0..u39; `gone` accounts and users are
/// left out; `plan_of` changes one account's plan.
fn export(dir: &Path, gone_accounts: &[usize], gone_users: &[usize], plan_of: Option<usize>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut accounts = String::from("externalId,accountOwnerId,mrr,healthScore,plan\n");
    for i in (0..ACCOUNTS).filter(|i| !gone_accounts.contains(i)) {
        let owner = if i < 10 {
            format!("u{i}")
        } else {
            String::new()
        };
        let plan = if plan_of == Some(i) {
            "enterprise"
        } else {
            "pro"
        };
        accounts.push_str(&format!("a{i},{owner},{},{},{plan}\n", 100 + i, i % 10));
    }
    std::fs::write(dir.join("accounts.csv"), accounts).unwrap();
    let mut users = String::from("externalId,email\n");
    for i in (0..ACCOUNTS).filter(|i| !gone_users.contains(i)) {
        users.push_str(&format!("u{i},u{i}@x.example\n"));
    }
    std::fs::write(dir.join("users.csv"), users).unwrap();
}

/// Every company and user of [`export`], with someone else's attribute on each company.
fn seed(mock: &MockServer) {
    mock.seed(Seed {
        companies: (0..ACCOUNTS)
            .map(|i| SeedCompany {
                company_id: format!("a{i}"),
                user_count: 1,
                custom_attributes: json!({"Other Score": 7}).as_object().unwrap().clone(),
                ..SeedCompany::default()
            })
            .collect(),
        contacts: (0..ACCOUNTS)
            .map(|i| SeedContact {
                external_id: Some(format!("u{i}")),
                email: Some(format!("u{i}@x.example")),
                ..SeedContact::default()
            })
            .collect(),
        data_attributes: vec![SeedAttribute {
            name: "Other Score".into(),
            model: "company".into(),
            data_type: "integer".into(),
            archived: false,
        }],
    })
    .unwrap();
}

fn record_mock() -> MockServer {
    let mock = mock(MockConfig {
        record_requests: true,
        ..MockConfig::default()
    });
    seed(&mock);
    mock
}

/// The record PUTs the mock received after the first `since` requests: (path, body).
fn puts_since(mock: &MockServer, since: usize) -> Vec<(String, Value)> {
    mock.requests()[since..]
        .iter()
        .filter(|r| r.method == "PUT" && !r.path.starts_with("/data_attributes"))
        .map(|r| (r.path.clone(), r.body.clone()))
        .collect()
}

#[test]
fn departed_records_get_one_clearing_put_and_are_pushed_whole_when_they_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = record_mock();
    export(&input, &[], &[], None);
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), ACCOUNTS as u64);
    let pushed = mock.dump();

    // 3 accounts and 2 users leave (none of them owns or is owned: no other payload moves).
    export(&input, &[37, 38, 39], &[38, 39], None);
    let url = mock.base_url();
    let input_arg = input.to_str().unwrap();
    let dry = intercom_push(
        &db,
        &[
            "run",
            "--input",
            input_arg,
            "--base-url",
            &url,
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let planned: Vec<Value> = dry
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        planned.len(),
        5,
        "plan lists the departures: {}",
        dry.stdout
    );
    assert!(
        planned.iter().all(|p| p["departed"] == true),
        "{}",
        dry.stdout
    );
    let since = mock.requests().len();
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(count(&report, "companies", "departed"), 3, "{report}");
    assert_eq!(count(&report, "users", "departed"), 2, "{report}");
    assert_eq!(count(&report, "companies", "updated"), 0, "{report}");
    let puts = puts_since(&mock, since);
    assert_eq!(puts.len(), 5, "one PUT per departed record: {puts:?}");
    let state = mock.dump();
    for i in [37, 38, 39] {
        let before = find_in(&pushed, "companies", "company_id", &format!("a{i}"));
        let company = find_in(&state, "companies", "company_id", &format!("a{i}"));
        assert_eq!(
            company["custom_attributes"],
            json!({"Other Score": 7}),
            "only what we sent is cleared"
        );
        assert_eq!(company["monthly_spend"], before["monthly_spend"]);
        let put = puts
            .iter()
            .find(|(path, _)| path.ends_with(company["id"].as_str().unwrap()));
        let body = &put.expect("a PUT to the company").1;
        assert!(body.get("monthly_spend").is_none(), "{body}");
        assert!(
            body["custom_attributes"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_null),
            "{body}"
        );
    }
    for i in [38, 39] {
        let user = find_in(&state, "contacts", "external_id", &format!("u{i}"));
        assert_eq!(user["custom_attributes"], json!({}), "{user}");
    }
    let plan = intercom_push(&db, &["plan", "--json"]);
    assert_eq!(
        plan.stdout.trim(),
        "",
        "nothing left to send: {}",
        plan.stdout
    );

    // The same export again: nothing at all.
    let since = mock.requests().len();
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0);
    assert_eq!(count(&report, "companies", "departed"), 0, "{report}");
    assert!(puts_since(&mock, since).is_empty());

    // They come back: each is pushed whole, like a new record.
    export(&input, &[], &[], None);
    let since = mock.requests().len();
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 3, "{report}");
    assert_eq!(count(&report, "users", "updated"), 2, "{report}");
    let puts = puts_since(&mock, since);
    assert_eq!(puts.len(), 5, "{puts:?}");
    assert!(puts.iter().all(|(_, body)| body["custom_attributes"]
        .as_object()
        .unwrap()
        .values()
        .all(|v| !v.is_null())));
    let state = mock.dump();
    for payload in payloads(&db).iter().filter(|p| p["type"] == "company") {
        let company = find_in(
            &state,
            "companies",
            "company_id",
            payload["company_id"].as_str().unwrap(),
        );
        let mut held = company["custom_attributes"].clone();
        assert_eq!(
            held.as_object_mut().unwrap().remove("Other Score"),
            Some(json!(7))
        );
        assert_eq!(
            held, payload["custom_attributes"],
            "{}",
            payload["company_id"]
        );
    }
}

#[test]
fn an_export_that_lost_half_its_accounts_stops_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let metrics = tmp.path().join("run.prom");
    let mock = record_mock();
    export(&input, &[], &[], None);
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);

    // A warehouse job that stopped halfway: the second half of the accounts is missing.
    let half: Vec<usize> = (ACCOUNTS / 2..ACCOUNTS).collect();
    export(&input, &half, &[], None);
    let since = mock.requests().len();
    let metrics_arg = ["--metrics-file", metrics.to_str().unwrap()];
    let (code, _, stderr) = run_json(&db, &input, &mock, &metrics_arg);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("this export has 20 companies and 40 users, the last one pushed had 40 companies and 40 users")
            && stderr.contains("--allow-departed"),
        "{stderr}"
    );
    assert!(
        puts_since(&mock, since).is_empty(),
        "written despite the guard"
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("intercom_push_exit_code 2"), "{prom}");
    assert!(
        prom.contains("intercom_push_departed_records{kind=\"company\"} 20"),
        "{prom}"
    );

    // The complete export the next night (one account really changed): only that is sent.
    export(&input, &[], &[], Some(3));
    let since = mock.requests().len();
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 1, "{report}");
    assert_eq!(count(&report, "companies", "departed"), 0, "{report}");
    assert_eq!(puts_since(&mock, since).len(), 1);

    // With --allow-departed, the half export's departed half is cleared.
    export(&input, &half, &[], Some(3));
    let (code, report, stderr) = run_json(&db, &input, &mock, &["--allow-departed"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "departed"), 20, "{report}");
    let state = mock.dump();
    assert_eq!(
        find_in(&state, "companies", "company_id", "a30")["custom_attributes"],
        json!({"Other Score": 7})
    );

    // An export whose accounts table is empty is refused too (by the load, which keeps the
    // last export).
    std::fs::write(
        input.join("accounts.csv"),
        "externalId,accountOwnerId,mrr,healthScore,plan\n",
    )
    .unwrap();
    let since = mock.requests().len();
    let (code, _, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no accounts in the file"), "{stderr}");
    assert!(puts_since(&mock, since).is_empty());
}

#[test]
fn with_departed_keep_nothing_is_written_for_departures_and_they_are_not_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = record_mock();
    export(&input, &[], &[], None);
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    export(&input, &[37, 38, 39], &[38, 39], None);
    let since = mock.requests().len();
    let (code, report, stderr) = run_json(&db, &input, &mock, &["--departed", "keep"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        puts_since(&mock, since).is_empty(),
        "written for a departure"
    );
    assert_eq!(count(&report, "companies", "departed"), 3, "{report}");
    let company = find_in(&mock.dump(), "companies", "company_id", "a38").clone();
    assert!(
        company["custom_attributes"]["Vitally Plan"] == "pro",
        "{company}"
    );
    // Someone changes a departed company: not drift, nothing sent.
    edit_behind_the_back(
        &mock,
        &json!({"companies": [{"company_id": "a38", "custom_attributes": {"Vitally Plan": "x"}}]}),
    );
    let (code, report, stderr) = reconcile_json(&db, &mock, &["--mode", "report"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["drift"], json!([]), "{report}");
    // And the next night, with the default (clear), the departures are handled already.
    let since = mock.requests().len();
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0);
    assert_eq!(count(&report, "companies", "departed"), 0, "{report}");
    assert!(puts_since(&mock, since).is_empty());
}

#[test]
fn a_run_killed_during_the_clears_converges_on_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    // Slow answers, one at a time: the kill lands among the clears.
    let mock = mock(MockConfig {
        latency: std::time::Duration::from_millis(250),
        ..MockConfig::default()
    });
    seed(&mock);
    export(&input, &[], &[], None);
    assert_eq!(run_json(&db, &input, &mock, &["--concurrency", "8"]).0, 0);
    // 4 of 40 (10 %, within the guard) leave.
    let gone = [36, 37, 38, 39];
    export(&input, &gone, &[], None);
    let before = mock.stats().company_writes;
    let url = mock.base_url();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_intercom-push"))
        .args(["--db", db.to_str().unwrap(), "--quiet", "run", "--input"])
        .args([
            input.to_str().unwrap(),
            "--base-url",
            &url,
            "--concurrency",
            "1",
        ])
        .env("INTERCOM_ACCESS_TOKEN", TOKEN)
        .env_remove("INTERCOM_PUSH_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while mock.stats().company_writes < before + 2 {
        assert!(
            started.elapsed().as_secs() < 30,
            "no clear reached the mock"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL, during the clears
    child.wait().unwrap();
    let applied = mock.stats().company_writes - before;
    assert!(
        applied < gone.len() as u64,
        "the kill came after every clear"
    );

    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    let departed = count(&report, "companies", "departed");
    assert!(
        (1..=gone.len() as u64).contains(&departed),
        "the clears not recorded are made again: {report}"
    );
    let state = mock.dump();
    for i in gone {
        let company = find_in(&state, "companies", "company_id", &format!("a{i}"));
        assert_eq!(
            company["custom_attributes"],
            json!({"Other Score": 7}),
            "a{i}"
        );
    }
    let writes_before = writes(&mock);
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!((code, count(&report, "companies", "departed")), (0, 0));
    assert_eq!(
        writes(&mock),
        writes_before,
        "converged: nothing more to send"
    );
}
