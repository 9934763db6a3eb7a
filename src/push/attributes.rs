//! Data attributes must exist in Intercom before a PUT uses them: list them once per run,
//! create the missing ones with the inferred type, refuse on a type conflict.

use crate::intercom::{Client, DataAttribute, DataType, Model};
use crate::store::Attribute;

use super::PushError;

/// Intercom's limit on custom data attributes per workspace (archived ones count).
pub const ATTRIBUTE_CAP: usize = 250;

fn data_type(name: &str) -> DataType {
    match name {
        "integer" => DataType::Integer,
        "float" => DataType::Float,
        "boolean" => DataType::Boolean,
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

/// Makes every attribute of `catalog` exist with a compatible type; returns the names created.
pub async fn ensure_attributes(
    client: &Client,
    catalog: &[Attribute],
) -> Result<Vec<String>, PushError> {
    let mut existing: Vec<DataAttribute> =
        client.list_data_attributes(Model::Company, true).await?;
    existing.extend(client.list_data_attributes(Model::Contact, true).await?);
    let mut missing = Vec::new();
    for attribute in catalog {
        let same_name: Vec<&DataAttribute> = existing
            .iter()
            .filter(|a| a.name == attribute.name)
            .collect();
        let Some(found) = same_name.iter().find(|a| a.model == attribute.model) else {
            if let Some(other) = same_name.first() {
                return Err(PushError::Attributes(format!(
                    "`{}` already exists as a {} attribute in Intercom, and names are unique across companies and contacts: choose another --prefix, or --exclude the source ({})",
                    attribute.name, other.model, attribute.source
                )));
            }
            missing.push(attribute);
            continue;
        };
        if found.archived {
            return Err(PushError::Attributes(format!(
                "`{}` is archived in Intercom, so it cannot be written: unarchive it (Settings → Data → {} data) or --exclude its source ({})",
                attribute.name, attribute.model, attribute.source
            )));
        }
        if !compatible(attribute.data_type, &found.data_type) {
            return Err(PushError::Attributes(format!(
                "`{}` exists in Intercom as {} but this export makes it {} (from {}): Intercom cannot change an attribute's type — archive or rename it in Intercom, or --exclude the source, or fix the export's values",
                attribute.name, found.data_type, attribute.data_type, attribute.source
            )));
        }
    }
    let custom_now = existing.iter().filter(|a| a.custom).count();
    if custom_now + missing.len() > ATTRIBUTE_CAP {
        return Err(PushError::Attributes(format!(
            "creating {} attributes would take the workspace past Intercom's cap of {ATTRIBUTE_CAP} custom attributes ({custom_now} exist, archived ones count): nothing was written. Exclude sources (--exclude), or archive unused attributes in Intercom (see `intercom-push attributes`)",
            missing.len()
        )));
    }
    let mut created = Vec::new();
    for attribute in missing {
        client
            .create_data_attribute(
                &attribute.name,
                model(attribute.model),
                data_type(attribute.data_type),
            )
            .await?;
        created.push(attribute.name.clone());
    }
    Ok(created)
}
