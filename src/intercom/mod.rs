//! Intercom HTTP client layer: a typed async client for exactly the REST endpoints the loader
//! uses, with one retry policy and one rate governor for all of them.
//!
//! It can update existing companies, contacts and data attributes and create data attributes;
//! it cannot create companies or contacts (no `POST /companies`, no `POST /contacts`).
//!
//! **Rate governor** (one per [`Client`], shared by clones and by every attempt, retries
//! included): at most `concurrency` requests in flight; request starts spaced evenly at 98 % of
//! min(user cap, `X-RateLimit-Limit`, 1,666 before the first answer) per 10-s window, with no
//! burst credit; a per-window budget from `X-RateLimit-Remaining` minus the requests started
//! since (in flight or not yet counted) holds new starts until `X-RateLimit-Reset` when it runs
//! out. `Reset` (server clock) is converted to local time with a lower bound on the server clock
//! offset learnt from `Date` headers, so the client never resumes before the server's window
//! has actually rolled over.
//!
//! **Retry policy**: 429 → wait until `X-RateLimit-Reset` + jitter (≤ 250 ms), then retry; 408,
//! 5xx, timeouts, refused/reset/incomplete connections → full-jitter exponential backoff
//! (random(0, min(cap 20 s, base 250 ms · 2^(n−1))), at least `Retry-After`); other 4xx →
//! terminal [`ApiError`] with Intercom's `errors[0].code`, message and `request_id`. At most
//! `max_attempts` (6) attempts. Reads, searches and PUTs are replayed safely; scroll continuation
//! pages only when the server surely did not process the attempt.

// `ApiError` is a plain, cloneable struct by design (the loader inspects its fields); boxing it
// to appease the size lint would complicate every caller for no measurable gain.
#![allow(clippy::result_large_err)]

mod client;
mod config;
mod error;
mod governor;
mod retry;
mod types;

#[cfg(test)]
mod tests;

pub use client::{Client, BULK_MAX_ITEMS, PREVIEW_VERSION, SEARCH_PAGE_SIZE};
pub use config::{
    validate_base_url, AccessToken, ClientConfig, Region, DEFAULT_INTERCOM_VERSION,
    DEFAULT_WINDOW_LIMIT, TOKEN_ENV,
};
pub use error::{ApiError, ConfigError, ErrorKind};
pub use types::{
    Admin, App, BulkJob, BulkTask, ClientStats, Company, CompanyListPage, CompanyPage,
    CompanySearchPage, Contact, ContactKey, ContactPage, DataAttribute, DataType, Model,
};
