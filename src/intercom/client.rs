//! The Intercom REST client: one `Client` (cheap to clone) per run, one retry policy and one
//! rate governor for every call.
//!
//! The client deliberately has no method for `POST /companies` or `POST /contacts`: both create
//! records, and intercom-push only ever updates records that already exist.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::debug;

use super::config::{is_loopback_host, AccessToken, ClientConfig, DEFAULT_WINDOW_LIMIT};
use super::error::{ApiError, ConfigError, ErrorKind};
use super::governor::{Governor, PaceConfig, RateHeaders};
use super::retry::{self, Backoff, Disposition};
use super::types::{
    next_cursor, Admin, BulkJob, ClientStats, Company, CompanyListPage, CompanyPage,
    CompanySearchPage, Contact, ContactKey, ContactPage, DataAttribute, DataList, DataType, Model,
};

/// Page size used for `POST /contacts/search`. Assumed: the spec documents the default (50)
/// and no maximum; 150 is the maximum it documents for conversation search.
pub const SEARCH_PAGE_SIZE: u32 = 150;

/// Items per bulk request (Preview: "Maximum of 100 companies per request").
pub const BULK_MAX_ITEMS: usize = 100;

/// The `Intercom-Version` of the Preview API's calls (bulk updates, company search).
pub const PREVIEW_VERSION: &str = "Preview";

/// `/companies/bulk` or `/contacts/bulk`.
fn bulk_path(model: Model) -> &'static str {
    match model {
        Model::Company => "/companies/bulk",
        Model::Contact => "/contacts/bulk",
    }
}

/// The key of a bulk request's items.
fn bulk_items_key(model: Model) -> &'static str {
    match model {
        Model::Company => "companies",
        Model::Contact => "contacts",
    }
}

/// How long after creating a data attribute a write refused for not knowing it is retried.
pub const NEW_ATTRIBUTE_GRACE: Duration = Duration::from_secs(60);

/// Longest `Retry-After` we honour on a 5xx/429 without a reset header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Intercom API client. Clones share the connection pool, the rate governor and the stats.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    token: AccessToken,
    governor: Governor,
    backoff: Backoff,
    max_attempts: u32,
    window: Duration,
    concurrency: usize,
    stats: Counters,
    /// Data attributes this client created, and when (see [`Client::new_attribute_wait`]).
    created: std::sync::Mutex<Vec<(String, Instant)>>,
}

#[derive(Default)]
struct Counters {
    requests_sent: AtomicU64,
    responses_2xx: AtomicU64,
    responses_3xx: AtomicU64,
    responses_4xx: AtomicU64,
    responses_5xx: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    transport_errors: AtomicU64,
    governor_wait_us: AtomicU64,
    retry_wait_us: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Whether a call may be sent again after a failure that leaves its effect unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Reads, searches and PUTs: replaying cannot change the outcome.
    Safe,
    /// Scroll continuation: the server advances the cursor when it answers, so a replay after a
    /// lost answer could silently skip a page. Retried only after a 429 or a refused
    /// connection (surely not processed); otherwise the caller must restart the scroll.
    OnlyIfUnprocessed,
}

/// One logical API call.
struct Call {
    method: Method,
    /// Path only (no query), used in URLs, logs and errors.
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    replay: Replay,
    /// `Intercom-Version` for this call instead of the configured one.
    version: Option<&'static str>,
}

