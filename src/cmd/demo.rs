//! `demo`: the whole pipeline against the embedded mock Intercom on loopback.

use anyhow::{Context, Result};

use crate::cli::{BulkArgs, DemoArgs, GlobalArgs, IntercomArgs, MappingArgs, OpsArgs, RunArgs};
use crate::config::{ConfigError, Settings};
use crate::metrics::RunMetrics;
use crate::mock::{MockConfig, MockServer, Seed, SeedCompany, SeedContact};
use crate::store::Store;

/// Every n-th company and the n-th user are left out of the mock, to show `not_found`.
const MISSING_EVERY: usize = 7;
/// Every LEAD_EVERY-th seeded user also has a lead with its email.
const LEAD_EVERY: usize = 3;

/// The bundled export (`fixtures/export`), compiled in: `demo` works from any directory.
const FIXTURES: &[(&str, &[u8])] = &[
    (
        "accounts.csv",
        include_bytes!("../../fixtures/export/accounts.csv"),
    ),
    (
        "users.csv",
        include_bytes!("../../fixtures/export/users.csv"),
    ),
    (
        "elements.csv",
        include_bytes!("../../fixtures/export/elements.csv"),
    ),
    (
        "element_counts.csv",
        include_bytes!("../../fixtures/export/element_counts.csv"),
    ),
    (
        "success_metrics.csv",
        include_bytes!("../../fixtures/export/success_metrics.csv"),
    ),
    (
        "metric_values.csv",
        include_bytes!("../../fixtures/export/metric_values.csv"),
    ),
    (
        "indicators.csv",
        include_bytes!("../../fixtures/export/indicators.csv"),
    ),
    (
        "segments.csv",
        include_bytes!("../../fixtures/export/segments.csv"),
    ),
];

pub fn run(global: &GlobalArgs, args: &DemoArgs) -> Result<u8> {
    let workdir = std::env::temp_dir().join(format!("intercom-push-demo-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;
    let input = match &args.input {
        Some(input) if !input.is_dir() => {
            return Err(ConfigError::Invalid(format!(
            "no export at {}: pass the export directory, or leave --input out for the bundled one",
            input.display()
        ))
            .into())
        }
        Some(input) => input.clone(),
        None => {
            let export = workdir.join("export");
            std::fs::create_dir_all(&export)?;
            for (name, bytes) in FIXTURES {
                std::fs::write(export.join(name), bytes).with_context(|| {
                    format!("writing the bundled export to {}", export.display())
                })?;
            }
            export
        }
    };
    let mut global = GlobalArgs {
        db: global.db.clone(),
        config: global.config.clone(),
        quiet: global.quiet,
        verbose: global.verbose,
    };
    global.db.get_or_insert_with(|| workdir.join("demo.db"));
    if std::env::var_os("INTERCOM_ACCESS_TOKEN").is_none() {
        // The mock and the client read the same variable; the demo makes one up.
        std::env::set_var("INTERCOM_ACCESS_TOKEN", "demo-token");
    }
    let mock = MockServer::start_background(MockConfig {
        latency: std::time::Duration::from_millis(args.latency_ms),
        ..MockConfig::default()
    })
    .context("starting the mock Intercom on 127.0.0.1")?;
    let intercom = IntercomArgs {
        base_url: Some(mock.base_url()),
        ..IntercomArgs::default()
    };
    let ops = OpsArgs {
        metrics_file: args.metrics_file.clone(),
        ..OpsArgs::default()
    };
    let bulk = BulkArgs {
        bulk: args.bulk,
        ..BulkArgs::default()
    };
    let settings = Settings::resolve(&global, None, Some(&intercom), Some(&input))?
        .with_ops(&ops)?
        .with_bulk(&bulk)?;
    println!(
        "mock Intercom listening on {}; state database {}",
        mock.base_url(),
        settings.db.display()
    );

    // The mock is seeded from the export loaded into a scratch database, so that the first
    // run loads it as a first night would.
    let scratch = Settings {
        db: workdir.join("seed.db"),
        ..settings.clone()
    };
    let seed = seed_from(&scratch);
    for file in crate::store::database_files(&scratch.db) {
        let _ = std::fs::remove_file(file);
    }
    mock.seed(seed?)
        .map_err(|e| anyhow::anyhow!("seeding the mock: {e}"))?;
    let run_args = RunArgs {
        input: Some(input),
        mapping: MappingArgs::default(),
        intercom,
        ops,
        bulk,
        dry_run: false,
        full_resync: false,
        reconcile: None,
        json: false,
    };
    let mut worst = 0;
    for round in 1..=2 {
        println!("\n── run {round} ──────────────────────────────────────────────");
        let mut metrics = RunMetrics::start(settings.metrics_file.clone());
        let result = super::run::run(&settings, &run_args, &mut metrics);
        worst = worst.max(super::write_metrics(&metrics, result)?);
    }
    let stats = mock.stats();
    println!(
        "\nmock Intercom now holds what was pushed: {} company and {} contact writes in all, {} create attempts (must be 0)",
        stats.company_writes + stats.bulk_company_items,
        stats.contact_writes + stats.bulk_contact_items,
        mock.violations().len()
    );
    if args.bulk {
        println!(
            "of them in bulk: {} company and {} contact updates in {} bulk requests, {} job polls",
            stats.bulk_company_items,
            stats.bulk_contact_items,
            stats.bulk_requests,
            stats.bulk_job_polls
        );
    }
    if global.db.as_deref() == Some(workdir.join("demo.db").as_path()) {
        let _ = std::fs::remove_dir_all(&workdir);
    } else {
        let _ = std::fs::remove_dir_all(workdir.join("export"));
        let _ = std::fs::remove_dir(&workdir);
    }
    Ok(worst)
}

/// Companies and contacts matching the export, a few left out on purpose.
fn seed_from(settings: &Settings) -> Result<Seed> {
    // Its warnings are the export's: the run prints them.
    super::load::load_export(settings)?;
    let store = Store::open(&settings.db)?;
    let companies = store
        .account_external_ids()?
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % MISSING_EVERY != MISSING_EVERY - 1)
        .map(|(i, company_id)| SeedCompany {
            company_id,
            user_count: u32::from(i % 4 != 0),
            ..SeedCompany::default()
        })
        .collect();
    let mut contacts: Vec<SeedContact> = store
        .users()?
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % MISSING_EVERY != MISSING_EVERY - 1)
        .map(|(_, user)| SeedContact {
            external_id: user.external_id,
            email: user.email,
            ..SeedContact::default()
        })
        .collect();
    // As in a real workspace, some users were leads first: a lead with the same email.
    let leads: Vec<SeedContact> = contacts
        .iter()
        .step_by(LEAD_EVERY)
        .filter_map(|user| {
            Some(SeedContact {
                email: Some(user.email.clone()?),
                role: Some("lead".into()),
                ..SeedContact::default()
            })
        })
        .collect();
    contacts.extend(leads);
    Ok(Seed {
        companies,
        contacts,
        data_attributes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_of_the_bundled_export_is_compiled_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/export");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut bundled: Vec<&str> = super::FIXTURES.iter().map(|(name, _)| *name).collect();
        bundled.sort();
        assert_eq!(files, bundled);
    }
}
