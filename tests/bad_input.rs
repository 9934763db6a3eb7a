//! Bad input: every case exits 2 with `file:line: what is wrong and how to fix it` (or the
//! file/directory name for problems that have no line), never panics, and leaves the
//! database exactly as it was — byte for byte for an existing database, and no file at all
//! for a path that had none.

mod common;

use std::path::{Path, PathBuf};

use common::{db, gzip, lines, Run, Workspace};

/// A small valid export with every table, loaded (and transformed) before each bad load.
fn write_good_export(ws: &Workspace, dir: &Path) {
    ws.write_in(
        dir,
        "accounts.csv",
        lines(&[
            "id,externalId,accountOwnerId,name,mrr",
            "a1,acme,u1,Acme,100",
            "a2,globex,,Globex,",
        ]),
    );
    ws.write_in(
        dir,
        "users.csv",
        lines(&["id,externalId,email", "u1,user-1,one@example.com"]),
    );
    ws.write_in(dir, "elements.csv", lines(&["id,name", "e1,Widgets"]));
    ws.write_in(
        dir,
        "element_counts.csv",
        lines(&["account_id,element_id,count", "a1,e1,3"]),
    );
    ws.write_in(dir, "success_metrics.csv", lines(&["id,name", "m1,Score"]));
    ws.write_in(
        dir,
        "metric_values.csv",
        lines(&["account_id,metric_id,value", "a1,m1,7"]),
    );
    ws.write_in(
        dir,
        "indicators.csv",
        lines(&["account_id,kind,name", "a1,risk,Churn"]),
    );
    ws.write_in(dir, "segments.csv", lines(&["account_id,name", "a2,VIP"]));
}

/// The database file and its WAL as bytes (`None` when absent).
fn snapshot(db: &Path) -> [(String, Option<Vec<u8>>); 2] {
    ["", "-wal"].map(|suffix| {
        let path = with_suffix(db, suffix);
        (path.display().to_string(), std::fs::read(&path).ok())
    })
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

/// Runs the load of `files` (name → bytes) against a database holding a good export and
/// against a fresh path, and checks the rules above. `location` must appear in stderr as
/// `error: <location>`; every one of `hints` must appear in the message.
#[track_caller]
fn assert_rejected(files: &[(&str, &[u8])], location: &str, hints: &[&str]) -> Run {
    let ws = Workspace::new();
    let good = ws.path().join("good");
    write_good_export(&ws, &good);
    ws.run(&["load", "--input", good.to_str().unwrap()]).ok();
    ws.transform(&[]).ok();
    // Some sync state too: it must survive a failed load.
    let (_, payload) = db::current_payload(&ws.db(), "company", "acme");
    db::record_pushed(&ws.db(), "company", "acme", &[0], &payload);
    let before = snapshot(&ws.db());
    assert!(before[0].1.is_some(), "the good load made a database");
    assert!(
        before[1].1.is_none(),
        "no -wal file is left once every connection is closed"
    );

    let bad = ws.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    for (name, bytes) in files {
        std::fs::write(bad.join(name), bytes).unwrap();
    }
    let run = ws.run(&["load", "--input", bad.to_str().unwrap()]);
    check_message(&run, location, hints);
    assert_eq!(
        snapshot(&ws.db()),
        before,
        "a failed load changed the database (or left a -wal behind)"
    );
    // The previous export is still the one transform and plan see.
    let plan = ws.run(&["plan", "--json", "--all"]);
    plan.ok();
    assert!(plan.stdout.contains("\"company_id\":\"globex\""));

    // Against a path with no database: nothing is left behind.
    let fresh = ws.path().join("fresh.db");
    let again = ws.run(&[
        "--db",
        fresh.to_str().unwrap(),
        "load",
        "--input",
        bad.to_str().unwrap(),
    ]);
    check_message(&again, location, hints);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = with_suffix(&fresh, suffix);
        assert!(!path.exists(), "{} left behind", path.display());
    }
    run
}

