//! Private state: the database, its `-wal`/`-shm` files and the lock file are 0600 whatever
//! the umask; a database others can write is refused with the `chmod` that fixes it; the
//! `runs` history is bounded by `runs_keep`.

mod common;
mod mock_harness;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use intercom_push::mock::{MockConfig, Seed, SeedCompany};
use mock_harness::{intercom_push, mock, TOKEN};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn with_suffix(db: &Path, suffix: &str) -> std::path::PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(suffix);
    path.into()
}

#[test]
fn database_wal_shm_and_lock_file_are_created_0600_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("state.db");
    let input = common::manifest_dir().join("fixtures/export");
    // Answers held back long enough that the run is still in its push when it is killed.
    let mock = mock(MockConfig {
        latency: std::time::Duration::from_secs(30),
        ..MockConfig::default()
    });
    mock.seed(Seed {
        companies: vec![SeedCompany {
            company_id: "acme".into(),
            ..SeedCompany::default()
        }],
        ..Seed::default()
    })
    .unwrap();
    let url = mock.base_url();
    // `umask 000` would let SQLite's default 0644 (and anyone's 0666) through.
    let mut child = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\"", common::BIN])
        .args(["--quiet", "--db", db.to_str().unwrap(), "run", "--input"])
        .arg(&input)
        .args(["--base-url", &url])
        .env("INTERCOM_ACCESS_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first request reaches the mock once load and transform are done: then the database
    // is open (with its -wal and -shm) and the run lock held. Killed, it leaves them all.
    while mock.stats().total_requests == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended before its push: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let path = with_suffix(&db, suffix);
        assert_eq!(
            mode(&path),
            0o600,
            "{} is {:o}",
            path.display(),
            mode(&path)
        );
    }
}

#[test]
fn a_database_other_users_can_write_is_refused_with_the_chmod_that_fixes_it() {
    let ws = common::Workspace::new();
    std::fs::copy(
        common::manifest_dir().join("fixtures/export/accounts.csv"),
        ws.export().join("accounts.csv"),
    )
    .unwrap();
    ws.load().ok();
    assert_eq!(mode(&ws.db()), 0o600);
    std::fs::set_permissions(ws.db(), std::fs::Permissions::from_mode(0o664)).unwrap();
    let before = std::fs::read(ws.db()).unwrap();

    let refused = ws.run(&["status"]);
    refused.expect_code(2);
    let db = ws.db().display().to_string();
    let fix = format!("chmod 600 {db}");
    assert!(
        refused.stderr.contains(&format!("`{fix}`")),
        "{}",
        refused.stderr
    );
    assert_eq!(
        refused.stderr.matches("error:").count(),
        1,
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read(ws.db()).unwrap(),
        before,
        "the refused database was written"
    );
    let refused_run = ws.run(&["run", "--input", ws.export().to_str().unwrap(), "--dry-run"]);
    refused_run.expect_code(2);

    // The command it gives fixes it.
    let fixed = Command::new("sh").args(["-c", &fix]).status().unwrap();
    assert!(fixed.success());
    ws.run(&["status"]).ok();
}

#[test]
fn runs_keep_bounds_the_runs_history_to_the_most_recent_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("state.db");
    let input = common::manifest_dir().join("fixtures/export");
    let mock = mock(MockConfig::default());
    let url = mock.base_url();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--input",
            input.to_str().unwrap(),
            "--base-url",
            &url,
        ];
        args.extend_from_slice(extra);
        let run = intercom_push(&db, &args);
        assert_eq!(run.code, 0, "{}", run.stderr);
    };
    for _ in 0..4 {
        run(&["--runs-keep", "2"]);
    }
    assert_eq!(
        common::db::run_ids(&db),
        vec![3, 4],
        "the two most recent runs"
    );

    // From the config file, and the default (400) keeps them all.
    let config = tmp.path().join("intercom-push.toml");
    std::fs::write(&config, "runs_keep = 3\n").unwrap();
    run(&[]);
    run(&[]);
    assert_eq!(common::db::run_ids(&db), vec![3, 4, 5, 6]);
    run(&["--config", config.to_str().unwrap()]);
    assert_eq!(common::db::run_ids(&db), vec![5, 6, 7]);
}
