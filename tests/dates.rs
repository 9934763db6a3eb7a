//! Date attributes (`dates = "timestamp"` / `--dates timestamp`), through the real binary:
//! ISO 8601 dates and date-times from CSV, JSON and Parquet become unix seconds in `date`
//! attributes named `<attribute> - date`; a value before 1970 or not a date keeps the column a
//! string with a warning; switching an existing workspace clears the string attribute left
//! behind until it can be archived; the mock refuses mistyped values as Intercom does; and the
//! default (`string`) changes no payload and no hash.

mod common;
mod mock_harness;

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Date32Array, RecordBatch, StringArray, TimestampMillisecondArray};
use common::{lines, manifest_dir, Workspace};
use intercom_push::mock::{MockConfig, MockServer, Seed, SeedAttribute, SeedCompany};
use mock_harness::{intercom_push, mock, mock_attribute, run_json, writes};
use serde_json::{json, Value};

/// 2027-03-01T00:00:00Z and 2027-03-01T10:00:00Z in unix seconds.
const MARCH_1: i64 = 1_803_859_200;
const MARCH_1_10H: i64 = MARCH_1 + 10 * 3600;

/// Accounts a, b, c: a date column, a date-time column (with `Z`, an offset, none), a text
/// column; metric values with dates.
fn dated_export(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("accounts.csv"),
        lines(&[
            "externalId,renewalDate,lastLoginAt,plan",
            "a,2027-03-01,2027-03-01T10:00:00Z,pro",
            "b,2027-03-02,2027-03-01T12:30:00+02:30,team",
            "c,,2027-03-01 10:00:00,free",
        ]),
    )
    .unwrap();
    std::fs::write(
        dir.join("metric_values.csv"),
        lines(&[
            "account_id,metric_id,value",
            "a,Last QBR,2027-03-01",
            "c,Last QBR,2027-03-01T10:00:00",
        ]),
    )
    .unwrap();
}

fn seed_companies(mock: &MockServer, data_attributes: Vec<SeedAttribute>) {
    let company = |id: &str| SeedCompany {
        company_id: id.into(),
        ..SeedCompany::default()
    };
    mock.seed(Seed {
        companies: vec![company("a"), company("b"), company("c")],
        contacts: vec![],
        data_attributes,
    })
    .unwrap();
}

/// The custom attributes Intercom (the mock) holds for company `id`.
fn held(mock: &MockServer, id: &str) -> serde_json::Map<String, Value> {
    mock.dump()["companies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["company_id"] == id)
        .and_then(|c| c["custom_attributes"].as_object().cloned())
        .unwrap_or_default()
}

fn attributes_json(db: &Path, mock: &MockServer) -> Value {
    let url = mock.base_url();
    let run = intercom_push(db, &["attributes", "--base-url", &url, "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(run.stdout.trim()).unwrap()
}

fn listed<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("`{name}` is not listed: {list}"))
}

#[test]
fn csv_dates_and_date_times_are_sent_as_unix_seconds_in_date_attributes() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    dated_export(&input);
    let mock = mock(MockConfig::default());
    seed_companies(&mock, vec![]);
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--dates", "timestamp"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    for name in [
        "Vitally Renewal Date - date",
        "Vitally Last Login At - date",
        "Vitally Last QBR - date",
    ] {
        let attribute = mock_attribute(&mock, name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(attribute["data_type"], "date", "{attribute}");
        assert_eq!(attribute["model"], "company", "{attribute}");
    }
    assert_eq!(
        mock_attribute(&mock, "Vitally Plan").unwrap()["data_type"],
        "string"
    );
    assert_eq!(mock_attribute(&mock, "Vitally Renewal Date"), None);

    let expected = [
        (
            "a",
            json!({"Vitally Renewal Date - date": MARCH_1, "Vitally Last Login At - date": MARCH_1_10H, "Vitally Last QBR - date": MARCH_1, "Vitally Plan": "pro"}),
        ),
        (
            "b",
            json!({"Vitally Renewal Date - date": MARCH_1 + 86_400, "Vitally Last Login At - date": MARCH_1_10H, "Vitally Plan": "team"}),
        ),
        (
            "c",
            json!({"Vitally Last Login At - date": MARCH_1_10H, "Vitally Last QBR - date": MARCH_1_10H, "Vitally Plan": "free"}),
        ),
    ];
    for (id, attributes) in expected {
        let mut held = held(&mock, id);
        held.retain(|name, _| !name.contains("Indicators") && name != "Vitally Segments");
        assert_eq!(Value::Object(held), attributes, "company {id}");
    }

    // The same export again: nothing to send.
    let before = writes(&mock);
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--dates", "timestamp"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(writes(&mock), before, "a second run writes nothing");
}

