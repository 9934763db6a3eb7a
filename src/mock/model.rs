//! Workspace records (companies, contacts, custom data attributes), their API JSON shapes, and
//! the seed format.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use thiserror::Error;

/// `app_id` / `workspace_id` of the mock workspace.
const APP_ID: &str = "mockapp1";
/// `admin_id` on custom data attributes.
const ADMIN_ID: &str = "991267001";

/// Initial workspace content, loadable from JSON (`POST /_mock/seed`). Seeded custom attribute
/// values are stored as given (not checked against the data attributes), so legacy or
/// inconsistent workspaces can be simulated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    pub companies: Vec<SeedCompany>,
    pub contacts: Vec<SeedContact>,
    pub data_attributes: Vec<SeedAttribute>,
}

/// A company to seed; its Intercom `id` is assigned by the mock.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedCompany {
    pub company_id: String,
    pub name: Option<String>,
    /// Companies with 0 users are left out of `POST /companies/list`.
    pub user_count: u32,
    pub monthly_spend: Option<i64>,
    pub custom_attributes: Map<String, Value>,
}

/// A contact to seed; its Intercom `id` is assigned by the mock.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedContact {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// `user` (the default) or `lead`. Intercom's contact search returns both; a lead often
    /// shares its email with the user it later signed up as.
    pub role: Option<String>,
    /// A merged contact answers 410 `contact_merged` on PUT and is left out of search results.
    pub merged: bool,
    /// `external_id` of the contact this one was merged into (implies `merged`): the 410 answer
    /// then carries `Link: </contacts/{its id}>; rel="canonical"` as the spec describes.
    pub merged_into: Option<String>,
    pub custom_attributes: Map<String, Value>,
}

/// A custom data attribute to seed; its integer `id` is assigned by the mock.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedAttribute {
    pub name: String,
    /// `company` or `contact`.
    pub model: String,
    /// `string`, `integer`, `float`, `boolean` or `date`.
    pub data_type: String,
    pub archived: bool,
}

/// Changes made behind the loader's back (`POST /_mock/edit`), as another integration or a
/// teammate in Intercom's UI would make them: custom attribute values are set as given (`null`
/// removes one), without checking them against the data attributes, and nothing is recorded
/// or rate limited. Companies are named by `company_id`, contacts by `external_id` or else
/// `email`. All or nothing: an unknown record changes nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Edit {
    pub companies: Vec<EditCompany>,
    pub contacts: Vec<EditContact>,
}

/// A change to one company (`POST /_mock/edit`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EditCompany {
    pub company_id: String,
    pub monthly_spend: Option<i64>,
    pub custom_attributes: Map<String, Value>,
    /// The company was deleted in Intercom and created again with the same `company_id`: it
    /// gets a NEW Intercom `id` (the old one is then unknown everywhere: `PUT /companies/{id}`
    /// answers 404, a bulk item naming it fails, search by `id` finds nothing) and keeps only
    /// its `company_id`, `name` and `user_count`: custom attributes, `monthly_spend` (0),
    /// `plan`, `size`, `website` and `industry` are gone, and `created_at`/`updated_at` are
    /// the time of the edit. It keeps its place in list and scroll order. `monthly_spend` and
    /// `custom_attributes` of the same edit are then applied to the new company.
    pub recreate: bool,
}

/// A change to one contact (`POST /_mock/edit`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EditContact {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub custom_attributes: Map<String, Value>,
}

/// Intercom ids assigned to a seed's records, in seed order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeedIds {
    pub companies: Vec<String>,
    pub contacts: Vec<String>,
    pub data_attributes: Vec<u64>,
}

/// Why a seed was refused (nothing is loaded then).
#[derive(Debug, Error, PartialEq)]
pub enum SeedError {
    #[error("duplicate company_id {0:?}")]
    DuplicateCompanyId(String),
    #[error("company with an empty company_id")]
    EmptyCompanyId,
    #[error("duplicate contact external_id {0:?}")]
    DuplicateExternalId(String),
    #[error("duplicate data attribute name {0:?}")]
    DuplicateAttribute(String),
    #[error("data attribute {name:?}: {reason}")]
    InvalidAttribute { name: String, reason: String },
    #[error("contact role {0:?}: a contact is a \"user\" or a \"lead\"")]
    InvalidRole(String),
}

/// Data attribute model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Company,
    Contact,
}

impl Model {
    /// Parses `company` / `contact`.
    pub fn parse(s: &str) -> Option<Model> {
        match s {
            "company" => Some(Model::Company),
            "contact" => Some(Model::Contact),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Model::Company => "company",
            Model::Contact => "contact",
        }
    }

    /// How Intercom's messages name the model's data ("company data" / "people data").
    pub fn data_word(self) -> &'static str {
        match self {
            Model::Company => "company",
            Model::Contact => "people",
        }
    }

    /// Names of the model's standard (non-custom) attributes, which a custom one may not reuse.
    pub fn standard_names(self) -> &'static [&'static str] {
        match self {
            Model::Company => &[
                "id",
                "app_id",
                "company_id",
                "name",
                "created_at",
                "updated_at",
                "remote_created_at",
                "last_request_at",
                "monthly_spend",
                "session_count",
                "user_count",
                "size",
                "industry",
                "website",
                "plan",
            ],
            Model::Contact => &[
                "id",
                "external_id",
                "email",
                "name",
                "phone",
                "role",
                "avatar",
                "owner_id",
                "created_at",
                "updated_at",
                "signed_up_at",
                "last_seen_at",
                "unsubscribed_from_emails",
            ],
        }
    }
}

