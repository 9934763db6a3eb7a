//! "Say each thing once, and say it right" (issue 14): regression tests, each named for the
//! bug a new user met.

mod common;
mod mock_harness;

use std::process::Command;

use common::{Run, Workspace, BIN};

fn fixtures() -> std::path::PathBuf {
    common::manifest_dir().join("fixtures/export")
}

fn output(out: std::process::Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `error:` line of a failed run, which must be its only one.
#[track_caller]
fn error_line(run: &Run) -> String {
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    errors[0].to_string()
}

#[test]
fn disk_full_during_load_printed_the_sqlite_message_twice() {
    let ws = Workspace::new();
    let db = ws.db();
    let small = Command::new(BIN)
        .args(["--quiet", "--db", db.to_str().unwrap(), "load", "--input"])
        .arg(fixtures())
        .output()
        .unwrap();
    assert!(small.status.success());
    ws.transform(&[]).ok();
    let big = ws.path().join("big");
    let generated = Command::new(BIN)
        .args(["gen", "--accounts", "3000", "--out", big.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(generated.status.success());
    // A full disk without root: a file-size limit (RLIMIT_FSIZE) on the child, with SIGXFSZ
    // ignored so that the write fails (EFBIG) instead of killing it. SQLite reports it as a
    // write error, as it reports a quota; a full disk is SQLITE_FULL: one hint for both.
    let full = output(
        Command::new("sh")
            .args([
                "-c",
                "trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\"",
                BIN,
            ])
            .args(["--quiet", "--db", db.to_str().unwrap(), "load", "--input"])
            .arg(&big)
            .output()
            .unwrap(),
    );
    full.expect_code(3);
    let line = error_line(&full);
    assert_eq!(line.matches("disk I/O error").count(), 1, "{line}");
    assert_eq!(line.matches("Error writing to disk").count(), 1, "{line}");
    assert!(
        line.contains("free space on the database's filesystem or move the database"),
        "{line}"
    );
    // Rolled back: the previous export is still the one loaded (its payloads still fresh).
    let plan = ws.run(&["plan", "--json", "--all"]);
    plan.ok();
    assert_eq!(
        plan.ndjson()
            .iter()
            .filter(|l| l["type"] == "company")
            .count(),
        20
    );
}

#[test]
fn an_unreachable_base_url_printed_the_connection_error_twice() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let ws = Workspace::new();
    let run = ws.run_env(
        &[
            "--quiet",
            "run",
            "--input",
            fixtures().to_str().unwrap(),
            "--base-url",
            &url,
        ],
        &[("INTERCOM_ACCESS_TOKEN", mock_harness::TOKEN)],
    );
    run.expect_code(3);
    let line = error_line(&run);
    assert_eq!(line.matches("Connection refused").count(), 1, "{line}");
    assert_eq!(line.matches("Intercom").count(), 1, "{line}");
    assert!(
        line.starts_with("error: Intercom GET /data_attributes failed"),
        "{line}"
    );
}

#[test]
fn the_demos_first_run_said_its_load_was_skipped_on_a_brand_new_database() {
    let out = output(
        Command::new(BIN)
            .args(["--quiet", "demo", "--input"])
            .arg(fixtures())
            .env_remove("INTERCOM_PUSH_DB")
            .env_remove("INTERCOM_PUSH_CONFIG")
            .output()
            .unwrap(),
    );
    out.ok();
    assert!(!out.stderr.contains("loaded 0 accounts"), "{}", out.stderr);
    let loaded = "loaded 20 accounts; computed 20 company and 9 user payloads";
    let skipped = "load skipped: export unchanged since export #1 (the same files), using its 20 accounts and 9 users; computed 20 company and 9 user payloads";
    assert_eq!(out.stderr.matches(loaded).count(), 1, "{}", out.stderr);
    assert_eq!(out.stderr.matches(skipped).count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.find(loaded) < out.stderr.find(skipped),
        "{}",
        out.stderr
    );
}

#[test]
fn the_demo_refused_to_run_outside_the_repository_root() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = output(
        Command::new(BIN)
            .args(["--quiet", "demo"])
            .current_dir(elsewhere.path())
            .env_remove("INTERCOM_PUSH_DB")
            .env_remove("INTERCOM_PUSH_CONFIG")
            .output()
            .unwrap(),
    );
    out.ok();
    assert!(out.stdout.contains("0 create attempts"), "{}", out.stdout);
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "the demo left files in the working directory"
    );
}

#[test]
fn load_on_a_terminal_showed_a_spinner_with_a_fractional_rate_instead_of_a_bar() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("no `script` (util-linux) to give the load a terminal: skipped");
        return;
    }
    let ws = Workspace::new();
    let load = format!(
        "'{BIN}' --db '{}' load --input '{}'",
        ws.db().display(),
        fixtures().display()
    );
    // `script` runs the load on a pseudo-terminal and copies what it drew.
    let out = output(
        Command::new("script")
            .args(["-qefc", &load, "/dev/null"])
            .output()
            .unwrap(),
    );
    out.ok();
    let screen = out.stdout.replace('\r', "\n");
    let frame = screen
        .lines()
        .find(|l| l.contains("loading accounts.csv ["))
        .unwrap_or_else(|| panic!("no bar for accounts.csv:\n{screen}"));
    let size = std::fs::metadata(fixtures().join("accounts.csv"))
        .unwrap()
        .len();
    assert!(frame.contains('%') && frame.contains(", ETA "), "{frame}");
    let size = indicatif::HumanBytes(size).to_string();
    assert!(
        frame.contains(&format!("/{size}, ")),
        "not against the file size: {frame}"
    );
    let rate = frame
        .split(" rows (")
        .nth(1)
        .and_then(|r| r.split("/s)").next())
        .unwrap_or_else(|| panic!("no rate: {frame}"));
    assert!(
        rate.chars().all(|c| c.is_ascii_digit() || c == ','),
        "the rate is not a whole number: {frame}"
    );
}
