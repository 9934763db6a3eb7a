//! The mock workspace: companies, contacts and custom data attributes, and the operations the
//! API routes perform on them. Every operation validates fully before changing anything.

use super::error::ApiError;
use super::model::{Attribute, Company, Contact, DataType, Edit, Model, Seed, SeedError, SeedIds};
use super::search::{self, Records};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};

/// A validated company update (None / empty = leave as is).
struct CompanyUpdate {
    name: Option<String>,
    plan: Option<String>,
    website: Option<String>,
    industry: Option<String>,
    size: Option<i64>,
    monthly_spend: Option<i64>,
    custom: Vec<Change>,
}

/// A validated contact update (None / empty = leave as is).
struct ContactUpdate {
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    role: Option<String>,
    external_id: Option<String>,
    custom: Vec<Change>,
}

/// The one open company scroll of the workspace.
#[derive(Debug)]
struct Scroll {
    param: String,
    /// Index into `companies` of the next company to return.
    position: usize,
    last_used_ms: u64,
}

/// Intercom's `monthly_spend` upper limit (2**31-1).
const MAX_MONTHLY_SPEND: f64 = 2_147_483_647.0;
/// `POST /companies/list` pages no deeper than this many companies (as Intercom documents).
const LIST_LIMIT: usize = 10_000;

/// All workspace data.
#[derive(Debug, Default)]
pub struct Store {
    companies: Vec<Company>,
    company_by_id: HashMap<String, usize>,
    company_by_company_id: HashMap<String, usize>,
    contacts: Vec<Contact>,
    contact_by_id: HashMap<String, usize>,
    contact_by_external_id: HashMap<String, usize>,
    /// Lower-cased email → contacts (emails need not be unique).
    contact_by_email: HashMap<String, Vec<usize>>,
    attributes: Vec<Attribute>,
    /// Attribute name → index; names are unique across both models.
    attribute_by_name: HashMap<String, usize>,
    scroll: Option<Scroll>,
    id_counter: u64,
    /// How this workspace behaves where Intercom's behaviour is a setting of the mock.
    pub(super) rules: Rules,
}

/// Intercom behaviours the mock can play (from `MockConfig`), kept across seeds.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Custom data attributes allowed per workspace; archived ones do not count (Intercom's
    /// help center: archiving frees space).
    pub max_custom_attributes: usize,
    /// Milliseconds after its creation before a data attribute may be written (Intercom: a
    /// new attribute "can take a short while to appear").
    pub attribute_delay_ms: u64,
    /// Store a custom attribute set to `""` as `null` (Intercom has answered so).
    pub empty_string_as_null: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_custom_attributes: MAX_CUSTOM_ATTRIBUTES,
            attribute_delay_ms: 0,
            empty_string_as_null: false,
        }
    }
}

/// The fields a company update (`PUT /companies/{id}`, a bulk item) may set.
pub(super) const COMPANY_UPDATE_FIELDS: &[&str] = &[
    "name",
    "plan",
    "size",
    "website",
    "industry",
    "custom_attributes",
    "monthly_spend",
];

/// Intercom's cap of custom data attributes per workspace.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 250;
/// Intercom's longest string custom attribute value, in characters.
const MAX_STRING_CHARS: usize = 255;

/// Unix time in seconds for a millisecond timestamp.
fn secs(now_ms: u64) -> u64 {
    now_ms / 1000
}

/// The JSON object in a request body, or 400.
pub(super) fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::bad_request("Request body must be a JSON object"))
}

/// An optional string parameter: absent → None; present but not a string (or null) → 400.
fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::parameter_invalid(format!(
            "{key} must be a string"
        ))),
    }
}

/// Rejects keys outside `allowed` with the spec's `bad 'X' parameter` error.
pub(super) fn only_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!("bad '{k}' parameter"))),
        None => Ok(()),
    }
}

/// `{"type":"pages",…}` for page-numbered lists; `next` is null on the last page.
fn page_info(page: usize, per_page: usize, total: usize) -> Value {
    let total_pages = total.div_ceil(per_page);
    let next = if page < total_pages {
        json!({"page": page + 1, "per_page": per_page})
    } else {
        Value::Null
    };
    json!({"type": "pages", "next": next, "page": page, "per_page": per_page, "total_pages": total_pages})
}

impl Store {
    /// An empty workspace that behaves by `rules`.
    pub fn with_rules(rules: Rules) -> Store {
        Store {
            rules,
            ..Store::default()
        }
    }

    /// A new Intercom-like 24-hex-digit id: creation time, then a per-store counter.
    fn new_id(&mut self, now_ms: u64) -> String {
        self.id_counter += 1;
        let mixed = self.id_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        format!(
            "{:08x}{:04x}{:012x}",
            secs(now_ms) as u32,
            self.id_counter & 0xffff,
            mixed & 0xffff_ffff_ffff
        )
    }