#[track_caller]
fn check_message(run: &Run, location: &str, hints: &[&str]) {
    run.expect_code(2);
    assert!(
        run.stderr.starts_with(&format!("error: {location}")),
        "expected the message to start with `error: {location}`:\n{}",
        run.stderr
    );
    for hint in hints {
        assert!(
            run.stderr.contains(hint),
            "expected {hint:?} in the message:\n{}",
            run.stderr
        );
    }
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
}

const ACCOUNTS: &[u8] = b"externalId,name\nacme,Acme\n";

#[test]
fn malformed_csv_unclosed_quote() {
    assert_rejected(
        &[(
            "accounts.csv",
            b"externalId,name\nacme,Acme\nglobex,\"Globex\ninitech,Initech\n",
        )],
        "accounts.csv:3:",
        &["never closed", "add the closing"],
    );
}

#[test]
fn ragged_csv_row() {
    assert_rejected(
        &[(
            "accounts.csv",
            b"externalId,name\nacme,Acme\nglobex,Globex,extra\n",
        )],
        "accounts.csv:3:",
        &["3 fields but the header has 2", "delimiter"],
    );
}

#[test]
fn invalid_utf8_in_csv() {
    assert_rejected(
        &[(
            "accounts.csv",
            b"externalId,name\nacme,Acme\nglobex,Glob\xffex\n",
        )],
        "accounts.csv:3:",
        &["not valid UTF-8", "re-export the file as UTF-8"],
    );
}

#[test]
fn invalid_utf8_in_ndjson() {
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"acme\"}\n{\"externalId\":\"glob\xffex\"}\n",
        )],
        "accounts.ndjson:2:",
        &["not valid UTF-8", "re-export the file as UTF-8"],
    );
}

#[test]
fn truncated_gzip() {
    let mut csv = String::from("externalId,name\n");
    for i in 0..20_000 {
        csv += &format!("account-{i},Name {i}\n");
    }
    let zipped = gzip(csv.as_bytes());
    let run = assert_rejected(
        &[("accounts.csv.gz", &zipped[..zipped.len() / 2])],
        "accounts.csv.gz:",
        &["gzip stream is truncated or corrupt", "re-download"],
    );
    // The line is where the stream broke, somewhere inside the file.
    let line: u64 = run.stderr["error: accounts.csv.gz:".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..=20_001).contains(&line), "{}", run.stderr);
}

#[test]
fn not_gzip_at_all() {
    assert_rejected(
        &[("accounts.csv.gz", ACCOUNTS)],
        "accounts.csv.gz:1:",
        &["gzip"],
    );
}

#[test]
fn empty_accounts_file() {
    assert_rejected(
        &[("accounts.csv", b"")],
        "accounts.csv:1:",
        &["empty", "header row"],
    );
    assert_rejected(
        &[("accounts.ndjson", b"")],
        "accounts.ndjson:1:",
        &["no accounts"],
    );
    assert_rejected(
        &[("accounts.json", b"[]")],
        "accounts.json:1:",
        &["no accounts"],
    );
}

#[test]
fn header_only_accounts_file() {
    assert_rejected(
        &[("accounts.csv", b"externalId,name\r\n")],
        "accounts.csv:1:",
        &["no accounts in the file", "empty"],
    );
}

#[test]
fn missing_external_id_column() {
    assert_rejected(
        &[("accounts.csv", b"id,name\na1,Acme\n")],
        "accounts.csv:1:",
        &["no `externalId` column", "found: id, name", "add it"],
    );
}

#[test]
fn empty_external_id() {
    assert_rejected(
        &[("accounts.csv", b"externalId,name\nacme,Acme\n,Nameless\n")],
        "accounts.csv:3:",
        &[
            "`externalId` is missing or empty",
            "every account needs one",
        ],
    );
    // JSON: null and "" are empty too; a missing key as well.
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"acme\"}\n{\"externalId\":null}\n",
        )],
        "accounts.ndjson:2:",
        &["`externalId` is missing or empty"],
    );
    assert_rejected(
        &[("accounts.ndjson", b"{\"name\":\"no id\"}\n")],
        "accounts.ndjson:1:",
        &["`externalId` is missing or empty"],
    );
}

