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

// ----- Preview API: bulk updates, job GETs, company search -----

fn preview_config(task_ms: u64) -> MockConfig {
    MockConfig {
        bulk_task_delay: Duration::from_millis(task_ms),
        ..config()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Api {
    /// A request with `Intercom-Version: Preview`.
    async fn preview(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, body, Some(TOKEN), Some("Preview"))
            .await
            .expect("request")
    }

    /// Polls `GET /{kind}/bulk/{id}` until the job has finished (at most 10 s).
    async fn finished_job(&self, kind: &str, id: &str) -> Value {
        for _ in 0..500 {
            let a = self
                .preview(Method::GET, &format!("/{kind}/bulk/{id}"), None)
                .await;
            assert_eq!(a.status, 200, "{}", a.body);
            if !a.body["completed_at"].is_null() {
                return a.body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {id} did not finish");
    }

    fn companies(&self) -> Vec<Value> {
        self.server.dump()["companies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn bulk_update_answers_202_and_applies_only_after_the_delay() {
    let api = Api::start(MockConfig {
        record_requests: true,
        ..preview_config(400)
    })
    .await;
    let items = json!({"companies": [
        {"id": api.ids.companies[0], "monthly_spend": 42, "custom_attributes": {"plan_tier": "gold"}},
        {"id": api.ids.companies[2], "name": "Renamed", "remote_created_at": 1394531169,
         "update_last_request_at": true}]});
    let before = now_secs();
    let a = api
        .preview(Method::PUT, "/companies/bulk", Some(items.clone()))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let job = &a.body;
    let id = job["id"].as_str().expect("job id").to_owned();
    assert!(
        id.strip_prefix("job_v2_")
            .is_some_and(|n| n.parse::<u64>().is_ok()),
        "{id}"
    );
    assert_eq!(job["type"], "companies.bulk.job");
    assert_eq!(job["state"], "pending");
    assert_eq!(job["completed_at"], Value::Null);
    let created = job["created_at"].as_u64().expect("created_at");
    assert!((before..=now_secs()).contains(&created), "{created}");
    assert_eq!(job["updated_at"], created);
    assert_eq!(
        job["url"],
        format!("{}/companies/bulk/{id}", api.server.base_url())
    );
    let tasks = job["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0]["id"]
        .as_str()
        .is_some_and(|t| t.starts_with("task_v2_")));
    assert_eq!(tasks[0]["item_count"], 2);
    assert_eq!(tasks[0]["state"], "pending");
    assert_eq!(tasks[0]["created_at"], created);
    assert_eq!(
        (&tasks[0]["started_at"], &tasks[0]["completed_at"]),
        (&Value::Null, &Value::Null)
    );
    // Nothing applied at the 202.
    assert_eq!(api.company("c1")["monthly_spend"], 0);
    assert_eq!(api.company("c3")["name"], "Company c3");

    let done = api.finished_job("companies", &id).await;
    assert_eq!(done["state"], "completed");
    assert_eq!(done["tasks"][0]["state"], "completed");
    assert!(done["tasks"][0]["started_at"].is_u64());
    assert_eq!(done["completed_at"], done["tasks"][0]["completed_at"]);
    let c1 = api.company("c1");
    assert_eq!(
        (&c1["monthly_spend"], &c1["custom_attributes"]),
        (&json!(42), &json!({"plan_tier": "gold"}))
    );
    assert_eq!(api.company("c3")["name"], "Renamed");
    let stats = api.server.stats();
    assert_eq!(
        (
            stats.bulk_requests,
            stats.bulk_company_items,
            stats.bulk_items_failed
        ),
        (1, 2, 0)
    );
    assert!(stats.bulk_job_polls >= 1);
    assert_eq!(stats.by_route.get("PUT /companies/bulk 202"), Some(&1));
    assert_eq!(
        stats.by_route.get("GET /companies/bulk/{id} 200"),
        Some(&stats.bulk_job_polls)
    );
    assert_eq!(
        stats.company_writes, 0,
        "bulk items are not PUT /companies/{{id}}"
    );
    let recorded = api.server.requests();
    assert_eq!(
        (recorded[0].path.as_str(), recorded[0].status),
        ("/companies/bulk", 202)
    );
    assert_eq!(recorded[0].body, items);
    assert_eq!(recorded[0].headers["intercom-version"], "Preview");
    // The dump lists the job as the API renders it.
    assert_eq!(api.server.dump()["bulk_jobs"][0]["id"], id.as_str());
}

#[tokio::test]
async fn bulk_items_fail_alone_and_never_create_records() {
    let api = Api::start(MockConfig {
        fail_company_ids: vec!["c2".to_owned()],
        ..preview_config(100)
    })
    .await;
    let long = "x".repeat(256);
    let a = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [
                {"id": api.ids.companies[0], "monthly_spend": 5, "not_listed": 1},
                {"id": "ffffffffffffffffffffffff", "name": "Ghost", "monthly_spend": 9},
                {"id": api.ids.companies[2], "custom_attributes": {"nope": 1}},
                {"id": api.ids.companies[2], "custom_attributes": {"plan_tier": long}},
                {"id": api.ids.companies[2], "custom_attributes": {"seats": "3"}},
                {"id": api.ids.companies[1], "monthly_spend": 3},
                {"id": api.ids.companies[2], "custom_attributes": {"seats": 4}}]})),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let id = a.body["id"].as_str().expect("id").to_owned();
    let done = api.finished_job("companies", &id).await;
    assert_eq!(done["state"], "completed_with_errors");
    assert_eq!(done["tasks"][0]["state"], "completed_with_errors");
    assert_eq!(done["tasks"][0]["item_count"], 7);
    // Which item failed is not reported.
    assert!(done["tasks"][0].get("errors").is_none());
    let companies = api.companies();
    assert_eq!(
        companies.len(),
        3,
        "an unknown id must not create a company"
    );
    assert!(companies.iter().all(|c| c["name"] != "Ghost"));
    assert_eq!(api.company("c1")["monthly_spend"], 5);
    assert_eq!(api.company("c2")["monthly_spend"], 0, "fail_company_ids");
    assert_eq!(api.company("c3")["custom_attributes"], json!({"seats": 4}));
    let stats = api.server.stats();
    assert_eq!((stats.bulk_company_items, stats.bulk_items_failed), (2, 5));

    // Contacts: a merged contact fails its item, the other is applied.
    let a = api
        .preview(
            Method::PUT,
            "/contacts/bulk",
            Some(json!({"contacts": [
                {"id": api.ids.contacts[3], "custom_attributes": {"score": 1}},
                {"id": api.ids.contacts[0], "custom_attributes": {"score": 8}, "tags": {"add": [{"id": "1"}]},
                 "language_override": "fr", "role": "lead"}]})),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["type"], "contacts.bulk.job");
    let id = a.body["id"].as_str().expect("id").to_owned();
    let done = api.finished_job("contacts", &id).await;
    assert_eq!(done["state"], "completed_with_errors");
    let contacts = api.server.dump()["contacts"].clone();
    assert_eq!(contacts[0]["custom_attributes"], json!({"score": 8}));
    assert_eq!(contacts[0]["role"], "user", "role is not a listed field");
    assert_eq!(contacts[3]["custom_attributes"], json!({}));
    let stats = api.server.stats();
    assert_eq!((stats.bulk_contact_items, stats.bulk_items_failed), (1, 6));
    // All items fine: completed.
    let a = api
        .preview(
            Method::PUT,
            "/contacts/bulk",
            Some(json!({"contacts": [{"id": api.ids.contacts[1], "name": "N"}]})),
        )
        .await;
    let id = a.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        api.finished_job("contacts", &id).await["state"],
        "completed"
    );
}

#[tokio::test]
async fn bulk_update_validation_errors() {
    let api = Api::start(preview_config(100)).await;
    let cid = api.ids.companies[0].clone();
    let many: Vec<Value> = (0..101).map(|_| json!({"id": cid})).collect();
    for (kind, body, status, code, message) in [
        (
            "companies",
            json!({}),
            422,
            "field_not_found",
            "companies field must be supplied",
        ),
        (
            "contacts",
            json!({"job": {"id": "job_v2_1"}}),
            422,
            "field_not_found",
            "contacts field must be supplied",
        ),
        (
            "companies",
            json!({"companies": {"id": cid}}),
            422,
            "type_mismatch",
            "companies must be an array",
        ),
        (
            "companies",
            json!({"companies": many}),
            422,
            "parameter_invalid",
            "maximum number of companies per request is 100",
        ),
        (
            "contacts",
            json!({"contacts": many}),
            422,
            "parameter_invalid",
            "maximum number of contacts per request is 100",
        ),
        (
            "companies",
            json!({"companies": []}),
            422,
            "parameter_invalid",
            "companies must not be empty",
        ),
        (
            "companies",
            json!({"companies": [{"name": "x"}, 5]}),
            422,
            "type_mismatch",
            "each company must be an object",
        ),
        (
            "contacts",
            json!({"contacts": ["x"]}),
            422,
            "type_mismatch",
            "each contact must be an object",
        ),
        (
            "companies",
            json!({"companies": [{"id": cid}, {"name": "x"}]}),
            422,
            "field_not_found",
            "companies must be identified by id",
        ),
        (
            "contacts",
            json!({"contacts": [{"id": 5}]}),
            422,
            "field_not_found",
            "contacts must be identified by id",
        ),
        (
            "companies",
            json!({"companies": [{"id": cid}], "job": {"id": "job_v2_99"}}),
            404,
            "job_not_found",
            "job job_v2_99 not found",
        ),
        (
            "companies",
            json!({"companies": [{"id": cid}], "job": "job_v2_1"}),
            422,
            "type_mismatch",
            "job must be an object",
        ),
        (
            "companies",
            json!({"companies": [{"id": cid}], "job": {}}),
            422,
            "field_not_found",
            "job must be identified by id",
        ),
        (
            "companies",
            json!({"companies": [{"id": cid}], "extra": 1}),
            400,
            "bad_request",
            "bad 'extra' parameter",
        ),
        (
            "companies",
            json!([{"id": cid}]),
            400,
            "bad_request",
            "Request body must be a JSON object",
        ),
    ] {
        let a = api
            .preview(Method::PUT, &format!("/{kind}/bulk"), Some(body.clone()))
            .await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert_eq!(error_code(&a), code, "{body}");
        assert_eq!(a.body["errors"][0]["message"], message, "{body}");
    }
    let bad_json = api
        .client
        .put(format!("{}/companies/bulk", api.server.base_url()))
        .bearer_auth(TOKEN)
        .header("Intercom-Version", "Preview")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(bad_json.status().as_u16(), 400);
    assert_eq!(
        api.server.dump()["bulk_jobs"],
        json!([]),
        "no job from a refused request"
    );

    // A job of the other kind is not found, on PUT and GET; an unknown job id on GET too.
    let a = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [{"id": cid}]})),
        )
        .await;
    let id = a.body["id"].as_str().expect("id").to_owned();
    let other = api
        .preview(
            Method::PUT,
            "/contacts/bulk",
            Some(json!({"contacts": [{"id": api.ids.contacts[0]}], "job": {"id": id}})),
        )
        .await;
    assert_eq!((other.status, error_code(&other)), (404, "job_not_found"));
    assert_eq!(
        other.body["errors"][0]["message"],
        format!("job {id} not found")
    );
    for path in [
        format!("/contacts/bulk/{id}"),
        "/companies/bulk/job_v2_404".to_owned(),
    ] {
        let a = api.preview(Method::GET, &path, None).await;
        assert_eq!((a.status, error_code(&a)), (404, "job_not_found"), "{path}");
    }
    let stats = api.server.stats();
    assert_eq!((stats.bulk_requests, stats.bulk_job_polls), (1, 0));
}

