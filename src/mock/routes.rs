//! The HTTP layer: the API gate (auth, rate limit, faults, recording), routing to the store, and
//! the `/_mock/` control endpoints.

use super::bulk::{Bulk, Kind};
use super::error::ApiError;
use super::faults::{AbortBody, FaultConfig, PreFault, Roll};
use super::model::{Edit, Model, Seed, SeedError, SeedIds};
use super::ratelimit::{RateInfo, RateLimiter};
use super::record::{body_value, headers_value, RecordedRequest, Recorder, Violation};
use super::state::{uuid_like, Store};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest accepted API request body.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest accepted `POST /_mock/seed` body.
const MAX_SEED_BODY: usize = 1 << 30;

/// State shared by all requests.
pub struct Shared {
    pub token: String,
    pub scroll_page_size: usize,
    pub scroll_ttl_ms: u64,
    /// Whether the workspace answers `Intercom-Version: Preview` (`MockConfig::preview`).
    pub preview: bool,
    inner: Mutex<Inner>,
}

/// Everything mutable, behind one lock (held only briefly, never across a sleep).
pub struct Inner {
    pub store: Store,
    pub recorder: Recorder,
    pub limiter: RateLimiter,
    pub faults: FaultConfig,
    pub rng: StdRng,
    /// Preview bulk jobs; their tasks finish lazily ([`Inner::advance`]).
    pub bulk: Bulk,
}

impl Inner {
    /// Finishes every bulk task due by `now` (see [`super::bulk`]): called before anything
    /// reads or changes the state.
    pub fn advance(&mut self, now: u64) {
        self.bulk
            .advance(now, &mut self.store, &self.faults, &mut self.recorder.stats);
    }

    /// Replaces the fault settings at `now`: due tasks finish under the old settings first, and
    /// clearing `bulk_stuck` lets the tasks it held finish at `now`.
    pub fn set_faults(&mut self, faults: FaultConfig, now: u64) {
        self.advance(now);
        if self.faults.bulk_stuck && !faults.bulk_stuck {
            self.bulk.release(now);
        }
        self.faults = faults;
    }
}

impl Shared {
    /// Shared state for a server with these settings.
    pub fn new(config: &super::MockConfig) -> Self {
        Shared {
            token: config.token.clone(),
            scroll_page_size: config.scroll_page_size,
            scroll_ttl_ms: config.scroll_ttl.as_millis() as u64,
            preview: config.preview,
            inner: Mutex::new(Inner {
                store: Store::with_rules(config.rules()),
                recorder: Recorder::new(config.record_requests),
                limiter: RateLimiter::new(config.rate_limit, config.window.as_millis() as u64),
                faults: config.faults(),
                rng: StdRng::seed_from_u64(config.seed),
                bulk: Bulk::new(
                    config.bulk_task_delay.as_millis() as u64,
                    config.bulk_job_tasks,
                ),
            }),
        }
    }

    /// Locks the mutable state (a poisoned lock is still usable: every update is validated first).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the mutable state after finishing the bulk tasks due by `now`.
    pub fn lock_at(&self, now: u64) -> MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        inner.advance(now);
        inner
    }

    /// The full state dump: store, bulk jobs, stats, violations, recorded requests.
    pub fn dump(&self) -> Value {
        let now = now_ms();
        let inner = self.lock_at(now);
        let mut v = inner.store.dump();
        if let Some(o) = v.as_object_mut() {
            o.insert("bulk_jobs".to_owned(), inner.bulk.dump(now));
            if let Value::Object(r) = inner.recorder.dump() {
                o.extend(r);
            }
        }
        v
    }

    /// The counters, after finishing the bulk tasks due by now.
    pub fn stats(&self) -> super::Stats {
        self.lock_at(now_ms()).recorder.stats.clone()
    }

    /// Loads `seed` in place of all data (stats are kept); bulk jobs are forgotten.
    pub fn seed(&self, seed: Seed) -> Result<SeedIds, SeedError> {
        let mut inner = self.lock();
        let ids = inner.store.load(seed, now_ms())?;
        inner.bulk.clear();
        Ok(ids)
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The router: control endpoints under `/_mock/`, everything else goes through the API gate.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_mock/state", get(control_state))
        .route("/_mock/stats", get(control_stats))
        .route("/_mock/seed", axum::routing::post(control_seed))
        .route("/_mock/edit", axum::routing::post(control_edit))
        .route(
            "/_mock/faults",
            get(control_get_faults).post(control_set_faults),
        )
        .fallback(api)
        .with_state(shared)
}

/// `GET /_mock/state`: the dump.
async fn control_state(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &shared.dump())
}

