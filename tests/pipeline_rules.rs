//! One test per rule of the input contract and the transform (issue 3), each on a small
//! export written by the test and run through the real binary: `load` → `transform` →
//! `plan --json --all`.

mod common;

use std::collections::BTreeMap;

use common::{db, lines, Pipeline, Workspace};
use serde_json::{json, Value};

/// A workspace whose export holds `files` (name → contents).
fn export(files: &[(&str, &str)]) -> Workspace {
    let ws = Workspace::new();
    for (name, contents) in files {
        ws.write(name, contents);
    }
    ws
}

/// `export(files)` through load + transform `args` + plan.
fn run(files: &[(&str, &str)], args: &[&str]) -> Pipeline {
    export(files).pipeline(args)
}

fn accounts(rows: &[&str]) -> (&'static str, String) {
    ("accounts.csv", lines(rows))
}

/// Runs a single accounts.csv through the pipeline.
fn run_accounts(rows: &[&str]) -> Pipeline {
    let (name, text) = accounts(rows);
    run(&[(name, &text)], &[])
}

// ── attribute names ──────────────────────────────────────────────────────────────────────

#[test]
fn field_names_are_prefixed_start_case() {
    let p = run_accounts(&[
        "externalId,healthScore,Café Usage,NPS (last 90d),traits.plan,next_renewal_date,ARRValue",
        "acme,1,high,2,Gold,2027-01-01,5",
    ]);
    let names: Vec<&str> = p.attrs("acme").keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "Vitally ARR Value",
            "Vitally Active Opportunity Indicators",
            "Vitally Active Risk Indicators",
            "Vitally Cafe Usage",
            "Vitally Health Score",
            "Vitally NPS Last 90 D",
            "Vitally Next Renewal Date",
            "Vitally Plan",
            "Vitally Segments",
        ]
    );
}

#[test]
fn identifiers_are_not_pushed_and_mrr_is_a_field() {
    let p = run(
        &[
            (
                "accounts.csv",
                &lines(&[
                    "id,external_id,account_owner_id,mrr,name",
                    "a1,acme,u1,12.5,Acme",
                ]),
            ),
            ("users.csv", &lines(&["id,email", "u1,x@example.com"])),
        ],
        &[],
    );
    let company = p.company("acme");
    assert_eq!(company["monthly_spend"], json!(13));
    let attrs = p.attrs("acme");
    assert_eq!(attrs["Vitally Mrr"], json!(12.5));
    assert_eq!(attrs["Vitally Name"], json!("Acme"));
    for not_pushed in [
        "Vitally Id",
        "Vitally External Id",
        "Vitally Account Owner Id",
    ] {
        assert!(!attrs.contains_key(not_pushed), "{not_pushed} pushed");
    }
}

#[test]
fn prefix_flag_renames_every_attribute() {
    let ws = export(&[
        (
            "accounts.csv",
            &lines(&["id,externalId,accountOwnerId,plan", "a1,acme,u1,Gold"]),
        ),
        ("users.csv", &lines(&["id,externalId", "u1,user-1"])),
        ("elements.csv", &lines(&["id,name", "e1,Widgets"])),
    ]);
    let p = ws.pipeline(&["--prefix", "Acme CS"]);
    let names: Vec<&str> = p.attrs("acme").keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "Acme CS Active Opportunity Indicators",
            "Acme CS Active Risk Indicators",
            "Acme CS Plan",
            "Acme CS Segments",
            "Acme CS Widgets",
        ]
    );
    assert_eq!(
        p.user(Some("user-1"), None)["custom_attributes"],
        json!({"Acme CS Account Owner": true})
    );
    // A blank prefix is bad configuration.
    let bad = ws.transform(&["--prefix", " "]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("--prefix"), "{}", bad.stderr);
}

#[test]
fn field_whose_start_case_is_empty_is_skipped_with_a_warning() {
    let p = run_accounts(&["externalId,\"& \",---,plan", "acme,1,2,Gold"]);
    let attrs = p.attrs("acme");
    assert_eq!(attrs["Vitally Plan"], json!("Gold"));
    assert_eq!(
        attrs.len(),
        4,
        "only plan and the three label attributes: {attrs:?}"
    );
    assert!(p.warned(&["field `& `", "skipped"]), "{:?}", p.warnings);
    assert!(p.warned(&["field `---`", "skipped"]), "{:?}", p.warnings);
}

// ── collisions ───────────────────────────────────────────────────────────────────────────

#[test]
fn two_fields_with_one_attribute_name_are_an_error_naming_both() {
    let ws = export(&[(
        "accounts.csv",
        &lines(&["externalId,healthScore,health_score", "acme,1,2"]),
    )]);
    ws.load().ok();
    let run = ws.transform(&[]);
    run.expect_code(2);
    for part in [
        "`Vitally Health Score`",
        "field `healthScore`",
        "field `health_score`",
        "--exclude healthScore",
        "--exclude health_score",
    ] {
        assert!(run.stderr.contains(part), "{part:?} in {}", run.stderr);
    }
    // The suggested fix works.
    ws.transform(&["--exclude", "health_score"]).ok();
    let p = Pipeline {
        plan: ws.plan_all(),
        warnings: vec![],
    };
    assert_eq!(p.attr("acme", "Vitally Health Score"), Some(&json!(1)));
}

#[test]
fn element_named_like_a_field_is_an_error_naming_both() {
    let ws = export(&[
        ("accounts.csv", &lines(&["externalId,type", "acme,trial"])),
        ("elements.csv", &lines(&["id,name", "e1,Type"])),
    ]);
    ws.load().ok();
    let run = ws.transform(&[]);
    run.expect_code(2);
    for part in [
        "`Vitally Type`",
        "field `type`",
        "element `Type`",
        "--exclude type",
        "--exclude element:Type",
    ] {
        assert!(run.stderr.contains(part), "{part:?} in {}", run.stderr);
    }
    ws.transform(&["--exclude", "element:Type"]).ok();
    let plan = ws.plan_all();
    assert_eq!(plan[0]["custom_attributes"]["Vitally Type"], json!("trial"));
}

#[test]
fn field_named_like_a_built_in_attribute_is_an_error() {
    let ws = export(&[("accounts.csv", &lines(&["externalId,segments", "acme,a;b"]))]);
    ws.load().ok();
    let run = ws.transform(&[]);
    run.expect_code(2);
    assert!(run.stderr.contains("`Vitally Segments`"), "{}", run.stderr);
    assert!(run.stderr.contains("--exclude segments"), "{}", run.stderr);
}

// ── CSV typing, per column ───────────────────────────────────────────────────────────────

