//! `status`: last runs, pending changes, records not found or failing, mapping version, and
//! the drift the last reconciles found.

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
        .map(|(kind, total, changed)| {
            let departed = store.departed_count(&kind)?;
            Ok(json!({"kind": kind, "records": total, "pending": changed, "departed": departed}))
        })
        .collect::<Result<_>>()?;
    let listing = |status: &str, min_failures: i64| -> Result<Value> {
        let (total, rows) = store.records_with_status(status, min_failures, SHOWN)?;
        let rows: Vec<Value> = rows.into_iter().map(|(kind, key, failures, error)| json!({"kind": kind, "record": key, "failures": failures, "last_error": error})).collect();
        Ok(json!({"total": total, "first": rows}))
    };
    let last_reconcile = match store.last_reconcile_run()? {
        Some(run) => {
            let report: Value = run
                .report
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or(Value::Null);
            json!({"run_id": run.run_id, "command": run.command, "started_at": run.started_at, "reconcile": report["reconcile"]})
        }
        None => Value::Null,
    };
    let drift_history: Vec<Value> = store
        .drift_history()?
        .into_iter()
        .map(|(kind, attribute, reconciles, records)| json!({"kind": kind, "attribute": attribute, "reconciles": reconciles, "records": records}))
        .collect();
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
        "last_reconcile": last_reconcile,
        "drift_history": drift_history,
    });
    if args.json {
        println!("{status}");
    } else {
        print_human(&status);
    }
    Ok(0)
}

fn summary(kind: &Value) -> Value {
    json!({"updated": kind["updated"], "not_found": kind["not_found"], "ambiguous": kind["ambiguous"], "failed": kind["failed"], "departed": kind["departed"]})
}

fn print_human(s: &Value) {
    print_runs_and_records(s);
    print_drift(s);
}

/// The last reconcile's drift per attribute, and which attributes drift most over the kept
/// reconciles: those are the ones someone else writes.
fn print_drift(s: &Value) {
    let last = &s["last_reconcile"];
    if last.is_null() {
        println!("\nreconcile: never run (`intercom-push reconcile`)");
        return;
    }
    let r = &last["reconcile"];
    println!(
        "\nlast reconcile: #{} {} started {} ({}{})",
        last["run_id"],
        last["command"].as_str().unwrap_or(""),
        last["started_at"].as_str().unwrap_or(""),
        r["mode"].as_str().unwrap_or(""),
        if r["complete"] == false {
            ", incomplete"
        } else {
            ""
        }
    );
    for (label, key) in [("companies", "companies"), ("users", "users")] {
        let k = &r[key];
        println!(
            "  {label}: {} of {} compared, {} drifted",
            k["compared"], k["pushed"], k["drifted"]
        );
        let mut by: Vec<(&String, &Value)> = k["by_attribute"]
            .as_object()
            .into_iter()
            .flatten()
            .collect();
        by.sort_by(|a, b| b.1.as_u64().cmp(&a.1.as_u64()).then(a.0.cmp(b.0)));
        for (attribute, records) in by {
            println!("    {:>7}  {attribute}", records.as_u64().unwrap_or(0));
        }
    }
    let history = s["drift_history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !history.is_empty() {
        println!("\nmost overwritten attributes (last reconciles; records drifted, in how many reconciles):");
        for h in history.iter().take(SHOWN) {
            println!(
                "  {:>7} in {:>2}  {} {}",
                h["records"].as_i64().unwrap_or(0),
                h["reconciles"].as_i64().unwrap_or(0),
                h["kind"].as_str().unwrap_or(""),
                h["attribute"].as_str().unwrap_or("")
            );
        }
    }
}

fn print_runs_and_records(s: &Value) {
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
            "  #{} {} started {} exit {} — companies updated {} departed {} failed {}, users updated {} departed {} failed {}{}",
            r["run_id"], r["command"].as_str().unwrap_or(""), r["started_at"].as_str().unwrap_or(""), r["exit_code"],
            r["companies"]["updated"], r["companies"]["departed"].as_u64().unwrap_or(0), r["companies"]["failed"],
            r["users"]["updated"], r["users"]["departed"].as_u64().unwrap_or(0), r["users"]["failed"],
            r["error"].as_str().map(|e| format!(" — error: {e}")).unwrap_or_default()
        );
    }
    println!("\npending (what `push` would send now):");
    for p in s["pending"].as_array().into_iter().flatten() {
        println!(
            "  {}: {} of {}, and {} that left the export",
            p["kind"].as_str().unwrap_or(""),
            p["pending"],
            p["records"],
            p["departed"]
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
