//! Reconcile: compare what Intercom holds with what it last accepted from us, and mark what
//! differs ("drift") to be sent again.
//!
//! Contract:
//! - Only the attributes of the payload Intercom last accepted for a record are compared (its
//!   custom attributes, and `monthly_spend` for a company): a value anyone else wrote on an
//!   attribute we never sent to that record is never read, reported or touched.
//! - Values are compared as JSON values, numbers by value (`6.0` = `6`); a missing value
//!   differs from any value we sent.
//! - Each record that differs is reported per attribute, with both values, and persisted (the
//!   `drift` table, by run). In `repair` mode its pushed hash is forgotten in the same
//!   transaction, so the ordinary push sends it again with one PUT; a crash at any moment
//!   leaves a state from which running again converges.
//! - Companies are read from the company directory (one call per page, shared with the push);
//!   contacts with `POST /contacts/search` on `id IN` (one call per
//!   [`SEARCH_BATCH`](super::resolve::SEARCH_BATCH) contacts).
//!   Ids found on the way for records that had none are remembered.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::intercom::{Client, Company, Contact, ContactKey};
use crate::store::{DriftRow, RecordRow, Store, StoreError};

use super::resolve::{self, ContactMatch, UserKeys};
use super::PushError;

/// What to do with drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReconcileMode {
    /// Report it only: nothing is written to Intercom because of it.
    Report,
    /// Report it and send the drifted records again.
    Repair,
}

/// Drift of one kind of record.
#[derive(Debug, Default, Serialize)]
pub struct KindDrift {
    /// Records with a payload Intercom accepted (what could be compared).
    pub pushed: u64,
    /// Records whose values in Intercom were compared.
    pub compared: u64,
    /// Records with at least one attribute that differs.
    pub drifted: u64,
    /// Drifted records per attribute.
    pub by_attribute: BTreeMap<String, u64>,
    /// Ids that were unknown (or had changed) and were found on the way.
    pub ids_found: u64,
}

/// The reconcile section of a run report.
#[derive(Debug, Serialize)]
pub struct ReconcileReport {
    pub mode: ReconcileMode,
    pub companies: KindDrift,
    pub users: KindDrift,
    /// False when a read failed before every record was compared (the warnings say which):
    /// run it again.
    pub complete: bool,
}

impl ReconcileReport {
    pub fn render_human(&self) -> String {
        let mut out = format!(
            "reconcile ({}){}\n",
            match self.mode {
                ReconcileMode::Report => "report only",
                ReconcileMode::Repair => "repair",
            },
            if self.complete {
                ""
            } else {
                ": INCOMPLETE, run it again"
            }
        );
        for (label, k) in [("companies", &self.companies), ("users", &self.users)] {
            out.push_str(&format!(
                "{label:<10} compared {:>7} of {:>7}  drifted {:>6}  ids found {:>6}\n",
                k.compared, k.pushed, k.drifted, k.ids_found
            ));
            let mut by_count: Vec<(&String, &u64)> = k.by_attribute.iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (attribute, records) in by_count {
                out.push_str(&format!("  {records:>7}  {attribute}\n"));
            }
        }
        out
    }
}

/// A record's values as Intercom holds them.
pub struct Held<'a> {
    pub custom_attributes: &'a Map<String, Value>,
    /// A company's `monthly_spend` (`None` for a contact).
    pub monthly_spend: Option<Value>,
}

impl<'a> Held<'a> {
    fn company(company: &'a Company) -> Self {
        Held {
            custom_attributes: &company.custom_attributes,
            monthly_spend: Some(company.monthly_spend.map_or(Value::Null, number)),
        }
    }

    fn contact(contact: &'a Contact) -> Self {
        Held {
            custom_attributes: &contact.custom_attributes,
            monthly_spend: None,
        }
    }
}

