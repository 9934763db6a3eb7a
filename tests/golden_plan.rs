//! The checked-in fixtures through the real binary: `load` + `transform` + `plan --json` must
//! print exactly `fixtures/<name>.plan.ndjson`, with the expected warnings on the way.
//!
//! To regenerate after an intended change: `UPDATE_GOLDENS=1 cargo test --release --test
//! golden_plan`, then read the diff line by line before committing it.

mod common;

use common::{manifest_dir, Workspace};
use serde_json::Value;

struct Golden {
    plan: String,
    load_warnings: Vec<String>,
    transform_warnings: Vec<String>,
    load_stdout: String,
}

fn run_fixture(name: &str) -> Golden {
    let ws = Workspace::new();
    let input = manifest_dir().join("fixtures").join(name);
    let load = ws.run(&["load", "--input", input.to_str().unwrap()]);
    load.ok();
    let transform = ws.transform(&[]);
    transform.ok();
    for (what, run) in [("load", &load), ("transform", &transform)] {
        for line in run.stderr.lines() {
            assert!(
                line.starts_with("warning: "),
                "{what} printed something other than warnings on stderr: {line}"
            );
        }
    }
    let plan = ws.run(&["plan", "--json"]);
    plan.ok();
    assert_eq!(plan.stderr, "", "plan --json prints nothing on stderr");
    Golden {
        plan: plan.stdout,
        load_warnings: load.warnings(),
        transform_warnings: transform.warnings(),
        load_stdout: load.stdout,
    }
}

/// Byte equality, with a per-line (and per-attribute) account of the first differences.
fn assert_golden(name: &str, actual: &str) {
    let path = manifest_dir()
        .join("fixtures")
        .join(format!("{name}.plan.ndjson"));
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected == actual {
        return;
    }
    let mut report = format!(
        "`plan --json` for fixtures/{name} differs from {}\n",
        path.display()
    );
    let (exp, act): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    if exp.len() != act.len() {
        report += &format!("line count: expected {}, got {}\n", exp.len(), act.len());
    }
    let mut shown = 0;
    for i in 0..exp.len().max(act.len()) {
        let (e, a) = (exp.get(i).copied(), act.get(i).copied());
        if e == a {
            continue;
        }
        shown += 1;
        if shown > 5 {
            report += "… (more differences)\n";
            break;
        }
        report += &format!(
            "line {}:\n  expected: {}\n  actual:   {}\n",
            i + 1,
            e.unwrap_or("<none>"),
            a.unwrap_or("<none>")
        );
        if let (Some(e), Some(a)) = (e, a) {
            report += &value_diff(e, a);
        }
    }
    if !expected.ends_with('\n') || !actual.ends_with('\n') {
        report += "(check the final newline)\n";
    }
    panic!("{report}");
}

/// Which top-level keys and custom attributes differ between two plan lines.
fn value_diff(expected: &str, actual: &str) -> String {
    let (Ok(e), Ok(a)) = (
        serde_json::from_str::<Value>(expected),
        serde_json::from_str::<Value>(actual),
    ) else {
        return String::new();
    };
    let mut out = String::new();
    let empty = serde_json::Map::new();
    let obj = |v: &Value| v.as_object().cloned().unwrap_or_default();
    let (eo, ao) = (obj(&e), obj(&a));
    for key in eo.keys().chain(ao.keys().filter(|k| !eo.contains_key(*k))) {
        if key == "custom_attributes" {
            let ec = eo[key].as_object().unwrap_or(&empty);
            let ac = ao.get(key).and_then(Value::as_object).unwrap_or(&empty);
            for name in ec.keys().chain(ac.keys().filter(|k| !ec.contains_key(*k))) {
                if ec.get(name) != ac.get(name) {
                    out += &format!(
                        "    {name:?}: expected {:?}, got {:?}\n",
                        ec.get(name),
                        ac.get(name)
                    );
                }
            }
        } else if eo.get(key) != ao.get(key) {
            out += &format!(
                "    {key}: expected {:?}, got {:?}\n",
                eo.get(key),
                ao.get(key)
            );
        }
    }
    out
}

