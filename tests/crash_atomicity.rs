//! `kill -9` during `load` and `transform`: afterwards the database holds exactly the old
//! extract or exactly the new one (never a mix); the payloads are all old, all new, or —
//! `transform` commits in steps of 25,000 records — marked unfinished, which `plan` and
//! `push` refuse and the next `transform` completes. Kill moments are seeded, spread over the
//! measured duration of an uninterrupted run, and the test checks that kills did land
//! mid-operation. The first load into a new database (written under a rollback journal, not
//! the WAL) is killed too: it leaves a database with no export, which the next load fills.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::Xxh3;

const BIN: &str = env!("CARGO_BIN_EXE_intercom-push");
/// Accounts in export A (B has 1,000 more and other values): large enough that a load or a
/// transform takes about a second, so that kills land inside it.
const ACCOUNTS: usize = 60_000;
const TRIALS: usize = 5;

/// Writes an export: accounts with three fields and one element count each.
fn write_export(dir: &Path, accounts: usize, variant: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("externalId,plan,seats,region\n");
    let mut counts = String::from("account_id,element_id,count\n");
    for i in 0..accounts {
        csv += &format!("acct-{i:07},{variant}{},{},eu-{}\n", i % 5, i % 97, i % 13);
        counts += &format!("acct-{i:07},Widgets {variant},{}\n", i % 11);
    }
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
    std::fs::write(dir.join("element_counts.csv"), counts).unwrap();
}

fn command(db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--db")
        .arg(db)
        .arg("--quiet")
        .args(args)
        .env_remove("INTERCOM_PUSH_CONFIG")
        .env_remove("INTERCOM_PUSH_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[track_caller]
fn run_ok(db: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = command(db, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Digest of every row the query returns (all columns as text).
fn digest_query(conn: &rusqlite::Connection, sql: &str, hasher: &mut Xxh3) -> u64 {
    let mut stmt = conn.prepare(sql).unwrap();
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let mut n = 0;
    while let Some(row) = rows.next().unwrap() {
        for c in 0..columns {
            let value: rusqlite::types::Value = row.get(c).unwrap();
            hasher.update(format!("{value:?}\u{1f}").as_bytes());
        }
        hasher.update(b"\x1e");
        n += 1;
    }
    n
}

/// (accounts, max external_id, digest of the extract tables).
fn extract_state(db: &Path) -> (i64, String, u128) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let (count, max): (i64, String) = conn
        .query_row("SELECT COUNT(*), MAX(external_id) FROM accounts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let mut hasher = Xxh3::new();
    for sql in [
        "SELECT account_key, external_id, vitally_id, owner_ref, fields FROM accounts ORDER BY account_key",
        "SELECT account_key, children FROM account_children ORDER BY account_key",
        "SELECT * FROM elements ORDER BY 1",
        "SELECT field_key, name, kind FROM account_fields ORDER BY field_key",
    ] {
        hasher.update(sql.as_bytes());
        digest_query(&conn, sql, &mut hasher);
    }
    (count, max, hasher.digest128())
}

/// (payload rows, digest of `kind, record_key, hex(hash)` of every payload).
fn payload_state(db: &Path) -> (u64, u128) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut hasher = Xxh3::new();
    let n = digest_query(
        &conn,
        "SELECT kind, record_key, hex(hash) FROM records WHERE hash IS NOT NULL ORDER BY kind, record_key",
        &mut hasher,
    );
    digest_query(&conn, "SELECT * FROM attributes ORDER BY 1", &mut hasher);
    (n, hasher.digest128())
}

/// Seeded kill moments between 50 ms and 90 % of `duration`.
fn moments(seed: u64, duration: Duration) -> Vec<Duration> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let span = duration.as_millis().saturating_sub(50).max(1) as u64 * 9 / 10;
    (0..TRIALS)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Spread: trial i falls in the i-th fifth of the span.
            let slot = span / TRIALS as u64;
            Duration::from_millis(50 + slot * i as u64 + state % slot.max(1))
        })
        .collect()
}

