//! One account → its company payload; one user → its contact payload. Pure functions of
//! the extract rows and the [`Layout`], so they run in parallel in any order.

use std::borrow::Cow;
use std::collections::HashMap;

use super::mapping::{convert, cut_to_limit, number_of, Mapping};
use crate::extract::typing::Kind;
use crate::store::codec::{self, Children, DecodeError, Fields, Payload, Scalar};
use crate::store::{AccountRecord, UserRecord};

/// Largest monthly_spend Intercom stores (a 32-bit integer).
pub const MONTHLY_SPEND_MAX: i64 = 2_147_483_647;

/// What computing one company found worth a warning.
#[derive(Debug, Default, Clone)]
pub struct CompanyNotes {
    pub monthly_spend_clamped: bool,
    /// Name keys of the string attributes cut to Intercom's limit (see [`cut_to_limit`]).
    pub cut: Vec<u32>,
}

/// Where each source's value goes in a payload: the mapping with every attribute given its
/// slot in name order and its stored name key. Built once per transform.
pub struct Layout {
    /// name_key of each slot; slots are sorted by attribute name.
    slot_names: Vec<u32>,
    /// By field key: (slot, kind).
    fields: Vec<Option<(usize, Kind)>>,
    mrr_fields: Vec<u32>,
    monthly_spend: bool,
    /// (element key, slot) of every Element sent.
    elements: Vec<(u32, usize)>,
    /// By metric key: (slot, kind).
    metrics: HashMap<u32, (usize, Kind)>,
    /// By label key: (kind index into [risk, opportunity, segment], name).
    labels: HashMap<u32, (usize, String)>,
    /// Slots of the risk, opportunity and segment attributes.
    label_slots: [usize; 3],
    owner_name: u32,
}

const LABEL_KINDS: [&str; 3] = ["risk", "opportunity", "segment"];

impl Layout {
    /// `name_keys` gives every attribute name of the mapping its stored key; `labels` are
    /// (label key, kind, name).
    pub fn new(
        mapping: &Mapping,
        name_keys: &HashMap<String, u32>,
        labels: &[(u32, String, String)],
    ) -> Layout {
        let mut names: Vec<&str> = mapping
            .attributes
            .iter()
            .filter(|a| a.model == "company")
            .map(|a| a.name.as_str())
            .collect();
        names.sort_unstable();
        let slot_of = |name: &str| names.binary_search(&name).unwrap_or(0);
        let key_of = |name: &str| name_keys.get(name).copied().unwrap_or(0);
        Layout {
            slot_names: names.iter().map(|n| key_of(n)).collect(),
            fields: mapping
                .fields
                .iter()
                .map(|f| f.as_ref().map(|f| (slot_of(&f.attribute), f.kind)))
                .collect(),
            mrr_fields: mapping.mrr_fields.clone(),
            monthly_spend: mapping.monthly_spend,
            elements: mapping
                .elements
                .iter()
                .map(|(key, name)| (*key, slot_of(name)))
                .collect(),
            metrics: mapping
                .metrics
                .iter()
                .map(|(key, (name, kind))| (*key, (slot_of(name), *kind)))
                .collect(),
            labels: labels
                .iter()
                .map(|(key, kind, name)| {
                    let kind = LABEL_KINDS.iter().position(|k| k == kind).unwrap_or(2);
                    (*key, (kind, name.clone()))
                })
                .collect(),
            label_slots: [
                slot_of(&mapping.risk_attribute),
                slot_of(&mapping.opportunity_attribute),
                slot_of(&mapping.segments_attribute),
            ],
            owner_name: key_of(&mapping.owner_attribute),
        }
    }

    /// The company payload of one account.
    pub fn company<'a>(
        &self,
        account: &'a AccountRecord,
        fields: &'a Fields<'a>,
        children: &'a Children<'a>,
    ) -> (Payload<'a>, CompanyNotes) {
        let mut values: Vec<Option<Scalar<'a>>> = vec![None; self.slot_names.len()];
        for (field, raw) in fields {
            if let Some(Some((slot, kind))) = self.fields.get(*field as usize) {
                if let Some(value) = convert(raw, *kind) {
                    values[*slot] = Some(value);
                }
            }
        }
        for (element, slot) in &self.elements {
            let count = children
                .counts
                .binary_search_by_key(element, |c| c.0)
                .map_or(0, |i| children.counts[i].1);
            values[*slot] = Some(Scalar::Int(count as i64));
        }
        for (metric, raw) in &children.metrics {
            if let Some((slot, kind)) = self.metrics.get(metric) {
                if let Some(value) = convert(raw, *kind) {
                    values[*slot] = Some(value);
                }
            }
        }
        let mut label_names: [Vec<&str>; 3] = Default::default();
        for label in &children.labels {
            if let Some((kind, name)) = self.labels.get(label) {
                label_names[*kind].push(name);
            }
        }
        for (names, slot) in label_names.into_iter().zip(self.label_slots) {
            values[slot] = Some(Scalar::Str(Cow::Owned(join_names(names.into_iter()))));
        }
        let mut notes = CompanyNotes::default();
        for (value, name) in values.iter_mut().zip(&self.slot_names) {
            if let Some(Scalar::Str(text)) = value {
                if let Some(cut) = cut_to_limit(text) {
                    *text = Cow::Owned(cut);
                    notes.cut.push(*name);
                }
            }
        }
        let monthly_spend = if self.monthly_spend {
            self.mrr_fields
                .iter()
                .find_map(|key| fields.iter().find(|(f, _)| f == key))
                .and_then(|(_, raw)| number_of(raw))
                .map(|mrr| {
                    let rounded = mrr.round(); // half away from zero
                    let clamped = rounded.clamp(0.0, MONTHLY_SPEND_MAX as f64);
                    notes.monthly_spend_clamped = clamped != rounded;
                    clamped as i64
                })
        } else {
            None
        };
        let attributes = values
            .into_iter()
            .zip(&self.slot_names)
            .filter_map(|(value, name)| value.map(|v| (*name, v)))
            .collect();
        (
            Payload::Company {
                company_id: Cow::Borrowed(&account.external_id),
                monthly_spend,
                attributes,
            },
            notes,
        )
    }

    /// The contact payload of one user.
    pub fn user<'a>(&self, user: &'a UserRecord, is_owner: bool) -> Payload<'a> {
        Payload::User {
            external_id: user.external_id.as_deref().map(Cow::Borrowed),
            email: user.email.as_deref().map(Cow::Borrowed),
            attributes: vec![(self.owner_name, Scalar::Bool(is_owner))],
        }
    }
}

/// Decodes an account's stored fields and children.
pub fn decode_account(account: &AccountRecord) -> Result<(Fields<'_>, Children<'_>), DecodeError> {
    let fields = codec::decode("account's fields", &account.fields)?;
    let children = if account.children.is_empty() {
        Children::default()
    } else {
        codec::decode("account's children", &account.children)?
    };
    Ok((fields, children))
}

/// Names joined with `", "`: sorted by Unicode lowercase, ties by bytes, exact duplicates
/// removed.
pub fn join_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<(String, &str)> = names.map(|n| (n.to_lowercase(), n)).collect();
    names.sort_unstable();
    names.dedup_by(|a, b| a.1 == b.1);
    names.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
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