#[tokio::test]
async fn bulk_jobs_take_tasks_until_full_or_finished() {
    let api = Api::start(MockConfig {
        bulk_job_tasks: 2,
        ..preview_config(300)
    })
    .await;
    let item = |i: usize, spend: i64| json!({"id": api.ids.companies[i], "monthly_spend": spend});
    let first = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [item(0, 1)]})),
        )
        .await;
    let id = first.body["id"].as_str().expect("id").to_owned();
    let appended = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [item(0, 2), item(1, 2)], "job": {"id": id}})),
        )
        .await;
    assert_eq!(appended.status, 202, "{}", appended.body);
    assert_eq!(appended.body["id"], id.as_str());
    let tasks = appended.body["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["id"], first.body["tasks"][0]["id"]);
    assert_eq!(
        (&tasks[0]["item_count"], &tasks[1]["item_count"]),
        (&json!(1), &json!(2))
    );
    assert_ne!(tasks[0]["id"], tasks[1]["id"]);
    // Full at 2 tasks.
    let full = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [item(2, 3)], "job": {"id": id}})),
        )
        .await;
    assert_eq!((full.status, error_code(&full)), (403, "forbidden"));
    assert_eq!(
        full.body["errors"][0]["message"],
        format!("job {id} is closed for new task updates")
    );
    // Without `job`, always a new job.
    let other = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [item(2, 4)]})),
        )
        .await;
    let other_id = other.body["id"].as_str().expect("id").to_owned();
    assert_ne!(other_id, id);
    assert_eq!(other.body["tasks"].as_array().map(Vec::len), Some(1));
    // The tasks of the first job applied in order.
    let done = api.finished_job("companies", &id).await;
    assert_eq!(done["tasks"].as_array().map(Vec::len), Some(2));
    assert_eq!(api.company("c1")["monthly_spend"], 2);
    assert_eq!(api.company("c2")["monthly_spend"], 2);
    // A finished job (1 task of 2) is closed too.
    api.finished_job("companies", &other_id).await;
    let late = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [item(2, 5)], "job": {"id": other_id}})),
        )
        .await;
    assert_eq!((late.status, error_code(&late)), (403, "forbidden"));
    assert_eq!(api.company("c3")["monthly_spend"], 4);
    assert_eq!(api.server.stats().bulk_requests, 3);
}