#[test]
fn duplicate_external_id() {
    assert_rejected(
        &[(
            "accounts.csv",
            b"externalId,name\nacme,Acme\nglobex,Globex\nacme,Acme again\n",
        )],
        "accounts.csv:4:",
        &["duplicate account `acme`", "first at line 2", "appear once"],
    );
}

#[test]
fn duplicate_vitally_id() {
    assert_rejected(
        &[(
            "accounts.csv",
            b"id,externalId\na1,acme\na2,globex\na1,initech\n",
        )],
        "accounts.csv:4:",
        &["duplicate account `a1`", "first at line 2", "appear once"],
    );
}

#[test]
fn non_integer_element_count() {
    for bad in ["1.5", "many", "1e2", ""] {
        let counts = format!("account_id,element_id,count\nacme,Widgets,2\nacme,Gadgets,{bad}\n");
        assert_rejected(
            &[
                ("accounts.csv", ACCOUNTS),
                ("element_counts.csv", counts.as_bytes()),
            ],
            "element_counts.csv:3:",
            &[
                "element count for `Gadgets`",
                "not an integer",
                "integers ≥ 0",
            ],
        );
    }
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"acme\",\"currentElementCounts\":{\"Widgets\":2.5}}\n",
        )],
        "accounts.ndjson:1:",
        &["element count for `Widgets`", "not an integer"],
    );
}

#[test]
fn negative_element_count() {
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            (
                "element_counts.csv",
                b"account_id,element_id,count\nacme,Widgets,-1\n",
            ),
        ],
        "element_counts.csv:2:",
        &["-1 is negative", "integers ≥ 0"],
    );
}

#[test]
fn element_count_given_twice() {
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            (
                "element_counts.csv",
                b"account_id,element_id,count\nacme,Widgets,1\nacme,Widgets,2\n",
            ),
        ],
        "element_counts.csv:3:",
        &[
            "a second count for element `Widgets`",
            "give each (account, element) once",
        ],
    );
}

#[test]
fn unknown_indicator_kind() {
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            (
                "indicators.csv",
                b"account_id,kind,name\nacme,risk,Churn\nacme,danger,Fire\n",
            ),
        ],
        "indicators.csv:3:",
        &[
            "unknown indicator kind `danger`",
            "use `risk` or `opportunity`",
        ],
    );
}

#[test]
fn json_syntax_error_names_the_line() {
    assert_rejected(
        &[(
            "accounts.json",
            b"[\n  {\"externalId\": \"acme\"},\n  {\"externalId\": \"globex\",\n   \"name\": \"Globex\",}\n]\n",
        )],
        "accounts.json:4:",
        &["invalid JSON (trailing comma)", "fix the syntax"],
    );
    // A missing comma between elements: the line of the second element.
    assert_rejected(
        &[(
            "accounts.json",
            b"[\n  {\"externalId\": \"acme\"}\n  {\"externalId\": \"globex\"}\n]\n",
        )],
        "accounts.json:3:",
        &["expected `,` or `]`"],
    );
    // Truncated: the array is never closed.
    assert_rejected(
        &[("accounts.json", b"[\n  {\"externalId\": \"acme\"},\n")],
        "accounts.json:3:",
        &["truncated"],
    );
}

#[test]
fn json_that_is_not_an_array() {
    // (A `.json` file that starts with `{` is NDJSON, as BigQuery writes it.)
    assert_rejected(
        &[("accounts.json", b"\"acme\"\n")],
        "accounts.json:1:",
        &[
            "expected a JSON array of objects",
            "one JSON object per line",
        ],
    );
}

