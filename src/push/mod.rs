//! Push stage: sends every payload whose hash differs from what Intercom last accepted.
//!
//! Contract: never creates a company or contact (only `PUT` to ids found by lookups); a
//! record's pushed hash is written only after Intercom answered 2xx for it, one small
//! transaction per batch of finished records, so a crash re-sends at most the requests that
//! were in flight. "In flight" includes answered records whose outcome is not committed yet:
//! a record holds one of `concurrency` window permits from before its first request until the
//! writer has committed its outcome, so however slow the database, at most `concurrency`
//! writes can have been applied by Intercom without being recorded.
//!
//! The company directory ([`directory`]) streams into the push: each page's companies are
//! compared ([`reconcile`], when asked) and sent while the next pages are read, all within one
//! rate governor.

pub mod attributes;
pub mod bulk;
pub mod departures;
pub mod directory;
pub mod reconcile;
pub mod report;
pub mod resolve;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};

use crate::intercom::{ApiError, Client};
use crate::progress::Progress;
use crate::store::{PendingRecord, RecordOutcome, Store, StoreError, SyncRecord};
use bulk::{BulkReport, BulkSender, BulkSettings, Item};
use departures::{DepartureCounts, DepartureSettings};
use directory::DirectoryPage;
use reconcile::{ReconcileMode, Reconciler};
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
    /// The export lost more records than `max_departed` allows (exit 2).
    #[error("{0}")]
    Departed(String),
    /// Boxed: an API error carries the request's details, and every result here holds one.
    #[error(transparent)]
    Api(Box<ApiError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for PushError {
    fn from(error: ApiError) -> Self {
        PushError::Api(Box::new(error))
    }
}

/// What to push.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// Ignore stored hashes: send every payload.
    pub full_resync: bool,
    /// Compare what Intercom holds with what it last accepted, on the way (`run --reconcile`,
    /// `reconcile`).
    pub reconcile: Option<ReconcileMode>,
    /// Send what changed. Only `reconcile --mode report` sets it false: then nothing at all is
    /// written to Intercom.
    pub send: bool,
    /// What happens to records that left the export, and the guard on how many may.
    pub departures: DepartureSettings,
    /// Intercom's bulk updates (Preview API), when enabled.
    pub bulk: BulkSettings,
}

impl PushOptions {
    /// The ordinary push: send what changed (everything with `full_resync`), handle the
    /// departures and use the bulk updates as `settings` say.
    pub fn send(full_resync: bool, settings: &crate::config::Settings) -> PushOptions {
        PushOptions {
            full_resync,
            reconcile: None,
            send: true,
            departures: settings.departures,
            bulk: settings.bulk,
        }
    }
}

/// Records read from the database per page (memory stays bounded).
pub(crate) const PAGE: usize = 2000;
/// Unknown company ids above which the whole company directory is scrolled instead of one
/// lookup per company.
const DIRECTORY_THRESHOLD: u64 = 100;