#[tokio::test]
async fn bulk_stuck_keeps_tasks_running_until_cleared() {
    let api = Api::start(preview_config(60)).await;
    let base = api.server.base_url();
    let set = |stuck: bool| {
        api.client
            .post(format!("{base}/_mock/faults"))
            .json(&json!({"bulk_stuck": stuck}))
            .send()
    };
    assert_eq!(set(true).await.expect("faults").status().as_u16(), 200);
    assert!(api.server.faults().bulk_stuck);
    let a = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [{"id": api.ids.companies[0], "monthly_spend": 11}]})),
        )
        .await;
    let id = a.body["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = api
        .preview(Method::GET, &format!("/companies/bulk/{id}"), None)
        .await;
    assert_eq!(job.body["state"], "running");
    assert_eq!(job.body["tasks"][0]["state"], "running");
    assert!(job.body["tasks"][0]["started_at"].is_u64());
    assert_eq!(job.body["completed_at"], Value::Null);
    assert_eq!(api.company("c1")["monthly_spend"], 0);
    assert_eq!(api.server.stats().bulk_company_items, 0);
    assert_eq!(set(false).await.expect("faults").status().as_u16(), 200);
    let done = api.finished_job("companies", &id).await;
    assert_eq!(done["state"], "completed");
    assert_eq!(api.company("c1")["monthly_spend"], 11);
}

