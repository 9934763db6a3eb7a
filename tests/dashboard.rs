//! The Grafana dashboard (`docs/grafana-dashboard.json`) queries only metrics the tool writes
//! (issue 27, part 4).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{manifest_dir, BIN};

/// Every `intercom_push_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("intercom_push_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[test]
fn every_metric_the_dashboard_queries_is_one_the_tool_writes() {
    let dashboard =
        std::fs::read_to_string(manifest_dir().join("docs/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    let queried = metric_names(&exprs.join("\n"));
    assert!(queried.len() >= 8, "{queried:?}");

    // What a run writes: the demo's metrics file.
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("demo.prom");
    let out = Command::new(BIN)
        .args(["--quiet", "--db"])
        .arg(dir.path().join("demo.db"))
        .args(["demo", "--metrics-file"])
        .arg(&prom)
        .env_remove("INTERCOM_PUSH_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: BTreeSet<String> = std::fs::read_to_string(&prom)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let unknown: Vec<&String> = queried.difference(&written).collect();
    assert!(unknown.is_empty(), "the dashboard queries metrics the tool does not write: {unknown:?} (it writes {written:?})");
}
