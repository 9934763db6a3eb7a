//! Push stage: sends every payload whose hash differs from what Intercom last accepted.
//!
//! Contract: never creates a company or contact (only `PUT` to ids found by lookups); a
//! record's pushed hash is written only after Intercom answered 2xx for it, one small
//! transaction per batch of finished records, so a crash re-sends at most the requests that
//! were in flight. "In flight" includes answered records whose outcome is not committed yet:
//! a record holds one of `concurrency` window permits from before its first request until the
//! writer has committed its outcome, so however slow the database, at most `concurrency`
//! writes can have been applied by Intercom without being recorded.

pub mod attributes;
pub mod report;
pub mod resolve;

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::intercom::{ApiError, Client};
use crate::progress::Progress;
use crate::store::{PendingRecord, RecordOutcome, Store, StoreError, SyncRecord};
use report::{KindReport, PushReport};
use resolve::{ContactMatch, UserKeys};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A data attribute conflict or the workspace cap: the user must act (exit 2).
    #[error("{0}")]
    Attributes(String),
    /// Payloads are missing or stale (exit 2).
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to push.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushOptions {
    /// Ignore stored hashes: send every payload.
    pub full_resync: bool,
}

/// Records read from the database per page (memory stays bounded).
const PAGE: usize = 2000;
/// Unknown company ids above which the whole company directory is scrolled instead of one
/// lookup per company.
const DIRECTORY_THRESHOLD: u64 = 100;

/// Pushes changed payloads. `store` must hold fresh payloads (see `transform::check_fresh`).
pub fn push(
    store: &Store,
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    options: PushOptions,
) -> Result<PushReport, PushError> {
    let started = Instant::now();
    crate::transform::check_fresh(store).map_err(PushError::NotReady)?;
    let mut report = PushReport::default();
    let nothing_pending = store.pending_counts("company", options.full_resync)?.0
        + store.pending_counts("user", options.full_resync)?.0
        == 0;
    if nothing_pending {
        // Nothing changed: not a single API call.
        count_unchanged(store, &mut report)?;
        report.duration_secs = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let catalog = store.attributes()?;
    let stale: Vec<String> = store
        .known_attributes()?
        .into_iter()
        .filter(|(model, name)| !catalog.iter().any(|c| c.model == model && &c.name == name))
        .map(|(_, name)| name)
        .collect();
    report.attributes_created =
        runtime.block_on(attributes::ensure_attributes(client, &catalog, &stale))?;
    store.remember_attributes(&catalog)?;

    // The in-flight window: a record holds a permit until its outcome is committed.
    let window = Arc::new(Semaphore::new(client.concurrency()));
    let (tx, rx) = mpsc::channel::<Settled>();
    let mut writer = store.sync_writer()?;
    let writer_thread = std::thread::spawn(move || -> Result<(), StoreError> {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
                if batch.len() >= 256 {
                    break;
                }
            }
            let (records, permits): (Vec<SyncRecord>, Vec<_>) = batch.into_iter().unzip();
            writer.record(&records)?;
            drop(permits); // committed: these records leave the window
        }
        Ok(())
    });

    let result = (|| -> Result<(), PushError> {
        push_companies(
            store,
            client,
            runtime,
            options,
            &window,
            &tx,
            &mut report.companies,
            &mut report.warnings,
        )?;
        push_users(
            store,
            client,
            runtime,
            options,
            &window,
            &tx,
            &mut report.users,
        )?;
        Ok(())
    })();
    drop(tx);
    let written = writer_thread
        .join()
        .unwrap_or_else(|_| Err(StoreError::Worker("the result writer panicked")));
    result?;
    written?;

    count_unchanged(store, &mut report)?;
    let stats = client.stats();
    report.api_calls = stats.requests_sent;
    report.rate_limited = stats.rate_limited;
    report.retries = stats.retries;
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Records that were not attempted are unchanged.
fn count_unchanged(store: &Store, report: &mut PushReport) -> Result<(), StoreError> {
    for (kind, total, _) in store.payload_counts()? {
        let k = if kind == "company" {
            &mut report.companies
        } else {
            &mut report.users
        };
        let attempted = k.updated + k.not_found + k.ambiguous + k.failed;
        k.unchanged = (total as u64).saturating_sub(attempted);
    }
    Ok(())
}

/// A finished record and its window permit (released once the writer committed it).
type Settled = (SyncRecord, Option<OwnedSemaphorePermit>);

/// Takes a window permit (the semaphore is never closed; `None` would only mean it was).
async fn enter(window: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    window.clone().acquire_owned().await.ok()
}

