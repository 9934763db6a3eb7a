//! Parquet exports and the layouts `gen` writes (`--format parquet`, `--parts N`), through the
//! real binary. Parquet files are written here with the `parquet` crate's Arrow writer.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder, MapBuilder, StringBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    Float32Array, Float64Array, Int32Array, Int8Array, LargeStringArray, RecordBatch, StringArray,
    StructArray, TimestampMicrosecondArray, TimestampMillisecondArray, UInt64Array,
};
use arrow_schema::{DataType, Field};
use common::{lines, Workspace};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Writes one batch, with gzip pages for accounts, zstd for users and snappy for the rest, so
/// every codec a warehouse writes is read.
fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    write_batch(path, &RecordBatch::try_from_iter(columns).unwrap());
}

fn write_batch(path: &Path, batch: &RecordBatch) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let codec = if name.starts_with("accounts") {
        Compression::GZIP(Default::default())
    } else if name.starts_with("users") {
        Compression::ZSTD(Default::default())
    } else {
        Compression::SNAPPY
    };
    let properties = WriterProperties::builder().set_compression(codec).build();
    let mut writer = ArrowWriter::try_new(
        File::create(path).unwrap(),
        batch.schema(),
        Some(properties),
    )
    .unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// A string column annotated JSON.
fn json_column(values: &[&str]) -> (Field, ArrayRef) {
    (
        Field::new("value", DataType::Utf8, false)
            .with_extension_type(arrow_schema::extension::Json::default()),
        Arc::new(StringArray::from(values.to_vec())),
    )
}

