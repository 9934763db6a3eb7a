//! Records: one row per company and user with the current payload and its hash (written by
//! `transform`) and what Intercom last accepted (written by `push`, only after a 2xx).
//! Payloads are stored encoded ([`codec::Payload`]) and handed out as canonical JSON.
//!
//! While Intercom holds exactly the current payload (`pushed_hash = hash`), `pushed_payload`
//! is NULL and the pushed content is `payload`; otherwise it holds what Intercom accepted.
//! [`KEEP_PUSHED`] keeps this rule when a payload is replaced.

use std::collections::HashMap;
use std::path::PathBuf;

use rusqlite::{params, OptionalExtension, Statement, Transaction};

use super::batch::{bind_all, BatchInsert, BindRow};

use super::codec::{self, DecodeError, JsonNames, Payload};
use super::{sqlite_err, Store, StoreError};

/// A custom data attribute the mapping produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub model: &'static str,
    pub name: String,
    pub data_type: &'static str,
    pub source: String,
}

/// A payload with its hash and what Intercom last accepted for the same record.
#[derive(Clone, Debug)]
pub struct PayloadRow {
    pub kind: String,
    pub record_key: String,
    /// Canonical JSON.
    pub payload: String,
    pub hash: Vec<u8>,
    pub pushed_hash: Option<Vec<u8>>,
    /// Canonical JSON of what Intercom accepted.
    pub pushed_payload: Option<String>,
    pub intercom_id: Option<String>,
}

impl PayloadRow {
    /// True when the payload differs from what Intercom last accepted.
    pub fn is_changed(&self) -> bool {
        self.pushed_hash.as_deref() != Some(self.hash.as_slice())
    }
}

/// A record the push has to send.
#[derive(Clone, Debug)]
pub struct PendingRecord {
    pub record_id: i64,
    pub record_key: String,
    /// Canonical JSON.
    pub payload: String,
    /// The payload as stored, recorded as pushed once Intercom accepts it.
    pub stored: Vec<u8>,
    pub hash: Vec<u8>,
    pub intercom_id: Option<String>,
    /// Canonical JSON of what Intercom last accepted (for keys to clear).
    pub pushed_payload: Option<String>,
}

/// A record that left the export after Intercom accepted a payload of it, its departure not
/// handled yet.
#[derive(Debug, Clone)]
pub struct DepartedRecord {
    pub record_id: i64,
    pub record_key: String,
    pub intercom_id: Option<String>,
    /// Canonical JSON of what Intercom last accepted: the keys to clear.
    pub pushed_payload: String,
}

/// Departed records of kind `?1` (the condition of the `records_departed` index).
const DEPARTED: &str =
    "r.kind = ?1 AND r.hash IS NULL AND r.pushed_hash IS NOT NULL AND r.status IS NOT 0";

/// How one record's push ended.
#[derive(Clone, Debug)]
pub enum RecordOutcome {
    /// Intercom answered 2xx to the PUT of the payload `stored` (whose hash is `hash`).
    Updated {
        intercom_id: String,
        hash: Vec<u8>,
        stored: Vec<u8>,
    },
    /// No such company/contact in Intercom: looked up again on the next run.
    NotFound,
    /// Several contacts match the user's email: not guessed.
    Ambiguous(String),
    /// A terminal error or retries exhausted.
    Failed(String),
    /// The record left the export and its departure is handled: with `cleared`, Intercom
    /// answered 2xx to the PUT clearing what we sent (nothing of ours is held any more);
    /// without, it was only marked (`departed = "keep"`).
    Departed { cleared: bool },
}

/// One record's outcome, as sent to the writer.
#[derive(Clone, Debug)]
pub struct SyncRecord {
    pub kind: &'static str,
    pub record_id: i64,
    pub record_key: String,
    pub outcome: RecordOutcome,
}

/// A row of the `runs` table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub run_id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    #[serde(skip)]
    pub report: Option<String>,
}

