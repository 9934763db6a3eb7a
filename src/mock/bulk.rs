//! Preview API bulk updates: `PUT /companies/bulk`, `PUT /contacts/bulk` (answered 202 with the
//! job before anything is applied) and `GET /companies/bulk/{id}`, `GET /contacts/bulk/{id}`.
//!
//! A request creates one task holding its items, in a new job or (with `job.id`) appended to
//! an open job of the same kind. A task is `pending` when created, `running` from
//! created + delay/2, and at created + delay (`MockConfig::bulk_task_delay`) it finishes: its
//! items are applied then, in order, each on its own, exactly like `PUT /companies/{id}` /
//! `PUT /contacts/{id}` would apply the item's listed fields; an item that would fail there
//! (unknown or merged record, invalid custom attribute, …, or a company in `fail_company_ids`)
//! fails alone and the task ends `completed_with_errors` — which item failed is not reported
//! (as Intercom documents), only counted in the stats. An unknown `id` never creates a record.
//!
//! Time advances lazily: the caller runs [`Bulk::advance`] at the start of every API request and
//! state dump, which finishes every task due by then, in finish-time order, at its finish time
//! (so `updated_at` and the attribute delay see that time). While `FaultConfig::bulk_stuck` is
//! set nothing finishes (tasks still turn `running`); once it is cleared ([`Bulk::release`]),
//! the overdue tasks finish at that moment.
//!
//! A job holds at most `MockConfig::bulk_job_tasks` tasks and closes once all its tasks have
//! finished; appending to a closed job answers 403 `forbidden`.

use super::error::ApiError;
use super::faults::FaultConfig;
use super::record::Stats;
use super::state::{object, only_keys, Store};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Items per bulk request (Preview description: "Maximum of 100 companies per request").
const MAX_ITEMS: usize = 100;
/// The job `url` base when the request had no `Host` header.
const INTERCOM_BASE: &str = "https://api.intercom.io";

/// What a bulk job updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Companies,
    Contacts,
}

impl Kind {
    /// `companies` / `contacts`: the body key and the path segment.
    fn plural(self) -> &'static str {
        match self {
            Kind::Companies => "companies",
            Kind::Contacts => "contacts",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Kind::Companies => "company",
            Kind::Contacts => "contact",
        }
    }

    /// The job object's `type`.
    fn job_type(self) -> &'static str {
        match self {
            Kind::Companies => "companies.bulk.job",
            Kind::Contacts => "contacts.bulk.job",
        }
    }

    /// The item fields (besides `id`) that the request schema lists and the mock applies;
    /// any other field of an item is ignored, as the description says. Listed but not
    /// simulated, hence also dropped: companies' `remote_created_at` and
    /// `update_last_request_at`; contacts' `language_override`, `companies` and `tags` (tag
    /// application is best-effort in Intercom too).
    fn applied_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Companies => super::state::COMPANY_UPDATE_FIELDS,
            Kind::Contacts => &[
                "external_id",
                "email",
                "name",
                "phone",
                "avatar",
                "owner_id",
                "unsubscribed_from_emails",
                "custom_attributes",
            ],
        }
    }
}

/// One task: the items of one bulk request.
#[derive(Debug)]
struct Task {
    /// The number in `task_v2_<n>`, unique per server.
    number: u64,
    item_count: usize,
    /// `(id, fields to apply)`, in request order; emptied when the task finishes.
    items: Vec<(String, Value)>,
    created_ms: u64,
    /// `(finish time, failed items)` once finished.
    done: Option<(u64, usize)>,
}

/// A bulk job and its tasks.
#[derive(Debug)]
struct Job {
    id: String,
    kind: Kind,
    /// Where its status is polled, fixed when the job is created.
    url: String,
    created_ms: u64,
    tasks: Vec<Task>,
}

/// All bulk jobs of the mock.
#[derive(Debug)]
pub struct Bulk {
    delay_ms: u64,
    job_tasks: usize,
    jobs: Vec<Job>,
    job_by_id: HashMap<String, usize>,
    /// Unfinished tasks: `(finish time, task number)` → `(job index, task index)`. The first
    /// key is the earliest due time, so [`Bulk::advance`] is cheap when nothing is due.
    due: BTreeMap<(u64, u64), (usize, usize)>,
    jobs_made: u64,
    tasks_made: u64,
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Unix seconds of a millisecond time.
fn secs(ms: u64) -> u64 {
    ms / 1000
}

impl Bulk {
    /// No jobs; tasks finish `delay_ms` after their creation; a job takes at most `job_tasks`
    /// tasks (at least 1).
    pub fn new(delay_ms: u64, job_tasks: usize) -> Bulk {
        Bulk {
            delay_ms,
            job_tasks: job_tasks.max(1),
            jobs: Vec::new(),
            job_by_id: HashMap::new(),
            due: BTreeMap::new(),
            jobs_made: 0,
            tasks_made: 0,
        }
    }

