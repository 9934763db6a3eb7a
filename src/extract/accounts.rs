//! The accounts table: identifiers, fields (flattened, typed per field) and, for
//! Vitally-API-shaped JSON, the embedded element counts, metric values, indicators and
//! segments.

use serde_json::Value;

use super::rows::{column_is, Cell, Row};
use super::typing::{kind_of_json, sniff_text, Kind};

/// Keys of a Vitally account object that are not fields.
pub const EMBEDDED_KEYS: [&str; 5] = [
    "segments",
    "currentElementCounts",
    "currentSuccessMetricValues",
    "activeRiskIndicators",
    "activeOpportunityIndicators",
];

/// The identifiers and fields of one account row.
#[derive(Debug, Default)]
pub struct AccountRow {
    pub vitally_id: Option<String>,
    pub external_id: Option<String>,
    pub owner_ref: Option<String>,
    /// Field name → raw value (CSV cells as JSON strings) with the value's own kind.
    pub fields: Vec<(String, Value, Kind)>,
    /// Embedded collections (Vitally-shaped JSON only).
    pub element_counts: Vec<(String, Value)>,
    pub metric_values: Vec<(String, Value)>,
    pub labels: Vec<(&'static str, String)>,
    /// Fields skipped because they hold arrays of objects.
    pub skipped_fields: Vec<String>,
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

/// Splits one accounts row into identifiers, fields and embedded collections.
pub fn split_row(row: &Row<'_>) -> Result<AccountRow, String> {
    let mut out = AccountRow::default();
    let mut seen: [Option<&str>; 3] = [None; 3];
    for (name, cell) in row.cells() {
        if let Some(id) = identifier(name) {
            if let Some(first) = seen[id as usize].replace(name) {
                return Err(format!("`{first}` and `{name}` are the same column (camelCase and snake_case spellings of one name): keep one"));
            }
            let value = cell.as_key().map_err(|e| format!("`{name}`: {e}"))?;
            match id {
                Identifier::Id => out.vitally_id = value,
                Identifier::External => out.external_id = value,
                Identifier::Owner => out.owner_ref = value,
            }
            continue;
        }
        match cell {
            Cell::Text("") => {}
            Cell::Text(text) => out.fields.push((
                field_name(name).to_string(),
                Value::String(text.to_string()),
                sniff_text(text),
            )),
            Cell::Json(value) => {
                if let Some(kind) = embedded_kind(name) {
                    embedded(&mut out, kind, name, value)?;
                } else if name == "traits" && value.is_object() {
                    flatten(&mut out, "", value);
                } else {
                    flatten(&mut out, field_name(name), value);
                }
            }
        }
    }
    Ok(out)
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

fn embedded(out: &mut AccountRow, kind: Embedded, key: &str, value: &Value) -> Result<(), String> {
    match (kind, value) {
        (_, Value::Null) => {}
        (Embedded::Segments, Value::Array(items)) => {
            for item in items {
                let name = match item {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
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
            target.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        (Embedded::Indicators(kind), Value::Object(map)) => {
            out.labels
                .extend(map.keys().map(|name| (kind, name.clone())));
        }
        (Embedded::Indicators(kind), Value::Array(items)) => {
            for item in items {
                let name = item.as_str().ok_or_else(|| {
                    format!("`{key}`: expected an array of names or an object name → date")
                })?;
                out.labels.push((kind, name.to_string()));
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
fn flatten(out: &mut AccountRow, prefix: &str, value: &Value) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, item) in map {
                flatten(out, &join(key), item);
            }
        }
        Value::Array(items) => {
            if items.iter().any(|v| v.is_object() || v.is_array()) {
                out.skipped_fields.push(prefix.to_string());
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
                .push((prefix.to_string(), Value::String(text), Kind::String));
        }
        scalar => out
            .fields
            .push((prefix.to_string(), scalar.clone(), kind_of_json(scalar))),
    }
}