#[test]
fn csv_strings_that_are_not_json_numbers_keep_the_column_a_string() {
    let p = run_accounts(&[
        "externalId,zip,plus,nan,inf,hex,dot",
        "a,02134,+5,NaN,inf,0x10,.5",
        "b,10001,5,1,1,16,1",
    ]);
    for (name, a, b) in [
        ("Zip", "02134", "10001"),
        ("Plus", "+5", "5"),
        ("Nan", "NaN", "1"),
        ("Inf", "inf", "1"),
        ("Hex", "0x10", "16"),
        ("Dot", ".5", "1"),
    ] {
        let attr = format!("Vitally {name}");
        assert_eq!(p.attr("a", &attr), Some(&json!(a)), "{attr}");
        assert_eq!(
            p.attr("b", &attr),
            Some(&json!(b)),
            "{attr}: the whole column is string"
        );
    }
}

#[test]
fn csv_integer_column() {
    let p = run_accounts(&["externalId,seats", "a,5", "b,-3", "c,0", "d,"]);
    assert_eq!(p.attr("a", "Vitally Seats"), Some(&json!(5)));
    assert_eq!(p.attr("b", "Vitally Seats"), Some(&json!(-3)));
    assert_eq!(p.attr("c", "Vitally Seats"), Some(&json!(0)));
    assert_eq!(
        p.attr("d", "Vitally Seats"),
        None,
        "an empty cell is absent"
    );
    assert!(p.company("a")["custom_attributes"]["Vitally Seats"].is_i64());
}

#[test]
fn csv_integers_mixed_with_decimals_make_a_float_column() {
    let p = run_accounts(&["externalId,score", "a,6", "b,4.5", "c,1e3", "d,-2E-1"]);
    let raw = |id: &str| serde_json::to_string(p.attr(id, "Vitally Score").unwrap()).unwrap();
    assert_eq!(
        raw("a"),
        "6.0",
        "an integer in a float column is sent as a float"
    );
    assert_eq!(raw("b"), "4.5");
    assert_eq!(raw("c"), "1000.0");
    assert_eq!(raw("d"), "-0.2");
}

#[test]
fn csv_exponent_alone_is_a_float_column() {
    let p = run_accounts(&["externalId,n", "a,1e3", "b,2"]);
    assert_eq!(p.attr("a", "Vitally N"), Some(&json!(1000.0)));
    assert!(p.attr("b", "Vitally N").unwrap().is_f64());
}

#[test]
fn csv_huge_integers_are_floats() {
    let p = run_accounts(&[
        "externalId,big,max",
        "a,99999999999999999999,9223372036854775807",
        "b,1,1",
    ]);
    assert_eq!(p.attr("a", "Vitally Big"), Some(&json!(1e20)));
    assert!(
        p.attr("b", "Vitally Big").unwrap().is_f64(),
        "whole column float"
    );
    // i64::MAX still fits: an integer column.
    assert_eq!(p.attr("a", "Vitally Max"), Some(&json!(i64::MAX)));
    assert_eq!(p.attr("b", "Vitally Max"), Some(&json!(1)));
}

#[test]
fn csv_booleans_in_any_case() {
    let p = run_accounts(&[
        "externalId,flag,notflag",
        "a,TRUE,true",
        "b,false,yes",
        "c,True,false",
        "d,FALSE,",
    ]);
    assert_eq!(p.attr("a", "Vitally Flag"), Some(&json!(true)));
    assert_eq!(p.attr("b", "Vitally Flag"), Some(&json!(false)));
    assert_eq!(p.attr("c", "Vitally Flag"), Some(&json!(true)));
    assert_eq!(p.attr("d", "Vitally Flag"), Some(&json!(false)));
    // One non-boolean makes the column string, values as written.
    assert_eq!(p.attr("a", "Vitally Notflag"), Some(&json!("true")));
    assert_eq!(p.attr("b", "Vitally Notflag"), Some(&json!("yes")));
    assert_eq!(p.attr("d", "Vitally Notflag"), None);
}

#[test]
fn csv_numbers_mixed_with_booleans_are_strings() {
    let p = run_accounts(&["externalId,x", "a,1", "b,true", "c,2.5"]);
    assert_eq!(p.attr("a", "Vitally X"), Some(&json!("1")));
    assert_eq!(p.attr("b", "Vitally X"), Some(&json!("true")));
    assert_eq!(p.attr("c", "Vitally X"), Some(&json!("2.5")));
}

#[test]
fn empty_cells_and_json_nulls_are_absent() {
    let p = run_accounts(&["externalId,a,b", "x,,1", "y,,"]);
    assert_eq!(
        p.attr("x", "Vitally A"),
        None,
        "an always-empty column is not sent"
    );
    assert_eq!(p.attr("x", "Vitally B"), Some(&json!(1)));
    assert_eq!(p.attr("y", "Vitally B"), None);
    let p = run(
        &[(
            "accounts.ndjson",
            "{\"externalId\":\"x\",\"a\":null,\"b\":1}\n{\"externalId\":\"y\",\"b\":null}\n",
        )],
        &[],
    );
    assert_eq!(p.attr("x", "Vitally A"), None);
    assert_eq!(p.attr("y", "Vitally B"), None);
    assert_eq!(p.attr("x", "Vitally B"), Some(&json!(1)));
}

#[test]
fn crlf_and_bom_are_tolerated() {
    let p = run(
        &[
            (
                "accounts.csv",
                "\u{feff}externalId,plan\r\nacme,Gold\r\nglobex,\"Two\r\nlines\"\r\n",
            ),
            ("segments.csv", "\u{feff}account_id,name\r\nacme,VIP\r\n"),
        ],
        &[],
    );
    assert_eq!(p.attr("acme", "Vitally Plan"), Some(&json!("Gold")));
    assert_eq!(
        p.attr("globex", "Vitally Plan"),
        Some(&json!("Two\r\nlines"))
    );
    assert_eq!(p.attr("acme", "Vitally Segments"), Some(&json!("VIP")));
}

// ── JSON typing ──────────────────────────────────────────────────────────────────────────

fn run_ndjson(rows: &[Value]) -> Pipeline {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    run(&[("accounts.ndjson", &text)], &[])
}

#[test]
fn json_values_keep_their_json_type() {
    let p = run_ndjson(&[
        json!({"externalId": "a", "n": 1, "s": "02134", "b": true, "f": 1.5}),
        json!({"externalId": "b", "n": 2, "s": "x", "b": false, "f": 2.25}),
    ]);
    assert_eq!(p.attr("a", "Vitally N"), Some(&json!(1)));
    assert_eq!(p.attr("a", "Vitally S"), Some(&json!("02134")));
    assert_eq!(p.attr("a", "Vitally B"), Some(&json!(true)));
    assert_eq!(p.attr("b", "Vitally F"), Some(&json!(2.25)));
    // A JSON string that looks like a number stays a string.
    let p = run_ndjson(&[json!({"externalId": "a", "s": "12"})]);
    assert_eq!(p.attr("a", "Vitally S"), Some(&json!("12")));
}

