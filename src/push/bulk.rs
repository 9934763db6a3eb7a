//! Bulk push (Preview API, opt-in: `bulk = true` or `--bulk`): changed records go out in
//! `PUT /companies/bulk` and `PUT /contacts/bulk` requests of up to 100, each one task of an
//! asynchronous job, paced by the client's one governor.
//!
//! Contract:
//! - Only records whose Intercom id is known go out in bulk (an item names the record by `id`;
//!   an unknown id fails its item and never creates anything).
//! - A task Intercom accepted is kept in `bulk_tasks` from its 202 until its outcome is
//!   recorded. Its records get their pushed hash only when a poll of its job shows it
//!   `completed`, in the transaction that forgets it, with what its items carried.
//! - A task that ends `completed_with_errors` (Intercom does not say which item failed), that
//!   does not finish within `task_timeout`, or whose job Intercom no longer knows hands its
//!   records back: they are sent again one by one with the ordinary PUT, which gives
//!   Intercom's per-record error and the usual outcomes. So does a bulk request refused.
//! - A run first polls the tasks an earlier run left in flight ([`resume`]), before any record
//!   is sent again: a task still queued at Intercom must not land after a newer value.
//! - Each lane (one sender task) appends its tasks to its own job, one request at a time:
//!   a 202 lists every task of its job, and only a job no other request appends to tells
//!   which task is this request's. A closed job starts a new one.
//! - A workspace that does not answer the bulk endpoints (404 on the endpoint, 400 on the
//!   version) turns the rest of the run to per-record PUTs ([`BulkSender::unavailable`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{request_body, PushError, SkippedClears};
use crate::intercom::{ApiError, BulkJob, BulkTask, Client, Model, BULK_MAX_ITEMS};
use crate::store::{BulkItem, BulkTaskRow, PendingRecord, Store, StoreError, SyncWriter};

/// Default `bulk_task_timeout`.
pub const BULK_TASK_TIMEOUT: Duration = Duration::from_secs(600);
/// Polls come this often while tasks finish; while none does, they back off to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(8);
/// Tasks of one kind sent and not finished, at most: what they hold stays bounded (a task
/// that never finishes holds its place until its timeout).
const TASKS_IN_FLIGHT: usize = 512;

/// `bulk = true` and its timeout.
#[derive(Debug, Clone, Copy)]
pub struct BulkSettings {
    pub enabled: bool,
    /// How long a task may take before its records are sent again one by one.
    pub task_timeout: Duration,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            enabled: false,
            task_timeout: BULK_TASK_TIMEOUT,
        }
    }
}

/// What the bulk path did in one run (the report's `bulk` object).
#[derive(Debug, Default, Clone, Serialize)]
pub struct BulkReport {
    /// Bulk requests Intercom accepted (202), each one task of at most 100 records.
    pub requests: u64,
    pub tasks_completed: u64,
    /// Tasks that ended `completed_with_errors`: their records were sent again one by one.
    pub tasks_with_errors: u64,
    /// Tasks not finished within `bulk_task_timeout`, or whose job was gone.
    pub tasks_timed_out: u64,
    /// Job polls (`GET /companies/bulk/{id}`, `GET /contacts/bulk/{id}`).
    pub polls: u64,
    /// Company searches (`POST /companies/search`) resolving unknown company ids.
    pub searches: u64,
    /// Records sent again one by one (their task did not complete, or its request failed).
    pub resent: u64,
    /// Tasks an earlier run left in flight, polled first.
    pub resumed_tasks: u64,
    /// The workspace does not answer the bulk API: the run used per-record PUTs instead.
    pub fell_back: bool,
    /// Intercom's answer that showed it, when a bulk call (not the first probe) did.
    #[serde(skip)]
    pub refused: Option<String>,
}

impl BulkReport {
    /// Adds another kind's (or the resumed tasks') counts.
    pub fn add(&mut self, other: &BulkReport) {
        self.requests += other.requests;
        self.tasks_completed += other.tasks_completed;
        self.tasks_with_errors += other.tasks_with_errors;
        self.tasks_timed_out += other.tasks_timed_out;
        self.polls += other.polls;
        self.searches += other.searches;
        self.resent += other.resent;
        self.resumed_tasks += other.resumed_tasks;
        self.fell_back |= other.fell_back;
        if self.refused.is_none() {
            self.refused.clone_from(&other.refused);
        }
    }