/// Custom data attribute type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    String,
    Integer,
    Float,
    Boolean,
    /// Unix timestamp in seconds (a JSON integer).
    Date,
}

impl DataType {
    /// Parses `string`, `integer`, `float`, `boolean`, `date`.
    pub fn parse(s: &str) -> Option<DataType> {
        match s {
            "string" => Some(DataType::String),
            "integer" => Some(DataType::Integer),
            "float" => Some(DataType::Float),
            "boolean" => Some(DataType::Boolean),
            "date" => Some(DataType::Date),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::String => "string",
            DataType::Integer => "integer",
            DataType::Float => "float",
            DataType::Boolean => "boolean",
            DataType::Date => "date",
        }
    }

    /// Whether a non-null JSON value fits this type.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            DataType::String => v.is_string(),
            DataType::Integer => v.is_i64() || v.is_u64(),
            DataType::Float => v.is_number(),
            DataType::Boolean => v.is_boolean(),
            DataType::Date => v.is_u64(),
        }
    }
}

/// A company record.
#[derive(Debug, Clone)]
pub struct Company {
    pub id: String,
    pub company_id: String,
    pub name: Option<String>,
    pub monthly_spend: i64,
    pub user_count: u32,
    pub size: Option<i64>,
    pub website: Option<String>,
    pub industry: Option<String>,
    pub plan: Option<String>,
    pub custom_attributes: Map<String, Value>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl Company {
    /// The spec's `company` object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "type": "company",
            "company_id": self.company_id,
            "id": self.id,
            "app_id": APP_ID,
            "name": self.name,
            "remote_created_at": self.created_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "monthly_spend": self.monthly_spend,
            "session_count": 0,
            "user_count": self.user_count,
            "tags": {"type": "tag.list", "tags": []},
            "segments": {"type": "segment.list", "segments": []},
            "plan": match &self.plan {
                Some(p) => json!({"type": "plan", "id": "1", "name": p}),
                None => json!({}),
            },
            "custom_attributes": self.custom_attributes,
        });
        for (k, val) in [
            ("size", self.size.map(Value::from)),
            ("website", self.website.clone().map(Value::from)),
            ("industry", self.industry.clone().map(Value::from)),
        ] {
            if let (Some(val), Some(obj)) = (val, v.as_object_mut()) {
                obj.insert(k.to_owned(), val);
            }
        }
        v
    }
}

/// `GET /me`: the spec's `admin_with_app` for the mock workspace's admin.
pub fn me() -> Value {
    json!({
        "type": "admin", "id": ADMIN_ID, "email": "admin@mock.example", "name": "Mock Admin",
        "email_verified": true, "has_inbox_seat": true,
        "avatar": {"type": "avatar", "image_url": null},
        "app": {"type": "app", "id_code": APP_ID, "name": "Mock workspace", "created_at": 1_700_000_000,
                "secure": false, "identity_verification": false, "timezone": "UTC", "region": "US"},
    })
}

/// A contact record.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub role: String,
    pub merged: bool,
    /// `external_id` of the canonical contact of a merged one.
    pub merged_into: Option<String>,
    pub custom_attributes: Map<String, Value>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl Contact {
    /// The spec's `contact` object (the fields the mock keeps, others null/empty).
    pub fn to_json(&self) -> Value {
        let list = |what: &str| {
            json!({"type": "list", "data": [], "url": format!("/contacts/{}/{what}", self.id),
                   "total_count": 0, "has_more": false})
        };
        json!({
            "type": "contact",
            "id": self.id,
            "workspace_id": APP_ID,
            "external_id": self.external_id,
            "role": self.role,
            "email": self.email,
            "phone": self.phone,
            "name": self.name,
            "avatar": null,
            "owner_id": null,
            "social_profiles": {"type": "list", "data": []},
            "has_hard_bounced": false,
            "marked_email_as_spam": false,
            "unsubscribed_from_emails": false,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "signed_up_at": self.created_at,
            "last_seen_at": null,
            "custom_attributes": self.custom_attributes,
            "tags": list("tags"),
            "notes": list("notes"),
            "companies": list("companies"),
            "location": {"type": "location", "country": null, "region": null, "city": null,
                         "country_code": null, "continent_code": null},
        })
    }
}

/// A custom data attribute.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub id: u64,
    pub name: String,
    pub model: Model,
    pub data_type: DataType,
    pub archived: bool,
    pub description: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    /// Unix ms from which a write may use it (see `MockConfig::attribute_delay`).
    pub usable_from_ms: u64,
}

impl Attribute {
    /// The spec's `data_attribute` object.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "data_attribute",
            "name": self.name,
            "full_name": format!("custom_attributes.{}", self.name),
            "label": self.name,
            "description": self.description.clone().unwrap_or_default(),
            "data_type": self.data_type.as_str(),
            "api_writable": true,
            "ui_writable": false,
            "messenger_writable": false,
            "custom": true,
            "archived": self.archived,
            "admin_id": ADMIN_ID,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "model": self.model.as_str(),
        })
    }
}
