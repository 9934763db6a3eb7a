//! Sync state: what Intercom accepted, per record; runs and the run lock.