#[test]
fn json_array_of_non_objects() {
    assert_rejected(
        &[("accounts.json", b"[\n  \"acme, globex\",\n  2\n]\n")],
        "accounts.json:2:",
        &[
            "expected a JSON object for each row, found a string",
            "one object",
        ],
    );
    assert_rejected(
        &[("accounts.json", b"[{\"externalId\": \"acme\"}, [1]]")],
        "accounts.json:1:",
        &["found an array"],
    );
}

#[test]
fn ndjson_with_one_bad_line() {
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"a\"}\n\n{\"externalId\":\"b\"}\n{\"externalId\":\"c\" \"name\":1}\n{\"externalId\":\"d\"}\n",
        )],
        "accounts.ndjson:4:",
        &["invalid JSON", "one complete JSON object"],
    );
    // CRLF line ends and a truncated last line: still the right line.
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"a\"}\r\n{\"externalId\":\"b\"}\r\n{\"externalId\":\"c\"",
        )],
        "accounts.ndjson:3:",
        &["EOF while parsing"],
    );
    // A line that is valid JSON but not an object.
    assert_rejected(
        &[("accounts.ndjson", b"{\"externalId\":\"a\"}\n[\"b\"]\n")],
        "accounts.ndjson:2:",
        &["expected a JSON object", "found an array"],
    );
}

#[test]
fn two_files_for_one_table() {
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            ("accounts.json", b"[{\"externalId\":\"acme\"}]"),
        ],
        "accounts.json: ",
        &[
            "two files for the table `accounts`",
            "accounts.csv",
            "keep exactly one",
        ],
    );
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            ("users.csv", b"externalId\nu1\n"),
            ("users.csv.gz", &gzip(b"externalId\nu1\n")),
        ],
        "users.csv.gz: ",
        &["two files for the table `users`", "users.csv and this one"],
    );
}

#[test]
fn no_accounts_file() {
    let run = assert_rejected(
        &[("users.csv", b"externalId\nu1\n")],
        "",
        &[
            "no accounts file",
            "accounts.csv, accounts.json or accounts.ndjson",
        ],
    );
    // Named by the directory.
    assert!(run.stderr.starts_with("error: /"), "{}", run.stderr);
    assert!(run.stderr.contains("/bad: "), "{}", run.stderr);
}

#[test]
fn input_directory_missing() {
    let ws = Workspace::new();
    let missing = ws.path().join("nowhere");
    let run = ws.run(&["load", "--input", missing.to_str().unwrap()]);
    run.expect_code(2);
    assert!(run
        .stderr
        .contains("nowhere: cannot read the input directory"));
    assert!(run.stderr.contains("pass --input DIR"));
    assert!(!ws.db().exists(), "no database made for a failed load");
}

#[test]
fn mrr_not_a_number() {
    for (file, bytes) in [
        (
            "accounts.csv",
            &b"externalId,mrr\nacme,12\nglobex,lots\n"[..],
        ),
        ("accounts.csv", b"externalId,mrr\nacme,12\nglobex,NaN\n"),
        (
            "accounts.ndjson",
            b"{\"externalId\":\"acme\",\"mrr\":1}\n{\"externalId\":\"globex\",\"mrr\":\"12\"}\n",
        ),
    ] {
        assert_rejected(
            &[(file, bytes)],
            &format!("{file}:3:").replace(".ndjson:3", ".ndjson:2"),
            &["must be a number", "monthly_spend", "leave the cell empty"],
        );
    }
}

#[test]
fn duplicate_user_external_id() {
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            (
                "users.csv",
                b"externalId,email\nu1,a@example.com\nu2,b@example.com\nu1,c@example.com\n",
            ),
        ],
        "users.csv:4:",
        &["a second user with externalId `u1`", "once"],
    );
    // Without externalId, the email is the key.
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            (
                "users.csv",
                b"externalId,email\n,a@example.com\n,a@example.com\n",
            ),
        ],
        "users.csv:3:",
        &["a second user with email `a@example.com`"],
    );
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            ("users.csv", b"id,externalId\nv1,u1\nv1,u2\n"),
        ],
        "users.csv:3:",
        &["a second user with id `v1`", "unique"],
    );
}