#[tokio::test]
async fn no_preview_refuses_preview_requests_and_has_no_preview_routes() {
    let api = Api::start(MockConfig {
        preview: false,
        ..preview_config(50)
    })
    .await;
    let bulk = json!({"companies": [{"id": api.ids.companies[0], "monthly_spend": 1}]});
    for (method, path, body) in [
        (Method::GET, "/data_attributes".to_owned(), None),
        (
            Method::PUT,
            "/companies/bulk".to_owned(),
            Some(bulk.clone()),
        ),
        (Method::GET, "/companies/bulk/job_v2_1".to_owned(), None),
        (
            Method::POST,
            "/companies/search".to_owned(),
            Some(json!({"query": {}})),
        ),
        (
            Method::PUT,
            format!("/companies/{}", api.ids.companies[0]),
            Some(json!({"monthly_spend": 1})),
        ),
    ] {
        let a = api.preview(method.clone(), &path, body).await;
        assert_eq!(
            (a.status, error_code(&a)),
            (400, "intercom_version_invalid"),
            "{method} {path}"
        );
        assert_eq!(
            a.body["errors"][0]["message"],
            "Requested API version 'Preview' is not available for this workspace"
        );
    }
    assert_eq!(api.company("c1")["monthly_spend"], 0);
    let a = api.call(Method::PUT, "/companies/bulk", Some(bulk)).await;
    assert_eq!((a.status, error_code(&a)), (404, "company_not_found"));
    let stats = api.server.stats();
    assert_eq!(stats.by_route.get("PUT /companies/{id} 400"), Some(&2));
    assert_eq!(stats.by_route.get("PUT /companies/{id} 404"), Some(&1));
    assert_eq!(stats.by_route.get("GET (unknown) 400"), Some(&1));
    assert_eq!(stats.bulk_requests, 0);
}

