//! The single consumer of a load: turns rows into the extract tables. It resolves references
//! (child rows → account keys, Element/Metric ids → catalog keys), infers each field's kind
//! over every part of its table, checks uniqueness in memory, writes accounts and users as
//! they come, and each account's child rows, packed, at the end.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet};

use super::accounts::{self, raw_json_text, raw_of_json, CsvAccountColumns};
use super::rows::{self, Cell, CsvColumns, Record, Row};
use super::source::{Part, TableSource};
use super::typing::{json_number_shape, kind_of_json, sniff_text, DateEvidence, Kind, NumberShape};
use super::ExtractError;
use crate::store::codec::{self, push_varint, Children, FieldsEncoder, Raw};
use crate::store::{AccountInsert, ExtractRow, StoreError, UserInsert};

/// What the consumers of a load send the thread that holds its transaction.
pub enum WriterMessage {
    Rows(Vec<ExtractRow>),
    /// Every consumer succeeded.
    Commit,
    /// A consumer failed: roll back.
    Abandon,
}

/// Sends a load's writes to the thread that holds the transaction, a few hundred at a time.
pub struct Sink {
    tx: std::sync::mpsc::SyncSender<WriterMessage>,
    buffer: Vec<ExtractRow>,
}

const SINK_BATCH: usize = 512;

impl Sink {
    pub fn new(tx: std::sync::mpsc::SyncSender<WriterMessage>) -> Sink {
        Sink {
            tx,
            buffer: Vec::with_capacity(SINK_BATCH),
        }
    }

    fn push(&mut self, row: ExtractRow) -> Result<(), ExtractError> {
        self.buffer.push(row);
        if self.buffer.len() == SINK_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is buffered. Fails when the writer has stopped (it reports why).
    pub fn flush(&mut self) -> Result<(), ExtractError> {
        let batch = std::mem::replace(&mut self.buffer, Vec::with_capacity(SINK_BATCH));
        if batch.is_empty() {
            return Ok(());
        }
        self.tx
            .send(WriterMessage::Rows(batch))
            .map_err(|_| ExtractError::Store(StoreError::Worker("the database writer stopped")))
    }
}

/// Distinct account fields a load accepts. Intercom caps a workspace at 250 custom
/// attributes, so an export with far more (a pivoted table, a wrong delimiter) is a mistake;
/// the margin leaves room for fields left out with `--exclude`.
pub const MAX_FIELDS: usize = 1000;
/// Distinct Elements, or Success Metrics, a load accepts (each becomes an attribute too).
pub const MAX_CATALOG: usize = 1000;

const MRR: &str = "mrr";

/// Elements or Success Metrics: known by id and by name, with the kind of their values.
#[derive(Default)]
struct Catalog {
    what: &'static str,
    from_table: bool,
    by_id: HashMap<String, u32>,
    by_name: HashMap<String, u32>,
    /// (source id, name, kind), indexed by key − 1.
    entries: Vec<(Option<String>, String, Kind)>,
}

impl Catalog {
    fn new(what: &'static str) -> Catalog {
        Catalog {
            what,
            ..Default::default()
        }
    }

    /// Adds an entry read from the catalog's own table.
    fn add(&mut self, id: Option<String>, name: String) -> Result<u32, String> {
        let key = self.next_key()?;
        self.from_table = true;
        if let Some(id) = &id {
            if self.by_id.insert(id.clone(), key).is_some() {
                return Err(format!(
                    "the {} id `{id}` appears twice: ids must be unique",
                    self.what
                ));
            }
        }
        if self.by_name.insert(name.clone(), key).is_some() {
            return Err(format!("two {}s are named `{name}`: names become Intercom attribute names, so they must be unique — rename one in the export", self.what));
        }
        self.entries.push((id, name, Kind::Empty));
        Ok(key)
    }

    fn next_key(&self) -> Result<u32, String> {
        if self.entries.len() == MAX_CATALOG {
            return Err(format!("more than {MAX_CATALOG} distinct {}s, but each becomes an Intercom attribute and a workspace holds at most 250: export only the ones you mean to send", self.what));
        }
        Ok(self.entries.len() as u32 + 1)
    }

