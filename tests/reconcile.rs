//! `reconcile` and `run --reconcile` against the mock Intercom, through the real binary: values
//! changed behind the tool's back (the mock's `POST /_mock/edit`) are found and repaired with
//! one write per record, values on attributes we never sent are left alone, untouched records
//! cost no write, an interrupted reconcile converges when run again, and the calls stay within
//! companies ÷ page + contacts ÷ page + one per drifted record.

mod mock_harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use intercom_push::mock::{MockConfig, MockServer, Seed, SeedAttribute, SeedCompany, SeedContact};
use mock_harness::*;
use serde_json::{json, Value};

/// (kind, record, attribute, value in Intercom, value expected) of a `reconcile --json` report.
fn drift(report: &Value) -> BTreeSet<(String, String, String, String, String)> {
    report["drift"]
        .as_array()
        .unwrap_or_else(|| panic!("no drift list: {report}"))
        .iter()
        .map(|d| {
            let text = |key: &str| d[key].as_str().unwrap_or_default().to_string();
            (
                text("kind"),
                text("record"),
                text("attribute"),
                d["intercom"].to_string(),
                d["expected"].to_string(),
            )
        })
        .collect()
}

fn drift_item(
    kind: &str,
    record: &str,
    attribute: &str,
    intercom: Value,
    expected: Value,
) -> (String, String, String, String, String) {
    (
        kind.into(),
        record.into(),
        attribute.into(),
        intercom.to_string(),
        expected.to_string(),
    )
}

/// `reconcile.<kind>.<what>` of a report.
fn reconciled(report: &Value, kind: &str, what: &str) -> u64 {
    report["reconcile"][kind][what]
        .as_u64()
        .unwrap_or_else(|| panic!("no reconcile.{kind}.{what}: {report}"))
}