/// Pushes changed payloads (and reconciles first, per record, when asked). `store` must hold
/// fresh payloads (see `transform::check_fresh`) unless nothing is sent. `run_id` is the
/// `runs` row of this push (reconcile records its drift under it).
pub fn push(
    store: &Store,
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    options: PushOptions,
    run_id: i64,
) -> Result<PushReport, PushError> {
    let started = Instant::now();
    let mut report = PushReport::default();
    let (mut pending, mut unknown) = (0, 0);
    if options.send {
        crate::transform::check_fresh(store).map_err(PushError::NotReady)?;
        // Before anything is written: an export that lost too much stops here.
        let departed = DepartureCounts::read(store)?;
        departures::guard(store, &options.departures, departed)?;
        (pending, unknown) = store.pending_counts("company", options.full_resync)?;
        pending += store.pending_counts("user", options.full_resync)?.0 + departed.total();
    }
    let mut reconciler = options
        .reconcile
        .map(|mode| Reconciler::start(store, mode, run_id))
        .transpose()?;
    if pending == 0 && reconciler.is_none() {
        // Nothing changed: not a single API call.
        store.remember_pushed_counts()?;
        count_unchanged(store, &mut report)?;
        report.duration_secs = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let bulk = options.send && options.bulk.enabled && bulk_answered(client, runtime, &mut report);
    // The company directory is read when reconciling, and when many ids are unknown (a first
    // run; the bulk path finds them with the company search instead). It starts now: its first
    // pages arrive while the data attributes are checked.
    let directory = (reconciler.is_some() || (unknown > DIRECTORY_THRESHOLD && !bulk))
        .then(|| directory::stream(client, runtime.handle(), reconciler.is_some()));
    let mut archived = HashSet::new();
    if options.send {
        let catalog = store.attributes()?;
        let stale = attributes::stale(store, &catalog)?;
        let ensured = runtime.block_on(attributes::ensure_attributes(client, &catalog, &stale))?;
        report.attributes_created = ensured.created;
        archived = ensured.archived;
        store.remember_attributes(&catalog)?;
    }
    let skipped = Arc::new(SkippedClears::new(archived));

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

    let context = Context {
        store,
        client,
        runtime,
        options,
        window,
        tx,
        skipped: skipped.clone(),
        bulk,
    };
    let mut gone = [KindReport::default(), KindReport::default()];
    let result = (|| -> Result<(), PushError> {
        if options.send {
            // Before any record is sent again: the tasks an earlier run left in flight.
            for (kind, counts) in [
                ("company", &mut report.companies),
                ("user", &mut report.users),
            ] {
                let (updated, resumed) = runtime.block_on(bulk::resume(
                    store,
                    client,
                    kind,
                    skipped.clone(),
                    options.bulk,
                ))?;
                counts.updated += updated;
                if resumed.resumed_tasks > 0 {
                    report
                        .bulk
                        .get_or_insert_with(Default::default)
                        .add(&resumed);
                }
            }
        }
        let bulk_companies = push_companies(
            &context,
            directory,
            reconciler.as_mut(),
            &mut report.companies,
            &mut report.warnings,
        )?;
        let bulk_users = push_users(&context, reconciler.as_mut(), &mut report.users)?;
        for done in [bulk_companies, bulk_users].into_iter().flatten() {
            report.bulk.get_or_insert_with(Default::default).add(&done);
        }
        if options.send {
            let mode = options.departures.mode;
            gone = [
                departures::handle(&context, "company", mode)?,
                departures::handle(&context, "user", mode)?,
            ];
        }
        Ok(())
    })();
    drop(context);
    let written = writer_thread
        .join()
        .unwrap_or_else(|_| Err(StoreError::Worker("the result writer panicked")));
    result?;
    written?;
    report.warnings.extend(skipped.warnings());
    if let Some(bulk) = &report.bulk {
        report.warnings.extend(bulk.warnings());
    }

    if options.send {
        count_unchanged(store, &mut report)?;
        let [companies, users] = gone;
        report.companies.add_departures(companies);
        report.users.add_departures(users);
        store.remember_pushed_counts()?;
    }
    report.reconcile = reconciler.map(Reconciler::finish);
    let stats = client.stats();
    report.api_calls = stats.requests_sent;
    report.rate_limited = stats.rate_limited;
    report.retries = stats.retries;
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// What every stage of one push shares.
struct Context<'a> {
    store: &'a Store,
    client: &'a Client,
    runtime: &'a tokio::runtime::Runtime,
    options: PushOptions,
    window: Arc<Semaphore>,
    tx: mpsc::Sender<Settled>,
    skipped: Arc<SkippedClears>,
    /// Changed records go out in bulk (`bulk = true`, and the workspace answers the Preview API).
    bulk: bool,
}

impl Context<'_> {
    /// The bulk sender of `kind`, when this push sends in bulk (on the current runtime).
    fn bulk_sender(&self, kind: &'static str) -> Result<Option<BulkSender>, PushError> {
        if !self.bulk {
            return Ok(None);
        }
        BulkSender::start(
            self.store,
            self.client,
            kind,
            self.skipped.clone(),
            self.options.bulk,
        )
        .map(Some)
    }
}