    /// The key for a reference that may be an id or a name. An unknown reference names a new
    /// entry when there is no table to resolve it through; otherwise it is `None`.
    fn resolve(&mut self, reference: &str) -> Result<Option<u32>, String> {
        if let Some(&key) = self.by_id.get(reference) {
            return Ok(Some(key));
        }
        let name = super::clean_name(reference);
        if let Some(&key) = self.by_name.get(&name) {
            return Ok(Some(key));
        }
        if self.from_table || name.is_empty() {
            return Ok(None);
        }
        let key = self.next_key()?;
        self.by_name.insert(name.clone(), key);
        self.entries.push((None, name, Kind::Empty));
        Ok(Some(key))
    }
}

/// The account fields met so far, keyed in first-seen order.
#[derive(Default)]
struct Fields {
    keys: HashMap<String, u32>,
    /// Indexed by field key.
    entries: Vec<FieldEntry>,
    /// Encodes each account's fields (its buffer reused from one account to the next).
    encoder: FieldsEncoder,
}

struct FieldEntry {
    name: String,
    /// Over every value so far.
    kind: Kind,
    /// Whether this is the MRR (it becomes monthly_spend, so it must be a number).
    is_mrr: bool,
    /// The last account that gave the field (catches a field given twice).
    seen_in: u32,
    /// Why the field, when it holds dates, is not a date.
    dates: DateEvidence,
}

impl Fields {
    /// The key of the field `name`, a new one when it is first seen.
    fn key(&mut self, name: &str) -> Result<u32, String> {
        if let Some(&key) = self.keys.get(name) {
            return Ok(key);
        }
        let key = self.entries.len() as u32;
        if key as usize == MAX_FIELDS {
            return Err(format!("more than {MAX_FIELDS} distinct account fields (field number {} is `{name}`), but Intercom allows at most 250 custom attributes in a workspace: export only the fields you mean to send", MAX_FIELDS + 1));
        }
        self.keys.insert(name.to_string(), key);
        self.entries.push(FieldEntry {
            name: name.to_string(),
            kind: Kind::Empty,
            is_mrr: rows::column_is(name, MRR),
            seen_in: 0,
            dates: DateEvidence::default(),
        });
        Ok(key)
    }

    /// Adds the value of `field` to the fields of `account`, the one being read.
    fn add(
        &mut self,
        account: u32,
        field: u32,
        value: &Raw<'_>,
        kind: Kind,
        at: Location<'_>,
    ) -> Result<(), ExtractError> {
        let entry = &mut self.entries[field as usize];
        let name = &entry.name;
        if entry.is_mrr && !matches!(kind, Kind::Integer | Kind::Float) {
            return Err(at.error(format!("`{name}` must be a number (it becomes monthly_spend), found {}: fix the value, or leave the cell empty for no monthly_spend", raw_json_text(value))));
        }
        if std::mem::replace(&mut entry.seen_in, account) == account {
            return Err(at.error(format!("the field `{name}` is given twice in this account (e.g. as `{name}` and `traits.{name}`): keep one")));
        }
        entry.kind = entry.kind.join(kind);
        observe_date(&mut entry.dates, kind, value, at);
        self.encoder.push(field, value);
        Ok(())
    }
}

/// The accounts CSV part being read: its index, its columns told apart, and each column's
/// field key once the column has held a value.
struct CsvPart {
    index: usize,
    columns: CsvAccountColumns,
    keys: Vec<Option<u32>>,
}

/// The identity of an account reference in memory: 96 bits of its xxh3-128. A million
/// accounts are kept without a string each, in 16 bytes a map entry; two of a million ids
/// share one with a chance of about 1 in 10^17.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdHash([u32; 3]);

fn key_hash(reference: &str) -> IdHash {
    let hash = xxhash_rust::xxh3::xxh3_128(reference.as_bytes());
    IdHash([hash as u32, (hash >> 32) as u32, (hash >> 64) as u32])
}

/// The key `map` holds for `hash`, or `None` after adding it with `key`.
fn first_or_insert(map: &mut HashMap<IdHash, u32>, hash: IdHash, key: u32) -> Option<u32> {
    match map.entry(hash) {
        std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(key);
            None
        }
    }
}

/// One child row of an account, as kept in memory until the end of the load.
enum ChildEntry<'a> {
    Count(u32, u64),
    Metric(u32, Raw<'a>),
    Label(u32),
}

/// Where a row was read, for messages.
#[derive(Clone, Copy)]
pub struct Location<'p> {
    pub source: &'p TableSource,
    pub part_index: usize,
    pub line: u64,
    /// Rows the table will hold, about (see [`super::estimated_rows`]): consumers size their
    /// maps with it once instead of growing them.
    pub expected_rows: usize,
}

impl Location<'_> {
    fn part(&self) -> &Part {
        &self.source.parts[self.part_index]
    }

    fn error(&self, message: impl Into<String>) -> ExtractError {
        ExtractError::at(self.part(), self.line, message)
    }

    /// `file:line`, as errors name it.
    fn place(&self) -> String {
        format!("{}:{}", self.part().name, self.line)
    }

    /// The table as named in warnings: its file, or its parts' folder.
    fn table_label(&self) -> String {
        match self.source.parts.as_slice() {
            [only] => only.name.clone(),
            parts => format!("{} ({} parts)", self.source.table, parts.len()),
        }
    }
}

/// Label kinds as stored.
const LABEL_KINDS: [&str; 3] = ["risk", "opportunity", "segment"];

/// Child rows and the catalogs they resolve through: owned by the accounts consumer (for
/// the collections embedded in Vitally-shaped accounts), then split among the consumers of
/// the child tables, which run at once, and joined again.
#[derive(Default)]
pub struct ChildState {
    elements: Catalog,
    metrics: Catalog,
    /// Per metric key − 1: why a metric holding dates is not a date.
    metric_dates: Vec<DateEvidence>,
    /// Per label kind (see [`LABEL_KINDS`]), name → label key.
    labels: [HashMap<String, u32>; 3],
    label_count: u32,
    /// Each account's child rows (index key − 1), encoded [`ChildEntry`]s in arrival order.
    buffers: Vec<Vec<u8>>,
    unknown_refs: BTreeMap<String, u64>,
}