/// `GET /_mock/stats`: the counters only (cheap, unlike the full dump).
async fn control_stats(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &json!(shared.stats()))
}

/// `POST /_mock/seed` with a [`Seed`] (up to 1 GiB): replaces the data; answers the assigned ids.
async fn control_seed(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let result = axum::body::to_bytes(req.into_body(), MAX_SEED_BODY)
        .await
        .map_err(|e| e.to_string())
        .and_then(|body| serde_json::from_slice::<Seed>(&body).map_err(|e| e.to_string()))
        .and_then(|seed| shared.seed(seed).map_err(|e| e.to_string()));
    match result {
        Ok(ids) => json_response(StatusCode::OK, &json!(ids)),
        Err(e) => control_error(&e),
    }
}

/// `POST /_mock/edit` with an [`Edit`]: changes records behind the loader's back; answers how
/// many companies and contacts changed.
async fn control_edit(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let result = axum::body::to_bytes(req.into_body(), MAX_SEED_BODY)
        .await
        .map_err(|e| e.to_string())
        .and_then(|body| serde_json::from_slice::<Edit>(&body).map_err(|e| e.to_string()))
        .and_then(|edit| {
            let now = now_ms();
            shared.lock_at(now).store.edit(edit, now)
        });
    match result {
        Ok(changed) => json_response(StatusCode::OK, &changed),
        Err(e) => control_error(&e),
    }
}

/// `GET /_mock/faults`: the current fault settings.
async fn control_get_faults(State(shared): State<Arc<Shared>>) -> Response {
    let faults = shared.lock().faults.clone();
    json_response(StatusCode::OK, &json!(faults))
}

/// `POST /_mock/faults[?seed=N]` with a [`FaultConfig`]: replaces the fault settings (and
/// reseeds the fault RNG when `seed` is given).
async fn control_set_faults(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let reseed = query_map(req.uri().query())
        .get("seed")
        .map(|s| s.parse::<u64>());
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return control_error(&e.to_string()),
    };
    let faults = match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(f) => f,
        Err(e) => return control_error(&e.to_string()),
    };
    let mut inner = shared.lock();
    match reseed {
        Some(Ok(seed)) => inner.rng = StdRng::seed_from_u64(seed),
        Some(Err(e)) => return control_error(&format!("seed: {e}")),
        None => {}
    }
    inner.set_faults(faults, now_ms());
    json_response(StatusCode::OK, &json!(inner.faults))
}

/// A control-endpoint error, shaped like the API's.
fn control_error(message: &str) -> Response {
    let id = uuid_like(rand::random());
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"type": "error.list", "request_id": id, "errors": [{"code": "bad_request", "message": message}]}),
    )
}

/// A JSON answer with this status.
fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Query string → map (last value wins; undecodable → empty).
fn query_map(query: Option<&str>) -> HashMap<String, String> {
    let uri = format!("/?{}", query.unwrap_or(""));
    uri.parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| axum::extract::Query::<HashMap<String, String>>::try_from_uri(&u).ok())
        .map(|q| q.0)
        .unwrap_or_default()
}

/// An API operation, resolved from method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    FindCompanies,
    CreateCompany,
    UpdateCompany(String),
    ListCompanies,
    ScrollCompanies,
    SearchContacts,
    UpdateContact(String),
    CreateContact,
    ListAttributes,
    CreateAttribute,
    UpdateAttribute(String),
    Me,
    /// Preview: `PUT /companies/bulk`, `PUT /contacts/bulk`.
    BulkUpdate(Kind),
    /// Preview: `GET /companies/bulk/{id}`, `GET /contacts/bulk/{id}`.
    BulkJob(Kind, String),
    /// Preview: `POST /companies/search`.
    SearchCompanies,
    Unknown,
}