#[test]
fn user_without_external_id_or_email() {
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            ("users.csv", b"id,externalId,email\nv1,u1,\nv2,,\n"),
        ],
        "users.csv:3:",
        &["neither `externalId` nor `email`", "found by one of them"],
    );
}

#[test]
fn child_table_missing_a_required_column() {
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            ("segments.csv", b"account,name\nacme,VIP\n"),
        ],
        "segments.csv:1:",
        &["no `account_id` column", "snake_case"],
    );
}

#[test]
fn embedded_collections_of_the_wrong_shape() {
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"a\",\"activeRiskIndicators\":\"Churn\"}\n",
        )],
        "accounts.ndjson:1:",
        &["`activeRiskIndicators`: expected an object name → date or an array of names, found a string"],
    );
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"a\",\"currentSuccessMetricValues\":{\"Score\":[1]}}\n",
        )],
        "accounts.ndjson:1:",
        &[
            "metric `Score` is an array",
            "single number, string or boolean",
        ],
    );
}

#[test]
fn unknown_file_is_a_warning_not_an_error() {
    let ws = Workspace::new();
    ws.write("accounts.csv", ACCOUNTS);
    ws.write("notes.txt", "hello");
    ws.write("accounts.csv.bak", "externalId\nzzz\n");
    ws.write("customers.csv", "externalId\nzzz\n");
    let run = ws.load();
    run.ok();
    assert_eq!(
        run.warnings(),
        vec![
            "accounts.csv.bak: not a table of the input contract; ignored",
            "customers.csv: not a table of the input contract; ignored",
            "notes.txt: not a table of the input contract; ignored",
        ]
    );
    assert!(run.stdout.contains("accounts 1"), "{}", run.stdout);
}

/// A failed load after a good one leaves the previous extract usable for transform too (the
/// byte comparison above covers plan; this checks the extract tables directly).
#[test]
fn failed_load_keeps_the_previous_extract_rows() {
    let ws = Workspace::new();
    ws.write(
        "accounts.csv",
        "externalId,name\nacme,Acme\nglobex,Globex\n",
    );
    ws.load().ok();
    ws.clear_export();
    ws.write("accounts.csv", "externalId,name\nnew,New\nnew,Dup\n");
    ws.load().expect_code(2);
    assert_eq!(db::account_external_ids(&ws.db()), vec!["acme", "globex"]);
    ws.transform(&[]).ok();
    assert_eq!(ws.plan_all().len(), 2);
}

#[test]
fn one_column_spelled_twice() {
    assert_rejected(
        &[(
            "accounts.csv",
            b"externalId,external_id,name\nacme,other,Acme\n",
        )],
        "accounts.csv:2:",
        &[
            "`externalId` and `external_id` are the same column",
            "keep one",
        ],
    );
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"acme\",\"accountOwnerId\":\"u1\",\"account_owner_id\":\"u2\"}\n",
        )],
        "accounts.ndjson:1:",
        &["`accountOwnerId` and `account_owner_id` are the same column"],
    );
    assert_rejected(
        &[
            ("accounts.csv", ACCOUNTS),
            ("segments.csv", b"account_id,accountId,name\nacme,x,VIP\n"),
        ],
        "segments.csv:1:",
        &["`account_id` and `accountId` are the same column"],
    );
}

#[test]
fn json_accounts_with_an_id_on_only_some() {
    // The first account decides whether accounts are referred to by `id`: a later one
    // cannot switch (its child rows would be silently unmatched).
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"externalId\":\"a\"}\n{\"id\":\"v2\",\"externalId\":\"b\"}\n",
        )],
        "accounts.ndjson:2:",
        &[
            "has an `id` but the first one has none",
            "give every account",
        ],
    );
    assert_rejected(
        &[(
            "accounts.ndjson",
            b"{\"id\":\"v1\",\"externalId\":\"a\"}\n{\"externalId\":\"b\"}\n",
        )],
        "accounts.ndjson:2:",
        &["`id` is empty, but other accounts have one"],
    );
}