    /// Forgets every job (on a new seed: its records are gone). Ids are never reused.
    pub fn clear(&mut self) {
        self.jobs.clear();
        self.job_by_id.clear();
        self.due.clear();
    }

    /// `PUT /companies/bulk` / `PUT /contacts/bulk`: validates the whole request (nothing is
    /// created on an error), then adds one task holding the items and returns the job as of
    /// `now`. `host` is the request's `Host` header, for the job `url`.
    pub fn submit(
        &mut self,
        kind: Kind,
        body: &Value,
        host: Option<&str>,
        now: u64,
    ) -> Result<Value, ApiError> {
        let (plural, singular) = (kind.plural(), kind.singular());
        let obj = object(body)?;
        only_keys(obj, &[plural, "job"])?;
        let items = obj
            .get(plural)
            .ok_or_else(|| {
                unprocessable(
                    "field_not_found",
                    format!("{plural} field must be supplied"),
                )
            })?
            .as_array()
            .ok_or_else(|| unprocessable("type_mismatch", format!("{plural} must be an array")))?;
        if items.len() > MAX_ITEMS {
            return Err(unprocessable(
                "parameter_invalid",
                format!("maximum number of {plural} per request is {MAX_ITEMS}"),
            ));
        }
        if items.is_empty() {
            return Err(unprocessable(
                "parameter_invalid",
                format!("{plural} must not be empty"),
            ));
        }
        let objects = items
            .iter()
            .map(Value::as_object)
            .collect::<Option<Vec<&Map<String, Value>>>>()
            .ok_or_else(|| {
                unprocessable(
                    "type_mismatch",
                    format!("each {singular} must be an object"),
                )
            })?;
        let applied = kind.applied_fields();
        let items = objects
            .into_iter()
            .map(|o| {
                let id = o.get("id").and_then(Value::as_str)?;
                let fields: Map<String, Value> = o
                    .iter()
                    .filter(|(k, _)| applied.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Some((id.to_owned(), Value::Object(fields)))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                unprocessable(
                    "field_not_found",
                    format!("{plural} must be identified by id"),
                )
            })?;
        let j = match obj.get("job") {
            None | Some(Value::Null) => self.open_job(kind, host, now),
            Some(Value::Object(job)) => {
                let id = job.get("id").and_then(Value::as_str).ok_or_else(|| {
                    unprocessable("field_not_found", "job must be identified by id".to_owned())
                })?;
                let j = self.find(kind, id)?;
                if self.closed(&self.jobs[j]) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!("job {id} is closed for new task updates"),
                    ));
                }
                j
            }
            Some(_) => {
                return Err(unprocessable(
                    "type_mismatch",
                    "job must be an object".to_owned(),
                ))
            }
        };
        self.tasks_made += 1;
        let number = self.tasks_made;
        let job = &mut self.jobs[j];
        self.due
            .insert((now + self.delay_ms, number), (j, job.tasks.len()));
        job.tasks.push(Task {
            number,
            item_count: items.len(),
            items,
            created_ms: now,
            done: None,
        });
        Ok(self.render(&self.jobs[j], now))
    }

    /// `GET /companies/bulk/{id}` / `GET /contacts/bulk/{id}`: the job as of `now`.
    pub fn job(&self, kind: Kind, id: &str, now: u64) -> Result<Value, ApiError> {
        self.find(kind, id).map(|j| self.render(&self.jobs[j], now))
    }

    /// Every job as of `now`, in creation order (for the state dump).
    pub fn dump(&self, now: u64) -> Value {
        Value::Array(self.jobs.iter().map(|j| self.render(j, now)).collect())
    }

    /// Finishes every task due by `now`, in finish-time order, each at its finish time; nothing
    /// while `faults.bulk_stuck` is set.
    pub fn advance(
        &mut self,
        now: u64,
        store: &mut Store,
        faults: &FaultConfig,
        stats: &mut Stats,
    ) {
        if faults.bulk_stuck {
            return;
        }
        while let Some(entry) = self.due.first_entry() {
            let at = entry.key().0;
            if at > now {
                break;
            }
            let (j, t) = entry.remove();
            self.finish(j, t, at, store, faults, stats);
        }
    }

    /// `bulk_stuck` was cleared at `now`: the tasks held past their finish time finish now.
    pub fn release(&mut self, now: u64) {
        let later = self.due.split_off(&(now, 0));
        let overdue = std::mem::replace(&mut self.due, later);
        for ((_, number), task) in overdue {
            self.due.insert((now, number), task);
        }
    }

    /// Applies the items of task `t` of job `j` at time `at`, each on its own.
    fn finish(
        &mut self,
        j: usize,
        t: usize,
        at: u64,
        store: &mut Store,
        faults: &FaultConfig,
        stats: &mut Stats,
    ) {
        let job = &mut self.jobs[j];
        let kind = job.kind;
        let task = &mut job.tasks[t];
        let mut failed = 0;
        for (id, fields) in std::mem::take(&mut task.items) {
            let applied = match kind {
                Kind::Companies => {
                    let faulty = store
                        .company_id_of(&id)
                        .is_some_and(|cid| faults.fail_company_ids.iter().any(|f| f == cid));
                    !faulty && store.update_company(&id, &fields, at).is_ok()
                }
                Kind::Contacts => store.update_contact(&id, &fields, at).is_ok(),
            };
            match (applied, kind) {
                (true, Kind::Companies) => stats.bulk_company_items += 1,
                (true, Kind::Contacts) => stats.bulk_contact_items += 1,
                (false, _) => {
                    failed += 1;
                    stats.bulk_items_failed += 1;
                }
            }
        }
        task.done = Some((at, failed));
    }

    /// Creates an empty job; returns its index.
    fn open_job(&mut self, kind: Kind, host: Option<&str>, now: u64) -> usize {
        self.jobs_made += 1;
        let id = format!("job_v2_{}", self.jobs_made);
        let base = host.map_or_else(|| INTERCOM_BASE.to_owned(), |h| format!("http://{h}"));
        let url = format!("{base}/{}/bulk/{id}", kind.plural());
        self.job_by_id.insert(id.clone(), self.jobs.len());
        self.jobs.push(Job {
            id,
            kind,
            url,
            created_ms: now,
            tasks: Vec::new(),
        });
        self.jobs.len() - 1
    }

    /// The index of job `id` of this kind, or 404 `job_not_found`.
    fn find(&self, kind: Kind, id: &str) -> Result<usize, ApiError> {
        self.job_by_id
            .get(id)
            .copied()
            .filter(|&j| self.jobs[j].kind == kind)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "job_not_found",
                    format!("job {id} not found"),
                )
            })
    }

    /// Whether a job takes no more tasks: it is full, or all its tasks have finished.
    fn closed(&self, job: &Job) -> bool {
        job.tasks.len() >= self.job_tasks || job.tasks.iter().all(|t| t.done.is_some())
    }

    /// The `companies_bulk_job` / `contacts_bulk_job` object as of `now`.
    fn render(&self, job: &Job, now: u64) -> Value {
        let mut updated = job.created_ms;
        let (mut all_pending, mut all_done, mut errors) = (true, true, false);
        let mut completed = 0;
        let tasks: Vec<Value> = job
            .tasks
            .iter()
            .map(|t| {
                let start = t.created_ms + self.delay_ms / 2;
                let started = t.done.is_some() || now >= start;
                let state = match t.done {
                    Some((_, 0)) => "completed",
                    Some(_) => "completed_with_errors",
                    None if started => "running",
                    None => "pending",
                };
                let done_at = t.done.map(|(at, _)| at);
                updated = updated
                    .max(t.created_ms)
                    .max(if started { start } else { 0 })
                    .max(done_at.unwrap_or(0));
                completed = completed.max(done_at.unwrap_or(0));
                all_pending &= !started;
                all_done &= t.done.is_some();
                errors |= t.done.is_some_and(|(_, failed)| failed > 0);
                json!({
                    "id": format!("task_v2_{}", t.number),
                    "item_count": t.item_count,
                    "state": state,
                    "created_at": secs(t.created_ms),
                    "started_at": started.then(|| secs(start)),
                    "completed_at": done_at.map(secs),
                })
            })
            .collect();
        let state = match (all_pending, all_done, errors) {
            (true, _, _) => "pending",
            (_, false, _) => "running",
            (_, true, true) => "completed_with_errors",
            (_, true, false) => "completed",
        };
        json!({
            "id": job.id,
            "type": job.kind.job_type(),
            "state": state,
            "created_at": secs(job.created_ms),
            "updated_at": secs(updated),
            "completed_at": all_done.then(|| secs(completed)),
            "tasks": tasks,
            "url": job.url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::model::{Seed, SeedCompany};

    const T0: u64 = 1_700_000_000_000;

    /// A store with companies a, b (1 user each) and a bulk with a 1 s task delay.
    fn setup(job_tasks: usize) -> (Bulk, Store, Vec<String>) {
        let mut store = Store::default();
        let seed = Seed {
            companies: ["a", "b"]
                .iter()
                .map(|c| SeedCompany {
                    company_id: (*c).to_owned(),
                    user_count: 1,
                    ..SeedCompany::default()
                })
                .collect(),
            ..Seed::default()
        };
        let ids = store.load(seed, T0).expect("seed").companies;
        (Bulk::new(1000, job_tasks), store, ids)
    }

    fn spend(store: &Store, i: usize) -> Value {
        store.dump()["companies"][i]["monthly_spend"].clone()
    }

    fn put(id: &str, spend: i64) -> Value {
        json!({"companies": [{"id": id, "monthly_spend": spend}]})
    }

    #[test]
    fn tasks_move_through_their_states_with_time() {
        let (mut bulk, mut store, ids) = setup(50);
        let (faults, mut stats) = (FaultConfig::default(), Stats::default());
        let job = bulk
            .submit(Kind::Companies, &put(&ids[0], 1), Some("h:1"), T0)
            .expect("submit");
        assert_eq!(job["state"], "pending");
        assert_eq!(job["url"], "http://h:1/companies/bulk/job_v2_1");
        let id = job["id"].as_str().expect("id").to_owned();
        // A second task 200 ms later, in the same job.
        let body = json!({"companies": [{"id": ids[0], "monthly_spend": 2}], "job": {"id": id}});
        let job = bulk
            .submit(Kind::Companies, &body, None, T0 + 200)
            .expect("append");
        assert_eq!(job["tasks"].as_array().map(Vec::len), Some(2));
        assert_eq!(job["url"], "http://h:1/companies/bulk/job_v2_1");

        let at = |bulk: &Bulk, t: u64| bulk.job(Kind::Companies, &id, t).expect("job");
        let j = at(&bulk, T0 + 499);
        assert_eq!(
            (j["state"].as_str(), j["tasks"][0]["state"].as_str()),
            (Some("pending"), Some("pending"))
        );
        let j = at(&bulk, T0 + 500);
        assert_eq!(j["state"], "running");
        assert_eq!(j["tasks"][0]["state"], "running");
        assert_eq!(j["tasks"][0]["started_at"], (T0 + 500) / 1000);
        assert_eq!(j["tasks"][1]["state"], "pending");

        bulk.advance(T0 + 999, &mut store, &faults, &mut stats);
        assert_eq!(spend(&store, 0), 0, "nothing applied before the delay");
        // Both tasks due: applied in finish-time order, each at its own finish time.
        bulk.advance(T0 + 5000, &mut store, &faults, &mut stats);
        assert_eq!(spend(&store, 0), 2);
        let j = at(&bulk, T0 + 5000);
        assert_eq!(j["state"], "completed");
        assert_eq!(j["tasks"][0]["completed_at"], (T0 + 1000) / 1000);
        assert_eq!(j["completed_at"], (T0 + 1200) / 1000);
        assert_eq!(j["updated_at"], (T0 + 1200) / 1000);
        assert_eq!(
            store.dump()["companies"][0]["updated_at"],
            (T0 + 1200) / 1000
        );
        assert_eq!(stats.bulk_company_items, 2);
        // Finished: closed.
        let closed = bulk.submit(Kind::Companies, &body, None, T0 + 5000);
        assert_eq!(
            closed.map_err(|e| (e.status.as_u16(), e.code)),
            Err((403, "forbidden"))
        );
    }

    #[test]
    fn stuck_tasks_finish_when_released() {
        let (mut bulk, mut store, ids) = setup(50);
        let mut stats = Stats::default();
        let stuck = FaultConfig {
            bulk_stuck: true,
            ..FaultConfig::default()
        };
        let job = bulk
            .submit(Kind::Companies, &put(&ids[1], 7), None, T0)
            .expect("submit");
        let id = job["id"].as_str().expect("id").to_owned();
        bulk.advance(T0 + 9000, &mut store, &stuck, &mut stats);
        let j = bulk.job(Kind::Companies, &id, T0 + 9000).expect("job");
        assert_eq!(
            (j["state"].as_str(), j["completed_at"].is_null()),
            (Some("running"), true)
        );
        assert_eq!(spend(&store, 1), 0);
        bulk.release(T0 + 9000);
        bulk.advance(T0 + 9500, &mut store, &FaultConfig::default(), &mut stats);
        let j = bulk.job(Kind::Companies, &id, T0 + 9500).expect("job");
        assert_eq!(j["state"], "completed");
        assert_eq!(j["completed_at"], (T0 + 9000) / 1000);
        assert_eq!(spend(&store, 1), 7);
        // The url without a Host header.
        assert_eq!(
            j["url"],
            format!("https://api.intercom.io/companies/bulk/{id}")
        );
    }
}
