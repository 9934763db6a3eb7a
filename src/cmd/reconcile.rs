//! `reconcile`: compare what Intercom holds with what it last accepted, and (`--mode repair`)
//! send again what differs, through the ordinary push.

use anyhow::Result;

use crate::cli::ReconcileArgs;
use crate::config::Settings;
use crate::push::reconcile::ReconcileMode;
use crate::push::PushOptions;
use crate::store::Store;

pub fn run(settings: &Settings, args: &ReconcileArgs) -> Result<u8> {
    // Refuse bad Intercom settings (token, base URL) before looking at the database.
    crate::intercom::Client::new(settings.intercom.client_config()?)?;
    let _lock = super::lock(settings, "reconcile")?;
    let store = Store::open(&settings.db)?;
    store.require_extract()?;
    super::push::push_and_report(
        &store,
        settings,
        "reconcile",
        PushOptions {
            full_resync: false,
            reconcile: Some(args.mode),
            send: args.mode == ReconcileMode::Repair,
            departures: settings.departures,
            bulk: settings.bulk,
        },
        args.json,
        // A reconcile writes no metrics file (the nightly `run --reconcile` does).
        &mut crate::metrics::RunMetrics::start(None),
    )
}