    /// Replaces all data with `seed`; on error nothing changes.
    pub fn load(&mut self, seed: Seed, now_ms: u64) -> Result<SeedIds, SeedError> {
        let mut fresh = Store {
            id_counter: self.id_counter,
            rules: self.rules,
            ..Store::default()
        };
        let ids = fresh.fill(seed, now_ms)?;
        *self = fresh;
        Ok(ids)
    }

    fn fill(&mut self, seed: Seed, now_ms: u64) -> Result<SeedIds, SeedError> {
        let now = secs(now_ms);
        let mut ids = SeedIds::default();
        for a in seed.data_attributes {
            let invalid = |reason: &str| SeedError::InvalidAttribute {
                name: a.name.clone(),
                reason: reason.to_owned(),
            };
            let model = Model::parse(&a.model).ok_or_else(|| invalid("unknown model"))?;
            let data_type =
                DataType::parse(&a.data_type).ok_or_else(|| invalid("unknown data_type"))?;
            if self.attribute_by_name.contains_key(&a.name) {
                return Err(SeedError::DuplicateAttribute(a.name));
            }
            let id = self.attributes.len() as u64 + 1;
            self.attribute_by_name
                .insert(a.name.clone(), self.attributes.len());
            self.attributes.push(Attribute {
                id,
                name: a.name,
                model,
                data_type,
                archived: a.archived,
                description: None,
                created_at: now,
                updated_at: now,
                usable_from_ms: 0,
            });
            ids.data_attributes.push(id);
        }
        for c in seed.companies {
            if c.company_id.is_empty() {
                return Err(SeedError::EmptyCompanyId);
            }
            if self.company_by_company_id.contains_key(&c.company_id) {
                return Err(SeedError::DuplicateCompanyId(c.company_id));
            }
            let id = self.new_id(now_ms);
            ids.companies.push(id.clone());
            self.insert_company(Company {
                id,
                company_id: c.company_id,
                name: c.name,
                monthly_spend: c.monthly_spend.unwrap_or(0),
                user_count: c.user_count,
                size: None,
                website: None,
                industry: None,
                plan: None,
                custom_attributes: c.custom_attributes,
                created_at: now,
                updated_at: now,
            });
        }
        for c in seed.contacts {
            if let Some(ext) = &c.external_id {
                if self.contact_by_external_id.contains_key(ext) {
                    return Err(SeedError::DuplicateExternalId(ext.clone()));
                }
            }
            let role = c.role.unwrap_or_else(|| "user".to_owned());
            if role != "user" && role != "lead" {
                return Err(SeedError::InvalidRole(role));
            }
            let id = self.new_id(now_ms);
            ids.contacts.push(id.clone());
            self.insert_contact(Contact {
                id,
                external_id: c.external_id,
                email: c.email,
                name: c.name,
                phone: None,
                role,
                merged: c.merged || c.merged_into.is_some(),
                merged_into: c.merged_into,
                custom_attributes: c.custom_attributes,
                created_at: now,
                updated_at: now,
            });
        }
        Ok(ids)
    }

    fn insert_company(&mut self, c: Company) {
        let i = self.companies.len();
        self.company_by_id.insert(c.id.clone(), i);
        self.company_by_company_id.insert(c.company_id.clone(), i);
        self.companies.push(c);
    }

    fn insert_contact(&mut self, c: Contact) {
        let i = self.contacts.len();
        self.contact_by_id.insert(c.id.clone(), i);
        if let Some(ext) = &c.external_id {
            self.contact_by_external_id.insert(ext.clone(), i);
        }
        if let Some(email) = &c.email {
            self.contact_by_email
                .entry(email.to_lowercase())
                .or_default()
                .push(i);
        }
        self.contacts.push(c);
    }

