//! End-to-end tests: real HTTP (reqwest / raw TCP) against a started mock.

use super::*;
use reqwest::{Client, Method};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const TOKEN: &str = "test-token";

fn config() -> MockConfig {
    MockConfig {
        token: TOKEN.to_owned(),
        ..MockConfig::default()
    }
}

fn attr(name: &str, model: &str, data_type: &str, archived: bool) -> SeedAttribute {
    SeedAttribute {
        name: name.to_owned(),
        model: model.to_owned(),
        data_type: data_type.to_owned(),
        archived,
    }
}

fn company(company_id: &str, user_count: u32) -> SeedCompany {
    SeedCompany {
        company_id: company_id.to_owned(),
        name: Some(format!("Company {company_id}")),
        user_count,
        ..SeedCompany::default()
    }
}

fn contact(external_id: &str) -> SeedContact {
    SeedContact {
        external_id: Some(external_id.to_owned()),
        email: Some(format!("{external_id}@example.com")),
        ..SeedContact::default()
    }
}

/// Companies c1 (3 users), c2 (0 users), c3 (1 user); contacts e0..e6 with e3 merged into e4;
/// attributes: company plan_tier/seats/arr/active/old_attr(archived), contact score.
fn standard_seed() -> Seed {
    Seed {
        companies: vec![company("c1", 3), company("c2", 0), company("c3", 1)],
        contacts: (0..7)
            .map(|i| SeedContact {
                merged_into: (i == 3).then(|| "e4".to_owned()),
                ..contact(&format!("e{i}"))
            })
            .collect(),
        data_attributes: vec![
            attr("plan_tier", "company", "string", false),
            attr("seats", "company", "integer", false),
            attr("arr", "company", "float", false),
            attr("active", "company", "boolean", false),
            attr("old_attr", "company", "string", true),
            attr("score", "contact", "integer", false),
        ],
    }
}