#[tokio::test]
async fn other_versions_do_not_have_the_preview_routes() {
    let api = Api::start(preview_config(50)).await;
    let companies = json!({"companies": [{"id": api.ids.companies[0], "monthly_spend": 1}]});
    let contacts = json!({"contacts": [{"id": api.ids.contacts[0], "name": "x"}]});
    let search = json!({"query": {"field": "company_id", "operator": "=", "value": "c1"}});
    for version in [Some("2.16"), Some("2.11"), None, Some("Unstable")] {
        let call = |method: Method, path: &'static str, body: Option<Value>| {
            api.call_with(method, path, body, Some(TOKEN), version)
        };
        let a = call(Method::PUT, "/companies/bulk", Some(companies.clone()))
            .await
            .expect("put");
        assert_eq!(
            (a.status, error_code(&a)),
            (404, "company_not_found"),
            "{version:?}"
        );
        let a = call(Method::PUT, "/contacts/bulk", Some(contacts.clone()))
            .await
            .expect("put");
        assert_eq!(
            (a.status, error_code(&a)),
            (404, "not_found"),
            "{version:?}"
        );
        assert_eq!(a.body["errors"][0]["message"], "User Not Found");
        for (method, path, body) in [
            (Method::GET, "/companies/bulk/job_v2_1", None),
            (Method::GET, "/contacts/bulk/job_v2_1", None),
            (Method::POST, "/companies/search", Some(search.clone())),
        ] {
            let a = call(method, path, body).await.expect("request");
            assert_eq!(
                (a.status, error_code(&a)),
                (404, "not_found"),
                "{version:?} {path}"
            );
            assert_eq!(a.body["errors"][0]["message"], "Resource Not Found");
        }
    }
    assert_eq!(api.server.dump()["bulk_jobs"], json!([]));
    // The same requests with Preview.
    let a = api
        .preview(Method::PUT, "/companies/bulk", Some(companies))
        .await;
    assert_eq!(a.status, 202);
    let a = api
        .preview(
            Method::GET,
            &format!("/companies/bulk/{}", a.body["id"].as_str().unwrap_or("")),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        api.preview(Method::PUT, "/contacts/bulk", Some(contacts))
            .await
            .status,
        202
    );
    assert_eq!(
        api.preview(Method::POST, "/companies/search", Some(search))
            .await
            .status,
        200
    );
    let stats = api.server.stats();
    assert_eq!(stats.by_route.get("PUT /companies/{id} 404"), Some(&4));
    assert_eq!(stats.by_route.get("POST (unknown) 404"), Some(&4));
    assert_eq!(stats.by_route.get("POST /companies/search 200"), Some(&1));
}