#[test]
fn the_config_key_and_the_flag_choose_how_dates_are_sent() {
    let ws = Workspace::new();
    dated_export(&ws.export());
    ws.load().ok();
    let renewal_of_a = |ws: &Workspace| -> serde_json::Map<String, Value> {
        let plan = ws.plan_all();
        let a = plan.iter().find(|l| l["company_id"] == "a").unwrap();
        a["custom_attributes"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("Vitally Renewal"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    ws.transform(&[]).ok();
    let as_string = json!({"Vitally Renewal Date": "2027-03-01"});
    let as_date = json!({"Vitally Renewal Date - date": MARCH_1});
    assert_eq!(Value::Object(renewal_of_a(&ws)), as_string, "default");

    std::fs::write(
        ws.path().join("intercom-push.toml"),
        "dates = \"timestamp\"\n",
    )
    .unwrap();
    ws.transform(&[]).ok();
    assert_eq!(Value::Object(renewal_of_a(&ws)), as_date, "config file");
    let status = ws.run(&["status"]).ok().stdout.clone();
    assert!(status.contains("dates=timestamp"), "{status}");

    ws.transform(&["--dates", "string"]).ok();
    assert_eq!(Value::Object(renewal_of_a(&ws)), as_string, "the flag wins");

    std::fs::write(ws.path().join("intercom-push.toml"), "dates = \"unix\"\n").unwrap();
    let refused = ws.transform(&[]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("intercom-push.toml") && refused.stderr.contains("timestamp"),
        "{}",
        refused.stderr
    );
    std::fs::remove_file(ws.path().join("intercom-push.toml")).unwrap();
    let refused = ws.transform(&["--dates", "unix"]);
    refused.expect_code(2);
    assert!(refused.stderr.contains("timestamp"), "{}", refused.stderr);
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_date_and_timestamp_columns_are_sent_as_dates_and_a_pre_1970_one_as_a_string() {
    let ws = Workspace::new();
    let days = (MARCH_1 / 86_400) as i32;
    let millis = MARCH_1_10H * 1000;
    write_parquet(
        &ws.export().join("accounts.parquet"),
        vec![
            (
                "externalId",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
            (
                "renewalDate",
                Arc::new(Date32Array::from(vec![Some(days), None])),
            ),
            (
                "lastLoginAt",
                Arc::new(TimestampMillisecondArray::from(vec![millis, millis + 1500])),
            ),
            (
                "trialEndsAt",
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(millis), None])
                        .with_timezone("Europe/Paris"),
                ),
            ),
            ("foundedOn", Arc::new(Date32Array::from(vec![days, -1]))),
            (
                "plan",
                Arc::new(StringArray::from(vec!["pro", "2027-03-01"])),
            ),
        ],
    );
    let run = ws.pipeline(&["--dates", "timestamp"]);
    assert_eq!(
        Value::Object(run.attrs("a").clone()),
        json!({
            "Vitally Active Opportunity Indicators": "",
            "Vitally Active Risk Indicators": "",
            "Vitally Segments": "",
            "Vitally Renewal Date - date": MARCH_1,
            "Vitally Last Login At - date": MARCH_1_10H,
            "Vitally Trial Ends At - date": MARCH_1_10H,
            "Vitally Founded On": "2027-03-01",
            "Vitally Plan": "pro",
        })
    );
    assert_eq!(
        run.attr("b", "Vitally Last Login At - date"),
        Some(&json!(MARCH_1_10H + 1))
    );
    assert_eq!(
        run.attr("b", "Vitally Founded On"),
        Some(&json!("1969-12-31"))
    );
    // One date among as many other strings: a text column, sent as written, no warning.
    assert_eq!(run.attr("b", "Vitally Plan"), Some(&json!("2027-03-01")));
    assert_eq!(
        run.warnings,
        ["field `foundedOn` holds dates but is sent as a string (`Vitally Founded On`): `1969-12-31` (accounts.parquet:2) is before 1970, which Intercom's dates cannot hold; correct or empty such values to send it as a date"],
    );
}

#[test]
fn a_date_before_1970_or_an_invalid_date_keeps_the_column_a_string_with_a_warning() {
    let ws = Workspace::new();
    // Two parts of one table: the typing spans them (the bad values are in the second part).
    let accounts = ws.export().join("accounts");
    let header = "externalId,foundedOn,renewalDate,churnedAt,notes,goodDate";
    ws.write_in(
        &accounts,
        "part-00000.csv",
        lines(&[
            header,
            "a,2001-05-01,2027-03-01,2027-03-01,call back,2027-03-01",
            "c,,,2027-04-01,,2027-03-02",
        ]),
    );
    ws.write_in(
        &accounts,
        "part-00001.csv",
        lines(&[header, "b,1969-07-20,2027-02-30,soon,2027-03-01 meeting,"]),
    );
    ws.write(
        "metric_values.ndjson",
        lines(&[
            r#"{"account_id": "a", "metric_id": "Go Live", "value": "2020-01-01"}"#,
            r#"{"account_id": "b", "metric_id": "Go Live", "value": "1965-01-01T00:00:00Z"}"#,
            r#"{"account_id": "c", "metric_id": "Signed", "value": "2020-01-01"}"#,
        ]),
    );
    let run = ws.pipeline(&["--dates", "timestamp"]);
    let warning = |source: &str, attribute: &str, note: &str| {
        format!("{source} holds dates but is sent as a string (`{attribute}`): {note}; correct or empty such values to send it as a date")
    };
    assert_eq!(
        run.warnings,
        [
            warning("field `foundedOn`", "Vitally Founded On", "`1969-07-20` (accounts/part-00001.csv:2) is before 1970, which Intercom's dates cannot hold"),
            warning("field `renewalDate`", "Vitally Renewal Date", "`2027-02-30` (accounts/part-00001.csv:2) is not a valid ISO 8601 date or date-time"),
            warning("field `churnedAt`", "Vitally Churned At", "`soon` (accounts/part-00001.csv:2) is not a date"),
            // `notes` holds as much text as dates: a text column, no warning.
            warning("metric `Go Live`", "Vitally Go Live", "`1965-01-01T00:00:00Z` (metric_values.ndjson:2) is before 1970, which Intercom's dates cannot hold"),
        ]
    );
    assert_eq!(
        run.attr("b", "Vitally Founded On"),
        Some(&json!("1969-07-20"))
    );
    assert_eq!(
        run.attr("a", "Vitally Founded On"),
        Some(&json!("2001-05-01"))
    );
    assert_eq!(
        run.attr("a", "Vitally Renewal Date"),
        Some(&json!("2027-03-01"))
    );
    assert_eq!(
        run.attr("a", "Vitally Churned At"),
        Some(&json!("2027-03-01"))
    );
    assert_eq!(
        run.attr("b", "Vitally Notes"),
        Some(&json!("2027-03-01 meeting"))
    );
    assert_eq!(run.attr("a", "Vitally Go Live"), Some(&json!("2020-01-01")));
    assert_eq!(
        run.attr("a", "Vitally Good Date - date"),
        Some(&json!(MARCH_1))
    );
    assert_eq!(
        run.attr("c", "Vitally Signed - date"),
        Some(&json!(1_577_836_800))
    );

    // Sent as strings anyway by default: nothing to warn about.
    let default = ws.transform(&[]);
    default.ok();
    assert_eq!(default.warnings(), Vec::<String>::new());
}

#[test]
fn switching_a_workspace_to_dates_clears_the_string_attribute_then_archives_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    dated_export(&input);
    let mock = mock(MockConfig::default());
    seed_companies(&mock, vec![]);
    let url = mock.base_url();
    let (code, _, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        mock_attribute(&mock, "Vitally Renewal Date").unwrap()["data_type"],
        "string"
    );
    assert_eq!(held(&mock, "a")["Vitally Renewal Date"], "2027-03-01");

    // The switch: the date goes to its own attribute, the string one is cleared everywhere.
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--dates", "timestamp"]);
    assert_eq!(code, 0, "{stderr}");
    for id in ["a", "b", "c"] {
        let held = held(&mock, id);
        for old in [
            "Vitally Renewal Date",
            "Vitally Last Login At",
            "Vitally Last QBR",
        ] {
            assert!(
                !held.contains_key(old),
                "company {id} still holds {old}: {held:?}"
            );
        }
        assert_eq!(
            held["Vitally Last Login At - date"], MARCH_1_10H,
            "company {id}"
        );
    }
    assert_eq!(held(&mock, "a")["Vitally Renewal Date - date"], MARCH_1);

    let list = attributes_json(&db, &mock);
    for old in [
        "Vitally Renewal Date",
        "Vitally Last Login At",
        "Vitally Last QBR",
    ] {
        assert_eq!(listed(&list, old)["origin"], "stale", "{old}");
        assert_eq!(listed(&list, old)["records_with_value"], 0, "{old}");
        assert_eq!(listed(&list, &format!("{old} - date"))["origin"], "current");
    }
    let archive = intercom_push(
        &db,
        &["attributes", "--base-url", &url, "--archive-stale", "--yes"],
    );
    assert_eq!(archive.code, 0, "{}", archive.stderr);
    for old in [
        "Vitally Renewal Date",
        "Vitally Last Login At",
        "Vitally Last QBR",
    ] {
        assert!(
            archive
                .stdout
                .contains(&format!("archived company attribute `{old}`")),
            "{}",
            archive.stdout
        );
        assert_eq!(
            mock_attribute(&mock, old).unwrap()["archived"],
            true,
            "{old}"
        );
        assert_eq!(
            mock_attribute(&mock, &format!("{old} - date")).unwrap()["archived"],
            false
        );
    }
    let before = writes(&mock);
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--dates", "timestamp"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(writes(&mock), before, "nothing left to send");

    // Back to strings: the archived string attribute cannot be written; nothing is sent.
    let (code, _, stderr) = run_json(&db, &input, &mock, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`Vitally Last Login At` is archived in Intercom")
            && stderr.contains("unarchive"),
        "{stderr}"
    );
    assert_eq!(writes(&mock), before);
}

/// One request to the mock's API, as Intercom's clients send it: (status, body).
fn put_company(mock: &MockServer, id: &str, body: &Value) -> (u16, Value) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut stream = std::net::TcpStream::connect(mock.addr()).unwrap();
    write!(
        stream,
        "PUT /companies/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nIntercom-Version: 2.16\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        mock_harness::TOKEN,
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn the_mock_refuses_a_string_in_a_date_attribute_and_an_integer_in_a_string_attribute() {
    let mock = mock(MockConfig::default());
    let attribute = |name: &str, data_type: &str| SeedAttribute {
        name: name.into(),
        model: "company".into(),
        data_type: data_type.into(),
        archived: false,
    };
    let ids = mock
        .seed(Seed {
            companies: vec![SeedCompany {
                company_id: "a".into(),
                ..SeedCompany::default()
            }],
            contacts: vec![],
            data_attributes: vec![attribute("Renewal", "date"), attribute("Plan", "string")],
        })
        .unwrap();
    let id = &ids.companies[0];
    let refused = [
        (
            json!({"Renewal": "2027-03-01"}),
            "Custom attribute 'Renewal' must be of type date",
        ),
        (
            json!({"Renewal": -86_400}),
            "Custom attribute 'Renewal' must be of type date",
        ),
        (
            json!({"Plan": 12}),
            "Custom attribute 'Plan' must be of type string",
        ),
        (
            json!({"Plan": "pro", "Renewal": "soon"}),
            "Custom attribute 'Renewal' must be of type date",
        ),
    ];
    for (attributes, message) in refused {
        let (status, answer) = put_company(&mock, id, &json!({"custom_attributes": attributes}));
        assert_eq!(status, 400, "{attributes} → {answer}");
        assert_eq!(answer["errors"][0]["code"], "parameter_invalid", "{answer}");
        assert_eq!(answer["errors"][0]["message"], message, "{answer}");
    }
    assert_eq!(
        held(&mock, "a"),
        serde_json::Map::new(),
        "a refused PUT changes nothing"
    );
    let accepted = json!({"Renewal": MARCH_1, "Plan": "pro"});
    let (status, answer) = put_company(&mock, id, &json!({"custom_attributes": accepted}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(Value::Object(held(&mock, "a")), accepted);
}

#[test]
fn a_string_attribute_holding_the_date_attributes_name_stops_the_run_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    dated_export(&input);
    let mock = mock(MockConfig::default());
    seed_companies(
        &mock,
        vec![SeedAttribute {
            name: "Vitally Renewal Date - date".into(),
            model: "company".into(),
            data_type: "string".into(),
            archived: false,
        }],
    );
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--dates", "timestamp"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`Vitally Renewal Date - date` exists in Intercom as string but this export makes it date"),
        "{stderr}"
    );
    assert_eq!(writes(&mock), 0);
}

#[test]
fn dates_string_is_the_default_and_moves_no_payload_and_no_hash() {
    let ws = Workspace::new();
    let input = manifest_dir().join("fixtures/export");
    ws.run(&["load", "--input", input.to_str().unwrap()]).ok();
    ws.transform(&[]).ok();
    let default = ws.hashes();
    let golden =
        std::fs::read_to_string(manifest_dir().join("fixtures/export.plan.ndjson")).unwrap();
    assert_eq!(ws.run(&["plan", "--json"]).ok().stdout, golden);

    ws.transform(&["--dates", "timestamp"]).ok();
    let timestamp = ws.hashes();
    let plan = ws.plan_all();
    assert!(
        plan.iter()
            .any(|l| l["custom_attributes"]["Vitally Next Renewal Date - date"].is_i64()),
        "the fixtures have a date column"
    );
    assert!(
        default.iter().all(|(key, hash)| timestamp[key] != *hash),
        "the setting is part of every hash"
    );

    ws.transform(&["--dates", "string"]).ok();
    assert_eq!(ws.hashes(), default);
    assert_eq!(ws.run(&["plan", "--json"]).ok().stdout, golden);
}

#[test]
fn a_database_from_before_date_kinds_is_upgraded_in_place_and_loads_dates() {
    let ws = Workspace::new();
    dated_export(&ws.export());
    ws.run(&["load", "--input", ws.export().to_str().unwrap()])
        .ok();
    ws.transform(&[]).ok();
    let plan = ws.plan_all();
    common::db::restore_account_fields_without_date_kind(&ws.db());

    // The loaded extract is still there after the upgrade...
    ws.transform(&["--prefix", "Acme"]).ok();
    ws.transform(&[]).ok();
    assert_eq!(ws.plan_all(), plan);
    // ...and the same export, loaded by an older build, is loaded again with date kinds.
    let load = ws.load();
    load.ok();
    assert!(
        load.stdout.starts_with("loaded export #2"),
        "{}",
        load.stdout
    );
    ws.transform(&["--dates", "timestamp"]).ok();
    let plan = ws.plan_all();
    assert_eq!(
        plan[0]["custom_attributes"]["Vitally Renewal Date - date"],
        MARCH_1
    );
}