fn string_list(rows: &[Option<&[&str]>]) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for row in rows {
        match row {
            Some(items) => {
                for item in *items {
                    builder.values().append_value(item);
                }
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

/// The accounts table with one column of each type the reader knows.
fn typed_accounts() -> Vec<(&'static str, ArrayRef)> {
    let mut counts = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
    counts.keys().append_value("Dashboards");
    counts.values().append_value(3);
    counts.keys().append_value("Reports");
    counts.values().append_value(0);
    counts.append(true).unwrap();
    counts.append(true).unwrap();
    counts.append(false).unwrap();
    let address = StructArray::from(vec![
        (
            Arc::new(Field::new("city", DataType::Utf8, true)),
            strings(&[Some("Boston"), None, Some("Zürich")]),
        ),
        (
            Arc::new(Field::new("zip", DataType::Utf8, true)),
            strings(&[Some("02134"), None, Some("8001")]),
        ),
        (
            Arc::new(Field::new("photo", DataType::Binary, true)),
            Arc::new(BinaryArray::from(vec![Some(&b"\x89PNG"[..]), None, None])) as ArrayRef,
        ),
    ]);
    vec![
        ("id", strings(&[Some("a1"), Some("a2"), Some("a3")])),
        (
            "externalId",
            Arc::new(
                ["acme", "globex", "initech"]
                    .into_iter()
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
        ),
        ("accountOwnerId", strings(&[Some("u1"), None, Some("u3")])),
        (
            "mrr",
            Arc::new(
                Decimal128Array::from(vec![Some(123_450), Some(10), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        (
            "headcount",
            Arc::new(
                Decimal128Array::from(vec![Some(120), Some(-5), None])
                    .with_precision_and_scale(12, 0)
                    .unwrap(),
            ),
        ),
        (
            "seats",
            Arc::new(Int32Array::from(vec![Some(5), None, Some(7)])),
        ),
        ("tier", Arc::new(Int8Array::from(vec![-3, 1, 2]))),
        ("views", Arc::new(UInt64Array::from(vec![1, 2, u64::MAX]))),
        (
            "score",
            Arc::new(Float32Array::from(vec![Some(0.1), Some(2.5), None])),
        ),
        (
            "health",
            Arc::new(Float64Array::from(vec![7.5, f64::NAN, 3.0])),
        ),
        (
            "active",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
        ("zip", strings(&[Some("02134"), Some("10001"), None])),
        (
            "nextRenewalDate",
            Arc::new(Date32Array::from(vec![Some(20_513), None, Some(-1)])),
        ),
        (
            "createdAt",
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_500),
                    Some(1_700_000_000_000),
                    None,
                ])
                .with_timezone("UTC"),
            ),
        ),
        (
            "lastSeenAt",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_700_000_000_123_456),
                None,
                Some(-1_000_000),
            ])),
        ),
        (
            "notes",
            Arc::new(LargeStringArray::from(vec!["x, y", "", "z"])),
        ),
        ("tags", string_list(&[Some(&["b", "a"]), Some(&[]), None])),
        ("address", Arc::new(address)),
        (
            "segments",
            string_list(&[Some(&["VIP", "Beta"]), None, Some(&["VIP"])]),
        ),
        ("currentElementCounts", Arc::new(counts.finish())),
        (
            "logo",
            Arc::new(BinaryArray::from(vec![Some(&b"\x00\x01"[..]), None, None])),
        ),
    ]
}

/// The same accounts as NDJSON, as the README's Parquet rules say they read.
const TYPED_ACCOUNTS_NDJSON: &[&str] = &[
    r#"{"id":"a1","externalId":"acme","accountOwnerId":"u1","mrr":1234.5,"headcount":120,"seats":5,"tier":-3,"views":1,"score":0.1,"health":7.5,"active":true,"zip":"02134","nextRenewalDate":"2026-03-01","createdAt":"2023-11-14T22:13:20.5Z","lastSeenAt":"2023-11-14T22:13:20.123456Z","notes":"x, y","tags":["b","a"],"address":{"city":"Boston","zip":"02134"},"segments":["VIP","Beta"],"currentElementCounts":{"Dashboards":3,"Reports":0}}"#,
    r#"{"id":"a2","externalId":"globex","mrr":0.1,"headcount":-5,"tier":1,"views":2,"score":2.5,"active":false,"zip":"10001","createdAt":"2023-11-14T22:13:20Z","notes":"","tags":[],"address":{},"currentElementCounts":{}}"#,
    r#"{"id":"a3","externalId":"initech","accountOwnerId":"u3","seats":7,"tier":2,"views":18446744073709551615,"health":3.0,"nextRenewalDate":"1969-12-31","lastSeenAt":"1969-12-31T23:59:59Z","notes":"z","address":{"city":"Zürich","zip":"8001"},"segments":["VIP"]}"#,
];

/// `plan --json --all` of a workspace whose export is already written, with the load's
/// warnings.
fn plan_of(ws: &Workspace) -> (String, Vec<String>) {
    let load = ws.load();
    load.ok();
    ws.transform(&[]).ok();
    let plan = ws.run(&["plan", "--json", "--all"]);
    plan.ok();
    (plan.stdout.clone(), load.warnings())
}

#[test]
fn every_parquet_type_gives_the_plan_of_the_same_data_as_ndjson() {
    let parquet = Workspace::new();
    let dir = parquet.export();
    write_parquet(&dir.join("accounts.parquet"), typed_accounts());
    write_parquet(
        &dir.join("users.parquet"),
        vec![
            ("id", strings(&[Some("u1"), Some("u2"), Some("u3")])),
            ("externalId", strings(&[Some("x1"), None, Some("x3")])),
            (
                "email",
                strings(&[None, Some("b@globex.test"), Some("c@initech.test")]),
            ),
        ],
    );
    write_parquet(
        &dir.join("element_counts.parquet"),
        vec![
            ("account_id", strings(&[Some("a1"), Some("a3")])),
            ("element_id", strings(&[Some("Exports"), Some("Exports")])),
            ("count", Arc::new(Int32Array::from(vec![4, 0]))),
        ],
    );
    let (value_field, values) = json_column(&["12", "7", "0.5", "\"green\""]);
    let metric_values = RecordBatch::try_new(
        Arc::new(arrow_schema::Schema::new(vec![
            Field::new("account_id", DataType::Utf8, false),
            Field::new("metric_id", DataType::Utf8, false),
            value_field,
        ])),
        vec![
            strings(&[Some("a1"), Some("a2"), Some("a1"), Some("a3")]),
            strings(&[Some("Logins"), Some("Logins"), Some("Ratio"), Some("Mood")]),
            values,
        ],
    )
    .unwrap();
    write_batch(&dir.join("metric_values.parquet"), &metric_values);
    write_parquet(
        &dir.join("indicators.parquet"),
        vec![
            ("account_id", strings(&[Some("a2")])),
            ("kind", strings(&[Some("risk")])),
            ("name", strings(&[Some("Churn Risk")])),
        ],
    );

    let ndjson = Workspace::new();
    ndjson.write("accounts.ndjson", lines(TYPED_ACCOUNTS_NDJSON));
    ndjson.write(
        "users.ndjson",
        lines(&[
            r#"{"id":"u1","externalId":"x1"}"#,
            r#"{"id":"u2","email":"b@globex.test"}"#,
            r#"{"id":"u3","externalId":"x3","email":"c@initech.test"}"#,
        ]),
    );
    ndjson.write(
        "element_counts.csv",
        lines(&[
            "account_id,element_id,count",
            "a1,Exports,4",
            "a3,Exports,0",
        ]),
    );
    ndjson.write(
        "metric_values.ndjson",
        lines(&[
            r#"{"account_id":"a1","metric_id":"Logins","value":12}"#,
            r#"{"account_id":"a2","metric_id":"Logins","value":7}"#,
            r#"{"account_id":"a1","metric_id":"Ratio","value":0.5}"#,
            r#"{"account_id":"a3","metric_id":"Mood","value":"green"}"#,
        ]),
    );
    ndjson.write(
        "indicators.csv",
        lines(&["account_id,kind,name", "a2,risk,Churn Risk"]),
    );

    let (from_parquet, warnings) = plan_of(&parquet);
    let (from_ndjson, _) = plan_of(&ndjson);
    assert!(
        from_parquet == from_ndjson,
        "Parquet and NDJSON give other payloads:\n{from_parquet}\n{from_ndjson}"
    );
    // The plan holds what the rules say, not just the same as NDJSON.
    for expected in [
        r#""Vitally Created At":"2023-11-14T22:13:20.5Z""#,
        r#""Vitally Mrr":1234.5"#,
        r#""Vitally Headcount":120"#,
        r#""Vitally Score":0.1"#,
        r#""Vitally Zip":"02134""#,
        r#""Vitally Address City":"Zürich""#,
        r#""Vitally Tags":"b, a""#,
        r#""Vitally Segments":"Beta, VIP""#,
        r#""Vitally Dashboards":3"#,
        r#""Vitally Next Renewal Date":"1969-12-31""#,
    ] {
        assert!(
            from_parquet.contains(expected),
            "{expected} not in\n{from_parquet}"
        );
    }
    let binary: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("binary data"))
        .collect();
    assert_eq!(binary.len(), 2, "{warnings:?}");
    for column in ["`address.photo`", "`logo`"] {
        assert!(
            binary
                .iter()
                .any(|w| w.starts_with(&format!("accounts.parquet: column {column}"))),
            "{warnings:?}"
        );
    }
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("column `health`: 1 NaN or infinite values")),
        "{warnings:?}"
    );
}

