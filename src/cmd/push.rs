//! `push`: changed payloads → Intercom, with a report kept in the `runs` table.

use anyhow::{Context, Result};

use crate::cli::PushArgs;
use crate::config::Settings;
use crate::intercom::Client;
use crate::push::{self, PushOptions};
use crate::store::Store;

/// Pushes with `store` already locked; records the run and prints its report.
pub fn push_and_report(
    store: &Store,
    settings: &Settings,
    command: &str,
    options: PushOptions,
    json: bool,
) -> Result<u8> {
    let client = Client::new(settings.intercom.client_config()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let run_id = store.start_run(command)?;
    match push::push(store, &client, &runtime, options) {
        Ok(report) => {
            let code = report.exit_code();
            let report_json = serde_json::to_string(&report)?;
            store.finish_run(run_id, code, &report_json)?;
            super::print_warnings(&report.warnings);
            if json {
                println!("{report_json}");
            } else {
                print!("{}", report.render_human());
            }
            Ok(code)
        }
        Err(error) => {
            let error = anyhow::Error::new(error);
            let code = super::exit_code(&error);
            let _ = store.finish_run(
                run_id,
                code,
                &serde_json::json!({ "error": format!("{error:#}") }).to_string(),
            );
            Err(error)
        }
    }
}

pub fn run(settings: &Settings, args: &PushArgs) -> Result<u8> {
    let _lock = super::lock(settings, "push")?;
    let store = Store::open(&settings.db)?;
    push_and_report(
        &store,
        settings,
        "push",
        PushOptions {
            full_resync: args.full_resync,
        },
        args.json,
    )
}
