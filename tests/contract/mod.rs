//! A small request validator for the vendored part of Intercom's OpenAPI description
//! (`tests/data/intercom-openapi-subset.json`, see `tests/data/README.md`).
//!
//! It implements the JSON-Schema subset that description uses — `type`, `properties`,
//! `required`, `items`, `enum`, `nullable`, `oneOf`, `anyOf`, `allOf`, `additionalProperties`,
//! `minLength`/`maxLength`/`maxItems`, `$ref` (local) — with OpenAPI 3.0 meanings: `null` is
//! valid only where `nullable: true`; `integer` means a JSON integer (`1.0` is not one).
//! `format`, `default`, `example` and descriptions are ignored.
//!
//! One rule is stricter than JSON Schema: a request-body object whose schema lists
//! `properties` (directly or in its `oneOf`/`anyOf`/`allOf` branches) and says nothing about
//! `additionalProperties` is closed — an undeclared key is an error. Intercom answers such keys
//! with 400 "bad 'x' parameter", so a typo in a body the loader sends must fail the test.
#![allow(dead_code)]

use serde_json::{Map, Value};

pub const SUBSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/intercom-openapi-subset.json"
);

pub struct Spec {
    pub doc: Value,
}

/// A request matched to an operation.
pub struct Matched<'a> {
    /// `"PUT /companies/{company_id}"`.
    pub label: String,
    pub op: &'a Value,
    /// Path parameter name → raw segment.
    pub path_params: Vec<(String, String)>,
}

/// The Preview description's bulk operations and company search (see `tests/data/README.md`).
pub const PREVIEW_SUBSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/intercom-openapi-preview-subset.json"
);

impl Spec {
    pub fn load() -> Spec {
        Spec::load_file(SUBSET)
    }

    /// The Preview subset, against which requests with `Intercom-Version: Preview` are checked.
    pub fn load_preview() -> Spec {
        Spec::load_file(PREVIEW_SUBSET)
    }

    fn load_file(path: &str) -> Spec {
        let text = std::fs::read_to_string(path).expect("read the vendored OpenAPI subset");
        Spec {
            doc: serde_json::from_str(&text).expect("the OpenAPI subset is JSON"),
        }
    }

