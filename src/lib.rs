//! intercom-push: warehouse export → SQLite → Intercom payloads → Intercom.
pub mod mock;