/// A float as a JSON number, integral values as integers (Intercom's `monthly_spend` is one).
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Value::from(value as i64)
    } else {
        Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

/// (attribute, value in Intercom, value we sent) for every attribute of `pushed` (a payload
/// Intercom accepted) whose value in Intercom differs. Nothing else is looked at.
pub fn differences(pushed: &Value, held: &Held) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    if let (Some(expected), Some(actual)) = (pushed.get("monthly_spend"), &held.monthly_spend) {
        if !same_value(expected, actual) {
            out.push(("monthly_spend".into(), actual.clone(), expected.clone()));
        }
    }
    let sent = pushed.get("custom_attributes").and_then(Value::as_object);
    for (name, expected) in sent.into_iter().flatten() {
        let actual = held.custom_attributes.get(name).unwrap_or(&Value::Null);
        if !same_value(expected, actual) {
            out.push((name.clone(), actual.clone(), expected.clone()));
        }
    }
    out
}

/// JSON equality, except that numbers are equal by value whatever their representation
/// (Intercom may answer `6` for a float `6.0`, or `6.0` for an integer sent to a float attribute).
///
/// A `""` we sent is the same as `null` (or no value, which reads as `null`): Intercom has
/// answered `null` for an attribute set to `""`.
pub fn same_value(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(sent), Value::Null) => sent.is_empty(),
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => a.as_f64() == b.as_f64(),
        },
        _ => expected == actual,
    }
}

/// One run's reconcile: compares pages of records as they are read, records the drift, counts.
pub struct Reconciler {
    /// The `runs` row the drift is recorded under.
    run_id: i64,
    report: ReconcileReport,
}

impl Reconciler {
    pub fn start(
        store: &Store,
        mode: ReconcileMode,
        run_id: i64,
    ) -> Result<Reconciler, StoreError> {
        store.prune_drift()?;
        let kind = |kind| -> Result<KindDrift, StoreError> {
            Ok(KindDrift {
                pushed: store.pushed_record_count(kind)?,
                ..KindDrift::default()
            })
        };
        Ok(Reconciler {
            run_id,
            report: ReconcileReport {
                mode,
                companies: kind("company")?,
                users: kind("user")?,
                complete: true,
            },
        })
    }

    /// Not every record could be read.
    pub fn incomplete(&mut self) {
        self.report.complete = false;
    }

    pub fn finish(self) -> ReconcileReport {
        self.report
    }

    /// Counts ids the push remembered from a directory page.
    pub fn company_ids_found(&mut self, found: u64) {
        self.report.companies.ids_found += found;
    }

    /// Compares one page of the company directory.
    pub fn compare_companies(
        &mut self,
        store: &Store,
        companies: &[Company],
    ) -> Result<(), StoreError> {
        let held: HashMap<String, Held> = companies
            .iter()
            .filter_map(|c| Some((c.company_id.clone()?, Held::company(c))))
            .collect();
        let keys: Vec<String> = held.keys().cloned().collect();
        let pushed = store.pushed_payloads("company", &keys)?;
        self.compare(store, "company", pushed, &held)
    }

    /// Reads back one page of user records: resolves those without an id (remembering what is
    /// found), reads the contacts of those Intercom accepted a payload for by id, and compares
    /// them. Returns what the lookups found for the records that had no id, so the push does
    /// not look them up again.
    pub async fn reconcile_users(
        &mut self,
        client: &Client,
        store: &Store,
        records: &[RecordRow],
    ) -> Result<HashMap<String, ContactMatch>, PushError> {
        let unresolved: Vec<&RecordRow> =
            records.iter().filter(|r| r.intercom_id.is_none()).collect();
        let keys: Vec<UserKeys> = unresolved
            .iter()
            .map(|r| super::user_keys(&r.payload))
            .collect();
        let matches = resolve::resolve_contacts(client, &keys).await?;
        let mut found = Vec::new();
        let mut looked_up = HashMap::new();
        for (record, answer) in unresolved.into_iter().zip(matches) {
            if let ContactMatch::Found(id) = &answer {
                found.push((record.record_key.clone(), id.clone()));
            }
            looked_up.insert(record.record_key.clone(), answer);
        }
        self.report.users.ids_found += store.remember_found_ids("user", &found)?;
        let ids: HashMap<String, String> = records
            .iter()
            .filter_map(|r| Some((r.record_key.clone(), r.intercom_id.clone()?)))
            .chain(found)
            .collect();

        // Only records Intercom accepted a payload for have anything to compare.
        let keys: Vec<String> = ids.keys().cloned().collect();
        let pushed = store.pushed_payloads("user", &keys)?;
        let wanted: Vec<String> = pushed
            .iter()
            .filter_map(|(key, _)| ids.get(key).cloned())
            .collect();
        let contacts: HashMap<String, Contact> =
            resolve::search_in(client, ContactKey::Id, &wanted)
                .await?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect();
        let held: HashMap<String, Held> = ids
            .iter()
            .filter_map(|(key, id)| Some((key.clone(), Held::contact(contacts.get(id)?))))
            .collect();
        self.compare(store, "user", pushed, &held)?;
        Ok(looked_up)
    }