impl ChildState {
    /// Counts a row skipped because what it refers to is unknown (one warning per kind).
    fn skip(&mut self, at: Location<'_>, what: &str) {
        *self
            .unknown_refs
            .entry(format!("{}: {what}", at.table_label()))
            .or_default() += 1;
    }

    /// The child buffer of `account` (grown to it: a table's children come in any order).
    fn buffer(&mut self, account: u32) -> &mut Vec<u8> {
        let index = account as usize - 1;
        if self.buffers.len() <= index {
            self.buffers.resize_with(index + 1, Vec::new);
        }
        &mut self.buffers[index]
    }

    fn add_count(
        &mut self,
        at: Location<'_>,
        account: u32,
        element: &str,
        count: Cell<'_>,
    ) -> Result<(), ExtractError> {
        let count = parse_count(count)
            .map_err(|e| at.error(format!("element count for `{element}`: {e}")))?;
        let Some(element_key) = self.elements.resolve(element).map_err(|e| at.error(e))? else {
            self.skip(
                at,
                "element counts whose element is not in the elements file",
            );
            return Ok(());
        };
        self.push_once(at, account, &ChildEntry::Count(element_key, count), element)
    }

    /// Adds one of an account's children. A second count for the same Element or value for
    /// the same metric is an error; a label given twice is kept once (see [`children_of`]).
    fn push_once(
        &mut self,
        at: Location<'_>,
        account: u32,
        entry: &ChildEntry<'_>,
        name: &str,
    ) -> Result<(), ExtractError> {
        let children = self.buffer(account);
        let (tag, key, what, catalog) = match entry {
            ChildEntry::Count(key, _) => (COUNT, *key, "count", "element"),
            ChildEntry::Metric(key, _) => (METRIC, *key, "value", "metric"),
            ChildEntry::Label(_) => {
                push_entry(children, entry);
                return Ok(());
            }
        };
        if has_entry(children, tag, key) {
            return Err(at.error(format!("a second {what} for {catalog} `{name}` on the same account: give each (account, {catalog}) once")));
        }
        push_entry(children, entry);
        Ok(())
    }

    fn add_metric_value(
        &mut self,
        at: Location<'_>,
        account: u32,
        metric: &str,
        value: Cell<'_>,
    ) -> Result<(), ExtractError> {
        let (raw, kind) = match value {
            Cell::Text("") => return Ok(()),
            Cell::Text(text) => (Raw::Str(Cow::Borrowed(text)), sniff_text(text)),
            Cell::Json(v) => match raw_of_json(v) {
                Some(raw) => (raw, kind_of_json(v)),
                None if v.is_null() => return Ok(()),
                None => return Err(at.error(format!("the value of metric `{metric}` is {}: Intercom attributes hold a single number, string or boolean", rows::json_type(v)))),
            },
        };
        let Some(metric_key) = self.metrics.resolve(metric).map_err(|e| at.error(e))? else {
            self.skip(
                at,
                "metric values whose metric is not in the success_metrics file",
            );
            return Ok(());
        };
        let slot = &mut self.metrics.entries[metric_key as usize - 1].2;
        *slot = slot.join(kind);
        if self.metric_dates.len() < metric_key as usize {
            self.metric_dates
                .resize(metric_key as usize, DateEvidence::default());
        }
        observe_date(
            &mut self.metric_dates[metric_key as usize - 1],
            kind,
            &raw,
            at,
        );
        self.push_once(at, account, &ChildEntry::Metric(metric_key, raw), metric)
    }

    fn add_label(
        &mut self,
        at: Location<'_>,
        account: u32,
        kind: &str,
        name: &str,
    ) -> Result<(), ExtractError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(at.error(format!("a blank {kind} name")));
        }
        let kind_index = LABEL_KINDS.iter().position(|k| *k == kind).unwrap_or(2);
        let names = &mut self.labels[kind_index];
        let label = match names.get(name) {
            Some(&label) => label,
            None => {
                self.label_count += 1;
                names.insert(name.to_string(), self.label_count);
                self.label_count
            }
        };
        self.push_once(at, account, &ChildEntry::Label(label), name)
    }
}

/// The consumer of every table but `users` (see [`UserLoader`]) and the child tables (see
/// [`ChildLoader`]).
pub struct Loader {
    sink: Sink,
    child: ChildState,
    /// Account reference (`id`, or `externalId` when accounts have no `id`) → account key,
    /// by the reference's [`key_hash`].
    references: HashMap<IdHash, u32>,
    /// externalId → account key (by [`key_hash`]), when references are `id`s.
    external_ids: HashMap<IdHash, u32>,
    accounts_use_id: Option<bool>,
    /// Where each account was read (index key − 1): (part index, line).
    account_lines: Vec<(u32, u64)>,
    /// The accounts table's part names (for messages about an account).
    account_parts: Vec<String>,
    fields: Fields,
    /// The accounts CSV part being read, and its columns' field keys.
    csv_part: Option<CsvPart>,
    skipped_array_fields: HashSet<String>,
    pub warnings: Vec<String>,
}

