//! Data attributes must exist in Intercom before a PUT uses them: list them once per run,
//! create the missing ones with the inferred type, refuse on a type conflict.

use std::collections::HashSet;

use tokio::task::JoinSet;

use crate::intercom::{Client, DataAttribute, DataType, Model};
use crate::store::{Attribute, Store, StoreError};

use super::PushError;

/// Intercom's limit on custom data attributes per workspace. Archived ones do not count
/// (Intercom's help center: "you can archive unused attributes to free up space").
pub const ATTRIBUTE_CAP: usize = 250;

/// Intercom's error code for a creation past [`ATTRIBUTE_CAP`].
const LIMIT_REACHED: &str = "custom_data_limit_reached";

/// What the push learnt of the workspace's data attributes.
#[derive(Debug, Default)]
pub struct Ensured {
    /// Names of the attributes created now.
    pub created: Vec<String>,
    /// Names of the workspace's archived custom attributes (of either model: names are
    /// unique across both).
    pub archived: HashSet<String>,
}

fn data_type(name: &str) -> DataType {
    match name {
        "integer" => DataType::Integer,
        "float" => DataType::Float,
        "boolean" => DataType::Boolean,
        "date" => DataType::Date,
        _ => DataType::String,
    }
}

fn model(name: &str) -> Model {
    if name == "company" {
        Model::Company
    } else {
        Model::Contact
    }
}

/// Whether values of our type can be written to an attribute of Intercom's type.
fn compatible(ours: &str, theirs: &str) -> bool {
    ours == theirs || (ours == "integer" && theirs == "float")
}

/// What the workspace's data attributes say of a catalog, before anything is written.
#[derive(Debug)]
pub struct Review<'a> {
    /// The catalog's attributes the workspace lacks: a push creates them.
    pub missing: Vec<&'a Attribute>,
    /// What stops a push, each with its fix: a name of the other model, an archived
    /// attribute, another type, the cap.
    pub problems: Vec<String>,
    /// Custom attributes in use (not archived): what counts towards [`ATTRIBUTE_CAP`].
    pub live: usize,
    /// Names of the archived custom attributes.
    pub archived: HashSet<String>,
    /// " Stale attributes of ours you could archive …: a, b." or "".
    archivable: String,
}

/// Our attributes (created or sent by this tool) that no source of `catalog` makes any more.
pub fn stale(store: &Store, catalog: &[Attribute]) -> Result<Vec<String>, StoreError> {
    Ok(store
        .known_attributes()?
        .into_iter()
        .filter(|(model, name)| !catalog.iter().any(|c| c.model == model && &c.name == name))
        .map(|(_, name)| name)
        .collect())
}

/// Reads the workspace's data attributes of both models (archived ones included).
pub async fn list_all(client: &Client) -> Result<Vec<DataAttribute>, PushError> {
    let (companies, contacts) = tokio::join!(
        client.list_data_attributes(Model::Company, true),
        client.list_data_attributes(Model::Contact, true)
    );
    let mut existing: Vec<DataAttribute> = companies?;
    existing.extend(contacts?);
    Ok(existing)
}

/// Compares `catalog` with the workspace's attributes (`existing`); `stale` (ours, no longer
/// produced) are named when the cap would be passed.
pub fn review<'a>(
    existing: &[DataAttribute],
    catalog: &'a [Attribute],
    stale: &[String],
) -> Review<'a> {
    let (mut missing, mut problems) = (Vec::new(), Vec::new());
    for attribute in catalog {
        let same_name: Vec<&DataAttribute> = existing
            .iter()
            .filter(|a| a.name == attribute.name)
            .collect();
        let Some(found) = same_name.iter().find(|a| a.model == attribute.model) else {
            match same_name.first() {
                Some(other) => problems.push(format!(
                    "`{}` already exists as a {} attribute in Intercom, and names are unique across companies and contacts: choose another --prefix, or --exclude the source ({})",
                    attribute.name, other.model, attribute.source
                )),
                None => missing.push(attribute),
            }
            continue;
        };
        if found.archived {
            problems.push(format!(
                "`{}` is archived in Intercom, so it cannot be written: unarchive it (Settings → Data → {} data) or --exclude its source ({})",
                attribute.name, attribute.model, attribute.source
            ));
        } else if !compatible(attribute.data_type, &found.data_type) {
            problems.push(format!(
                "`{}` exists in Intercom as {} but this export makes it {} (from {}): Intercom cannot change an attribute's type — archive or rename it in Intercom, or --exclude the source, or fix the export's values",
                attribute.name, found.data_type, attribute.data_type, attribute.source
            ));
        }
    }
    let archived: HashSet<String> = existing
        .iter()
        .filter(|a| a.custom && a.archived)
        .map(|a| a.name.clone())
        .collect();
    let archivable: Vec<&str> = stale
        .iter()
        .filter(|name| !archived.contains(*name))
        .map(String::as_str)
        .collect();
    let archivable = if archivable.is_empty() {
        String::new()
    } else {
        format!(
            " Stale attributes of ours you could archive (`intercom-push attributes --archive-stale`): {}.",
            archivable.join(", ")
        )
    };
    let live = existing.iter().filter(|a| a.custom && !a.archived).count();
    if live + missing.len() > ATTRIBUTE_CAP {
        problems.push(format!(
            "creating {} attributes would take the workspace past Intercom's cap of {ATTRIBUTE_CAP} custom attributes ({live} are in use; archived ones do not count): nothing was written. Exclude sources (--exclude), or archive unused attributes in Intercom.{archivable}",
            missing.len()
        ));
    }
    Review {
        missing,
        problems,
        live,
        archived,
        archivable,
    }
}