#[test]
fn csv_export_plan_matches_golden() {
    let golden = run_fixture("export");
    assert_golden("export", &golden.plan);
    // The one child row of an unknown account (acc_999) is skipped and counted.
    assert_eq!(
        golden.load_warnings,
        vec!["element_counts.csv: rows whose account is not in the accounts file: 1 skipped"]
    );
    // initech (-0.5 → -1), hooli (3e9) and cyberdyne (-10) are outside [0, 2^31-1].
    assert_eq!(
        golden.transform_warnings,
        vec!["3 accounts have an MRR outside Intercom's monthly_spend range [0, 2147483647]; sent clamped"]
    );
    assert!(
        golden.load_stdout.contains("accounts 20")
            && golden.load_stdout.contains("users 9")
            && golden.load_stdout.contains("element_counts 54"),
        "{}",
        golden.load_stdout
    );
}

#[test]
fn vitally_json_plan_matches_golden() {
    let golden = run_fixture("vitally-json");
    assert_golden("vitally-json", &golden.plan);
    // `keyRoles` is an array of objects at the top level and under traits: one warning.
    assert_eq!(
        golden.load_warnings,
        vec!["accounts.ndjson: field `keyRoles` holds an array of objects, which Intercom cannot store; skipped"]
    );
    assert_eq!(golden.transform_warnings, Vec::<String>::new());
    assert!(
        golden.load_stdout.contains("accounts 8") && golden.load_stdout.contains("users 4"),
        "{}",
        golden.load_stdout
    );
}

/// The goldens themselves obey the plan's shape rules (so a regenerated golden that breaks
/// them fails even before anyone reads it).
#[test]
fn goldens_are_sorted_and_well_formed() {
    for name in ["export", "vitally-json"] {
        let text = std::fs::read_to_string(
            manifest_dir()
                .join("fixtures")
                .join(format!("{name}.plan.ndjson")),
        )
        .unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let companies: Vec<&str> = lines
            .iter()
            .take_while(|l| l["type"] == "company")
            .map(|l| l["company_id"].as_str().unwrap())
            .collect();
        let mut sorted = companies.clone();
        sorted.sort();
        assert_eq!(companies, sorted, "{name}: companies by company_id (bytes)");
        let users = &lines[companies.len()..];
        assert!(
            users.iter().all(|l| l["type"] == "user"),
            "{name}: users last"
        );
        // Users: by external_id, those without one after, by email.
        let keys: Vec<(bool, String)> = users
            .iter()
            .map(|u| match u["external_id"].as_str() {
                Some(id) => (false, id.to_string()),
                None => (true, u["email"].as_str().unwrap().to_string()),
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{name}: user order");
        let element_names: Vec<&str> = match name {
            "export" => vec![
                "API Keys",
                "Dashboards",
                "Salesforce Sync",
                "Slack Integration",
            ],
            _ => vec!["API Keys", "Slack Integration"],
        };
        for company in lines.iter().filter(|l| l["type"] == "company") {
            let attrs = company["custom_attributes"].as_object().unwrap();
            for element in &element_names {
                assert!(
                    attrs[&format!("Vitally {element}")].is_i64(),
                    "{name}: every company has element {element}: {company}"
                );
            }
            for always in [
                "Vitally Active Risk Indicators",
                "Vitally Active Opportunity Indicators",
                "Vitally Segments",
            ] {
                assert!(attrs[always].is_string(), "{name}: {always} always present");
            }
            for key in attrs.keys() {
                assert!(key.starts_with("Vitally "), "{name}: {key}");
            }
            // monthly_spend is absent exactly when Mrr is.
            assert_eq!(
                company.get("monthly_spend").is_some(),
                attrs.contains_key("Vitally Mrr"),
                "{name}: {company}"
            );
        }
    }
}
