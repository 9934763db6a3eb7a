//! `demo`: the whole pipeline against the embedded mock Intercom on loopback.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::{DemoArgs, GlobalArgs, IntercomArgs, MappingArgs, OpsArgs, RunArgs};
use crate::config::{ConfigError, Settings};
use crate::metrics::RunMetrics;
use crate::mock::{MockConfig, MockServer, Seed, SeedCompany, SeedContact};
use crate::store::Store;

/// Every n-th company and the n-th user are left out of the mock, to show `not_found`.
const MISSING_EVERY: usize = 7;
/// Every LEAD_EVERY-th seeded user also has a lead with its email.
const LEAD_EVERY: usize = 3;

pub fn run(global: &GlobalArgs, args: &DemoArgs) -> Result<u8> {
    let input = args
        .input
        .clone()
        .unwrap_or_else(|| PathBuf::from("fixtures/export"));
    if !input.is_dir() {
        return Err(ConfigError::Invalid(format!(
            "no export at {}: run `demo` from the repository root, or pass --input DIR",
            input.display()
        ))
        .into());
    }
    let workdir = std::env::temp_dir().join(format!("intercom-push-demo-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;
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
    let settings =
        Settings::resolve(&global, None, Some(&intercom), Some(&input))?.with_ops(&ops)?;
    println!(
        "mock Intercom listening on {}; state database {}",
        mock.base_url(),
        settings.db.display()
    );

    mock.seed(seed_from(&settings)?)
        .map_err(|e| anyhow::anyhow!("seeding the mock: {e}"))?;
    let run_args = RunArgs {
        input: Some(input),
        mapping: MappingArgs::default(),
        intercom,
        ops,
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
        stats.company_writes,
        stats.contact_writes,
        mock.violations().len()
    );
    if global.db.as_deref() == Some(workdir.join("demo.db").as_path()) {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    Ok(worst)
}

/// Companies and contacts matching the export, a few left out on purpose.
fn seed_from(settings: &Settings) -> Result<Seed> {
    let summary = super::load::load_export(settings)?;
    super::print_warnings(&summary.warnings);
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
