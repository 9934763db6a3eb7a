//! Records that leave the export. With `departed = "clear"` each record Intercom accepted a
//! payload of gets one PUT setting to `null` every custom attribute we sent it (`monthly_spend`
//! and anyone else's keys untouched), then is reported `departed` and not sent again while it
//! stays away; with `"keep"` it is only marked. Before any write, a guard stops a push whose
//! export lost more than `max_departed` % of the last pushed export's companies or users.

use serde_json::{Map, Value};

use super::report::KindReport;
use super::{Context, Dispatcher, PushError, SkippedClears, PAGE};
use crate::intercom::{ApiError, Client};
use crate::progress::Progress;
use crate::store::{DepartedRecord, RecordOutcome, Store, StoreError, SyncRecord};

/// What happens to the values we sent a record that left the export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Departed {
    /// One PUT clears every custom attribute we sent it.
    #[default]
    Clear,
    /// Left as they are (the behaviour before `departed` existed).
    Keep,
}

/// The departure settings of a push.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepartureSettings {
    pub mode: Departed,
    /// The percentage of the last pushed export's companies, or of its users, that may
    /// depart in one export (`max_departed`).
    pub max_percent: f64,
    /// `--allow-departed`: the guard is lifted for this run.
    pub allow: bool,
}

/// Default of `max_departed`.
pub const MAX_DEPARTED: f64 = 10.0;

impl Default for DepartureSettings {
    fn default() -> Self {
        DepartureSettings {
            mode: Departed::Clear,
            max_percent: MAX_DEPARTED,
            allow: false,
        }
    }
}

/// Departed records (not handled yet), per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepartureCounts {
    pub companies: u64,
    pub users: u64,
}

impl DepartureCounts {
    pub fn read(store: &Store) -> Result<DepartureCounts, StoreError> {
        Ok(DepartureCounts {
            companies: store.departed_count("company")?,
            users: store.departed_count("user")?,
        })
    }

    pub fn total(&self) -> u64 {
        self.companies + self.users
    }
}

/// Refuses (exit 2, before any write) an export that lost more than `settings.max_percent`
/// of the last pushed export's companies or users, or whose accounts table is empty, unless
/// `settings.allow`.
pub fn guard(
    store: &Store,
    settings: &DepartureSettings,
    departed: DepartureCounts,
) -> Result<(), PushError> {
    if settings.allow {
        return Ok(());
    }
    let now = |kind: &str| -> Result<u64, StoreError> {
        Ok(store
            .meta(&format!("payload_count_{kind}"))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    };
    let (companies, users) = (now("company")?, now("user")?);
    // The last pushed export's size; before any push was recorded, what this one lost plus
    // what it kept of the records Intercom holds.
    let before = |kind: &str, current: u64, gone: u64| -> Result<u64, StoreError> {
        Ok(store
            .meta(&format!("pushed_count_{kind}"))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(current + gone))
    };
    let companies_before = before("company", companies, departed.companies)?;
    let users_before = before("user", users, departed.users)?;
    let share = |gone: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            gone as f64 * 100.0 / of as f64
        }
    };
    let over = |gone: u64, of: u64| share(gone, of) > settings.max_percent;
    if companies > 0
        && !over(departed.companies, companies_before)
        && !over(departed.users, users_before)
    {
        return Ok(());
    }
    let why = if companies == 0 {
        "its accounts table is empty".to_string()
    } else {
        format!(
            "{} companies ({:.1} %) and {} users ({:.1} %) left it, more than max_departed = {} %",
            departed.companies,
            share(departed.companies, companies_before),
            departed.users,
            share(departed.users, users_before),
            settings.max_percent
        )
    };
    Err(PushError::Departed(format!(
        "this export has {companies} companies and {users} users, the last one pushed had {companies_before} companies and {users_before} users: {why}. Nothing was written. If the export is incomplete (a warehouse job that stopped halfway), load a complete one: its records are compared with what Intercom holds, and only real changes are sent. If they did leave, run once with --allow-departed (or raise max_departed)"
    )))
}

/// Handles every departed record of `kind` (`company` or `user`): with `clear`, one PUT
/// each; with `keep`, only marked. Returns their counts, settled through the same window and
/// writer as the push.
pub(super) fn handle(
    context: &Context,
    kind: &'static str,
    mode: Departed,
) -> Result<KindReport, PushError> {
    let mut counts = KindReport::default();
    context.runtime.block_on(async {
        let progress = Progress::new("clearing departed records", "records");
        let mut dispatcher = Dispatcher::new(context, &mut counts, progress);
        let mut after = 0;
        loop {
            let page = context.store.departed_page(kind, after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.record_id;
            for record in page {
                let (client, skipped) = (context.client.clone(), context.skipped.clone());
                dispatcher
                    .spawn(async move {
                        let outcome = match mode {
                            Departed::Keep => RecordOutcome::Departed { cleared: false },
                            Departed::Clear => clear(&client, &skipped, kind, &record).await,
                        };
                        SyncRecord {
                            kind,
                            record_id: record.record_id,
                            record_key: record.record_key,
                            outcome,
                        }
                    })
                    .await?;
            }
        }
        dispatcher.finish().await
    })?;
    Ok(counts)
}

/// One PUT setting every custom attribute of what Intercom accepted from us to `null`. A
/// record Intercom no longer has (404, 410) holds nothing of ours either.
async fn clear(
    client: &Client,
    skipped: &SkippedClears,
    kind: &str,
    record: &DepartedRecord,
) -> RecordOutcome {
    let Some(id) = record.intercom_id.as_deref() else {
        return RecordOutcome::Departed { cleared: true };
    };
    let body = clear_body(&record.pushed_payload, skipped);
    if body["custom_attributes"]
        .as_object()
        .is_none_or(Map::is_empty)
    {
        return RecordOutcome::Departed { cleared: true };
    }
    let sent: Result<(), ApiError> = if kind == "company" {
        client.update_company(id, &body).await
    } else {
        client.update_contact(id, &body).await
    };
    match sent {
        Ok(()) => RecordOutcome::Departed { cleared: true },
        Err(e) if e.is_not_found() || e.status == Some(410) => {
            RecordOutcome::Departed { cleared: true }
        }
        Err(e) => RecordOutcome::Failed(e.to_string()),
    }
}

/// `{"custom_attributes": {key: null, …}}` for every custom attribute of `pushed` (canonical
/// JSON), but those `skipped` leaves out (archived in the workspace).
pub fn clear_body(pushed: &str, skipped: &SkippedClears) -> Value {
    let pushed: Value = serde_json::from_str(pushed).unwrap_or(Value::Null);
    let cleared: Map<String, Value> = pushed
        .get("custom_attributes")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|attributes| attributes.keys())
        .filter(|key| !skipped.skip(key))
        .map(|key| (key.clone(), Value::Null))
        .collect();
    serde_json::json!({ "custom_attributes": cleared })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_clear_sets_every_key_we_sent_to_null_and_nothing_else() {
        let pushed = r#"{"company_id":"a","monthly_spend":5,"custom_attributes":{"V A":1,"V B":"x","V Old":true}}"#;
        let archived = SkippedClears::new(HashSet::from(["V Old".to_string()]));
        assert_eq!(
            clear_body(pushed, &archived),
            serde_json::json!({"custom_attributes": {"V A": null, "V B": null}}),
            "monthly_spend is left as it is, and an archived attribute's clear left out"
        );
    }
}
