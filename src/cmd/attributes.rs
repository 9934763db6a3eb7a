//! `attributes`: the workspace's data attributes that are ours or carry our prefix, and
//! archiving the stale ones once no record holds a value of ours for them.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result};

use crate::cli::AttributesArgs;
use crate::config::{ConfigError, Settings};
use crate::intercom::Client;
use crate::push::attributes::{classify, list_all, Origin, WorkspaceAttribute, ATTRIBUTE_CAP};
use crate::store::Store;

pub fn run(settings: &Settings, args: &AttributesArgs) -> Result<u8> {
    let store = Store::open(&settings.db)?;
    let prefix = store
        .meta("prefix")?
        .unwrap_or_else(|| settings.mapping.prefix.clone());
    let client = Client::new(settings.intercom.client_config()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let existing = runtime.block_on(list_all(&client))?;
    // Archived attributes do not count towards Intercom's cap.
    let in_use = existing.iter().filter(|a| a.custom && !a.archived).count();
    let list = classify(
        &existing,
        &store.attributes()?,
        &store.known_attributes()?,
        &store.held_value_counts()?,
        &prefix,
    );
    if !args.archive_stale {
        print_list(&list, in_use, args.json)?;
        return Ok(0);
    }

    let _lock = super::lock(settings, "attributes --archive-stale")?;
    let stale: Vec<&WorkspaceAttribute> = list
        .iter()
        .filter(|a| a.origin == Origin::Stale && !a.archived)
        .collect();
    let (ready, held): (Vec<_>, Vec<_>) =
        stale.into_iter().partition(|a| a.records_with_value == 0);
    for a in &held {
        println!(
            "not archiving {} attribute `{}`: {} records still hold a value we sent — run `intercom-push push` first, which clears it",
            a.model, a.name, a.records_with_value
        );
    }
    if ready.is_empty() {
        println!("no stale attribute is ready to archive");
        return Ok(0);
    }
    println!("stale attributes, cleared on every record we pushed:");
    for a in &ready {
        println!("  {} `{}` ({})", a.model, a.name, a.data_type);
    }
    if !args.yes && !confirm(ready.len())? {
        println!("nothing archived");
        return Ok(0);
    }
    for a in ready {
        let id = a.id.ok_or_else(|| {
            anyhow::anyhow!(
                "Intercom listed `{}` without an id: cannot archive it",
                a.name
            )
        })?;
        runtime.block_on(client.archive_data_attribute(id))?;
        println!("archived {} attribute `{}`", a.model, a.name);
    }
    Ok(0)
}

/// Asks on the terminal; without one, `--yes` is required.
fn confirm(count: usize) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(ConfigError::Invalid(
            "archiving needs confirmation: pass --yes (no terminal to ask on)".into(),
        )
        .into());
    }
    print!("Archive these {count} attributes in Intercom? Archiving cannot be undone from the API. [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn print_list(list: &[WorkspaceAttribute], in_use: usize, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::json!({ "attributes": list, "in_use": in_use, "cap": ATTRIBUTE_CAP })
        );
        return Ok(());
    }
    println!(
        "{:<8} {:<8} {:<9} {:>8}  name",
        "origin", "model", "type", "records"
    );
    for a in list {
        let origin = match a.origin {
            Origin::Current => "current",
            Origin::Stale => "stale",
            Origin::Foreign => "foreign",
        };
        let archived = if a.archived { " (archived)" } else { "" };
        println!(
            "{origin:<8} {:<8} {:<9} {:>8}  {}{archived}",
            a.model, a.data_type, a.records_with_value, a.name
        );
    }
    println!("workspace: {in_use} of Intercom's {ATTRIBUTE_CAP} custom attributes in use (archived ones do not count)");
    Ok(())
}