impl RunRow {
    /// The columns every query of runs selects, in [`RunRow::from_row`]'s order.
    pub(super) const COLUMNS: &'static str =
        "run_id, command, started_at, finished_at, exit_code, report";

    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            run_id: r.get(0)?,
            command: r.get(1)?,
            started_at: r.get(2)?,
            finished_at: r.get(3)?,
            exit_code: r.get(4)?,
            report: r.get(5)?,
        })
    }
}

/// A record's stored hash, as `transform` compares against it.
#[derive(Clone, Copy, Debug)]
pub struct StoredHash {
    /// xxh3-128 of the record key (see [`key_hash`]).
    pub key_hash: u128,
    pub record_id: i64,
    /// The current payload's hash; `None` when the record is not in the current extract.
    pub hash: Option<[u8; 16]>,
}

/// record_key → record_id of the records of one kind.
pub type KeyIndex = std::collections::HashMap<String, i64>;

/// The hash by which `transform` finds a record's stored row without holding its key.
pub fn key_hash(record_key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(record_key.as_bytes())
}

/// The new `pushed_payload` when `payload` and `hash` are replaced by a payload whose hash is
/// `:new_hash` (NULL: the record left the export): NULL when Intercom holds the new payload,
/// the payload being replaced when Intercom holds that one, else unchanged.
const KEEP_PUSHED: &str = "CASE WHEN :new_hash IS pushed_hash THEN NULL
                               WHEN pushed_payload IS NULL AND hash IS pushed_hash THEN payload
                               ELSE pushed_payload END";

/// The payload Intercom accepted, as a column expression over `records r`.
pub(super) const PUSHED_PAYLOAD: &str =
    "COALESCE(r.pushed_payload, CASE WHEN r.pushed_hash IS NOT NULL AND r.pushed_hash IS r.hash THEN r.payload END)";

/// The records whose outcome is `?1` (a code of 2 or more) with at least `?2` consecutive
/// failures, read through the `records_attention` index: SQLite uses a partial index only
/// when the query repeats its terms (`status >= 2`).
const ATTENTION: &str = "FROM records WHERE status = ?1 AND status >= 2 AND failures >= ?2";

/// `records.status` of an outcome (schema.sql): a small integer, not the word.
pub(super) fn status_code(status: &str) -> Option<i64> {
    match status {
        "updated" => Some(1),
        "not_found" => Some(2),
        "ambiguous" => Some(3),
        "failed" => Some(4),
        "departed" => Some(0),
        _ => None,
    }
}

/// A record's (`r`) Intercom id as text: ids stored as 12 bytes are read back as the 24 hex
/// digits they were.
pub(super) const INTERCOM_ID: &str =
    "CASE typeof(r.intercom_id) WHEN 'blob' THEN lower(hex(r.intercom_id)) ELSE r.intercom_id END";

/// How Intercom's id `value` (an SQL expression) is stored: 24 lowercase hex digits, the form
/// of Intercom's ids, as the 12 bytes they spell; anything else as given.
pub(super) fn stored_intercom_id(value: &str) -> String {
    format!(
        "CASE WHEN length({value}) = 24 AND {value} NOT GLOB '*[^0-9a-f]*' THEN unhex({value}) ELSE {value} END"
    )
}

/// Records (`r`) that Intercom accepted a payload of (one that reconcile marked to be sent
/// again keeps its copy without its hash).
pub(super) const HAS_PUSHED: &str = "(r.pushed_hash IS NOT NULL OR r.pushed_payload IS NOT NULL)";

/// Which records (`r`) a query is about.
pub(super) fn selection(kind_param: &str, full_resync: bool) -> String {
    if full_resync {
        format!("r.kind = {kind_param} AND r.hash IS NOT NULL")
    } else {
        // Exactly the partial index's condition, so that the index serves it.
        format!("r.kind = {kind_param} AND r.hash IS NOT NULL AND r.hash IS NOT r.pushed_hash")
    }
}

/// A record needing attention: (kind, record_key, consecutive failures, last_error).
pub type AttentionRecord = (String, String, i64, Option<String>);

