//! `push`: changed payloads → Intercom, with a report kept in the `runs` table.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::{GlobalArgs, PushArgs};
use crate::config::Settings;
use crate::intercom::Client;
use crate::metrics::RunMetrics;
use crate::push::{self, PushOptions};
use crate::store::Store;

/// Pushes with `store` already locked; records the run (keeping the last `runs_keep`),
/// prints its report (with `json` and a reconcile, every drifted attribute too) and counts it
/// in `metrics`.
pub fn push_and_report(
    store: &Store,
    settings: &Settings,
    command: &str,
    options: PushOptions,
    json: bool,
    metrics: &mut RunMetrics,
) -> Result<u8> {
    let client = Client::new(settings.intercom.client_config()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if options.send {
        let departed = crate::push::departures::DepartureCounts::read(store)?;
        metrics.record_departed(departed.companies, departed.users);
    }
    let run_id = store.start_run(command)?;
    let pushed = metrics.time("push", || {
        push::push(store, &client, &runtime, options, run_id).map_err(anyhow::Error::new)
    });
    metrics.record_api(client.stats());
    match pushed {
        Ok(report) => {
            metrics.record_push(&report);
            let code = report.exit_code();
            let report_json = serde_json::to_string(&report)?;
            store.finish_run(run_id, code, &report_json)?;
            store.prune_runs(settings.runs_keep)?;
            super::print_warnings(&report.warnings);
            if !json {
                print!("{}", report.render_human(options.send));
            } else if report.reconcile.is_some() {
                print_with_drift(store, run_id, &report_json)?;
            } else {
                println!("{report_json}");
            }
            Ok(code)
        }
        Err(error) => {
            let code = super::exit_code(&error);
            let _ = store.finish_run(
                run_id,
                code,
                &serde_json::json!({ "error": super::error_text(&error) }).to_string(),
            );
            let _ = store.prune_runs(settings.runs_keep);
            Err(error)
        }
    }
}

/// `push` from the command line: its metrics file is written whatever the outcome.
pub fn main(global: &GlobalArgs, args: &PushArgs) -> Result<u8> {
    super::with_metrics(
        "push",
        &args.ops,
        || {
            Settings::resolve(global, None, Some(&args.intercom), None)?
                .with_ops(&args.ops)?
                .with_bulk(&args.bulk)
        },
        |settings, metrics| run(settings, args, metrics),
    )
}

/// Prints the report object with one more key, `drift`: every drifted record and attribute of
/// the run with both values, read back from the database as it is written out.
fn print_with_drift(store: &Store, run_id: i64, report_json: &str) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let open = report_json.strip_suffix('}').unwrap_or(report_json);
    write!(out, "{open},\"drift\":[")?;
    let mut first = true;
    store.drift_rows(run_id, |row| -> Result<()> {
        let value = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        let item = serde_json::json!({
            "kind": row.kind, "record": row.record_key, "attribute": row.attribute,
            "intercom": value(&row.intercom_value), "expected": value(&row.expected_value),
        });
        write!(out, "{}{item}", if first { "" } else { "," })?;
        first = false;
        Ok(())
    })?;
    writeln!(out, "]}}")?;
    out.flush()?;
    Ok(())
}

pub fn run(settings: &Settings, args: &PushArgs, metrics: &mut RunMetrics) -> Result<u8> {
    let _lock = super::lock(settings, "push")?;
    let store = Store::open(&settings.db)?;
    push_and_report(
        &store,
        settings,
        "push",
        PushOptions::send(args.full_resync, settings),
        args.json,
        metrics,
    )
}