/// Whether the workspace answers the Preview API, asked once before a bulk push: when it does
/// not, the push warns and sends per record, as without `bulk`.
fn bulk_answered(
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    report: &mut PushReport,
) -> bool {
    match runtime.block_on(client.answers_preview()) {
        Ok(true) => true,
        answer => {
            let why = match answer {
                Err(e) => format!("asking failed: {e}"),
                _ => "it refused `Intercom-Version: Preview`".to_string(),
            };
            report.bulk = Some(BulkReport {
                fell_back: true,
                ..BulkReport::default()
            });
            report.warnings.push(format!("bulk = true, but the workspace does not answer Intercom's Preview API ({why}): this run pushed with per-record PUTs"));
            false
        }
    }
}

/// Clears left out of the PUTs because their attribute is archived in the workspace: Intercom
/// may refuse a write naming an archived attribute, even a `null`, and that record would fail
/// every night. The record then counts the attribute as cleared; one warning per attribute.
#[derive(Default)]
pub struct SkippedClears {
    /// Archived attribute name → clears left out.
    by_name: HashMap<String, AtomicU64>,
}

impl SkippedClears {
    pub fn new(archived: HashSet<String>) -> Self {
        SkippedClears {
            by_name: archived
                .into_iter()
                .map(|name| (name, AtomicU64::new(0)))
                .collect(),
        }
    }

    /// Whether the clear of `name` is left out (and counts it).
    fn skip(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .map(|n| n.fetch_add(1, Ordering::Relaxed))
            .is_some()
    }

    fn warnings(&self) -> Vec<String> {
        let mut skipped: Vec<(&String, u64)> = self
            .by_name
            .iter()
            .map(|(name, n)| (name, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        skipped.sort_unstable();
        skipped
            .into_iter()
            .map(|(name, n)| format!("`{name}` is archived in Intercom, so its value was not cleared on {n} records (Intercom may refuse any write naming an archived attribute); they now count it as cleared, and the values stay in Intercom, hidden with the attribute"))
            .collect()
    }
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

/// Runs one task per record inside the in-flight window and settles each outcome as its task
/// finishes. Whatever it waits for (a directory page, a search), it settles meanwhile, so a
/// finished record never holds its permit longer than the writer takes to commit it. At most
/// [`Dispatcher::queued_max`] tasks wait: reading stays a little ahead of sending, never far.
struct Dispatcher<'a> {
    tasks: JoinSet<Settled>,
    window: &'a Arc<Semaphore>,
    tx: &'a mpsc::Sender<Settled>,
    counts: &'a mut KindReport,
    progress: Progress,
    queued_max: usize,
}

impl<'a> Dispatcher<'a> {
    fn new(context: &'a Context, counts: &'a mut KindReport, progress: Progress) -> Self {
        Dispatcher {
            tasks: JoinSet::new(),
            window: &context.window,
            tx: &context.tx,
            counts,
            progress,
            queued_max: 2 * context.client.concurrency(),
        }
    }

    /// Queues `task`, which starts once it holds a window permit.
    async fn spawn(
        &mut self,
        task: impl Future<Output = SyncRecord> + Send + 'static,
    ) -> Result<(), PushError> {
        while self.tasks.len() >= self.queued_max {
            self.settle_next().await?;
        }
        let window = self.window.clone();
        self.tasks.spawn(async move {
            // The semaphore is never closed; `None` would only mean it was.
            let permit = window.acquire_owned().await.ok();
            (task.await, permit)
        });
        Ok(())
    }

    /// Awaits `work`, settling the tasks that finish meanwhile.
    async fn settle_while<T>(&mut self, work: impl Future<Output = T>) -> Result<T, PushError> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.settle(done)?,
            }
        }
    }

    /// Settles the next task to finish; false when none is left.
    async fn settle_next(&mut self) -> Result<bool, PushError> {
        match self.tasks.join_next().await {
            Some(done) => self.settle(done).map(|()| true),
            None => Ok(false),
        }
    }

    /// Counts an outcome and hands it, with its window permit, to the writer.
    fn settle(&mut self, done: Result<Settled, JoinError>) -> Result<(), PushError> {
        // A task only ends early if it panicked, which would be a bug: stop the run.
        let (record, permit) = done.map_err(|_| StoreError::Worker("a push task panicked"))?;
        self.progress.inc(1);
        let counts = &mut *self.counts;
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
            RecordOutcome::Departed { .. } => counts.departed += 1,
        }
        self.tx
            .send((record, permit))
            .map_err(|_| StoreError::Worker("the result writer stopped").into())
    }

    /// Settles every task left.
    async fn finish(mut self) -> Result<(), PushError> {
        while self.settle_next().await? {}
        Ok(())
    }
}

