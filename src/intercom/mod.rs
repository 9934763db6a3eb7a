//! Intercom HTTP client layer: a typed async client for exactly the REST endpoints the loader
//! uses, with one retry policy ([`retry`]) and one rate governor ([`governor`]) for all of them.
//!
//! It can update existing companies, contacts and data attributes and create data attributes;
//! it cannot create companies or contacts (no `POST /companies`, no `POST /contacts`).

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

pub use client::{Client, SEARCH_PAGE_SIZE};
pub use config::{
    validate_base_url, AccessToken, ClientConfig, Region, DEFAULT_INTERCOM_VERSION,
    DEFAULT_WINDOW_LIMIT, TOKEN_ENV,
};
pub use error::{ApiError, ConfigError, ErrorKind};
pub use types::{
    ClientStats, Company, CompanyListPage, CompanyPage, Contact, ContactKey, ContactPage,
    DataAttribute, DataType, Model,
};