/// Starts `args`, kills it with SIGKILL after `after`. Returns whether it was still
/// running when killed.
fn kill_after(db: &Path, args: &[&str], after: Duration) -> bool {
    let mut child = command(db, args).spawn().unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    if running {
        child.kill().unwrap(); // SIGKILL
    }
    let status = child.wait().unwrap();
    if !running {
        assert!(status.success(), "{args:?} failed on its own: {status:?}");
    }
    running
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn kill_9_during_load_and_transform_never_leaves_a_mix_that_plan_or_push_would_use() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let export_a = tmp.path().join("a");
    let export_b = tmp.path().join("b");
    write_export(&export_a, ACCOUNTS, "a");
    write_export(&export_b, ACCOUNTS + 1000, "b");
    let db: PathBuf = tmp.path().join("state.db");

    // References: A, then B and A again loaded without interruption (timed: the faster of
    // the two, so that one slow run on a busy machine does not put the kills after the end).
    run_ok(&db, &["load", "--input", path_str(&export_a)]);
    let state_a = extract_state(&db);
    let load_time = run_ok(&db, &["load", "--input", path_str(&export_b)]);
    let state_b = extract_state(&db);
    assert_eq!(state_a.0, ACCOUNTS as i64);
    assert_eq!(state_b.0, ACCOUNTS as i64 + 1000);
    assert_ne!(state_a.2, state_b.2);
    let load_time = load_time.min(run_ok(&db, &["load", "--input", path_str(&export_a)]));
    assert_eq!(extract_state(&db), state_a);

    // ── load ──
    let mut current = 'A';
    let mut mid_load = 0;
    let mut load_outcomes = Vec::new();
    for (i, at) in moments(1, load_time).into_iter().enumerate() {
        let (next, input) = if current == 'A' {
            ('B', &export_b)
        } else {
            ('A', &export_a)
        };
        let killed = kill_after(&db, &["load", "--input", path_str(input)], at);
        let state = extract_state(&db);
        let now = if state == state_a {
            'A'
        } else if state == state_b {
            'B'
        } else {
            panic!(
                "trial {i} (kill at {at:?}): the extract is neither A nor B: {} accounts, max {}",
                state.0, state.1
            );
        };
        if killed {
            mid_load += 1;
        } else {
            assert_eq!(
                now, next,
                "trial {i}: a load that finished must have committed"
            );
        }
        assert!(now == current || now == next);
        load_outcomes.push(format!(
            "{at:?}:{}→{now}",
            if killed { "killed" } else { "done" }
        ));
        current = now;
        // The database is usable: transform and plan work on it.
        run_ok(&db, &["transform"]);
        run_ok(&db, &["plan", "--limit", "1"]);
    }
    eprintln!("load (uninterrupted {load_time:?}): {load_outcomes:?}");
    assert!(
        mid_load >= 2,
        "only {mid_load} kills landed before the load finished: {load_outcomes:?}"
    );

    // ── transform ──
    // References: V (the payloads may be those already), then O and V again (timed: the
    // faster of the two).
    run_ok(&db, &["transform"]);
    let payloads_v = payload_state(&db);
    let transform_time = run_ok(&db, &["transform", "--prefix", "Other"]);
    let payloads_o = payload_state(&db);
    let transform_time = transform_time.min(run_ok(&db, &["transform"]));
    assert_eq!(payload_state(&db), payloads_v);
    assert_ne!(payloads_v.1, payloads_o.1);
    assert!(payloads_v.0 >= ACCOUNTS as u64);
    let mut current = 'V';
    let mut mid_transform = 0;
    let mut unfinished = 0;
    let mut outcomes = Vec::new();
    for (i, at) in moments(2, transform_time).into_iter().enumerate() {
        let (next, args): (char, &[&str]) = if current == 'O' {
            ('V', &["transform"])
        } else {
            ('O', &["transform", "--prefix", "Other"])
        };
        let killed = kill_after(&db, args, at);
        let state = payload_state(&db);
        let now = if state == payloads_v {
            'V'
        } else if state == payloads_o {
            'O'
        } else {
            // Killed between two steps: plan and push must refuse what is half written, and
            // the next transform must finish it.
            assert!(killed, "trial {i}: a transform that finished left a mix");
            // (push stops before any request: nothing listens on the discard port.)
            let push = ["push", "--base-url", "http://127.0.0.1:9"];
            for refused in [&["plan", "--limit", "1"][..], &push[..]] {
                let out = command(&db, refused)
                    .env("INTERCOM_ACCESS_TOKEN", "not-a-real-token")
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(
                    out.status.code(),
                    Some(2),
                    "trial {i}: {refused:?} after a transform killed between steps: {stderr}"
                );
                assert!(stderr.contains("did not finish"), "trial {i}: {stderr}");
            }
            unfinished += 1;
            run_ok(&db, args);
            let finished = payload_state(&db);
            assert!(
                finished == if next == 'V' { payloads_v } else { payloads_o },
                "trial {i} (kill at {at:?}): the transform after the kill did not finish the payloads"
            );
            next
        };
        if killed {
            mid_transform += 1;
        } else {
            assert_eq!(
                now, next,
                "trial {i}: a transform that finished must have committed"
            );
        }
        assert!(now == current || now == next);
        outcomes.push(format!(
            "{at:?}:{}→{now}",
            if killed { "killed" } else { "done" }
        ));
        current = now;
        run_ok(&db, &["plan", "--limit", "1"]);
    }
    eprintln!(
        "transform (uninterrupted {transform_time:?}, {unfinished} killed between steps): {outcomes:?}"
    );
    assert!(
        unfinished >= 1,
        "no kill landed between two steps of the transform: {outcomes:?}"
    );
    assert!(
        mid_transform >= 2,
        "only {mid_transform} kills landed before the transform finished: {outcomes:?}"
    );
    // And the extract was untouched by the transform kills.
    let extract = extract_state(&db);
    assert!(extract == state_a || extract == state_b);
    eprintln!("total {:?}", started.elapsed());
}