struct Api {
    server: MockServer,
    ids: SeedIds,
    client: Client,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Api {
    async fn start(cfg: MockConfig) -> Api {
        Api::with(MockServer::start(cfg).await.expect("start mock"))
    }

    fn with(server: MockServer) -> Api {
        let ids = server.seed(standard_seed()).expect("seed");
        Api {
            server,
            ids,
            client: Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, body, Some(TOKEN), Some("2.16"))
            .await
            .expect("request")
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        version: Option<&str>,
    ) -> reqwest::Result<Answer> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.server.base_url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(v) = version {
            req = req.header("Intercom-Version", v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn company(&self, company_id: &str) -> Value {
        let dump = self.server.dump();
        dump["companies"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["company_id"] == company_id).cloned())
            .expect("company in dump")
    }
}

fn error_code(a: &Answer) -> &str {
    assert_eq!(a.body["type"], "error.list", "{}", a.body);
    assert_eq!(
        a.body["request_id"].as_str(),
        a.headers.get("x-request-id").and_then(|v| v.to_str().ok())
    );
    a.body["errors"][0]["code"].as_str().unwrap_or("")
}

fn header_u64(a: &Answer, name: &str) -> u64 {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("header {name} missing"))
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() {
    let api = Api::start(config()).await;
    for token in [None, Some("wrong")] {
        let a = api
            .call_with(
                Method::GET,
                "/companies?company_id=c1",
                None,
                token,
                Some("2.16"),
            )
            .await
            .expect("request");
        assert_eq!(a.status, 401);
        assert_eq!(error_code(&a), "unauthorized");
        assert_eq!(header_u64(&a, "x-ratelimit-limit"), 1667);
    }
    assert_eq!(api.server.stats().unauthorized, 2);
}

#[tokio::test]
async fn find_company_shape_follows_version() {
    let api = Api::start(config()).await;
    let new = api
        .call(Method::GET, "/companies?company_id=c1", None)
        .await;
    assert_eq!(new.status, 200);
    assert_eq!(new.body["type"], "list");
    assert_eq!(new.body["data"][0]["company_id"], "c1");
    assert_eq!(new.body["data"][0]["id"], api.ids.companies[0].as_str());
    let none = api
        .call_with(
            Method::GET,
            "/companies?company_id=c1",
            None,
            Some(TOKEN),
            None,
        )
        .await
        .expect("request");
    assert_eq!(none.body["type"], "list");
    let old = api
        .call_with(
            Method::GET,
            "/companies?company_id=c1",
            None,
            Some(TOKEN),
            Some("2.11"),
        )
        .await
        .expect("request");
    assert_eq!(old.body["type"], "company");
    assert_eq!(old.body["user_count"], 3);
    let missing = api
        .call(Method::GET, "/companies?company_id=nope", None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(error_code(&missing), "company_not_found");
    let versions = api.server.stats().intercom_versions;
    assert_eq!(versions.get("2.11"), Some(&1));
    assert_eq!(versions.get("(none)"), Some(&1));
}

#[tokio::test]
async fn invalid_custom_attributes_reject_the_whole_put() {
    let api = Api::start(config()).await;
    let path = format!("/companies/{}", api.ids.companies[0]);
    for ca in [
        json!({"plan_tier": "gold", "nope": 1}),
        json!({"plan_tier": "gold", "old_attr": "x"}),
        json!({"plan_tier": "gold", "score": 1}),
        json!({"plan_tier": "gold", "seats": "3"}),
        json!({"plan_tier": "gold", "seats": 3.5}),
        json!({"plan_tier": "gold", "active": "true"}),
        json!({"plan_tier": 5}),
    ] {
        let a = api
            .call(
                Method::PUT,
                &path,
                Some(json!({"monthly_spend": 99, "custom_attributes": ca})),
            )
            .await;
        assert_eq!(a.status, 400, "{ca}");
        assert_eq!(error_code(&a), "parameter_invalid");
    }
    let c = api.company("c1");
    assert_eq!(c["monthly_spend"], 0);
    assert_eq!(c["custom_attributes"], json!({}));
    assert_eq!(api.server.stats().company_writes, 0);
    let bad_key = api
        .call(Method::PUT, &path, Some(json!({"test": "invalid"})))
        .await;
    assert_eq!(error_code(&bad_key), "bad_request");
}

#[tokio::test]
async fn put_company_applies_types_and_null_clears() {
    let api = Api::start(config()).await;
    let path = format!("/companies/{}", api.ids.companies[0]);
    let ca = json!({"plan_tier": "gold", "seats": 3, "arr": 7, "active": true});
    let a = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"monthly_spend": 12, "custom_attributes": ca})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["type"], "company");
    assert_eq!(a.body["custom_attributes"], ca);
    assert_eq!(a.body["monthly_spend"], 12);
    let a = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"custom_attributes": {"plan_tier": null, "arr": 1.5}})),
        )
        .await;
    assert_eq!(a.status, 200);
    let stored = &api.company("c1")["custom_attributes"];
    assert_eq!(stored, &json!({"seats": 3, "arr": 1.5, "active": true}));
    assert_eq!(api.server.stats().company_writes, 2);
    let gone = api
        .call(
            Method::PUT,
            "/companies/ffffffffffffffffffffffff",
            Some(json!({})),
        )
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(error_code(&gone), "company_not_found");
    let bad_json = api
        .client
        .put(format!("{}{path}", api.server.base_url()))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(bad_json.status().as_u16(), 400);
}

