//! Finding Intercom's ids: companies by `company_id`, contacts by `external_id` then
//! `email`. Never creates anything: a record that is not there is `not found`.

use std::collections::HashMap;

use tokio::task::JoinSet;

use crate::intercom::{ApiError, Client, Contact, ContactKey};

/// Values per `IN` search. Assumed: Intercom documents no limit on an `IN` list (only 2 levels
/// of nesting and 15 filters per group); see the README, "What we assume about Intercom".
pub const SEARCH_BATCH: usize = 100;

/// A contact lookup's answer for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactMatch {
    Found(String),
    NotFound,
    Ambiguous(String),
}

/// A user's keys, for resolution.
#[derive(Debug, Clone)]
pub struct UserKeys {
    pub external_id: Option<String>,
    pub email: Option<String>,
}

/// Resolves users to contact ids: by external_id first, then (for those not found) by email;
/// only a unique match counts. Calls `POST /contacts/search` for users (`role = user`: leads
/// are never matched) with `IN` on up to 100 values.
pub async fn resolve_contacts(
    client: &Client,
    users: &[UserKeys],
) -> Result<Vec<ContactMatch>, ApiError> {
    let external_ids: Vec<String> = users.iter().filter_map(|u| u.external_id.clone()).collect();
    let by_external = search_all(client, ContactKey::ExternalId, &external_ids, |c| {
        c.external_id.clone()
    })
    .await?;
    let mut results: Vec<Option<ContactMatch>> = users
        .iter()
        .map(|u| {
            let found = u.external_id.as_ref().and_then(|id| by_external.get(id))?;
            Some(match found.as_slice() {
                [one] => ContactMatch::Found(one.clone()),
                many => ContactMatch::Ambiguous(format!(
                    "{} contacts have external_id {:?}",
                    many.len(),
                    u.external_id.as_deref().unwrap_or_default()
                )),
            })
        })
        .collect();
    let emails: Vec<String> = users
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_none())
        .filter_map(|(u, _)| u.email.as_ref().map(|e| e.to_lowercase()))
        .collect();
    let by_email = search_all(client, ContactKey::Email, &emails, |c| {
        c.email.as_ref().map(|e| e.to_lowercase())
    })
    .await?;
    for (user, result) in users.iter().zip(results.iter_mut()) {
        if result.is_some() {
            continue;
        }
        let email = user.email.as_ref().map(|e| e.to_lowercase());
        *result = Some(
            match email
                .as_ref()
                .and_then(|e| by_email.get(e))
                .map(Vec::as_slice)
            {
                Some([one]) => ContactMatch::Found(one.clone()),
                Some(many) if many.len() > 1 => ContactMatch::Ambiguous(format!(
                    "{} contacts have email {}: not guessing which one",
                    many.len(),
                    email.unwrap_or_default()
                )),
                _ => ContactMatch::NotFound,
            },
        );
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(ContactMatch::NotFound))
        .collect())
}

/// Searches `field IN values` in batches, following pagination; key → contact ids.
async fn search_all(
    client: &Client,
    field: ContactKey,
    values: &[String],
    key_of: impl Fn(&Contact) -> Option<String>,
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for contact in search_in(client, field, values).await? {
        if let Some(key) = key_of(&contact) {
            let ids = found.entry(key).or_default();
            if !ids.contains(&contact.id) {
                ids.push(contact.id);
            }
        }
    }
    Ok(found)
}

/// Every contact whose `field` is one of `values`: one `IN` search per [`SEARCH_BATCH`]
/// distinct values (one page each, unless a value matches several contacts), the batches
/// concurrently.
pub async fn search_in(
    client: &Client,
    field: ContactKey,
    values: &[String],
) -> Result<Vec<Contact>, ApiError> {
    let client = client.clone();
    let (contacts, _) = batched_search(values, move |batch, cursor| {
        let client = client.clone();
        async move {
            let page = client
                .search_contacts(field, &batch, cursor.as_deref())
                .await?;
            Ok((page.contacts, page.next))
        }
    })
    .await?;
    Ok(contacts)
}

/// Companies found by `company_id` with the company search (Preview), batched as
/// [`search_in`]. Answers company_id → Intercom id, and the number of searches made. A
/// company without users is never found this way (Intercom leaves them out of searches):
/// look those up one by one.
pub async fn search_companies(
    client: &Client,
    company_ids: &[String],
) -> Result<(HashMap<String, String>, u64), ApiError> {
    let client = client.clone();
    let (companies, searches) = batched_search(company_ids, move |batch, cursor| {
        let client = client.clone();
        async move {
            let page = client.search_companies(&batch, cursor.as_deref()).await?;
            Ok((page.companies, page.next))
        }
    })
    .await?;
    let found = companies
        .into_iter()
        .filter_map(|c| Some((c.company_id?, c.id)))
        .collect();
    Ok((found, searches))
}

/// One search per [`SEARCH_BATCH`] distinct `values`, the batches concurrently, each
/// followed page by page (`page(batch, cursor)` answers a page's records and the next
/// cursor). Answers every record found and the number of searches made.
async fn batched_search<T, F, Fut>(values: &[String], page: F) -> Result<(Vec<T>, u64), ApiError>
where
    T: Send + 'static,
    F: Fn(Vec<String>, Option<String>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), ApiError>> + Send,
{
    let mut unique: Vec<String> = values.to_vec();
    unique.sort();
    unique.dedup();
    let mut batches = JoinSet::new();
    for batch in unique.chunks(SEARCH_BATCH) {
        let (page, batch) = (page.clone(), batch.to_vec());
        batches.spawn(async move {
            let (mut found, mut searches) = (Vec::new(), 0u64);
            let mut cursor: Option<String> = None;
            loop {
                let (records, next) = page(batch.clone(), cursor.take()).await?;
                searches += 1;
                let more = !records.is_empty();
                found.extend(records);
                match next {
                    Some(next) if more => cursor = Some(next),
                    _ => return Ok::<_, ApiError>((found, searches)),
                }
            }
        });
    }
    let (mut found, mut searches) = (Vec::new(), 0);
    while let Some(done) = batches.join_next().await {
        // A batch task is never cancelled, so it only fails to finish by panicking: pass that
        // on, as if the search had run inline.
        match done {
            Ok(batch) => {
                let (records, n) = batch?;
                found.extend(records);
                searches += n;
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    Ok((found, searches))
}