/// Makes every attribute of `catalog` exist with a compatible type, or stops at the first of
/// [`review`]'s problems with nothing written.
pub async fn ensure_attributes(
    client: &Client,
    catalog: &[Attribute],
    stale: &[String],
) -> Result<Ensured, PushError> {
    let existing = list_all(client).await?;
    let Review {
        missing,
        problems,
        archived,
        archivable,
        ..
    } = review(&existing, catalog, stale);
    if let Some(problem) = problems.into_iter().next() {
        return Err(PushError::Attributes(problem));
    }
    // Created concurrently (each is independent), inside the client's rate governor.
    let mut creates = JoinSet::new();
    for attribute in &missing {
        let client = client.clone();
        let (name, model, data_type) = (
            attribute.name.clone(),
            model(attribute.model),
            data_type(attribute.data_type),
        );
        creates.spawn(async move {
            let created = client.create_data_attribute(&name, model, data_type).await;
            (name, created)
        });
    }
    let (mut created, mut refused, mut failure) = (Vec::new(), Vec::new(), None);
    while let Some(done) = creates.join_next().await {
        // A create task is never cancelled, so it only fails to finish by panicking: pass that on.
        match done {
            Ok((name, Ok(_))) => created.push(name),
            Ok((name, Err(e))) if e.has_code(LIMIT_REACHED) => refused.push(name),
            Ok((_, Err(e))) => failure = failure.or(Some(e)),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
    }
    if !refused.is_empty() {
        // The workspace holds more than the listing showed (another app's attributes, or ones
        // created meanwhile): stop before any record is written.
        refused.sort();
        return Err(PushError::Attributes(format!(
            "Intercom refused to create {} attributes ({LIMIT_REACHED}: the workspace is at its cap of custom attributes): {}. Nothing was written to any record. Exclude their sources (--exclude), or archive unused attributes in Intercom.{archivable}",
            refused.len(),
            refused.join(", ")
        )));
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    created.sort_by_key(|name| missing.iter().position(|a| &a.name == name));
    Ok(Ensured { created, archived })
}

/// Where a workspace attribute carrying our prefix comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Produced by the present mapping.
    Current,
    /// Ours (created or sent by this tool) but no source makes it any more.
    Stale,
    /// Not ours: never touched.
    Foreign,
}

/// One workspace attribute, classified.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkspaceAttribute {
    pub name: String,
    pub model: String,
    pub data_type: String,
    pub archived: bool,
    pub origin: Origin,
    /// Records Intercom still holds a value of ours for.
    pub records_with_value: i64,
    #[serde(skip)]
    pub id: Option<i64>,
}

/// Classifies `existing` attributes that are ours (known) or carry `prefix`.
pub fn classify(
    existing: &[DataAttribute],
    catalog: &[Attribute],
    known: &[(String, String)],
    held: &[(String, String, i64)],
    prefix: &str,
) -> Vec<WorkspaceAttribute> {
    let starts = format!("{prefix} ");
    let mut out: Vec<WorkspaceAttribute> = existing
        .iter()
        .filter(|a| a.custom)
        .filter_map(|a| {
            let is = |m: &str, n: &str| m == a.model && n == a.name;
            let origin = if catalog.iter().any(|c| is(c.model, &c.name)) {
                Origin::Current
            } else if known.iter().any(|(m, n)| is(m, n)) {
                Origin::Stale
            } else if a.name.starts_with(&starts) {
                Origin::Foreign
            } else {
                return None;
            };
            let kind = if a.model == "company" {
                "company"
            } else {
                "user"
            };
            let records_with_value = held
                .iter()
                .find(|(k, n, _)| k == kind && n == &a.name)
                .map_or(0, |h| h.2);
            Some(WorkspaceAttribute {
                name: a.name.clone(),
                model: a.model.clone(),
                data_type: a.data_type.clone(),
                archived: a.archived,
                origin,
                records_with_value,
                id: a.id,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.model.as_str(), a.name.as_str()).cmp(&(b.model.as_str(), b.name.as_str()))
    });
    out
}
