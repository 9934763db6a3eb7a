//! Typed views of the Intercom objects the loader reads. Only the fields the loader needs are
//! kept; unknown fields are ignored so newer API versions keep deserialising.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::time::Duration;

/// The model a data attribute belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// `company`
    Company,
    /// `contact` (users and leads)
    Contact,
}

impl Model {
    /// Wire name (`company` / `contact`).
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Company => "company",
            Model::Contact => "contact",
        }
    }
}

/// Data type of a custom data attribute (the types the loader creates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `string`
    String,
    /// `integer`
    Integer,
    /// `float`
    Float,
    /// `boolean`
    Boolean,
    /// `date` (unix timestamp values)
    Date,
}

impl DataType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::String => "string",
            DataType::Integer => "integer",
            DataType::Float => "float",
            DataType::Boolean => "boolean",
            DataType::Date => "date",
        }
    }
}

/// Contact field used to look contacts up in `POST /contacts/search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactKey {
    /// `external_id` (the warehouse's user id)
    ExternalId,
    /// `email`
    Email,
    /// `id` (Intercom's own id: reads back contacts already resolved)
    Id,
}

impl ContactKey {
    /// Search field name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKey::ExternalId => "external_id",
            ContactKey::Email => "email",
            ContactKey::Id => "id",
        }
    }
}

/// An Intercom company (schema `company`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Company {
    /// Intercom's id (used in `PUT /companies/{id}`).
    pub id: String,
    /// Your own company id (the warehouse key).
    #[serde(default)]
    pub company_id: Option<String>,
    /// Company name.
    #[serde(default)]
    pub name: Option<String>,
    /// Monthly spend as Intercom stores it.
    #[serde(default)]
    pub monthly_spend: Option<f64>,
    /// Number of users attached (0 means `POST /companies/list` will not show it).
    #[serde(default)]
    pub user_count: Option<u64>,
    /// Custom attribute values as Intercom returns them.
    #[serde(default, deserialize_with = "null_as_empty_map")]
    pub custom_attributes: Map<String, Value>,
}

/// An Intercom contact (schema `contact`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Contact {
    /// Intercom's id (used in `PUT /contacts/{id}`).
    pub id: String,
    /// Your own user id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// `user` or `lead`.
    #[serde(default)]
    pub role: Option<String>,
    /// Custom attribute values as Intercom returns them.
    #[serde(default, deserialize_with = "null_as_empty_map")]
    pub custom_attributes: Map<String, Value>,
}

/// An Intercom data attribute (schema `data_attribute`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DataAttribute {
    /// Intercom's id: an integer in the spec, present only for custom attributes.
    /// (Numeric strings are accepted too.)
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub id: Option<i64>,
    /// Attribute name (for custom attributes: the key inside `custom_attributes`).
    pub name: String,
    /// Full name, e.g. `custom_attributes.plan_tier`.
    #[serde(default)]
    pub full_name: Option<String>,
    /// `company` or `contact`.
    #[serde(default)]
    pub model: String,
    /// `string`, `integer`, `float`, `boolean`, `date` (or other types Intercom adds).
    #[serde(default)]
    pub data_type: String,
    /// Archived (only custom attributes can be).
    #[serde(default)]
    pub archived: bool,
    /// True for custom data attributes (CDAs).
    #[serde(default)]
    pub custom: bool,
    /// Whether the API may write it.
    #[serde(default)]
    pub api_writable: Option<bool>,
}

/// One page of `GET /companies/scroll`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyPage {
    /// Companies on this page.
    pub companies: Vec<Company>,
    /// Pass to the next `scroll_companies` call; `None` when this page is empty, which is how
    /// Intercom signals the end of the scroll (the parameter then expires).
    pub scroll_param: Option<String>,
}

/// One page of `POST /companies/list` (companies with at least one user only).
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyListPage {
    /// Companies on this page.
    pub companies: Vec<Company>,
    /// This page's number (1-based).
    pub page: u32,
    /// Number of pages (0 if unknown/empty).
    pub total_pages: u32,
    /// Total number of companies, if Intercom said.
    pub total_count: Option<u64>,
}

/// One page of `POST /contacts/search`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPage {
    /// Contacts on this page.
    pub contacts: Vec<Contact>,
    /// `pages.next.starting_after`; `None` on the last page.
    pub next: Option<String>,
    /// `total_count`, if Intercom said.
    pub total_count: Option<u64>,
}

/// Counters since the client was created (shared by all clones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Attempts sent (every attempt of every call).
    pub requests_sent: u64,
    /// Answers with a 2xx status.
    pub responses_2xx: u64,
    /// Answers with a 3xx status (redirects are not followed).
    pub responses_3xx: u64,
    /// Answers with a 4xx status (including 429).
    pub responses_4xx: u64,
    /// Answers with a 5xx status.
    pub responses_5xx: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Attempts that were retries (attempt number ≥ 2).
    pub retries: u64,
    /// Attempts that failed without a complete answer (timeouts, resets, refused connections).
    pub transport_errors: u64,
    /// Total time requests spent waiting for the rate governor's pacing/holds.
    pub governor_wait: Duration,
    /// Total time the client chose to sleep before retries (backoff, rate-limit reset,
    /// `Retry-After`): what it asked for, not what the machine's scheduler made of it.
    pub retry_wait: Duration,
}

// ---- wire helpers -------------------------------------------------------------------------

/// `{"type":"list","data":[...]}`
#[derive(Debug, Deserialize)]
pub(crate) struct DataList<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

fn null_as_empty_map<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

fn lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom("data attribute id is not an integer")),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| D::Error::custom("data attribute id is not an integer")),
        Some(_) => Err(D::Error::custom("data attribute id is not an integer")),
    }
}

/// Extracts `pages.next.starting_after` from a list answer (tolerates `next: null`, a missing
/// `pages`, and the older string form of `next`, which carries no cursor).
pub(crate) fn next_cursor(body: &Value) -> Option<String> {
    body.get("pages")?
        .get("next")?
        .get("starting_after")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `GET /me`: the admin a token belongs to (schema `admin_with_app`), what `check` shows.
#[derive(Debug, Clone, Deserialize)]
pub struct Admin {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub app: Option<App>,
}

/// The workspace ("app") of an admin.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct App {
    #[serde(default)]
    pub id_code: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

/// One page of `POST /companies/search` (Preview; companies without users are left out).
#[derive(Debug, Clone, PartialEq)]
pub struct CompanySearchPage {
    /// Companies on this page.
    pub companies: Vec<Company>,
    /// `pages.next.starting_after`; `None` on the last page.
    pub next: Option<String>,
}

/// A bulk update job (Preview: schemas `companies_bulk_job`, `contacts_bulk_job`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BulkJob {
    /// The job's id, e.g. `job_v2_1`: later tasks may be appended to it.
    pub id: String,
    /// Every task of the job.
    #[serde(default, deserialize_with = "null_as_empty_vec")]
    pub tasks: Vec<BulkTask>,
}

/// One task of a bulk job: the items of one bulk request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BulkTask {
    pub id: String,
    /// `pending`, `running`, `completed` or `completed_with_errors`.
    #[serde(default)]
    pub state: String,
}

impl BulkTask {
    /// Whether the task has finished (successfully or not).
    pub fn finished(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "completed_with_errors")
    }
}

fn null_as_empty_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}