#[test]
fn a_value_changed_behind_the_tools_back_is_found_and_repaired_with_one_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);

    edit_behind_the_back(
        &mock,
        &json!({
            "companies": [
                {"company_id": "a", "monthly_spend": 7,
                 // 100 for the float 100.0 we sent: the same number, not drift.
                 "custom_attributes": {"Vitally Mrr": 100}},
                {"company_id": "b", "custom_attributes": {"Vitally Health Score": 1}},
            ],
            "contacts": [{"external_id": "u2", "custom_attributes": {"Vitally Account Owner": false}}],
        }),
    );
    let expected: BTreeSet<_> = [
        drift_item("company", "a", "monthly_spend", json!(7), json!(100)),
        drift_item("company", "b", "Vitally Health Score", json!(1), json!(6)),
        drift_item(
            "user",
            "e:u2",
            "Vitally Account Owner",
            json!(false),
            json!(true),
        ),
    ]
    .into();

    // Report only: found, nothing written, nothing marked for the next push.
    let before = writes(&mock);
    let (code, report, stderr) = reconcile_json(&db, &mock, &["--mode", "report"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(drift(&report), expected, "{report}");
    assert_eq!(writes(&mock), before, "report mode wrote to Intercom");
    let plan = intercom_push(&db, &["plan", "--json"]);
    assert_eq!(plan.stdout, "", "report mode marked records to send");
    // The nightly job, reconciling in report mode: the same drift, still nothing written.
    let (code, report, stderr) = run_json(&db, &input, &mock, &["--reconcile", "report"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(drift(&report), expected, "{report}");
    assert_eq!(
        writes(&mock),
        before,
        "run --reconcile report wrote to Intercom"
    );

    // Repair: the same drift, and exactly one write per drifted record.
    let (code, report, stderr) = reconcile_json(&db, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(drift(&report), expected, "{report}");
    assert_eq!(
        (
            reconciled(&report, "companies", "drifted"),
            reconciled(&report, "users", "drifted")
        ),
        (2, 1)
    );
    assert_eq!(
        writes(&mock),
        before + 3,
        "one write per drifted record: {report}"
    );
    assert_mock_holds_payloads(&db, &mock, 3);

    // Converged: nothing differs any more, nothing is written.
    let (code, report, _) = reconcile_json(&db, &mock, &[]);
    assert_eq!((code, drift(&report).len()), (0, 0), "{report}");
    assert_eq!(writes(&mock), before + 3);

    // status counts drifted records per attribute: b's score drifted in the 3 reconciles
    // above (2 reporting, 1 repairing), not in the last one.
    let status = intercom_push(&db, &["status", "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let history = status["drift_history"].as_array().unwrap();
    let health = history
        .iter()
        .find(|h| h["attribute"] == "Vitally Health Score")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(
        (health["records"].as_i64(), health["reconciles"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        status["last_reconcile"]["reconcile"]["companies"]["drifted"],
        0
    );
}

#[test]
fn a_foreign_attribute_is_never_reported_or_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    let attribute = |name: &str, model: &str| SeedAttribute {
        name: name.into(),
        model: model.into(),
        data_type: "string".into(),
        archived: false,
    };
    let company = |id: &str| SeedCompany {
        company_id: id.into(),
        user_count: 1,
        ..SeedCompany::default()
    };
    mock.seed(Seed {
        companies: vec![company("a"), company("b"), company("c")],
        contacts: ["u1", "u2", "u3"]
            .map(|id| SeedContact {
                external_id: Some(id.into()),
                ..SeedContact::default()
            })
            .into(),
        // Someone else's, one with our prefix.
        data_attributes: vec![
            attribute("Vitally Churn Note", "company"),
            attribute("Segment Plan", "contact"),
        ],
    })
    .unwrap();
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);

    // c has no MRR: we never sent it `Vitally Mrr` (we do send it to a and b) nor monthly_spend.
    let foreign = json!({
        "companies": [{"company_id": "c", "monthly_spend": 42, "custom_attributes":
            {"Vitally Mrr": 999.5, "Vitally Churn Note": "call them"}}],
        "contacts": [{"external_id": "u3", "custom_attributes": {"Segment Plan": "gold"}}],
    });
    edit_behind_the_back(&mock, &foreign);
    let before = writes(&mock);
    let (code, report, stderr) = reconcile_json(&db, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(drift(&report).len(), 0, "{report}");
    assert_eq!(reconciled(&report, "companies", "compared"), 3);
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--reconcile"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(writes(&mock), before, "a foreign value was overwritten");

    let state = mock.dump();
    let c = state["companies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["company_id"] == "c")
        .unwrap();
    assert_eq!(c["monthly_spend"], 42);
    assert_eq!(c["custom_attributes"]["Vitally Mrr"], 999.5);
    assert_eq!(c["custom_attributes"]["Vitally Churn Note"], "call them");
    let u3 = state["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == "u3")
        .unwrap();
    assert_eq!(u3["custom_attributes"]["Segment Plan"], "gold");
}

#[test]
fn a_record_nobody_touched_costs_no_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    let before = mock.stats();

    let (code, report, stderr) = reconcile_json(&db, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(drift(&report).len(), 0, "{report}");
    assert_eq!(
        (
            reconciled(&report, "companies", "compared"),
            reconciled(&report, "users", "compared")
        ),
        (3, 3)
    );
    let after = mock.stats();
    assert_eq!(
        after.company_writes + after.contact_writes,
        before.company_writes + before.contact_writes
    );
    // Reads only: 2 data attribute lists, a directory page and the closing empty one, and one
    // search for the 3 contacts by id.
    assert_eq!(report["api_calls"], 5, "{report}");
    let new_routes: BTreeSet<&String> = after
        .by_route
        .iter()
        .filter(|(route, n)| before.by_route.get(*route) != Some(n))
        .map(|(route, _)| route)
        .collect();
    assert_eq!(
        new_routes,
        [
            "GET /companies/scroll 200",
            "GET /data_attributes 200",
            "POST /contacts/search 200"
        ]
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .iter()
        .collect()
    );
}

/// An export of `n` accounts `acct-0000…` with one integer field.
fn numbered_export(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("externalId,mrr,score\n");
    for i in 0..n {
        csv.push_str(&format!("acct-{i:04},{},{}\n", 10 * i, 1000 + i));
    }
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
}

fn seed_numbered(mock: &MockServer, n: usize) {
    mock.seed(Seed {
        companies: (0..n)
            .map(|i| SeedCompany {
                company_id: format!("acct-{i:04}"),
                user_count: 1,
                ..SeedCompany::default()
            })
            .collect(),
        ..Seed::default()
    })
    .unwrap();
}

/// Starts `reconcile` and kills it (SIGKILL) once `moment` says so; false when it ended first.
fn reconcile_killed_when(
    db: &Path,
    mock: &MockServer,
    moment: impl Fn(&MockServer) -> bool,
) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_intercom-push"))
        .args([
            "--quiet",
            "--db",
            db.to_str().unwrap(),
            "reconcile",
            "--base-url",
            &mock.base_url(),
        ])
        .env("INTERCOM_ACCESS_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !moment(mock) && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

fn scroll_pages(mock: &MockServer) -> u64 {
    mock.stats()
        .by_route
        .get("GET /companies/scroll 200")
        .copied()
        .unwrap_or(0)
}

#[test]
fn a_reconcile_interrupted_by_kill_9_and_faults_converges_when_run_again() {
    const N: usize = 1000;
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    // Small pages and some latency, so that the kills land mid-scroll; a short scroll expiry,
    // so that the scroll a killed run left open does not hold the next one up for a minute.
    let mock = mock(MockConfig {
        latency: Duration::from_millis(15),
        scroll_page_size: 10,
        scroll_ttl: Duration::from_millis(300),
        // A 429 holds requests until the window resets: keep windows short.
        window: Duration::from_secs(1),
        rate_limit: 100_000,
        ..MockConfig::default()
    });
    seed_numbered(&mock, N);
    numbered_export(&input, N);
    let (code, _, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    // Every fifth company is changed behind the tool's back.
    let changed: Vec<Value> = (0..N)
        .step_by(5)
        .map(|i| json!({"company_id": format!("acct-{i:04}"), "custom_attributes": {"Vitally Score": -1}}))
        .collect();
    edit_behind_the_back(&mock, &json!({ "companies": changed }));

    // Killed twice mid-scroll (some drifted records already sent, most not).
    for pages in [15, 60] {
        let start = scroll_pages(&mock);
        assert!(
            reconcile_killed_when(&db, &mock, |m| scroll_pages(m) >= start + pages),
            "the reconcile ended before the kill"
        );
    }
    let repaired_before_faults = writes(&mock);
    assert!(
        repaired_before_faults > N as u64,
        "the killed runs repaired some records"
    );

    // Then with 5xx, 429s and dropped connections: the run may end incomplete (a scroll
    // cannot be resumed after a failed page), never wrong.
    mock.set_faults(intercom_push::mock::FaultConfig {
        latency_ms: 15,
        p_5xx: 0.03,
        p_429: 0.03,
        p_drop_before: 0.01,
        p_drop_after: 0.01,
        ..intercom_push::mock::FaultConfig::default()
    });
    let (code, report, stderr) = reconcile_json(&db, &mock, &[]);
    assert!(code == 0 || code == 1, "{stderr}\n{report}");
    mock.set_faults(intercom_push::mock::FaultConfig {
        latency_ms: 15,
        ..intercom_push::mock::FaultConfig::default()
    });

    // Run again: complete, and Intercom holds exactly the payloads.
    let (code, report, stderr) = reconcile_json(&db, &mock, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["reconcile"]["complete"], true);
    assert_mock_holds_payloads(&db, &mock, N);
    // Converged: a further reconcile finds nothing and writes nothing.
    let before = writes(&mock);
    let (code, report, _) = reconcile_json(&db, &mock, &[]);
    assert_eq!((code, drift(&report).len()), (0, 0), "{report}");
    assert_eq!(writes(&mock), before);
    assert!(mock.violations().is_empty());
}

#[test]
fn reconciling_20000_companies_costs_a_call_per_page_plus_one_per_drifted_record() {
    const COMPANIES: usize = 20_000;
    const USERS: usize = 2_000;
    const SCROLL_PAGE: usize = 50; // the mock's page (Intercom does not document its own)
    const SEARCH_PAGE: usize = 100; // contact ids per search
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let gen = intercom_push(
        &db,
        &[
            "gen",
            "--accounts",
            "20000",
            "--seed",
            "3",
            "--users-per-account",
            "0",
            "--out",
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(gen.code, 0, "{}", gen.stderr);
    let mut users = String::from("id,externalId,email\n");
    for i in 0..USERS {
        users.push_str(&format!("usr_{i},u-{i:05},u{i}@example.com\n"));
    }
    std::fs::write(input.join("users.csv"), users).unwrap();
    let company_ids: Vec<String> = std::fs::read_to_string(input.join("accounts.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(company_ids.len(), COMPANIES);
    // No rate limit to speak of: the count matters here, not the time.
    let mock = mock(MockConfig {
        rate_limit: 1_000_000,
        ..MockConfig::default()
    });
    mock.seed(Seed {
        companies: company_ids
            .iter()
            .map(|id| SeedCompany {
                company_id: id.clone(),
                ..SeedCompany::default()
            })
            .collect(),
        contacts: (0..USERS)
            .map(|i| SeedContact {
                external_id: Some(format!("u-{i:05}")),
                ..SeedContact::default()
            })
            .collect(),
        data_attributes: vec![],
    })
    .unwrap();
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), COMPANIES as u64);
    assert_eq!(count(&report, "users", "updated"), USERS as u64);

    // 1 % drift: 200 companies and 20 contacts changed behind the tool's back.
    let companies: Vec<Value> = company_ids
        .iter()
        .step_by(100)
        .map(|id| json!({"company_id": id, "custom_attributes": {"Vitally Seats": -1}}))
        .collect();
    let contacts: Vec<Value> = (0..USERS)
        .step_by(100)
        .map(|i| json!({"external_id": format!("u-{i:05}"), "custom_attributes": {"Vitally Account Owner": true}}))
        .collect();
    let drifted = (companies.len() + contacts.len()) as u64;
    edit_behind_the_back(
        &mock,
        &json!({"companies": companies, "contacts": contacts}),
    );

    let before = mock.stats();
    let (code, report, stderr) = reconcile_json(&db, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        drift(&report).len() as u64,
        drifted,
        "{}",
        report["reconcile"]
    );
    let writes_made = writes(&mock) - (before.company_writes + before.contact_writes);
    assert_eq!(writes_made, drifted);
    let calls = report["api_calls"].as_u64().unwrap();
    // The bound: a call per directory page (+ the empty page that ends the scroll), a call per
    // 100 contacts, a write per drifted record, and the 2 data attribute lists of a push.
    let bound =
        (COMPANIES.div_ceil(SCROLL_PAGE) + 1 + USERS.div_ceil(SEARCH_PAGE)) as u64 + drifted + 2;
    println!(
        "reconcile of {COMPANIES} companies and {USERS} contacts, {drifted} drifted: {calls} calls (bound {bound}); a full re-sync makes {}",
        COMPANIES + USERS
    );
    assert!(calls <= bound, "{calls} calls, more than {bound}");
    assert_eq!(
        mock.stats().total_requests - before.total_requests,
        calls,
        "the report counts every call Intercom received"
    );
}