#[test]
fn kill_9_during_the_first_load_into_a_new_database_leaves_no_export_and_the_next_load_works() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("a");
    write_export(&export, ACCOUNTS, "a");
    let load = ["load", "--input", path_str(&export)];
    // Reference: the same load into two new databases, uninterrupted (timed: the faster).
    let reference = |name: &str| {
        let db = tmp.path().join(name);
        (run_ok(&db, &load), extract_state(&db))
    };
    let (first, state) = reference("reference-1.db");
    let (second, again) = reference("reference-2.db");
    assert_eq!(state, again);
    assert_eq!(state.0, ACCOUNTS as i64);

    let mut outcomes = Vec::new();
    for (i, at) in moments(2, first.min(second)).into_iter().enumerate() {
        let db = tmp.path().join(format!("new-{i}.db"));
        let killed = kill_after(&db, &load, at);
        if killed && db.exists() {
            // Opening it rolls the killed load back: a database without an export; or the
            // kill came after the commit (a loaded machine): the whole export, not a part.
            let out = command(&db, &["plan"]).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "trial {i}: {stderr}");
            let committed = stderr.contains("the payloads are older than the last load");
            assert!(
                stderr.contains("no export loaded yet") || committed,
                "trial {i}: {stderr}"
            );
            if committed {
                assert_eq!(extract_state(&db), state, "trial {i}: a part of the export");
            }
        }
        run_ok(&db, &load);
        assert_eq!(extract_state(&db), state, "trial {i} (kill at {at:?})");
        let mut journal = db.clone().into_os_string();
        journal.push("-journal");
        assert!(
            !Path::new(&journal).exists(),
            "trial {i}: a -journal is left"
        );
        outcomes.push(format!("{at:?}:{}", if killed { "killed" } else { "done" }));
    }
    eprintln!("first load (uninterrupted {first:?}, {second:?}): {outcomes:?}");
    let killed = outcomes.iter().filter(|o| o.ends_with("killed")).count();
    assert!(
        killed >= 2,
        "only {killed} kills landed during the load: {outcomes:?}"
    );
}