/// Companies: with the directory, each page's ids are remembered, the page is reconciled (when
/// asked) and its pending companies are sent while the next pages are read; then (or without
/// the directory) every other pending company, looked up by `company_id` when its id is unknown.
/// In bulk, a company whose id is known goes into a bulk request; unknown ids are searched a
/// page at a time, and the misses are looked up and sent one by one.
fn push_companies(
    context: &Context,
    directory: Option<tokio::sync::mpsc::Receiver<DirectoryPage>>,
    mut reconciler: Option<&mut Reconciler>,
    counts: &mut KindReport,
    warnings: &mut Vec<String>,
) -> Result<Option<BulkReport>, PushError> {
    let Context {
        store,
        client,
        options,
        ..
    } = *context;
    let push_company_task = |record: PendingRecord| {
        let (client, skipped) = (client.clone(), context.skipped.clone());
        async move { push_company(&client, &skipped, record).await }
    };
    context.runtime.block_on(async {
        let progress = Progress::new("pushing companies", "companies");
        let mut dispatcher = Dispatcher::new(context, counts, progress);
        let mut bulk = context.bulk_sender("company")?;
        let mut dispatched: HashSet<String> = HashSet::new();
        if let Some(mut pages) = directory {
            while let Some(page) = dispatcher.settle_while(pages.recv()).await? {
                let companies = match page {
                    Ok(companies) => companies,
                    Err(e) => {
                        warnings.push(match reconciler.as_deref_mut() {
                            Some(r) => {
                                r.incomplete();
                                format!("could not read the whole company directory ({e}): the companies after it were not reconciled; run it again")
                            }
                            None => format!("could not scroll the company list ({e}); looking companies up one by one"),
                        });
                        break;
                    }
                };
                let found: Vec<(String, String)> = companies
                    .iter()
                    .filter_map(|c| Some((c.company_id.clone()?, c.id.clone())))
                    .collect();
                let ids_found = store.remember_found_ids("company", &found)?;
                if let Some(r) = reconciler.as_deref_mut() {
                    r.company_ids_found(ids_found);
                    r.compare_companies(store, &companies)?;
                }
                if !options.send {
                    continue;
                }
                let keys: Vec<String> = found.into_iter().map(|(key, _)| key).collect();
                let page = store.pending_for_keys("company", options.full_resync, &keys)?;
                dispatched.extend(page.iter().map(|r| r.record_key.clone()));
                send_companies(context, &mut dispatcher, bulk.as_mut(), page).await?;
            }
        }
        if options.send {
            let mut after = 0;
            loop {
                let page = store.pending_page("company", options.full_resync, after, PAGE)?;
                let Some(last) = page.last() else { break };
                after = last.record_id;
                let page = page
                    .into_iter()
                    .filter(|r| !dispatched.contains(&r.record_key))
                    .collect();
                send_companies(context, &mut dispatcher, bulk.as_mut(), page).await?;
            }
        }
        let report = match bulk {
            Some(sender) => {
                let done = dispatcher.settle_while(sender.finish()).await??;
                dispatcher.counts.updated += done.updated;
                for Item { mut record, id } in done.resend {
                    record.intercom_id = Some(id);
                    dispatcher.spawn(push_company_task(record)).await?;
                }
                Some(done.report)
            }
            None => None,
        };
        dispatcher.finish().await?;
        Ok(report)
    })
}