impl Loader {
    pub fn new(sink: Sink) -> Self {
        Loader {
            sink,
            child: ChildState {
                elements: Catalog::new("element"),
                metrics: Catalog::new("success metric"),
                ..Default::default()
            },
            references: HashMap::default(),
            external_ids: HashMap::default(),
            accounts_use_id: None,
            account_lines: Vec::new(),
            account_parts: Vec::new(),
            fields: Fields::default(),
            csv_part: None,
            skipped_array_fields: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    pub fn accounts(&self) -> usize {
        self.account_lines.len()
    }

    /// Consumes one row of `table`.
    pub fn row(
        &mut self,
        table: &str,
        row: &Row<'_>,
        at: Location<'_>,
    ) -> Result<(), ExtractError> {
        match table {
            "elements" => self.catalog_row(row, at, true),
            "success_metrics" => self.catalog_row(row, at, false),
            "accounts" => self.account_row(row, at),
            other => unreachable!("table {other} is read by another consumer"),
        }
    }

    fn key_cell<'r>(
        row: &Row<'r>,
        slot: usize,
        column: &str,
        at: Location<'_>,
    ) -> Result<Option<Cow<'r, str>>, ExtractError> {
        match row.get(slot) {
            None => Ok(None),
            Some(cell) => cell
                .as_key()
                .map_err(|e| at.error(format!("`{column}`: {e}"))),
        }
    }

