//! Property tests, in process (the library, not the binary): the CSV, JSON and NDJSON readers
//! never panic on arbitrary bytes (plain or gzipped) — and whatever loads also transforms
//! without a panic — and the payload hash does not depend on the order of columns in a CSV
//! or of keys in JSON objects. (start case's own properties live in
//! `src/transform/start_case.rs`.)

mod common;

use std::path::Path;

use intercom_push::extract;
use intercom_push::store::Store;
use intercom_push::transform::{self, mapping::MappingSettings};
use proptest::prelude::*;

/// A temporary directory, in memory when the system has `/dev/shm` (SQLite's fsyncs on a
/// disk would make the many small loads here slow).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Loads the export directory `dir`, whose only file is `name`, into a fresh database in
/// `db_dir`; when it loads, transforms it too. Returns whether the load succeeded. Any panic
/// fails the property, and so does an error that is not an input error naming `name`
/// (`name:line: …`, or the file's path).
fn load_and_transform(dir: &Path, name: &str, db_dir: &Path) -> bool {
    let db = db_dir.join("state.db");
    let mut store = Store::open(&db).unwrap();
    match extract::load(dir, &Default::default(), &mut store) {
        Ok(_) => {
            let _ = transform::transform(&mut store, &MappingSettings::default());
            true
        }
        Err(extract::ExtractError::Input { location, message }) => {
            let file = location.split(':').next().unwrap_or_default();
            assert!(
                file == name || file == dir.join(name).display().to_string(),
                "the error does not name {name}: {location}: {message}"
            );
            false
        }
        Err(other) => panic!("not an input error: {other}"),
    }
}

/// Loads one file `name` holding `bytes`.
fn load_one(name: &str, bytes: &[u8]) -> bool {
    let tmp = scratch();
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::write(export.join(name), bytes).unwrap();
    load_and_transform(&export, name, tmp.path())
}

/// Bytes biased towards the syntax of `alphabet` (so that many inputs get past the first
/// byte), with arbitrary bytes mixed in.
fn syntax_bytes(alphabet: &'static [&'static [u8]], max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => proptest::sample::select(alphabet).prop_map(|p| p.to_vec()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(piece, 0..max).prop_map(|parts| parts.concat())
}

const CSV_PIECES: &[&[u8]] = &[
    b",",
    b"\"",
    b"\"\"",
    b"\n",
    b"\r\n",
    b"\r",
    b"a",
    b"acme",
    b"1",
    b"-2",
    b"1.5",
    b"true",
    b" ",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3\xa9",
    b"externalId",
    b"id",
    b"mrr",
    b"name",
];
const JSON_PIECES: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\"",
    b"\"externalId\"",
    b"\"id\"",
    b"\"a\"",
    b"\"traits\"",
    b"\"currentElementCounts\"",
    b"\"activeRiskIndicators\"",
    b"\"segments\"",
    b"\"mrr\"",
    b"1",
    b"-1",
    b"1.5e3",
    b"1e999",
    b"null",
    b"true",
    b"\n",
    b"\r\n",
    b" ",
    b"\\",
    b"\\u00e9",
    b"\\ud800",
    b"\xff",
    b"\xc3\xa9",
];

