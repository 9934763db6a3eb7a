//! Extract stage: reads an export directory (see the README's input contract) and replaces
//! the database's extract tables with it in one transaction. On any error nothing changes.

pub mod accounts;
pub mod files;
pub mod parquet;
pub mod rows;
pub mod typing;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value};

use crate::progress::Progress;
use crate::store::{AccountRecord, ExtractWriter, Inserted, Store, StoreError, UserRecord};
use files::TableFile;
use rows::{read_rows, Cell, Row};
use typing::{json_number_shape, kind_of_json, sniff_text, Kind, NumberShape};

/// Why a load failed. `Input` errors name `file:line` and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{location}: {message}")]
    Input { location: String, message: String },
    #[error(transparent)]
    Parquet(#[from] parquet::ParquetError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ExtractError {
    pub fn at(file: &TableFile, line: u64, message: impl Into<String>) -> ExtractError {
        ExtractError::Input {
            location: format!("{}:{line}", file.display_name()),
            message: message.into(),
        }
    }

    pub fn io(file: &TableFile, error: std::io::Error) -> ExtractError {
        ExtractError::Input {
            location: file.path.display().to_string(),
            message: format!("cannot read the file: {error}"),
        }
    }

    /// A read error in the middle of a file: usually a truncated or corrupt gzip.
    pub fn read(file: &TableFile, line: u64, error: std::io::Error) -> ExtractError {
        let hint = if file.gzip {
            "the gzip stream is truncated or corrupt: re-export or re-download the file"
        } else if error.kind() == std::io::ErrorKind::InvalidData {
            "the file is not valid UTF-8: re-export it as UTF-8"
        } else {
            "cannot read the file"
        };
        ExtractError::at(file, line, format!("{hint} ({error})"))
    }
}

/// Distinct account fields a load accepts. Intercom caps a workspace at 250 custom
/// attributes, so an export with far more (a pivoted table, a wrong delimiter) is a mistake;
/// the margin leaves room for fields left out with `--exclude`.
pub const MAX_FIELDS: usize = 1000;

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadSummary {
    /// Rows read per table file.
    pub rows: BTreeMap<&'static str, u64>,
    pub warnings: Vec<String>,
    pub extract_version: u64,
    /// The files are byte-identical to the last load's: nothing was rewritten.
    pub unchanged: bool,
}

/// Loads the export in `dir` into `store`, replacing the previous extract atomically.
pub fn load(dir: &Path, store: &mut Store) -> Result<LoadSummary, ExtractError> {
    let found = files::discover(dir)?;
    let mut summary = LoadSummary::default();
    for name in &found.ignored {
        summary.warnings.push(format!(
            "{name}: not a table of the input contract; ignored"
        ));
    }
    let digest = files::digest(&found)?;
    if store.meta("extract_digest")?.as_deref() == Some(digest.as_str()) {
        summary.extract_version = store.require_extract()?;
        summary.unchanged = true;
        return Ok(summary);
    }
    let writer = store.extract_writer()?;
    writer.set_meta("extract_digest", &digest)?;
    let mut loader = Loader::new(&writer);
    for table in files::TABLES {
        let Some(file) = found.tables.get(table) else {
            continue;
        };
        let progress = Progress::new(&format!("loading {}", file.display_name()), "rows");
        let rows = loader.load_table(file, &progress)?;
        summary.rows.insert(table, rows);
    }
    loader.finish()?;
    summary.warnings.append(&mut loader.warnings);
    summary.extract_version = writer.commit()?;
    Ok(summary)
}

/// Elements or Success Metrics: known by id and by name.
#[derive(Default)]
struct Catalog {
    from_table: bool,
    by_id: HashMap<String, i64>,
    by_name: HashMap<String, i64>,
    kinds: Vec<Kind>,
}

impl Catalog {
    /// The key for a reference that may be an id or a name. An unknown reference names a new
    /// entry when there is no table to resolve it through; otherwise it is `None`.
    fn resolve(&mut self, reference: &str) -> Option<(i64, bool)> {
        if let Some(&key) = self.by_id.get(reference) {
            return Some((key, false));
        }
        let name = clean_name(reference);
        if let Some(&key) = self.by_name.get(&name) {
            return Some((key, false));
        }
        if self.from_table || name.is_empty() {
            return None;
        }
        let key = self.by_name.len() as i64 + 1;
        self.by_name.insert(name, key);
        self.kinds.push(Kind::Empty);
        Some((key, true))
    }
}

