//! The accounts table: identifiers, fields (flattened, typed per field) and, for
//! Vitally-API-shaped JSON, the embedded element counts, metric values, indicators and
//! segments.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::rows::{column_is, Cell, CsvColumns, CsvRecord};
use super::typing::{kind_of_json, sniff_text, Kind};
use crate::store::codec::Raw;

/// Keys of a Vitally account object that are not fields.
pub const EMBEDDED_KEYS: [&str; 5] = [
    "segments",
    "currentElementCounts",
    "currentSuccessMetricValues",
    "activeRiskIndicators",
    "activeOpportunityIndicators",
];

/// The identifiers and fields of one account row, borrowed from the row where possible.
#[derive(Debug, Default)]
pub struct AccountRow<'a> {
    pub vitally_id: Option<Cow<'a, str>>,
    pub external_id: Option<Cow<'a, str>>,
    pub owner_ref: Option<Cow<'a, str>>,
    /// Field name → raw value with the value's own kind (objects; a CSV row's fields are read
    /// by column, see [`CsvAccountColumns::fields`]).
    pub fields: Vec<(Cow<'a, str>, Raw<'a>, Kind)>,
    /// Embedded collections (Vitally-shaped JSON only).
    pub element_counts: Vec<(&'a str, &'a Value)>,
    pub metric_values: Vec<(&'a str, &'a Value)>,
    pub labels: Vec<(&'static str, &'a str)>,
    /// Fields skipped because they hold arrays of objects.
    pub skipped_fields: Vec<String>,
}

/// A JSON scalar as a raw value (`None` for null, arrays and objects).
pub fn raw_of_json(value: &Value) -> Option<Raw<'_>> {
    Some(match value {
        Value::String(s) => Raw::Str(Cow::Borrowed(s)),
        Value::Bool(b) => Raw::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Raw::Int(i),
            (None, Some(u)) => Raw::UInt(u),
            _ => Raw::Float(n.as_f64()?),
        },
        Value::Null | Value::Array(_) | Value::Object(_) => return None,
    })
}

/// A raw value as JSON text, for messages (`"abc"`, `12`, `true`).
pub fn raw_json_text(raw: &Raw<'_>) -> String {
    match raw {
        Raw::Str(s) => Value::String(s.to_string()).to_string(),
        Raw::Int(i) => i.to_string(),
        Raw::UInt(u) => u.to_string(),
        Raw::Float(f) => {
            serde_json::Number::from_f64(*f).map_or_else(|| f.to_string(), |n| n.to_string())
        }
        Raw::Bool(b) => b.to_string(),
    }
}

/// Which identifier a column is, by its normalized name (compared without allocating: this
/// runs for every cell of every account).
fn identifier(name: &str) -> Option<Identifier> {
    if column_is(name, "id") {
        Some(Identifier::Id)
    } else if column_is(name, "externalid") {
        Some(Identifier::External)
    } else if column_is(name, "accountownerid") {
        Some(Identifier::Owner)
    } else {
        None
    }
}

#[derive(Clone, Copy)]
enum Identifier {
    Id,
    External,
    Owner,
}

/// A field's name as the attribute mapping sees it: `traits.plan` is the field `plan`.
pub fn field_name(raw: &str) -> &str {
    raw.strip_prefix("traits.").unwrap_or(raw)
}

/// Splits one account object (JSON, NDJSON, Parquet) into identifiers, fields and embedded
/// collections. (A CSV row is read by column: see [`CsvAccountColumns`].)
pub fn split_object(object: &Map<String, Value>) -> Result<AccountRow<'_>, String> {
    let mut out = AccountRow::default();
    let mut seen: [Option<&str>; 3] = [None; 3];
    for (name, value) in object {
        let name = name.as_str();
        if let Some(id) = identifier(name) {
            if let Some(first) = seen[id as usize].replace(name) {
                return Err(same_column(first, name));
            }
            let value = Cell::Json(value)
                .as_key()
                .map_err(|e| format!("`{name}`: {e}"))?;
            out.set_identifier(id, value);
        } else if let Some(kind) = embedded_kind(name) {
            embedded(&mut out, kind, name, value)?;
        } else if name == "traits" && value.is_object() {
            flatten(&mut out, Cow::Borrowed(""), value);
        } else {
            flatten(&mut out, Cow::Borrowed(field_name(name)), value);
        }
    }
    Ok(out)
}

fn same_column(first: &str, second: &str) -> String {
    format!("`{first}` and `{second}` are the same column (camelCase and snake_case spellings of one name): keep one")
}

impl<'a> AccountRow<'a> {
    fn set_identifier(&mut self, id: Identifier, value: Option<Cow<'a, str>>) {
        match id {
            Identifier::Id => self.vitally_id = value,
            Identifier::External => self.external_id = value,
            Identifier::Owner => self.owner_ref = value,
        }
    }
}

/// The columns of one CSV part of the accounts table, told apart once from its header.
pub struct CsvAccountColumns {
    /// The column of each [`Identifier`], if the part has it.
    identifiers: [Option<usize>; 3],
    /// The other columns: fields.
    fields: Vec<usize>,
}