impl Store {
    /// Every stored record of `kind`, sorted by key hash (read before a transform's writes:
    /// the transform compares its payloads with these).
    pub fn stored_hashes(&self, kind: &str) -> Result<Vec<StoredHash>, StoreError> {
        let mut out = self.rows_with(
            "SELECT record_id, record_key, hash FROM records WHERE kind = ?1",
            [kind],
            |r| {
                // Borrowed, not copied: millions of rows.
                let key = r.get_ref(1)?.as_str()?;
                let hash = r.get_ref(2)?.as_blob_or_null()?;
                Ok(StoredHash {
                    key_hash: key_hash(key),
                    record_id: r.get(0)?,
                    hash: hash.and_then(|h| h.try_into().ok()),
                })
            },
        )?;
        out.sort_unstable_by_key(|s| s.key_hash);
        Ok(out)
    }

    /// Attribute names by name_key (index 0 is unused).
    pub fn attribute_names(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(i64, String)> = self.rows(
            "SELECT name_key, name FROM attribute_names ORDER BY name_key",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut names = vec![String::new(); rows.last().map_or(0, |r| r.0 as usize) + 1];
        for (key, name) in rows {
            names[key as usize] = name;
        }
        Ok(names)
    }

    /// Attribute names for rendering stored payloads as JSON.
    pub(super) fn json_names(&self) -> Result<JsonNames, StoreError> {
        Ok(JsonNames::new(&self.attribute_names()?))
    }

    pub(super) fn payload_json(
        &self,
        names: &JsonNames,
        blob: Option<&[u8]>,
    ) -> Result<Option<String>, StoreError> {
        blob.map(|b| {
            codec::decode::<Payload<'_>>("payload", b)
                .map(|p| p.to_json(names))
                .map_err(|e| self.decode_err(e))
        })
        .transpose()
    }

    fn decode_err(&self, e: DecodeError) -> StoreError {
        StoreError::Damaged {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Payload rows in plan order (companies by company_id, then users by external_id, then
    /// email), only the changed ones unless `all`.
    pub fn payload_rows<E: From<StoreError>>(
        &self,
        all: bool,
        mut visit: impl FnMut(PayloadRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let names = self.json_names()?;
        for kind in ["company", "user"] {
            let sql = format!(
                "SELECT r.record_key, r.payload, r.hash, r.pushed_hash, {PUSHED_PAYLOAD}, {INTERCOM_ID}
                 FROM records r WHERE {} ORDER BY r.record_key",
                selection("?1", all)
            );
            let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
            let mut rows = stmt.query([kind]).map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                let get = || -> rusqlite::Result<_> {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Option<Vec<u8>>>(3)?,
                        r.get::<_, Option<Vec<u8>>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                };
                let (record_key, payload, hash, pushed_hash, pushed, intercom_id) =
                    get().map_err(|e| self.err(e))?;
                visit(PayloadRow {
                    kind: kind.to_string(),
                    record_key,
                    payload: self
                        .payload_json(&names, Some(&payload))?
                        .unwrap_or_default(),
                    hash,
                    pushed_hash,
                    pushed_payload: self.payload_json(&names, pushed.as_deref())?,
                    intercom_id,
                })?;
            }
        }
        Ok(())
    }

    /// Payload counts per kind: [(kind, records with a payload, changed)]. The totals are
    /// kept by `transform`; the changed ones come from the `records_changed` index.
    pub fn payload_counts(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let mut out = Vec::new();
        for kind in ["company", "user"] {
            let total = self
                .meta(&format!("payload_count_{kind}"))?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let (changed, _) = self.pending_counts(kind, false)?;
            out.push((kind.to_string(), total, changed as i64));
        }
        Ok(out)
    }

    /// The attribute catalog of the current mapping.
    pub fn attributes(&self) -> Result<Vec<Attribute>, StoreError> {
        self.rows(
            "SELECT model, name, data_type, source FROM attributes ORDER BY model, name",
            |r| {
                let model: String = r.get(0)?;
                let data_type: String = r.get(2)?;
                Ok(Attribute {
                    model: if model == "company" {
                        "company"
                    } else {
                        "contact"
                    },
                    name: r.get(1)?,
                    data_type: static_data_type(&data_type),
                    source: r.get(3)?,
                })
            },
        )
    }

    /// Number of records of `kind` to push (changed, or all with `full_resync`) and how many
    /// of those have no known Intercom id.
    pub fn pending_counts(&self, kind: &str, full_resync: bool) -> Result<(u64, u64), StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT COUNT(*), COALESCE(SUM(r.intercom_id IS NULL), 0) FROM records r WHERE {}",
                    selection("?1", full_resync)
                ),
                params![kind],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.err(e))
    }

    /// The next page of records to push: those after record_id `after`, in record_id order.
    pub fn pending_page(
        &self,
        kind: &str,
        full_resync: bool,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        self.pending_where(
            &format!(
                "FROM records r WHERE {} AND r.record_id > ?2 ORDER BY r.record_id LIMIT ?3",
                selection("?1", full_resync)
            ),
            params![kind, after, limit as i64],
        )
    }

    /// Records the current export's sizes as those of the last pushed export (what the
    /// departure guard compares the next export with).
    pub fn remember_pushed_counts(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "INSERT INTO meta (key, value)
                   SELECT 'pushed_count_' || substr(key, length('payload_count_') + 1), value
                   FROM meta WHERE key IN ('payload_count_company', 'payload_count_user')
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value;",
            )
            .map_err(|e| self.err(e))
    }