    /// `{companies, contacts, data_attributes}` as API objects (contacts also carry `merged`).
    pub fn dump(&self) -> Value {
        let contacts: Vec<Value> = self
            .contacts
            .iter()
            .map(|c| {
                let mut v = c.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("merged".to_owned(), Value::Bool(c.merged));
                }
                v
            })
            .collect();
        json!({
            "companies": self.companies.iter().map(Company::to_json).collect::<Vec<_>>(),
            "contacts": contacts,
            "data_attributes": self.attributes.iter().map(Attribute::to_json).collect::<Vec<_>>(),
        })
    }

    /// Applies an [`Edit`] (all or nothing); returns how many companies and contacts changed.
    pub fn edit(&mut self, edit: Edit, now_ms: u64) -> Result<Value, String> {
        let companies = edit
            .companies
            .iter()
            .map(|c| {
                self.company_by_company_id
                    .get(&c.company_id)
                    .copied()
                    .ok_or_else(|| format!("no company with company_id {:?}", c.company_id))
            })
            .collect::<Result<Vec<usize>, String>>()?;
        let contacts = edit
            .contacts
            .iter()
            .map(|c| {
                let found = match (&c.external_id, &c.email) {
                    (Some(external_id), _) => self.contact_by_external_id.get(external_id),
                    (None, Some(email)) => self
                        .contact_by_email
                        .get(&email.to_lowercase())
                        .and_then(|all| all.first()),
                    (None, None) => None,
                };
                found
                    .copied()
                    .ok_or_else(|| format!("no contact {:?} / {:?}", c.external_id, c.email))
            })
            .collect::<Result<Vec<usize>, String>>()?;
        let changed = json!({"companies": companies.len(), "contacts": contacts.len()});
        for (i, change) in companies.into_iter().zip(edit.companies) {
            if change.recreate {
                self.recreate_company(i, now_ms);
            }
            let company = &mut self.companies[i];
            if let Some(spend) = change.monthly_spend {
                company.monthly_spend = spend;
            }
            apply_custom_attributes(
                &mut company.custom_attributes,
                edited(change.custom_attributes),
            );
            company.updated_at = secs(now_ms);
        }
        for (i, change) in contacts.into_iter().zip(edit.contacts) {
            let contact = &mut self.contacts[i];
            apply_custom_attributes(
                &mut contact.custom_attributes,
                edited(change.custom_attributes),
            );
            contact.updated_at = secs(now_ms);
        }
        Ok(changed)
    }

    /// Company `i` deleted and created again (see [`super::EditCompany::recreate`]): a new
    /// Intercom id, only `company_id`, `name` and `user_count` kept.
    fn recreate_company(&mut self, i: usize, now_ms: u64) {
        let id = self.new_id(now_ms);
        let old = &self.companies[i];
        self.company_by_id.remove(&old.id);
        self.company_by_id.insert(id.clone(), i);
        self.companies[i] = Company {
            id,
            company_id: old.company_id.clone(),
            name: old.name.clone(),
            monthly_spend: 0,
            user_count: old.user_count,
            size: None,
            website: None,
            industry: None,
            plan: None,
            custom_attributes: Map::new(),
            created_at: secs(now_ms),
            updated_at: secs(now_ms),
        };
    }

    /// The `company_id` of the company with Intercom id `id`, if any.
    pub fn company_id_of(&self, id: &str) -> Option<&str> {
        self.company_by_id
            .get(id)
            .map(|&i| self.companies[i].company_id.as_str())
    }

    // ----- companies -----

    /// `GET /companies?company_id=` / `?name=`: the matching company, or 404 `company_not_found`.
    pub fn find_company(
        &self,
        company_id: Option<&str>,
        name: Option<&str>,
    ) -> Result<&Company, ApiError> {
        let found = match (company_id, name) {
            (Some(cid), _) => self
                .company_by_company_id
                .get(cid)
                .map(|&i| &self.companies[i]),
            (None, Some(n)) => self.companies.iter().find(|c| c.name.as_deref() == Some(n)),
            (None, None) => None,
        };
        found.ok_or_else(ApiError::company_not_found)
    }

    /// `POST /companies/list` (and `GET /companies` without filters): companies with at least one
    /// user, in creation order, page-numbered (pages start at 1), at most 10,000 deep.
    pub fn list_companies(&self, page: usize, per_page: usize) -> Result<Value, ApiError> {
        if page == 0 || per_page == 0 {
            return Err(ApiError::parameter_invalid(
                "page and per_page must be positive",
            ));
        }
        let visible: Vec<&Company> = self.companies.iter().filter(|c| c.user_count > 0).collect();
        let start = (page - 1).saturating_mul(per_page);
        let end = start
            .saturating_add(per_page)
            .min(visible.len())
            .min(LIST_LIMIT);
        let data: Vec<Value> = visible
            .get(start..end.max(start))
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_json())
            .collect();
        Ok(json!({
            "type": "list",
            "data": data,
            "pages": page_info(page, per_page, visible.len().min(LIST_LIMIT)),
            "total_count": visible.len(),
        }))
    }

    /// `GET /companies/scroll[?scroll_param=]`: all companies (users or not) in creation order,
    /// `page_size` at a time. Only one scroll may be open: starting one while another is open
    /// (used within the last `ttl_ms`; Intercom: 60 s) → 400 `scroll_exists`. An unknown or
    /// expired param → 404 `not_found`. The page after the last company is empty and closes
    /// the scroll.
    pub fn scroll(
        &mut self,
        param: Option<&str>,
        page_size: usize,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Value, ApiError> {
        if self
            .scroll
            .as_ref()
            .is_some_and(|s| now_ms.saturating_sub(s.last_used_ms) >= ttl_ms)
        {
            self.scroll = None;
        }
        let position = match (param, &self.scroll) {
            (None, Some(_)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "scroll_exists",
                    "scroll already exists for this workspace",
                ))
            }
            (None, None) => 0,
            (Some(p), Some(s)) if s.param == p => s.position,
            (Some(_), _) => return Err(ApiError::not_found("scroll parameter not found")),
        };
        let param = match param {
            Some(p) => p.to_owned(),
            None => uuid_like(rand::random()),
        };
        let end = (position + page_size.max(1)).min(self.companies.len());
        let data: Vec<Value> = self.companies[position..end]
            .iter()
            .map(Company::to_json)
            .collect();
        self.scroll = if data.is_empty() {
            None
        } else {
            Some(Scroll {
                param: param.clone(),
                position: end,
                last_used_ms: now_ms,
            })
        };
        Ok(
            json!({"type": "list", "data": data, "pages": null, "total_count": null, "scroll_param": param}),
        )
    }

    /// Validates a company update body (allowed keys, value types, custom attributes).
    fn parse_company_update(&self, body: &Value, now_ms: u64) -> Result<CompanyUpdate, ApiError> {
        let obj = object(body)?;
        only_keys(obj, COMPANY_UPDATE_FIELDS)?;
        let size = match obj.get("size") {
            None => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| ApiError::parameter_invalid("size must be an integer"))?,
            ),
        };
        // Intercom truncates a float monthly_spend to an integer; its limit is 2**31-1.
        let monthly_spend = match obj.get("monthly_spend") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(f) if f.abs() <= MAX_MONTHLY_SPEND => Some(f.trunc() as i64),
                _ => {
                    return Err(ApiError::parameter_invalid(
                        "monthly_spend must be a number no larger than 2147483647",
                    ))
                }
            },
        };
        Ok(CompanyUpdate {
            name: opt_string(obj, "name")?,
            plan: opt_string(obj, "plan")?,
            website: opt_string(obj, "website")?,
            industry: opt_string(obj, "industry")?,
            size,
            monthly_spend,
            custom: match obj.get("custom_attributes") {
                None => Vec::new(),
                Some(ca) => self.validate_custom_attributes(Model::Company, ca, now_ms)?,
            },
        })
    }

    /// Applies a validated update to company `i` and returns the company object.
    fn apply_company_update(&mut self, i: usize, u: CompanyUpdate, now_ms: u64) -> Value {
        let c = &mut self.companies[i];
        for (field, value) in [
            (&mut c.name, u.name),
            (&mut c.plan, u.plan),
            (&mut c.website, u.website),
            (&mut c.industry, u.industry),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
        if u.size.is_some() {
            c.size = u.size;
        }
        if let Some(m) = u.monthly_spend {
            c.monthly_spend = m;
        }
        apply_custom_attributes(&mut c.custom_attributes, u.custom);
        c.updated_at = secs(now_ms);
        c.to_json()
    }

    /// `PUT /companies/{id}`: validates the whole body, then applies it (all or nothing).
    /// Unknown id → 404 `company_not_found`.
    pub fn update_company(
        &mut self,
        id: &str,
        body: &Value,
        now_ms: u64,
    ) -> Result<Value, ApiError> {
        let i = *self
            .company_by_id
            .get(id)
            .ok_or_else(ApiError::company_not_found)?;
        let update = self.parse_company_update(body, now_ms)?;
        Ok(self.apply_company_update(i, update, now_ms))
    }

    /// `POST /companies` (create or update by `company_id`) as the spec describes: validates,
    /// then creates the company (0 users) if needed and applies the body. The loader must never
    /// call it; the caller records the call as a violation.
    pub fn create_or_update_company(
        &mut self,
        body: &Value,
        now_ms: u64,
    ) -> Result<Value, ApiError> {
        let obj = object(body)?;
        let company_id = opt_string(obj, "company_id")?
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::parameter_invalid("company_id is required"))?;
        let mut rest = obj.clone();
        for k in ["company_id", "remote_created_at", "update_last_request_at"] {
            rest.remove(k);
        }
        let update = self.parse_company_update(&Value::Object(rest), now_ms)?;
        let i = match self.company_by_company_id.get(&company_id) {
            Some(&i) => i,
            None => {
                let id = self.new_id(now_ms);
                self.insert_company(Company {
                    id,
                    company_id,
                    name: None,
                    monthly_spend: 0,
                    user_count: 0,
                    size: None,
                    website: None,
                    industry: None,
                    plan: None,
                    custom_attributes: Map::new(),
                    created_at: secs(now_ms),
                    updated_at: secs(now_ms),
                });
                self.companies.len() - 1
            }
        };
        Ok(self.apply_company_update(i, update, now_ms))
    }

    /// `POST /companies/search` (Preview): `company_id`, `name` and `id` are searchable
    /// (`=`/`IN` on `company_id` and `id` use the indexes); companies without users are never
    /// returned ("the API does not include companies who have no associated users"); 15 per
    /// page unless `pagination.per_page` says otherwise.
    pub fn search_companies(&self, body: &Value) -> Result<Value, ApiError> {
        search::run(&CompanyRecords(self), body)
    }

    // ----- contacts -----

    /// `POST /contacts/search`. See [`search`] for the query language; merged contacts are never
    /// returned.
    pub fn search_contacts(&self, body: &Value) -> Result<Value, ApiError> {
        search::run(&ContactRecords(self), body)
    }

    /// Validates a contact update body; `i` is the contact updated (None when creating), used to
    /// refuse an `external_id` another contact has (409 `conflict`).
    fn parse_contact_update(
        &self,
        i: Option<usize>,
        body: &Value,
        now_ms: u64,
    ) -> Result<ContactUpdate, ApiError> {
        let obj = object(body)?;
        only_keys(
            obj,
            &[
                "role",
                "external_id",
                "email",
                "email_verified",
                "phone",
                "name",
                "avatar",
                "signed_up_at",
                "last_seen_at",
                "owner_id",
                "unsubscribed_from_emails",
                "custom_attributes",
            ],
        )?;
        let external_id = opt_string(obj, "external_id")?;
        if let Some(ext) = &external_id {
            if self
                .contact_by_external_id
                .get(ext)
                .is_some_and(|&j| Some(j) != i)
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "A contact matching those details already exists",
                ));
            }
        }
        Ok(ContactUpdate {
            name: opt_string(obj, "name")?,
            phone: opt_string(obj, "phone")?,
            email: opt_string(obj, "email")?,
            role: opt_string(obj, "role")?,
            external_id,
            custom: match obj.get("custom_attributes") {
                None => Vec::new(),
                Some(ca) => self.validate_custom_attributes(Model::Contact, ca, now_ms)?,
            },
        })
    }

    /// Applies a validated update to contact `i` (keeping the indexes current) and returns the
    /// contact object.
    fn apply_contact_update(&mut self, i: usize, u: ContactUpdate, now_ms: u64) -> Value {
        if let Some(ext) = u.external_id {
            if let Some(old) = self.contacts[i].external_id.take() {
                self.contact_by_external_id.remove(&old);
            }
            self.contact_by_external_id.insert(ext.clone(), i);
            self.contacts[i].external_id = Some(ext);
        }
        if let Some(email) = u.email {
            if let Some(old) = self.contacts[i].email.take() {
                if let Some(v) = self.contact_by_email.get_mut(&old.to_lowercase()) {
                    v.retain(|&j| j != i);
                }
            }
            self.contact_by_email
                .entry(email.to_lowercase())
                .or_default()
                .push(i);
            self.contacts[i].email = Some(email);
        }
        let c = &mut self.contacts[i];
        for (field, value) in [(&mut c.name, u.name), (&mut c.phone, u.phone)] {
            if value.is_some() {
                *field = value;
            }
        }
        if let Some(role) = u.role {
            c.role = role;
        }
        apply_custom_attributes(&mut c.custom_attributes, u.custom);
        c.updated_at = secs(now_ms);
        c.to_json()
    }

    /// `PUT /contacts/{id}`: validates the whole body, then applies it (all or nothing). Unknown
    /// id → 404 `not_found`; a merged contact → 410 `contact_merged` (the spec's code for merged
    /// contacts).
    pub fn update_contact(
        &mut self,
        id: &str,
        body: &Value,
        now_ms: u64,
    ) -> Result<Value, ApiError> {
        let i = *self
            .contact_by_id
            .get(id)
            .ok_or_else(|| ApiError::not_found("User Not Found"))?;
        if self.contacts[i].merged {
            let canonical = self.contacts[i]
                .merged_into
                .as_ref()
                .and_then(|ext| self.contact_by_external_id.get(ext))
                .map(|&j| &self.contacts[j].id);
            return Err(ApiError {
                link: canonical.map(|id| format!("</contacts/{id}>; rel=\"canonical\"")),
                ..ApiError::new(
                    StatusCode::GONE,
                    "contact_merged",
                    "This contact has been merged. See the 'Link' header for the canonical contact.",
                )
            });
        }
        let update = self.parse_contact_update(Some(i), body, now_ms)?;
        Ok(self.apply_contact_update(i, update, now_ms))
    }

    /// `POST /contacts`: validates, then creates a contact (the loader must never call it; the
    /// caller records a violation). Needs `email` or `external_id`.
    pub fn create_contact(&mut self, body: &Value, now_ms: u64) -> Result<Value, ApiError> {
        let update = self.parse_contact_update(None, body, now_ms)?;
        if update.external_id.is_none() && update.email.is_none() {
            return Err(ApiError::parameter_invalid(
                "email or external_id is required",
            ));
        }
        let id = self.new_id(now_ms);
        self.insert_contact(Contact {
            id,
            external_id: None,
            email: None,
            name: None,
            phone: None,
            role: "user".to_owned(),
            merged: false,
            merged_into: None,
            custom_attributes: Map::new(),
            created_at: secs(now_ms),
            updated_at: secs(now_ms),
        });
        Ok(self.apply_contact_update(self.contacts.len() - 1, update, now_ms))
    }

    // ----- data attributes -----

    /// Checks a `custom_attributes` value against the model's custom data attributes and returns
    /// the changes to apply. Every key must name an existing, non-archived custom attribute of
    /// `model` that is usable already (see [`Rules::attribute_delay_ms`]), every non-null value
    /// must match its data type, and a string may have at most 255 characters; else 400
    /// `parameter_invalid` naming the attribute.
    ///
    /// `null` clears a value: the mock removes it (the attribute then no longer appears in the
    /// record's `custom_attributes`). Real Intercom is assumed to do the same: not documented.
    /// With [`Rules::empty_string_as_null`], `""` is stored as `null`.
    fn validate_custom_attributes(
        &self,
        model: Model,
        ca: &Value,
        now_ms: u64,
    ) -> Result<Vec<Change>, ApiError> {
        let obj = ca
            .as_object()
            .ok_or_else(|| ApiError::parameter_invalid("custom_attributes must be an object"))?;
        let mut changes = Vec::with_capacity(obj.len());
        for (k, v) in obj {
            let attr = self
                .attribute_by_name
                .get(k)
                .map(|&i| &self.attributes[i])
                .filter(|a| a.model == model && !a.archived && a.usable_from_ms <= now_ms)
                .ok_or_else(|| {
                    ApiError::parameter_invalid(format!("Custom attribute '{k}' does not exist"))
                })?;
            if !v.is_null() && !attr.data_type.accepts(v) {
                return Err(ApiError::parameter_invalid(format!(
                    "Custom attribute '{k}' must be of type {}",
                    attr.data_type.as_str()
                )));
            }
            if v.as_str()
                .is_some_and(|s| s.chars().count() > MAX_STRING_CHARS)
            {
                return Err(ApiError::parameter_invalid(format!(
                    "Custom attribute '{k}' must be at most {MAX_STRING_CHARS} characters long"
                )));
            }
            let stored = match v {
                Value::Null => None,
                Value::String(s) if s.is_empty() && self.rules.empty_string_as_null => {
                    Some(Value::Null)
                }
                _ => Some(v.clone()),
            };
            changes.push((k.clone(), stored));
        }
        Ok(changes)
    }

    /// `GET /data_attributes`: the custom attributes of `model` (both models when None),
    /// archived ones only with `include_archived`. Intercom also lists its standard attributes
    /// (without `id`, `custom: false`); the mock lists custom ones only.
    pub fn list_attributes(&self, model: Option<Model>, include_archived: bool) -> Value {
        let data: Vec<Value> = self
            .attributes
            .iter()
            .filter(|a| model.is_none_or(|m| a.model == m) && (include_archived || !a.archived))
            .map(Attribute::to_json)
            .collect();
        json!({"type": "list", "data": data})
    }

    /// `POST /data_attributes {name, model, data_type[, description, messenger_writable]}`.
    /// Names are unique across both models and may not reuse a standard attribute's name (400
    /// `parameter_invalid`, with the spec's messages where it has one). At most
    /// [`Rules::max_custom_attributes`] custom attributes may be live (archived ones do not
    /// count): past it, 400 `custom_data_limit_reached`.
    pub fn create_attribute(&mut self, body: &Value, now_ms: u64) -> Result<Value, ApiError> {
        let obj = object(body)?;
        only_keys(
            obj,
            &[
                "name",
                "model",
                "data_type",
                "description",
                "messenger_writable",
                "options",
            ],
        )?;
        let name = opt_string(obj, "name")?.unwrap_or_default();
        let model = opt_string(obj, "model")?
            .as_deref()
            .and_then(Model::parse)
            .ok_or_else(|| {
                ApiError::parameter_invalid(
                    "The Data Attribute model field must be either contact or company",
                )
            })?;
        let data_type = opt_string(obj, "data_type")?
            .as_deref()
            .and_then(DataType::parse)
            .ok_or_else(|| ApiError::parameter_invalid("Data Type isn't an option"))?;
        let description = opt_string(obj, "description")?;
        let valid_char = |c: char| c.is_alphanumeric() || " _-$€£¥".contains(c);
        if name.trim().is_empty() || !name.chars().all(valid_char) {
            return Err(ApiError::parameter_invalid(
                "Your name for this attribute must only contain alphanumeric characters, currency symbols, and hyphens",
            ));
        }
        if model.standard_names().contains(&name.as_str()) {
            return Err(ApiError::parameter_invalid(format!(
                "'{name}' is one of our standard attributes for your {} data. To save this as new {} data, use a different name.",
                model.data_word(),
                model.data_word()
            )));
        }
        if let Some(&i) = self.attribute_by_name.get(&name) {
            return Err(ApiError::parameter_invalid(format!(
                "You already have '{name}' in your {} data. To save this as new {} data, use a different name.",
                self.attributes[i].model.data_word(),
                model.data_word()
            )));
        }
        let max = self.rules.max_custom_attributes;
        if self.attributes.iter().filter(|a| !a.archived).count() >= max {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "custom_data_limit_reached",
                format!("You have reached the limit of {max} custom data attributes: archive attributes you no longer use to make room"),
            ));
        }
        let id = self.attributes.iter().map(|a| a.id).max().unwrap_or(0) + 1;
        self.attribute_by_name
            .insert(name.clone(), self.attributes.len());
        let attr = Attribute {
            id,
            name,
            model,
            data_type,
            archived: false,
            description,
            created_at: secs(now_ms),
            updated_at: secs(now_ms),
            usable_from_ms: now_ms + self.rules.attribute_delay_ms,
        };
        let v = attr.to_json();
        self.attributes.push(attr);
        Ok(v)
    }

    /// `PUT /data_attributes/{id} {archived?, description?}`: unknown id → 404 `field_not_found`
    /// (the spec's code).
    pub fn update_attribute(
        &mut self,
        id: &str,
        body: &Value,
        now_ms: u64,
    ) -> Result<Value, ApiError> {
        let not_found = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "field_not_found",
                "We couldn't find that data attribute to update",
            )
        };
        let id: u64 = id.parse().map_err(|_| not_found())?;
        let i = self
            .attributes
            .iter()
            .position(|a| a.id == id)
            .ok_or_else(not_found)?;
        let obj = object(body)?;
        only_keys(
            obj,
            &["archived", "description", "messenger_writable", "options"],
        )?;
        let archived = match obj.get("archived") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(ApiError::parameter_invalid("archived must be a boolean")),
        };
        let description = opt_string(obj, "description")?;
        let a = &mut self.attributes[i];
        if let Some(b) = archived {
            a.archived = b;
        }
        if description.is_some() {
            a.description = description;
        }
        a.updated_at = secs(now_ms);
        Ok(a.to_json())
    }
}