impl Call {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            replay: Replay::Safe,
            version: None,
        }
    }

    fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    fn json(mut self, body: &Value) -> Self {
        // Serialising a serde_json::Value cannot fail.
        self.body = Some(serde_json::to_vec(body).unwrap_or_default());
        self
    }

    fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }

    fn method_str(&self) -> &'static str {
        match self.method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            _ => "OTHER",
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .field("token", &self.inner.token)
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Validates `config` and builds the client (rustls, certificate verification on, redirects
    /// not followed, system proxy used except for loopback base URLs). Sends nothing.
    pub fn new(config: ClientConfig) -> Result<Client, ConfigError> {
        let base = config.validate()?;
        let base_url = Url::parse(&base).map_err(|e| ConfigError::InvalidBaseUrl {
            url: base.clone(),
            reason: e.to_string(),
        })?;
        let loopback = is_loopback_host(&base_url);

        let mut auth = HeaderValue::from_str(&format!("Bearer {}", config.token.expose()))
            .map_err(|_| ConfigError::InvalidToken {
                reason: "it cannot be sent in an HTTP header",
            })?;
        auth.set_sensitive(true);
        let version = HeaderValue::from_str(&config.intercom_version).map_err(|_| {
            ConfigError::InvalidSetting("Intercom-Version is not a valid header value".into())
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert("intercom-version", version);

        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .default_headers(headers)
            .user_agent(concat!("intercom-push/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.concurrency)
            .tcp_nodelay(true)
            .https_only(base_url.scheme() == "https");
        if loopback {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;

        let governor = Governor::new(
            config.concurrency,
            PaceConfig {
                window: config.rate_window,
                user_cap: config.rate_limit,
                default_limit: DEFAULT_WINDOW_LIMIT,
            },
        );
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                token: config.token,
                governor,
                backoff: Backoff {
                    base: config.backoff_base,
                    cap: config.backoff_cap,
                },
                max_attempts: config.max_attempts,
                window: config.rate_window,
                concurrency: config.concurrency,
                stats: Counters::default(),
                created: Default::default(),
            }),
        })
    }

    /// The validated base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// `GET /data_attributes?model=…[&include_archived=true]`: all data attributes of `model`.
    pub async fn list_data_attributes(
        &self,
        model: Model,
        include_archived: bool,
    ) -> Result<Vec<DataAttribute>, ApiError> {
        let mut call = Call::new(Method::GET, "/data_attributes").query("model", model.as_str());
        if include_archived {
            call = call.query("include_archived", "true");
        }
        let body = self.execute(&call).await?;
        let list: DataList<DataAttribute> = self.parse(&call, &body)?;
        Ok(list.data)
    }

    /// `POST /data_attributes {"name","model","data_type"}`: creates a custom data attribute.
    ///
    /// Retried like every call. If a retry is refused because the attribute now exists (our
    /// earlier attempt succeeded but its answer was lost), the existing attribute is returned
    /// when it has the same name and data type and is not archived; a refusal on the first
    /// attempt is returned as is.
    pub async fn create_data_attribute(
        &self,
        name: &str,
        model: Model,
        data_type: DataType,
    ) -> Result<DataAttribute, ApiError> {
        let call = Call::new(Method::POST, "/data_attributes").json(&json!({
            "name": name,
            "model": model.as_str(),
            "data_type": data_type.as_str(),
        }));
        let created = match self.execute(&call).await {
            Ok(body) => self.parse(&call, &body),
            Err(e) if e.attempts > 1 && matches!(e.status, Some(400 | 409 | 422)) => {
                if let Ok(existing) = self.list_data_attributes(model, true).await {
                    if let Some(a) = existing.into_iter().find(|a| {
                        a.name == name && !a.archived && a.data_type == data_type.as_str()
                    }) {
                        debug!(path = %call.path, "data attribute created by an earlier attempt");
                        return Ok(a);
                    }
                }
                Err(e)
            }
            Err(e) => Err(e),
        };
        if created.is_ok() {
            self.inner
                .created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name.to_string(), Instant::now()));
        }
        created
    }

    /// `PUT /data_attributes/{id} {"archived": true}`: archives a custom data attribute.
    /// (The spec types the id as an integer.)
    pub async fn archive_data_attribute(&self, id: i64) -> Result<DataAttribute, ApiError> {
        let call = Call::new(Method::PUT, format!("/data_attributes/{id}"))
            .json(&json!({ "archived": true }));
        let body = self.execute(&call).await?;
        self.parse(&call, &body)
    }

    /// `GET /me`: the admin the token belongs to, with its workspace.
    pub async fn me(&self) -> Result<Admin, ApiError> {
        let call = Call::new(Method::GET, "/me");
        let body = self.execute(&call).await?;
        self.parse(&call, &body)
    }

    /// Whether the workspace answers the Preview API (`Intercom-Version: Preview`), asked with
    /// a read: `GET /data_attributes?model=company`. A 400 on the version, or a 404, is `false`.
    pub async fn answers_preview(&self) -> Result<bool, ApiError> {
        let mut call = Call::new(Method::GET, "/data_attributes").query("model", "company");
        call.version = Some(PREVIEW_VERSION);
        match self.execute(&call).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.status, Some(400 | 404)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /companies?company_id=…`: the company with exactly this `company_id`, or `None`.
    ///
    /// Accepts the 2.16 answer (`{"type":"list","data":[company…]}`) and the older single-company
    /// answer; a 404 `company_not_found` is `Ok(None)`. Only an exact `company_id` match is
    /// returned, so a loose server-side match can never route data to the wrong company.
    pub async fn find_company(&self, company_id: &str) -> Result<Option<Company>, ApiError> {
        if company_id.is_empty() {
            return Ok(None);
        }
        let call = Call::new(Method::GET, "/companies").query("company_id", company_id);
        match self.execute(&call).await {
            Ok(body) => {
                let v: Value = self.parse(&call, &body)?;
                company_from_answer(&v, company_id).map_err(|m| self.shape_error(&call, m))
            }
            Err(e) if e.status == Some(404) && e.has_code("company_not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /companies/scroll[?scroll_param=…]`: the next page of the app's (single) company
    /// scroll. Pass `None` to open a scroll, then each answer's `scroll_param`; the scroll has
    /// ended when the answer's `scroll_param` is `None` (empty page). A scroll expires after
    /// one idle minute. Continuation pages are only retried when the server surely did not
    /// process the attempt (429, refused connection); on other transient failures the error is
    /// returned and the scroll must be restarted (Intercom's own advice for scroll 500s).
    pub async fn scroll_companies(
        &self,
        scroll_param: Option<&str>,
    ) -> Result<CompanyPage, ApiError> {
        let mut call = Call::new(Method::GET, "/companies/scroll");
        if let Some(p) = scroll_param {
            call = call
                .query("scroll_param", p)
                .replay(Replay::OnlyIfUnprocessed);
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            data: Option<Vec<Company>>,
            #[serde(default)]
            scroll_param: Option<String>,
        }
        let body = self.execute(&call).await?;
        let a: Answer = self.parse(&call, &body)?;
        let companies = a.data.unwrap_or_default();
        let scroll_param = if companies.is_empty() {
            None
        } else {
            a.scroll_param.filter(|s| !s.is_empty())
        };
        Ok(CompanyPage {
            companies,
            scroll_param,
        })
    }

    /// `POST /companies/list`: one page of companies, most recently active first. Intercom omits
    /// companies without users here (use `scroll_companies` to see all) and stops at 10,000.
    /// `page` and `per_page` are sent as query parameters (as the OpenAPI spec documents) and
    /// repeated in the JSON body.
    pub async fn list_companies(
        &self,
        page: u32,
        per_page: u32,
    ) -> Result<CompanyListPage, ApiError> {
        let call = Call::new(Method::POST, "/companies/list")
            .query("page", page.to_string())
            .query("per_page", per_page.to_string())
            .json(&json!({ "page": page, "per_page": per_page }));
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            data: Option<Vec<Company>>,
            #[serde(default)]
            pages: Option<Value>,
            #[serde(default)]
            total_count: Option<u64>,
        }
        let body = self.execute(&call).await?;
        let a: Answer = self.parse(&call, &body)?;
        let num = |key: &str| {
            a.pages
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        Ok(CompanyListPage {
            page: num("page").unwrap_or(page),
            total_pages: num("total_pages").unwrap_or(0),
            total_count: a.total_count,
            companies: a.data.unwrap_or_default(),
        })
    }

    /// `PUT /companies/{id}` with `body` (e.g. `{"monthly_spend":…, "custom_attributes":{…}}`).
    /// A PUT sets the given fields to the given values, so replaying it is harmless: it is
    /// retried like any read. 404 `company_not_found` is returned as a terminal error.
    pub async fn update_company(&self, intercom_id: &str, body: &Value) -> Result<(), ApiError> {
        let call = Call::new(
            Method::PUT,
            format!(
                "/companies/{}",
                self.segment("PUT", "/companies/{id}", intercom_id)?
            ),
        )
        .json(body);
        self.execute(&call).await.map(drop)
    }

    /// `POST /contacts/search` for the users (`role = user`: the search also holds leads)
    /// whose `field` is one of `values` (operator `IN`, 150 per page). Pass each answer's
    /// `next` as `starting_after` until it is `None`. An empty `values` answers an empty page
    /// without calling Intercom. A contact answered with another role is left out.
    pub async fn search_contacts(
        &self,
        field: ContactKey,
        values: &[String],
        starting_after: Option<&str>,
    ) -> Result<ContactPage, ApiError> {
        if values.is_empty() {
            return Ok(ContactPage {
                contacts: Vec::new(),
                next: None,
                total_count: Some(0),
            });
        }
        let mut pagination = json!({ "per_page": SEARCH_PAGE_SIZE });
        if let Some(cursor) = starting_after {
            pagination["starting_after"] = json!(cursor);
        }
        let call = Call::new(Method::POST, "/contacts/search").json(&json!({
            "query": { "operator": "AND", "value": [
                { "field": "role", "operator": "=", "value": "user" },
                { "field": field.as_str(), "operator": "IN", "value": values },
            ]},
            "pagination": pagination,
        }));
        let body = self.execute(&call).await?;
        let v: Value = self.parse(&call, &body)?;
        let contacts: Vec<Contact> = match v.get("data") {
            Some(Value::Array(items)) => items
                .iter()
                .map(Contact::deserialize)
                .filter(|c| {
                    c.as_ref()
                        .map_or(true, |c| c.role.as_deref().is_none_or(|r| r == "user"))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| self.shape_error(&call, format!("contact in search answer: {e}")))?,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => {
                return Err(self.shape_error(&call, "search answer `data` is not an array".into()))
            }
        };
        Ok(ContactPage {
            contacts,
            next: next_cursor(&v),
            total_count: v.get("total_count").and_then(Value::as_u64),
        })
    }

    /// `PUT /contacts/{id}` with `body` (e.g. `{"custom_attributes":{…}}`). Idempotent, hence
    /// retried like any read. A merged contact answers 410 `contact_merged` (terminal).
    pub async fn update_contact(&self, intercom_id: &str, body: &Value) -> Result<(), ApiError> {
        let call = Call::new(
            Method::PUT,
            format!(
                "/contacts/{}",
                self.segment("PUT", "/contacts/{id}", intercom_id)?
            ),
        )
        .json(body);
        self.execute(&call).await.map(drop)
    }

    /// `PUT /companies/bulk` or `PUT /contacts/bulk` (Preview): one task updating `items` (at
    /// most [`BULK_MAX_ITEMS`], each with Intercom's `id`), appended to `job` when given. Intercom
    /// answers 202 with the job before it applies anything; an unknown `id` fails only its item
    /// and never creates a record. Replayed like a PUT: a lost answer may leave a second task
    /// with the same items, which sets the same values again. A closed job answers 403.
    pub async fn bulk_update(
        &self,
        model: Model,
        items: Vec<Value>,
        job: Option<&str>,
    ) -> Result<BulkJob, ApiError> {
        let mut body = json!({ bulk_items_key(model): items });
        if let Some(job) = job {
            body["job"] = json!({ "id": job });
        }
        let mut call = Call::new(Method::PUT, bulk_path(model)).json(&body);
        call.version = Some(PREVIEW_VERSION);
        let body = self.execute(&call).await?;
        self.parse(&call, &body)
    }

    /// `GET /companies/bulk/{id}` or `GET /contacts/bulk/{id}` (Preview): the job and the state
    /// of each of its tasks.
    pub async fn bulk_job(&self, model: Model, job: &str) -> Result<BulkJob, ApiError> {
        let template = format!("{}/{{id}}", bulk_path(model));
        let path = format!(
            "{}/{}",
            bulk_path(model),
            self.segment("GET", &template, job)?
        );
        let mut call = Call::new(Method::GET, path);
        call.version = Some(PREVIEW_VERSION);
        let body = self.execute(&call).await?;
        self.parse(&call, &body)
    }

    /// `POST /companies/search` (Preview) for `company_id IN company_ids`, one page of at most
    /// [`SEARCH_PAGE_SIZE`]. Intercom leaves companies without users out of every search: a
    /// company missing here may still exist. Only exact `company_id` matches are returned.
    pub async fn search_companies(
        &self,
        company_ids: &[String],
        starting_after: Option<&str>,
    ) -> Result<CompanySearchPage, ApiError> {
        if company_ids.is_empty() {
            return Ok(CompanySearchPage {
                companies: Vec::new(),
                next: None,
            });
        }
        let mut pagination = json!({ "per_page": SEARCH_PAGE_SIZE });
        if let Some(cursor) = starting_after {
            pagination["starting_after"] = json!(cursor);
        }
        let mut call = Call::new(Method::POST, "/companies/search").json(&json!({
            "query": { "field": "company_id", "operator": "IN", "value": company_ids },
            "pagination": pagination,
        }));
        call.version = Some(PREVIEW_VERSION);
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            data: Option<Vec<Company>>,
        }
        let body = self.execute(&call).await?;
        let v: Value = self.parse(&call, &body)?;
        let answer: Answer = serde_json::from_value(v.clone())
            .map_err(|e| self.shape_error(&call, format!("company search answer: {e}")))?;
        let wanted: std::collections::HashSet<&str> =
            company_ids.iter().map(String::as_str).collect();
        Ok(CompanySearchPage {
            companies: answer
                .data
                .unwrap_or_default()
                .into_iter()
                .filter(|c| {
                    c.company_id
                        .as_deref()
                        .is_some_and(|id| wanted.contains(id))
                })
                .collect(),
            next: next_cursor(&v),
        })
    }

    /// Requests in flight at most (`ClientConfig::concurrency`).
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Requests per rate window the governor currently paces against (before the 98 % margin):
    /// min(user cap, the server's `X-RateLimit-Limit`, or 1,666 before the first answer).
    pub fn rate_limit_per_window(&self) -> u32 {
        self.inner.governor.effective_limit()
    }

    /// Counters since the client was created.
    pub fn stats(&self) -> ClientStats {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests_sent: get(&s.requests_sent),
            responses_2xx: get(&s.responses_2xx),
            responses_3xx: get(&s.responses_3xx),
            responses_4xx: get(&s.responses_4xx),
            responses_5xx: get(&s.responses_5xx),
            rate_limited: get(&s.rate_limited),
            retries: get(&s.retries),
            transport_errors: get(&s.transport_errors),
            governor_wait: Duration::from_micros(get(&s.governor_wait_us)),
            retry_wait: Duration::from_micros(get(&s.retry_wait_us)),
        }
    }

    // ---- internals --------------------------------------------------------------------------

    /// Percent-encodes an id for use as one path segment; refuses an empty id.
    fn segment(&self, method: &'static str, path: &str, id: &str) -> Result<String, ApiError> {
        if id.is_empty() {
            return Err(ApiError {
                method,
                path: path.to_string(),
                status: None,
                code: None,
                message: "empty Intercom id".into(),
                request_id: None,
                kind: ErrorKind::Terminal,
                attempts: 0,
            });
        }
        Ok(encode_segment(id))
    }

    fn url(&self, call: &Call) -> Result<Url, ApiError> {
        let mut url = Url::parse(&format!("{}{}", self.inner.base, call.path))
            .map_err(|e| self.shape_error(call, format!("cannot build URL: {e}")))?;
        if !call.query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &call.query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends `call` under the governor and the retry policy; returns the 2xx body.
    async fn execute(&self, call: &Call) -> Result<Vec<u8>, ApiError> {
        let inner = &*self.inner;
        let url = self.url(call)?;
        let max = inner.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                bump(&inner.stats.retries);
            }
            let ticket = inner.governor.acquire().await;
            inner
                .stats
                .governor_wait_us
                .fetch_add(ticket.waited.as_micros() as u64, Ordering::Relaxed);
            bump(&inner.stats.requests_sent);

            let mut req = inner.http.request(call.method.clone(), url.clone());
            if let Some(version) = call.version {
                req = req.header("intercom-version", version);
            }
            if let Some(body) = &call.body {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let sent = Instant::now();
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    drop(ticket);
                    let surely_unprocessed = e.is_connect();
                    self.transport_failure(call, e, attempt, max, surely_unprocessed)
                        .await?;
                    continue;
                }
            };
            let received = Instant::now();
            let status = resp.status().as_u16();
            let rate = RateHeaders::from_headers(resp.headers());
            let reset_at = inner
                .governor
                .observe(&ticket, received, &rate, status == 429);
            bump(match status {
                200..=299 => &inner.stats.responses_2xx,
                300..=399 => &inner.stats.responses_3xx,
                400..=499 => &inner.stats.responses_4xx,
                _ => &inner.stats.responses_5xx,
            });
            let retry_after = retry::retry_after(resp.headers(), MAX_RETRY_AFTER);
            let header_request_id = resp
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    drop(ticket);
                    self.transport_failure(call, e, attempt, max, false).await?;
                    continue;
                }
            };
            drop(ticket);
            debug!(
                method = call.method_str(),
                path = %call.path,
                attempt,
                status,
                elapsed_ms = received.duration_since(sent).as_millis() as u64,
                remaining = ?rate.remaining,
                "intercom answer"
            );

            let disposition = retry::classify(status);
            if disposition == Disposition::Success {
                return Ok(body);
            }
            let err = |kind| {
                self.http_error(
                    call,
                    status,
                    &body,
                    header_request_id.clone(),
                    kind,
                    attempt,
                )
            };
            let wait = match disposition {
                Disposition::Success | Disposition::Terminal => {
                    let e = err(ErrorKind::Terminal);
                    match self.new_attribute_wait(&e, attempt) {
                        Some(wait) => wait,
                        None => return Err(e),
                    }
                }
                Disposition::RateLimited => {
                    bump(&inner.stats.rate_limited);
                    if attempt >= max {
                        return Err(err(ErrorKind::Transient));
                    }
                    // Not a blind backoff: wait for the window to reset, plus a little jitter.
                    // (When the answer says the window is exhausted, the governor also holds
                    // every other request until then.)
                    let jitter = retry::reset_jitter(inner.window, &mut rand::rng());
                    match (reset_at, retry_after) {
                        (Some(at), _) => at.saturating_duration_since(Instant::now()) + jitter,
                        (None, Some(ra)) => ra + jitter,
                        (None, None) => inner.backoff.delay(attempt, &mut rand::rng()),
                    }
                }
                Disposition::Retry => {
                    if call.replay == Replay::OnlyIfUnprocessed {
                        let mut e = err(ErrorKind::Transient);
                        e.message.push_str(
                            " (not retried: replaying could skip data; restart the scroll)",
                        );
                        return Err(e);
                    }
                    if attempt >= max {
                        return Err(err(ErrorKind::Transient));
                    }
                    let backoff = inner.backoff.delay(attempt, &mut rand::rng());
                    backoff.max(retry_after.unwrap_or_default())
                }
            };
            debug!(method = call.method_str(), path = %call.path, attempt, status, wait_ms = wait.as_millis() as u64, "retrying");
            self.sleep_before_retry(wait).await;
        }
    }

    /// How long to wait before sending again a call refused because it names a data attribute
    /// this client created less than [`NEW_ATTRIBUTE_GRACE`] ago (Intercom: a new attribute
    /// "can take a short while to appear"): the usual backoff, never past the grace period.
    /// `None` for any other refusal, and once the grace period is over.
    fn new_attribute_wait(&self, e: &ApiError, attempt: u32) -> Option<Duration> {
        let unknown = ["not exist", "unknown", "not found"];
        let message = e.message.to_lowercase();
        if !matches!(e.status, Some(400 | 404 | 422))
            || !unknown.iter().any(|u| message.contains(u))
        {
            return None;
        }
        let created = self.inner.created.lock().unwrap_or_else(|e| e.into_inner());
        let newest = created
            .iter()
            .filter(|(name, _)| e.message.contains(name.as_str()))
            .map(|(_, at)| *at)
            .max()?;
        let left = (newest + NEW_ATTRIBUTE_GRACE).checked_duration_since(Instant::now())?;
        Some(
            self.inner
                .backoff
                .delay(attempt, &mut rand::rng())
                .min(left),
        )
    }

    /// Handles an attempt that got no complete answer: returns Err when giving up, Ok(()) after
    /// sleeping the backoff when the caller should retry.
    async fn transport_failure(
        &self,
        call: &Call,
        e: reqwest::Error,
        attempt: u32,
        max: u32,
        surely_unprocessed: bool,
    ) -> Result<(), ApiError> {
        let inner = &*self.inner;
        bump(&inner.stats.transport_errors);
        let builder_error = e.is_builder();
        let message = self.inner.token.redact(&describe_transport(e));
        let replayable = call.replay == Replay::Safe || surely_unprocessed;
        if builder_error || !replayable || attempt >= max {
            let mut message = message;
            if !replayable {
                message.push_str(" (not retried: replaying could skip data; restart the scroll)");
            }
            return Err(ApiError {
                method: call.method_str(),
                path: call.path.clone(),
                status: None,
                code: None,
                message,
                request_id: None,
                kind: if builder_error {
                    ErrorKind::Terminal
                } else {
                    ErrorKind::Transient
                },
                attempts: attempt,
            });
        }
        let wait = inner.backoff.delay(attempt, &mut rand::rng());
        debug!(method = call.method_str(), path = %call.path, attempt, error = %message, wait_ms = wait.as_millis() as u64, "transport error; retrying");
        self.sleep_before_retry(wait).await;
        Ok(())
    }

    /// Sleeps `wait` before a retry, adding it to the stats' `retry_wait`.
    async fn sleep_before_retry(&self, wait: Duration) {
        self.inner
            .stats
            .retry_wait_us
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
        tokio::time::sleep(wait).await;
    }

    /// Builds an ApiError from a non-2xx answer, reading Intercom's `error.list` if present.
    fn http_error(
        &self,
        call: &Call,
        status: u16,
        body: &[u8],
        header_request_id: Option<String>,
        kind: ErrorKind,
        attempts: u32,
    ) -> ApiError {
        #[derive(Deserialize)]
        struct ErrorList {
            #[serde(default)]
            request_id: Option<String>,
            #[serde(default)]
            errors: Vec<ErrorItem>,
        }
        #[derive(Deserialize)]
        struct ErrorItem {
            #[serde(default)]
            code: Option<String>,
            #[serde(default)]
            message: Option<String>,
        }
        let token = &self.inner.token;
        let parsed = serde_json::from_slice::<ErrorList>(body).ok();
        let (code, message, request_id) = match parsed {
            Some(list) if !list.errors.is_empty() => {
                let first = &list.errors[0];
                let mut message = first
                    .message
                    .clone()
                    .unwrap_or_else(|| "(no message)".into());
                if list.errors.len() > 1 {
                    let others: Vec<&str> = list.errors[1..]
                        .iter()
                        .filter_map(|e| e.code.as_deref())
                        .collect();
                    message.push_str(&format!(
                        " (+{} more: {})",
                        list.errors.len() - 1,
                        others.join(", ")
                    ));
                }
                (
                    first.code.clone(),
                    message,
                    list.request_id.or(header_request_id),
                )
            }
            other => {
                let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
                let message = if snippet.trim().is_empty() {
                    "empty answer body".to_string()
                } else {
                    format!("unexpected answer body: {snippet}")
                };
                (
                    None,
                    message,
                    other.and_then(|l| l.request_id).or(header_request_id),
                )
            }
        };
        ApiError {
            method: call.method_str(),
            path: call.path.clone(),
            status: Some(status),
            code: code.map(|c| token.redact(&c)),
            message: token.redact(&message),
            request_id: request_id.map(|r| token.redact(&r)),
            kind,
            attempts,
        }
    }

    /// A terminal error for a 2xx answer whose shape we do not understand.
    fn shape_error(&self, call: &Call, message: String) -> ApiError {
        ApiError {
            method: call.method_str(),
            path: call.path.clone(),
            status: None,
            code: None,
            message: self.inner.token.redact(&message),
            request_id: None,
            kind: ErrorKind::Terminal,
            attempts: 1,
        }
    }

    fn parse<T: DeserializeOwned>(&self, call: &Call, body: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| self.shape_error(call, format!("unexpected answer shape: {e}")))
    }
}

/// Picks the company from a `GET /companies?company_id=` answer: the 2.16 list form or the
/// older single-object form. Exact `company_id` match only.
pub(crate) fn company_from_answer(v: &Value, company_id: &str) -> Result<Option<Company>, String> {
    let matches = |c: &Company| c.company_id.as_deref() == Some(company_id);
    if let Some(data) = v.get("data") {
        let items = match data {
            Value::Array(items) => items,
            Value::Null => return Ok(None),
            _ => return Err("company list `data` is not an array".into()),
        };
        for item in items {
            let c = Company::deserialize(item).map_err(|e| format!("company in list: {e}"))?;
            if matches(&c) {
                return Ok(Some(c));
            }
        }
        return Ok(None);
    }
    if v.get("type").and_then(Value::as_str) == Some("company") || v.get("id").is_some() {
        let c = Company::deserialize(v).map_err(|e| format!("company: {e}"))?;
        return Ok(matches(&c).then_some(c));
    }
    Err("answer is neither a company list nor a company".into())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Describes a transport error without its URL: kind, then the cause chain.
fn describe_transport(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "answer body incomplete"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