/// Settles every task's outcome as it finishes.
async fn drain(
    mut tasks: JoinSet<Settled>,
    progress: &Progress,
    tx: &mpsc::Sender<Settled>,
    counts: &mut KindReport,
) -> Result<(), PushError> {
    while let Some(done) = tasks.join_next().await {
        // A task only ends early if it panicked, which would be a bug: stop the run.
        let settled = done.map_err(|_| StoreError::Worker("a push task panicked"))?;
        progress.inc(1);
        settle(tx, counts, settled)?;
    }
    Ok(())
}

/// Counts an outcome and hands it, with its window permit, to the writer.
fn settle(
    tx: &mpsc::Sender<Settled>,
    counts: &mut KindReport,
    (record, permit): Settled,
) -> Result<(), PushError> {
    match &record.outcome {
        RecordOutcome::Updated { .. } => counts.updated += 1,
        RecordOutcome::NotFound => counts.not_found += 1,
        RecordOutcome::Ambiguous(reason) => {
            counts.ambiguous += 1;
            counts.problem(&record.record_key, "ambiguous", reason.clone());
        }
        RecordOutcome::Failed(reason) => {
            counts.failed += 1;
            counts.problem(&record.record_key, "failed", reason.clone());
        }
    }
    tx.send((record, permit))
        .map_err(|_| StoreError::Worker("the result writer stopped").into())
}

