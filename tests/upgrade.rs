//! A database written by intercom-push 0.1 with schema 1 (a row per child row; `payloads` and
//! `sync_state` with JSON payloads) is upgraded in place: what Intercom accepted survives,
//! hashes included, so the next run sends nothing for unchanged records.

mod common;

use common::{manifest_dir, Workspace};
use intercom_push::transform::hash::payload_hash;
use intercom_push::transform::mapping::MappingSettings;
use serde_json::Value;

/// schema.sql as of schema 1 (commit f07dec3), trimmed to the tables the upgrade reads or drops.
const SCHEMA_1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE accounts (account_key INTEGER PRIMARY KEY, external_id TEXT NOT NULL UNIQUE, vitally_id TEXT UNIQUE, owner_ref TEXT, source_line INTEGER NOT NULL, fields TEXT NOT NULL);
CREATE TABLE account_fields (name TEXT PRIMARY KEY, kind TEXT NOT NULL, position INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE users (user_key INTEGER PRIMARY KEY, vitally_id TEXT, external_id TEXT, email TEXT, record_key TEXT NOT NULL, source_line INTEGER NOT NULL);
CREATE TABLE elements (element_key INTEGER PRIMARY KEY, source_id TEXT, name TEXT NOT NULL UNIQUE);
CREATE TABLE element_counts (account_key INTEGER NOT NULL, element_key INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (account_key, element_key)) WITHOUT ROWID;
CREATE TABLE success_metrics (metric_key INTEGER PRIMARY KEY, source_id TEXT, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL DEFAULT 'empty');
CREATE TABLE metric_values (account_key INTEGER NOT NULL, metric_key INTEGER NOT NULL, value TEXT NOT NULL, PRIMARY KEY (account_key, metric_key)) WITHOUT ROWID;
CREATE TABLE account_labels (account_key INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (account_key, kind, name)) WITHOUT ROWID;
CREATE TABLE payloads (payload_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, record_key TEXT NOT NULL, payload TEXT NOT NULL, hash BLOB NOT NULL, UNIQUE (kind, record_key));
CREATE TABLE attributes (model TEXT NOT NULL, name TEXT NOT NULL, data_type TEXT NOT NULL, source TEXT NOT NULL, PRIMARY KEY (model, name)) WITHOUT ROWID;
CREATE TABLE sync_state (kind TEXT NOT NULL, record_key TEXT NOT NULL, intercom_id TEXT, pushed_hash BLOB, pushed_payload TEXT, pushed_at TEXT, status TEXT, last_error TEXT, failures INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (kind, record_key));
CREATE TABLE known_attributes (model TEXT NOT NULL, name TEXT NOT NULL, data_type TEXT NOT NULL, first_seen TEXT NOT NULL, PRIMARY KEY (model, name)) WITHOUT ROWID;
CREATE TABLE runs (run_id INTEGER PRIMARY KEY, command TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, exit_code INTEGER, report TEXT);
INSERT INTO meta VALUES ('schema_version', '1'), ('extract_version', '7'), ('payload_extract_version', '7');
";

/// A schema-1 database whose sync state says Intercom accepted every record of
/// `fixtures/export` as `fixtures/export.plan.ndjson` has it, except `acme`, accepted with an
/// older health score, and one company that has left the export.
fn schema_1_database(ws: &Workspace) {
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    conn.execute_batch(SCHEMA_1).unwrap();
    let version = MappingSettings::default().version();
    let golden =
        std::fs::read_to_string(manifest_dir().join("fixtures/export.plan.ndjson")).unwrap();
    for line in golden.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = v["type"].as_str().unwrap().to_string();
        v.as_object_mut().unwrap().remove("type");
        let record_key = if kind == "company" {
            v["company_id"].as_str().unwrap().to_string()
        } else if let Some(id) = v["external_id"].as_str() {
            format!("e:{id}")
        } else {
            format!("m:{}", v["email"].as_str().unwrap())
        };
        if record_key == "acme" {
            v["custom_attributes"]["Vitally Health Score"] = serde_json::json!(9.5);
        }
        // Canonical JSON: serde_json's map is sorted, and compact.
        let payload = serde_json::to_string(&v).unwrap();
        let hash = payload_hash(&version, payload.as_bytes());
        conn.execute(
            "INSERT INTO sync_state VALUES (?1, ?2, ?3, ?4, ?5, '2026-11-30T01:00:00.000Z', 'updated', NULL, 0)",
            rusqlite::params![kind, record_key, format!("ic-{record_key}"), hash.to_vec(), payload],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO sync_state VALUES ('company', 'gone-co', 'ic-gone', x'00', '{\"company_id\":\"gone-co\",\"custom_attributes\":{\"Vitally Seats\":3}}', NULL, 'updated', NULL, 0)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO runs (command, started_at, exit_code) VALUES ('run', '2026-11-30T01:00:00Z', 0)",
        [],
    )
    .unwrap();
}

#[test]
fn a_schema_1_database_keeps_what_intercom_accepted_and_sends_only_what_changed() {
    let ws = Workspace::new();
    schema_1_database(&ws);

    // Before a load, the upgraded database asks for one (its old extract is gone).
    let plan = ws.run(&["plan"]);
    plan.expect_code(2);
    assert!(
        plan.stderr.contains("run `intercom-push load"),
        "{}",
        plan.stderr
    );

    let input = manifest_dir().join("fixtures/export");
    ws.run(&["load", "--input", input.to_str().unwrap()]).ok();
    ws.transform(&[]).ok();
    let plan = ws.run(&["plan", "--json"]).ok().ndjson();
    // gone-co, which Intercom accepted and the export no longer has, is listed as departed.
    let departed: Vec<&Value> = plan.iter().filter(|p| p["departed"] == true).collect();
    assert_eq!(departed.len(), 1, "{plan:?}");
    assert_eq!(departed[0]["company_id"], "gone-co");
    assert_eq!(
        departed[0]["custom_attributes"],
        serde_json::json!({"Vitally Seats": null})
    );
    let changed: Vec<&str> = plan
        .iter()
        .filter(|p| p["departed"] != true)
        .map(|p| {
            p["company_id"]
                .as_str()
                .or(p["external_id"].as_str())
                .unwrap_or("?")
        })
        .collect();
    assert_eq!(
        changed,
        ["acme"],
        "only acme differs from what Intercom accepted"
    );

    // The human plan diffs against the upgraded pushed payload.
    let human = ws.run(&["plan"]).ok().stdout.clone();
    assert!(human.contains("Vitally Health Score: 9.5 → 6.0"), "{human}");

    let status = ws.run(&["status", "--json"]).ok().stdout.clone();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["runs"].as_array().unwrap().len(),
        1,
        "run history kept"
    );

    // The record that left the export keeps its sync state (its id and what it holds).
    let (id, hex_hash) = common::db::pushed_state(&ws.db(), "company", "gone-co");
    assert_eq!(
        (id.as_deref(), hex_hash.as_deref()),
        (Some("ic-gone"), Some("00"))
    );
}