#[test]
fn json_integers_mixed_with_floats_are_floats() {
    let p = run_ndjson(&[
        json!({"externalId": "a", "x": 3}),
        json!({"externalId": "b", "x": 0.5}),
    ]);
    let raw = serde_json::to_string(p.attr("a", "Vitally X").unwrap()).unwrap();
    assert_eq!(raw, "3.0");
    assert_eq!(p.attr("b", "Vitally X"), Some(&json!(0.5)));
}

#[test]
fn json_mixed_types_become_strings_with_the_json_text() {
    let p = run_ndjson(&[
        json!({"externalId": "a", "x": 17}),
        json!({"externalId": "b", "x": "X-17"}),
        json!({"externalId": "c", "x": true}),
        json!({"externalId": "d", "x": 2.5}),
        json!({"externalId": "e", "x": null}),
    ]);
    assert_eq!(p.attr("a", "Vitally X"), Some(&json!("17")));
    assert_eq!(p.attr("b", "Vitally X"), Some(&json!("X-17")));
    assert_eq!(p.attr("c", "Vitally X"), Some(&json!("true")));
    assert_eq!(p.attr("d", "Vitally X"), Some(&json!("2.5")));
    assert_eq!(p.attr("e", "Vitally X"), None);
}

#[test]
fn traits_and_nested_objects_flatten_with_dots() {
    let p = run_ndjson(&[json!({
        "externalId": "a",
        "traits": {"plan": "pro", "billing": {"interval": "monthly", "card": {"brand": "visa"}}},
        "usage": {"seats": 3}
    })]);
    assert_eq!(p.attr("a", "Vitally Plan"), Some(&json!("pro")));
    assert_eq!(
        p.attr("a", "Vitally Billing Interval"),
        Some(&json!("monthly"))
    );
    assert_eq!(
        p.attr("a", "Vitally Billing Card Brand"),
        Some(&json!("visa"))
    );
    assert_eq!(p.attr("a", "Vitally Usage Seats"), Some(&json!(3)));
}

#[test]
fn arrays_of_scalars_are_joined_in_order() {
    let p = run_ndjson(&[json!({
        "externalId": "a",
        "traits": {"tags": ["west", "vip", 3, true]}
    })]);
    assert_eq!(
        p.attr("a", "Vitally Tags"),
        Some(&json!("west, vip, 3, true"))
    );
}

#[test]
fn arrays_of_objects_are_skipped_with_one_warning() {
    let p = run_ndjson(&[
        json!({"externalId": "a", "keyRoles": [{"role": "admin"}], "plan": "x"}),
        json!({"externalId": "b", "keyRoles": [{"role": "champion"}]}),
    ]);
    assert_eq!(p.attr("a", "Vitally Key Roles"), None);
    assert_eq!(p.attr("a", "Vitally Plan"), Some(&json!("x")));
    let about: Vec<&String> = p
        .warnings
        .iter()
        .filter(|w| w.contains("keyRoles"))
        .collect();
    assert_eq!(about.len(), 1, "{:?}", p.warnings);
    assert!(about[0].contains("array of objects"), "{about:?}");
}

#[test]
fn same_field_given_twice_in_one_account_is_an_error() {
    let ws = export(&[(
        "accounts.ndjson",
        "{\"externalId\":\"a\",\"plan\":\"x\",\"traits\":{\"plan\":\"y\"}}\n",
    )]);
    let run = ws.load();
    run.expect_code(2);
    assert!(run.stderr.contains("accounts.ndjson:1:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("`plan` is given twice"),
        "{}",
        run.stderr
    );
}

// ── monthly_spend ────────────────────────────────────────────────────────────────────────

#[test]
fn monthly_spend_rounds_half_away_from_zero() {
    let p = run_accounts(&[
        "externalId,mrr",
        "a,0.5",
        "b,1.5",
        "c,2.5",
        "d,2.4999",
        "e,1e3",
        "f,-0.4",
        "g,100",
    ]);
    for (id, spend) in [
        ("a", 1),
        ("b", 2),
        ("c", 3),
        ("d", 2),
        ("e", 1000),
        ("f", 0),
        ("g", 100),
    ] {
        assert_eq!(p.company(id)["monthly_spend"], json!(spend), "{id}");
    }
    assert!(
        p.warnings.is_empty(),
        "-0.4 rounds to 0: nothing clamped: {:?}",
        p.warnings
    );
}

#[test]
fn monthly_spend_is_clamped_with_a_warning() {
    let p = run_accounts(&[
        "externalId,mrr",
        "neg,-0.5",
        "low,-10",
        "max,2147483647",
        "high,2147483647.5",
        "huge,1e300",
    ]);
    assert_eq!(p.company("neg")["monthly_spend"], json!(0));
    assert_eq!(p.company("low")["monthly_spend"], json!(0));
    assert_eq!(p.company("max")["monthly_spend"], json!(2147483647));
    assert_eq!(p.company("high")["monthly_spend"], json!(2147483647));
    assert_eq!(p.company("huge")["monthly_spend"], json!(2147483647));
    assert!(
        p.warned(&[
            "4 accounts",
            "monthly_spend range [0, 2147483647]",
            "clamped"
        ]),
        "{:?}",
        p.warnings
    );
}

#[test]
fn monthly_spend_is_absent_when_mrr_is_empty_or_missing() {
    let p = run_accounts(&["externalId,mrr", "a,", "b,7"]);
    assert!(p.company("a").get("monthly_spend").is_none());
    assert_eq!(p.attr("a", "Vitally Mrr"), None);
    assert_eq!(p.company("b")["monthly_spend"], json!(7));
    let p = run_accounts(&["externalId,plan", "a,x"]);
    assert!(p.company("a").get("monthly_spend").is_none());
    let p = run_ndjson(&[json!({"externalId": "a", "mrr": null})]);
    assert!(p.company("a").get("monthly_spend").is_none());
}

#[test]
fn no_monthly_spend_flag_leaves_it_out() {
    let ws = export(&[("accounts.csv", &lines(&["externalId,mrr", "a,5", "b,9.5"]))]);
    let p = ws.pipeline(&["--no-monthly-spend"]);
    for id in ["a", "b"] {
        assert!(p.company(id).get("monthly_spend").is_none(), "{id}");
    }
    assert_eq!(
        p.attr("b", "Vitally Mrr"),
        Some(&json!(9.5)),
        "Mrr is still a field"
    );
}

// ── --exclude ────────────────────────────────────────────────────────────────────────────

fn exclude_fixture() -> Workspace {
    export(&[
        (
            "accounts.csv",
            &lines(&[
                "id,externalId,healthScore,traits.plan,mrr",
                "a1,acme,5,Gold,10",
            ]),
        ),
        (
            "elements.csv",
            &lines(&["id,name", "e1,Widgets", "e2,Gadgets"]),
        ),
        (
            "success_metrics.csv",
            &lines(&["id,name", "m1,NPS", "m2,Tier"]),
        ),
        (
            "metric_values.csv",
            &lines(&["account_id,metric_id,value", "a1,m1,9", "a1,m2,gold"]),
        ),
    ])
}

#[test]
fn exclude_leaves_out_fields_elements_and_metrics() {
    let ws = exclude_fixture();
    let all = ws.pipeline(&[]);
    for name in [
        "Vitally Health Score",
        "Vitally Plan",
        "Vitally Widgets",
        "Vitally Gadgets",
        "Vitally NPS",
        "Vitally Tier",
    ] {
        assert!(all.attr("acme", name).is_some(), "{name} without excludes");
    }
    let p = ws.pipeline(&[
        "--exclude",
        "healthScore",
        "--exclude",
        "field:plan",
        "--exclude",
        "element:Widgets",
        "--exclude",
        "metric:Tier",
    ]);
    let names: Vec<&str> = p.attrs("acme").keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "Vitally Active Opportunity Indicators",
            "Vitally Active Risk Indicators",
            "Vitally Gadgets",
            "Vitally Mrr",
            "Vitally NPS",
            "Vitally Segments",
        ]
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // `traits.plan` names the same field as `plan`.
    let p = ws.pipeline(&["--exclude", "traits.plan"]);
    assert!(p.attr("acme", "Vitally Plan").is_none());
}

