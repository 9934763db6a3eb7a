//! `plan`: what the next push would send, as NDJSON (`--json`) or as a readable diff.

use std::io::Write;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::PlanArgs;
use crate::config::Settings;
use crate::push::departures::{clear_body, Departed, DepartureCounts};
use crate::push::SkippedClears;
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
    let departed = write_departures(&store, settings, args, &mut out, &mut totals)?;
    if !args.json {
        let detailed = totals.companies + totals.users + departed.total() as usize;
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
        if departed.total() > 0 {
            let what = match settings.departures.mode {
                Departed::Clear => "what we sent them is cleared",
                Departed::Keep => "departed = \"keep\": their values stay",
            };
            writeln!(
                out,
                "plan: {} companies and {} users left the export ({what})",
                departed.companies, departed.users
            )?;
        }
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

/// The records that left the export (see `push::departures`); with `departed = "clear"`,
/// each with the clear it would get: as a JSON line (`"departed": true`, every attribute we
/// sent it `null`), or `- company acme: departed, N attributes cleared`.
fn write_departures(
    store: &Store,
    settings: &Settings,
    args: &PlanArgs,
    out: &mut impl Write,
    totals: &mut Totals,
) -> Result<DepartureCounts> {
    let counts = DepartureCounts::read(store)?;
    if settings.departures.mode == Departed::Keep {
        return Ok(counts);
    }
    // The workspace is not read here, so no clear is known to be left out.
    let none = SkippedClears::default();
    for kind in ["company", "user"] {
        let mut after = 0;
        loop {
            let page = store.departed_page(kind, after, crate::push::PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.record_id;
            for record in page {
                let pushed: Value = serde_json::from_str(&record.pushed_payload).unwrap_or(NULL);
                let mut line = clear_body(&record.pushed_payload, &none);
                if args.json {
                    let keys: &[&str] = if kind == "company" {
                        &["company_id"]
                    } else {
                        &["external_id", "email"]
                    };
                    let mut object = Map::new();
                    object.insert("type".into(), Value::from(kind));
                    for key in keys {
                        object.insert(key.to_string(), pushed.get(*key).cloned().unwrap_or(NULL));
                    }
                    object.insert("departed".into(), Value::Bool(true));
                    object.insert("custom_attributes".into(), line["custom_attributes"].take());
                    writeln!(out, "{}", Value::Object(object))?;
                } else if totals.shown < args.limit {
                    totals.shown += 1;
                    let cleared = line["custom_attributes"].as_object().map_or(0, Map::len);
                    let label = label(kind, &record.record_key);
                    writeln!(out, "- {label}: departed, {cleared} attributes cleared")?;
                }
            }
        }
    }
    Ok(counts)
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
    let label = label(&row.kind, &row.record_key);
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

/// `company acme`, `user u-001` (by external_id) or `user email ada@acme.example`.
fn label(kind: &str, record_key: &str) -> String {
    if kind == "company" {
        format!("company {record_key}")
    } else {
        let (by, key) = record_key.split_at(2);
        format!("user {}{}", if by == "e:" { "" } else { "email " }, key)
    }
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