impl Route {
    /// The route and its template (used in stats). The Preview routes exist only with
    /// `preview` (the request asks for `Intercom-Version: Preview` and the workspace has it);
    /// without, `PUT /companies/bulk` is `PUT /companies/{id}` with id `bulk`, and so on.
    fn resolve(method: &Method, path: &str, preview: bool) -> (Route, &'static str) {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let m = method.as_str();
        let kind = |plural: &str| match plural {
            "companies" => Kind::Companies,
            _ => Kind::Contacts,
        };
        match (m, segs.as_slice()) {
            ("PUT", [plural @ ("companies" | "contacts"), "bulk"]) if preview => {
                let template = match kind(plural) {
                    Kind::Companies => "/companies/bulk",
                    Kind::Contacts => "/contacts/bulk",
                };
                (Route::BulkUpdate(kind(plural)), template)
            }
            ("GET", [plural @ ("companies" | "contacts"), "bulk", id])
                if preview && !id.is_empty() =>
            {
                let template = match kind(plural) {
                    Kind::Companies => "/companies/bulk/{id}",
                    Kind::Contacts => "/contacts/bulk/{id}",
                };
                (Route::BulkJob(kind(plural), id.to_string()), template)
            }
            ("POST", ["companies", "search"]) if preview => {
                (Route::SearchCompanies, "/companies/search")
            }
            ("GET", ["companies"]) => (Route::FindCompanies, "/companies"),
            ("POST", ["companies"]) => (Route::CreateCompany, "/companies"),
            ("POST", ["companies", "list"]) => (Route::ListCompanies, "/companies/list"),
            ("GET", ["companies", "scroll"]) => (Route::ScrollCompanies, "/companies/scroll"),
            ("PUT", ["companies", id]) if !id.is_empty() => {
                (Route::UpdateCompany(id.to_string()), "/companies/{id}")
            }
            ("POST", ["contacts", "search"]) => (Route::SearchContacts, "/contacts/search"),
            ("POST", ["contacts"]) => (Route::CreateContact, "/contacts"),
            ("PUT", ["contacts", id]) if !id.is_empty() => {
                (Route::UpdateContact(id.to_string()), "/contacts/{id}")
            }
            ("GET", ["data_attributes"]) => (Route::ListAttributes, "/data_attributes"),
            ("GET", ["me"]) => (Route::Me, "/me"),
            ("POST", ["data_attributes"]) => (Route::CreateAttribute, "/data_attributes"),
            ("PUT", ["data_attributes", id]) if !id.is_empty() => (
                Route::UpdateAttribute(id.to_string()),
                "/data_attributes/{id}",
            ),
            _ => (Route::Unknown, "(unknown)"),
        }
    }

    /// Calls the loader must never make.
    fn is_violation(&self) -> bool {
        matches!(self, Route::CreateCompany | Route::CreateContact)
    }

    /// The status of a successful answer: 202 Accepted for a bulk update, else 200.
    fn success_status(&self) -> StatusCode {
        match self {
            Route::BulkUpdate(_) => StatusCode::ACCEPTED,
            _ => StatusCode::OK,
        }
    }
}

/// Whether the `Intercom-Version` asks for ≥ 2.16 (missing, `Unstable` or `Preview` → yes); a
/// value that is not `MAJOR.MINOR` → 400 `intercom_version_invalid`, and so is `Preview` when
/// the workspace does not have it (`preview` false).
fn version_at_least_2_16(version: Option<&str>, preview: bool) -> Result<bool, ApiError> {
    let Some(v) = version else { return Ok(true) };
    if v == "Preview" && !preview {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "intercom_version_invalid",
            "Requested API version 'Preview' is not available for this workspace",
        ));
    }
    if v == "Unstable" || v == "Preview" {
        return Ok(true);
    }
    let parsed = v
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match parsed {
        Some(pair) => Ok(pair >= (2, 16)),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "intercom_version_invalid",
            format!("Intercom-Version '{v}' is not a valid version"),
        )),
    }
}

/// The request body as JSON; empty or malformed → 400 `bad_request`.
fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("Request body is required"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
}

/// A positive integer query/body parameter with a default.
fn positive(
    q: &HashMap<String, String>,
    body: &Value,
    key: &str,
    default: usize,
) -> Result<usize, ApiError> {
    match (q.get(key), body.get(key)) {
        (Some(s), _) => s
            .parse()
            .map_err(|_| ApiError::parameter_invalid(format!("{key} must be an integer"))),
        (None, Some(v)) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::parameter_invalid(format!("{key} must be an integer"))),
        (None, None) => Ok(default),
    }
}

/// One API request, as [`dispatch`] sees it.
#[derive(Clone, Copy)]
struct Call<'a> {
    route: &'a Route,
    q: &'a HashMap<String, String>,
    body: &'a Bytes,
    version: Option<&'a str>,
    /// The `Host` header (bulk job urls).
    host: Option<&'a str>,
    now: u64,
}