impl CsvAccountColumns {
    pub fn new(columns: &CsvColumns) -> Result<CsvAccountColumns, String> {
        let mut identifiers: [Option<usize>; 3] = [None; 3];
        let mut fields = Vec::with_capacity(columns.names.len());
        for (column, name) in columns.names.iter().enumerate() {
            let Some(id) = identifier(name) else {
                fields.push(column);
                continue;
            };
            if let Some(first) = identifiers[id as usize].replace(column) {
                return Err(same_column(&columns.names[first], name));
            }
        }
        Ok(CsvAccountColumns {
            identifiers,
            fields,
        })
    }

    /// Whether the part has an `id` column.
    pub fn has_id(&self) -> bool {
        self.identifiers[Identifier::Id as usize].is_some()
    }

    /// The identifiers of one record (its fields are read with [`Self::fields`]).
    pub fn identifiers<'a>(&self, columns: &CsvColumns, record: CsvRecord<'a>) -> AccountRow<'a> {
        let mut out = AccountRow::default();
        for id in [Identifier::Id, Identifier::External, Identifier::Owner] {
            let text = self.identifiers[id as usize]
                .and_then(|column| record.get(column))
                .map(|text| columns.non_null(text))
                .filter(|text| !text.is_empty());
            out.set_identifier(id, text.map(Cow::Borrowed));
        }
        out
    }

    /// The fields of one record that hold a value: (column, text, kind).
    pub fn fields<'s, 'a: 's>(
        &'s self,
        columns: &'s CsvColumns,
        record: CsvRecord<'a>,
    ) -> impl Iterator<Item = (usize, &'a str, Kind)> + 's {
        self.fields.iter().filter_map(move |&column| {
            let text = columns.non_null(record.get(column)?);
            if text.is_empty() {
                return None;
            }
            let kind = record.kind(column).unwrap_or_else(|| sniff_text(text));
            Some((column, text, kind))
        })
    }
}

#[derive(Clone, Copy)]
enum Embedded {
    Segments,
    ElementCounts,
    MetricValues,
    Indicators(&'static str),
}

fn embedded_kind(key: &str) -> Option<Embedded> {
    Some(match key {
        "segments" => Embedded::Segments,
        "currentElementCounts" => Embedded::ElementCounts,
        "currentSuccessMetricValues" => Embedded::MetricValues,
        "activeRiskIndicators" => Embedded::Indicators("risk"),
        "activeOpportunityIndicators" => Embedded::Indicators("opportunity"),
        _ => return None,
    })
}

fn embedded<'a>(
    out: &mut AccountRow<'a>,
    kind: Embedded,
    key: &str,
    value: &'a Value,
) -> Result<(), String> {
    match (kind, value) {
        (_, Value::Null) => {}
        (Embedded::Segments, Value::Array(items)) => {
            for item in items {
                let name = match item {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("name").and_then(Value::as_str),
                    _ => None,
                };
                let name = name
                    .ok_or_else(|| format!("`{key}`: expected strings or {{id, name}} objects"))?;
                out.labels.push(("segment", name));
            }
        }
        (Embedded::ElementCounts | Embedded::MetricValues, Value::Object(map)) => {
            let target = if matches!(kind, Embedded::ElementCounts) {
                &mut out.element_counts
            } else {
                &mut out.metric_values
            };
            target.extend(map.iter().map(|(k, v)| (k.as_str(), v)));
        }
        (Embedded::Indicators(kind), Value::Object(map)) => {
            out.labels
                .extend(map.keys().map(|name| (kind, name.as_str())));
        }
        (Embedded::Indicators(kind), Value::Array(items)) => {
            for item in items {
                let name = item.as_str().ok_or_else(|| {
                    format!("`{key}`: expected an array of names or an object name → date")
                })?;
                out.labels.push((kind, name));
            }
        }
        (_, other) => {
            let expected = match kind {
                Embedded::Segments => "an array of names or of {id, name} objects",
                Embedded::ElementCounts | Embedded::MetricValues => "an object keyed by id or name",
                Embedded::Indicators(_) => "an object name → date or an array of names",
            };
            return Err(format!(
                "`{key}`: expected {expected}, found {}",
                super::rows::json_type(other)
            ));
        }
    }
    Ok(())
}

/// Flattens a JSON value into fields: objects join their keys with `.`, arrays of scalars
/// become one `", "`-joined string, arrays holding objects or arrays are skipped.
fn flatten<'a>(out: &mut AccountRow<'a>, prefix: Cow<'a, str>, value: &'a Value) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, item) in map {
                let name = if prefix.is_empty() {
                    Cow::Borrowed(key.as_str())
                } else {
                    Cow::Owned(format!("{prefix}.{key}"))
                };
                flatten(out, name, item);
            }
        }
        Value::Array(items) => {
            if items.iter().any(|v| v.is_object() || v.is_array()) {
                out.skipped_fields.push(prefix.into_owned());
                return;
            }
            let text = items
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            out.fields
                .push((prefix, Raw::Str(Cow::Owned(text)), Kind::String));
        }
        scalar => {
            if let Some(raw) = raw_of_json(scalar) {
                out.fields.push((prefix, raw, kind_of_json(scalar)));
            }
        }
    }
}
