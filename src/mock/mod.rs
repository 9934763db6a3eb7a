//! A mock Intercom REST API on loopback, for tests and benchmarks of the loader.
//!
//! It serves what the loader uses (see `CONTRACT.md`): company find/update/list/scroll, contact
//! search/update, data attribute list/create/archive, with Intercom's answer shapes and error
//! codes (OpenAPI 2.16), bearer auth, fixed-window rate limiting with `X-RateLimit-*` headers,
//! seeded fault injection, and recording of every call (counters, violations — `POST /companies`
//! and `POST /contacts` the loader must never make — and optionally each request).
//!
//! # Preview API
//! With `Intercom-Version: Preview` (unless `--no-preview`) it also serves, as the Preview
//! OpenAPI description says: `PUT /companies/bulk`, `PUT /contacts/bulk` (202 with the job;
//! the items are applied later, see the `bulk` module), `GET /companies/bulk/{id}`,
//! `GET /contacts/bulk/{id}` and `POST /companies/search` (companies without users left out).
//! With another version those paths mean what they mean in 2.16 (`PUT /companies/bulk` is
//! `PUT /companies/{id}` for the id `bulk`: 404 `company_not_found`; the GETs and the search
//! are unknown routes: 404 `not_found`). Job ids are `job_v2_<n>`, task ids `task_v2_<n>`
//! (numbered per server, across both kinds); a job's `url` is
//! `http://<Host header of the request that created it>/companies/bulk/<id>` (so a client can
//! follow it to the mock), `https://api.intercom.io/…` when there was no `Host`.
//!
//! Control endpoints (no auth, no faults, no rate limit, not recorded): `GET /_mock/state` (the
//! [`MockServer::dump`]), `GET /_mock/stats` (the [`Stats`] only), `POST /_mock/seed` (a
//! [`Seed`]; replaces all data and forgets the bulk jobs, keeps stats; answers the assigned ids
//! [`SeedIds`]),
//! `POST /_mock/edit` (an [`Edit`]: changes custom attribute values and `monthly_spend` behind
//! the loader's back, as another integration would, or recreates a company with a new id;
//! answers `{"companies": N, "contacts": N}`),
//! `GET`/`POST /_mock/faults[?seed=N]` (a [`FaultConfig`]; `seed` reseeds the fault RNG).
//!
//! Seed, edit and fault JSON, e.g. for `curl -d @seed.json http://127.0.0.1:PORT/_mock/seed`:
//! ```json
//! {"data_attributes": [{"name": "health_score", "model": "company", "data_type": "integer"},
//!                      {"name": "old", "model": "contact", "data_type": "string", "archived": true}],
//!  "companies": [{"company_id": "acme", "name": "Acme", "user_count": 3, "monthly_spend": 10,
//!                 "custom_attributes": {"health_score": 7}}],
//!  "contacts": [{"external_id": "u1", "email": "u1@example.com"},
//!               {"external_id": "u2", "merged": true, "merged_into": "u1"}]}
//! ```
//! ```json
//! {"companies": [{"company_id": "acme", "monthly_spend": 5,
//!                 "custom_attributes": {"health_score": 1, "plan": null}}],
//!  "contacts": [{"external_id": "u1", "custom_attributes": {"owner": false}}]}
//! ```
//! ```json
//! {"latency_ms": 20, "p_5xx": 0.01, "p_429": 0.01, "p_drop_before": 0.005,
//!  "p_drop_after": 0.005, "p_slow": 0.001, "slow_ms": 30000, "fail_company_ids": ["acme"],
//!  "bulk_stuck": false}
//! ```
//!
//! # Order of checks for an API request
//! 1. `Authorization: Bearer <token>` must match, else 401 `unauthorized` (does not use up the
//!    rate limit, as Intercom limits per app and cannot attribute the request).
//! 2. Rate limit: fixed windows aligned to multiples of `window` in unix time; over the limit →
//!    429 `rate_limit_exceeded`. Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//!    `X-RateLimit-Reset` (unix seconds of the window end) and `X-Request-Id`.
//! 3. Faults, drawn from the seeded RNG: injected 429 / 5xx / drop-before (nothing applied).
//! 4. `Intercom-Version` must look like `MAJOR.MINOR` (or `Unstable`, or `Preview` unless
//!    `--no-preview`: then 400 "Requested API version 'Preview' is not available for this
//!    workspace"), else 400 `intercom_version_invalid`; then the operation runs (validation
//!    first, all-or-nothing; a bulk update's items are applied later, each on its own).
//!
//! Before all of this (and before every state dump, stats snapshot and edit) the bulk tasks
//! due by now finish.
//! 5. Drop-after (applied, no answer) or slow (applied, answer delayed by `slow`); `latency` is
//!    added to every answer.
//!
//! # Error codes (status, code — source)
//! - 401 `unauthorized` "Access Token Invalid" — spec, every operation.
//! - 404 `company_not_found` "Company Not Found" — spec, `GET /companies`, `PUT /companies/{id}`.
//! - 404 `not_found` "User Not Found" — spec (contacts); unknown contact id on `PUT /contacts/{id}`.
//! - 410 `contact_merged` — spec (`GET /contacts/{id}`: merged contacts answer 410 Gone); used for
//!   `PUT /contacts/{id}` on a merged contact, with `Link: </contacts/{id}>; rel="canonical"` when
//!   the seed says which contact it was merged into (`merged_into`).
//! - 400 `parameter_invalid` — spec (data attributes): duplicate name ("You already have 'x' in
//!   your company data…"), invalid name, invalid model, "Data Type isn't an option", standard
//!   attribute name; also (mock choice, code as Intercom uses for "Conversation attribute 'x' does
//!   not exist") unknown/archived/wrong-model custom attribute (also one created less than
//!   `--attribute-delay-ms` ago), value type mismatch and a string over 255 characters on PUT.
//! - 400 `custom_data_limit_reached` — creating a data attribute past the cap of live (not
//!   archived) custom attributes; the code is Intercom's, the status not documented.
//! - 422 `parameter_invalid` — spec, `GET /data_attributes?model=conversation`.
//! - 404 `field_not_found` — spec, `PUT /data_attributes/{id}` with an unknown id.
//! - 400 `bad_request` "bad 'x' parameter" — spec (`POST /companies` example) for unknown body
//!   keys; also malformed/missing JSON bodies.
//! - 400 `scroll_exists` "scroll already exists for this workspace" — not in the spec; Intercom
//!   answers 400 "scroll already exists for this app" (intercom-ruby issue #292) and clients test
//!   `errors[0].code == "scroll_exists"`. 404 `not_found` for an unknown/expired `scroll_param`.
//! - 400 `invalid_sort_order` — spec, contact search `sort.order`; 400 `client_error` — spec
//!   wording for an invalid `starting_after` cursor.
//! - 429 `rate_limit_exceeded` — spec. Injected 5xx: 500 `server_error`, 502 `bad_gateway`,
//!   503 `service_unavailable`; `fail_company_ids` PUTs: 500 `server_error`.
//! - Preview bulk updates (spec): 422 `field_not_found` "companies field must be supplied",
//!   422 `type_mismatch` "companies must be an array", 422 `parameter_invalid` "maximum number
//!   of companies per request is 100", 422 `type_mismatch` "each company must be an object",
//!   422 `field_not_found` "companies must be identified by id" (contacts alike); 404
//!   `job_not_found` "job X not found" (also on the job GETs, and for a job of the other kind);
//!   403 `forbidden` "job X is closed for new task updates". Mock choices with the same
//!   status: 422 `parameter_invalid` "companies must not be empty", 422 `type_mismatch` "job
//!   must be an object", 422 `field_not_found` "job must be identified by id"; unknown
//!   top-level keys: 400 `bad_request` as above.
//! - Preview company search: 400 `invalid_field` "X is not a valid search field" — spec; other
//!   query errors as contact search.

