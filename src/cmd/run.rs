//! `run`: load + transform + push (or plan with `--dry-run`) under one run lock.

use anyhow::Result;

use crate::cli::{GlobalArgs, PlanArgs, RunArgs};
use crate::config::Settings;
use crate::metrics::RunMetrics;
use crate::push::PushOptions;
use crate::store::Store;

/// `run` from the command line: its metrics file is written whatever the outcome, a
/// settings error included.
pub fn main(global: &GlobalArgs, args: &RunArgs) -> Result<u8> {
    super::with_metrics(
        "run",
        &args.ops,
        || {
            Settings::resolve(
                global,
                Some(&args.mapping),
                Some(&args.intercom),
                args.input.as_deref(),
            )?
            .with_ops(&args.ops)?
            .with_bulk(&args.bulk)
        },
        |settings, metrics| run(settings, args, metrics),
    )
}

/// The nightly job, each stage timed in `metrics`.
pub fn run(settings: &Settings, args: &RunArgs, metrics: &mut RunMetrics) -> Result<u8> {
    metrics.set_dry_run(args.dry_run);
    if !args.dry_run {
        // Refuse bad Intercom settings (token, base URL) before spending time on the export.
        crate::intercom::Client::new(settings.intercom.client_config()?)?;
    }
    let _lock = super::lock(settings, "run")?;
    let loaded = metrics.time("load", || super::load::load_export(settings))?;
    let mut store = Store::open(&settings.db)?;
    super::print_warnings(&loaded.warnings);
    let transformed = metrics.time("transform", || {
        crate::transform::transform(&mut store, &settings.mapping)
    })?;
    super::print_warnings(&transformed.warnings);
    if !args.json {
        let loaded = if loaded.unchanged {
            super::load::skipped(&store, &loaded)?
        } else {
            format!(
                "loaded {} accounts",
                loaded.rows.get("accounts").unwrap_or(&0)
            )
        };
        eprintln!(
            "{loaded}; computed {} company and {} user payloads",
            transformed.companies, transformed.users
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
            ..PushOptions::send(args.full_resync, settings)
        },
        args.json,
        metrics,
    )
}
