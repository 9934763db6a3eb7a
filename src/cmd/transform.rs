//! `transform`: extract → payloads + hashes.

use anyhow::Result;

use crate::config::Settings;
use crate::store::Store;
use crate::transform::{self, TransformSummary};

pub fn transform_payloads(settings: &Settings) -> Result<TransformSummary> {
    require_database(settings)?;
    let _lock = super::lock(settings, "transform")?;
    let mut store = Store::open(&settings.db)?;
    Ok(transform::transform(&mut store, &settings.mapping)?)
}

pub fn run(settings: &Settings) -> Result<u8> {
    let summary = transform_payloads(settings)?;
    super::print_warnings(&summary.warnings);
    if summary.up_to_date {
        println!(
            "payloads are up to date ({} companies, {} users): same export, same settings",
            summary.companies, summary.users
        );
        return Ok(0);
    }
    println!(
        "computed {} company and {} user payloads ({} attributes, prefix `{}`)",
        summary.companies, summary.users, summary.attributes, settings.mapping.prefix
    );
    Ok(0)
}

/// Fails (instead of creating an empty database) when `--db` names no file yet.
pub fn require_database(settings: &Settings) -> Result<(), crate::config::ConfigError> {
    if settings.db.exists() {
        return Ok(());
    }
    Err(crate::config::ConfigError::Invalid(format!(
        "no database at {}: run `intercom-push load --input DIR` first (or pass the right --db)",
        settings.db.display()
    )))
}