/// Performs one API operation on the locked state.
fn dispatch(shared: &Shared, inner: &mut Inner, call: Call<'_>) -> Result<Value, ApiError> {
    let Call {
        route,
        q,
        body,
        version,
        host,
        now,
    } = call;
    let new_shape = version_at_least_2_16(version, shared.preview)?;
    let store = &mut inner.store;
    match route {
        Route::FindCompanies => match (q.get("company_id"), q.get("name")) {
            (None, None) => {
                let page = positive(q, &Value::Null, "page", 1)?;
                store.list_companies(page, positive(q, &Value::Null, "per_page", 15)?)
            }
            (cid, name) => {
                let c = store
                    .find_company(cid.map(String::as_str), name.map(String::as_str))?
                    .to_json();
                Ok(if new_shape {
                    json!({"type": "list", "data": [c],
                           "pages": {"type": "pages", "next": null, "page": 1, "per_page": 15, "total_pages": 1},
                           "total_count": 1})
                } else {
                    c
                })
            }
        },
        Route::CreateCompany => store.create_or_update_company(&json_body(body)?, now),
        Route::UpdateCompany(id) => {
            if let Some(cid) = store.company_id_of(id) {
                if inner.faults.fail_company_ids.iter().any(|f| f == cid) {
                    inner.recorder.stats.permanent_failures += 1;
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "Server Error",
                    ));
                }
            }
            let v = store.update_company(id, &json_body(body)?, now)?;
            inner.recorder.stats.company_writes += 1;
            Ok(v)
        }
        Route::ListCompanies => {
            let b = if body.is_empty() {
                Value::Null
            } else {
                json_body(body)?
            };
            store.list_companies(
                positive(q, &b, "page", 1)?,
                positive(q, &b, "per_page", 15)?,
            )
        }
        Route::ScrollCompanies => store.scroll(
            q.get("scroll_param").map(String::as_str),
            shared.scroll_page_size,
            shared.scroll_ttl_ms,
            now,
        ),
        Route::SearchContacts => store.search_contacts(&json_body(body)?),
        Route::UpdateContact(id) => {
            let v = store.update_contact(id, &json_body(body)?, now)?;
            inner.recorder.stats.contact_writes += 1;
            Ok(v)
        }
        Route::CreateContact => store.create_contact(&json_body(body)?, now),
        Route::ListAttributes => {
            let model = match q.get("model").map(String::as_str) {
                None => None,
                Some("conversation") => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "parameter_invalid",
                        "model=conversation is no longer supported. Use GET /conversations/attributes instead",
                    ))
                }
                Some(m) => Some(Model::parse(m).ok_or_else(|| {
                    ApiError::parameter_invalid("The Data Attribute model field must be either contact or company")
                })?),
            };
            let include_archived = match q.get("include_archived").map(String::as_str) {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => {
                    return Err(ApiError::parameter_invalid(
                        "include_archived must be true or false",
                    ))
                }
            };
            Ok(store.list_attributes(model, include_archived))
        }
        Route::CreateAttribute => store.create_attribute(&json_body(body)?, now),
        Route::UpdateAttribute(id) => store.update_attribute(id, &json_body(body)?, now),
        Route::Me => Ok(super::model::me()),
        Route::BulkUpdate(kind) => {
            let v = inner.bulk.submit(*kind, &json_body(body)?, host, now)?;
            inner.recorder.stats.bulk_requests += 1;
            Ok(v)
        }
        Route::BulkJob(kind, id) => {
            let v = inner.bulk.job(*kind, id, now)?;
            inner.recorder.stats.bulk_job_polls += 1;
            Ok(v)
        }
        Route::SearchCompanies => {
            let v = store.search_companies(&json_body(body)?)?;
            inner.recorder.stats.company_searches += 1;
            Ok(v)
        }
        Route::Unknown => Err(ApiError::not_found("Resource Not Found")),
    }
}