/// The store's contacts, as search sees them.
struct ContactRecords<'a>(&'a Store);

impl Records for ContactRecords<'_> {
    const FIELDS: search::Fields = search::CONTACT_FIELDS;
    /// Documented for contact search.
    const DEFAULT_PER_PAGE: usize = 50;

    fn count(&self) -> usize {
        self.0.contacts.len()
    }

    fn field(&self, i: usize, field: &str) -> Option<Value> {
        let c = &self.0.contacts[i];
        let s = |v: &Option<String>| v.clone().map(Value::String);
        match field {
            "id" => Some(Value::String(c.id.clone())),
            "external_id" => s(&c.external_id),
            "email" => s(&c.email),
            "name" => s(&c.name),
            "phone" => s(&c.phone),
            "role" => Some(Value::String(c.role.clone())),
            _ => field
                .strip_prefix("custom_attributes.")
                .and_then(|k| c.custom_attributes.get(k).cloned()),
        }
    }

    fn indexed(&self, field: &str) -> bool {
        matches!(field, "id" | "external_id" | "email")
    }

    fn lookup(&self, field: &str, wanted: &str, out: &mut BTreeSet<usize>) {
        let store = self.0;
        match field {
            "id" => out.extend(store.contact_by_id.get(wanted)),
            "external_id" => out.extend(store.contact_by_external_id.get(wanted)),
            _ => out.extend(
                store
                    .contact_by_email
                    .get(&wanted.to_lowercase())
                    .into_iter()
                    .flatten(),
            ),
        }
    }

    fn visible(&self, i: usize) -> bool {
        !self.0.contacts[i].merged
    }

    fn render(&self, i: usize) -> Value {
        self.0.contacts[i].to_json()
    }
}