fn push_companies(
    store: &Store,
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    options: PushOptions,
    window: &Arc<Semaphore>,
    tx: &mpsc::Sender<Settled>,
    counts: &mut KindReport,
    warnings: &mut Vec<String>,
) -> Result<(), PushError> {
    let (pending, unknown) = store.pending_counts("company", options.full_resync)?;
    if pending == 0 {
        return Ok(());
    }
    let mut directory: Option<HashMap<String, String>> = None;
    if unknown > DIRECTORY_THRESHOLD {
        match runtime.block_on(resolve::company_directory(client)) {
            Ok(found) => directory = Some(found),
            Err(e) => warnings.push(format!(
                "could not scroll the company list ({e}); looking companies up one by one"
            )),
        }
    }
    let progress = Progress::new("pushing companies", "companies");
    let mut after = 0;
    loop {
        let page = store.pending_page("company", options.full_resync, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.record_id;
        runtime.block_on(async {
            let mut tasks = JoinSet::new();
            for record in page {
                let known = record.intercom_id.clone().or_else(|| {
                    directory
                        .as_ref()
                        .and_then(|d| d.get(&record.record_key).cloned())
                });
                let client = client.clone();
                let window = window.clone();
                tasks.spawn(async move {
                    let permit = enter(&window).await;
                    (push_company(&client, record, known).await, permit)
                });
            }
            drain(tasks, &progress, tx, counts).await
        })?;
    }
    Ok(())
}

/// Looks up (if needed) and updates one company; a 404 on the PUT drops the id and
/// re-resolves once.
async fn push_company(
    client: &Client,
    record: PendingRecord,
    known_id: Option<String>,
) -> SyncRecord {
    let outcome = async {
        let body = request_body(&record.payload, record.pushed_payload.as_deref(), true);
        let mut id = match known_id {
            Some(id) => id,
            None => match client.find_company(&record.record_key).await? {
                Some(company) => company.id,
                None => return Ok(RecordOutcome::NotFound),
            },
        };
        for attempt in 0..2 {
            match client.update_company(&id, &body).await {
                Ok(()) => return Ok(updated(id, &record)),
                Err(e) if e.is_not_found() && attempt == 0 => {
                    match client.find_company(&record.record_key).await? {
                        Some(company) => id = company.id,
                        None => return Ok(RecordOutcome::NotFound),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(RecordOutcome::NotFound)
    }
    .await
    .unwrap_or_else(|e: ApiError| RecordOutcome::Failed(e.to_string()));
    SyncRecord {
        kind: "company",
        record_id: record.record_id,
        record_key: record.record_key,
        outcome,
    }
}

fn updated(intercom_id: String, record: &PendingRecord) -> RecordOutcome {
    RecordOutcome::Updated {
        intercom_id,
        hash: record.hash.clone(),
        stored: record.stored.clone(),
    }
}

fn push_users(
    store: &Store,
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    options: PushOptions,
    window: &Arc<Semaphore>,
    tx: &mpsc::Sender<Settled>,
    counts: &mut KindReport,
) -> Result<(), PushError> {
    let progress = Progress::new("pushing users", "users");
    let mut after = 0;
    loop {
        let page = store.pending_page("user", options.full_resync, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.record_id;
        runtime.block_on(async {
            let unresolved: Vec<(usize, UserKeys)> = page
                .iter()
                .enumerate()
                .filter(|(_, r)| r.intercom_id.is_none())
                .map(|(i, r)| (i, user_keys(&r.payload)))
                .collect();
            let keys: Vec<UserKeys> = unresolved.iter().map(|(_, k)| k.clone()).collect();
            let matches = resolve::resolve_contacts(client, &keys).await?;
            let mut resolved: HashMap<usize, ContactMatch> =
                unresolved.iter().map(|(i, _)| *i).zip(matches).collect();
            let mut tasks = JoinSet::new();
            for (i, record) in page.into_iter().enumerate() {
                let found = match &record.intercom_id {
                    Some(id) => ContactMatch::Found(id.clone()),
                    None => resolved.remove(&i).unwrap_or(ContactMatch::NotFound),
                };
                let client = client.clone();
                let window = window.clone();
                tasks.spawn(async move {
                    let permit = enter(&window).await;
                    (push_user(&client, record, found).await, permit)
                });
            }
            drain(tasks, &progress, tx, counts).await
        })?;
    }
    Ok(())
}

/// Updates one contact; 404 or 410 (`contact_merged`) re-resolves once.
async fn push_user(client: &Client, record: PendingRecord, found: ContactMatch) -> SyncRecord {
    let outcome = async {
        let mut id = match found {
            ContactMatch::Found(id) => id,
            ContactMatch::NotFound => return Ok(RecordOutcome::NotFound),
            ContactMatch::Ambiguous(reason) => return Ok(RecordOutcome::Ambiguous(reason)),
        };
        let body = request_body(&record.payload, record.pushed_payload.as_deref(), false);
        for attempt in 0..2 {
            match client.update_contact(&id, &body).await {
                Ok(()) => return Ok(updated(id, &record)),
                Err(e) if attempt == 0 && (e.is_not_found() || e.status == Some(410)) => {
                    match resolve::resolve_contacts(client, &[user_keys(&record.payload)])
                        .await?
                        .pop()
                    {
                        Some(ContactMatch::Found(new_id)) => id = new_id,
                        Some(ContactMatch::Ambiguous(reason)) => {
                            return Ok(RecordOutcome::Ambiguous(reason))
                        }
                        _ => return Ok(RecordOutcome::NotFound),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(RecordOutcome::NotFound)
    }
    .await
    .unwrap_or_else(|e: ApiError| RecordOutcome::Failed(e.to_string()));
    SyncRecord {
        kind: "user",
        record_id: record.record_id,
        record_key: record.record_key,
        outcome,
    }
}

fn user_keys(payload: &str) -> UserKeys {
    let value: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    UserKeys {
        external_id: text("external_id"),
        email: text("email"),
    }
}

/// The PUT body for a payload: its custom attributes (and monthly_spend for companies), plus
/// `null` for every attribute Intercom accepted from us before that the payload no longer
/// has, which clears it. Keys we never sent are never touched.
pub fn request_body(payload: &str, pushed_payload: Option<&str>, company: bool) -> Value {
    let payload: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let mut attributes: Map<String, Value> = payload
        .get("custom_attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(old) = pushed_payload.and_then(|p| serde_json::from_str::<Value>(p).ok()) {
        if let Some(old_attributes) = old.get("custom_attributes").and_then(Value::as_object) {
            for key in old_attributes.keys() {
                if !attributes.contains_key(key) {
                    attributes.insert(key.clone(), Value::Null);
                }
            }
        }
    }
    let mut body = Map::new();
    if company {
        if let Some(spend) = payload.get("monthly_spend") {
            body.insert("monthly_spend".into(), spend.clone());
        }
    }
    body.insert("custom_attributes".into(), Value::Object(attributes));
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_clears_only_keys_we_sent_before() {
        let old =
            r#"{"company_id":"a","custom_attributes":{"V Old":3,"V Kept":1},"monthly_spend":5}"#;
        let new = r#"{"company_id":"a","custom_attributes":{"V Kept":2,"V New":true}}"#;
        let body = request_body(new, Some(old), true);
        assert_eq!(
            body,
            serde_json::json!({"custom_attributes": {"V Old": null, "V Kept": 2, "V New": true}})
        );
        let first = request_body(new, None, true);
        assert_eq!(
            first,
            serde_json::json!({"custom_attributes": {"V Kept": 2, "V New": true}})
        );
    }
}
