//! The real Intercom's limits, through the binary against a mock that plays each of them:
//! 255-character strings, users and not leads, `""` read back as `null`, attributes archived by
//! someone else, the cap of live attributes, and new attributes that are not usable at once.

mod common;
mod mock_harness;

use std::time::Duration;

use intercom_push::mock::{MockConfig, MockServer, Seed, SeedAttribute};
use mock_harness::*;
use serde_json::{json, Value};

/// Archives the data attribute `name`, as a teammate would in Intercom's UI.
fn archive(mock: &MockServer, name: &str) {
    let id = mock_attribute(mock, name).expect("the attribute")["id"]
        .as_u64()
        .expect("attribute id");
    // As an API call of another app.
    let auth = format!("Authorization: Bearer {TOKEN}\r\nIntercom-Version: 2.16\r\n");
    let path = format!("/data_attributes/{id}");
    let (status, body) = http(mock, "PUT", &path, &auth, &json!({"archived": true}));
    assert_eq!((status, &body["archived"]), (200, &json!(true)), "{body}");
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect()
}

/// `count` foreign custom attributes, the first `archived` of them archived.
fn foreign_attributes(count: usize, archived: usize) -> Vec<SeedAttribute> {
    (0..count)
        .map(|i| SeedAttribute {
            name: format!("other {i}"),
            model: "company".into(),
            data_type: "string".into(),
            archived: i < archived,
        })
        .collect()
}

/// 1. A string over 255 characters is sent as its first 254 and `…`; 255 as it is.
#[test]
fn strings_over_255_characters_are_cut_and_fail_mode_refuses_without_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    // Characters, not bytes: `é` is two bytes, so 255 of them are 510 bytes and sent whole.
    let (long, exact) = ("é".repeat(300), "é".repeat(255));
    std::fs::write(
        input.join("accounts.csv"),
        format!(
            "externalId,accountOwnerId,mrr,notes\na,u1,100,{long}\nb,u2,200,{exact}\nc,,,short\n"
        ),
    )
    .unwrap();
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 3, "{report}");
    let cut = format!("{}…", "é".repeat(254));
    assert_eq!(cut.chars().count(), 255);
    assert_eq!(
        find_in(&mock.dump(), "companies", "company_id", "a").clone()["custom_attributes"]
            ["Vitally Notes"],
        cut
    );
    assert_eq!(
        find_in(&mock.dump(), "companies", "company_id", "b").clone()["custom_attributes"]
            ["Vitally Notes"],
        exact
    );
    // The cut value is the payload: plan shows it, the mock holds it, the hash covers it.
    assert_mock_holds_payloads(&db, &mock, 3);
    let said: Vec<&str> = warnings(&stderr)
        .into_iter()
        .filter(|w| w.contains("Vitally Notes"))
        .collect();
    assert_eq!(said.len(), 1, "one warning per attribute: {stderr}");
    assert!(
        said[0].contains("1 companies") && said[0].contains("long_strings"),
        "{}",
        said[0]
    );
    // The same export again: nothing to send.
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!((code, count(&report, "companies", "updated")), (0, 0));

    // With `fail`: exit 2 naming the record and the attribute, and the database as it was.
    let before = common::db::contents(&db);
    let url = mock.base_url();
    let writes_before = writes(&mock);
    std::fs::write(
        input.join("accounts.csv"),
        format!(
            "externalId,accountOwnerId,mrr,notes\na,u1,100,{long}\nb,u2,300,{exact}\nc,,,short\n"
        ),
    )
    .unwrap();
    let run = intercom_push(
        &db,
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--base-url",
            &url,
            "--long-strings",
            "fail",
        ],
    );
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("company `a`") && run.stderr.contains("`Vitally Notes`"),
        "{}",
        run.stderr
    );
    assert_eq!(writes(&mock), writes_before, "nothing is sent");
    let load = intercom_push(&db, &["load", "--input", input.to_str().unwrap()]);
    assert_eq!(load.code, 0, "{}", load.stderr);
    let loaded = common::db::contents(&db);
    let refused = intercom_push(&db, &["transform", "--long-strings", "fail"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(
        common::db::contents(&db),
        loaded,
        "transform changed the database"
    );
    assert_ne!(loaded, before, "the load itself changed it");
}

/// 2. A user found by email who also has a lead with that email is updated; the lead never is.
#[test]
fn a_lead_with_the_users_email_is_never_written_nor_makes_the_match_ambiguous() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    let mut seed = small_seed();
    // u2's user has no external_id in Intercom: it is found by email, beside its lead.
    seed.contacts[1].external_id = None;
    mock.seed(seed).unwrap();
    small_export(&input, "u1", "6");
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(count(&report, "users", "ambiguous"), 0, "{report}");
    assert_eq!(count(&report, "users", "updated"), 3, "{report}");
    let contacts = mock.dump()["contacts"].as_array().unwrap().clone();
    let with_email = |role: &str| {
        contacts
            .iter()
            .find(|c| c["email"] == "two@x.example" && c["role"] == role)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        with_email("user")["custom_attributes"],
        json!({"Vitally Account Owner": true})
    );
    assert_eq!(with_email("lead")["custom_attributes"], json!({}));
}

