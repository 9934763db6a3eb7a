//! Transform stage: reads the extract, computes every company's and user's canonical
//! payload and hash in parallel (rayon), and replaces the payload rows through a single
//! SQLite writer. Same extract + same settings ⇒ same bytes and hashes, in any thread order.

pub mod hash;
pub mod mapping;
pub mod payload;
pub mod start_case;

use std::collections::HashSet;
use std::sync::mpsc;

use rayon::prelude::*;

use crate::extract::typing::Kind;
use crate::progress::Progress;
use crate::store::{AccountChunk, Store, StoreError, UserRecord};
use mapping::{Mapping, MappingSettings};
use payload::{company_payload, user_payload, AccountChildren};

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("{0}")]
    Collision(String),
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a transform did.
#[derive(Debug, Default)]
pub struct TransformSummary {
    pub companies: u64,
    pub users: u64,
    pub attributes: usize,
    pub warnings: Vec<String>,
    /// Nothing to compute: the payloads already match the extract and the settings.
    pub up_to_date: bool,
}

/// Accounts per chunk handed from the reader thread to the workers.
const CHUNK: i64 = 4096;

/// Computes all payloads for the current extract with `settings`.
pub fn transform(
    store: &mut Store,
    settings: &MappingSettings,
) -> Result<TransformSummary, TransformError> {
    let extract_version = store.require_extract().map_err(|e| match e {
        // Running transform before any load is a usage error (exit 2), not a database one.
        StoreError::NoExtract { .. } => TransformError::Settings(e.to_string()),
        other => TransformError::Store(other),
    })?;
    let tool = concat!("intercom-push ", env!("CARGO_PKG_VERSION"));
    let fresh = store.meta("payload_extract_version")?.as_deref()
        == Some(extract_version.to_string().as_str())
        && store.meta("mapping")?.as_deref() == Some(settings.version().as_str())
        && store.meta("payload_tool")?.as_deref() == Some(tool);
    if fresh {
        // Same extract, same settings, same tool: the payloads are already these.
        let counts = store.payload_counts()?;
        let total = |kind: &str| {
            counts
                .iter()
                .find(|c| c.0 == kind)
                .map_or(0, |c| c.1 as u64)
        };
        return Ok(TransformSummary {
            companies: total("company"),
            users: total("user"),
            up_to_date: true,
            ..Default::default()
        });
    }
    let fields: Vec<(String, Kind)> = store
        .account_fields()?
        .into_iter()
        .map(|(name, kind)| (name, Kind::parse(&kind).unwrap_or(Kind::String)))
        .collect();
    let metrics: Vec<(i64, String, Kind)> = store
        .metrics()?
        .into_iter()
        .map(|(key, name, kind)| (key, name, Kind::parse(&kind).unwrap_or(Kind::String)))
        .collect();
    let mapping = Mapping::build(settings, &fields, &store.elements()?, &metrics)?;
    let owners: HashSet<String> = store.owner_refs()?.into_iter().collect();
    let users_by_id = store.meta("users_have_id")?.as_deref() == Some("1");
    let max_key = store.max_account_key()?;
    let reader = store.reopen()?;

    let mut summary = TransformSummary {
        attributes: mapping.attributes.len(),
        ..Default::default()
    };
    summary.warnings.extend(mapping.warnings.iter().cloned());
    let mut clamped = 0u64;
    let progress = Progress::new("computing payloads", "accounts");

    let writer = store.payload_writer()?;
    for attribute in &mapping.attributes {
        writer.insert_attribute(attribute)?;
    }
    let reader = std::thread::scope(|scope| -> Result<Store, TransformError> {
        // Reader thread: chunks of accounts with their child rows, two chunks ahead at most.
        let (tx, rx) = mpsc::sync_channel::<Result<AccountChunk, StoreError>>(2);
        let reading = scope.spawn(move || {
            let mut lo = 1;
            while lo <= max_key {
                let chunk = reader.account_chunk(lo, lo + CHUNK);
                let failed = chunk.is_err();
                if tx.send(chunk).is_err() || failed {
                    break;
                }
                lo += CHUNK;
            }
            reader
        });
        for chunk in rx {
            let chunk = chunk?;
            let computed: Vec<(String, [u8; 16], bool)> = chunk
                .accounts
                .par_iter()
                .map(|account| {
                    let children = AccountChildren {
                        counts: slice_for(&chunk.counts, account.key, |r| r.0),
                        metric_values: slice_for(&chunk.metric_values, account.key, |r| r.0),
                        labels: slice_for(&chunk.labels, account.key, |r| r.0),
                    };
                    let (json, notes) = company_payload(&mapping, account, &children);
                    let hash = hash::payload_hash(&mapping.version, json.as_bytes());
                    (json, hash, notes.monthly_spend_clamped)
                })
                .collect();
            for (account, (json, hash, was_clamped)) in chunk.accounts.iter().zip(&computed) {
                writer.insert_payload("company", &account.external_id, json, hash)?;
                clamped += u64::from(*was_clamped);
            }
            summary.companies += computed.len() as u64;
            progress.inc(computed.len() as u64);
        }
        reading
            .join()
            .map_err(|_| TransformError::Store(StoreError::Worker("the reader thread panicked")))
    })?;
    progress.finish();

    let users = reader.users()?;
    // An owner is named by the users' `id` when they have one, else by their externalId.
    let reference_of = |user: &UserRecord| {
        if users_by_id {
            user.vitally_id.clone()
        } else {
            user.external_id.clone()
        }
    };
    let computed: Vec<(String, String, [u8; 16])> = users
        .par_iter()
        .map(|user| {
            let is_owner = reference_of(user).is_some_and(|r| owners.contains(&r));
            let json = user_payload(&mapping, user, is_owner);
            let hash = hash::payload_hash(&mapping.version, json.as_bytes());
            (user.record_key(), json, hash)
        })
        .collect();
    let matched_owners: HashSet<String> = users
        .iter()
        .filter_map(reference_of)
        .filter(|r| owners.contains(r))
        .collect();
    let unmatched_owners = owners.len() - matched_owners.len();
    for (key, json, hash) in &computed {
        writer.insert_payload("user", key, json, hash)?;
    }
    summary.users = computed.len() as u64;
    writer.set_meta("payload_extract_version", &extract_version.to_string())?;
    writer.set_meta("mapping", &mapping.version)?;
    writer.set_meta("prefix", &settings.prefix)?;
    writer.set_meta("payload_tool", tool)?;
    writer.commit()?;

    if clamped > 0 {
        summary.warnings.push(format!(
            "{clamped} accounts have an MRR outside Intercom's monthly_spend range [0, {}]; sent clamped",
            payload::MONTHLY_SPEND_MAX
        ));
    }
    if unmatched_owners > 0 {
        summary.warnings.push(format!(
            "{unmatched_owners} accountOwnerId values match no user (by {}); those owners get no contact update",
            if users_by_id { "id" } else { "externalId" }
        ));
    }
    Ok(summary)
}

/// The run of `rows` (sorted by account key) belonging to `account`.
fn slice_for<T>(rows: &[T], account: i64, key: impl Fn(&T) -> i64) -> &[T] {
    let start = rows.partition_point(|r| key(r) < account);
    let end = rows.partition_point(|r| key(r) <= account);
    &rows[start..end]
}

/// Whether the payloads were computed from the current extract; the message says which
/// command brings them up to date.
pub fn check_fresh(store: &Store) -> Result<(), String> {
    let extract = store.meta("extract_version").ok().flatten();
    if extract.is_none() {
        return Err("no export loaded yet: run `intercom-push load --input DIR` first".into());
    }
    if extract != store.meta("payload_extract_version").ok().flatten() {
        return Err(
            "the payloads are older than the last load: run `intercom-push transform` first".into(),
        );
    }
    Ok(())
}