/// A schema-2 database (outcomes as words, Intercom's ids as text) keeps every id and
/// outcome through the upgrade to schema 3, which stores them as codes and 12 bytes.
#[test]
fn a_schema_2_database_keeps_its_intercom_ids_and_outcomes_in_their_compact_form() {
    let ws = Workspace::new();
    let input = manifest_dir().join("fixtures/export");
    ws.run(&["load", "--input", input.to_str().unwrap()]).ok();
    ws.transform(&[]).ok();
    // Back to what schema 2 wrote: its index of records needing attention, words, text ids.
    let hex_id = "5f4d3c2b1a09f8e7d6c5b4a3";
    rusqlite::Connection::open(ws.db())
        .unwrap()
        .execute_batch(&format!(
            "DROP INDEX records_attention;
             CREATE INDEX records_attention ON records (status, kind, record_key)
                 WHERE status IN ('not_found', 'ambiguous', 'failed');
             UPDATE records SET intercom_id = '{hex_id}', pushed_hash = hash, status = 'updated'
                 WHERE kind = 'company' AND record_key = 'acme';
             UPDATE records SET intercom_id = 'Not-24-Hex', status = 'failed', failures = 3,
                 last_error = 'HTTP 500' WHERE kind = 'company' AND record_key = 'aperture';
             UPDATE records SET status = 'not_found' WHERE kind = 'company' AND record_key = 'cyberdyne';
             UPDATE meta SET value = '2' WHERE key = 'schema_version';"
        ))
        .unwrap();

    let status = ws.run(&["status", "--json"]).ok().stdout.clone();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["failing_repeatedly"]["first"][0]["record"], "aperture",
        "{status}"
    );
    assert_eq!(
        status["failing_repeatedly"]["first"][0]["last_error"],
        "HTTP 500"
    );
    assert_eq!(
        status["not_found"]["first"][0]["record"], "cyberdyne",
        "{status}"
    );
    assert_eq!(status["not_found"]["total"], 1);

    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    let stored = |key: &str| -> (String, Option<i64>, Option<i64>) {
        conn.query_row(
            "SELECT typeof(intercom_id), length(intercom_id), status FROM records
             WHERE kind = 'company' AND record_key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    assert_eq!(stored("acme"), ("blob".into(), Some(12), Some(1)));
    assert_eq!(stored("aperture"), ("text".into(), Some(10), Some(4)));
    assert_eq!(stored("cyberdyne"), ("null".into(), None, Some(2)));
    let version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "3");
    // Read back as the text Intercom gave.
    assert_eq!(
        common::db::pushed_state(&ws.db(), "company", "acme")
            .0
            .as_deref(),
        Some(hex_id)
    );
    assert_eq!(
        common::db::pushed_state(&ws.db(), "company", "aperture")
            .0
            .as_deref(),
        Some("Not-24-Hex")
    );
    // acme's payload is what Intercom accepted: not pending.
    let plan = ws.run(&["plan", "--json"]).ok().ndjson();
    assert!(plan.iter().all(|p| p["company_id"] != "acme"), "{plan:?}");
}
