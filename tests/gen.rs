//! `gen`: the real binary, in a temporary directory. No timing assertions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_intercom-push");

fn run(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run intercom-push");
    assert!(
        output.status.success(),
        "intercom-push {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every file of an export directory, name → bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn gen(root: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["gen", "--out", name];
    args.extend_from_slice(extra);
    run(root, &args);
    root.join(name)
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for format in [
        &["--format", "csv"][..],
        &["--format", "ndjson", "--gzip"][..],
    ] {
        let mut a = vec!["--accounts", "300", "--seed", "5"];
        a.extend_from_slice(format);
        let tag = format.join("");
        let first = files(&gen(root, &format!("a{tag}"), &a));
        let second = files(&gen(root, &format!("b{tag}"), &a));
        assert_eq!(first.len(), 8, "{:?}", first.keys());
        assert_eq!(first, second, "same seed, different bytes ({tag})");
        a[3] = "6";
        let other = files(&gen(root, &format!("c{tag}"), &a));
        let differing = first
            .iter()
            .filter(|(name, bytes)| other.get(*name) != Some(bytes))
            .count();
        // The two catalogs are fixed; every per-account table differs.
        assert_eq!(differing, 6, "other seed ({tag})");
    }
}

fn plan_lines(root: &Path, db: &str) -> usize {
    let out = run(root, &["--db", db, "plan", "--json"]);
    out.stdout.iter().filter(|&&b| b == b'\n').count()
}

fn load_and_transform(root: &Path, db: &str, input: &Path) {
    run(
        root,
        &["--db", db, "load", "--input", input.to_str().unwrap()],
    );
    run(root, &["--db", db, "transform"]);
}

#[test]
fn generated_exports_load_and_plan_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (name, extra) in [
        ("csv", &["--format", "csv"][..]),
        ("ndjson", &["--format", "ndjson", "--gzip"][..]),
    ] {
        let mut args = vec!["--accounts", "500", "--seed", "11"];
        args.extend_from_slice(extra);
        let dir = gen(root, name, &args);
        let db = format!("{name}.db");
        load_and_transform(root, &db, &dir);
        let users = if name == "csv" {
            let text = std::fs::read_to_string(dir.join("users.csv")).unwrap();
            text.lines().count() - 1
        } else {
            let raw = std::fs::read(dir.join("users.ndjson.gz")).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(raw.as_slice()),
                &mut text,
            )
            .unwrap();
            text.lines().count()
        };
        assert!(
            users > 1000 && users < 2000,
            "≈3 users per account: {users}"
        );
        assert_eq!(plan_lines(root, &db), 500 + users, "{name}");
    }
    // Both formats describe the same export: the same payloads.
    let csv = run(root, &["--db", "csv.db", "plan", "--json", "--all"]).stdout;
    let ndjson = run(root, &["--db", "ndjson.db", "plan", "--json", "--all"]).stdout;
    assert!(
        csv == ndjson,
        "CSV and NDJSON exports of one seed give other payloads"
    );
}

fn hashes(db: &Path, kind: &str) -> BTreeMap<String, Vec<u8>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT record_key, hash FROM records WHERE kind = ?1 AND hash IS NOT NULL")
        .unwrap();
    stmt.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn mutate_changes_the_chosen_share_of_companies_and_no_user() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = gen(root, "export", &["--accounts", "1000", "--seed", "3"]);
    let copy = gen(root, "copy", &["--accounts", "1000", "--seed", "3"]);
    load_and_transform(root, "state.db", &dir);
    let companies = hashes(&root.join("state.db"), "company");
    let users = hashes(&root.join("state.db"), "user");
    assert_eq!(companies.len(), 1000);

    run(
        root,
        &["gen", "--mutate", "10", "--seed", "9", "--out", "export"],
    );
    load_and_transform(root, "state.db", &dir);
    let after = hashes(&root.join("state.db"), "company");
    assert_eq!(after.len(), 1000);
    let changed = companies
        .iter()
        .filter(|(key, hash)| after.get(*key) != Some(hash))
        .count();
    assert!((80..=120).contains(&changed), "{changed} companies changed");
    assert_eq!(
        hashes(&root.join("state.db"), "user"),
        users,
        "users changed"
    );

    // Deterministic: the same mutation of the same export gives the same bytes.
    run(
        root,
        &["gen", "--mutate", "10", "--seed", "9", "--out", "copy"],
    );
    assert_eq!(files(&dir), files(&copy));
}

#[test]
fn mutate_ndjson_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let args = [
        "--accounts",
        "400",
        "--seed",
        "4",
        "--format",
        "ndjson",
        "--gzip",
    ];
    let dir = gen(root, "export", &args);
    load_and_transform(root, "state.db", &dir);
    let companies = hashes(&root.join("state.db"), "company");
    run(
        root,
        &["gen", "--mutate", "25", "--seed", "1", "--out", "export"],
    );
    load_and_transform(root, "state.db", &dir);
    let after = hashes(&root.join("state.db"), "company");
    let changed = companies
        .iter()
        .filter(|(key, hash)| after.get(*key) != Some(hash))
        .count();
    assert_eq!(changed, 100);
}

#[test]
fn refuses_a_second_format_in_the_same_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    gen(root, "export", &["--accounts", "10"]);
    let output = Command::new(BIN)
        .current_dir(root)
        .args([
            "gen",
            "--accounts",
            "10",
            "--format",
            "ndjson",
            "--out",
            "export",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
}