mod bulk;
mod error;
mod faults;
mod model;
mod ratelimit;
mod record;
mod routes;
mod search;
mod state;
#[cfg(test)]
mod tests;

pub use faults::FaultConfig;
pub use model::{
    Edit, EditCompany, EditContact, Seed, SeedAttribute, SeedCompany, SeedContact, SeedError,
    SeedIds,
};
pub use record::{RecordedRequest, Stats, Violation};
pub use state::Rules;

use routes::Shared;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Environment variable holding the token the mock accepts.
pub const TOKEN_ENV: &str = "INTERCOM_ACCESS_TOKEN";
/// Token accepted when [`TOKEN_ENV`] is unset.
pub const DEFAULT_TOKEN: &str = "mock-token";

/// The token from [`TOKEN_ENV`], or [`DEFAULT_TOKEN`].
pub fn token_from_env() -> String {
    std::env::var(TOKEN_ENV).unwrap_or_else(|_| DEFAULT_TOKEN.to_owned())
}

/// Parses a whole number of milliseconds.
fn parse_ms(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("{s:?}: {e} (expected milliseconds)"))
}

/// Mock settings. Also usable as CLI flags (`intercom-push mock …`); the token comes only from
/// `INTERCOM_ACCESS_TOKEN` (default `mock-token`) and is never printed (`Debug` redacts it).
#[derive(Clone, clap::Args)]
pub struct MockConfig {
    /// Bearer token the mock accepts.
    #[arg(skip = token_from_env())]
    pub token: String,
    /// Requests allowed per rate-limit window.
    #[arg(long = "rate-limit", default_value_t = 1667)]
    pub rate_limit: u32,
    /// Rate-limit window length in ms (windows aligned to multiples of it in unix time).
    #[arg(long = "window-ms", value_parser = parse_ms, default_value = "10000")]
    pub window: Duration,
    /// Delay added to every answer, in ms.
    #[arg(long = "latency-ms", value_parser = parse_ms, default_value = "0")]
    pub latency: Duration,
    /// Probability of an injected 500/502/503 (nothing applied).
    #[arg(long = "p-5xx", default_value_t = 0.0)]
    pub p_5xx: f64,
    /// Probability of an injected 429 (nothing applied).
    #[arg(long = "p-429", default_value_t = 0.0)]
    pub p_429: f64,
    /// Probability of dropping the connection before applying the request.
    #[arg(long = "p-drop-before", default_value_t = 0.0)]
    pub p_drop_before: f64,
    /// Probability of applying the request, then dropping the connection.
    #[arg(long = "p-drop-after", default_value_t = 0.0)]
    pub p_drop_after: f64,
    /// Probability of applying the request, then answering after --slow-ms.
    #[arg(long = "p-slow", default_value_t = 0.0)]
    pub p_slow: f64,
    /// Extra delay of slow answers, in ms.
    #[arg(long = "slow-ms", value_parser = parse_ms, default_value = "30000")]
    pub slow: Duration,
    /// company_id whose PUT always answers 500 (repeatable).
    #[arg(long = "fail-company-id")]
    pub fail_company_ids: Vec<String>,
    /// Seed of the fault RNG.
    #[arg(long = "fault-seed", default_value_t = 0)]
    pub seed: u64,
    /// Custom data attributes allowed per workspace (archived ones do not count, as in
    /// Intercom); past it a creation answers 400 `custom_data_limit_reached`.
    #[arg(long = "max-custom-attributes", default_value_t = 250)]
    pub max_custom_attributes: usize,
    /// Time after its creation before a data attribute may be written, in ms: until then a
    /// write naming it answers 400 "Custom attribute '…' does not exist", as a new attribute
    /// of Intercom's "can take a short while to appear".
    #[arg(long = "attribute-delay-ms", value_parser = parse_ms, default_value = "0")]
    pub attribute_delay: Duration,
    /// Store a custom attribute set to "" as null, as Intercom has answered.
    #[arg(long = "empty-string-as-null")]
    pub empty_string_as_null: bool,
    /// Record every request (method, path, query, headers without Authorization, body, status).
    #[arg(long = "record-requests")]
    pub record_requests: bool,
    /// Serve the Preview API (`Intercom-Version: Preview`): bulk updates and company search.
    /// `--no-preview` plays a workspace without it: every request asking for `Preview` answers
    /// 400 `intercom_version_invalid`, and the Preview routes do not exist.
    #[arg(long = "no-preview", action = clap::ArgAction::SetFalse)]
    pub preview: bool,
    /// Time from a bulk task's creation to its completion (its items applied), in ms; the task
    /// is `running` from half-way.
    #[arg(long = "bulk-task-ms", value_parser = parse_ms, default_value = "200")]
    pub bulk_task_delay: Duration,
    /// Tasks a bulk job takes at most (a job also closes once all its tasks have finished);
    /// appending to a closed job answers 403 `forbidden`.
    #[arg(long = "bulk-job-tasks", default_value_t = 50)]
    pub bulk_job_tasks: usize,
    /// Companies per `GET /companies/scroll` page (Intercom does not document its page size).
    #[arg(long = "scroll-page-size", default_value_t = 50)]
    pub scroll_page_size: usize,
    /// Idle time after which an open company scroll expires, in ms (Intercom: 1 minute).
    #[arg(long = "scroll-ttl-ms", value_parser = parse_ms, default_value = "60000")]
    pub scroll_ttl: Duration,
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long = "mock-port", default_value_t = 0)]
    pub port: u16,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            token: token_from_env(),
            rate_limit: 1667,
            window: Duration::from_secs(10),
            latency: Duration::ZERO,
            p_5xx: 0.0,
            p_429: 0.0,
            p_drop_before: 0.0,
            p_drop_after: 0.0,
            p_slow: 0.0,
            slow: Duration::from_secs(30),
            fail_company_ids: Vec::new(),
            seed: 0,
            max_custom_attributes: state::MAX_CUSTOM_ATTRIBUTES,
            attribute_delay: Duration::ZERO,
            empty_string_as_null: false,
            record_requests: false,
            preview: true,
            bulk_task_delay: Duration::from_millis(200),
            bulk_job_tasks: 50,
            scroll_page_size: 50,
            scroll_ttl: Duration::from_secs(60),
            port: 0,
        }
    }
}

impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("token", &"<redacted>")
            .field("rate_limit", &self.rate_limit)
            .field("window", &self.window)
            .field("faults", &self.faults())
            .field("seed", &self.seed)
            .field("rules", &self.rules())
            .field("record_requests", &self.record_requests)
            .field("preview", &self.preview)
            .field("bulk_task_delay", &self.bulk_task_delay)
            .field("bulk_job_tasks", &self.bulk_job_tasks)
            .field("scroll_page_size", &self.scroll_page_size)
            .field("scroll_ttl", &self.scroll_ttl)
            .field("port", &self.port)
            .finish()
    }
}

impl MockConfig {
    /// The workspace behaviours part of the config.
    pub fn rules(&self) -> Rules {
        Rules {
            max_custom_attributes: self.max_custom_attributes,
            attribute_delay_ms: self.attribute_delay.as_millis() as u64,
            empty_string_as_null: self.empty_string_as_null,
        }
    }

    /// The fault settings part of the config.
    pub fn faults(&self) -> FaultConfig {
        FaultConfig {
            latency_ms: self.latency.as_millis() as u64,
            p_5xx: self.p_5xx,
            p_429: self.p_429,
            p_drop_before: self.p_drop_before,
            p_drop_after: self.p_drop_after,
            p_slow: self.p_slow,
            slow_ms: self.slow.as_millis() as u64,
            fail_company_ids: self.fail_company_ids.clone(),
            bulk_stuck: false,
        }
    }
}