/// An Element or Metric name as used in attribute names: trimmed, whitespace runs collapsed.
pub fn clean_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Loader<'w, 'c> {
    writer: &'w ExtractWriter<'c>,
    elements: Catalog,
    metrics: Catalog,
    /// Account reference (`id`, or `externalId` when accounts have no `id`) → account key.
    accounts: HashMap<String, i64>,
    accounts_use_id: Option<bool>,
    /// Field name → (kind over all values, first-seen position).
    fields: HashMap<String, (Kind, usize)>,
    user_keys: HashSet<String>,
    users_have_id: bool,
    skipped_array_fields: HashSet<String>,
    unknown_refs: BTreeMap<String, u64>,
    warnings: Vec<String>,
}

const MRR: &str = "mrr";

impl<'w, 'c> Loader<'w, 'c> {
    fn new(writer: &'w ExtractWriter<'c>) -> Self {
        Loader {
            writer,
            elements: Catalog::default(),
            metrics: Catalog::default(),
            accounts: HashMap::new(),
            accounts_use_id: None,
            fields: HashMap::new(),
            user_keys: HashSet::new(),
            users_have_id: false,
            skipped_array_fields: HashSet::new(),
            unknown_refs: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    fn load_table(&mut self, file: &TableFile, progress: &Progress) -> Result<u64, ExtractError> {
        let mut warnings = Vec::new();
        let rows = match file.table {
            "elements" | "success_metrics" => {
                let is_elements = file.table == "elements";
                read_rows(
                    file,
                    &mut warnings,
                    &["id", "name"],
                    &["name"],
                    |row, line| {
                        progress.inc(1);
                        self.catalog_row(file, row, line, is_elements)
                    },
                )
            }
            "users" => read_rows(
                file,
                &mut warnings,
                &["id", "externalid", "email"],
                &[],
                |row, line| {
                    progress.inc(1);
                    self.user_row(file, row, line)
                },
            ),
            "accounts" => {
                let rows = read_rows(file, &mut warnings, &[], &["externalid"], |row, line| {
                    progress.inc(1);
                    self.account_row(file, row, line)
                })?;
                if rows == 0 {
                    return Err(ExtractError::at(file, 1, "no accounts in the file: refusing to load an empty export (was the warehouse query empty?)"));
                }
                Ok(rows)
            }
            "element_counts" => read_rows(
                file,
                &mut warnings,
                &["accountid", "elementid", "count"],
                &["accountid", "elementid", "count"],
                |row, line| {
                    progress.inc(1);
                    self.count_row(file, row, line)
                },
            ),
            "metric_values" => read_rows(
                file,
                &mut warnings,
                &["accountid", "metricid", "value"],
                &["accountid", "metricid", "value"],
                |row, line| {
                    progress.inc(1);
                    self.metric_row(file, row, line)
                },
            ),
            "indicators" => read_rows(
                file,
                &mut warnings,
                &["accountid", "kind", "name"],
                &["accountid", "kind", "name"],
                |row, line| {
                    progress.inc(1);
                    self.label_row(file, row, line, true)
                },
            ),
            "segments" => read_rows(
                file,
                &mut warnings,
                &["accountid", "name"],
                &["accountid", "name"],
                |row, line| {
                    progress.inc(1);
                    self.label_row(file, row, line, false)
                },
            ),
            other => unreachable!("table {other} is not in TABLES"),
        };
        self.warnings.append(&mut warnings);
        rows
    }

    fn key_cell(
        &self,
        file: &TableFile,
        row: &Row<'_>,
        slot: usize,
        column: &str,
        line: u64,
    ) -> Result<Option<String>, ExtractError> {
        match row.get(slot) {
            None => Ok(None),
            Some(cell) => cell
                .as_key()
                .map_err(|e| ExtractError::at(file, line, format!("`{column}`: {e}"))),
        }
    }

    fn required_key(
        &self,
        file: &TableFile,
        row: &Row<'_>,
        slot: usize,
        column: &str,
        line: u64,
    ) -> Result<String, ExtractError> {
        self.key_cell(file, row, slot, column, line)?
            .ok_or_else(|| {
                ExtractError::at(
                    file,
                    line,
                    format!("`{column}` is empty: every row needs one"),
                )
            })
    }

    fn catalog_row(
        &mut self,
        file: &TableFile,
        row: &Row<'_>,
        line: u64,
        is_elements: bool,
    ) -> Result<(), ExtractError> {
        let what = if is_elements {
            "element"
        } else {
            "success metric"
        };
        let id = self.key_cell(file, row, 0, "id", line)?;
        let raw_name = self.required_key(file, row, 1, "name", line)?;
        let name = clean_name(&raw_name);
        if name.is_empty() {
            return Err(ExtractError::at(
                file,
                line,
                format!("the {what} name is blank"),
            ));
        }
        let catalog = if is_elements {
            &mut self.elements
        } else {
            &mut self.metrics
        };
        catalog.from_table = true;
        let key = catalog.by_name.len() as i64 + 1;
        if let Some(id) = &id {
            if catalog.by_id.insert(id.clone(), key).is_some() {
                return Err(ExtractError::at(
                    file,
                    line,
                    format!("the {what} id `{id}` appears twice: ids must be unique"),
                ));
            }
        }
        if catalog.by_name.insert(name.clone(), key).is_some() {
            return Err(ExtractError::at(file, line, format!("two {what}s are named `{name}`: names become Intercom attribute names, so they must be unique — rename one in the export")));
        }
        catalog.kinds.push(Kind::Empty);
        if is_elements {
            self.writer.insert_element(key, id.as_deref(), &name)?;
        } else {
            self.writer.insert_metric(key, id.as_deref(), &name)?;
        }
        Ok(())
    }

    fn user_row(&mut self, file: &TableFile, row: &Row<'_>, line: u64) -> Result<(), ExtractError> {
        let user = UserRecord {
            key: self.user_keys.len() as i64 + 1,
            vitally_id: self.key_cell(file, row, 0, "id", line)?,
            external_id: self.key_cell(file, row, 1, "externalId", line)?,
            email: self.key_cell(file, row, 2, "email", line)?,
        };
        self.users_have_id |= user.vitally_id.is_some();
        if user.external_id.is_none() && user.email.is_none() {
            return Err(ExtractError::at(file, line, "this user has neither `externalId` nor `email`: Intercom contacts are found by one of them"));
        }
        if !self.user_keys.insert(user.record_key()) {
            let what = match &user.external_id {
                Some(id) => format!("externalId `{id}`"),
                None => format!(
                    "email `{}` (and no externalId)",
                    user.email.as_deref().unwrap_or_default()
                ),
            };
            return Err(ExtractError::at(
                file,
                line,
                format!("a second user with {what}: each user must appear once"),
            ));
        }
        if let Some(id) = &user.vitally_id {
            if !self.user_keys.insert(format!("i:{id}")) {
                return Err(ExtractError::at(
                    file,
                    line,
                    format!("a second user with id `{id}`: ids must be unique"),
                ));
            }
        }
        self.writer.insert_user(user.key, &user, line)?;
        Ok(())
    }

    fn account_row(
        &mut self,
        file: &TableFile,
        row: &Row<'_>,
        line: u64,
    ) -> Result<(), ExtractError> {
        let parsed = accounts::split_row(row).map_err(|e| ExtractError::at(file, line, e))?;
        let external_id = parsed
            .external_id
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ExtractError::at(file, line, "`externalId` is missing or empty: it is the Intercom company_id, every account needs one"))?;
        let use_id = *self.accounts_use_id.get_or_insert(
            parsed.vitally_id.is_some()
                || row.json().is_none()
                    && row.cells().any(|(n, _)| rows::normalize_column(n) == "id"),
        );
        if !use_id && parsed.vitally_id.is_some() {
            return Err(ExtractError::at(file, line, "this account has an `id` but the first one has none: other tables refer to accounts by `id` only when every account has one — give every account its `id`, or leave `id` out everywhere"));
        }
        let reference = if use_id {
            parsed.vitally_id.clone().ok_or_else(|| {
                ExtractError::at(file, line, "`id` is empty, but other accounts have one: child tables refer to accounts by `id`, so every account needs it (or drop the column to refer by externalId)")
            })?
        } else {
            external_id.clone()
        };
        let key = self.accounts.len() as i64 + 1;
        let mut fields = Map::new();
        for (name, value, kind) in parsed.fields {
            if rows::column_is(&name, MRR) && !matches!(kind, Kind::Integer | Kind::Float) {
                return Err(ExtractError::at(
                    file,
                    line,
                    format!("`{name}` must be a number (it becomes monthly_spend), found {value}: fix the value, or leave the cell empty for no monthly_spend"),
                ));
            }
            // Look up before inserting: no clone of the name per field per row.
            if let Some(entry) = self.fields.get_mut(&name) {
                entry.0 = entry.0.join(kind);
            } else {
                let position = self.fields.len();
                if position == MAX_FIELDS {
                    return Err(ExtractError::at(
                        file,
                        line,
                        format!("more than {MAX_FIELDS} distinct account fields (field number {} is `{name}`), but Intercom allows at most 250 custom attributes in a workspace: export only the fields you mean to send", MAX_FIELDS + 1),
                    ));
                }
                self.fields.insert(name.clone(), (kind, position));
            }
            if fields.contains_key(&name) {
                return Err(ExtractError::at(file, line, format!("the field `{name}` is given twice in this account (e.g. as `{name}` and `traits.{name}`): keep one")));
            }
            fields.insert(name, value);
        }
        for name in parsed.skipped_fields {
            if self.skipped_array_fields.insert(name.clone()) {
                self.warnings.push(format!("{}: field `{name}` holds an array of objects, which Intercom cannot store; skipped", file.display_name()));
            }
        }
        let record = AccountRecord {
            key,
            external_id: external_id.clone(),
            owner_ref: parsed.owner_ref,
            fields: Value::Object(fields).to_string(),
        };
        if self
            .writer
            .insert_account(key, &record, parsed.vitally_id.as_deref(), line)?
            == Inserted::Duplicate
            || self.accounts.contains_key(&reference)
        {
            let first = self
                .writer
                .account_line(&external_id, parsed.vitally_id.as_deref())?
                .unwrap_or(0);
            return Err(ExtractError::at(file, line, format!("duplicate account `{reference}` (first at line {first}): each account must appear once")));
        }
        self.accounts.insert(reference, key);
        for (element, count) in parsed.element_counts {
            self.add_count(file, line, key, &element, Cell::Json(&count))?;
        }
        for (metric, value) in parsed.metric_values {
            self.add_metric_value(file, line, key, &metric, Cell::Json(&value))?;
        }
        for (kind, name) in parsed.labels {
            self.add_label(file, line, key, kind, &name)?;
        }
        Ok(())
    }

    /// Counts a row skipped because what it refers to is unknown (one warning per kind).
    fn skip(&mut self, file: &TableFile, what: &str) {
        *self
            .unknown_refs
            .entry(format!("{}: {what}", file.display_name()))
            .or_default() += 1;
    }

    /// The account key for a child row's `account_id`; `None` (counted) when unknown.
    fn account_of(&mut self, file: &TableFile, reference: &str) -> Option<i64> {
        let found = self.accounts.get(reference).copied();
        if found.is_none() {
            self.skip(file, "rows whose account is not in the accounts file");
        }
        found
    }

    fn count_row(
        &mut self,
        file: &TableFile,
        row: &Row<'_>,
        line: u64,
    ) -> Result<(), ExtractError> {
        let account = self.required_key(file, row, 0, "account_id", line)?;
        let element = self.required_key(file, row, 1, "element_id", line)?;
        let Some(key) = self.account_of(file, &account) else {
            return Ok(());
        };
        let count = row.get(2).unwrap_or(Cell::Text(""));
        self.add_count(file, line, key, &element, count)
    }

    fn add_count(
        &mut self,
        file: &TableFile,
        line: u64,
        account: i64,
        element: &str,
        count: Cell<'_>,
    ) -> Result<(), ExtractError> {
        let count = parse_count(count).map_err(|e| {
            ExtractError::at(file, line, format!("element count for `{element}`: {e}"))
        })?;
        let Some((element_key, created)) = self.elements.resolve(element) else {
            self.skip(
                file,
                "element counts whose element is not in the elements file",
            );
            return Ok(());
        };
        if created {
            self.writer
                .insert_element(element_key, None, &clean_name(element))?;
        }
        if self.writer.insert_count(account, element_key, count)? == Inserted::Duplicate {
            return Err(ExtractError::at(file, line, format!("a second count for element `{element}` on the same account: give each (account, element) once")));
        }
        Ok(())
    }

    fn metric_row(
        &mut self,
        file: &TableFile,
        row: &Row<'_>,
        line: u64,
    ) -> Result<(), ExtractError> {
        let account = self.required_key(file, row, 0, "account_id", line)?;
        let metric = self.required_key(file, row, 1, "metric_id", line)?;
        let Some(key) = self.account_of(file, &account) else {
            return Ok(());
        };
        let value = row.get(2).unwrap_or(Cell::Text(""));
        self.add_metric_value(file, line, key, &metric, value)
    }

    fn add_metric_value(
        &mut self,
        file: &TableFile,
        line: u64,
        account: i64,
        metric: &str,
        value: Cell<'_>,
    ) -> Result<(), ExtractError> {
        let (stored, kind) = match value {
            Cell::Text("") | Cell::Json(Value::Null) => return Ok(()),
            Cell::Text(text) => (Value::String(text.to_string()), sniff_text(text)),
            Cell::Json(v @ (Value::Array(_) | Value::Object(_))) => {
                return Err(ExtractError::at(file, line, format!("the value of metric `{metric}` is {}: Intercom attributes hold a single number, string or boolean", rows::json_type(v))));
            }
            Cell::Json(v) => (v.clone(), kind_of_json(v)),
        };
        let Some((metric_key, created)) = self.metrics.resolve(metric) else {
            self.skip(
                file,
                "metric values whose metric is not in the success_metrics file",
            );
            return Ok(());
        };
        if created {
            self.writer
                .insert_metric(metric_key, None, &clean_name(metric))?;
        }
        let slot = &mut self.metrics.kinds[(metric_key - 1) as usize];
        *slot = slot.join(kind);
        if self
            .writer
            .insert_metric_value(account, metric_key, &stored.to_string())?
            == Inserted::Duplicate
        {
            return Err(ExtractError::at(file, line, format!("a second value for metric `{metric}` on the same account: give each (account, metric) once")));
        }
        Ok(())
    }

    fn label_row(
        &mut self,
        file: &TableFile,
        row: &Row<'_>,
        line: u64,
        is_indicator: bool,
    ) -> Result<(), ExtractError> {
        let account = self.required_key(file, row, 0, "account_id", line)?;
        let (kind, name_slot) = if is_indicator {
            let kind = self.required_key(file, row, 1, "kind", line)?;
            let kind = match kind.trim().to_ascii_lowercase().as_str() {
                "risk" => "risk",
                "opportunity" => "opportunity",
                _ => {
                    return Err(ExtractError::at(
                        file,
                        line,
                        format!("unknown indicator kind `{kind}`: use `risk` or `opportunity`"),
                    ))
                }
            };
            (kind, 2)
        } else {
            ("segment", 1)
        };
        let name = self.required_key(file, row, name_slot, "name", line)?;
        let Some(key) = self.account_of(file, &account) else {
            return Ok(());
        };
        self.add_label(file, line, key, kind, &name)
    }

    fn add_label(
        &mut self,
        file: &TableFile,
        line: u64,
        account: i64,
        kind: &str,
        name: &str,
    ) -> Result<(), ExtractError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ExtractError::at(file, line, format!("a blank {kind} name")));
        }
        self.writer.insert_label(account, kind, name)?;
        Ok(())
    }

    /// Writes the field and metric catalogs with their inferred kinds.
    fn finish(&mut self) -> Result<(), ExtractError> {
        for (name, (kind, position)) in &self.fields {
            self.writer.insert_field(name, kind.as_str(), *position)?;
        }
        for (i, kind) in self.metrics.kinds.iter().enumerate() {
            self.writer.set_metric_kind(i as i64 + 1, kind.as_str())?;
        }
        self.writer
            .set_meta("users_have_id", if self.users_have_id { "1" } else { "0" })?;
        for (what, count) in &self.unknown_refs {
            self.warnings.push(format!("{what}: {count} skipped"));
        }
        Ok(())
    }
}

/// An element count: an integer ≥ 0 (CSV text in JSON's integer grammar, or a JSON integer).
fn parse_count(cell: Cell<'_>) -> Result<i64, String> {
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
        Some(n) if n >= 0 => Ok(n),
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