/// Sends pending companies: each on its own, or, in bulk, those with a known id in bulk
/// requests, after a company search for the unknown ids (the misses on their own: the search
/// leaves out companies without users).
async fn send_companies(
    context: &Context<'_>,
    dispatcher: &mut Dispatcher<'_>,
    bulk: Option<&mut BulkSender>,
    page: Vec<PendingRecord>,
) -> Result<(), PushError> {
    let one_by_one = |record: PendingRecord| {
        let (client, skipped) = (context.client.clone(), context.skipped.clone());
        async move { push_company(&client, &skipped, record).await }
    };
    let Some(bulk) = bulk.filter(|b| !b.unavailable()) else {
        for record in page {
            dispatcher.spawn(one_by_one(record)).await?;
        }
        return Ok(());
    };
    let (known, unknown): (Vec<PendingRecord>, Vec<PendingRecord>) =
        page.into_iter().partition(|r| r.intercom_id.is_some());
    let mut items: Vec<Item> = known
        .into_iter()
        .filter_map(|record| {
            Some(Item {
                id: record.intercom_id.clone()?,
                record,
            })
        })
        .collect();
    let mut misses = Vec::new();
    if !unknown.is_empty() {
        let keys: Vec<String> = unknown.iter().map(|r| r.record_key.clone()).collect();
        match dispatcher
            .settle_while(resolve::search_companies(context.client, &keys))
            .await?
        {
            Ok((found, searches)) => {
                bulk.searched(searches);
                let pairs: Vec<(String, String)> = found.clone().into_iter().collect();
                context.store.remember_found_ids("company", &pairs)?;
                for record in unknown {
                    match found.get(&record.record_key) {
                        Some(id) => items.push(Item {
                            id: id.clone(),
                            record,
                        }),
                        None => misses.push(record),
                    }
                }
            }
            Err(e) => {
                if e.preview_unavailable() {
                    bulk.fall_back(&e);
                }
                misses.extend(unknown);
            }
        }
    }
    for item in items {
        dispatcher.settle_while(bulk.submit(item)).await??;
    }
    for record in misses {
        dispatcher.spawn(one_by_one(record)).await?;
    }
    Ok(())
}