    /// Compares what Intercom holds (`held`) with the payloads it accepted (`pushed`, from
    /// [`Store::pushed_payloads`]), records the drift and, in repair mode, marks the drifted
    /// records to be sent again.
    fn compare(
        &mut self,
        store: &Store,
        kind: &'static str,
        pushed: Vec<(String, String)>,
        held: &HashMap<String, Held>,
    ) -> Result<(), StoreError> {
        let counts = if kind == "company" {
            &mut self.report.companies
        } else {
            &mut self.report.users
        };
        let mut rows = Vec::new();
        let mut resend = Vec::new();
        for (record_key, payload) in pushed {
            let (Some(held), Ok(pushed)) = (
                held.get(&record_key),
                serde_json::from_str::<Value>(&payload),
            ) else {
                continue;
            };
            counts.compared += 1;
            let differences = differences(&pushed, held);
            if differences.is_empty() {
                continue;
            }
            counts.drifted += 1;
            for (attribute, actual, expected) in differences {
                *counts.by_attribute.entry(attribute.clone()).or_default() += 1;
                rows.push(DriftRow {
                    kind: kind.to_string(),
                    record_key: record_key.clone(),
                    attribute,
                    intercom_value: actual.to_string(),
                    expected_value: expected.to_string(),
                });
            }
            if self.report.mode == ReconcileMode::Repair {
                resend.push((kind, record_key));
            }
        }
        store.record_drift(self.run_id, &rows, &resend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn held(custom: &Value, spend: Option<Value>) -> Vec<(String, Value, Value)> {
        let pushed = json!({"company_id": "a", "monthly_spend": 1200,
            "custom_attributes": {"V Score": 6.0, "V Count": 3, "V On": true, "V Plan": "pro", "V Zip": "02134"}});
        differences(
            &pushed,
            &Held {
                custom_attributes: custom.as_object().unwrap(),
                monthly_spend: spend,
            },
        )
    }

    #[test]
    fn numbers_compare_by_value_and_other_types_exactly() {
        let same = json!({"V Score": 6, "V Count": 3.0, "V On": true, "V Plan": "pro", "V Zip": "02134", "Foreign": 1});
        assert_eq!(held(&same, Some(json!(1200.0))), vec![]);
        let changed = json!({"V Score": 6.5, "V Count": 3, "V On": "true", "V Zip": 2134});
        let names: Vec<String> = held(&changed, Some(json!(1199)))
            .into_iter()
            .map(|d| d.0)
            .collect();
        assert_eq!(
            names,
            ["monthly_spend", "V On", "V Plan", "V Score", "V Zip"],
            "a missing value, a string for a boolean and a number for a string all differ"
        );
    }

    #[test]
    fn only_what_we_sent_is_compared() {
        let pushed = json!({"external_id": "u1", "custom_attributes": {"V Owner": true}});
        let intercom = json!({"V Owner": true, "V Other": 5, "Plan": "x"});
        let held = Held {
            custom_attributes: intercom.as_object().unwrap(),
            monthly_spend: None,
        };
        assert!(differences(&pushed, &held).is_empty());
        // A company payload without monthly_spend (--no-monthly-spend) never compares it.
        let pushed = json!({"company_id": "a", "custom_attributes": {}});
        let held = Held {
            custom_attributes: intercom.as_object().unwrap(),
            monthly_spend: Some(json!(99)),
        };
        assert!(differences(&pushed, &held).is_empty());
    }
}