/// Runs the binary in `root` and expects success.
fn run(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.run(args);
    out.ok();
    out.stdout.clone()
}

fn plan_of_export(ws: &Workspace, name: &str, input: &Path) -> String {
    let db = ws.path().join(format!("{name}.db"));
    let db = db.to_str().unwrap();
    run(
        ws,
        &["--db", db, "load", "--input", input.to_str().unwrap()],
    );
    run(ws, &["--db", db, "transform"]);
    run(ws, &["--db", db, "plan", "--json", "--all"])
}

fn gen(ws: &Workspace, name: &str, args: &[&str]) -> PathBuf {
    let out = ws.path().join(name);
    let mut all = vec!["gen", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    run(ws, &all);
    out
}

#[test]
fn gen_parquet_gives_the_plan_of_gen_csv_before_and_after_mutate() {
    let ws = Workspace::new();
    let args = ["--accounts", "300", "--seed", "5"];
    let csv = gen(&ws, "csv", &args);
    let parquet = gen(
        &ws,
        "parquet",
        &[&args[..], &["--format", "parquet"]].concat(),
    );
    assert!(parquet.join("accounts.parquet").is_file());
    let before = plan_of_export(&ws, "csv", &csv);
    assert_eq!(before.lines().count(), 300 + users(&csv));
    assert!(
        before == plan_of_export(&ws, "parquet", &parquet),
        "gen --format parquet gives other payloads than CSV"
    );

    for dir in [&csv, &parquet] {
        run(
            &ws,
            &[
                "gen",
                "--mutate",
                "20",
                "--seed",
                "4",
                "--out",
                dir.to_str().unwrap(),
            ],
        );
    }
    let after = plan_of_export(&ws, "csv", &csv);
    assert_eq!(changed_lines(&before, &after), 60, "20 % of 300 companies");
    assert!(
        after == plan_of_export(&ws, "parquet", &parquet),
        "after --mutate, Parquet gives other payloads than CSV"
    );
}

/// Users in a generated CSV export (one file or parts).
fn users(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("users.csv"))
        .unwrap()
        .lines()
        .count()
        - 1
}

