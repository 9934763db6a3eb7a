//! Request recording: counters, violations and (optionally) every request.

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Counters over all API requests (control endpoints are not counted).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    /// All API requests received.
    pub total_requests: u64,
    /// `"METHOD /route/{template} STATUS"` → count; status 0 = connection dropped, no answer.
    pub by_route: BTreeMap<String, u64>,
    /// `Intercom-Version` header value (`"(none)"` when missing) → count.
    pub intercom_versions: BTreeMap<String, u64>,
    /// 401 answers.
    pub unauthorized: u64,
    /// 429 answers because the window's limit was exceeded.
    pub rate_limited: u64,
    /// 429 answers injected by `p_429`.
    pub injected_429: u64,
    /// 5xx answers injected by `p_5xx`.
    pub injected_5xx: u64,
    /// 500 answers from `fail_company_ids`.
    pub permanent_failures: u64,
    /// Connections dropped before applying the request.
    pub dropped_before: u64,
    /// Connections dropped after applying the request.
    pub dropped_after: u64,
    /// Answers delayed by `slow_ms`.
    pub slowed: u64,
    /// Successful `PUT /companies/{id}`.
    pub company_writes: u64,
    /// Successful `PUT /contacts/{id}`.
    pub contact_writes: u64,
    /// Calls the loader must never make (`POST /companies`, `POST /contacts`).
    pub violations: u64,
    /// Accepted (202) `PUT /companies/bulk` and `PUT /contacts/bulk` (Preview), including one
    /// whose answer `p_drop_after` then dropped: each created a task.
    pub bulk_requests: u64,
    /// Company items of finished bulk tasks applied successfully.
    pub bulk_company_items: u64,
    /// Contact items of finished bulk tasks applied successfully.
    pub bulk_contact_items: u64,
    /// Items of finished bulk tasks (either kind) that failed; the API does not say which.
    pub bulk_items_failed: u64,
    /// Successful (200) `GET /companies/bulk/{id}` and `GET /contacts/bulk/{id}`.
    pub bulk_job_polls: u64,
    /// Successful (200) `POST /companies/search` (Preview).
    pub company_searches: u64,
}

/// A forbidden call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Violation {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// One recorded API request (when `record_requests` is on).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case header names; `authorization` is never recorded.
    pub headers: Map<String, Value>,
    pub body: Value,
    /// 0 when the connection was dropped.
    pub status: u16,
}

/// Everything recorded since start.
#[derive(Debug, Default)]
pub struct Recorder {
    pub stats: Stats,
    pub violations: Vec<Violation>,
    /// `Some` when every request is recorded.
    pub requests: Option<Vec<RecordedRequest>>,
}

/// A request body as JSON when it parses, else as a (lossy) string; empty → null.
pub fn body_value(body: &Bytes) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Headers as a JSON object, without `authorization`.
pub fn headers_value(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(k, _)| *k != axum::http::header::AUTHORIZATION)
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect()
}

impl Recorder {
    /// A recorder; `record_requests` turns on the full request log.
    pub fn new(record_requests: bool) -> Self {
        Recorder {
            requests: record_requests.then(Vec::new),
            ..Recorder::default()
        }
    }

    /// Counts an answer (status 0 = dropped) for `method template`.
    pub fn count(&mut self, method: &str, template: &str, status: u16) {
        *self
            .stats
            .by_route
            .entry(format!("{method} {template} {status}"))
            .or_default() += 1;
    }

    /// `{stats, violations, requests}` for the state dump.
    pub fn dump(&self) -> Value {
        serde_json::json!({
            "stats": self.stats,
            "violations": self.violations,
            "requests": self.requests.as_deref().unwrap_or_default(),
        })
    }
}
