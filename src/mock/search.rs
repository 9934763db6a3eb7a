//! The contact search query language (`POST /contacts/search`).
//!
//! Supported: single filters `{field, operator, value}` with operators `=`, `!=`, `IN`, `NIN`,
//! `~` (contains), `^` (starts with), `$` (ends with) on the fields `id`, `external_id`, `email`
//! (case-insensitive), `name`, `phone`, `role` and `custom_attributes.<name>`; compound filters
//! `{operator: AND|OR, value: [filters]}` nested at most 2 levels deep with at most 15 filters per
//! group (Intercom's documented limits). Anything else → 400 `parameter_invalid`.

use super::error::ApiError;
use super::state::Store;
use serde_json::Value;
use std::collections::BTreeSet;

/// Default (documented) and maximum (assumed: documented for conversation search only)
/// `pagination.per_page`.
const DEFAULT_PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 150;
/// Intercom's limits on compound queries.
const MAX_GROUP_FILTERS: usize = 15;
const MAX_NESTING: usize = 2;

/// A parsed search query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// `{field, operator, value}`.
    Filter { field: String, op: Op, value: Value },
    /// `{operator: AND|OR, value: [...]}`.
    Group { and: bool, items: Vec<Query> },
}

/// Single-filter operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    In,
    Nin,
    Contains,
    StartsWith,
    EndsWith,
}

const FIELDS: &[&str] = &["id", "external_id", "email", "name", "phone", "role"];

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::parameter_invalid(msg)
}

impl Query {
    /// Parses and validates a `query` object.
    pub fn parse(v: &Value) -> Result<Query, ApiError> {
        Self::parse_at(v, 0)
    }

    fn parse_at(v: &Value, depth: usize) -> Result<Query, ApiError> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid("query must be an object"))?;
        let op = obj
            .get("operator")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("query operator is required"))?;
        if op == "AND" || op == "OR" {
            if depth >= MAX_NESTING {
                return Err(invalid(format!(
                    "Query nesting is limited to {MAX_NESTING} levels"
                )));
            }
            let items = obj
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(format!("{op} needs an array of filters as value")))?;
            if items.is_empty() || items.len() > MAX_GROUP_FILTERS {
                return Err(invalid(format!(
                    "{op} groups need 1 to {MAX_GROUP_FILTERS} filters"
                )));
            }
            let items = items
                .iter()
                .map(|q| Self::parse_at(q, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Query::Group {
                and: op == "AND",
                items,
            });
        }
        let op = match op {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            "IN" => Op::In,
            "NIN" => Op::Nin,
            "~" => Op::Contains,
            "^" => Op::StartsWith,
            "$" => Op::EndsWith,
            other => return Err(invalid(format!("Operator '{other}' is not supported"))),
        };
        let field = obj
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("query field is required"))?;
        if !FIELDS.contains(&field) && !field.starts_with("custom_attributes.") {
            return Err(invalid(format!("Field '{field}' is not searchable")));
        }
        let value = obj.get("value").cloned().unwrap_or(Value::Null);
        let ok = match op {
            Op::In | Op::Nin => value.as_array().is_some_and(|a| a.iter().all(is_scalar)),
            Op::Contains | Op::StartsWith | Op::EndsWith => value.is_string(),
            Op::Eq | Op::Ne => is_scalar(&value) || value.is_null(),
        };
        if !ok {
            return Err(invalid(format!("Invalid value for field '{field}'")));
        }
        Ok(Query::Filter {
            field: field.to_owned(),
            op,
            value,
        })
    }

    /// Indices of the contacts matching the query (merged ones included; callers filter them).
    /// `=`/`IN` on `id`, `external_id` and `email` use the store's indexes, also inside an `AND`
    /// (whose other filters are then tested on those contacts only); everything else scans.
    pub fn eval(&self, store: &Store) -> BTreeSet<usize> {
        match self {
            Query::Group { and: true, items } if items.iter().any(Query::indexed) => {
                let (indexed, others): (Vec<&Query>, Vec<&Query>) =
                    items.iter().partition(|q| q.indexed());
                let mut sets = indexed.iter().map(|q| q.eval(store));
                let first = sets.next().unwrap_or_default();
                sets.fold(first, |acc, s| acc.intersection(&s).copied().collect())
                    .into_iter()
                    .filter(|&i| others.iter().all(|q| q.holds_for(store, i)))
                    .collect()
            }
            Query::Group { and, items } => {
                let mut sets = items.iter().map(|q| q.eval(store));
                let first = sets.next().unwrap_or_default();
                sets.fold(first, |acc, s| {
                    if *and {
                        acc.intersection(&s).copied().collect()
                    } else {
                        acc.union(&s).copied().collect()
                    }
                })
            }
            Query::Filter { field, op, value } => {
                let wanted: Option<Vec<&Value>> = match op {
                    Op::Eq => Some(vec![value]),
                    Op::In => value.as_array().map(|a| a.iter().collect()),
                    _ => None,
                };
                match (field.as_str(), wanted) {
                    ("id" | "external_id" | "email", Some(wanted)) => {
                        let mut out = BTreeSet::new();
                        for w in wanted.iter().filter_map(|w| scalar_string(w)) {
                            match field.as_str() {
                                "id" => out.extend(store.contact_by_id.get(&w)),
                                "external_id" => out.extend(store.contact_by_external_id.get(&w)),
                                _ => out.extend(
                                    store
                                        .contact_by_email
                                        .get(&w.to_lowercase())
                                        .into_iter()
                                        .flatten(),
                                ),
                            }
                        }
                        out
                    }
                    _ => (0..store.contacts.len())
                        .filter(|&i| self.holds_for(store, i))
                        .collect(),
                }
            }
        }
    }
}

