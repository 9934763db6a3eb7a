//! The search query language of `POST /contacts/search` and (Preview) `POST /companies/search`.
//!
//! Supported: single filters `{field, operator, value}` with operators `=`, `!=`, `IN`, `NIN`,
//! `~` (contains), `^` (starts with), `$` (ends with); compound filters
//! `{operator: AND|OR, value: [filters]}` nested at most 2 levels deep with at most 15 filters per
//! group (Intercom's documented limits, the same for both searches). Searchable fields: see
//! [`CONTACT_FIELDS`] and [`COMPANY_FIELDS`]. Anything else → 400 `parameter_invalid` (an
//! unknown company field: 400 `invalid_field`, as the Preview description shows).
//!
//! The query runs over any [`Records`]: the store's contacts or companies. `=`/`IN` on an
//! indexed field use the store's index, also inside an `AND`; everything else scans.

use super::error::ApiError;
use super::state::{object, only_keys};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Maximum `pagination.per_page` (assumed for contacts: documented for conversation search only).
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

/// What a search may filter on, and how it refuses any other field.
pub struct Fields {
    /// Searchable standard fields.
    pub names: &'static [&'static str],
    /// Whether `custom_attributes.<name>` is searchable too.
    pub custom_attributes: bool,
    /// The error for a field that is not searchable.
    pub unknown: fn(&str) -> ApiError,
}

/// Contact search: `id`, `external_id`, `email` (case-insensitive), `name`, `phone`, `role`,
/// `custom_attributes.<name>`; another field → 400 `parameter_invalid`.
pub const CONTACT_FIELDS: Fields = Fields {
    names: &["id", "external_id", "email", "name", "phone", "role"],
    custom_attributes: true,
    unknown: not_searchable,
};

/// Company search (Preview): `company_id`, `name`, `id` (the mock's subset of the documented
/// fields); another field → 400 `invalid_field` "<field> is not a valid search field".
pub const COMPANY_FIELDS: Fields = Fields {
    names: &["company_id", "name", "id"],
    custom_attributes: false,
    unknown: not_a_search_field,
};

fn not_searchable(field: &str) -> ApiError {
    invalid(format!("Field '{field}' is not searchable"))
}

fn not_a_search_field(field: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "invalid_field",
        format!("{field} is not a valid search field"),
    )
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::parameter_invalid(msg)
}

/// Records a query runs over, by index `0..count()` (creation order).
pub trait Records {
    /// The searchable fields.
    const FIELDS: Fields;
    /// `pagination.per_page` when not given.
    const DEFAULT_PER_PAGE: usize;
    /// How many records there are.
    fn count(&self) -> usize;
    /// The stored value of `field` on record `i` (`None` when unset).
    fn field(&self, i: usize, field: &str) -> Option<Value>;
    /// Whether `=`/`IN` on `field` is answered from an index ([`Records::lookup`]).
    fn indexed(&self, field: &str) -> bool;
    /// Adds the records whose indexed `field` equals `wanted` to `out`.
    fn lookup(&self, field: &str, wanted: &str, out: &mut BTreeSet<usize>);
    /// Whether record `i` may appear in results at all.
    fn visible(&self, i: usize) -> bool;
    /// Record `i` as the API renders it.
    fn render(&self, i: usize) -> Value;
}

/// A search request `{query, pagination?, sort?}` over `records`: the `list` answer with
/// `total_count` and cursor `pages` (`pages.next` only when more results follow).
pub fn run<R: Records>(records: &R, body: &Value) -> Result<Value, ApiError> {
    let obj = object(body)?;
    only_keys(obj, &["query", "pagination", "sort"])?;
    let query = Query::parse(
        obj.get("query")
            .ok_or_else(|| invalid("query is required"))?,
        &R::FIELDS,
    )?;
    check_sort(obj.get("sort"))?;
    let (per_page, after) = parse_pagination(obj.get("pagination"), R::DEFAULT_PER_PAGE)?;
    let hits: Vec<usize> = query
        .eval(records)
        .into_iter()
        .filter(|&i| records.visible(i))
        .collect();
    let before = after.map_or(0, |a| hits.partition_point(|&i| i <= a));
    let rest = &hits[before..];
    let page = &rest[..rest.len().min(per_page)];
    let mut pages = json!({
        "type": "pages",
        "page": before / per_page + 1,
        "per_page": per_page,
        "total_pages": hits.len().div_ceil(per_page),
    });
    if let (true, Some(&last), Some(o)) =
        (rest.len() > page.len(), page.last(), pages.as_object_mut())
    {
        o.insert(
            "next".to_owned(),
            json!({"per_page": per_page, "starting_after": cursor(last)}),
        );
    }
    Ok(json!({
        "type": "list",
        "data": page.iter().map(|&i| records.render(i)).collect::<Vec<_>>(),
        "total_count": hits.len(),
        "pages": pages,
    }))
}

impl Query {
    /// Parses and validates a `query` object against the searchable `fields`.
    pub fn parse(v: &Value, fields: &Fields) -> Result<Query, ApiError> {
        Self::parse_at(v, fields, 0)
    }

