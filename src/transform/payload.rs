//! One account → its company payload; one user → its contact payload. Pure functions of
//! the extract rows and the mapping, so they run in parallel in any order.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::mapping::{convert, Mapping};
use crate::store::{AccountRecord, UserRecord};

/// `PUT /companies/{id}` body plus the company_id it is for. Fields are declared in sorted
/// order, so serializing gives the canonical bytes.
#[derive(Debug, Serialize)]
pub struct CompanyPayload<'a> {
    pub company_id: &'a str,
    pub custom_attributes: BTreeMap<&'a str, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_spend: Option<i64>,
}

/// `PUT /contacts/{id}` body plus the keys the contact is found by; canonical like above.
#[derive(Debug, Serialize)]
pub struct UserPayload<'a> {
    pub custom_attributes: BTreeMap<&'a str, Value>,
    pub email: Option<&'a str>,
    pub external_id: Option<&'a str>,
}

/// An account's child rows, borrowed from the chunk.
#[derive(Default)]
pub struct AccountChildren<'a> {
    /// (element_key, count)
    pub counts: &'a [(i64, i64, i64)],
    /// (metric_key, value JSON)
    pub metric_values: &'a [(i64, i64, String)],
    /// (kind, name)
    pub labels: &'a [(i64, String, String)],
}

/// What computing one company found worth a warning.
#[derive(Debug, Default, Clone, Copy)]
pub struct CompanyNotes {
    pub monthly_spend_clamped: bool,
}

/// Largest monthly_spend Intercom stores (a 32-bit integer).
pub const MONTHLY_SPEND_MAX: i64 = 2_147_483_647;

/// Builds the canonical payload JSON of one company.
pub fn company_payload(
    mapping: &Mapping,
    account: &AccountRecord,
    children: &AccountChildren<'_>,
) -> (String, CompanyNotes) {
    let fields: Map<String, Value> = serde_json::from_str(&account.fields).unwrap_or_default();
    let mut notes = CompanyNotes::default();
    let mut attributes: BTreeMap<&str, Value> = BTreeMap::new();
    for (name, raw) in &fields {
        if let Some(field) = mapping.fields.get(name) {
            if let Some(value) = convert(raw, field.kind) {
                attributes.insert(&field.attribute, value);
            }
        }
    }
    for (key, attribute) in &mapping.elements {
        let count = children
            .counts
            .iter()
            .find(|(_, element, _)| element == key)
            .map_or(0, |c| c.2);
        attributes.insert(attribute, Value::from(count));
    }
    for (_, metric, value) in children.metric_values {
        if let Some((attribute, kind)) = mapping.metrics.get(metric) {
            if let Some(value) = serde_json::from_str::<Value>(value)
                .ok()
                .and_then(|raw| convert(&raw, *kind))
            {
                attributes.insert(attribute, value);
            }
        }
    }
    for (kind, attribute) in [
        ("risk", &mapping.risk_attribute),
        ("opportunity", &mapping.opportunity_attribute),
        ("segment", &mapping.segments_attribute),
    ] {
        let names = children
            .labels
            .iter()
            .filter(|(_, k, _)| k == kind)
            .map(|(_, _, n)| n.as_str());
        attributes.insert(attribute, Value::String(join_names(names)));
    }
    let monthly_spend = if mapping.monthly_spend {
        let mrr = mapping
            .mrr_fields
            .iter()
            .find_map(|name| fields.get(name))
            .and_then(number_of);
        mrr.map(|mrr| {
            let rounded = mrr.round(); // half away from zero
            let clamped = rounded.clamp(0.0, MONTHLY_SPEND_MAX as f64);
            notes.monthly_spend_clamped = clamped != rounded;
            clamped as i64
        })
    } else {
        None
    };
    let payload = CompanyPayload {
        company_id: &account.external_id,
        custom_attributes: attributes,
        monthly_spend,
    };
    (canonical(&payload), notes)
}

/// Builds the canonical payload JSON of one user.
pub fn user_payload(mapping: &Mapping, user: &UserRecord, is_owner: bool) -> String {
    let mut attributes = BTreeMap::new();
    attributes.insert(mapping.owner_attribute.as_str(), Value::Bool(is_owner));
    canonical(&UserPayload {
        custom_attributes: attributes,
        email: user.email.as_deref(),
        external_id: user.external_id.as_deref(),
    })
}

/// Names joined with `", "`: sorted by Unicode lowercase, ties by bytes, exact duplicates
/// removed.
pub fn join_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<(String, &str)> = names.map(|n| (n.to_lowercase(), n)).collect();
    names.sort_unstable();
    names.dedup_by(|a, b| a.1 == b.1);
    names.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

fn number_of(raw: &Value) -> Option<f64> {
    match raw {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn canonical<T: Serialize>(payload: &T) -> String {
    // Serializing maps of strings and scalars cannot fail.
    serde_json::to_string(payload).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_case_insensitively_then_by_bytes_without_duplicates() {
        let names = ["beta", "Alpha", "alpha", "Beta", "alpha", "Ünicode", "zeta"];
        assert_eq!(
            join_names(names.into_iter()),
            "Alpha, alpha, Beta, beta, zeta, Ünicode"
        );
        assert_eq!(join_names(std::iter::empty()), "");
    }
}