/// Column names: camelCase, spaces, punctuation, Unicode, dotted, some colliding after
/// start case (`healthScore` / `health score`: transform refuses those, without panicking).
const NAMES: &[&str] = &[
    "plan",
    "healthScore",
    "health score",
    "NPS (last 90d)",
    "accountOwnerId",
    "traits.tier",
    "日本",
    "a.b",
    "x",
    "seats_count",
    "Zoë",
];
/// CSV cells, quoted where needed; a few are odd on purpose.
const CELLS: &[&str] = &[
    "",
    "1",
    "-0",
    "1e5",
    "2.50",
    "true",
    "FALSE",
    "pro",
    "\"a,b\"",
    "\"say \"\"hi\"\"\"",
    "\"two\nlines\"",
    "\"two\r\nlines\"",
    "é",
    "NaN",
    "99999999999999999999999",
    "+5",
    "02134",
    " padded ",
    "null",
];
/// JSON values for any key, including the embedded collections' shapes (right and wrong).
const JSON_VALUES: &[&str] = &[
    "1",
    "-2",
    "1.5",
    "1e300",
    "\"x\"",
    "\"\"",
    "null",
    "true",
    "[1,2]",
    "[\"a\",\"b\"]",
    "{\"a\":1,\"b\":{\"c\":\"d\"}}",
    "{\"Widgets\":3}",
    "[{\"id\":\"s1\",\"name\":\"VIP\"}]",
    "{\"Churn\":\"2024-01-01\"}",
    "[]",
    "{}",
    "\"\\u00e9\\n\"",
    "12345678901234567890",
];
const JSON_KEYS: &[&str] = &[
    "plan",
    "healthScore",
    "traits",
    "segments",
    "currentElementCounts",
    "currentSuccessMetricValues",
    "activeRiskIndicators",
    "activeOpportunityIndicators",
    "keyRoles",
    "mrr",
    "日本",
    "a.b",
];

/// A CSV accounts file that is well-formed more often than not: distinct header names from
/// [`NAMES`], 1–5 rows of [`CELLS`], every row of the right length.
fn csv_table() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::subsequence(NAMES, 0..=NAMES.len()),
        1..6usize,
    )
        .prop_flat_map(|(names, rows)| {
            let n = names.len();
            (
                Just(names),
                proptest::collection::vec(
                    proptest::collection::vec(proptest::sample::select(CELLS), n),
                    rows,
                ),
                any::<bool>(),
            )
        })
        .prop_map(|(names, rows, crlf)| {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = String::from("externalId");
            for name in &names {
                text += ",";
                text += name;
            }
            text += end;
            for (i, row) in rows.iter().enumerate() {
                text += &format!("acct-{i}");
                for cell in row {
                    text += ",";
                    text += cell;
                }
                text += end;
            }
            text.into_bytes()
        })
}

/// NDJSON accounts: 1–4 objects with keys from [`JSON_KEYS`] and values from [`JSON_VALUES`].
fn ndjson_table() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        proptest::collection::btree_map(
            proptest::sample::select(JSON_KEYS),
            proptest::sample::select(JSON_VALUES),
            0..5,
        ),
        1..5,
    )
    .prop_map(|rows| {
        let mut text = String::new();
        for (i, row) in rows.iter().enumerate() {
            text += &format!("{{\"externalId\":\"acct-{i}\"");
            for (key, value) in row {
                text += &format!(",\"{key}\":{value}");
            }
            text += "}\n";
        }
        text.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn csv_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        load_one("accounts.csv", &bytes);
    }

    #[test]
    fn csv_reader_never_panics_on_csv_like_bytes(
        header in syntax_bytes(CSV_PIECES, 12),
        body in syntax_bytes(CSV_PIECES, 60),
    ) {
        let mut bytes = b"externalId,".to_vec();
        bytes.extend(header);
        bytes.push(b'\n');
        bytes.extend(body);
        load_one("accounts.csv", &bytes);
    }

    #[test]
    fn csv_reader_never_panics_on_csv_tables(bytes in csv_table()) {
        load_one("accounts.csv", &bytes);
        load_one("accounts.csv.gz", &common::gzip(&bytes));
    }

    #[test]
    fn json_readers_never_panic_on_json_tables(bytes in ndjson_table()) {
        load_one("accounts.ndjson", &bytes);
        let text = String::from_utf8(bytes).unwrap();
        let array = format!("[{}]", text.trim_end().replace('\n', ",\n"));
        load_one("accounts.json", array.as_bytes());
    }

    #[test]
    fn json_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        load_one("accounts.json", &bytes);
    }

    #[test]
    fn json_reader_never_panics_on_json_like_bytes(body in syntax_bytes(JSON_PIECES, 60)) {
        let mut bytes = b"[{\"externalId\":\"a\"},".to_vec();
        bytes.extend(body);
        load_one("accounts.json", &bytes);
    }

    #[test]
    fn ndjson_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        load_one("accounts.ndjson", &bytes);
    }

    #[test]
    fn ndjson_reader_never_panics_on_json_like_bytes(body in syntax_bytes(JSON_PIECES, 60)) {
        let mut bytes = b"{\"externalId\":\"a\"}\n{\"externalId\":\"b\",".to_vec();
        bytes.extend(body);
        load_one("accounts.ndjson", &bytes);
        load_one("accounts.jsonl", &bytes);
    }

    #[test]
    fn gzip_reader_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        name in proptest::sample::select(vec!["accounts.csv.gz", "accounts.json.gz", "accounts.ndjson.gz"]),
    ) {
        load_one(name, &bytes);
    }

    /// A valid gzip of CSV-like text, then cut and with one byte changed.
    #[test]
    fn gzip_reader_never_panics_on_damaged_gzip(
        body in syntax_bytes(CSV_PIECES, 80),
        cut in 0.0f64..=1.0,
        flip in any::<(usize, u8)>(),
    ) {
        let mut text = b"externalId,name\n".to_vec();
        text.extend(body);
        let mut zipped = common::gzip(&text);
        let keep = ((zipped.len() as f64) * cut) as usize;
        zipped.truncate(keep.max(1));
        let i = flip.0 % zipped.len();
        zipped[i] ^= flip.1;
        load_one("accounts.csv.gz", &zipped);
    }
}