    fn required_key<'r>(
        row: &Row<'r>,
        slot: usize,
        column: &str,
        at: Location<'_>,
    ) -> Result<Cow<'r, str>, ExtractError> {
        Self::key_cell(row, slot, column, at)?
            .ok_or_else(|| at.error(format!("`{column}` is empty: every row needs one")))
    }

    fn catalog_row(
        &mut self,
        row: &Row<'_>,
        at: Location<'_>,
        is_elements: bool,
    ) -> Result<(), ExtractError> {
        let catalog = if is_elements {
            &mut self.child.elements
        } else {
            &mut self.child.metrics
        };
        let id = Self::key_cell(row, 0, "id", at)?.map(Cow::into_owned);
        let name = super::clean_name(&Self::required_key(row, 1, "name", at)?);
        if name.is_empty() {
            return Err(at.error(format!("the {} name is blank", catalog.what)));
        }
        catalog.add(id, name).map(drop).map_err(|e| at.error(e))
    }

    fn account_row(&mut self, row: &Row<'_>, at: Location<'_>) -> Result<(), ExtractError> {
        let (parsed, csv) = match row.record() {
            Record::Csv { columns, record } => (
                self.csv_part(columns, at)?.identifiers(columns, record),
                Some((columns, record)),
            ),
            Record::Json(object) => (
                accounts::split_object(object).map_err(|e| at.error(e))?,
                None,
            ),
        };
        let external_id = parsed
            .external_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| at.error("`externalId` is missing or empty: it is the Intercom company_id, every account needs one"))?;
        let use_id = *self.accounts_use_id.get_or_insert_with(|| {
            parsed.vitally_id.is_some()
                || csv.is_some() && self.csv_part.as_ref().is_some_and(|p| p.columns.has_id())
        });
        if !use_id && parsed.vitally_id.is_some() {
            return Err(at.error("this account has an `id` but the first one has none: other tables refer to accounts by `id` only when every account has one — give every account its `id`, or leave `id` out everywhere"));
        }
        let reference = if use_id {
            parsed.vitally_id.as_deref().ok_or_else(|| {
                at.error("`id` is empty, but other accounts have one: child tables refer to accounts by `id`, so every account needs it (or drop the column to refer by externalId)")
            })?
        } else {
            external_id.as_ref()
        };
        let (reference_hash, external_hash) = (key_hash(reference), key_hash(&external_id));
        let key = self.account_lines.len() as u32 + 1;
        if key == 1 {
            self.references.reserve(at.expected_rows);
            self.account_lines.reserve(at.expected_rows);
            if use_id {
                self.external_ids.reserve(at.expected_rows);
            }
        }
        // One probe per map (a million accounts' maps are far bigger than the CPU caches).
        let first = first_or_insert(&mut self.references, reference_hash, key).or_else(|| {
            use_id
                .then(|| first_or_insert(&mut self.external_ids, external_hash, key))
                .flatten()
        });
        if let Some(first) = first {
            let (part, line) = self.account_lines[first as usize - 1];
            let place = if part as usize == at.part_index {
                format!("line {line}")
            } else {
                format!("{}:{line}", at.source.parts[part as usize].name)
            };
            return Err(at.error(format!(
                "duplicate account `{reference}` (first at {place}): each account must appear once"
            )));
        }

        if let (Some((columns, record)), Some(part)) = (csv, &mut self.csv_part) {
            for (column, text, kind) in part.columns.fields(columns, record) {
                let field = match part.keys[column] {
                    Some(field) => field,
                    None => {
                        let name = accounts::field_name(&columns.names[column]);
                        let field = self.fields.key(name).map_err(|e| at.error(e))?;
                        part.keys[column] = Some(field);
                        field
                    }
                };
                self.fields
                    .add(key, field, &Raw::Str(Cow::Borrowed(text)), kind, at)?;
            }
        }
        for (name, value, kind) in parsed.fields {
            let field = self.fields.key(&name).map_err(|e| at.error(e))?;
            self.fields.add(key, field, &value, kind, at)?;
        }
        for name in parsed.skipped_fields {
            if self.skipped_array_fields.insert(name.clone()) {
                self.warnings.push(format!("{}: field `{name}` holds an array of objects, which Intercom cannot store; skipped", at.table_label()));
            }
        }
        self.sink.push(ExtractRow::Account(AccountInsert {
            key,
            vitally_id: parsed.vitally_id.map(Cow::into_owned),
            external_id: external_id.into_owned(),
            owner_ref: parsed.owner_ref.map(Cow::into_owned),
            fields: self.fields.encoder.finish(),
        }))?;
        if self.account_parts.is_empty() {
            self.account_parts = at.source.parts.iter().map(|p| p.name.clone()).collect();
        }
        self.account_lines.push((at.part_index as u32, at.line));
        for (element, count) in parsed.element_counts {
            self.child.add_count(at, key, element, Cell::Json(count))?;
        }
        for (metric, value) in parsed.metric_values {
            self.child
                .add_metric_value(at, key, metric, Cell::Json(value))?;
        }
        for (kind, name) in parsed.labels {
            self.child.add_label(at, key, kind, name)?;
        }
        Ok(())
    }

    /// The columns of the accounts CSV part `at` is in, told apart on its first row.
    fn csv_part(
        &mut self,
        columns: &CsvColumns,
        at: Location<'_>,
    ) -> Result<&CsvAccountColumns, ExtractError> {
        let part = match self.csv_part.take() {
            Some(part) if part.index == at.part_index => part,
            _ => CsvPart {
                index: at.part_index,
                columns: CsvAccountColumns::new(columns).map_err(|e| at.error(e))?,
                keys: vec![None; columns.names.len()],
            },
        };
        Ok(&self.csv_part.insert(part).columns)
    }

    /// The error for an account given an Element count or metric value twice.
    fn given_twice(&self, account: u32, Twice(is_metric, key): Twice) -> ExtractError {
        let (part, line) = self.account_lines[account as usize - 1];
        let (catalog, table) = if is_metric {
            (&self.child.metrics, "metric_values")
        } else {
            (&self.child.elements, "element_counts")
        };
        let name = catalog
            .entries
            .get(key as usize - 1)
            .map_or("?", |e| e.1.as_str());
        ExtractError::Input {
            location: format!(
                "{}:{line}",
                self.account_parts
                    .get(part as usize)
                    .map_or("accounts", String::as_str)
            ),
            message: format!(
                "this account gives {} `{name}` both itself and in {table}: give each once",
                catalog.what
            ),
        }
    }

    /// Every account has been read: the child state for the consumers of the child tables,
    /// each with the catalog it resolves through, and the accounts by reference.
    pub fn split_for_children(&mut self) -> ([ChildState; 3], &HashMap<IdHash, u32>) {
        let child = &mut self.child;
        let parts = [
            ChildState {
                elements: std::mem::take(&mut child.elements),
                ..Default::default()
            },
            ChildState {
                metrics: std::mem::take(&mut child.metrics),
                metric_dates: std::mem::take(&mut child.metric_dates),
                ..Default::default()
            },
            ChildState {
                labels: std::mem::take(&mut child.labels),
                label_count: child.label_count,
                ..Default::default()
            },
        ];
        (parts, &self.references)
    }

    /// Takes back the child state of [`Self::split_for_children`].
    pub fn join_children(&mut self, [mut counts, mut metrics, mut labels]: [ChildState; 3]) {
        let child = &mut self.child;
        child.elements = std::mem::take(&mut counts.elements);
        child.metrics = std::mem::take(&mut metrics.metrics);
        child.metric_dates = std::mem::take(&mut metrics.metric_dates);
        child.labels = std::mem::take(&mut labels.labels);
        child.label_count = labels.label_count;
        for part in [counts, metrics, labels] {
            if child.buffers.len() < part.buffers.len() {
                child.buffers.resize_with(part.buffers.len(), Vec::new);
            }
            for (mine, theirs) in child.buffers.iter_mut().zip(part.buffers) {
                mine.extend_from_slice(&theirs);
            }
            for (what, n) in part.unknown_refs {
                *child.unknown_refs.entry(what).or_default() += n;
            }
        }
    }

    /// Writes each account's packed children and the catalogs with their inferred kinds.
    pub fn finish(mut self) -> Result<Vec<String>, ExtractError> {
        use rayon::prelude::*;
        let mut warnings = std::mem::take(&mut self.warnings);
        let date_notes = self.date_notes();
        self.sink
            .push(ExtractRow::Meta(DATE_NOTES, date_notes.to_string()))?;
        let buffers = std::mem::take(&mut self.child.buffers);
        for (chunk_index, chunk) in buffers.chunks(8192).enumerate() {
            // Encoded in parallel, written in key order.
            let encoded: Vec<Result<Option<Vec<u8>>, Twice>> = chunk
                .par_iter()
                .map(|buffer| {
                    if buffer.is_empty() {
                        return Ok(None);
                    }
                    children_of(buffer).map(|c| Some(codec::encode(&c)))
                })
                .collect();
            for (i, blob) in encoded.into_iter().enumerate() {
                let key = (chunk_index * 8192 + i) as u32 + 1;
                match blob {
                    Ok(Some(blob)) => self.sink.push(ExtractRow::Children(key, blob))?,
                    Ok(None) => {}
                    Err(twice) => return Err(self.given_twice(key, twice)),
                }
            }
        }
        for (key, field) in std::mem::take(&mut self.fields.entries)
            .into_iter()
            .enumerate()
        {
            self.sink.push(ExtractRow::Field(
                key as u32,
                field.name,
                field.kind.as_str(),
            ))?;
        }
        for (i, (id, name, _)) in std::mem::take(&mut self.child.elements.entries)
            .into_iter()
            .enumerate()
        {
            self.sink
                .push(ExtractRow::Element(i as u32 + 1, id, name))?;
        }
        for (i, (id, name, kind)) in std::mem::take(&mut self.child.metrics.entries)
            .into_iter()
            .enumerate()
        {
            self.sink
                .push(ExtractRow::Metric(i as u32 + 1, id, name, kind.as_str()))?;
        }
        for (kind, names) in LABEL_KINDS
            .iter()
            .zip(std::mem::take(&mut self.child.labels))
        {
            for (name, key) in names {
                self.sink.push(ExtractRow::Label(key, kind, name))?;
            }
        }
        self.sink.flush()?;
        for (what, count) in &self.child.unknown_refs {
            warnings.push(format!("{what}: {count} skipped"));
        }
        Ok(warnings)
    }
}