    /// Every operation in the subset, as `"METHOD /template"`.
    pub fn operations(&self) -> Vec<String> {
        let mut ops = Vec::new();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    ops.push(format!("{} {template}", method.to_uppercase()));
                }
            }
        }
        ops
    }

    /// The operation for `method path`: literal segments must be equal, `{param}` takes any
    /// non-empty segment; the template with the most literal segments wins.
    pub fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(usize, Matched<'_>)> = None;
        for (template, item) in self.doc["paths"].as_object()? {
            let Some(op) = item.get(method.to_lowercase()) else {
                continue;
            };
            let tsegs: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut params = Vec::new();
            let mut literal = 0;
            let fits = tsegs.iter().zip(&segs).all(|(t, s)| {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    params.push((name.to_owned(), percent_decode(s)));
                    !s.is_empty()
                } else {
                    literal += 1;
                    t == s
                }
            });
            if fits && best.as_ref().is_none_or(|(l, _)| literal > *l) {
                let label = format!("{} {template}", method.to_uppercase());
                best = Some((
                    literal,
                    Matched {
                        label,
                        op,
                        path_params: params,
                    },
                ));
            }
        }
        best.map(|(_, m)| m)
    }

    /// Checks a request against its operation: path and query parameters (declared, typed,
    /// required present), the `Intercom-Version` header (required by us, typed by the spec),
    /// `Content-Type` and the JSON body against the request body schema. Header names in
    /// `headers` are lower case. Returns the operation's label, or every problem found.
    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &Map<String, Value>,
        body: &Value,
    ) -> Result<String, Vec<String>> {
        let Some(m) = self.find(method, path) else {
            return Err(vec![format!(
                "{method} {path}: no such operation in the description subset"
            )]);
        };
        let mut errors = Vec::new();
        let params: Vec<&Value> = m.op["parameters"]
            .as_array()
            .map(|a| a.iter().map(|p| self.deref(p)).collect())
            .unwrap_or_default();
        let param = |name: &str, place: &str| {
            params
                .iter()
                .find(|p| p["in"] == place && p["name"].as_str() == Some(name))
                .copied()
        };
        // Path.
        for (name, raw) in &m.path_params {
            match param(name, "path") {
                Some(p) => self.check_param(p, raw, &format!("path {name}"), &mut errors),
                None => errors.push(format!("path parameter {name} is not declared")),
            }
        }
        // Query.
        let pairs = parse_query(query.unwrap_or(""));
        for (name, raw) in &pairs {
            match param(name, "query") {
                Some(p) => self.check_param(p, raw, &format!("query {name}"), &mut errors),
                None => errors.push(format!("query parameter {name:?} is not declared")),
            }
        }
        for p in &params {
            let name = p["name"].as_str().unwrap_or_default();
            let present = match p["in"].as_str() {
                Some("query") => pairs.iter().any(|(k, _)| k == name),
                Some("header") => headers.contains_key(&name.to_lowercase()),
                _ => true,
            };
            if p["required"] == true && !present {
                errors.push(format!("required {} parameter {name} is missing", p["in"]));
            }
        }
        // Headers: every operation declares Intercom-Version; we always send it.
        for p in params.iter().filter(|p| p["in"] == "header") {
            let name = p["name"].as_str().unwrap_or_default();
            match headers.get(&name.to_lowercase()).and_then(Value::as_str) {
                Some(v) => self.check_param(p, v, &format!("header {name}"), &mut errors),
                None => errors.push(format!("header {name} is missing")),
            }
        }
        // Body.
        match (m.op.get("requestBody").map(|b| self.deref(b)), body) {
            (None, Value::Null) => {}
            (None, _) => errors.push("a body was sent, but the operation takes none".into()),
            (Some(rb), Value::Null) => {
                if rb["required"] == true {
                    errors.push("the request body is required".into());
                }
            }
            (Some(rb), body) => {
                let ctype = headers
                    .get("content-type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let media = ctype.split(';').next().unwrap_or("").trim();
                match rb["content"].get(media) {
                    None => errors.push(format!("content-type {ctype:?} is not accepted")),
                    Some(c) => self.validate(&c["schema"], body, "body", true, &mut errors),
                }
            }
        }
        if errors.is_empty() {
            Ok(m.label)
        } else {
            Err(errors
                .into_iter()
                .map(|e| format!("{}: {e}", m.label))
                .collect())
        }
    }

    /// A parameter value (a string on the wire) against the parameter's schema.
    fn check_param(&self, p: &Value, raw: &str, at: &str, errors: &mut Vec<String>) {
        let schema = self.deref(&p["schema"]);
        let value = match schema["type"].as_str() {
            Some("integer") => raw.parse::<i64>().map(Value::from).ok(),
            Some("number") => raw.parse::<f64>().ok().map(Value::from),
            Some("boolean") => match raw {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            _ => Some(Value::String(raw.to_owned())),
        };
        match value {
            Some(v) => self.validate(&p["schema"], &v, at, false, errors),
            None => errors.push(format!("{at}: {raw:?} is not a {}", schema["type"])),
        }
    }

    /// `$ref` → its target (local refs only), repeatedly.
    pub fn deref<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("only local $refs");
            schema = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        schema
    }

    /// Validates `value` against `schema`; problems are pushed as `"at: what"`. `closed`: an
    /// object schema that lists properties rejects undeclared keys (see the module doc).
    pub fn validate(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        closed: bool,
        errors: &mut Vec<String>,
    ) {
        let s = self.deref(schema);
        if value.is_null() && s["nullable"] == true {
            return;
        }
        if let Some(t) = s["type"].as_str() {
            let ok = match t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                other => panic!("unknown type {other} at {at}"),
            };
            if !ok {
                errors.push(format!("{at}: expected {t}, got {}", short(value)));
                return;
            }
        } else if value.is_null() && !has_branches(s) && s.get("enum").is_none() {
            // No type and no branches: anything but an undeclared null is fine.
            if s.as_object().is_some_and(|o| !o.is_empty()) {
                errors.push(format!("{at}: null is not allowed here (not nullable)"));
            }
            return;
        }
        if let Some(options) = s["enum"].as_array() {
            if !options.contains(value) {
                errors.push(format!("{at}: {} is not one of {options:?}", short(value)));
            }
        }
        if let Value::String(text) = value {
            let chars = text.chars().count() as u64;
            if s["minLength"].as_u64().is_some_and(|n| chars < n) {
                errors.push(format!("{at}: shorter than minLength {}", s["minLength"]));
            }
            if s["maxLength"].as_u64().is_some_and(|n| chars > n) {
                errors.push(format!("{at}: longer than maxLength {}", s["maxLength"]));
            }
        }
        if let Value::Array(items) = value {
            if s["maxItems"]
                .as_u64()
                .is_some_and(|n| items.len() as u64 > n)
            {
                errors.push(format!("{at}: more than maxItems {}", s["maxItems"]));
            }
            if let Some(item) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    self.validate(item, v, &format!("{at}[{i}]"), closed, errors);
                }
            }
        }
        if let Value::Object(obj) = value {
            let props = s["properties"].as_object();
            for key in s["required"].as_array().into_iter().flatten() {
                if !obj.contains_key(key.as_str().unwrap_or_default()) {
                    errors.push(format!("{at}: required property {key} is missing"));
                }
            }
            let declared = self.declared_keys(s);
            for (k, v) in obj {
                let here = format!("{at}.{k}");
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    self.validate(p, v, &here, closed, errors);
                } else {
                    match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errors.push(format!("{at}: property {k:?} is not allowed"))
                        }
                        Some(Value::Bool(true)) => {}
                        Some(extra) => self.validate(extra, v, &here, closed, errors),
                        None => {
                            if closed && !declared.is_empty() && !declared.contains(&k.as_str()) {
                                errors.push(format!("{at}: property {k:?} is not declared"));
                            }
                        }
                    }
                }
            }
        }
        if let Some(all) = s["allOf"].as_array() {
            for (i, b) in all.iter().enumerate() {
                let closed = closed && self.deref(b)["type"] == "object";
                self.validate(b, value, &format!("{at}<allOf {i}>"), closed, errors);
            }
        }
        for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            let Some(branches) = s[keyword].as_array() else {
                continue;
            };
            let mut passed = 0;
            let mut why = Vec::new();
            for (i, b) in branches.iter().enumerate() {
                let mut errs = Vec::new();
                // A branch that is a whole object schema is closed like any other; a partial
                // one (no `type`: create_data_attribute lists `data_type` only in its branches,
                // the branches only that) is not — the parent checks the keys it declares.
                let closed = closed && self.deref(b)["type"] == "object";
                self.validate(b, value, &format!("{at}<{keyword} {i}>"), closed, &mut errs);
                if errs.is_empty() {
                    passed += 1;
                } else {
                    why.extend(errs);
                }
            }
            if passed == 0 || (exactly_one && passed > 1) {
                errors.push(format!(
                    "{at}: {passed} of {} {keyword} branches match ({})",
                    branches.len(),
                    why.join("; ")
                ));
            }
        }
    }

    /// Keys declared by `properties` of the schema and of its oneOf/anyOf/allOf branches.
    fn declared_keys<'a>(&'a self, s: &'a Value) -> Vec<&'a str> {
        let mut keys: Vec<&str> = s["properties"]
            .as_object()
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for kw in ["oneOf", "anyOf", "allOf"] {
            for b in s[kw].as_array().into_iter().flatten() {
                let b = self.deref(b);
                if let Some(p) = b["properties"].as_object() {
                    keys.extend(p.keys().map(String::as_str));
                }
            }
        }
        keys
    }
}

fn has_branches(s: &Value) -> bool {
    ["oneOf", "anyOf", "allOf"]
        .iter()
        .any(|k| s.get(*k).is_some())
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// `a=1&b=x%20y` → pairs, percent- and `+`-decoded.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