/// The store's companies, as (Preview) company search sees them.
struct CompanyRecords<'a>(&'a Store);

impl Records for CompanyRecords<'_> {
    const FIELDS: search::Fields = search::COMPANY_FIELDS;
    /// The Preview description: "The default is `15` results per page".
    const DEFAULT_PER_PAGE: usize = 15;

    fn count(&self) -> usize {
        self.0.companies.len()
    }

    fn field(&self, i: usize, field: &str) -> Option<Value> {
        let c = &self.0.companies[i];
        match field {
            "id" => Some(Value::String(c.id.clone())),
            "company_id" => Some(Value::String(c.company_id.clone())),
            "name" => c.name.clone().map(Value::String),
            _ => None,
        }
    }

    fn indexed(&self, field: &str) -> bool {
        matches!(field, "id" | "company_id")
    }

    fn lookup(&self, field: &str, wanted: &str, out: &mut BTreeSet<usize>) {
        let index = match field {
            "id" => &self.0.company_by_id,
            _ => &self.0.company_by_company_id,
        };
        out.extend(index.get(wanted));
    }

    fn visible(&self, i: usize) -> bool {
        self.0.companies[i].user_count > 0
    }

    fn render(&self, i: usize) -> Value {
        self.0.companies[i].to_json()
    }
}

