//! intercom-push: warehouse export → SQLite → Intercom payloads → Intercom.
//!
//! Stages, each a module: [`extract`] (files → extract tables), [`transform`] (extract →
//! payloads + hashes), [`push`] (payloads that changed → Intercom through [`intercom`]).
//! [`store`] is the only module that speaks SQL.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod extract;
pub mod gen;
pub mod intercom;
pub mod metrics;
pub mod mock;
pub mod notify;
pub mod progress;
pub mod push;
pub mod store;
pub mod transform;