/// 3. A `""` we sent that Intercom reads back as `null` is not drift, and is not sent again.
#[test]
fn an_empty_string_read_back_as_null_is_not_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig {
        empty_string_as_null: true,
        ..MockConfig::default()
    });
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    // The export has no indicators nor segments: we sent `""`, the mock holds `null`.
    let held =
        find_in(&mock.dump(), "companies", "company_id", "a").clone()["custom_attributes"].clone();
    assert_eq!(held["Vitally Segments"], Value::Null);
    assert!(held.as_object().unwrap().contains_key("Vitally Segments"));
    let (code, report, stderr) = reconcile_json(&db, &mock, &["--mode", "report"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["drift"], json!([]), "{report}");
    let writes_before = writes(&mock);
    let (code, report, stderr) = reconcile_json(&db, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["drift"], json!([]), "{report}");
    assert_eq!(writes(&mock), writes_before, "repair sent something again");
}

/// 4. A clear of an attribute someone archived is not sent; the record counts it as cleared.
#[test]
fn a_clear_of_an_attribute_archived_by_someone_else_is_left_out_once_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    // The Element is renamed (its old attribute is to be cleared), and meanwhile a teammate
    // archived the old attribute in Intercom.
    std::fs::write(input.join("elements.csv"), "id,name\ne1,Widgets\n").unwrap();
    archive(&mock, "Vitally Dashboards");
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 3, "{report}");
    let said: Vec<&str> = warnings(&stderr)
        .into_iter()
        .filter(|w| w.contains("Vitally Dashboards"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].contains("archived") && said[0].contains("3 records"),
        "{}",
        said[0]
    );
    // Intercom keeps the archived attribute's values; the new one is there.
    assert_eq!(
        find_in(&mock.dump(), "companies", "company_id", "a").clone()["custom_attributes"]
            ["Vitally Dashboards"],
        3
    );
    assert_eq!(
        find_in(&mock.dump(), "companies", "company_id", "a").clone()["custom_attributes"]
            ["Vitally Widgets"],
        3
    );
    // Counted as cleared: no record holds a value of ours, and nothing is sent again.
    let url = mock.base_url();
    let list = intercom_push(&db, &["attributes", "--base-url", &url, "--json"]);
    let list: Value = serde_json::from_str(list.stdout.trim()).expect("attributes --json");
    let dashboards = list["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Vitally Dashboards")
        .cloned()
        .unwrap();
    assert_eq!(dashboards["records_with_value"], 0, "{dashboards}");
    let (code, report, stderr) = run_json(&db, &input, &mock, &["--full-resync"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("Vitally Dashboards"), "{stderr}");
    assert_eq!(count(&report, "companies", "failed"), 0);

    // A value for an archived attribute still stops the push before any write.
    archive(&mock, "Vitally Plan");
    std::fs::write(
        input.join("accounts.csv"),
        "externalId,accountOwnerId,mrr,healthScore,plan\na,u1,100,5,enterprise\nb,u2,200.5,6,team\nc,,,7,free\n",
    )
    .unwrap();
    let writes_before = writes(&mock);
    let (code, _, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`Vitally Plan` is archived"), "{stderr}");
    assert_eq!(writes(&mock), writes_before);
}

/// 5. The cap counts live attributes; a creation Intercom refuses stops before any write.
#[test]
fn the_cap_counts_live_attributes_and_a_refused_creation_stops_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    // 250 attributes, 20 of them archived: 230 live, so our 8 fit.
    let mock = mock(MockConfig::default());
    mock.seed(Seed {
        data_attributes: foreign_attributes(250, 20),
        ..small_seed()
    })
    .unwrap();
    small_export(&input, "u1", "6");
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(
        report["attributes_created"].as_array().map(Vec::len),
        Some(8)
    );
    assert_eq!(count(&report, "companies", "updated"), 3);

    // A workspace whose real cap is lower than the listing lets us think (another app's
    // attributes, a plan's limit): Intercom refuses some creations.
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock_harness::mock(MockConfig {
        max_custom_attributes: 240,
        ..MockConfig::default()
    });
    mock.seed(Seed {
        data_attributes: foreign_attributes(228, 0),
        ..small_seed()
    })
    .unwrap();
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0); // 236 live now
                                                        // Dashboards renamed (stale, archivable) and five new fields: 6 to create, 4 fit.
    std::fs::write(input.join("elements.csv"), "id,name\ne1,Widgets\n").unwrap();
    std::fs::write(
        input.join("accounts.csv"),
        "externalId,accountOwnerId,mrr,healthScore,plan,f1,f2,f3,f4,f5\na,u1,100,5,pro,1,2,3,4,5\nb,u2,200.5,6,team,1,2,3,4,5\nc,,,7,free,1,2,3,4,5\n",
    )
    .unwrap();
    let writes_before = writes(&mock);
    let (code, _, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(writes(&mock), writes_before, "a record was written");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        error.contains("custom_data_limit_reached") && error.contains("refused to create 2"),
        "{error}"
    );
    assert!(
        error.contains("Vitally Dashboards"),
        "the stale one to archive: {error}"
    );
}

/// 6. A new attribute that Intercom does not accept yet: its writes are retried until it does.
#[test]
fn writes_wait_for_an_attribute_created_moments_ago() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig {
        attribute_delay: Duration::from_millis(1500),
        ..MockConfig::default()
    });
    seed_small(&mock);
    small_export(&input, "u1", "6");
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 3, "{report}");
    assert_eq!(count(&report, "users", "updated"), 3, "{report}");
    assert!(report["retries"].as_u64().unwrap() > 0, "{report}");
    assert_mock_holds_payloads(&db, &mock, 3);
}
