//! The bad-input corpus in `tests/bad_inputs/<case>/`: each case is an export directory
//! (`input/`) and the text its load must print (`expected.txt`, a substring of stderr that
//! names `file:line:`). Optional files:
//!
//! - `expected_exit`: the exit code when not 2 (an unknown file is a warning: exit 0);
//! - `config.toml`: the config file the commands get with `--config` (`[tables.<table>]`);
//! - `generate`: files made at test time, one per line, in order — `big_cell FILE BYTES` (one
//!   quoted cell of BYTES bytes with a newline every 1,024, then a ragged row), `wide FILE
//!   COLUMNS` (a header of that many columns and one row), `parquet FILE NAME:TYPE=V,V…`
//!   (a Parquet file, snappy pages, TYPE `string` or `int64`) or `truncate FILE BYTES` (keep
//!   the first BYTES bytes of a file made above);
//! - `stage`: `transform` when the load succeeds and the error comes from `transform`.
//!
//! `input/` may hold folders (a table as a folder of part files).
//!
//! For every case: a database holding a good export (`fixtures/export`, transformed, with
//! some sync state) is checksummed, the bad step runs, and it must exit as expected, print the
//! expected text, never panic, and — when it fails — leave the database byte-identical with
//! no `-wal` behind. Run against a path with no database, a failed load leaves no file.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{manifest_dir, Run, Workspace};

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The bytes of the database and of every SQLite side file (`None` when absent).
fn snapshot(db: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    ["", "-wal", "-journal"]
        .iter()
        .map(|suffix| {
            let path = with_suffix(db, suffix);
            (suffix.to_string(), std::fs::read(&path).ok())
        })
        .collect()
}

