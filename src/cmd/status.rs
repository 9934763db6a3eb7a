//! `status`: last runs, pending changes, records not found or failing, mapping version.

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::StatusArgs;
use crate::config::Settings;
use crate::store::Store;

const SHOWN: usize = 20;

pub fn run(settings: &Settings, args: &StatusArgs) -> Result<u8> {
    let store = Store::open(&settings.db)?;
    let runs: Vec<Value> = store
        .recent_runs(5)?
        .into_iter()
        .map(|r| {
            let report: Value = r.report.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null);
            json!({
                "run_id": r.run_id, "command": r.command, "started_at": r.started_at, "finished_at": r.finished_at,
                "exit_code": r.exit_code, "duration_secs": report["duration_secs"], "companies": summary(&report["companies"]),
                "users": summary(&report["users"]), "error": report["error"],
            })
        })
        .collect();
    let pending: Vec<Value> = store
        .payload_counts()?
        .into_iter()
        .map(|(kind, total, changed)| json!({"kind": kind, "records": total, "pending": changed}))
        .collect();
    let listing = |status: &str, min_failures: i64| -> Result<Value> {
        let (total, rows) = store.records_with_status(status, min_failures, SHOWN)?;
        let rows: Vec<Value> = rows.into_iter().map(|(kind, key, failures, error)| json!({"kind": kind, "record": key, "failures": failures, "last_error": error})).collect();
        Ok(json!({"total": total, "first": rows}))
    };
    let status = json!({
        "database": settings.db.display().to_string(),
        "extract_version": store.meta("extract_version")?,
        "payloads_fresh": crate::transform::check_fresh(&store).is_ok(),
        "mapping": store.meta("mapping")?,
        "runs": runs,
        "pending": pending,
        "not_found": listing("not_found", 0)?,
        "ambiguous": listing("ambiguous", 0)?,
        "failing_repeatedly": listing("failed", 2)?,
    });
    if args.json {
        println!("{status}");
    } else {
        print_human(&status);
    }
    Ok(0)
}

fn summary(kind: &Value) -> Value {
    json!({"updated": kind["updated"], "not_found": kind["not_found"], "ambiguous": kind["ambiguous"], "failed": kind["failed"]})
}

fn print_human(s: &Value) {
    println!(
        "database {} (export #{}, payloads {})",
        s["database"].as_str().unwrap_or(""),
        s["extract_version"].as_str().unwrap_or("none"),
        if s["payloads_fresh"] == true {
            "up to date"
        } else {
            "stale: run transform"
        }
    );
    println!(
        "mapping: {}",
        s["mapping"]
            .as_str()
            .unwrap_or("none")
            .replace('\u{1f}', "; ")
            .replace('\u{1e}', ",")
    );
    println!("\nlast runs:");
    for r in s["runs"].as_array().into_iter().flatten() {
        println!(
            "  #{} {} started {} exit {} — companies updated {} failed {}, users updated {} failed {}{}",
            r["run_id"], r["command"].as_str().unwrap_or(""), r["started_at"].as_str().unwrap_or(""), r["exit_code"],
            r["companies"]["updated"], r["companies"]["failed"], r["users"]["updated"], r["users"]["failed"],
            r["error"].as_str().map(|e| format!(" — error: {e}")).unwrap_or_default()
        );
    }
    println!("\npending (what `push` would send now):");
    for p in s["pending"].as_array().into_iter().flatten() {
        println!(
            "  {}: {} of {}",
            p["kind"].as_str().unwrap_or(""),
            p["pending"],
            p["records"]
        );
    }
    for (label, key) in [
        ("not found in Intercom", "not_found"),
        ("ambiguous", "ambiguous"),
        ("failing repeatedly", "failing_repeatedly"),
    ] {
        println!("\n{label}: {}", s[key]["total"]);
        for r in s[key]["first"].as_array().into_iter().flatten() {
            let error = r["last_error"]
                .as_str()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default();
            println!(
                "  {} {} (failures {}){error}",
                r["kind"].as_str().unwrap_or(""),
                r["record"].as_str().unwrap_or(""),
                r["failures"]
            );
        }
    }
}