    /// One line for the human report.
    pub fn render_human(&self) -> String {
        let mut line = format!(
            "bulk       {} requests: {} tasks completed, {} with errors, {} timed out; {} polls, {} company searches",
            self.requests, self.tasks_completed, self.tasks_with_errors, self.tasks_timed_out, self.polls, self.searches
        );
        if self.resent > 0 {
            line.push_str(&format!("; {} records sent again one by one", self.resent));
        }
        if self.resumed_tasks > 0 {
            line.push_str(&format!(
                "; {} tasks of an earlier run polled first",
                self.resumed_tasks
            ));
        }
        line.push('\n');
        line
    }

    /// What a user should hear about.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(refused) = &self.refused {
            warnings.push(format!("the workspace does not answer Intercom's bulk API ({refused}): the rest of this run pushed with per-record PUTs"));
        }
        if self.tasks_with_errors + self.tasks_timed_out > 0 {
            warnings.push(format!(
                "{} bulk tasks ended with errors and {} did not finish in time: their records were sent again one by one (each record's own outcome is in the counts)",
                self.tasks_with_errors, self.tasks_timed_out
            ));
        }
        warnings
    }
}

/// A record to send in bulk, with the Intercom id its item names.
pub struct Item {
    pub record: PendingRecord,
    pub id: String,
}

/// What every lane and the poller of one kind share.
struct Shared {
    client: Client,
    model: Model,
    kind: &'static str,
    skipped: Arc<SkippedClears>,
    timeout: Duration,
    /// Its own connection: tasks and their outcomes are written as they happen.
    writer: Mutex<SyncWriter>,
    report: Mutex<BulkReport>,
    /// Records whose bulk task did not complete, to be sent again one by one.
    resend: Mutex<Vec<Item>>,
    /// Records recorded as updated by a completed task.
    updated: AtomicU64,
    /// Why the bulk API is not available, once it answered so.
    unavailable: Mutex<Option<String>>,
    /// Places for tasks in flight (see [`TASKS_IN_FLIGHT`]).
    slots: Arc<tokio::sync::Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new(
        store: &Store,
        client: &Client,
        kind: &'static str,
        skipped: Arc<SkippedClears>,
        timeout: Duration,
    ) -> Result<Arc<Shared>, StoreError> {
        Ok(Arc::new(Shared {
            client: client.clone(),
            model: if kind == "company" {
                Model::Company
            } else {
                Model::Contact
            },
            kind,
            skipped,
            timeout,
            writer: Mutex::new(store.sync_writer()?),
            report: Mutex::new(BulkReport::default()),
            resend: Mutex::new(Vec::new()),
            updated: AtomicU64::new(0),
            unavailable: Mutex::new(None),
            slots: Arc::new(tokio::sync::Semaphore::new(TASKS_IN_FLIGHT)),
        }))
    }

    /// The bulk item of a record: its PUT body (clears included) plus its `id`.
    fn item_body(&self, item: &Item) -> Value {
        let mut body = request_body(
            &item.record.payload,
            item.record.pushed_payload.as_deref(),
            self.model == Model::Company,
            &self.skipped,
        );
        body["id"] = Value::String(item.id.clone());
        body
    }

    fn hand_back(&self, items: Vec<Item>) {
        lock(&self.resend).extend(items);
    }

    fn fall_back(&self, e: &ApiError) {
        lock(&self.unavailable).get_or_insert_with(|| e.to_string());
    }

    fn gave_up(&self) -> bool {
        lock(&self.unavailable).is_some()
    }

    /// Records a finished task: `completed` marks its records updated.
    fn finish(&self, task: InFlight, completed: bool) -> Result<(), StoreError> {
        lock(&self.writer).bulk_finished(&task.row, completed)?;
        if completed {
            self.updated
                .fetch_add(task.row.items.len() as u64, Ordering::Relaxed);
        } else if let Some(items) = task.items {
            self.hand_back(items);
        }
        Ok(())
    }
}

