//! `plan`: what the next push would send, as NDJSON (`--json`) or as a readable diff.

use std::io::Write;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::PlanArgs;
use crate::config::Settings;
use crate::store::{PayloadRow, Store};

#[derive(Serialize)]
struct CompanyLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    company_id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    monthly_spend: Option<&'a Value>,
    custom_attributes: &'a Value,
}

#[derive(Serialize)]
struct UserLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    external_id: &'a Value,
    email: &'a Value,
    custom_attributes: &'a Value,
}

pub fn run(settings: &Settings, args: &PlanArgs) -> Result<u8> {
    super::transform::require_database(settings)?;
    let store = Store::open(&settings.db)?;
    if let Err(message) = crate::transform::check_fresh(&store) {
        bail!(crate::config::ConfigError::Invalid(message));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut totals = Totals::default();
    store.payload_rows(args.all, |row| -> Result<()> {
        let payload: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
        totals.count(&row);
        let written = if args.json {
            write_json_line(&mut out, &row, &payload)
        } else if totals.shown < args.limit {
            totals.shown += 1;
            write_human(&mut out, &row, &payload)
        } else {
            Ok(())
        };
        Ok(written?)
    })?;
    if !args.json {
        let detailed = totals.companies + totals.users;
        if detailed > totals.shown {
            writeln!(
                out,
                "… and {} more (--limit N shows more, --json shows all)",
                detailed - totals.shown
            )?;
        }
        let counts = store.payload_counts()?;
        let count = |kind: &str| {
            counts
                .iter()
                .find(|(k, ..)| k == kind)
                .map_or((0, 0), |(_, total, changed)| (*total, *changed))
        };
        let (companies, changed_companies) = count("company");
        let (users, changed_users) = count("user");
        writeln!(
            out,
            "plan: {changed_companies} of {companies} companies and {changed_users} of {users} users to update \
             ({} never pushed); the rest are unchanged",
            totals.never_pushed
        )?;
    }
    out.flush()?;
    Ok(0)
}

#[derive(Default)]
struct Totals {
    companies: usize,
    users: usize,
    never_pushed: usize,
    shown: usize,
}

impl Totals {
    fn count(&mut self, row: &PayloadRow) {
        if row.kind == "company" {
            self.companies += 1;
        } else {
            self.users += 1;
        }
        if row.pushed_payload.is_none() && row.is_changed() {
            self.never_pushed += 1;
        }
    }
}

const NULL: Value = Value::Null;

fn write_json_line(out: &mut impl Write, row: &PayloadRow, payload: &Value) -> std::io::Result<()> {
    let get = |key: &str| payload.get(key).unwrap_or(&NULL);
    let line = if row.kind == "company" {
        serde_json::to_string(&CompanyLine {
            kind: "company",
            company_id: get("company_id"),
            monthly_spend: payload.get("monthly_spend"),
            custom_attributes: get("custom_attributes"),
        })
    } else {
        serde_json::to_string(&UserLine {
            kind: "user",
            external_id: get("external_id"),
            email: get("email"),
            custom_attributes: get("custom_attributes"),
        })
    };
    writeln!(out, "{}", line.unwrap_or_default())
}

/// `~ acme` with one line per changed attribute (`old → new`), `+` for a first push.
fn write_human(out: &mut impl Write, row: &PayloadRow, payload: &Value) -> std::io::Result<()> {
    let label = if row.kind == "company" {
        format!("company {}", row.record_key)
    } else {
        let (by, key) = row.record_key.split_at(2);
        format!("user {}{}", if by == "e:" { "" } else { "email " }, key)
    };
    let old: Option<Value> = row
        .pushed_payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    let Some(old) = old else {
        let attributes = payload
            .get("custom_attributes")
            .and_then(Value::as_object)
            .map_or(0, Map::len);
        let spend = payload
            .get("monthly_spend")
            .map(|v| format!(", monthly_spend {v}"))
            .unwrap_or_default();
        return writeln!(out, "+ {label}: first push, {attributes} attributes{spend}");
    };
    writeln!(out, "~ {label}")?;
    let empty = Map::new();
    let new_attrs = payload
        .get("custom_attributes")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let old_attrs = old
        .get("custom_attributes")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if payload.get("monthly_spend") != old.get("monthly_spend") {
        change_line(
            out,
            "monthly_spend",
            old.get("monthly_spend"),
            payload.get("monthly_spend"),
        )?;
    }
    for (name, value) in new_attrs {
        if old_attrs.get(name) != Some(value) {
            change_line(out, name, old_attrs.get(name), Some(value))?;
        }
    }
    for (name, value) in old_attrs {
        if !new_attrs.contains_key(name) {
            writeln!(out, "    - {name} (was {value})")?;
        }
    }
    Ok(())
}

fn change_line(
    out: &mut impl Write,
    name: &str,
    old: Option<&Value>,
    new: Option<&Value>,
) -> std::io::Result<()> {
    match (old, new) {
        (Some(old), Some(new)) => writeln!(out, "    {name}: {old} → {new}"),
        (None, Some(new)) => writeln!(out, "    + {name}: {new}"),
        (Some(old), None) => writeln!(out, "    - {name} (was {old})"),
        (None, None) => Ok(()),
    }
}