/// An Element (`false`) or Success Metric (`true`) key an account is given twice.
struct Twice(bool, u32);

/// An account's child rows from its buffer, each list sorted and labels deduplicated. An
/// Element count or metric value given twice — once in the account's embedded
/// `currentElementCounts`/`currentSuccessMetricValues` and once in the child table (each
/// source alone is checked as it is read) — is an error, never a silent choice.
fn children_of(buffer: &[u8]) -> Result<Children<'_>, Twice> {
    let mut children = Children::default();
    for entry in entries(buffer) {
        match entry {
            ChildEntry::Count(k, n) => children.counts.push((k, n)),
            ChildEntry::Metric(k, v) => children.metrics.push((k, v)),
            ChildEntry::Label(k) => children.labels.push(k),
        }
    }
    children.counts.sort_unstable_by_key(|c| c.0);
    children.metrics.sort_by_key(|m| m.0);
    if let Some(w) = children.counts.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Twice(false, w[0].0));
    }
    if let Some(w) = children.metrics.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Twice(true, w[0].0));
    }
    children.labels.sort_unstable();
    children.labels.dedup();
    Ok(children)
}

/// The consumer of one group of child tables (`element_counts`; `metric_values`;
/// `indicators` and `segments`) once every account is known: it resolves each row against
/// the accounts (read only) and its own catalog, beside the other groups.
pub struct ChildLoader<'a> {
    accounts: &'a HashMap<IdHash, u32>,
    /// The last account found and its key: an account's child rows often come together,
    /// and one comparison is cheaper than a lookup in a map of a million accounts. (Key 0,
    /// which no account has, until one is found.)
    last_account: (String, u32),
    pub state: ChildState,
}

impl<'a> ChildLoader<'a> {
    pub fn new(accounts: &'a HashMap<IdHash, u32>, state: ChildState) -> Self {
        ChildLoader {
            accounts,
            last_account: (String::new(), 0),
            state,
        }
    }

    /// Consumes one row of `table`.
    pub fn row(
        &mut self,
        table: &str,
        row: &Row<'_>,
        at: Location<'_>,
    ) -> Result<(), ExtractError> {
        match table {
            "element_counts" => self.count_row(row, at),
            "metric_values" => self.metric_row(row, at),
            "indicators" => self.label_row(row, at, true),
            "segments" => self.label_row(row, at, false),
            other => unreachable!("table {other} is not a child table"),
        }
    }

    /// The account key for a child row's `account_id`; `None` (counted) when unknown.
    fn account_of(&mut self, at: Location<'_>, reference: &str) -> Option<u32> {
        let (last, last_key) = &mut self.last_account;
        if *last_key != 0 && last == reference {
            return Some(*last_key);
        }
        let Some(&key) = self.accounts.get(&key_hash(reference)) else {
            self.state
                .skip(at, "rows whose account is not in the accounts file");
            return None;
        };
        last.clear();
        last.push_str(reference);
        *last_key = key;
        Some(key)
    }