/// A task Intercom accepted, until its outcome is recorded.
struct InFlight {
    row: BulkTaskRow,
    /// The records as sent (`None` for a task an earlier run left: its records are read again).
    items: Option<Vec<Item>>,
    deadline: Instant,
    /// Its place among the tasks in flight, given back when it is recorded.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Unix seconds now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The bulk path of one kind: lanes sending requests, one poller recording outcomes.
pub struct BulkSender {
    shared: Arc<Shared>,
    batch: Vec<Item>,
    batches: Option<mpsc::Sender<Vec<Item>>>,
    lanes: JoinSet<Result<(), PushError>>,
    poller: tokio::task::JoinHandle<Result<(), PushError>>,
}

/// What a kind's bulk path did, once every task finished.
pub struct BulkDone {
    /// Records recorded as updated by completed tasks.
    pub updated: u64,
    /// Records to send again one by one, with the id their item named.
    pub resend: Vec<Item>,
    pub report: BulkReport,
}

impl BulkSender {
    /// Starts `lanes` senders and the poller of `kind` on the current runtime.
    pub fn start(
        store: &Store,
        client: &Client,
        kind: &'static str,
        skipped: Arc<SkippedClears>,
        settings: BulkSettings,
    ) -> Result<BulkSender, PushError> {
        let shared = Shared::new(store, client, kind, skipped, settings.task_timeout)?;
        let lanes_n = (client.concurrency() / 2).max(1);
        let (batches, queue) = mpsc::channel::<Vec<Item>>(lanes_n);
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let (to_poller, in_flight) = mpsc::unbounded_channel::<InFlight>();
        let mut lanes = JoinSet::new();
        for _ in 0..lanes_n {
            let (shared, queue, to_poller) = (shared.clone(), queue.clone(), to_poller.clone());
            lanes.spawn(lane(shared, queue, to_poller));
        }
        let poller = tokio::spawn(poll(shared.clone(), in_flight));
        Ok(BulkSender {
            shared,
            batch: Vec::with_capacity(BULK_MAX_ITEMS),
            batches: Some(batches),
            lanes,
            poller,
        })
    }

    /// Whether the workspace answered that it has no bulk API: send per record instead.
    pub fn unavailable(&self) -> bool {
        self.shared.gave_up()
    }

    /// Notes that the workspace answered a Preview call (the company search) as not available.
    pub fn fall_back(&self, e: &ApiError) {
        self.shared.fall_back(e);
    }

    /// Counts company searches made for this kind.
    pub fn searched(&self, searches: u64) {
        lock(&self.shared.report).searches += searches;
    }

    /// Queues a record for the next bulk request (sent once 100 are queued).
    pub async fn submit(&mut self, item: Item) -> Result<(), PushError> {
        self.batch.push(item);
        if self.batch.len() == BULK_MAX_ITEMS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PushError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BULK_MAX_ITEMS));
        let Some(batches) = &self.batches else {
            return Err(StoreError::Worker("the bulk sender was finished").into());
        };
        if batches.send(batch).await.is_err() {
            // Every lane stopped: one failed, and finishing says why.
            return Err(StoreError::Worker("the bulk senders stopped").into());
        }
        Ok(())
    }

    /// Sends what is queued and waits until every task finished or timed out.
    pub async fn finish(mut self) -> Result<BulkDone, PushError> {
        let flushed = self.flush().await;
        drop(self.batches.take());
        let mut failed = flushed.err();
        while let Some(done) = self.lanes.join_next().await {
            let result =
                done.unwrap_or_else(|_| Err(StoreError::Worker("a bulk sender panicked").into()));
            if let Err(e) = result {
                failed.get_or_insert(e);
            }
        }
        let polled = (&mut self.poller)
            .await
            .unwrap_or_else(|_| Err(StoreError::Worker("the bulk poller panicked").into()));
        if let Some(e) = failed {
            return Err(e);
        }
        polled?;
        let shared = &self.shared;
        let resend = std::mem::take(&mut *lock(&shared.resend));
        let mut report = lock(&shared.report).clone();
        report.resent = resend.len() as u64;
        report.refused = lock(&shared.unavailable).clone();
        report.fell_back = report.refused.is_some();
        Ok(BulkDone {
            updated: shared.updated.load(Ordering::Relaxed),
            resend,
            report,
        })
    }
}