// ── the hash does not depend on column or key order ─────────────────────────────────────

/// Field names that stay distinct after start case.
const FIELDS: [&str; 6] = [
    "plan",
    "healthScore",
    "region",
    "seats",
    "nps_score",
    "tier",
];
const VALUES: [&str; 10] = [
    "",
    "1",
    "42",
    "-7",
    "2.5",
    "true",
    "false",
    "pro",
    "Team, Plus",
    "02134",
];

/// `rows` × `FIELDS[..n]` cells (indexes into `VALUES`).
fn table() -> impl Strategy<Value = (usize, Vec<Vec<usize>>)> {
    (1..=FIELDS.len()).prop_flat_map(|n| {
        (
            Just(n),
            proptest::collection::vec(proptest::collection::vec(0..VALUES.len(), n), 1..6),
        )
    })
}

/// Loads + transforms `files` in a fresh directory; returns the payloads.
fn payloads_for(files: &[(&str, String)]) -> Vec<(String, String, String, String)> {
    let tmp = scratch();
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    for (name, text) in files {
        std::fs::write(export.join(name), text).unwrap();
    }
    let db = tmp.path().join("state.db");
    let mut store = Store::open(&db).unwrap();
    extract::load(&export, &Default::default(), &mut store).unwrap();
    transform::transform(&mut store, &MappingSettings::default()).unwrap();
    drop(store);
    common::db::payloads(&db)
}

fn csv_cell(value: &str) -> String {
    if value.contains(',') {
        format!("\"{value}\"")
    } else {
        value.to_string()
    }
}

/// The CSV with the columns in `order` (indexes into the table's fields; externalId goes
/// wherever `id_at` says).
fn csv(rows: &[Vec<usize>], order: &[usize], id_at: usize) -> String {
    let mut header: Vec<String> = order.iter().map(|&c| FIELDS[c].to_string()).collect();
    header.insert(id_at.min(header.len()), "externalId".into());
    let mut text = header.join(",") + "\n";
    for (r, row) in rows.iter().enumerate() {
        let mut cells: Vec<String> = order.iter().map(|&c| csv_cell(VALUES[row[c]])).collect();
        cells.insert(id_at.min(cells.len()), format!("acct-{r}"));
        text += &(cells.join(",") + "\n");
    }
    text
}

/// A JSON value for a cell: numbers and booleans typed, the rest strings; empty is null.
fn json_value(value: &str) -> serde_json::Value {
    if value.is_empty() {
        return serde_json::Value::Null;
    }
    if value != "02134" {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(value) {
            return v;
        }
    }
    serde_json::Value::String(value.into())
}