/// A custom attribute change: `None` removes the key, `Some` stores the value.
type Change = (String, Option<Value>);

/// Applies validated custom attribute changes.
fn apply_custom_attributes(target: &mut Map<String, Value>, changes: Vec<Change>) {
    for (k, v) in changes {
        match v {
            None => target.remove(&k),
            Some(v) => target.insert(k, v),
        };
    }
}

/// The changes of an `/_mock/edit`: `null` removes the key, other values set it.
fn edited(values: Map<String, Value>) -> Vec<Change> {
    values
        .into_iter()
        .map(|(k, v)| (k, (!v.is_null()).then_some(v)))
        .collect()
}

/// A uuid-shaped hex string derived from `n` (not random; unique per distinct `n`).
pub fn uuid_like(n: u64) -> String {
    let a = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let b = a.rotate_left(29) ^ 0xD6E8_FEB8_6659_FD93;
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a & 0xfff,
        (b >> 52) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::model::SeedCompany;

    fn store_with(companies: usize) -> Store {
        let mut store = Store::default();
        let seed = Seed {
            companies: (0..companies)
                .map(|i| SeedCompany {
                    company_id: format!("c{i}"),
                    ..SeedCompany::default()
                })
                .collect(),
            ..Seed::default()
        };
        store.load(seed, 1_000_000).expect("seed");
        store
    }

    #[test]
    fn scroll_expires_after_a_minute_idle() {
        let mut store = store_with(3);
        let t = 5_000_000;
        let first = store.scroll(None, 1, 60_000, t).expect("first page");
        let param = first["scroll_param"].as_str().expect("param").to_owned();
        let busy = store
            .scroll(None, 1, 60_000, t + 59_999)
            .expect_err("still open");
        assert_eq!(busy.code, "scroll_exists");
        store
            .scroll(Some(&param), 1, 60_000, t + 59_999)
            .expect("second page");
        let expired = store
            .scroll(Some(&param), 1, 60_000, t + 59_999 + 60_000)
            .expect_err("expired");
        assert_eq!((expired.status.as_u16(), expired.code), (404, "not_found"));
        assert!(store.scroll(None, 1, 60_000, t + 200_000).is_ok());
    }

    /// Counts the per-record reads of a search: one answered from an index reads only its hits.
    struct Counting<'a>(CompanyRecords<'a>, std::cell::Cell<usize>);

    impl Records for Counting<'_> {
        const FIELDS: search::Fields = search::COMPANY_FIELDS;
        const DEFAULT_PER_PAGE: usize = 15;
        fn count(&self) -> usize {
            self.0.count()
        }
        fn field(&self, i: usize, field: &str) -> Option<Value> {
            self.1.set(self.1.get() + 1);
            self.0.field(i, field)
        }
        fn indexed(&self, field: &str) -> bool {
            self.0.indexed(field)
        }
        fn lookup(&self, field: &str, wanted: &str, out: &mut BTreeSet<usize>) {
            self.0.lookup(field, wanted, out)
        }
        fn visible(&self, i: usize) -> bool {
            self.1.set(self.1.get() + 1);
            self.0.visible(i)
        }
        fn render(&self, i: usize) -> Value {
            self.0.render(i)
        }
    }

    #[test]
    fn company_search_by_company_id_uses_the_index() {
        let store = store_with(20_000);
        let wanted: Vec<String> = (0..100).map(|i| format!("c{}", i * 199)).collect();
        let counting = Counting(CompanyRecords(&store), std::cell::Cell::new(0));
        let body = json!({"query": {"field": "company_id", "operator": "IN", "value": wanted},
                          "pagination": {"per_page": 150}});
        let page = search::run(&counting, &body).expect("search");
        // store_with seeds companies without users: all found, none visible.
        assert_eq!(page["total_count"], 0);
        assert_eq!(
            counting.1.get(),
            100,
            "one visibility check per hit, no scan"
        );
        counting.1.set(0);
        let and = json!({"query": {"operator": "AND", "value": [
            {"field": "company_id", "operator": "IN", "value": wanted},
            {"field": "name", "operator": "!=", "value": "x"}]}});
        search::run(&counting, &and).expect("search");
        assert_eq!(
            counting.1.get(),
            200,
            "the other filter runs on the hits only"
        );
        counting.1.set(0);
        let scan = json!({"query": {"field": "company_id", "operator": "^", "value": "c1"}});
        search::run(&counting, &scan).expect("search");
        assert!(counting.1.get() >= 20_000, "a prefix search scans");
    }

    #[test]
    fn seed_rejects_duplicates_and_changes_nothing() {
        let mut store = store_with(2);
        let dup = Seed {
            companies: vec![
                SeedCompany {
                    company_id: "x".into(),
                    ..SeedCompany::default()
                },
                SeedCompany {
                    company_id: "x".into(),
                    ..SeedCompany::default()
                },
            ],
            ..Seed::default()
        };
        assert_eq!(
            store.load(dup, 0).err(),
            Some(SeedError::DuplicateCompanyId("x".into()))
        );
        assert_eq!(store.dump()["companies"].as_array().map(Vec::len), Some(2));
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| store.new_id(1_700_000_000_000)).collect();
        assert_eq!(ids.len(), 1000);
    }
}