/// Polls the tasks of `kind` an earlier run left in flight until each one finished or timed
/// out, and records them: `completed` ones as updated; the others' records stay pending and
/// are sent again by this run. Answers the records updated and the counts.
pub async fn resume(
    store: &Store,
    client: &Client,
    kind: &'static str,
    skipped: Arc<SkippedClears>,
    settings: BulkSettings,
) -> Result<(u64, BulkReport), PushError> {
    let left = store.bulk_tasks_left(kind)?;
    if left.is_empty() {
        return Ok((0, BulkReport::default()));
    }
    let shared = Shared::new(store, client, kind, skipped, settings.task_timeout)?;
    let (to_poller, in_flight) = mpsc::unbounded_channel::<InFlight>();
    let now = unix_now();
    lock(&shared.report).resumed_tasks = left.len() as u64;
    for row in left {
        let remaining = (row.sent_at + settings.task_timeout.as_secs() as i64 - now).max(0);
        let deadline = Instant::now() + Duration::from_secs(remaining as u64);
        // The receiver is alive: it is polled below.
        let _ = to_poller.send(InFlight {
            row,
            items: None,
            deadline,
            _slot: None,
        });
    }
    drop(to_poller);
    poll(shared.clone(), in_flight).await?;
    let report = lock(&shared.report).clone();
    Ok((shared.updated.load(Ordering::Relaxed), report))
}

/// One lane: takes batches from `queue`, sends each as a task appended to this lane's job, keeps
/// the accepted task and hands it to the poller.
async fn lane(
    shared: Arc<Shared>,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<Item>>>>,
    to_poller: mpsc::UnboundedSender<InFlight>,
) -> Result<(), PushError> {
    let mut job: Option<String> = None;
    // The tasks of `job` this lane already claimed.
    let mut claimed: HashSet<String> = HashSet::new();
    loop {
        let Some(items) = queue.lock().await.recv().await else {
            return Ok(());
        };
        if shared.gave_up() {
            shared.hand_back(items);
            continue;
        }
        let bodies: Vec<Value> = items.iter().map(|i| shared.item_body(i)).collect();
        // The semaphore is never closed.
        let slot = shared.slots.clone().acquire_owned().await.ok();
        let answer = loop {
            match shared
                .client
                .bulk_update(shared.model, bodies.clone(), job.as_deref())
                .await
            {
                // A closed job (403), or one Intercom no longer knows: start a new one.
                Err(e) if job.is_some() && matches!(e.status, Some(403 | 404)) => {
                    job = None;
                    claimed.clear();
                }
                other => break other,
            }
        };
        let answer: BulkJob = match answer {
            Ok(answer) => answer,
            Err(e) => {
                if e.preview_unavailable() {
                    shared.fall_back(&e);
                }
                shared.hand_back(items);
                continue;
            }
        };
        if job.as_deref() != Some(answer.id.as_str()) {
            claimed.clear();
        }
        let mine: Vec<&str> = answer
            .tasks
            .iter()
            .map(|t| t.id.as_str())
            .filter(|id| !claimed.contains(*id))
            .collect();
        let [task_id] = mine.as_slice() else {
            // Not one new task: which one is ours cannot be told. Send these records again
            // one by one (the same values), and start a new job.
            shared.hand_back(items);
            job = None;
            claimed.clear();
            continue;
        };
        let task_id = task_id.to_string();
        claimed.insert(task_id.clone());
        job = Some(answer.id.clone());
        let row = BulkTaskRow {
            task_id,
            kind: shared.kind,
            job_id: answer.id,
            sent_at: unix_now(),
            items: items
                .iter()
                .map(|i| BulkItem {
                    record_id: i.record.record_id,
                    record_key: i.record.record_key.clone(),
                    intercom_id: i.id.clone(),
                    hash: i.record.hash.clone(),
                    payload: i.record.stored.clone(),
                })
                .collect(),
        };
        lock(&shared.writer).bulk_sent(&row)?;
        lock(&shared.report).requests += 1;
        let task = InFlight {
            row,
            items: Some(items),
            deadline: Instant::now() + shared.timeout,
            _slot: slot,
        };
        if let Err(mpsc::error::SendError(task)) = to_poller.send(task) {
            // The poller stopped (it failed, and finishing says why): the task stays in
            // `bulk_tasks` for the next run.
            drop(task);
            return Ok(());
        }
    }
}