/// Looks up (if its id is unknown) and updates one company; a 404 on the PUT drops the id and
/// re-resolves once.
async fn push_company(
    client: &Client,
    skipped: &SkippedClears,
    record: PendingRecord,
) -> SyncRecord {
    let outcome = async {
        let body = request_body(
            &record.payload,
            record.pushed_payload.as_deref(),
            true,
            skipped,
        );
        let mut id = match record.intercom_id.clone() {
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

/// Users, a page at a time: reconciled first when asked (which reads every user back), then
/// the pending ones are looked up when their id is unknown and sent, while the next page is read.
fn push_users(
    context: &Context,
    mut reconciler: Option<&mut Reconciler>,
    counts: &mut KindReport,
) -> Result<Option<BulkReport>, PushError> {
    let Context {
        store,
        client,
        options,
        ..
    } = *context;
    context.runtime.block_on(async {
        let progress = Progress::new("pushing users", "users");
        let mut dispatcher = Dispatcher::new(context, counts, progress);
        let mut bulk = context.bulk_sender("user")?;
        let mut after = 0;
        loop {
            let (page, mut looked_up) = match reconciler.as_deref_mut() {
                Some(r) => {
                    let records = store.record_page("user", after, PAGE)?;
                    let Some(last) = records.last() else { break };
                    after = last.record_id;
                    let looked_up = dispatcher
                        .settle_while(r.reconcile_users(client, store, &records))
                        .await??;
                    if !options.send {
                        continue;
                    }
                    let keys: Vec<String> = records.into_iter().map(|r| r.record_key).collect();
                    let pending = store.pending_for_keys("user", options.full_resync, &keys)?;
                    (pending, looked_up)
                }
                None => {
                    let page = store.pending_page("user", options.full_resync, after, PAGE)?;
                    let Some(last) = page.last() else { break };
                    after = last.record_id;
                    (page, HashMap::new())
                }
            };
            let (unresolved, keys): (Vec<String>, Vec<UserKeys>) = page
                .iter()
                .filter(|r| r.intercom_id.is_none() && !looked_up.contains_key(&r.record_key))
                .map(|r| (r.record_key.clone(), user_keys(&r.payload)))
                .unzip();
            let matches = dispatcher
                .settle_while(resolve::resolve_contacts(client, &keys))
                .await??;
            looked_up.extend(unresolved.into_iter().zip(matches));
            for record in page {
                let found = match &record.intercom_id {
                    Some(id) => ContactMatch::Found(id.clone()),
                    None => looked_up
                        .remove(&record.record_key)
                        .unwrap_or(ContactMatch::NotFound),
                };
                match (bulk.as_mut().filter(|b| !b.unavailable()), found) {
                    (Some(sender), ContactMatch::Found(id)) => {
                        dispatcher
                            .settle_while(sender.submit(Item { record, id }))
                            .await??;
                    }
                    (_, found) => {
                        let (client, skipped) = (client.clone(), context.skipped.clone());
                        dispatcher
                            .spawn(async move { push_user(&client, &skipped, record, found).await })
                            .await?;
                    }
                }
            }
        }
        let report = match bulk {
            Some(sender) => {
                let done = dispatcher.settle_while(sender.finish()).await??;
                dispatcher.counts.updated += done.updated;
                for Item { record, id } in done.resend {
                    let (client, skipped) = (client.clone(), context.skipped.clone());
                    let found = ContactMatch::Found(id);
                    dispatcher
                        .spawn(async move { push_user(&client, &skipped, record, found).await })
                        .await?;
                }
                Some(done.report)
            }
            None => None,
        };
        dispatcher.finish().await?;
        Ok(report)
    })
}

/// Updates one contact; 404 or 410 (`contact_merged`) re-resolves once.
async fn push_user(
    client: &Client,
    skipped: &SkippedClears,
    record: PendingRecord,
    found: ContactMatch,
) -> SyncRecord {
    let outcome = async {
        let mut id = match found {
            ContactMatch::Found(id) => id,
            ContactMatch::NotFound => return Ok(RecordOutcome::NotFound),
            ContactMatch::Ambiguous(reason) => return Ok(RecordOutcome::Ambiguous(reason)),
        };
        let body = request_body(
            &record.payload,
            record.pushed_payload.as_deref(),
            false,
            skipped,
        );
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

pub(crate) fn user_keys(payload: &str) -> UserKeys {
    let value: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    UserKeys {
        external_id: text("external_id"),
        email: text("email"),
    }
}

/// The PUT body for a payload: its custom attributes (and monthly_spend for companies), plus
/// `null` for every attribute Intercom accepted from us before that the payload no longer
/// has, which clears it, unless `skipped` leaves that clear out. Keys we never sent are never
/// touched.
pub fn request_body(
    payload: &str,
    pushed_payload: Option<&str>,
    company: bool,
    skipped: &SkippedClears,
) -> Value {
    let payload: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let mut attributes: Map<String, Value> = payload
        .get("custom_attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(old) = pushed_payload.and_then(|p| serde_json::from_str::<Value>(p).ok()) {
        if let Some(old_attributes) = old.get("custom_attributes").and_then(Value::as_object) {
            for key in old_attributes.keys() {
                if !attributes.contains_key(key) && !skipped.skip(key) {
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
        let none = SkippedClears::default();
        let body = request_body(new, Some(old), true, &none);
        assert_eq!(
            body,
            serde_json::json!({"custom_attributes": {"V Old": null, "V Kept": 2, "V New": true}})
        );
        let archived = SkippedClears::new(HashSet::from(["V Old".to_string()]));
        let body = request_body(new, Some(old), true, &archived);
        assert_eq!(
            body,
            serde_json::json!({"custom_attributes": {"V Kept": 2, "V New": true}}),
            "the clear of an archived attribute is left out"
        );
        assert_eq!(archived.warnings().len(), 1);
        let first = request_body(new, None, true, &none);
        assert_eq!(
            first,
            serde_json::json!({"custom_attributes": {"V Kept": 2, "V New": true}})
        );
    }
}