/// An answer with the rate-limit and request-id headers.
fn answer(status: StatusCode, body: &Value, rate: RateInfo, request_id: &str) -> Response {
    let mut resp = json_response(status, body);
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", rate.limit.to_string()),
        ("x-ratelimit-remaining", rate.remaining.to_string()),
        ("x-ratelimit-reset", rate.reset.to_string()),
        ("x-request-id", request_id.to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

/// An error answer: error.list body, the rate-limit and request-id headers, and `Link` if any.
fn error_answer(e: &ApiError, rate: RateInfo, request_id: &str) -> Response {
    let body = json!({"type": "error.list", "request_id": request_id,
                      "errors": [{"code": e.code, "message": e.message}]});
    let mut resp = answer(e.status, &body, rate, request_id);
    if let Some(v) = e
        .link
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}

/// What the gate decided before dispatching.
enum Gate {
    /// Answer this error without dispatching.
    Refuse(ApiError),
    /// Drop the connection without dispatching.
    Drop,
    /// Dispatch.
    Pass,
}

/// What happens to the connection.
enum Outcome {
    /// Answer with this result (and status, on success).
    Answer(Result<(StatusCode, Value), ApiError>),
    /// Close the connection without an answer.
    Drop,
}

/// Every API request: auth (401), rate limit (429), injected faults, dispatch, recording; then
/// the delay (latency, slow) and the answer or the dropped connection.
async fn api(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await;
    let request_id = uuid_like(rand::random());
    let (outcome, rate, delay) = process(&shared, &parts, &body);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match outcome {
        Outcome::Drop => Response::new(Body::new(AbortBody)),
        Outcome::Answer(Ok((status, v))) => answer(status, &v, rate, &request_id),
        Outcome::Answer(Err(e)) => error_answer(&e, rate, &request_id),
    }
}

/// The synchronous part of [`api`], under the state lock: decides the outcome, applies it,
/// records it, and returns it with the rate-limit headers and the delay before answering.
fn process(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    body: &Result<Bytes, axum::Error>,
) -> (Outcome, RateInfo, Duration) {
    let now = now_ms();
    let version = parts
        .headers
        .get("intercom-version")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let preview = shared.preview && version.as_deref() == Some("Preview");
    let (route, template) = Route::resolve(&parts.method, parts.uri.path(), preview);
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let authorized = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == shared.token);
    let q = query_map(parts.uri.query());
    let method = parts.method.as_str();
    let body_json = || body.as_ref().map(body_value).unwrap_or(Value::Null);

    let mut inner = shared.lock_at(now);
    let inner = &mut *inner;
    let stats = &mut inner.recorder.stats;
    stats.total_requests += 1;
    *stats
        .intercom_versions
        .entry(version.clone().unwrap_or_else(|| "(none)".to_owned()))
        .or_default() += 1;
    if route.is_violation() {
        stats.violations += 1;
        inner.recorder.violations.push(Violation {
            method: method.to_owned(),
            path: parts.uri.path().to_owned(),
            body: body_json(),
        });
    }
    let mut roll = Roll::default();
    let rate_limited = || {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Rate Limit Exceeded",
        )
    };
    let (gate, rate) = if !authorized {
        inner.recorder.stats.unauthorized += 1;
        let e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Access Token Invalid",
        );
        (Gate::Refuse(e), inner.limiter.peek(now))
    } else {
        let (allowed, mut rate) = inner.limiter.take(now);
        if !allowed {
            inner.recorder.stats.rate_limited += 1;
            (Gate::Refuse(rate_limited()), rate)
        } else {
            roll = inner.faults.roll(&mut inner.rng);
            let gate = match roll.pre {
                Some(PreFault::Inject429) => {
                    // As on a real 429, the headers say nothing is left in this window.
                    rate.remaining = 0;
                    inner.recorder.stats.injected_429 += 1;
                    Gate::Refuse(rate_limited())
                }
                Some(PreFault::Inject5xx(status)) => {
                    inner.recorder.stats.injected_5xx += 1;
                    let code = match status {
                        StatusCode::BAD_GATEWAY => "bad_gateway",
                        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
                        _ => "server_error",
                    };
                    Gate::Refuse(ApiError::new(status, code, "Server Error"))
                }
                Some(PreFault::DropBefore) => {
                    inner.recorder.stats.dropped_before += 1;
                    Gate::Drop
                }
                None => Gate::Pass,
            };
            (gate, rate)
        }
    };
    let outcome = match gate {
        Gate::Refuse(e) => Outcome::Answer(Err(e)),
        Gate::Drop => Outcome::Drop,
        Gate::Pass => {
            let result = match body {
                Ok(body) => {
                    let call = Call {
                        route: &route,
                        q: &q,
                        body,
                        version: version.as_deref(),
                        host,
                        now,
                    };
                    dispatch(shared, inner, call).map(|v| (route.success_status(), v))
                }
                Err(_) => Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "bad_request",
                    "Request body unreadable or too large",
                )),
            };
            if roll.drop_after {
                inner.recorder.stats.dropped_after += 1;
                Outcome::Drop
            } else {
                Outcome::Answer(result)
            }
        }
    };
    let status = match &outcome {
        Outcome::Drop => 0,
        Outcome::Answer(Ok((status, _))) => status.as_u16(),
        Outcome::Answer(Err(e)) => e.status.as_u16(),
    };
    let slowed = roll.slow && status != 0;
    if slowed {
        inner.recorder.stats.slowed += 1;
    }
    inner.recorder.count(method, template, status);
    if let Some(log) = inner.recorder.requests.as_mut() {
        log.push(RecordedRequest {
            method: method.to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: headers_value(&parts.headers),
            body: body_json(),
            status,
        });
    }
    let mut delay = Duration::from_millis(inner.faults.latency_ms);
    if slowed {
        delay += Duration::from_millis(inner.faults.slow_ms);
    }
    (outcome, rate, delay)
}