#[test]
fn exclude_that_matches_nothing_warns() {
    let ws = exclude_fixture();
    let p = ws.pipeline(&["--exclude", "helthScore", "--exclude", "element:Nope"]);
    assert!(
        p.warned(&["--exclude helthScore matches no"]),
        "{:?}",
        p.warnings
    );
    assert!(
        p.warned(&["--exclude element:Nope matches no"]),
        "{:?}",
        p.warnings
    );
    assert!(p.attr("acme", "Vitally Health Score").is_some());
}

#[test]
fn excluding_mrr_keeps_monthly_spend() {
    let ws = exclude_fixture();
    let p = ws.pipeline(&["--exclude", "mrr"]);
    assert!(p.attr("acme", "Vitally Mrr").is_none());
    assert_eq!(p.company("acme")["monthly_spend"], json!(10));
}

// ── elements and metrics ─────────────────────────────────────────────────────────────────

#[test]
fn every_element_is_on_every_company_with_zero_by_default() {
    let p = run(
        &[
            (
                "accounts.csv",
                &lines(&["id,externalId", "a1,acme", "a2,globex"]),
            ),
            (
                "elements.csv",
                &lines(&["id,name", "e1,  Slack   Integration ", "e2,api keys"]),
            ),
            (
                "element_counts.csv",
                &lines(&["account_id,element_id,count", "a1,e1,4", "a1,e2,0"]),
            ),
        ],
        &[],
    );
    // Names as written (whitespace collapsed), not start-cased.
    assert_eq!(p.attr("acme", "Vitally Slack Integration"), Some(&json!(4)));
    assert_eq!(p.attr("acme", "Vitally api keys"), Some(&json!(0)));
    assert_eq!(
        p.attr("globex", "Vitally Slack Integration"),
        Some(&json!(0))
    );
    assert_eq!(p.attr("globex", "Vitally api keys"), Some(&json!(0)));
}

#[test]
fn element_counts_without_an_elements_table_name_the_element() {
    let p = run(
        &[
            ("accounts.csv", &lines(&["externalId", "acme", "globex"])),
            (
                "element_counts.csv",
                &lines(&["account_id,element_id,count", "acme,Dash   boards,2"]),
            ),
        ],
        &[],
    );
    assert_eq!(p.attr("acme", "Vitally Dash boards"), Some(&json!(2)));
    assert_eq!(p.attr("globex", "Vitally Dash boards"), Some(&json!(0)));
}

#[test]
fn success_metrics_are_typed_per_metric_and_absent_when_missing() {
    let p = run(
        &[
            (
                "accounts.csv",
                &lines(&["id,externalId", "a1,acme", "a2,globex", "a3,initech"]),
            ),
            (
                "success_metrics.csv",
                &lines(&[
                    "id,name",
                    "m1,Weekly  Users",
                    "m2,Adoption",
                    "m3,Tier",
                    "m4,zip",
                ]),
            ),
            (
                "metric_values.csv",
                &lines(&[
                    "account_id,metric_id,value",
                    "a1,m1,3",
                    "a2,m1,40",
                    "a1,m2,1",
                    "a2,m2,0.5",
                    "a1,m3,3",
                    "a2,m3,gold",
                    "a1,m4,02134",
                    "a3,m1,",
                ]),
            ),
        ],
        &[],
    );
    assert_eq!(p.attr("acme", "Vitally Weekly Users"), Some(&json!(3)));
    assert!(p.attr("acme", "Vitally Weekly Users").unwrap().is_i64());
    assert_eq!(
        serde_json::to_string(p.attr("acme", "Vitally Adoption").unwrap()).unwrap(),
        "1.0"
    );
    assert_eq!(p.attr("globex", "Vitally Adoption"), Some(&json!(0.5)));
    assert_eq!(p.attr("acme", "Vitally Tier"), Some(&json!("3")));
    assert_eq!(p.attr("globex", "Vitally Tier"), Some(&json!("gold")));
    assert_eq!(p.attr("acme", "Vitally zip"), Some(&json!("02134")));
    assert_eq!(
        p.attr("globex", "Vitally zip"),
        None,
        "absent when the account has none"
    );
    for metric in ["Weekly Users", "Adoption", "Tier", "zip"] {
        assert_eq!(
            p.attr("initech", &format!("Vitally {metric}")),
            None,
            "{metric}"
        );
    }
}

#[test]
fn vitally_embedded_counts_and_metrics_resolve_by_id_and_by_name() {
    let p = run(
        &[
            (
                "accounts.ndjson",
                &format!(
                    "{}\n{}\n",
                    json!({"id": "v1", "externalId": "a",
                        "currentElementCounts": {"el_1": 2, "API Keys": 5},
                        "currentSuccessMetricValues": {"sm_1": 7, "Adoption Rate": 0.5}}),
                    json!({"id": "v2", "externalId": "b",
                        "currentElementCounts": {},
                        "currentSuccessMetricValues": {"sm_1": 1}}),
                ),
            ),
            (
                "elements.json",
                &json!([{"id": "el_1", "name": "Slack"}, {"id": "el_2", "name": "API Keys"}])
                    .to_string(),
            ),
            (
                "success_metrics.json",
                &json!([{"id": "sm_1", "name": "WAU"}, {"id": "sm_2", "name": "Adoption Rate"}])
                    .to_string(),
            ),
        ],
        &[],
    );
    assert_eq!(p.attr("a", "Vitally Slack"), Some(&json!(2)));
    assert_eq!(p.attr("a", "Vitally API Keys"), Some(&json!(5)));
    assert_eq!(p.attr("b", "Vitally Slack"), Some(&json!(0)));
    assert_eq!(p.attr("b", "Vitally API Keys"), Some(&json!(0)));
    assert_eq!(p.attr("a", "Vitally WAU"), Some(&json!(7)));
    assert_eq!(p.attr("a", "Vitally Adoption Rate"), Some(&json!(0.5)));
    assert_eq!(p.attr("b", "Vitally Adoption Rate"), None);
    assert!(p.attr("a", "Vitally El 1").is_none() && p.attr("a", "Vitally el_1").is_none());
}