    fn count_row(&mut self, row: &Row<'_>, at: Location<'_>) -> Result<(), ExtractError> {
        let account = Loader::required_key(row, 0, "account_id", at)?;
        let element = Loader::required_key(row, 1, "element_id", at)?;
        let Some(key) = self.account_of(at, &account) else {
            return Ok(());
        };
        let count = row.get(2).unwrap_or(Cell::Text(""));
        self.state.add_count(at, key, &element, count)
    }

    fn metric_row(&mut self, row: &Row<'_>, at: Location<'_>) -> Result<(), ExtractError> {
        let account = Loader::required_key(row, 0, "account_id", at)?;
        let metric = Loader::required_key(row, 1, "metric_id", at)?;
        let Some(key) = self.account_of(at, &account) else {
            return Ok(());
        };
        let value = row.get(2).unwrap_or(Cell::Text(""));
        self.state.add_metric_value(at, key, &metric, value)
    }

    fn label_row(
        &mut self,
        row: &Row<'_>,
        at: Location<'_>,
        is_indicator: bool,
    ) -> Result<(), ExtractError> {
        let account = Loader::required_key(row, 0, "account_id", at)?;
        let (kind, name_slot) = if is_indicator {
            let kind = Loader::required_key(row, 1, "kind", at)?;
            let kind = match kind.trim() {
                k if k.eq_ignore_ascii_case("risk") => "risk",
                k if k.eq_ignore_ascii_case("opportunity") => "opportunity",
                _ => {
                    return Err(at.error(format!(
                        "unknown indicator kind `{kind}`: use `risk` or `opportunity`"
                    )))
                }
            };
            (kind, 2)
        } else {
            ("segment", 1)
        };
        let name = Loader::required_key(row, name_slot, "name", at)?;
        let Some(key) = self.account_of(at, &account) else {
            return Ok(());
        };
        self.state.add_label(at, key, kind, &name)
    }
}

/// The meta key of [`Loader::date_notes`].
pub const DATE_NOTES: &str = "date_notes";

impl Loader {
    /// Why each field or metric that holds dates is a string all the same, for the transform
    /// to warn about when it sends dates as dates: `{"fields": {key: note}, "metrics": {key:
    /// note}}` (see [`DateEvidence::note`]).
    fn date_notes(&self) -> serde_json::Value {
        let fields: serde_json::Map<String, serde_json::Value> = self
            .fields
            .entries
            .iter()
            .enumerate()
            .filter_map(|(key, field)| {
                Some((key.to_string(), field.dates.note(field.kind)?.into()))
            })
            .collect();
        let metrics: serde_json::Map<String, serde_json::Value> = self
            .child
            .metrics
            .entries
            .iter()
            .zip(&self.child.metric_dates)
            .enumerate()
            .filter_map(|(i, ((_, _, kind), dates))| {
                Some(((i + 1).to_string(), dates.note(*kind)?.into()))
            })
            .collect();
        serde_json::json!({"fields": fields, "metrics": metrics})
    }
}

/// Feeds one value to a field's or metric's [`DateEvidence`].
fn observe_date(evidence: &mut DateEvidence, kind: Kind, value: &Raw<'_>, at: Location<'_>) {
    let text = match value {
        Raw::Str(text) => Some(text.as_ref()),
        _ => None,
    };
    evidence.observe(kind, text, || {
        let written = text.map_or_else(|| raw_json_text(value), str::to_string);
        (written, at.place())
    });
}

/// The consumer of the `users` table: independent of the others, it runs beside them.
pub struct UserLoader {
    sink: Sink,
    /// xxh3-128 of every user key seen (`e:`/`m:` record keys and `i:` ids).
    user_keys: FxHashSet<u128>,
    users: u32,
    users_have_id: bool,
}

impl UserLoader {
    pub fn new(sink: Sink) -> Self {
        UserLoader {
            sink,
            user_keys: FxHashSet::default(),
            users: 0,
            users_have_id: false,
        }
    }

    pub fn row(&mut self, row: &Row<'_>, at: Location<'_>) -> Result<(), ExtractError> {
        let vitally_id = Loader::key_cell(row, 0, "id", at)?;
        let external_id = Loader::key_cell(row, 1, "externalId", at)?;
        let email = Loader::key_cell(row, 2, "email", at)?;
        if self.users == 0 {
            // One key per user, two when users have an id.
            let per_user = 1 + usize::from(vitally_id.is_some());
            self.user_keys.reserve(at.expected_rows * per_user);
        }
        self.users_have_id |= vitally_id.is_some();
        if external_id.is_none() && email.is_none() {
            return Err(at.error("this user has neither `externalId` nor `email`: Intercom contacts are found by one of them"));
        }
        let record_key = crate::store::record_key(external_id.as_deref(), email.as_deref());
        let (vitally_id, external_id, email) = (
            vitally_id.map(Cow::into_owned),
            external_id.map(Cow::into_owned),
            email.map(Cow::into_owned),
        );
        if !self
            .user_keys
            .insert(xxhash_rust::xxh3::xxh3_128(record_key.as_bytes()))
        {
            let what = match &external_id {
                Some(id) => format!("externalId `{id}`"),
                None => format!(
                    "email `{}` (and no externalId)",
                    email.as_deref().unwrap_or_default()
                ),
            };
            return Err(at.error(format!(
                "a second user with {what}: each user must appear once"
            )));
        }
        if let Some(id) = &vitally_id {
            if !self.user_keys.insert(xxhash_rust::xxh3::xxh3_128(
                &[b"i:", id.as_bytes()].concat(),
            )) {
                return Err(at.error(format!("a second user with id `{id}`: ids must be unique")));
            }
        }
        self.users += 1;
        self.sink.push(ExtractRow::User(UserInsert {
            key: self.users,
            vitally_id,
            external_id,
            email,
        }))
    }

