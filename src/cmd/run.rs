//! `run`: load + transform + push (or plan with `--dry-run`) under one run lock.

use anyhow::Result;

use crate::cli::{PlanArgs, RunArgs};
use crate::config::Settings;
use crate::push::PushOptions;
use crate::store::Store;

pub fn run(settings: &Settings, args: &RunArgs) -> Result<u8> {
    if !args.dry_run {
        // Refuse bad Intercom settings (token, base URL) before spending time on the export.
        crate::intercom::Client::new(settings.intercom.client_config()?)?;
    }
    let _lock = super::lock(settings, "run")?;
    let loaded = super::load::load_export(settings)?;
    let mut store = Store::open(&settings.db)?;
    super::print_warnings(&loaded.warnings);
    let transformed = crate::transform::transform(&mut store, &settings.mapping)?;
    super::print_warnings(&transformed.warnings);
    if !args.json {
        eprintln!(
            "loaded {} accounts; computed {} company and {} user payloads",
            loaded.rows.get("accounts").unwrap_or(&0),
            transformed.companies,
            transformed.users
        );
    }
    if args.dry_run {
        return super::plan::run(
            settings,
            &PlanArgs {
                json: args.json,
                all: false,
                limit: 20,
            },
        );
    }
    super::push::push_and_report(
        &store,
        settings,
        "run",
        PushOptions {
            reconcile: args.reconcile,
            ..PushOptions::send(args.full_resync)
        },
        args.json,
    )
}