/// One JSON object per row, its keys written in the order `orders[row]` (rotated per row).
fn json_rows(rows: &[Vec<usize>], n: usize, order_seed: &[usize]) -> Vec<String> {
    rows.iter()
        .enumerate()
        .map(|(r, row)| {
            let mut keys: Vec<usize> = (0..n).collect();
            // A different permutation per row, from the seed.
            for i in (1..keys.len()).rev() {
                let j = order_seed[(r * 7 + i) % order_seed.len()] % (i + 1);
                keys.swap(i, j);
            }
            let mut parts: Vec<String> = keys
                .iter()
                .map(|&c| {
                    format!(
                        "{}:{}",
                        serde_json::json!(FIELDS[c]),
                        json_value(VALUES[row[c]])
                    )
                })
                .collect();
            let id_at = order_seed[r % order_seed.len()] % (parts.len() + 1);
            parts.insert(id_at, format!("\"externalId\":\"acct-{r}\""));
            format!("{{{}}}", parts.join(","))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn csv_column_order_does_not_change_any_payload_or_hash(
        (n, rows) in table(),
        perm_seed in proptest::collection::vec(any::<usize>(), 8),
        id_at in 0usize..8,
    ) {
        let identity: Vec<usize> = (0..n).collect();
        let mut shuffled = identity.clone();
        for i in (1..n).rev() {
            shuffled.swap(i, perm_seed[i % perm_seed.len()] % (i + 1));
        }
        let a = payloads_for(&[("accounts.csv", csv(&rows, &identity, 0))]);
        let b = payloads_for(&[("accounts.csv", csv(&rows, &shuffled, id_at))]);
        prop_assert_eq!(a.len(), rows.len());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn json_key_order_does_not_change_any_payload_or_hash(
        (n, rows) in table(),
        seed_a in proptest::collection::vec(any::<usize>(), 8),
        seed_b in proptest::collection::vec(any::<usize>(), 8),
    ) {
        let a = json_rows(&rows, n, &seed_a);
        let b = json_rows(&rows, n, &seed_b);
        let from_json_a = payloads_for(&[("accounts.json", format!("[{}]", a.join(",\n")))]);
        let from_json_b = payloads_for(&[("accounts.json", format!("[{}]", b.join(",\n")))]);
        let from_ndjson_b = payloads_for(&[("accounts.ndjson", b.join("\n") + "\n")]);
        prop_assert_eq!(from_json_a.len(), rows.len());
        prop_assert_eq!(&from_json_a, &from_json_b);
        prop_assert_eq!(&from_json_a, &from_ndjson_b);
    }
}

/// The hash does change when a value changes (so the equalities above are not vacuous).
#[test]
fn a_changed_value_changes_the_hash() {
    let a = payloads_for(&[("accounts.csv", "externalId,plan\nacme,pro\n".into())]);
    let b = payloads_for(&[("accounts.csv", "externalId,plan\nacme,team\n".into())]);
    assert_eq!(a.len(), 1);
    assert_ne!(a[0].3, b[0].3);
    // And a column order change in a file with several columns keeps it.
    let c = payloads_for(&[("accounts.csv", "externalId,plan,seats\nacme,pro,3\n".into())]);
    let d = payloads_for(&[("accounts.csv", "seats,plan,externalId\n3,pro,acme\n".into())]);
    assert_eq!(c, d);
}

/// The generated tables are not all rejected: a fair share loads (and so also goes through
/// transform), which is what makes "never panics" mean something there.
#[test]
fn generated_tables_often_load() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut csv_loaded, mut ndjson_loaded) = (0, 0);
    for _ in 0..60 {
        let csv = csv_table().new_tree(&mut runner).unwrap().current();
        csv_loaded += usize::from(load_one("accounts.csv", &csv));
        let ndjson = ndjson_table().new_tree(&mut runner).unwrap().current();
        ndjson_loaded += usize::from(load_one("accounts.ndjson", &ndjson));
    }
    eprintln!("of 60: {csv_loaded} CSV and {ndjson_loaded} NDJSON tables loaded");
    assert!(csv_loaded >= 10, "{csv_loaded} CSV tables loaded");
    assert!(ndjson_loaded >= 10, "{ndjson_loaded} NDJSON tables loaded");
}