fn digest(snap: &[(String, Option<Vec<u8>>)]) -> String {
    snap.iter()
        .map(|(suffix, bytes)| match bytes {
            Some(b) => format!(
                "db{suffix}: {} bytes, xxh3 {:032x}",
                b.len(),
                xxhash_rust::xxh3::xxh3_128(b)
            ),
            None => format!("db{suffix}: absent"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Copies the folder `from` (and its folders) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    if let Ok(entries) = std::fs::read_dir(from) {
        for entry in entries {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}

/// Writes a Parquet file (snappy pages) of the columns `NAME:TYPE=V,V…`.
fn write_parquet(path: &Path, columns: &[&str]) {
    use std::sync::Arc;
    let arrays = columns.iter().map(|column| {
        let (name, values) = column
            .split_once('=')
            .unwrap_or_else(|| panic!("parquet column {column:?}: NAME:TYPE=V,V…"));
        let values: Vec<&str> = values.split(',').collect();
        let array: arrow_array::ArrayRef = match name.split_once(':') {
            Some((_, "string")) => Arc::new(arrow_array::StringArray::from(values)),
            Some((_, "int64")) => Arc::new(arrow_array::Int64Array::from(
                values
                    .iter()
                    .map(|v| v.parse::<i64>().unwrap())
                    .collect::<Vec<_>>(),
            )),
            _ => panic!("parquet column {column:?}: TYPE is string or int64"),
        };
        (name.split(':').next().unwrap(), array)
    });
    let batch = arrow_array::RecordBatch::try_from_iter(arrays).unwrap();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(properties),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Makes the file a `generate` line describes in `dir`.
fn generate(spec: &str, dir: &Path) {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    if let Some(parent) = parts
        .get(1)
        .and_then(|file| dir.join(file).parent().map(Path::to_path_buf))
    {
        std::fs::create_dir_all(parent).unwrap();
    }
    match parts.as_slice() {
        ["big_cell", file, bytes] => {
            let bytes: usize = bytes.parse().unwrap();
            let mut line = vec![b'x'; 1023];
            line.push(b'\n');
            let mut text = b"externalId,notes\nacme,\"".to_vec();
            for _ in 0..bytes / 1024 {
                text.extend_from_slice(&line);
            }
            text.extend_from_slice(b"\"\nglobex,Globex,extra\n");
            std::fs::write(dir.join(file), text).unwrap();
        }
        ["wide", file, columns] => {
            let columns: usize = columns.parse().unwrap();
            let mut text = String::from("externalId");
            for i in 0..columns {
                text += &format!(",column {i}");
            }
            text += "\nacme";
            for i in 0..columns {
                text += &format!(",{}", i % 7);
            }
            text.push('\n');
            std::fs::write(dir.join(file), text).unwrap();
        }
        ["parquet", file, columns @ ..] => write_parquet(&dir.join(file), columns),
        ["truncate", file, bytes] => {
            let path = dir.join(file);
            let whole = std::fs::read(&path).unwrap();
            let bytes: usize = bytes.parse().unwrap();
            assert!(
                bytes < whole.len(),
                "truncate {file}: it has {} bytes",
                whole.len()
            );
            std::fs::write(&path, &whole[..bytes]).unwrap();
        }
        _ => panic!("unknown generate spec {spec:?}"),
    }
}

fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
}

/// Checks one run; returns what is wrong with it.
fn check_run(run: &Run, code: i32, expected: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if run.code != code {
        problems.push(format!("exit {} (expected {code})", run.code));
    }
    if !run.stderr.contains(expected) {
        problems.push(format!("stderr lacks {expected:?}"));
    }
    if run.stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    if code != 0 && !run.stderr.starts_with("error: ") {
        problems.push("stderr does not start with `error: `".into());
    }
    if !problems.is_empty() {
        problems.push(format!("--- stderr:\n{}", truncate(&run.stderr)));
    }
    problems
}

fn truncate(text: &str) -> String {
    if text.len() <= 2000 {
        return text.to_string();
    }
    let mut end = 2000;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[test]
fn every_corpus_case_fails_cleanly_and_leaves_the_database_as_it_was() {
    let corpus = manifest_dir().join("tests/bad_inputs");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "only {} cases", cases.len());

    // The good state every case starts from.
    let ws = Workspace::new();
    let template = ws.path().join("template.db");
    let fixtures = manifest_dir().join("fixtures/export");
    let db_arg = template.to_str().unwrap();
    ws.run(&[
        "--db",
        db_arg,
        "load",
        "--input",
        fixtures.to_str().unwrap(),
    ])
    .ok();
    ws.run(&["--db", db_arg, "transform"]).ok();
    let (_, payload) = common::db::current_payload(&template, "company", "acme");
    common::db::record_pushed(&template, "company", "acme", &[0], &payload);
    let template_snapshot = snapshot(&template);
    assert!(template_snapshot[0].1.is_some());
    assert!(
        template_snapshot[1].1.is_none(),
        "no -wal left once every connection is closed"
    );

    let mut failures = Vec::new();
    let mut nonzero = 0;
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        let started = Instant::now();
        let expected = read_opt(&case.join("expected.txt"))
            .unwrap_or_else(|| panic!("{name}: no expected.txt"));
        assert!(!expected.is_empty(), "{name}: empty expected.txt");
        let code: i32 = read_opt(&case.join("expected_exit")).map_or(2, |s| s.parse().unwrap());
        let stage = read_opt(&case.join("stage")).unwrap_or_else(|| "load".into());

        let scratch = ws.path().join(&name);
        let input = scratch.join("input");
        copy_dir(&case.join("input"), &input);
        if let Some(specs) = read_opt(&case.join("generate")) {
            for spec in specs.lines().filter(|l| !l.trim().is_empty()) {
                generate(spec, &input);
            }
        }
        let input_arg = input.to_str().unwrap().to_string();
        let db = scratch.join("state.db");
        std::fs::copy(&template, &db).unwrap();
        let db_arg = db.to_str().unwrap().to_string();
        let config = case.join("config.toml");
        let config_arg = config.to_str().unwrap();
        // `--db DB [--config config.toml] args…`
        let command = |db: &str, args: &[&str]| -> Run {
            let mut all = vec!["--db", db];
            if config.exists() {
                all.extend(["--config", config_arg]);
            }
            all.extend_from_slice(args);
            ws.run(&all)
        };
        let load = ["load", "--input", &input_arg];

        let mut problems = Vec::new();
        let run = match stage.as_str() {
            "load" => {
                let before = snapshot(&db);
                let run = command(&db_arg, &load);
                problems.extend(check_run(&run, code, &expected));
                if code != 0 && snapshot(&db) != before {
                    problems.push(format!(
                        "the database changed: {} → {}",
                        digest(&before),
                        digest(&snapshot(&db))
                    ));
                }
                run
            }
            "transform" => {
                let loaded = command(&db_arg, &load);
                if loaded.code != 0 {
                    problems.push(format!("load failed: {}", loaded.stderr));
                }
                let before = snapshot(&db);
                let run = command(&db_arg, &["transform"]);
                problems.extend(check_run(&run, 2, &expected));
                if snapshot(&db) != before {
                    problems.push("a failed transform changed the database".into());
                }
                run
            }
            other => panic!("{name}: unknown stage {other:?}"),
        };
        if code != 0 {
            nonzero += 1;
            // The previous export is still usable.
            let plan = ws.run(&["--db", &db_arg, "plan", "--json", "--all"]);
            if plan.code != 0 || !plan.stdout.contains("\"company_id\":\"acme\"") {
                problems.push(format!("plan after the failure: {}", plan.stderr));
            }
            // Against a path with no database: the same error, and no file left behind.
            if stage == "load" {
                let fresh = scratch.join("fresh.db");
                let again = command(fresh.to_str().unwrap(), &load);
                problems.extend(check_run(&again, code, &expected));
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    if with_suffix(&fresh, suffix).exists() {
                        problems.push(format!("fresh db: state.db{suffix} left behind"));
                    }
                }
            }
        }
        let took = started.elapsed();
        eprintln!(
            "{name}: exit {} in {:.2}s: {}",
            run.code,
            took.as_secs_f64(),
            run.stderr.lines().next().map(truncate).unwrap_or_default()
        );
        if took.as_secs() > 20 {
            problems.push(format!("took {took:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
        let _ = std::fs::remove_dir_all(&scratch);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(nonzero >= 30, "{nonzero} failing cases");
}