#[tokio::test]
async fn create_calls_are_recorded_as_violations() {
    let api = Api::start(config()).await;
    let a = api
        .call(
            Method::POST,
            "/companies",
            Some(json!({"company_id": "new", "name": "N"})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["company_id"], "new");
    api.call(
        Method::POST,
        "/contacts",
        Some(json!({"external_id": "x9"})),
    )
    .await;
    let v = api.server.violations();
    assert_eq!(v.len(), 2);
    assert_eq!(
        (v[0].method.as_str(), v[0].path.as_str()),
        ("POST", "/companies")
    );
    assert_eq!(v[0].body["company_id"], "new");
    assert_eq!(v[1].path, "/contacts");
    assert_eq!(api.server.stats().violations, 2);
    let bad = json!({"company_id": "bad", "custom_attributes": {"nope": 1}});
    assert_eq!(
        api.call(Method::POST, "/companies", Some(bad)).await.status,
        400
    );
    let companies = api.server.dump()["companies"].as_array().map(Vec::len);
    assert_eq!(
        companies,
        Some(4),
        "the invalid create must not leave a company behind"
    );
    assert_eq!(api.server.stats().violations, 3);
}

#[tokio::test]
async fn search_in_paginates_and_skips_merged() {
    let api = Api::start(config()).await;
    let wanted: Vec<String> = (0..7).map(|i| format!("e{i}")).collect();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut pagination = json!({"per_page": 2});
        if let Some(a) = &after {
            pagination["starting_after"] = json!(a);
        }
        let body = json!({"query": {"field": "external_id", "operator": "IN", "value": wanted},
                          "pagination": pagination});
        let a = api.call(Method::POST, "/contacts/search", Some(body)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["total_count"], 6);
        assert_eq!(a.body["pages"]["total_pages"], 3);
        pages += 1;
        for c in a.body["data"].as_array().expect("data") {
            seen.push(c["external_id"].as_str().unwrap_or_default().to_owned());
        }
        match a.body["pages"]["next"]["starting_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["e0", "e1", "e2", "e4", "e5", "e6"]);

    let or = json!({"query": {"operator": "OR", "value": [
        {"field": "external_id", "operator": "=", "value": "e1"},
        {"field": "email", "operator": "=", "value": "E5@EXAMPLE.COM"},
        {"field": "external_id", "operator": "=", "value": "e3"}]}});
    let a = api.call(Method::POST, "/contacts/search", Some(or)).await;
    assert_eq!(a.body["total_count"], 2);
    assert_eq!(a.body["data"][1]["external_id"], "e5");
    assert!(a.body["pages"].get("next").is_none());

    let bad = json!({"query": {"field": "external_id", "operator": "IN", "value": ["e1"]},
                     "pagination": {"per_page": 151}});
    assert_eq!(
        api.call(Method::POST, "/contacts/search", Some(bad))
            .await
            .status,
        400
    );
    let bad_cursor = json!({"query": {"field": "external_id", "operator": "=", "value": "e1"},
                            "pagination": {"starting_after": "zzz"}});
    let a = api
        .call(Method::POST, "/contacts/search", Some(bad_cursor))
        .await;
    assert_eq!(error_code(&a), "client_error");
}

#[tokio::test]
async fn contact_put_merged_is_410_unknown_is_404() {
    let api = Api::start(config()).await;
    let merged = format!("/contacts/{}", api.ids.contacts[3]);
    let a = api
        .call(
            Method::PUT,
            &merged,
            Some(json!({"custom_attributes": {"score": 1}})),
        )
        .await;
    assert_eq!(a.status, 410);
    assert_eq!(error_code(&a), "contact_merged");
    let link = a.headers.get("link").and_then(|v| v.to_str().ok());
    let expected = format!("</contacts/{}>; rel=\"canonical\"", api.ids.contacts[4]);
    assert_eq!(link, Some(expected.as_str()));
    let a = api
        .call(
            Method::PUT,
            "/contacts/000000000000000000000000",
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(error_code(&a), "not_found");
    let ok = format!("/contacts/{}", api.ids.contacts[0]);
    let a = api
        .call(
            Method::PUT,
            &ok,
            Some(json!({"custom_attributes": {"score": 7}})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["custom_attributes"]["score"], 7);
    let a = api
        .call(
            Method::PUT,
            &ok,
            Some(json!({"custom_attributes": {"plan_tier": "x"}})),
        )
        .await;
    assert_eq!(error_code(&a), "parameter_invalid");
    assert_eq!(api.server.stats().contact_writes, 1);
}

#[tokio::test]
async fn only_one_scroll_at_a_time() {
    let api = Api::start(MockConfig {
        scroll_page_size: 2,
        ..config()
    })
    .await;
    let first = api.call(Method::GET, "/companies/scroll", None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["data"].as_array().map(Vec::len), Some(2));
    let param = first.body["scroll_param"]
        .as_str()
        .expect("scroll_param")
        .to_owned();
    let second = api.call(Method::GET, "/companies/scroll", None).await;
    assert_eq!(second.status, 400);
    assert_eq!(error_code(&second), "scroll_exists");
    let path = format!("/companies/scroll?scroll_param={param}");
    let next = api.call(Method::GET, &path, None).await;
    assert_eq!(next.body["data"].as_array().map(Vec::len), Some(1));
    let end = api.call(Method::GET, &path, None).await;
    assert_eq!(end.body["data"], json!([]));
    let closed = api.call(Method::GET, &path, None).await;
    assert_eq!(closed.status, 404);
    assert_eq!(
        api.call(Method::GET, "/companies/scroll", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn list_omits_companies_without_users() {
    let api = Api::start(config()).await;
    let a = api
        .call(
            Method::POST,
            "/companies/list",
            Some(json!({"page": 1, "per_page": 1})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["total_count"], 2);
    assert_eq!(a.body["pages"]["total_pages"], 2);
    assert_eq!(a.body["data"][0]["company_id"], "c1");
    let a = api
        .call(Method::POST, "/companies/list?page=2&per_page=1", None)
        .await;
    assert_eq!(a.body["data"][0]["company_id"], "c3");
    assert_eq!(a.body["pages"]["next"], Value::Null);
}

#[tokio::test]
async fn data_attributes_cap_counts_live_ones_and_names_are_unique() {
    let api = Api::start(config()).await;
    let mut seed = standard_seed();
    // 249 attributes, the first archived: 248 live.
    seed.data_attributes = (0..249)
        .map(|i| {
            attr(
                &format!("a{i}"),
                if i % 2 == 0 { "company" } else { "contact" },
                "string",
                i == 0,
            )
        })
        .collect();
    api.server.seed(seed).expect("seed");
    let create =
        |name: &str, model: &str| json!({"name": name, "model": model, "data_type": "integer"});
    let post = |body: Value| api.call(Method::POST, "/data_attributes", Some(body));
    let dup = post(create("a1", "company")).await;
    assert_eq!(dup.status, 400);
    assert_eq!(error_code(&dup), "parameter_invalid");
    let ok = post(create("last_one", "contact")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["full_name"], "custom_attributes.last_one");
    assert_eq!(ok.body["custom"], true);
    // 250 attributes exist, 249 live: the archived one does not count.
    assert_eq!(post(create("one_more", "company")).await.status, 200);
    let over = post(create("too_many", "company")).await;
    assert_eq!(over.status, 400);
    assert_eq!(error_code(&over), "custom_data_limit_reached");

    let list = api
        .call(Method::GET, "/data_attributes?model=company", None)
        .await;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(125));
    let all = api
        .call(
            Method::GET,
            "/data_attributes?model=company&include_archived=true",
            None,
        )
        .await;
    assert_eq!(all.body["data"].as_array().map(Vec::len), Some(126));
    let id = ok.body["id"].as_u64().expect("id");
    let archived = api
        .call(
            Method::PUT,
            &format!("/data_attributes/{id}"),
            Some(json!({"archived": true})),
        )
        .await;
    assert_eq!(archived.body["archived"], true);
    let contact_attrs = api
        .call(Method::GET, "/data_attributes?model=contact", None)
        .await;
    assert_eq!(
        contact_attrs.body["data"].as_array().map(Vec::len),
        Some(124)
    );
    // Archiving made room.
    assert_eq!(post(create("too_many", "company")).await.status, 200);
}

#[tokio::test]
async fn over_the_limit_is_429_with_aligned_headers() {
    for attempt in 0..3 {
        let api = Api::start(MockConfig {
            rate_limit: 3,
            ..config()
        })
        .await;
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(api.call(Method::GET, "/data_attributes", None).await);
        }
        let resets: Vec<u64> = answers
            .iter()
            .map(|a| header_u64(a, "x-ratelimit-reset"))
            .collect();
        if resets.iter().any(|&r| r != resets[0]) && attempt < 2 {
            continue; // crossed a window boundary mid-test
        }
        let remaining: Vec<u64> = answers
            .iter()
            .map(|a| header_u64(a, "x-ratelimit-remaining"))
            .collect();
        assert_eq!(remaining, [2, 1, 0, 0]);
        assert!(answers
            .iter()
            .all(|a| header_u64(a, "x-ratelimit-limit") == 3));
        assert_eq!(answers[3].status, 429);
        assert_eq!(error_code(&answers[3]), "rate_limit_exceeded");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        assert_eq!(resets[0] % 10, 0);
        assert!(
            resets[0] > now.saturating_sub(1) && resets[0] <= now + 10,
            "{resets:?} {now}"
        );
        assert_eq!(api.server.stats().rate_limited, 1);
        return;
    }
}

#[tokio::test]
async fn short_windows_reset_the_count() {
    let api = Api::start(MockConfig {
        rate_limit: 1,
        window: Duration::from_millis(200),
        ..config()
    })
    .await;
    let first = api.call(Method::GET, "/data_attributes", None).await;
    let reset_ms = header_u64(&first, "x-ratelimit-reset") * 1000;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    tokio::time::sleep(Duration::from_millis(reset_ms.saturating_sub(now) + 10)).await;
    let later = api.call(Method::GET, "/data_attributes", None).await;
    assert_eq!(later.status, 200);
}

#[tokio::test]
async fn drop_before_applies_nothing_and_the_client_sees_an_error() {
    let api = Api::start(MockConfig {
        p_drop_before: 1.0,
        ..config()
    })
    .await;
    let path = format!("/companies/{}", api.ids.companies[0]);
    let r = api
        .call_with(
            Method::PUT,
            &path,
            Some(json!({"monthly_spend": 5})),
            Some(TOKEN),
            Some("2.16"),
        )
        .await;
    assert!(r.is_err(), "expected a connection error");
    assert_eq!(api.company("c1")["monthly_spend"], 0);
    let stats = api.server.stats();
    assert_eq!((stats.dropped_before, stats.company_writes), (1, 0));
    assert_eq!(stats.by_route.get("PUT /companies/{id} 0"), Some(&1));

    // Raw TCP: the connection closes without a single byte of answer.
    let addr = api.server.addr();
    let raw = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        let req = format!(
            "GET /data_attributes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
    .await
    .expect("join");
    assert!(raw.is_empty(), "got {:?}", String::from_utf8_lossy(&raw));
}

#[tokio::test]
async fn drop_after_applies_the_write_and_the_client_sees_an_error() {
    let api = Api::start(MockConfig {
        p_drop_after: 1.0,
        ..config()
    })
    .await;
    let path = format!("/companies/{}", api.ids.companies[0]);
    let r = api
        .call_with(
            Method::PUT,
            &path,
            Some(json!({"monthly_spend": 5})),
            Some(TOKEN),
            Some("2.16"),
        )
        .await;
    assert!(r.is_err(), "expected a connection error");
    assert_eq!(api.company("c1")["monthly_spend"], 5);
    let stats = api.server.stats();
    assert_eq!((stats.dropped_after, stats.company_writes), (1, 1));
}

#[tokio::test]
async fn drops_on_a_reused_connection_are_not_retried_silently() {
    let api = Api::start(config()).await;
    let path = format!("/companies/{}", api.ids.companies[0]);
    assert_eq!(
        api.call(Method::PUT, &path, Some(json!({"monthly_spend": 1})))
            .await
            .status,
        200
    );
    for (faults, writes) in [
        (
            FaultConfig {
                p_drop_after: 1.0,
                ..FaultConfig::default()
            },
            2,
        ),
        (
            FaultConfig {
                p_drop_before: 1.0,
                ..FaultConfig::default()
            },
            2,
        ),
    ] {
        api.server.set_faults(faults);
        let r = api
            .call_with(
                Method::PUT,
                &path,
                Some(json!({"monthly_spend": 2})),
                Some(TOKEN),
                Some("2.16"),
            )
            .await;
        assert!(r.is_err(), "expected a connection error");
        assert_eq!(api.server.stats().company_writes, writes);
    }
    assert_eq!(
        api.server.stats().total_requests,
        3,
        "the client must not have retried"
    );
    api.server.set_faults(FaultConfig::default());
    assert_eq!(
        api.call(Method::GET, "/data_attributes", None).await.status,
        200
    );
}

#[tokio::test]
async fn injected_5xx_and_permanent_failures_apply_nothing() {
    let api = Api::start(MockConfig {
        fail_company_ids: vec!["c3".to_owned()],
        ..config()
    })
    .await;
    let put = |i: usize| {
        (
            format!("/companies/{}", api.ids.companies[i]),
            Some(json!({"monthly_spend": 9})),
        )
    };
    let (p, b) = put(2);
    let a = api.call(Method::PUT, &p, b).await;
    assert_eq!(a.status, 500);
    assert_eq!(error_code(&a), "server_error");
    let (p, b) = put(0);
    assert_eq!(api.call(Method::PUT, &p, b).await.status, 200);
    api.server.set_faults(FaultConfig {
        p_5xx: 1.0,
        ..FaultConfig::default()
    });
    let (p, b) = put(1);
    let a = api.call(Method::PUT, &p, b).await;
    assert!([500, 502, 503].contains(&a.status));
    assert_eq!(api.company("c2")["monthly_spend"], 0);
    assert_eq!(api.company("c3")["monthly_spend"], 0);
    let stats = api.server.stats();
    assert_eq!(
        (
            stats.injected_5xx,
            stats.permanent_failures,
            stats.company_writes
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn slow_answers_time_out_but_apply() {
    let api = Api::start(MockConfig {
        p_slow: 1.0,
        slow: Duration::from_millis(400),
        ..config()
    })
    .await;
    let r = api
        .client
        .put(format!(
            "{}/companies/{}",
            api.server.base_url(),
            api.ids.companies[0]
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"monthly_spend": 4}))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    // The write happens before the delay; on a loaded machine it may land just after the
    // client gave up, so allow it a moment.
    for _ in 0..100 {
        if api.company("c1")["monthly_spend"] == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(api.company("c1")["monthly_spend"], 4);
    assert_eq!(api.server.stats().slowed, 1);
}

#[tokio::test]
async fn injected_429_is_counted_apart_and_faults_are_seeded() {
    let cfg = MockConfig {
        p_429: 0.5,
        seed: 42,
        ..config()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let api = Api::start(cfg.clone()).await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let a = api.call(Method::GET, "/data_attributes", None).await;
            if a.status == 429 {
                assert_eq!(error_code(&a), "rate_limit_exceeded");
                assert_eq!(header_u64(&a, "x-ratelimit-remaining"), 0);
            }
            statuses.push(a.status);
        }
        let stats = api.server.stats();
        assert_eq!(
            stats.injected_429 as usize,
            statuses.iter().filter(|&&s| s == 429).count()
        );
        assert_eq!(stats.rate_limited, 0);
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&429) && runs[0].contains(&200));
}

#[tokio::test]
async fn control_endpoints_seed_dump_and_set_faults() {
    let api = Api::start(MockConfig {
        record_requests: true,
        ..config()
    })
    .await;
    let base = api.server.base_url();
    let seed = json!({"companies": [{"company_id": "z1", "user_count": 1,
                                     "custom_attributes": {"k": "v"}}]});
    let ids: Value = api
        .client
        .post(format!("{base}/_mock/seed"))
        .json(&seed)
        .send()
        .await
        .expect("seed")
        .json()
        .await
        .expect("json");
    let id = ids["companies"][0].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let bad = api
        .client
        .post(format!("{base}/_mock/seed"))
        .body("{")
        .send()
        .await
        .expect("seed");
    assert_eq!(bad.status().as_u16(), 400);
    let faults = api
        .client
        .post(format!("{base}/_mock/faults?seed=3"))
        .json(&json!({"p_5xx": 1.0}))
        .send()
        .await
        .expect("faults");
    assert_eq!(faults.status().as_u16(), 200);
    assert_eq!(api.server.faults().p_5xx, 1.0);
    let a = api
        .call(Method::GET, "/companies?company_id=z1", None)
        .await;
    assert!(a.status >= 500);
    let state: Value = api
        .client
        .get(format!("{base}/_mock/state"))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    assert_eq!(state["companies"][0]["custom_attributes"]["k"], "v");
    assert_eq!(state["stats"]["total_requests"], 1);
    let stats: Value = api
        .client
        .get(format!("{base}/_mock/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["injected_5xx"], 1);

    // A seed larger than axum's default 2 MB body limit.
    let contacts: Vec<Value> = (0..40_000)
        .map(|i| json!({"external_id": format!("ext-{i:08}"), "email": format!("user{i:08}@example.com")}))
        .collect();
    let big = serde_json::to_vec(&json!({"contacts": contacts})).expect("json");
    assert!(big.len() > 2 << 20);
    let r = api
        .client
        .post(format!("{base}/_mock/seed"))
        .body(big)
        .send()
        .await
        .expect("seed");
    assert_eq!(r.status().as_u16(), 200);
    let req = &state["requests"][0];
    assert_eq!(req["path"], "/companies");
    assert_eq!(req["query"], "company_id=z1");
    assert_eq!(req["headers"]["intercom-version"], "2.16");
    assert!(req["headers"].get("authorization").is_none());
}

#[test]
fn background_server_serves_sync_callers() {
    let server = MockServer::start_background(config()).expect("start");
    server.seed(standard_seed()).expect("seed");
    let mut s = std::net::TcpStream::connect(server.addr()).expect("connect");
    let req = format!(
        "GET /companies?company_id=c3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nIntercom-Version: 2.11\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"company_id\":\"c3\""));
    server.shutdown();
}

/// CPU time (user + system, in seconds) used so far by this process's threads named `prefix*`.
fn threads_cpu_seconds(prefix: &str) -> f64 {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields
            .get(11)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        ticks += fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ticks as f64 / 100.0
}

/// Throughput check (run with `--ignored --nocapture`): concurrent company PUTs with an
/// occasional 100-id contact search. Measures requests per second of CPU time used by the mock's
/// own runtime threads, so the figure does not depend on other load on the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn sustains_over_2000_requests_per_second() {
    let server = MockServer::start_background(MockConfig {
        rate_limit: u32::MAX,
        ..config()
    })
    .expect("start");
    let api = Arc::new(Api::with(server));
    let mut seed = standard_seed();
    seed.companies = (0..10_000).map(|i| company(&format!("c{i}"), 1)).collect();
    seed.contacts = (0..50_000).map(|i| contact(&format!("e{i}"))).collect();
    let ids = Arc::new(api.server.seed(seed).expect("seed"));
    let cpu_before = threads_cpu_seconds("mock-intercom");
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (api, ids) = (api.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(2) {
                let i = (t * 7919 + n as usize * 31) % ids.companies.len();
                let a = if n.is_multiple_of(50) {
                    let wanted: Vec<String> = (0..100).map(|k| format!("e{}", (i + k) % 50_000)).collect();
                    let body = json!({"query": {"field": "external_id", "operator": "IN", "value": wanted},
                                      "pagination": {"per_page": 150}});
                    api.call(Method::POST, "/contacts/search", Some(body)).await
                } else {
                    let body = json!({"monthly_spend": n, "custom_attributes": {"seats": n, "plan_tier": "x"}});
                    api.call(Method::PUT, &format!("/companies/{}", ids.companies[i]), Some(body)).await
                };
                assert_eq!(a.status, 200);
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("join");
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = threads_cpu_seconds("mock-intercom") - cpu_before;
    let per_cpu_second = total as f64 / cpu.max(0.01);
    println!(
        "{total} requests in {wall:.2} s ({:.0} req/s wall); mock used {cpu:.2} CPU s → {per_cpu_second:.0} req per CPU second",
        total as f64 / wall
    );
    assert!(
        per_cpu_second > 2000.0,
        "{per_cpu_second:.0} req per mock CPU second"
    );
}