    fn parse_at(v: &Value, fields: &Fields, depth: usize) -> Result<Query, ApiError> {
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
                .map(|q| Self::parse_at(q, fields, depth + 1))
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
        let custom = fields.custom_attributes && field.starts_with("custom_attributes.");
        if !fields.names.contains(&field) && !custom {
            return Err((fields.unknown)(field));
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

    /// Indices of the records matching the query (invisible ones included; [`run`] filters
    /// them). `=`/`IN` on an indexed field use the index, also inside an `AND` (whose other
    /// filters are then tested on those records only); everything else scans.
    pub fn eval<R: Records>(&self, records: &R) -> BTreeSet<usize> {
        match self {
            Query::Group { and: true, items } if items.iter().any(|q| q.indexed(records)) => {
                let (indexed, others): (Vec<&Query>, Vec<&Query>) =
                    items.iter().partition(|q| q.indexed(records));
                let mut sets = indexed.iter().map(|q| q.eval(records));
                let first = sets.next().unwrap_or_default();
                sets.fold(first, |acc, s| acc.intersection(&s).copied().collect())
                    .into_iter()
                    .filter(|&i| others.iter().all(|q| q.holds_for(records, i)))
                    .collect()
            }
            Query::Group { and, items } => {
                let mut sets = items.iter().map(|q| q.eval(records));
                let first = sets.next().unwrap_or_default();
                sets.fold(first, |acc, s| {
                    if *and {
                        acc.intersection(&s).copied().collect()
                    } else {
                        acc.union(&s).copied().collect()
                    }
                })
            }
            Query::Filter { field, op, value } if self.indexed(records) => {
                let wanted: Vec<&Value> = match op {
                    Op::In => value
                        .as_array()
                        .map(|a| a.iter().collect())
                        .unwrap_or_default(),
                    _ => vec![value],
                };
                let mut out = BTreeSet::new();
                for w in wanted.iter().filter_map(|w| scalar_string(w)) {
                    records.lookup(field, &w, &mut out);
                }
                out
            }
            Query::Filter { .. } => (0..records.count())
                .filter(|&i| self.holds_for(records, i))
                .collect(),
        }
    }

    /// Whether [`Query::eval`] answers this filter from an index.
    fn indexed<R: Records>(&self, records: &R) -> bool {
        matches!(self, Query::Filter { field, op: Op::Eq | Op::In, .. } if records.indexed(field))
    }

    /// Whether record `i` matches the query.
    fn holds_for<R: Records>(&self, records: &R, i: usize) -> bool {
        match self {
            Query::Group { and: true, items } => items.iter().all(|q| q.holds_for(records, i)),
            Query::Group { and: false, items } => items.iter().any(|q| q.holds_for(records, i)),
            Query::Filter { field, op, value } => {
                matches(field, *op, value, records.field(i, field).as_ref())
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

/// Parses `pagination {per_page, starting_after}` → (per_page, index of the last record seen).
/// per_page defaults to `default_per_page` and must be 1..=150 (else 400 `parameter_invalid`);
/// a cursor not made by [`cursor`] → 400 `client_error`.
pub fn parse_pagination(
    p: Option<&Value>,
    default_per_page: usize,
) -> Result<(usize, Option<usize>), ApiError> {
    let Some(p) = p.filter(|p| !p.is_null()) else {
        return Ok((default_per_page, None));
    };
    let per_page = match p.get("per_page") {
        None | Some(Value::Null) => default_per_page,
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

/// The opaque `starting_after` cursor for "after the record at index `i`".
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
        let c = &CONTACT_FIELDS;
        assert!(Query::parse(
            &json!({"field": "external_id", "operator": "IN", "value": ["a", "b"]}),
            c
        )
        .is_ok());
        assert!(Query::parse(
            &json!({"field": "external_id", "operator": "IN", "value": "a"}),
            c
        )
        .is_err());
        let created = json!({"field": "created_at", "operator": "=", "value": 1});
        let e = Query::parse(&created, c).expect_err("not searchable");
        assert_eq!(e.code, "parameter_invalid");
        let leaf = json!({"field": "email", "operator": "=", "value": "x"});
        let deep = json!({"operator": "OR", "value": [{"operator": "AND", "value": [{"operator": "OR", "value": [leaf]}]}]});
        assert!(Query::parse(&deep, c).is_err());
        let wide = json!({"operator": "OR", "value": vec![leaf; 16]});
        assert!(Query::parse(&wide, c).is_err());
        assert_eq!(decode_cursor(&cursor(12345)), Some(12345));
        assert_eq!(decode_cursor("garbage"), None);
    }

    #[test]
    fn company_fields_differ_from_contact_fields() {
        let by = |field: &str| json!({"field": field, "operator": "=", "value": "x"});
        assert!(Query::parse(&by("company_id"), &COMPANY_FIELDS).is_ok());
        assert!(Query::parse(&by("company_id"), &CONTACT_FIELDS).is_err());
        for field in ["email", "custom_attributes.tier", "plan.id"] {
            let e = Query::parse(&by(field), &COMPANY_FIELDS).expect_err(field);
            assert_eq!(
                (e.status.as_u16(), e.code, e.message.as_str()),
                (
                    400,
                    "invalid_field",
                    format!("{field} is not a valid search field").as_str()
                )
            );
        }
        // The nesting limits are the same for both searches.
        let leaf = by("name");
        let deep = json!({"operator": "OR", "value": [{"operator": "AND", "value": [{"operator": "OR", "value": [leaf]}]}]});
        assert!(Query::parse(&deep, &COMPANY_FIELDS).is_err());
        let wide = json!({"operator": "AND", "value": vec![leaf; 16]});
        assert!(Query::parse(&wide, &COMPANY_FIELDS).is_err());
    }
}
