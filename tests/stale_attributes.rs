//! Stale attributes: what we sent before and no longer send is cleared on each record, then
//! the attribute can be archived; nothing of anyone else's is touched.

mod mock_harness;

use intercom_push::mock::{MockConfig, MockServer, Seed, SeedAttribute, SeedCompany};
use mock_harness::*;
use serde_json::Value;

fn attributes_json(db: &std::path::Path, mock: &MockServer) -> Value {
    let url = mock.base_url();
    let run = intercom_push(db, &["attributes", "--base-url", &url, "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(run.stdout.trim()).unwrap()
}

fn origin_of(list: &Value, name: &str) -> Option<String> {
    list["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .map(|a| a["origin"].as_str().unwrap().to_string())
}

/// `attributes --archive-stale` while 3 records still hold `Vitally Dashboards`: it says so
/// and leaves the attribute unarchived.
fn archiving_waits_for_the_three_records_of_dashboards(db: &std::path::Path, mock: &MockServer) {
    let url = mock.base_url();
    let early = intercom_push(
        db,
        &["attributes", "--base-url", &url, "--archive-stale", "--yes"],
    );
    assert_eq!(early.code, 0, "{}", early.stderr);
    assert!(
        early.stdout.contains("3 records still hold a value"),
        "{}",
        early.stdout
    );
    assert_eq!(
        mock_attribute(mock, "Vitally Dashboards").unwrap()["archived"],
        false
    );
}

fn company_attrs(mock: &MockServer) -> Vec<serde_json::Map<String, Value>> {
    mock.dump()["companies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["custom_attributes"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn a_renamed_element_is_cleared_then_listed_stale_then_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    assert_eq!(
        origin_of(&attributes_json(&db, &mock), "Vitally Dashboards").as_deref(),
        Some("current")
    );

    std::fs::write(input.join("elements.csv"), "id,name\ne1,Dashboards V2\n").unwrap();
    // Loaded and transformed but not pushed: Intercom still holds the old values, so
    // archiving refuses.
    let url = mock.base_url();
    assert_eq!(
        intercom_push(&db, &["load", "--input", input.to_str().unwrap()]).code,
        0
    );
    assert_eq!(intercom_push(&db, &["transform"]).code, 0);
    archiving_waits_for_the_three_records_of_dashboards(&db, &mock);
    let (code, _, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(company_attrs(&mock)
        .iter()
        .all(|a| !a.contains_key("Vitally Dashboards") && a.contains_key("Vitally Dashboards V2")));

    let list = attributes_json(&db, &mock);
    assert_eq!(
        origin_of(&list, "Vitally Dashboards").as_deref(),
        Some("stale")
    );
    assert_eq!(
        origin_of(&list, "Vitally Dashboards V2").as_deref(),
        Some("current")
    );
    let archive = intercom_push(
        &db,
        &["attributes", "--base-url", &url, "--archive-stale", "--yes"],
    );
    assert_eq!(archive.code, 0, "{}", archive.stderr);
    assert!(
        archive
            .stdout
            .contains("archived company attribute `Vitally Dashboards`"),
        "{}",
        archive.stdout
    );
    assert_eq!(
        mock_attribute(&mock, "Vitally Dashboards").unwrap()["archived"],
        true
    );
    assert_eq!(
        mock_attribute(&mock, "Vitally Dashboards V2").unwrap()["archived"],
        false
    );
}

#[test]
fn archive_waits_until_every_record_was_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    // A deleted metric... here: the element file removed, then only transformed (not pushed).
    std::fs::remove_file(input.join("elements.csv")).unwrap();
    std::fs::remove_file(input.join("element_counts.csv")).unwrap();
    assert_eq!(
        intercom_push(&db, &["load", "--input", input.to_str().unwrap()]).code,
        0
    );
    assert_eq!(intercom_push(&db, &["transform"]).code, 0);
    let plan = intercom_push(&db, &["plan"]);
    assert!(
        plan.stdout.contains("- Vitally Dashboards (was 3)"),
        "plan shows the clear: {}",
        plan.stdout
    );
    archiving_waits_for_the_three_records_of_dashboards(&db, &mock);
}

#[test]
fn a_deleted_metric_is_cleared_and_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    std::fs::write(
        input.join("metric_values.csv"),
        "account_id,metric_id,value\na,NPS,40\nb,NPS,12\n",
    )
    .unwrap();
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    assert!(
        company_attrs(&mock)
            .iter()
            .filter(|a| a.contains_key("Vitally NPS"))
            .count()
            == 2
    );
    std::fs::remove_file(input.join("metric_values.csv")).unwrap();
    let (code, report, _) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        count(&report, "companies", "updated"),
        2,
        "only the two companies that had the metric change: {report}"
    );
    assert!(company_attrs(&mock)
        .iter()
        .all(|a| !a.contains_key("Vitally NPS")));
    let url = mock.base_url();
    assert_eq!(
        intercom_push(
            &db,
            &["attributes", "--base-url", &url, "--archive-stale", "--yes"]
        )
        .code,
        0
    );
    assert_eq!(
        mock_attribute(&mock, "Vitally NPS").unwrap()["archived"],
        true
    );
}

#[test]
fn a_changed_prefix_clears_every_old_key_and_sets_the_new_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    let (code, report, stderr) = run_json(&db, &input, &mock, &["--prefix", "CS"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 3);
    assert_eq!(count(&report, "users", "updated"), 3);
    for attrs in company_attrs(&mock) {
        assert!(attrs.keys().all(|k| k.starts_with("CS ")), "{attrs:?}");
        assert!(attrs.contains_key("CS Health Score"));
    }
    let contacts = mock.dump()["contacts"].as_array().unwrap().clone();
    for contact in contacts.iter().filter(|c| c["role"] == "user") {
        let attrs = contact["custom_attributes"].as_object().unwrap();
        assert!(
            !attrs.contains_key("Vitally Account Owner") && attrs.contains_key("CS Account Owner"),
            "{contact}"
        );
    }
}

#[test]
fn a_foreign_attribute_with_our_prefix_is_never_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    let mut attrs = serde_json::Map::new();
    attrs.insert(
        "Vitally Hand Written".into(),
        Value::String("keep me".into()),
    );
    let company = |id: &str, attrs: serde_json::Map<String, Value>| SeedCompany {
        company_id: id.into(),
        user_count: 1,
        custom_attributes: attrs,
        ..SeedCompany::default()
    };
    mock.seed(Seed {
        companies: vec![
            company("a", attrs.clone()),
            company("b", serde_json::Map::new()),
            company("c", serde_json::Map::new()),
        ],
        contacts: vec![],
        data_attributes: vec![SeedAttribute {
            name: "Vitally Hand Written".into(),
            model: "company".into(),
            data_type: "string".into(),
            archived: false,
        }],
    })
    .unwrap();
    small_export(&input, "u1", "6");
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    std::fs::write(input.join("elements.csv"), "id,name\ne1,Renamed\n").unwrap();
    assert_eq!(run_json(&db, &input, &mock, &[]).0, 0);
    let url = mock.base_url();
    assert_eq!(
        intercom_push(
            &db,
            &["attributes", "--base-url", &url, "--archive-stale", "--yes"]
        )
        .code,
        0
    );
    assert_eq!(
        origin_of(&attributes_json(&db, &mock), "Vitally Hand Written").as_deref(),
        Some("foreign")
    );
    assert_eq!(
        mock_attribute(&mock, "Vitally Hand Written").unwrap()["archived"],
        false
    );
    let a = mock.dump()["companies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["company_id"] == "a")
        .unwrap()
        .clone();
    assert_eq!(a["custom_attributes"]["Vitally Hand Written"], "keep me");
}

#[test]
fn the_attribute_cap_refuses_before_any_write_and_names_what_to_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig {
        record_requests: true,
        ..MockConfig::default()
    });
    // Someone else's 245 custom attributes, 5 of them archived (which do not count), then our
    // first run creates 8 (Vitally Mrr, Health Score, Plan, Dashboards, Active Risk
    // Indicators, Active Opportunity Indicators, Segments, Account Owner): 248 of 250 live.
    let mut seed = small_seed();
    seed.data_attributes = (0..245)
        .map(|i| SeedAttribute {
            name: format!("Other {i}"),
            model: "company".into(),
            data_type: "string".into(),
            archived: i < 5,
        })
        .collect();
    mock.seed(seed).unwrap();
    small_export(&input, "u1", "6");
    let (code, report, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&report, "companies", "updated"), 3);
    assert_eq!(count(&report, "users", "updated"), 3);
    let before = mock.dump();
    assert_eq!(before["data_attributes"].as_array().unwrap().len(), 253);

    // A renamed element plus three new fields need 4 new attributes: 252 > 250.
    std::fs::write(input.join("elements.csv"), "id,name\ne1,Dashboards V2\n").unwrap();
    std::fs::write(input.join("accounts.csv"), "externalId,accountOwnerId,mrr,healthScore,plan,x1,x2,x3\na,u1,100,5,pro,1,2,3\nb,u2,200.5,6,team,1,2,3\nc,,,7,free,1,2,3\n").unwrap();
    let requests_before = mock.requests().len();
    let (code, _, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("creating 4 attributes would take the workspace past Intercom's cap of 250 custom attributes (248 are in use; archived ones do not count)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "you could archive (`intercom-push attributes --archive-stale`): Vitally Dashboards."
        ),
        "names the stale attribute to archive: {stderr}"
    );
    // The refusal came after reading the workspace's attributes and before any write.
    let requests: Vec<String> = mock.requests()[requests_before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        requests.iter().any(|r| r == "GET /data_attributes"),
        "{requests:?}"
    );
    let reads = ["GET ", "POST /contacts/search", "POST /companies/list"];
    let writes: Vec<&String> = requests
        .iter()
        .filter(|r| !reads.iter().any(|read| r.starts_with(read)))
        .collect();
    assert!(writes.is_empty(), "written before refusing: {writes:?}");
    let after = mock.dump();
    for data in ["companies", "contacts", "data_attributes"] {
        assert!(after[data] == before[data], "{data} changed");
    }
}