#[test]
fn transform_and_plan_before_any_load() {
    let ws = Workspace::new();
    for args in [&["transform"][..], &["plan", "--json"], &["plan"]] {
        let run = ws.run(args);
        run.expect_code(2);
        assert!(
            run.stderr
                .contains("run `intercom-push load --input DIR` first"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!ws.db().exists(), "{args:?} created {}", ws.db().display());
    }
    // An existing database without an export: also exit 2. (It is not left byte-identical:
    // opening it adds intercom-push's tables and switches it to WAL.)
    rusqlite::Connection::open(ws.db())
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let run = ws.run(&["transform"]);
    run.expect_code(2);
    assert!(run.stderr.contains("holds no export yet"), "{}", run.stderr);
    let run = ws.run(&["plan", "--json"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("no export loaded yet"),
        "{}",
        run.stderr
    );
}

/// Deterministic mutations of the fixtures (bytes flipped, cut, inserted; gzip content
/// mutated inside a valid gzip): every load exits 0 or 2, never panics, every error names a
/// file of the export (`file:line: ` or `file: `), and a failed load on a new path leaves no
/// database file behind.
#[test]
fn mutated_fixtures_never_panic() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| -> usize {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    const INSERTS: [&[u8]; 9] = [
        b"\"",
        b",",
        b"\n",
        b"null",
        b"[{}]",
        b"-",
        b"1e999",
        b"\xff",
        b"{\"a\":[1]}",
    ];
    let ws = Workspace::new();
    let mut failures = 0;
    for round in 0..60 {
        let fixture = ["export", "vitally-json"][round % 2];
        let src = common::manifest_dir().join("fixtures").join(fixture);
        ws.clear_export();
        let mut names: Vec<String> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for name in &names {
            std::fs::copy(src.join(name), ws.export().join(name)).unwrap();
        }
        let victim = &names[next(names.len())];
        let raw = std::fs::read(src.join(victim)).unwrap();
        let gz = victim.ends_with(".gz");
        let mut data = if gz {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
                .unwrap();
            out
        } else {
            raw
        };
        for _ in 0..1 + next(3) {
            if data.is_empty() {
                break;
            }
            let i = next(data.len());
            match next(4) {
                0 => data[i] = next(256) as u8,
                1 => {
                    let end = (i + 1 + next(20)).min(data.len());
                    data.drain(i..end);
                }
                2 => data.truncate(i),
                _ => {
                    let insert = INSERTS[next(INSERTS.len())];
                    data.splice(i..i, insert.iter().copied());
                }
            }
        }
        let bytes = if gz { gzip(&data) } else { data };
        std::fs::write(ws.export().join(victim), bytes).unwrap();
        let _ = std::fs::remove_file(ws.db());
        let load = ws.load();
        let context = format!("round {round}, {fixture}/{victim}: {}", load.stderr);
        assert!(!load.stderr.contains("panicked"), "{context}");
        match load.code {
            0 => {
                let transform = ws.transform(&[]);
                assert!(
                    matches!(transform.code, 0 | 2),
                    "{context}\n{}",
                    transform.stderr
                );
                assert!(
                    !transform.stderr.contains("panicked"),
                    "{}",
                    transform.stderr
                );
            }
            2 => {
                failures += 1;
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let path = with_suffix(&ws.db(), suffix);
                    assert!(!path.exists(), "{context}\n{} left behind", path.display());
                }
                let message = load.stderr.strip_prefix("error: ").expect(&context);
                let (location, _) = message.split_once(": ").expect(&context);
                let file = location.split(':').next().unwrap();
                assert!(names.iter().any(|n| n == file), "{context}");
                if let Some((_, line)) = location.split_once(':') {
                    assert!(line.parse::<u64>().is_ok_and(|l| l >= 1), "{context}");
                }
            }
            other => panic!("exit {other}: {context}"),
        }
    }
    eprintln!("{failures} of 60 mutations rejected");
    assert!(failures >= 20, "most mutations are bad input: {failures}");
}