fn changed_lines(a: &str, b: &str) -> usize {
    assert_eq!(a.lines().count(), b.lines().count());
    a.lines().zip(b.lines()).filter(|(x, y)| x != y).count()
}

/// The part files of a table folder, in name order (without `_SUCCESS`).
fn parts(folder: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name != "_SUCCESS" && !name.starts_with('.')
        })
        .collect();
    parts.sort();
    parts
}

/// One `<table>.csv` / `<table>.parquet` per table folder of `parted`, written into `merged`.
fn merge_parts(parted: &Path, merged: &Path) {
    std::fs::create_dir_all(merged).unwrap();
    for entry in std::fs::read_dir(parted).unwrap() {
        let folder = entry.unwrap().path();
        let table = folder.file_name().unwrap().to_str().unwrap().to_string();
        let parts = parts(&folder);
        if parts[0].to_str().unwrap().ends_with(".parquet") {
            let mut writer = None;
            for part in parts {
                let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(part).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
                for batch in reader {
                    let batch = batch.unwrap();
                    writer
                        .get_or_insert_with(|| {
                            let path = merged.join(format!("{table}.parquet"));
                            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None)
                                .unwrap()
                        })
                        .write(&batch)
                        .unwrap();
                }
            }
            writer.unwrap().close().unwrap();
        } else {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let mut decoded = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(File::open(part).unwrap()),
                    &mut decoded,
                )
                .unwrap();
                let body = if i == 0 {
                    decoded.as_str()
                } else {
                    decoded.split_once('\n').unwrap().1
                };
                text.push_str(body);
            }
            std::fs::write(merged.join(format!("{table}.csv")), text).unwrap();
        }
    }
}