    /// How many records of `kind` departed (see [`DepartedRecord`]).
    pub fn departed_count(&self, kind: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT COUNT(*) FROM records r WHERE {DEPARTED}"),
                [kind],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The next page of departed records of `kind` after record_id `after`.
    pub fn departed_page(
        &self,
        kind: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DepartedRecord>, StoreError> {
        let names = self.json_names()?;
        type Row = (i64, String, Option<String>, Option<Vec<u8>>);
        let rows: Vec<Row> = self.rows_with(
            &format!(
                "SELECT r.record_id, r.record_key, {INTERCOM_ID}, {PUSHED_PAYLOAD} FROM records r
                 WHERE {DEPARTED} AND r.record_id > ?2 ORDER BY r.record_id LIMIT ?3"
            ),
            params![kind, after, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        rows.into_iter()
            .map(|(record_id, record_key, intercom_id, pushed)| {
                Ok(DepartedRecord {
                    record_id,
                    record_key,
                    intercom_id,
                    pushed_payload: self
                        .payload_json(&names, pushed.as_deref())?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Pending records selected by `from_where` (a `FROM … WHERE …` over `records r`).
    pub(super) fn pending_where(
        &self,
        from_where: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let names = self.json_names()?;
        type Row = (
            i64,
            String,
            Vec<u8>,
            Vec<u8>,
            Option<String>,
            Option<Vec<u8>>,
        );
        let rows: Vec<Row> = self.rows_with(
            &format!(
                "SELECT r.record_id, r.record_key, r.payload, r.hash, {INTERCOM_ID}, {PUSHED_PAYLOAD} {from_where}"
            ),
            params,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )?;
        rows.into_iter()
            .map(
                |(record_id, record_key, stored, hash, intercom_id, pushed)| {
                    Ok(PendingRecord {
                        record_id,
                        record_key,
                        payload: self
                            .payload_json(&names, Some(&stored))?
                            .unwrap_or_default(),
                        pushed_payload: self.payload_json(&names, pushed.as_deref())?,
                        stored,
                        hash,
                        intercom_id,
                    })
                },
            )
            .collect()
    }

    /// Remembers the attributes a push is about to send as ours.
    pub fn remember_attributes(&self, attributes: &[Attribute]) -> Result<(), StoreError> {
        for a in attributes {
            self.conn
                .execute(
                    "INSERT OR IGNORE INTO known_attributes (model, name, data_type, first_seen) VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    params![a.model, a.name, a.data_type],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// (model, name) of every attribute this tool ever created or sent.
    pub fn known_attributes(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(
            "SELECT model, name FROM known_attributes ORDER BY model, name",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// (kind, attribute name, records) for every attribute Intercom holds a value of ours for.
    pub fn held_value_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let names = self.attribute_names()?;
        let mut counts: HashMap<(String, u32), i64> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT r.kind, {PUSHED_PAYLOAD} FROM records r WHERE {HAS_PUSHED}"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let kind: String = r.get(0).map_err(|e| self.err(e))?;
            let Some(blob) = r.get::<_, Option<Vec<u8>>>(1).map_err(|e| self.err(e))? else {
                continue;
            };
            let payload: Payload<'_> =
                codec::decode("payload", &blob).map_err(|e| self.decode_err(e))?;
            for (key, _) in payload.attributes() {
                *counts.entry((kind.clone(), *key)).or_default() += 1;
            }
        }
        let mut out: Vec<(String, String, i64)> = counts
            .into_iter()
            .map(|((kind, key), n)| {
                let name = names.get(key as usize).cloned().unwrap_or_default();
                (kind, name, n)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The last `limit` runs, newest first.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        self.rows_with(
            &format!(
                "SELECT {} FROM runs ORDER BY run_id DESC LIMIT ?1",
                RunRow::COLUMNS
            ),
            [limit as i64],
            RunRow::from_row,
        )
    }

    /// Records whose last outcome is `status` (not_found, failed, ambiguous) with at least
    /// `min_failures` consecutive failures: their total, and the first `limit`.
    pub fn records_with_status(
        &self,
        status: &str,
        min_failures: i64,
        limit: usize,
    ) -> Result<(u64, Vec<AttentionRecord>), StoreError> {
        let total: i64 = self
            .conn
            .query_row(
                &format!("SELECT COUNT(*) {ATTENTION}"),
                params![status_code(status), min_failures],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let rows = self.rows_with(
            &format!("SELECT kind, record_key, failures, last_error {ATTENTION} ORDER BY kind, record_key LIMIT ?3"),
            params![status_code(status), min_failures, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        Ok((total as u64, rows))
    }

    /// Starts a `runs` row; returns its id.
    pub fn start_run(&self, command: &str) -> Result<i64, StoreError> {
        self.conn
            .execute("INSERT INTO runs (command, started_at) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", [command])
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(
        &self,
        run_id: i64,
        exit_code: u8,
        report_json: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), exit_code = ?2, report = ?3 WHERE run_id = ?1",
                params![run_id, exit_code, report_json],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// A writer for outcomes, on its own connection (for the writer thread).
    pub fn sync_writer(&self) -> Result<SyncWriter, StoreError> {
        Ok(SyncWriter {
            store: self.reopen()?,
        })
    }

    /// Begins replacing the payloads and the attribute catalog (one transaction).
    pub fn payload_writer(&mut self) -> Result<PayloadWriter<'_>, StoreError> {
        self.bulk_cache()?;
        let path = self.path.clone();
        // Committed in steps, the WAL is copied into the database by a checkpointer thread
        // (see [`Store::checkpointer`]) while the payloads are computed: not by this thread
        // at each commit, nor all at once at the end.
        self.conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(|e| sqlite_err(&path, e))?;
        let tx = self.tx()?;
        // Until the last step sets it again, the payloads are not those of any one extract.
        tx.execute_batch(
            "DELETE FROM attributes; DELETE FROM meta WHERE key = 'payload_extract_version';",
        )
        .map_err(|e| sqlite_err(&path, e))?;
        Ok(PayloadWriter {
            tx,
            path,
            new_records: BatchInsert::new("records (kind, record_key, hash, payload)"),
            since_commit: 0,
        })
    }
}

fn static_data_type(text: &str) -> &'static str {
    match text {
        "integer" => "integer",
        "float" => "float",
        "boolean" => "boolean",
        "date" => "date",
        _ => "string",
    }
}

/// Writes payloads and the attribute catalog in one transaction: the caller compares each
/// computed hash with [`PayloadWriter::stored_hashes`] and writes only what changed.
pub struct PayloadWriter<'c> {
    tx: Transaction<'c>,
    path: PathBuf,
    new_records: BatchInsert<NewRecord>,
    /// Records written since the last step's commit.
    since_commit: usize,
}

/// Records per step of a payload transaction (see [`PayloadWriter::step`]).
const RECORDS_PER_STEP: usize = 25_000;

/// A record `transform` sees for the first time.
struct NewRecord {
    kind: &'static str,
    record_key: String,
    hash: [u8; 16],
    payload: Vec<u8>,
}

impl BindRow for NewRecord {
    const COLUMNS: usize = 4;
    fn bind(&self, stmt: &mut Statement<'_>, first: usize) -> rusqlite::Result<()> {
        bind_all(
            stmt,
            first,
            &[&self.kind, &self.record_key, &&self.hash[..], &self.payload],
        )
    }
}

impl PayloadWriter<'_> {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite_err(&self.path, e)
    }

    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.execute(params).map(drop).map_err(|e| self.err(e))
    }

    /// The name_key of each name, adding the names not known yet.
    pub fn intern_names(&self, names: &[&str]) -> Result<HashMap<String, u32>, StoreError> {
        let mut out = HashMap::new();
        for name in names {
            self.execute(
                "INSERT OR IGNORE INTO attribute_names (name) VALUES (?1)",
                [name],
            )?;
            let key: u32 = self
                .tx
                .query_row(
                    "SELECT name_key FROM attribute_names WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            out.insert(name.to_string(), key);
        }
        Ok(out)
    }

    /// Commits every [`RECORDS_PER_STEP`] records and goes on in a new transaction, so the
    /// WAL can be checkpointed while the rest is written. Safe to see half done: the meta
    /// saying which extract the payloads are of is written in the last step only, and until
    /// then `transform` recomputes everything and `push` refuses.
    fn step(&mut self) -> Result<(), StoreError> {
        self.since_commit += 1;
        if self.since_commit < RECORDS_PER_STEP {
            return Ok(());
        }
        self.since_commit = 0;
        self.new_records
            .flush(&self.tx)
            .and_then(|()| self.tx.execute_batch("COMMIT; BEGIN IMMEDIATE;"))
            .map_err(|e| self.err(e))
    }

    /// Writes a record's new payload: inserts the record, or replaces the payload of the
    /// stored one.
    pub fn write_payload(
        &mut self,
        kind: &'static str,
        record_key: String,
        stored: Option<&StoredHash>,
        hash: [u8; 16],
        payload: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.step()?;
        match stored {
            None => self
                .new_records
                .push(
                    &self.tx,
                    NewRecord {
                        kind,
                        record_key,
                        hash,
                        payload,
                    },
                )
                .map_err(|e| sqlite_err(&self.path, e)),
            Some(stored) => self.execute(
                &format!(
                    "UPDATE records SET pushed_payload = {KEEP_PUSHED}, hash = :new_hash, payload = :payload WHERE record_id = :id"
                ),
                rusqlite::named_params! {":id": stored.record_id, ":new_hash": &hash[..], ":payload": payload},
            ),
        }
    }

    /// A stored record that is no longer in the extract: its payload goes; the row stays
    /// when it holds sync state (Intercom's id, what it accepted, an outcome).
    pub fn retire(&mut self, stored: &StoredHash) -> Result<(), StoreError> {
        self.step()?;
        self.execute(
            "DELETE FROM records WHERE record_id = ?1 AND intercom_id IS NULL AND pushed_hash IS NULL AND status IS NULL",
            [stored.record_id],
        )?;
        self.execute(
            // A departure of its own: a record that left before and came back leaves anew.
            &format!(
                "UPDATE records SET pushed_payload = {KEEP_PUSHED}, hash = NULL, payload = NULL, status = NULLIF(status, 0) WHERE record_id = :id"
            ),
            rusqlite::named_params! {":id": stored.record_id, ":new_hash": Option::<Vec<u8>>::None},
        )
    }

    pub fn insert_attribute(&self, attribute: &Attribute) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO attributes (model, name, data_type, source) VALUES (?1, ?2, ?3, ?4)",
            params![
                attribute.model,
                attribute.name,
                attribute.data_type,
                attribute.source
            ],
        )
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![key, value])
    }

    pub fn commit(mut self) -> Result<(), StoreError> {
        self.new_records
            .flush(&self.tx)
            .and_then(|()| self.tx.execute_batch("PRAGMA wal_autocheckpoint = 1000;"))
            .map_err(|e| sqlite_err(&self.path, e))?;
        self.tx.commit().map_err(|e| sqlite_err(&self.path, e))
    }
}

/// Records outcomes; each [`SyncWriter::record`] call is one transaction.
pub struct SyncWriter {
    pub(super) store: Store,
}

impl SyncWriter {
    /// Writes a batch of outcomes in one transaction. `Updated` sets the pushed hash and
    /// payload; the other outcomes never touch them.
    pub fn record(&mut self, batch: &[SyncRecord]) -> Result<(), StoreError> {
        let path = self.store.path.clone();
        let tx = self.store.write_transaction()?;
        record_in(&tx, &path, batch)?;
        tx.commit().map_err(|e| sqlite_err(&path, e))
    }
}

/// Writes `batch` inside `tx` (see [`SyncWriter::record`]).
pub(super) fn record_in(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    batch: &[SyncRecord],
) -> Result<(), StoreError> {
    // Built once per batch; each statement is prepared once per connection.
    let updated = format!(
        "UPDATE records SET intercom_id = {}, pushed_hash = ?3,
               pushed_payload = CASE WHEN hash IS ?3 THEN NULL ELSE ?4 END,
               pushed_at = unixepoch(), status = ?5, last_error = NULL, failures = 0
             WHERE record_id = ?1",
        stored_intercom_id("?2")
    );
    for record in batch {
        let id = record.record_id;
        let result = match &record.outcome {
                RecordOutcome::Updated { intercom_id, hash, stored } => tx
                    .prepare_cached(&updated)
                    .and_then(|mut s| s.execute(params![id, intercom_id, hash, stored, status_code("updated")])),
                RecordOutcome::NotFound => tx
                    .prepare_cached("UPDATE records SET intercom_id = NULL, status = ?2, last_error = NULL WHERE record_id = ?1")
                    .and_then(|mut s| s.execute(params![id, status_code("not_found")])),
                RecordOutcome::Departed { cleared: true } => tx
                    .prepare_cached("UPDATE records SET pushed_hash = NULL, pushed_payload = NULL, pushed_at = unixepoch(), status = ?2, last_error = NULL, failures = 0 WHERE record_id = ?1")
                    .and_then(|mut s| s.execute(params![id, status_code("departed")])),
                RecordOutcome::Departed { cleared: false } => tx
                    .prepare_cached("UPDATE records SET status = ?2, last_error = NULL, failures = 0 WHERE record_id = ?1")
                    .and_then(|mut s| s.execute(params![id, status_code("departed")])),
                RecordOutcome::Ambiguous(reason) | RecordOutcome::Failed(reason) => {
                    let status = status_code(if matches!(record.outcome, RecordOutcome::Ambiguous(_)) { "ambiguous" } else { "failed" });
                    tx.prepare_cached("UPDATE records SET status = ?2, last_error = ?3, failures = failures + 1 WHERE record_id = ?1")
                        .and_then(|mut s| s.execute(params![id, status, reason]))
                }
            };
        result.map_err(|e| sqlite_err(path, e))?;
    }
    Ok(())
}

impl Store {
    /// The canonical JSON of what Intercom last accepted for one record, if anything.
    pub fn pushed_payload(
        &self,
        kind: &str,
        record_key: &str,
    ) -> Result<Option<String>, StoreError> {
        let blob: Option<Option<Vec<u8>>> = self
            .conn
            .query_row(
                &format!("SELECT {PUSHED_PAYLOAD} FROM records r WHERE r.kind = ?1 AND r.record_key = ?2"),
                params![kind, record_key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        self.payload_json(&self.json_names()?, blob.flatten().as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_needing_attention_are_read_through_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let plan: Vec<String> = store
            .rows_with(
                &format!("EXPLAIN QUERY PLAN SELECT kind, record_key, failures, last_error {ATTENTION} ORDER BY kind, record_key LIMIT ?3"),
                params![2, 0, 10],
                |r| r.get(3),
            )
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX records_attention")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }
}