// ── indicators and segments ──────────────────────────────────────────────────────────────

#[test]
fn indicators_and_segments_are_sorted_case_insensitively_and_deduplicated() {
    let p = run(
        &[
            ("accounts.csv", &lines(&["externalId", "acme", "globex"])),
            (
                "indicators.csv",
                &lines(&[
                    "account_id,kind,name",
                    "acme,risk,low NPS",
                    "acme,risk,Champion left",
                    "acme,Risk,low NPS",
                    "acme,RISK,Églantine",
                    "acme,risk,zebra",
                    "acme,opportunity,Upsell",
                    "acme,opportunity,  upsell  ",
                ]),
            ),
            (
                "segments.csv",
                &lines(&[
                    "account_id,name",
                    "acme,beta",
                    "acme,Beta",
                    "acme,Alpha",
                    "acme,alpha",
                    "acme,Beta",
                ]),
            ),
        ],
        &[],
    );
    // Unicode lowercase order: "églantine" sorts after "zebra" (by bytes of the lowercase).
    assert_eq!(
        p.attr("acme", "Vitally Active Risk Indicators"),
        Some(&json!("Champion left, low NPS, zebra, Églantine"))
    );
    // Ties by bytes: "Upsell" < "upsell"; the trimmed duplicate is not an exact one.
    assert_eq!(
        p.attr("acme", "Vitally Active Opportunity Indicators"),
        Some(&json!("Upsell, upsell"))
    );
    assert_eq!(
        p.attr("acme", "Vitally Segments"),
        Some(&json!("Alpha, alpha, Beta, beta"))
    );
    for attr in [
        "Vitally Active Risk Indicators",
        "Vitally Active Opportunity Indicators",
        "Vitally Segments",
    ] {
        assert_eq!(
            p.attr("globex", attr),
            Some(&json!("")),
            "{attr} always present"
        );
    }
}

#[test]
fn vitally_embedded_indicators_and_segments_merge_with_tables() {
    let p = run(
        &[
            (
                "accounts.ndjson",
                &format!(
                    "{}\n{}\n",
                    json!({"id": "v1", "externalId": "a",
                        "segments": [{"id": "s1", "name": "Enterprise"}, "beta"],
                        "activeRiskIndicators": {"Churn Risk": "2026-01-01", "Quiet": "2026-02-01"},
                        "activeOpportunityIndicators": ["Upsell"]}),
                    json!({"id": "v2", "externalId": "b",
                        "segments": [], "activeRiskIndicators": {},
                        "activeOpportunityIndicators": null}),
                ),
            ),
            (
                "segments.csv",
                &lines(&["account_id,name", "v1,Enterprise", "v1,Zeta", "v2,Solo"]),
            ),
            (
                "indicators.csv",
                &lines(&[
                    "account_id,kind,name",
                    "v1,risk,Another",
                    "v2,opportunity,Grow",
                ]),
            ),
        ],
        &[],
    );
    assert_eq!(
        p.attr("a", "Vitally Segments"),
        Some(&json!("beta, Enterprise, Zeta"))
    );
    assert_eq!(
        p.attr("a", "Vitally Active Risk Indicators"),
        Some(&json!("Another, Churn Risk, Quiet"))
    );
    assert_eq!(
        p.attr("a", "Vitally Active Opportunity Indicators"),
        Some(&json!("Upsell"))
    );
    assert_eq!(p.attr("b", "Vitally Segments"), Some(&json!("Solo")));
    assert_eq!(
        p.attr("b", "Vitally Active Risk Indicators"),
        Some(&json!(""))
    );
    assert_eq!(
        p.attr("b", "Vitally Active Opportunity Indicators"),
        Some(&json!("Grow"))
    );
}

// ── references between tables ────────────────────────────────────────────────────────────

#[test]
fn child_rows_of_unknown_accounts_are_skipped_and_counted() {
    let p = run(
        &[
            ("accounts.csv", &lines(&["externalId", "acme"])),
            ("elements.csv", &lines(&["id,name", "e1,Widgets"])),
            (
                "element_counts.csv",
                &lines(&[
                    "account_id,element_id,count",
                    "acme,e1,1",
                    "ghost,e1,2",
                    "zzz,e1,3",
                ]),
            ),
            (
                "segments.csv",
                &lines(&["account_id,name", "ghost,VIP", "acme,Core"]),
            ),
            (
                "indicators.csv",
                &lines(&["account_id,kind,name", "ghost,risk,Churn"]),
            ),
            (
                "metric_values.csv",
                &lines(&["account_id,metric_id,value", "ghost,NPS,1", "acme,NPS,2"]),
            ),
        ],
        &[],
    );
    assert_eq!(p.companies().len(), 1);
    assert_eq!(p.attr("acme", "Vitally Widgets"), Some(&json!(1)));
    assert_eq!(p.attr("acme", "Vitally Segments"), Some(&json!("Core")));
    assert_eq!(p.attr("acme", "Vitally NPS"), Some(&json!(2)));
    let mut expected = vec![
        "element_counts.csv: rows whose account is not in the accounts file: 2 skipped",
        "indicators.csv: rows whose account is not in the accounts file: 1 skipped",
        "metric_values.csv: rows whose account is not in the accounts file: 1 skipped",
        "segments.csv: rows whose account is not in the accounts file: 1 skipped",
    ];
    expected.sort();
    assert_eq!(p.warnings, expected);
}

#[test]
fn counts_of_unknown_elements_are_skipped_when_there_is_an_elements_table() {
    let p = run(
        &[
            ("accounts.csv", &lines(&["externalId", "acme"])),
            ("elements.csv", &lines(&["id,name", "e1,Widgets"])),
            (
                "element_counts.csv",
                &lines(&["account_id,element_id,count", "acme,e9,1", "acme,Widgets,4"]),
            ),
        ],
        &[],
    );
    assert_eq!(
        p.attr("acme", "Vitally Widgets"),
        Some(&json!(4)),
        "by name"
    );
    assert_eq!(p.attrs("acme").len(), 4, "{:?}", p.attrs("acme"));
    assert!(
        p.warned(&["element counts whose element is not in the elements file: 1 skipped"]),
        "{:?}",
        p.warnings
    );
}