/// How the server is run, and how to stop it.
enum Runner {
    /// A task on the caller's runtime; stopped by a graceful-shutdown signal.
    Task(Option<oneshot::Sender<()>>),
    /// An own runtime on a thread; stopped by a signal, then the runtime is shut down.
    Thread(Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>),
}

/// A running mock. Dropping it stops the server.
pub struct MockServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    runner: Runner,
}

impl MockServer {
    /// Binds 127.0.0.1:`config.port` and serves on the current tokio runtime.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = routes::router(shared.clone());
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("mock server stopped: {e}");
            }
        });
        Ok(MockServer {
            shared,
            addr,
            runner: Runner::Task(Some(stop)),
        })
    }

    /// Like [`MockServer::start`], on an own 2-thread tokio runtime on a background thread (for
    /// synchronous tests and the CLI). Callable from inside or outside a runtime.
    pub fn start_background(config: MockConfig) -> std::io::Result<MockServer> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mock-intercom")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config));
        let app = routes::router(shared.clone());
        rt.spawn(async move {
            let served = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => axum::serve(listener, app).await,
                Err(e) => Err(e),
            };
            if let Err(e) = served {
                tracing::warn!("mock server stopped: {e}");
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mock-intercom-main".to_owned())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(MockServer {
            shared,
            addr,
            runner: Runner::Thread(Some((stop, thread))),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces all companies, contacts and data attributes with `seed` (stats are kept; bulk
    /// jobs are forgotten, their ids never reused) and returns the Intercom ids assigned, in
    /// seed order. On error nothing changes.
    pub fn seed(&self, seed: Seed) -> Result<SeedIds, SeedError> {
        self.shared.seed(seed)
    }

    /// `{companies, contacts, data_attributes, bulk_jobs, violations, stats, requests}` (API
    /// object shapes; contacts also carry `merged`; `bulk_jobs` are the Preview bulk job
    /// objects; `requests` is empty unless `record_requests`). Bulk tasks due by now finish
    /// first.
    pub fn dump(&self) -> serde_json::Value {
        self.shared.dump()
    }

    /// A snapshot of the counters (bulk tasks due by now finish first).
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The calls the loader must never make, in order.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.lock().recorder.violations.clone()
    }

    /// The recorded requests (empty unless `record_requests`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .recorder
            .requests
            .clone()
            .unwrap_or_default()
    }

    /// The current fault settings.
    pub fn faults(&self) -> FaultConfig {
        self.shared.lock().faults.clone()
    }

    /// Replaces the fault settings (the fault RNG continues its sequence). Clearing
    /// `bulk_stuck` lets the bulk tasks it held finish now.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.lock().set_faults(faults, routes::now_ms());
    }

    /// Stops the server (and joins its thread for [`MockServer::start_background`]).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        match &mut self.runner {
            Runner::Task(stop) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            }
            Runner::Thread(parts) => {
                if let Some((stop, thread)) = parts.take() {
                    let _ = stop.send(());
                    let _ = thread.join();
                }
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a mock until Ctrl-C (for `intercom-push mock`): starts it, loads `seed` if given, prints
/// `mock Intercom listening on http://127.0.0.1:PORT` on stdout, then waits.
pub async fn serve_forever(config: MockConfig, seed: Option<Seed>) -> std::io::Result<()> {
    let server = MockServer::start(config).await?;
    if let Some(seed) = seed {
        server
            .seed(seed)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    }
    println!("mock Intercom listening on {}", server.base_url());
    tokio::signal::ctrl_c().await?;
    server.shutdown();
    Ok(())
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: MockConfig,
    }

    #[test]
    fn flags_parse_and_defaults_match_default() {
        Cli::command().debug_assert();
        let d = Cli::parse_from(["x"]).config;
        let e = MockConfig::default();
        assert_eq!(format!("{d:?}"), format!("{e:?}"));
        let c = Cli::parse_from([
            "x",
            "--p-5xx",
            "0.25",
            "--window-ms",
            "1000",
            "--latency-ms",
            "7",
            "--fail-company-id",
            "a",
            "--fail-company-id",
            "b",
            "--mock-port",
            "8099",
            "--no-preview",
            "--bulk-task-ms",
            "40",
            "--bulk-job-tasks",
            "3",
        ])
        .config;
        assert_eq!(
            (c.p_5xx, c.window, c.port),
            (0.25, Duration::from_secs(1), 8099)
        );
        assert!(d.preview && e.preview && !c.preview);
        assert_eq!(
            (c.bulk_task_delay, c.bulk_job_tasks),
            (Duration::from_millis(40), 3)
        );
        assert_eq!(
            (e.bulk_task_delay, e.bulk_job_tasks),
            (Duration::from_millis(200), 50)
        );
        assert_eq!(c.faults().latency_ms, 7);
        assert_eq!(c.fail_company_ids, ["a", "b"]);
        assert!(!format!("{c:?}").contains(&c.token));
    }
}
