//! Transform stage: reads the extract, computes every company's and user's canonical
//! payload and hash in parallel (rayon), and writes through a single SQLite writer only the
//! payloads whose hash changed. Same extract + same settings ⇒ same bytes and hashes, in any
//! thread order.

pub mod hash;
pub mod mapping;
pub mod payload;
pub mod start_case;

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;

use rayon::prelude::*;

use crate::extract::typing::Kind;
use crate::progress::Progress;
use crate::store::codec::{self, DecodeError, JsonNames};
use crate::store::{key_hash, Store, StoreError, StoredHash, UserRecord};
use mapping::{LongStrings, Mapping, MappingSettings, MAX_STRING_CHARS};
use payload::{decode_account, CompanyNotes, Layout};

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("{0}")]
    Collision(String),
    #[error("{0}")]
    Settings(String),
    /// A string value over Intercom's limit with `long_strings = "fail"` (exit 2).
    #[error("{0}")]
    LongString(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DecodeError> for TransformError {
    fn from(e: DecodeError) -> Self {
        TransformError::Store(StoreError::Damaged {
            path: String::from("(extract)"),
            message: e.to_string(),
        })
    }
}

/// What a transform did.
#[derive(Debug, Default)]
pub struct TransformSummary {
    pub companies: u64,
    pub users: u64,
    /// Payloads written because they are new or differ from the stored ones.
    pub changed: u64,
    pub attributes: usize,
    pub warnings: Vec<String>,
    /// Nothing to compute: the payloads already match the extract and the settings.
    pub up_to_date: bool,
}

/// Records per chunk handed from the reader thread to the workers.
const CHUNK: u32 = 4096;

/// The tool version and payload rules whose payloads are stored; a new one recomputes them.
/// Rules 2: string values cut to Intercom's 255 characters.
const TOOL: &str = concat!("intercom-push ", env!("CARGO_PKG_VERSION"), " rules 2");

/// Computes all payloads for the current extract with `settings`.
pub fn transform(
    store: &mut Store,
    settings: &MappingSettings,
) -> Result<TransformSummary, TransformError> {
    let extract_version = store.require_extract().map_err(|e| match e {
        // Running transform before any load is a usage error (exit 2), not a database one.
        StoreError::NoExtract { .. } => TransformError::Settings(e.to_string()),
        other => TransformError::Store(other),
    })?;
    let fresh = store.meta("payload_extract_version")?.as_deref()
        == Some(extract_version.to_string().as_str())
        && store.meta("mapping")?.as_deref() == Some(settings.version().as_str())
        && store.meta("payload_tool")?.as_deref() == Some(TOOL)
        && store.meta("long_strings")?.as_deref() == Some(settings.long_strings.as_str());
    if fresh {
        // Same extract, same settings, same tool: the payloads are already these.
        let counts = store.payload_counts()?;
        let total = |kind: &str| {
            counts
                .iter()
                .find(|c| c.0 == kind)
                .map_or(0, |c| c.1 as u64)
        };
        return Ok(TransformSummary {
            companies: total("company"),
            users: total("user"),
            up_to_date: true,
            ..Default::default()
        });
    }
    let kind_of = |text: &str| Kind::parse(text).unwrap_or(Kind::String);
    let fields: Vec<(u32, String, Kind)> = store
        .account_fields()?
        .into_iter()
        .map(|f| (f.key, f.name, kind_of(&f.kind)))
        .collect();
    let metrics: Vec<(u32, String, Kind)> = store
        .metrics()?
        .into_iter()
        .map(|m| (m.key, m.name, kind_of(&m.kind)))
        .collect();
    let mapping = Mapping::build(settings, &fields, &store.elements()?, &metrics)?;
    let date_notes = store
        .meta(crate::extract::DATE_NOTES)?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let labels = store.labels()?;
    let owners = store.owner_refs()?;
    let users_by_id = store.meta("users_have_id")?.as_deref() == Some("1");
    let (max_account, max_user) = store.max_keys()?;
    if settings.long_strings == LongStrings::Fail {
        refuse_long_strings(store, &mapping, &labels, max_account)?;
    }
    let checkpointer = store.checkpointer()?;
    // One reader connection per kind, beside the writer's.
    let reader = store.reopen()?;
    let users_reader = store.reopen()?;
    let mut summary = TransformSummary {
        attributes: mapping.attributes.len(),
        ..Default::default()
    };
    summary.warnings.extend(mapping.warnings.iter().cloned());
    summary
        .warnings
        .extend(mapping.date_warnings(settings, &date_notes, &fields, &metrics));

    let names: Vec<String> = mapping.attributes.iter().map(|a| a.name.clone()).collect();
    let attributes = mapping.attributes.clone();
    let (request_tx, request_rx) = mpsc::sync_channel::<Request>(4);
    let (names_tx, names_rx) = mpsc::sync_channel::<NameKeys>(1);
    std::thread::scope(|scope| {
        // The writer thread holds the transaction and carries out the write requests in
        // order, so the compute here overlaps the inserts there.
        let writer =
            scope.spawn(move || write_payloads(store, &attributes, &names, names_tx, request_rx));
        let computed = (|| -> Result<(), TransformError> {
            let Ok(name_keys) = names_rx.recv() else {
                return Err(writer_stopped());
            };
            let layout = Layout::new(&mapping, &name_keys, &labels);
            // Names by key, for rendering the canonical JSON.
            let mut name_table =
                vec![String::new(); name_keys.values().max().map_or(0, |k| *k as usize + 1)];
            for (name, key) in name_keys {
                name_table[key as usize] = name;
            }
            let compute = Compute {
                layout: &layout,
                names: &JsonNames::new(&name_table),
                mapping_version: &mapping.version,
            };
            // Companies and users at once: the company payloads keep the workers busy, the
            // many small user records the writer, so each side's work hides the other's.
            let (companies, users) = std::thread::scope(|both| {
                let users = both.spawn(|| {
                    compute.users(
                        users_reader,
                        max_user,
                        &owners,
                        users_by_id,
                        request_tx.clone(),
                    )
                });
                let companies = compute.companies(reader, max_account, request_tx.clone());
                let users = users
                    .join()
                    .unwrap_or(Err(TransformError::Store(StoreError::Worker(
                        "the user payload thread panicked",
                    ))));
                (companies, users)
            });
            let (companies, users) = (companies?, users?);
            summary.companies = companies.records;
            summary.users = users.records;
            summary.changed = companies.changed + users.changed;
            if companies.clamped > 0 {
                summary.warnings.push(format!(
                    "{} accounts have an MRR outside Intercom's monthly_spend range [0, {}]; sent clamped",
                    companies.clamped,
                    payload::MONTHLY_SPEND_MAX
                ));
            }
            let mut cut: Vec<(&str, u64)> = companies
                .cut
                .iter()
                .map(|(key, records)| (name_table[*key as usize].as_str(), *records))
                .collect();
            cut.sort_unstable();
            for (name, records) in cut {
                summary.warnings.push(format!(
                    "`{name}`: {records} companies hold a value longer than Intercom's {MAX_STRING_CHARS} characters, sent as its first {} characters and `…` (long_strings = \"truncate\"; with long_strings = \"fail\" or --long-strings fail, transform refuses such an export instead)",
                    MAX_STRING_CHARS - 1
                ));
            }
            if users.unmatched_owners > 0 {
                summary.warnings.push(format!(
                    "{} accountOwnerId values match no user (by {}); those owners get no contact update",
                    users.unmatched_owners,
                    if users_by_id { "id" } else { "externalId" }
                ));
            }
            hand_over(
                &request_tx,
                Request::Commit(vec![
                    ("payload_extract_version", extract_version.to_string()),
                    ("mapping", mapping.version.clone()),
                    ("prefix", settings.prefix.clone()),
                    ("payload_tool", TOOL.to_string()),
                    ("long_strings", settings.long_strings.as_str().to_string()),
                    ("payload_count_company", summary.companies.to_string()),
                    ("payload_count_user", summary.users.to_string()),
                ]),
            )
        })();
        drop(request_tx);
        let written = writer
            .join()
            .unwrap_or(Err(StoreError::Worker("the payload writer panicked")));
        // A database error explains a "writer stopped" here: it comes first.
        written?;
        computed
    })?;
    drop(checkpointer);
    Ok(summary)
}

/// With `long_strings = "fail"`: reads every account's payload before anything is written and
/// refuses the first one holding a string over Intercom's limit, naming it and the attribute,
/// so that the database is left as it was.
fn refuse_long_strings(
    store: &Store,
    mapping: &Mapping,
    labels: &[(u32, String, String)],
    max_account: u32,
) -> Result<(), TransformError> {
    // Names keyed by their place in the mapping (the stored keys are made by the writer).
    let names: Vec<&str> = mapping.attributes.iter().map(|a| a.name.as_str()).collect();
    let keys = names
        .iter()
        .enumerate()
        .map(|(key, name)| (name.to_string(), key as u32))
        .collect();
    let layout = Layout::new(mapping, &keys, labels);
    chunked(
        store.reopen()?,
        max_account,
        |store, lo, hi| store.account_chunk(lo, hi),
        |chunk| {
            let found = chunk
                .par_iter()
                .map(|account| -> Result<Option<(&str, u32)>, DecodeError> {
                    let (fields, children) = decode_account(account)?;
                    let (_, notes) = layout.company(account, &fields, &children);
                    Ok(notes
                        .cut
                        .first()
                        .map(|key| (account.external_id.as_str(), *key)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match found.into_iter().flatten().next() {
                Some((company, key)) => Err(TransformError::LongString(format!(
                    "company `{company}`: `{}` is longer than Intercom's {MAX_STRING_CHARS} characters and long_strings is \"fail\": nothing was written. Shorten the value in the export, --exclude its source, or set long_strings = \"truncate\" (or --long-strings truncate) to send its first {} characters and `…`",
                    names[key as usize],
                    MAX_STRING_CHARS - 1
                ))),
                None => Ok(()),
            }
        },
    )
}

/// How accounts name their owner: by the users' `id` when they have one (`users_by_id`),
/// else by their externalId.
fn owner_reference(user: &UserRecord, users_by_id: bool) -> Option<&str> {
    if users_by_id {
        user.vitally_id.as_deref()
    } else {
        user.external_id.as_deref()
    }
}

/// What one kind's compute did.
#[derive(Default)]
struct Totals {
    records: u64,
    /// Payloads sent to the writer (new or changed).
    changed: u64,
    /// Companies whose MRR was clamped into monthly_spend's range.
    clamped: u64,
    /// By attribute name key: the companies whose value of it was cut to Intercom's limit.
    cut: HashMap<u32, u64>,
    /// accountOwnerId values that match no user.
    unmatched_owners: usize,
}

/// What computing a payload needs, shared by the company and the user side.
struct Compute<'a> {
    layout: &'a Layout,
    names: &'a JsonNames,
    mapping_version: &'a str,
}

impl Compute<'_> {
    /// Computes every company's payload (chunks read on `reader`) and sends the changed ones
    /// and the retirements to the writer.
    fn companies(
        &self,
        reader: Store,
        max_account: u32,
        send: mpsc::SyncSender<Request>,
    ) -> Result<Totals, TransformError> {
        let mut companies = Comparison::new("company", reader.stored_hashes("company")?);
        let mut totals = Totals::default();
        let progress = Progress::new("computing company payloads", "accounts");
        chunked(
            reader,
            max_account,
            |store, lo, hi| store.account_chunk(lo, hi),
            |chunk| {
                let computed: Vec<(Computed, CompanyNotes)> = chunk
                    .par_iter()
                    .map(|account| -> Result<(Computed, CompanyNotes), DecodeError> {
                        let (fields, children) = decode_account(account)?;
                        let (payload, notes) = self.layout.company(account, &fields, &children);
                        let computed = companies.compare(
                            &account.external_id,
                            &payload,
                            self.names,
                            self.mapping_version,
                        );
                        Ok((computed, notes))
                    })
                    .collect::<Result<_, _>>()?;
                totals.records += chunk.len() as u64;
                progress.inc(chunk.len() as u64);
                let mut writes = Vec::new();
                for (account, (computed, notes)) in chunk.into_iter().zip(computed) {
                    totals.clamped += u64::from(notes.monthly_spend_clamped);
                    for key in notes.cut {
                        *totals.cut.entry(key).or_default() += 1;
                    }
                    writes.extend(companies.apply(account.external_id, computed));
                }
                totals.changed += writes.len() as u64;
                hand_over(&send, Request::Write(writes))
            },
        )?;
        progress.finish();
        hand_over(&send, Request::Write(companies.retirements()))?;
        Ok(totals)
    }

    /// Computes every user's payload (chunks read on `reader`, which first reads the stored
    /// user hashes: no user record is written before that) and sends the changed ones and the
    /// retirements to the writer.
    fn users(
        &self,
        reader: Store,
        max_user: u32,
        owners: &HashSet<String>,
        users_by_id: bool,
        send: mpsc::SyncSender<Request>,
    ) -> Result<Totals, TransformError> {
        let mut users = Comparison::new("user", reader.stored_hashes("user")?);
        let mut totals = Totals::default();
        let mut matched_owners: HashSet<&str> = HashSet::new();
        let progress = Progress::new("computing user payloads", "users");
        chunked(
            reader,
            max_user,
            |store, lo, hi| store.user_chunk(lo, hi),
            |chunk| {
                let computed: Vec<(String, Computed, Option<&str>)> = chunk
                    .par_iter()
                    .map(|user| {
                        let owner = owner_reference(user, users_by_id).and_then(|r| owners.get(r));
                        let record_key = user.record_key();
                        let payload = self.layout.user(user, owner.is_some());
                        let computed =
                            users.compare(&record_key, &payload, self.names, self.mapping_version);
                        (record_key, computed, owner.map(String::as_str))
                    })
                    .collect();
                totals.records += chunk.len() as u64;
                progress.inc(chunk.len() as u64);
                let mut writes = Vec::new();
                for (record_key, computed, owner) in computed {
                    matched_owners.extend(owner);
                    writes.extend(users.apply(record_key, computed));
                }
                totals.changed += writes.len() as u64;
                hand_over(&send, Request::Write(writes))
            },
        )?;
        progress.finish();
        hand_over(&send, Request::Write(users.retirements()))?;
        totals.unmatched_owners = owners.len() - matched_owners.len();
        Ok(totals)
    }
}

/// What the compute side asks of the writer thread.
enum Request {
    Write(Vec<PayloadWrite>),
    /// Set these meta values and commit.
    Commit(Vec<(&'static str, String)>),
}

/// The writer's one answer: the name_key of every attribute name of the mapping.
type NameKeys = std::collections::HashMap<String, u32>;

/// A change to the payloads.
enum PayloadWrite {
    /// A new or changed payload; `stored` is the row it replaces.
    Payload {
        kind: &'static str,
        record_key: String,
        stored: Option<StoredHash>,
        hash: [u8; 16],
        payload: Vec<u8>,
    },
    /// A stored record that is no longer in the extract.
    Retire(StoredHash),
}

/// Hands `request` to the writer thread.
fn hand_over(writer: &mpsc::SyncSender<Request>, request: Request) -> Result<(), TransformError> {
    writer.send(request).map_err(|_| writer_stopped())
}

fn writer_stopped() -> TransformError {
    TransformError::Store(StoreError::Worker("the payload writer stopped"))
}

/// The writer thread: replaces the payloads and the attribute catalog in one transaction,
/// committed only when asked to.
fn write_payloads(
    store: &mut Store,
    attributes: &[crate::store::Attribute],
    names: &[String],
    name_keys: mpsc::SyncSender<NameKeys>,
    requests: mpsc::Receiver<Request>,
) -> Result<(), StoreError> {
    let mut writer = store.payload_writer()?;
    for attribute in attributes {
        writer.insert_attribute(attribute)?;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if name_keys.send(writer.intern_names(&names)?).is_err() {
        return Ok(());
    }
    for request in requests {
        match request {
            Request::Write(writes) => {
                for write in writes {
                    match write {
                        PayloadWrite::Payload {
                            kind,
                            record_key,
                            stored,
                            hash,
                            payload,
                        } => writer.write_payload(
                            kind,
                            record_key,
                            stored.as_ref(),
                            hash,
                            payload,
                        )?,
                        PayloadWrite::Retire(stored) => writer.retire(&stored)?,
                    }
                }
            }
            Request::Commit(meta) => {
                for (key, value) in meta {
                    writer.set_meta(key, &value)?;
                }
                return writer.commit();
            }
        }
    }
    // The compute side gave up: roll back.
    Ok(())
}

thread_local! {
    /// Each worker's buffer for the canonical JSON it hashes.
    static CANONICAL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One kind's computed payloads compared with the stored ones.
struct Comparison {
    kind: &'static str,
    /// Sorted by key hash.
    stored: Vec<StoredHash>,
    /// Where each bucket of key hashes starts in `stored` (see [`Comparison::find`]).
    buckets: Vec<u32>,
    /// log2 of the number of buckets.
    bucket_bits: u32,
    seen: Vec<bool>,
}

/// A computed payload compared with the stored one.
struct Computed {
    /// Index into the stored hashes, when the record is stored.
    stored: Option<usize>,
    /// The hash and encoded payload, when they differ from the stored ones.
    changed: Option<([u8; 16], Vec<u8>)>,
}

impl Comparison {
    fn new(kind: &'static str, stored: Vec<StoredHash>) -> Comparison {
        let seen = vec![false; stored.len()];
        // About one record per bucket: key hashes are uniform, so a lookup reads one bucket
        // start and one or two records instead of a binary search's ~20 cache misses.
        let bucket_bits = (stored.len().max(1).ilog2() + 1).min(28);
        let mut buckets = Vec::with_capacity((1 << bucket_bits) + 1);
        let mut next = 0usize;
        for bucket in 0..=(1u128 << bucket_bits) {
            while next < stored.len()
                && Self::bucket_of(stored[next].key_hash, bucket_bits) < bucket
            {
                next += 1;
            }
            buckets.push(next as u32);
        }
        Comparison {
            kind,
            stored,
            buckets,
            bucket_bits,
            seen,
        }
    }

    fn bucket_of(key_hash: u128, bucket_bits: u32) -> u128 {
        key_hash >> (128 - bucket_bits)
    }

    /// The index of the stored record with this key hash.
    fn find(&self, key_hash: u128) -> Option<usize> {
        let bucket = Self::bucket_of(key_hash, self.bucket_bits) as usize;
        let (start, end) = (
            self.buckets[bucket] as usize,
            self.buckets[bucket + 1] as usize,
        );
        self.stored[start..end]
            .iter()
            .position(|s| s.key_hash == key_hash)
            .map(|i| start + i)
    }

    /// Hashes `payload` and compares it with the stored record of `record_key`.
    fn compare(
        &self,
        record_key: &str,
        payload: &codec::Payload<'_>,
        names: &JsonNames,
        mapping_version: &str,
    ) -> Computed {
        // The canonical JSON into this worker's buffer: reused, never grown again, and
        // hashed as the bytes they are (no String made of them).
        let hash = CANONICAL.with_borrow_mut(|json| {
            payload.write_json(names, json);
            hash::payload_hash(mapping_version, json)
        });
        // Key hashes are 128-bit: a match is this record (two keys colliding has a
        // probability of about 2⁻⁶⁸ even at a billion records).
        let index = self.find(key_hash(record_key));
        let same = index.is_some_and(|i| self.stored[i].hash == Some(hash));
        Computed {
            stored: index,
            changed: (!same).then(|| (hash, codec::encode(payload))),
        }
    }

    /// Marks the stored record as seen; the write, when the payload changed.
    fn apply(&mut self, record_key: String, computed: Computed) -> Option<PayloadWrite> {
        if let Some(i) = computed.stored {
            self.seen[i] = true;
        }
        let (hash, payload) = computed.changed?;
        Some(PayloadWrite::Payload {
            kind: self.kind,
            record_key,
            stored: computed.stored.map(|i| self.stored[i]),
            hash,
            payload,
        })
    }

    /// The stored records with a payload that the extract no longer has.
    fn retirements(&self) -> Vec<PayloadWrite> {
        self.stored
            .iter()
            .zip(&self.seen)
            .filter(|(record, seen)| !**seen && record.hash.is_some())
            .map(|(record, _)| PayloadWrite::Retire(*record))
            .collect()
    }
}

/// Reads rows `1..=max_key` in chunks on a reader thread (two chunks ahead at most) and calls
/// `process` on each, in key order, on this thread.
fn chunked<T: Send>(
    reader: Store,
    max_key: u32,
    read: impl Fn(&Store, u32, u32) -> Result<Vec<T>, StoreError> + Send,
    mut process: impl FnMut(Vec<T>) -> Result<(), TransformError>,
) -> Result<(), TransformError> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<T>, StoreError>>(2);
        let reading = scope.spawn(move || {
            let mut lo = 1u32;
            while lo <= max_key {
                let hi = lo.saturating_add(CHUNK);
                let chunk = read(&reader, lo, hi);
                let failed = chunk.is_err();
                if tx.send(chunk).is_err() || failed {
                    break;
                }
                lo = hi;
            }
        });
        let result = (|| {
            for chunk in &rx {
                process(chunk?)?;
            }
            Ok(())
        })();
        drop(rx);
        reading
            .join()
            .map_err(|_| TransformError::Store(StoreError::Worker("the reader thread panicked")))?;
        result
    })
}

/// Whether the payloads were computed from the current extract; the message says which
/// command brings them up to date.
pub fn check_fresh(store: &Store) -> Result<(), String> {
    let extract = store.meta("extract_version").ok().flatten();
    if extract.is_none() {
        return Err("no export loaded yet: run `intercom-push load --input DIR` first".into());
    }
    if extract != store.meta("payload_extract_version").ok().flatten() {
        return Err(
            "the payloads are older than the last load (or their last transform did not finish): run `intercom-push transform` first".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(keys: &[String]) -> Vec<StoredHash> {
        let mut stored: Vec<StoredHash> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| StoredHash {
                key_hash: key_hash(k),
                record_id: i as i64 + 1,
                hash: None,
            })
            .collect();
        stored.sort_unstable_by_key(|s| s.key_hash);
        stored
    }

    #[test]
    fn every_stored_key_is_found_and_no_other() {
        for n in [0usize, 1, 2, 3, 1000, 65_537] {
            let keys: Vec<String> = (0..n).map(|i| format!("c-{i}")).collect();
            let comparison = Comparison::new("company", stored(&keys));
            for (i, key) in keys.iter().enumerate() {
                let found = comparison
                    .find(key_hash(key))
                    .map(|j| comparison.stored[j].record_id);
                assert_eq!(found, Some(i as i64 + 1), "{key} among {n}");
            }
            for i in 0..1000 {
                assert_eq!(comparison.find(key_hash(&format!("absent-{i}"))), None);
            }
        }
    }

    #[test]
    fn keys_sharing_a_bucket_are_all_found() {
        // Key hashes with the same top bits land in one bucket.
        let mut stored: Vec<StoredHash> = (0..5u128)
            .map(|i| StoredHash {
                key_hash: (7u128 << 100) | i,
                record_id: i as i64,
                hash: None,
            })
            .collect();
        stored.push(StoredHash {
            key_hash: u128::MAX,
            record_id: 9,
            hash: None,
        });
        let comparison = Comparison::new("user", stored);
        for i in 0..5u128 {
            assert_eq!(comparison.find((7u128 << 100) | i), Some(i as usize));
        }
        assert_eq!(comparison.find(u128::MAX), Some(5));
        assert_eq!(comparison.find(0), None);
    }
}