#[test]
fn accounts_with_an_id_are_referenced_by_id() {
    let p = run(
        &[
            ("accounts.csv", &lines(&["id,externalId", "A1,acme"])),
            (
                "segments.csv",
                &lines(&["account_id,name", "A1,by id", "acme,by external id"]),
            ),
        ],
        &[],
    );
    assert_eq!(p.attr("acme", "Vitally Segments"), Some(&json!("by id")));
    assert!(p.warned(&["segments.csv", "1 skipped"]), "{:?}", p.warnings);
}

#[test]
fn accounts_without_an_id_are_referenced_by_external_id() {
    let p = run(
        &[
            ("accounts.csv", &lines(&["externalId,name", "acme,Acme"])),
            (
                "segments.csv",
                &lines(&["account_id,name", "A1,by id", "acme,by external id"]),
            ),
        ],
        &[],
    );
    assert_eq!(
        p.attr("acme", "Vitally Segments"),
        Some(&json!("by external id"))
    );
    assert!(p.warned(&["segments.csv", "1 skipped"]), "{:?}", p.warnings);
}

// ── users ────────────────────────────────────────────────────────────────────────────────

#[test]
fn owners_are_matched_by_user_id_when_users_have_one() {
    let p = run(
        &[
            (
                "accounts.csv",
                &lines(&["externalId,accountOwnerId", "a,v1", "b,u2", "c,v1", "d,"]),
            ),
            (
                "users.csv",
                &lines(&[
                    "id,externalId,email",
                    "v1,u1,",
                    "v2,u2,two@example.com",
                    "v3,,three@example.com",
                ]),
            ),
        ],
        &[],
    );
    let owner = |u: &Value| u["custom_attributes"]["Vitally Account Owner"].clone();
    assert_eq!(owner(p.user(Some("u1"), None)), json!(true));
    // `u2` is an externalId, not an id: no match.
    assert_eq!(owner(p.user(Some("u2"), None)), json!(false));
    assert_eq!(owner(p.user(None, Some("three@example.com"))), json!(false));
    assert!(
        p.warned(&["1 accountOwnerId values match no user (by id)"]),
        "{:?}",
        p.warnings
    );
}

#[test]
fn owners_are_matched_by_external_id_when_users_have_no_id() {
    let p = run(
        &[
            (
                "accounts.csv",
                &lines(&["externalId,accountOwnerId", "a,v1", "b,u2"]),
            ),
            ("users.csv", &lines(&["externalId,email", "u1,", "u2,"])),
        ],
        &[],
    );
    let owner = |u: &Value| u["custom_attributes"]["Vitally Account Owner"].clone();
    assert_eq!(owner(p.user(Some("u1"), None)), json!(false));
    assert_eq!(owner(p.user(Some("u2"), None)), json!(true));
    assert!(
        p.warned(&["1 accountOwnerId values match no user (by externalId)"]),
        "{:?}",
        p.warnings
    );
}

#[test]
fn user_lines_have_null_for_unknown_keys_and_a_fixed_order() {
    let p = run(
        &[
            ("accounts.csv", &lines(&["externalId", "zeta", "Acme", "acme", "_x"])),
            (
                "users.ndjson",
                "{\"email\":\"b@example.com\"}\n{\"externalId\":\"u2\"}\n{\"externalId\":\"U1\",\"email\":\"z@example.com\"}\n{\"email\":\"a@example.com\"}\n",
            ),
        ],
        &[],
    );
    let order: Vec<String> = p
        .plan
        .iter()
        .map(|l| match l["type"].as_str().unwrap() {
            "company" => format!("company {}", l["company_id"].as_str().unwrap()),
            _ => format!("user {} {}", l["external_id"], l["email"]),
        })
        .collect();
    assert_eq!(
        order,
        vec![
            "company Acme",
            "company _x",
            "company acme",
            "company zeta",
            "user \"U1\" \"z@example.com\"",
            "user \"u2\" null",
            "user null \"a@example.com\"",
            "user null \"b@example.com\"",
        ]
    );
    // The line's key order is fixed too.
    let raw = p.user(Some("u2"), None).to_string();
    assert_eq!(
        raw,
        r#"{"custom_attributes":{"Vitally Account Owner":false},"email":null,"external_id":"u2","type":"user"}"#,
        "(serde_json::Value sorts keys; the byte order is checked by the golden test)"
    );
}

// ── plan ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn plan_without_all_after_nothing_pushed_is_everything() {
    let ws = export(&[
        (
            "accounts.csv",
            &lines(&["externalId,mrr", "a,1", "b,2", "c,"]),
        ),
        ("users.csv", &lines(&["externalId", "u1", "u2"])),
    ]);
    ws.load().ok();
    ws.transform(&[]).ok();
    let changed = ws.run(&["plan", "--json"]);
    changed.ok();
    let all = ws.run(&["plan", "--json", "--all"]);
    all.ok();
    assert_eq!(changed.stdout, all.stdout);
    assert_eq!(changed.stdout.lines().count(), 5);
    let human = ws.run(&["plan"]);
    human.ok();
    assert!(
        human
            .stdout
            .contains("plan: 3 of 3 companies and 2 of 2 users to update (5 never pushed)"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("+ company a: first push"),
        "{}",
        human.stdout
    );
}

#[test]
fn plan_needs_a_fresh_transform() {
    let ws = export(&[("accounts.csv", &lines(&["externalId", "a"]))]);
    let nothing = ws.run(&["plan", "--json"]);
    nothing.expect_code(2);
    assert!(
        nothing.stderr.contains("intercom-push load"),
        "{}",
        nothing.stderr
    );
    ws.load().ok();
    let stale = ws.run(&["plan", "--json"]);
    stale.expect_code(2);
    assert!(
        stale.stderr.contains("run `intercom-push transform`"),
        "{}",
        stale.stderr
    );
    assert_eq!(stale.stdout, "");
}

// ── hashes ───────────────────────────────────────────────────────────────────────────────

/// An export with every table of the input contract, big enough for several transform chunks
/// (4096 accounts each): `(file name, header, data rows)` per table.
fn big_export_tables() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let mut accounts = Vec::new();
    let mut counts = Vec::new();
    let mut values = Vec::new();
    let mut indicators = Vec::new();
    let mut segments = Vec::new();
    for i in 0..9000 {
        accounts.push(format!(
            "a{i},acct-{i:05},u{},{}.5,{},plan {},{}",
            i % 50,
            i * 3,
            i % 7,
            i % 4,
            i % 2 == 0
        ));
        counts.push(format!("a{i},e{},{}", i % 3, i % 11));
        values.push(format!("a{i},m{},{}", i % 2, i % 13));
        indicators.push(format!("a{i},risk,Risk {}", i % 4));
        indicators.push(format!("a{i},opportunity,Opp {}", i % 6));
        // Case-insensitive duplicates ("seg 1" and "Seg 1") on purpose.
        segments.push(format!("a{i},seg {}", i % 5));
        segments.push(format!("a{i},Seg {}", i % 3));
    }
    let users = (0..100)
        .map(|i| format!("u{i},user-{i},u{i}@example.com"))
        .collect();
    let rows = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (
            "accounts.csv",
            "id,externalId,accountOwnerId,mrr,score,plan,flag",
            accounts,
        ),
        ("users.csv", "id,externalId,email", users),
        (
            "elements.csv",
            "id,name",
            rows(&["e0,Zero", "e1,One", "e2,Two"]),
        ),
        ("element_counts.csv", "account_id,element_id,count", counts),
        (
            "success_metrics.csv",
            "id,name",
            rows(&["m0,NPS", "m1,Seats Used"]),
        ),
        ("metric_values.csv", "account_id,metric_id,value", values),
        ("indicators.csv", "account_id,kind,name", indicators),
        ("segments.csv", "account_id,name", segments),
    ]
}