#[tokio::test]
async fn company_search_in_over_company_id_skips_companies_without_users_and_paginates() {
    let api = Api::start(config()).await;
    let mut seed = standard_seed();
    // c00..c39; every 4th has no users.
    seed.companies = (0..40)
        .map(|i| company(&format!("c{i:02}"), if i % 4 == 0 { 0 } else { 2 }))
        .collect();
    let ids = api.server.seed(seed).expect("seed");
    let wanted: Vec<String> = (0..30)
        .rev()
        .map(|i| format!("c{i:02}"))
        .chain(["missing".to_owned()])
        .collect();
    let expected: Vec<String> = (0..30)
        .filter(|i| i % 4 != 0)
        .map(|i| format!("c{i:02}"))
        .collect();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut pagination = json!({"per_page": 5});
        if let Some(a) = &after {
            pagination["starting_after"] = json!(a);
        }
        let body = json!({"query": {"field": "company_id", "operator": "IN", "value": wanted},
                          "pagination": pagination, "sort": {"field": "name", "order": "ascending"}});
        let a = api
            .preview(Method::POST, "/companies/search", Some(body))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["type"], "list");
        assert_eq!(a.body["total_count"], expected.len());
        assert_eq!(a.body["pages"]["type"], "pages");
        assert_eq!(a.body["pages"]["per_page"], 5);
        assert_eq!(a.body["pages"]["total_pages"], 5);
        pages += 1;
        assert_eq!(a.body["pages"]["page"], pages);
        for c in a.body["data"].as_array().expect("data") {
            assert_eq!(c["type"], "company");
            seen.push(c["company_id"].as_str().unwrap_or_default().to_owned());
        }
        match a.body["pages"]["next"]["starting_after"].as_str() {
            Some(next) => {
                assert_eq!(a.body["pages"]["next"]["per_page"], 5);
                after = Some(next.to_owned());
            }
            None => {
                assert!(a.body["pages"].get("next").is_none(), "{}", a.body);
                break;
            }
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, expected);
    // A company as the other endpoints render it.
    let one = json!({"query": {"field": "company_id", "operator": "=", "value": "c01"}});
    let a = api
        .preview(Method::POST, "/companies/search", Some(one))
        .await;
    assert_eq!(a.body["data"], json!([api.company("c01")]));
    assert_eq!(a.body["data"][0]["id"], ids.companies[1].as_str());
    // No users: left out even when named exactly.
    let zero = json!({"query": {"operator": "OR", "value": [
        {"field": "company_id", "operator": "=", "value": "c00"},
        {"field": "id", "operator": "=", "value": ids.companies[4]},
        {"field": "name", "operator": "=", "value": "Company c05"}]}});
    let a = api
        .preview(Method::POST, "/companies/search", Some(zero))
        .await;
    assert_eq!(a.body["total_count"], 1);
    assert_eq!(a.body["data"][0]["company_id"], "c05");
    // Scans with `^` / `$`; 15 per page by default.
    let starts = json!({"query": {"field": "name", "operator": "^", "value": "Company c3"}});
    let a = api
        .preview(Method::POST, "/companies/search", Some(starts))
        .await;
    assert_eq!(a.body["total_count"], 8, "c30..c39 but c32, c36");
    let all = json!({"query": {"field": "name", "operator": "$", "value": "9"}});
    let a = api
        .preview(Method::POST, "/companies/search", Some(all))
        .await;
    assert_eq!(a.body["total_count"], 4, "c09, c19, c29, c39");
    let all = json!({"query": {"field": "company_id", "operator": "NIN", "value": ["c01"]}});
    let a = api
        .preview(Method::POST, "/companies/search", Some(all))
        .await;
    assert_eq!(a.body["total_count"], 29);
    assert_eq!(a.body["pages"]["per_page"], 15);
    assert_eq!(a.body["data"].as_array().map(Vec::len), Some(15));
    assert_eq!(a.body["pages"]["total_pages"], 2);
    assert!(a.body["pages"]["next"]["starting_after"].is_string());
    assert_eq!(api.server.stats().company_searches, 10);
}