#[test]
fn gen_parts_are_spark_folders_holding_the_same_rows_out_of_account_order() {
    let ws = Workspace::new();
    let args = ["--accounts", "300", "--seed", "8"];
    let single = gen(&ws, "single", &args);
    let expected = plan_of_export(&ws, "single", &single);
    let with = |extra: &[&'static str]| [&args[..], extra].concat();

    let parted = gen(&ws, "parted", &with(&["--parts", "3", "--gzip"]));
    let again = gen(&ws, "again", &with(&["--parts", "3", "--gzip"]));
    let mut tables: Vec<String> = std::fs::read_dir(&parted)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    tables.sort();
    assert_eq!(tables.len(), 8, "{tables:?}");
    for table in &tables {
        let folder = parted.join(table);
        assert_eq!(std::fs::read(folder.join("_SUCCESS")).unwrap(), b"");
        let names: Vec<String> = parts(&folder)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        for (i, name) in names.iter().enumerate() {
            let uuid = name
                .strip_prefix(&format!("part-{i:05}-"))
                .and_then(|rest| rest.strip_suffix("-c000.csv.gz"))
                .unwrap_or_else(|| panic!("not a Spark part name: {name}"));
            assert_eq!(uuid.len(), 36, "{name}");
            // Same seed, same names and bytes.
            assert_eq!(
                std::fs::read(folder.join(name)).unwrap(),
                std::fs::read(again.join(table).join(name)).unwrap()
            );
        }
    }
    let merged = ws.path().join("merged");
    merge_parts(&parted, &merged);
    let ids: Vec<String> = std::fs::read_to_string(merged.join("accounts.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 300);
    assert!(!ids.is_sorted(), "parts hold accounts in account order");
    assert!(
        plan_of_export(&ws, "parted", &parted) == expected,
        "loading the CSV part folders gives other payloads"
    );

    let parquet = gen(
        &ws,
        "parquet",
        &with(&["--parts", "2", "--format", "parquet"]),
    );
    assert!(parts(&parquet.join("accounts"))[1]
        .to_str()
        .unwrap()
        .ends_with("-c000.snappy.parquet"));
    // Spark writes a checksum next to every part.
    for table in &tables {
        for part in parts(&parquet.join(table)) {
            let name = part.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::write(parquet.join(table).join(format!(".{name}.crc")), b"crc").unwrap();
        }
    }
    assert!(
        plan_of_export(&ws, "parquet", &parquet) == expected,
        "loading the Parquet part folders gives other payloads"
    );

    // --mutate rewrites the parts in place: the chosen share of companies changes.
    run(
        &ws,
        &[
            "gen",
            "--mutate",
            "10",
            "--seed",
            "2",
            "--out",
            parted.to_str().unwrap(),
        ],
    );
    assert_eq!(
        changed_lines(&expected, &plan_of_export(&ws, "mutated", &parted)),
        30
    );
}

/// The database file and its WAL as bytes (`None` when absent).
fn snapshot(db: &Path) -> Vec<Option<Vec<u8>>> {
    ["", "-wal"]
        .iter()
        .map(|suffix| {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            std::fs::read(path).ok()
        })
        .collect()
}

#[test]
fn a_corrupt_or_foreign_parquet_file_exits_2_naming_it_and_leaves_the_database_untouched() {
    let ws = Workspace::new();
    let export = gen(&ws, "export", &["--accounts", "50", "--format", "parquet"]);
    let input = export.to_str().unwrap();
    run(&ws, &["load", "--input", input]);
    let before = snapshot(&ws.db());
    let accounts = export.join("accounts.parquet");
    let good = std::fs::read(&accounts).unwrap();

    for (bytes, hint) in [
        (good[..good.len() / 2].to_vec(), "truncated or corrupt"),
        (
            [&good[..good.len() - 12], b"\0\0\0\0\0\0\0\0PAR1"].concat(),
            "truncated or corrupt",
        ),
        (b"id,externalId\n1,acme\n".to_vec(), "not a Parquet file"),
    ] {
        std::fs::write(&accounts, bytes).unwrap();
        let load = ws.run(&["load", "--input", input]);
        load.expect_code(2);
        assert!(
            load.stderr.contains("error: accounts.parquet: ") && load.stderr.contains(hint),
            "{}",
            load.stderr
        );
        assert_eq!(
            snapshot(&ws.db()),
            before,
            "a failed load changed the database"
        );
    }
}

#[test]
fn unreadable_parquet_columns_exit_2_naming_the_file_the_column_and_the_row() {
    let ws = Workspace::new();
    let dir = ws.export();
    write_parquet(
        &dir.join("accounts.parquet"),
        vec![("externalId", strings(&[Some("acme"), Some("globex")]))],
    );
    let (value_field, values) = json_column(&["1", "{oops"]);
    let metric_values = RecordBatch::try_new(
        Arc::new(arrow_schema::Schema::new(vec![
            Field::new("account_id", DataType::Utf8, false),
            Field::new("metric_id", DataType::Utf8, false),
            value_field,
        ])),
        vec![
            strings(&[Some("acme"), Some("globex")]),
            strings(&[Some("Logins"), Some("Logins")]),
            values,
        ],
    )
    .unwrap();
    write_batch(&dir.join("metric_values.parquet"), &metric_values);
    let load = ws.load();
    load.expect_code(2);
    assert!(
        load.stderr
            .contains("error: metric_values.parquet:2: column `value` is annotated JSON but holds invalid JSON"),
        "{}",
        load.stderr
    );

    std::fs::remove_file(dir.join("metric_values.parquet")).unwrap();
    write_parquet(
        &dir.join("accounts.parquet"),
        vec![
            ("externalId", strings(&[Some("acme")])),
            (
                "uptime",
                Arc::new(arrow_array::DurationSecondArray::from(vec![60])),
            ),
        ],
    );
    let load = ws.load();
    load.expect_code(2);
    assert!(
        load.stderr
            .contains("error: accounts.parquet: column `uptime` is ")
            && load.stderr.contains("cast it in the export"),
        "{}",
        load.stderr
    );
    assert!(!ws.db().exists(), "a failed first load leaves no database");
}