/// Writes `tables` as CSV files into `dir`; with `shuffle_seed`, the data rows of every table
/// in a seeded random order.
fn write_tables(
    ws: &Workspace,
    dir: &std::path::Path,
    tables: &[(&str, &str, Vec<String>)],
    shuffle_seed: Option<u64>,
) {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    for (name, header, rows) in tables {
        let mut rows = rows.clone();
        if let Some(seed) = shuffle_seed {
            rows.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        }
        let mut text = format!("{header}\n");
        for row in rows {
            text += &row;
            text.push('\n');
        }
        ws.write_in(dir, name, text);
    }
}

/// Same export and settings ⇒ the same hash for every company and user, whatever the number of
/// rayon threads and the order of the rows. Every variant is loaded and transformed into its
/// own new database, and the test checks that each step really computed (a reused database
/// would skip the work as "export unchanged" / "payloads are up to date").
#[test]
fn hashes_are_identical_across_thread_counts_and_row_orders_on_fresh_databases() {
    let ws = Workspace::new();
    let tables = big_export_tables();
    let (ordered, shuffled) = (ws.path().join("ordered"), ws.path().join("shuffled"));
    write_tables(&ws, &ordered, &tables, None);
    write_tables(&ws, &shuffled, &tables, Some(20_261_202));
    let variants = [
        ("1 thread", &ordered, "1"),
        ("2 threads", &ordered, "2"),
        ("8 threads", &ordered, "8"),
        ("rows shuffled, 2 threads", &shuffled, "2"),
    ];
    let mut results: Vec<(&str, BTreeMap<String, String>, String)> = Vec::new();
    for (i, (variant, input, threads)) in variants.into_iter().enumerate() {
        let fresh = ws.path().join(format!("fresh-{i}.db"));
        let db_arg = fresh.to_str().unwrap();
        let env = [("RAYON_NUM_THREADS", threads)];
        let load = ws.run_env(
            &["--db", db_arg, "load", "--input", input.to_str().unwrap()],
            &env,
        );
        load.ok();
        assert!(
            load.stdout.starts_with("loaded export #1 "),
            "{variant}: {}",
            load.stdout
        );
        let transform = ws.run_env(&["--db", db_arg, "transform"], &env);
        transform.ok();
        assert!(
            transform
                .stdout
                .starts_with("computed 9000 company and 100 user payloads"),
            "{variant}: {}",
            transform.stdout
        );
        let plan = ws.run(&["--db", db_arg, "plan", "--json", "--all"]);
        plan.ok();
        results.push((variant, db::hashes(&fresh), plan.stdout));
    }
    let (_, first_hashes, first_plan) = &results[0];
    assert_eq!(first_hashes.len(), 9100);
    assert_eq!(first_plan.lines().count(), 9100);
    assert!(first_hashes.values().all(|h| h.len() == 32));
    let distinct: std::collections::HashSet<&String> = first_hashes.values().collect();
    assert_eq!(distinct.len(), 9100, "different payloads, different hashes");
    for (variant, hashes, plan) in &results[1..] {
        let differing: Vec<&String> = first_hashes
            .iter()
            .filter(|(key, hash)| hashes.get(*key) != Some(hash))
            .map(|(key, _)| key)
            .collect();
        assert!(
            differing.is_empty() && hashes.len() == first_hashes.len(),
            "{variant}: {} of {} hashes differ from 1 thread's (first: {:?})",
            differing.len(),
            first_hashes.len(),
            differing.first()
        );
        assert!(plan == first_plan, "{variant}: the plan differs");
    }
}