#[tokio::test]
async fn company_search_errors() {
    let api = Api::start(config()).await;
    let q = |field: &str| json!({"field": field, "operator": "=", "value": "x"});
    for (body, code, message) in [
        (json!({"query": q("segment_id")}), "invalid_field", "segment_id is not a valid search field"),
        (json!({"query": q("plan.id")}), "invalid_field", "plan.id is not a valid search field"),
        (json!({"query": {"operator": "AND", "value": [q("name"), q("email")]}}), "invalid_field", "email is not a valid search field"),
        (json!({"query": q("name"), "sort": {"field": "name", "order": "up"}}), "invalid_sort_order", "Invalid sort order 'up'. Must be one of: ascending, descending"),
        (json!({"pagination": {"per_page": 5}}), "parameter_invalid", "query is required"),
        (json!({"query": q("name"), "pagination": {"per_page": 151}}), "parameter_invalid", "per_page must be between 1 and 150"),
        (json!({"query": q("name"), "pagination": {"starting_after": "nope"}}), "client_error", "Invalid starting_after param. Please try again using a starting_after value from a paginated response"),
        (json!({"query": {"operator": "OR", "value": vec![q("name"); 16]}}), "parameter_invalid", "OR groups need 1 to 15 filters"),
    ] {
        let a = api.preview(Method::POST, "/companies/search", Some(body.clone())).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(error_code(&a), code, "{body}");
        assert_eq!(a.body["errors"][0]["message"], message, "{body}");
    }
    assert_eq!(api.server.stats().company_searches, 0);
    // Contact search keeps its own fields and error.
    let a = api
        .call(
            Method::POST,
            "/contacts/search",
            Some(json!({"query": q("company_id")})),
        )
        .await;
    assert_eq!((a.status, error_code(&a)), (400, "parameter_invalid"));
}

#[tokio::test]
async fn recreate_gives_a_company_a_new_id_and_drops_its_data() {
    let api = Api::start(preview_config(50)).await;
    let old = api.ids.companies[0].clone();
    let path = format!("/companies/{old}");
    let a = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"monthly_spend": 9, "plan": "pro", "custom_attributes": {"plan_tier": "gold"}})),
        )
        .await;
    assert_eq!(a.status, 200);
    let edit = api
        .client
        .post(format!("{}/_mock/edit", api.server.base_url()))
        .json(&json!({"companies": [{"company_id": "c1", "recreate": true}]}))
        .send()
        .await
        .expect("edit");
    assert_eq!(edit.status().as_u16(), 200);
    let c1 = api.company("c1");
    let new = c1["id"].as_str().expect("id").to_owned();
    assert_ne!(new, old);
    assert_eq!(new.len(), 24);
    assert_eq!(
        (&c1["name"], &c1["user_count"]),
        (&json!("Company c1"), &json!(3))
    );
    assert_eq!(
        (&c1["monthly_spend"], &c1["custom_attributes"]),
        (&json!(0), &json!({}))
    );
    assert_eq!(c1["plan"], json!({}));
    assert_eq!(api.companies().len(), 3);
    // The old id is unknown everywhere.
    let a = api
        .call(Method::PUT, &path, Some(json!({"monthly_spend": 1})))
        .await;
    assert_eq!((a.status, error_code(&a)), (404, "company_not_found"));
    let by_id = |id: &str| json!({"query": {"field": "id", "operator": "=", "value": id}});
    let a = api
        .preview(Method::POST, "/companies/search", Some(by_id(&old)))
        .await;
    assert_eq!(a.body["total_count"], 0);
    let a = api
        .preview(Method::POST, "/companies/search", Some(by_id(&new)))
        .await;
    assert_eq!(a.body["data"][0]["company_id"], "c1");
    let a = api
        .preview(
            Method::PUT,
            "/companies/bulk",
            Some(json!({"companies": [{"id": old, "monthly_spend": 2}, {"id": new, "monthly_spend": 3}]})),
        )
        .await;
    let id = a.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        api.finished_job("companies", &id).await["state"],
        "completed_with_errors"
    );
    assert_eq!(api.company("c1")["monthly_spend"], 3);
    assert_eq!(api.companies().len(), 3);
    let a = api
        .call(
            Method::PUT,
            &format!("/companies/{new}"),
            Some(json!({"monthly_spend": 4})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], new.as_str());
}