    /// Sends the last users and whether users have an `id` (how owners are matched).
    pub fn finish(mut self) -> Result<(), ExtractError> {
        let flag = if self.users_have_id { "1" } else { "0" };
        self.sink
            .push(ExtractRow::Meta("users_have_id", flag.to_string()))?;
        self.sink.flush()
    }
}

// An account's child buffer holds its entries in arrival order, each `tag, key (u32 LE),
// payload`: a count as a varint, a metric value as a length-prefixed encoded `Raw`, nothing
// for a label. Finding a key skips payloads without decoding them.
const COUNT: u8 = 0;
const METRIC: u8 = 1;
const LABEL: u8 = 2;

fn push_entry(buffer: &mut Vec<u8>, entry: &ChildEntry<'_>) {
    let (tag, key) = match entry {
        ChildEntry::Count(key, _) => (COUNT, key),
        ChildEntry::Metric(key, _) => (METRIC, key),
        ChildEntry::Label(key) => (LABEL, key),
    };
    buffer.push(tag);
    buffer.extend_from_slice(&key.to_le_bytes());
    match entry {
        ChildEntry::Count(_, n) => push_varint(buffer, *n),
        ChildEntry::Metric(_, raw) => {
            let encoded = codec::encode(raw);
            push_varint(buffer, encoded.len() as u64);
            buffer.extend_from_slice(&encoded);
        }
        ChildEntry::Label(_) => {}
    }
}

fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

/// The raw entries of a child buffer: (tag, key, payload bytes).
fn raw_entries(buffer: &[u8]) -> impl Iterator<Item = (u8, u32, &[u8])> {
    let mut rest = buffer;
    std::iter::from_fn(move || {
        let (&tag, tail) = rest.split_first()?;
        let key = u32::from_le_bytes(tail.get(..4)?.try_into().ok()?);
        let tail = &tail[4..];
        let (payload, next) = match tag {
            COUNT => {
                let (_, next) = take_varint(tail)?;
                (&tail[..tail.len() - next.len()], next)
            }
            METRIC => {
                let (len, next) = take_varint(tail)?;
                next.split_at_checked(len as usize)?
            }
            _ => (&tail[..0], tail),
        };
        rest = next;
        Some((tag, key, payload))
    })
}

/// The entries of an account's child buffer, decoded, in arrival order.
fn entries(buffer: &[u8]) -> impl Iterator<Item = ChildEntry<'_>> {
    raw_entries(buffer).filter_map(|(tag, key, payload)| match tag {
        COUNT => take_varint(payload).map(|(n, _)| ChildEntry::Count(key, n)),
        METRIC => codec::decode("metric value", payload)
            .ok()
            .map(|raw| ChildEntry::Metric(key, raw)),
        _ => Some(ChildEntry::Label(key)),
    })
}

fn has_entry(buffer: &[u8], tag: u8, key: u32) -> bool {
    raw_entries(buffer).any(|(t, k, _)| t == tag && k == key)
}

/// An element count: an integer ≥ 0 (CSV text in JSON's integer grammar, or a JSON integer).
fn parse_count(cell: Cell<'_>) -> Result<u64, String> {
    use serde_json::Value;
    let text = match cell {
        Cell::Text(text) => Some(text),
        Cell::Json(Value::String(text)) => Some(text.as_str()),
        _ => None,
    };
    let parsed = match (text, cell) {
        (Some(text), _) if json_number_shape(text) == Some(NumberShape::Integer) => {
            text.parse::<i64>().ok()
        }
        (None, Cell::Json(Value::Number(n))) => n.as_i64(),
        _ => None,
    };
    match parsed {
        Some(n) if n >= 0 => Ok(n as u64),
        Some(n) => Err(format!("{n} is negative: counts are integers ≥ 0")),
        None => Err(format!(
            "{} is not an integer: counts are integers ≥ 0",
            describe(cell)
        )),
    }
}

fn describe(cell: Cell<'_>) -> String {
    match cell {
        Cell::Text("") => "an empty cell".into(),
        Cell::Text(t) => format!("`{t}`"),
        Cell::Json(v) => format!("`{v}`"),
    }
}