/// The poller: polls the jobs of the tasks in flight (one `GET` per job per round, backing off
/// while nothing finishes) and records each task's outcome, until no task is left and no lane
/// can send more.
async fn poll(
    shared: Arc<Shared>,
    mut in_flight: mpsc::UnboundedReceiver<InFlight>,
) -> Result<(), PushError> {
    let mut jobs: BTreeMap<String, Vec<InFlight>> = BTreeMap::new();
    let mut open = true;
    let mut interval = POLL_FIRST;
    let mut next_poll = Instant::now() + interval;
    loop {
        if jobs.is_empty() {
            if !open {
                return Ok(());
            }
            match in_flight.recv().await {
                Some(task) => jobs.entry(task.row.job_id.clone()).or_default().push(task),
                None => open = false,
            }
            interval = POLL_FIRST;
            next_poll = Instant::now() + interval;
            continue;
        }
        tokio::select! {
            task = in_flight.recv(), if open => match task {
                Some(task) => jobs.entry(task.row.job_id.clone()).or_default().push(task),
                None => open = false,
            },
            () = tokio::time::sleep_until(next_poll.into()) => {
                let finished = poll_round(&shared, &mut jobs).await?;
                interval = if finished > 0 { POLL_FIRST } else { (interval * 2).min(POLL_MAX) };
                next_poll = Instant::now() + interval;
            }
        }
    }
}

/// Polls every job with tasks in flight, at once, and records the tasks that finished or
/// timed out. Answers how many did.
async fn poll_round(
    shared: &Shared,
    jobs: &mut BTreeMap<String, Vec<InFlight>>,
) -> Result<usize, PushError> {
    let mut polls = JoinSet::new();
    for job in jobs.keys() {
        let (client, model, job) = (shared.client.clone(), shared.model, job.clone());
        polls.spawn(async move {
            let answer = client.bulk_job(model, &job).await;
            (job, answer)
        });
    }
    let mut finished = 0;
    while let Some(done) = polls.join_next().await {
        let (job, answer) = done.map_err(|_| StoreError::Worker("a bulk poll panicked"))?;
        let Some(tasks) = jobs.remove(&job) else {
            continue;
        };
        let now = Instant::now();
        let seen = match &answer {
            Ok(found) => {
                lock(&shared.report).polls += 1;
                Seen::Job(&found.tasks)
            }
            // The job is gone (or the bulk API with it): its tasks' outcome cannot be known.
            Err(e) if e.status == Some(404) || e.preview_unavailable() => Seen::Gone,
            // A poll that failed after the client's retries: asked again next round.
            Err(_) => Seen::Unknown,
        };
        let mut waiting = Vec::new();
        for task in tasks {
            let outcome = match seen {
                Seen::Job(tasks) => match tasks.iter().find(|t| t.id == task.row.task_id) {
                    Some(t) if t.state == "completed" => Some(Finished::Completed),
                    Some(t) if t.state == "completed_with_errors" => Some(Finished::WithErrors),
                    _ => None,
                },
                Seen::Gone => Some(Finished::TimedOut),
                Seen::Unknown => None,
            }
            .or((now >= task.deadline).then_some(Finished::TimedOut));
            match outcome {
                Some(how) => {
                    {
                        let mut report = lock(&shared.report);
                        match how {
                            Finished::Completed => report.tasks_completed += 1,
                            Finished::WithErrors => report.tasks_with_errors += 1,
                            Finished::TimedOut => report.tasks_timed_out += 1,
                        }
                    }
                    shared.finish(task, how == Finished::Completed)?;
                    finished += 1;
                }
                None => waiting.push(task),
            }
        }
        if !waiting.is_empty() {
            jobs.insert(job, waiting);
        }
    }
    Ok(finished)
}

/// What a poll told of a job.
#[derive(Clone, Copy)]
enum Seen<'a> {
    Job(&'a [BulkTask]),
    /// Intercom does not know the job (any more).
    Gone,
    /// The poll failed.
    Unknown,
}

/// How a task ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finished {
    Completed,
    WithErrors,
    TimedOut,
}