impl Query {
    /// Whether [`Query::eval`] answers this filter from an index.
    fn indexed(&self) -> bool {
        matches!(self, Query::Filter { field, op: Op::Eq | Op::In, .. }
            if matches!(field.as_str(), "id" | "external_id" | "email"))
    }

    /// Whether contact `i` matches the query.
    fn holds_for(&self, store: &Store, i: usize) -> bool {
        match self {
            Query::Group { and: true, items } => items.iter().all(|q| q.holds_for(store, i)),
            Query::Group { and: false, items } => items.iter().any(|q| q.holds_for(store, i)),
            Query::Filter { field, op, value } => {
                matches(field, *op, value, store.contact_field(i, field).as_ref())
            }
        }
    }
}

fn is_scalar(v: &Value) -> bool {
    v.is_string() || v.is_number() || v.is_boolean()
}

/// A scalar as a string (`"a"` → `a`, `5` → `5`, `true` → `true`).
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// Loose equality: numbers by value, otherwise by string form; email case-insensitively.
fn eq(field: &str, a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (scalar_string(a), scalar_string(b)) {
            (Some(x), Some(y)) if field == "email" => x.eq_ignore_ascii_case(&y),
            (Some(x), Some(y)) => x == y,
            _ => a.is_null() && b.is_null(),
        },
    }
}

/// Whether a stored value (`None` = unset) satisfies `field op value`.
fn matches(field: &str, op: Op, value: &Value, stored: Option<&Value>) -> bool {
    let stored = stored.unwrap_or(&Value::Null);
    let any = |vals: &Value| {
        vals.as_array()
            .is_some_and(|a| a.iter().any(|w| eq(field, stored, w)))
    };
    let text = |f: fn(&str, &str) -> bool| match (stored.as_str(), value.as_str()) {
        (Some(s), Some(v)) => f(s, v),
        _ => false,
    };
    match op {
        Op::Eq => eq(field, stored, value),
        Op::Ne => !eq(field, stored, value),
        Op::In => any(value),
        Op::Nin => !any(value),
        Op::Contains => text(|s, v| s.contains(v)),
        Op::StartsWith => text(|s, v| s.starts_with(v)),
        Op::EndsWith => text(|s, v| s.ends_with(v)),
    }
}

/// Validates `sort`: `order` must be `ascending` or `descending` (spec: else 400
/// `invalid_sort_order`). Results are always in creation order; sorting is not simulated.
pub fn check_sort(sort: Option<&Value>) -> Result<(), ApiError> {
    let order = sort.and_then(|s| s.get("order")).and_then(Value::as_str);
    match order {
        None | Some("ascending") | Some("descending") => Ok(()),
        Some(o) => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_sort_order",
            format!("Invalid sort order '{o}'. Must be one of: ascending, descending"),
        )),
    }
}

/// Parses `pagination {per_page, starting_after}` → (per_page, index of the last contact seen).
/// per_page defaults to 50 and must be 1..=150; a cursor not made by [`cursor`] → 400 `client_error`.
pub fn parse_pagination(p: Option<&Value>) -> Result<(usize, Option<usize>), ApiError> {
    let Some(p) = p.filter(|p| !p.is_null()) else {
        return Ok((DEFAULT_PER_PAGE, None));
    };
    let per_page = match p.get("per_page") {
        None | Some(Value::Null) => DEFAULT_PER_PAGE,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_PER_PAGE as u64).contains(&n) => n as usize,
            _ => {
                return Err(invalid(format!(
                    "per_page must be between 1 and {MAX_PER_PAGE}"
                )))
            }
        },
    };
    let after = match p.get("starting_after") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str().and_then(decode_cursor).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "client_error",
                "Invalid starting_after param. Please try again using a starting_after value from a paginated response",
            )
        })?),
    };
    Ok((per_page, after))
}

const CURSOR_PREFIX: &str = "WzE";

/// The opaque `starting_after` cursor for "after the contact at index `i`".
pub fn cursor(i: usize) -> String {
    format!("{CURSOR_PREFIX}{:x}", (i as u64) ^ 0x5a5a_5a5a)
}

fn decode_cursor(s: &str) -> Option<usize> {
    let hex = s.strip_prefix(CURSOR_PREFIX)?;
    u64::from_str_radix(hex, 16)
        .ok()
        .map(|n| (n ^ 0x5a5a_5a5a) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_limits_and_cursor_roundtrip() {
        assert!(Query::parse(
            &json!({"field": "external_id", "operator": "IN", "value": ["a", "b"]})
        )
        .is_ok());
        assert!(
            Query::parse(&json!({"field": "external_id", "operator": "IN", "value": "a"})).is_err()
        );
        assert!(
            Query::parse(&json!({"field": "created_at", "operator": "=", "value": 1})).is_err()
        );
        let leaf = json!({"field": "email", "operator": "=", "value": "x"});
        let deep = json!({"operator": "OR", "value": [{"operator": "AND", "value": [{"operator": "OR", "value": [leaf]}]}]});
        assert!(Query::parse(&deep).is_err());
        let wide = json!({"operator": "OR", "value": vec![leaf; 16]});
        assert!(Query::parse(&wide).is_err());
        assert_eq!(decode_cursor(&cursor(12345)), Some(12345));
        assert_eq!(decode_cursor("garbage"), None);
    }
}