#[test]
fn hash_changes_when_the_mapping_changes() {
    let files = [
        (
            "accounts.csv",
            lines(&["externalId,mrr,plan", "a,5,Gold", "b,,Free"]),
        ),
        ("users.csv", lines(&["externalId", "u1"])),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    // Transforms with `args` and returns the hashes; the payloads must really be computed
    // (an unchanged export and settings would be skipped as "up to date").
    let computed = |ws: &Workspace, args: &[&str]| {
        let run = ws.transform(args);
        run.ok();
        assert!(
            run.stdout.starts_with("computed "),
            "{args:?} must compute: {}",
            run.stdout
        );
        ws.hashes()
    };
    let ws = export(&files);
    ws.load().ok();
    let base = computed(&ws, &[]);
    let again = export(&files);
    again.load().ok();
    assert_eq!(
        computed(&again, &[]),
        base,
        "same export and settings in a new database, same hashes"
    );

    for args in [
        &["--prefix", "Acme"][..],
        &["--no-monthly-spend"],
        &["--exclude", "plan"],
        &["--exclude", "nothing-like-this"],
    ] {
        let changed = computed(&ws, args);
        assert_eq!(changed.len(), base.len());
        for (key, hash) in &base {
            // Every hash covers the mapping version, even where the payload bytes are the
            // same (b has no mrr; the user has no plan).
            assert_ne!(&changed[key], hash, "{key} with {args:?}");
        }
    }
    // Back to the defaults: back to the same hashes.
    assert_eq!(computed(&ws, &[]), base);
}

// ── config file ──────────────────────────────────────────────────────────────────────────

#[test]
fn config_file_sets_prefix_monthly_spend_and_excludes() {
    let ws = export(&[
        (
            "accounts.csv",
            &lines(&["externalId,mrr,plan,seats", "a,5,Gold,3"]),
        ),
        ("users.csv", &lines(&["externalId", "u1"])),
    ]);
    let config = ws.path().join("custom.toml");
    std::fs::write(
        &config,
        "prefix = \"Acme\"\nmonthly_spend = false\nexclude = [\"plan\"]\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    ws.load().ok();
    ws.run(&["--config", config, "transform"]).ok();
    let plan = ws.plan_all();
    assert_eq!(
        plan[0],
        json!({"type": "company", "company_id": "a", "custom_attributes": {
            "Acme Active Opportunity Indicators": "",
            "Acme Active Risk Indicators": "",
            "Acme Mrr": 5,
            "Acme Seats": 3,
            "Acme Segments": ""}})
    );
    assert_eq!(
        plan[1]["custom_attributes"],
        json!({"Acme Account Owner": false})
    );
    // Flags win over the file; excludes add up.
    ws.run(&[
        "--config",
        config,
        "transform",
        "--prefix",
        "Flag",
        "--exclude",
        "seats",
    ])
    .ok();
    let plan = ws.plan_all();
    let names: Vec<&String> = plan[0]["custom_attributes"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        names,
        vec![
            "Flag Active Opportunity Indicators",
            "Flag Active Risk Indicators",
            "Flag Mrr",
            "Flag Segments"
        ]
    );
    // ./intercom-push.toml is read by default.
    std::fs::write(
        ws.path().join("intercom-push.toml"),
        "prefix = \"Default\"\n",
    )
    .unwrap();
    ws.transform(&[]).ok();
    assert!(ws.plan_all()[0]["custom_attributes"]
        .as_object()
        .unwrap()
        .contains_key("Default Plan"));
}

#[test]
fn config_file_refuses_a_token() {
    let ws = export(&[("accounts.csv", &lines(&["externalId", "a"]))]);
    ws.load().ok();
    let config = ws.path().join("secret.toml");
    std::fs::write(&config, "prefix = \"X\"\ntoken = \"sk-live-123\"\n").unwrap();
    let run = ws.run(&["--config", config.to_str().unwrap(), "transform"]);
    run.expect_code(2);
    assert!(run.stderr.contains("secret.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("`token`"), "{}", run.stderr);
    assert!(
        run.stderr.contains("INTERCOM_ACCESS_TOKEN"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("sk-live-123"),
        "the secret is not echoed"
    );
    // Unknown keys are refused too.
    std::fs::write(&config, "prefx = \"X\"\n").unwrap();
    let run = ws.run(&["--config", config.to_str().unwrap(), "transform"]);
    run.expect_code(2);
    assert!(run.stderr.contains("prefx"), "{}", run.stderr);
}

#[test]
fn plan_lists_only_what_differs_from_the_last_push() {
    let ws = export(&[
        (
            "accounts.csv",
            &lines(&["externalId,mrr", "a,1", "b,2", "c,3"]),
        ),
        ("users.csv", &lines(&["externalId", "u1"])),
    ]);
    ws.load().ok();
    ws.transform(&[]).ok();
    // Pretend Intercom accepted a's and u1's current payloads, and an older one of b.
    db::record_current_payloads_pushed(&ws.db(), &["a", "e:u1"]);
    // b was accepted with monthly_spend 1 and only the label attributes: its pushed copy is
    // the encoded payload of that, made by the tool from an export that says so (both
    // databases name those attributes with the same keys: they are interned first).
    let older = export(&[("accounts.csv", &lines(&["externalId,mrr", "b,1"]))]);
    older.load().ok();
    older.transform(&["--exclude", "mrr"]).ok();
    let (hash, payload) = db::current_payload(&older.db(), "company", "b");
    db::record_pushed(&ws.db(), "company", "b", &hash, &payload);
    let changed = ws.run(&["plan", "--json"]);
    changed.ok();
    let ids: Vec<String> = changed
        .ndjson()
        .iter()
        .map(|l| l["company_id"].as_str().unwrap_or("user").to_string())
        .collect();
    assert_eq!(ids, vec!["b", "c"]);
    assert_eq!(ws.plan_all().len(), 4);
    // A new load of the same export keeps the sync state: same plan after transform.
    ws.load().ok();
    ws.transform(&[]).ok();
    assert_eq!(ws.run(&["plan", "--json"]).ok().stdout, changed.stdout);
    let human = ws.run(&["plan"]);
    human.ok();
    assert!(
        human
            .stdout
            .contains("plan: 2 of 3 companies and 0 of 1 users to update (1 never pushed)"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("~ company b"), "{}", human.stdout);
    assert!(
        human.stdout.contains("monthly_spend: 1 → 2"),
        "{}",
        human.stdout
    );
    // A config change that touches every payload puts everything back in the plan.
    ws.transform(&["--prefix", "Other"]).ok();
    assert_eq!(ws.run(&["plan", "--json"]).ok().stdout.lines().count(), 4);
}

#[test]
fn stored_payloads_are_canonical_json() {
    let ws = export(&[
        (
            "accounts.csv",
            &lines(&[
                "externalId,zeta,alpha,Mid,mrr",
                "a,1,x,true,2.5",
                "b,,y,false,",
            ]),
        ),
        (
            "users.csv",
            &lines(&["externalId,email", "u1,", ",m@example.com"]),
        ),
    ]);
    ws.load().ok();
    ws.transform(&[]).ok();
    let payloads = db::payloads(&ws.db());
    assert_eq!(payloads.len(), 4);
    for (_, _, payload, _) in payloads {
        // serde_json::Value keeps keys sorted: re-serializing canonical bytes is the identity.
        let value: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(value.to_string(), payload);
    }
}

#[test]
fn every_format_with_or_without_gzip_and_bom_reads_the_same() {
    let csv_accounts = lines(&["external_id,plan,seats", "a,Gold,5", "b,Free,"]);
    let json_rows = [
        json!({"externalId": "a", "plan": "Gold", "seats": 5}),
        json!({"external_id": "b", "plan": "Free", "seats": null}),
    ];
    let ndjson_accounts: String = json_rows.iter().map(|r| format!("{r}\n")).collect();
    let json_accounts = format!("\u{feff}[\n  {},\n  {}\n]\n", json_rows[0], json_rows[1]);
    let segments_csv = lines(&["accountId,name", "a,VIP", "b,Trial"]);
    let segments_json = json!([
        {"account_id": "a", "name": "VIP"},
        {"account_id": "b", "name": "Trial"}
    ])
    .to_string();
    let variants: Vec<[(&str, &str); 2]> = vec![
        [
            ("accounts.csv", &csv_accounts),
            ("segments.csv", &segments_csv),
        ],
        [
            ("accounts.csv.gz", &csv_accounts),
            ("segments.json.gz", &segments_json),
        ],
        [
            ("accounts.ndjson", &ndjson_accounts),
            ("segments.json", &segments_json),
        ],
        [
            ("accounts.jsonl.gz", &ndjson_accounts),
            ("segments.csv.gz", &segments_csv),
        ],
        [
            ("accounts.json", &json_accounts),
            ("segments.csv", &segments_csv),
        ],
        [
            ("accounts.json.gz", &json_accounts),
            ("segments.json", &segments_json),
        ],
    ];
    let mut first: Option<Vec<Value>> = None;
    for files in &variants {
        let p = run(files, &[]);
        assert_eq!(p.attr("a", "Vitally Seats"), Some(&json!(5)), "{files:?}");
        assert_eq!(
            p.attr("b", "Vitally Segments"),
            Some(&json!("Trial")),
            "{files:?}"
        );
        match &first {
            None => first = Some(p.plan),
            Some(plan) => assert_eq!(&p.plan, plan, "{:?}", files.map(|f| f.0)),
        }
    }
}
