//! Crash and resume, CI-sized: `push` of 2,000 changed companies killed with SIGKILL at a
//! random moment (seeded), then run again — 20 trials. Every trial must end with the mock's
//! state equal to the payloads, zero creates, and at most the in-flight window re-sent.

mod common;
mod mock_harness;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use intercom_push::mock::{MockConfig, MockServer, Seed, SeedCompany};
use mock_harness::*;
use serde_json::Value;

const N: usize = 2000;
const TRIALS: usize = 20;
/// `--concurrency`: the in-flight window.
const CONCURRENCY: u64 = 16;
/// Requests per 10 s for the client's governor and the mock: paces a push of 2,000 at ~2 s.
const RATE: &str = "12000";
const LATENCY: Duration = Duration::from_millis(5);

/// xorshift64*: a tiny seeded RNG, so the kill moments are the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn write_export(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("externalId,mrr,score,tier\n");
    for i in 0..N {
        csv.push_str(&format!(
            "acct-{i:04},{},{},{}\n",
            (i * 37) % 5000,
            i % 101,
            ["gold", "silver", "bronze"][i % 3]
        ));
    }
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
}

fn new_mock() -> MockServer {
    let mock = mock(MockConfig {
        latency: LATENCY,
        rate_limit: RATE.parse().unwrap(),
        ..MockConfig::default()
    });
    mock.seed(Seed {
        companies: (0..N)
            .map(|i| SeedCompany {
                company_id: format!("acct-{i:04}"),
                user_count: (i % 2) as u32,
                ..SeedCompany::default()
            })
            .collect(),
        contacts: vec![],
        data_attributes: vec![],
    })
    .unwrap();
    mock
}

fn push_args<'a>(db: &'a Path, url: &'a str) -> Vec<&'a str> {
    vec![
        "--quiet",
        "--db",
        db.to_str().unwrap(),
        "push",
        "--base-url",
        url,
        "--concurrency",
        "16",
        "--rate-limit",
        RATE,
        "--json",
    ]
}

fn push(db: &Path, mock: &MockServer) -> (i32, Value, String) {
    let url = mock.base_url();
    let out = Command::new(env!("CARGO_BIN_EXE_intercom-push"))
        .args(push_args(db, &url))
        .env("INTERCOM_ACCESS_TOKEN", TOKEN)
        .env_remove("INTERCOM_PUSH_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Companies in the mock whose custom_attributes or monthly_spend differ from the payload
/// (every payload's company must be there).
fn mismatches(payloads: &[Value], mock: &MockServer) -> Vec<String> {
    let state = mock.dump();
    let by_id: std::collections::HashMap<&str, &Value> = state["companies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["company_id"].as_str().unwrap(), c))
        .collect();
    let mut bad = Vec::new();
    for p in payloads.iter().filter(|p| p["type"] == "company") {
        let id = p["company_id"].as_str().unwrap();
        match by_id.get(id) {
            None => bad.push(format!("{id}: not in the mock")),
            Some(c) => {
                if c["custom_attributes"] != p["custom_attributes"] {
                    bad.push(format!(
                        "{id}: custom_attributes {} != payload {}",
                        c["custom_attributes"], p["custom_attributes"]
                    ));
                }
                if c["monthly_spend"].as_f64() != p["monthly_spend"].as_f64() {
                    bad.push(format!(
                        "{id}: monthly_spend {} != payload {}",
                        c["monthly_spend"], p["monthly_spend"]
                    ));
                }
            }
        }
    }
    bad
}

#[test]
fn twenty_pushes_killed_at_random_moments_resume_to_exactly_the_payloads() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    write_export(&input);
    // One export/transform for every trial: its database is copied.
    let template = tmp.path().join("template").join("s.db");
    std::fs::create_dir_all(template.parent().unwrap()).unwrap();
    let load = intercom_push(&template, &["load", "--input", input.to_str().unwrap()]);
    assert_eq!(load.code, 0, "{}", load.stderr);
    let transform = intercom_push(&template, &["transform"]);
    assert_eq!(transform.code, 0, "{}", transform.stderr);
    let payloads = payloads(&template);
    assert_eq!(
        payloads.iter().filter(|p| p["type"] == "company").count(),
        N
    );
    assert!(
        payloads
            .iter()
            .all(|p| p["type"] != "company"
                || p["custom_attributes"].as_object().unwrap().len() == 6),
        "every payload carries 6 attributes (3 fields, indicators and segments)"
    );

    let mut rng = XorShift(0x5eed_1e55_c0ff_ee01);
    let mut mid_push = 0;
    let mut total_resent = 0;
    let mut max_resent = 0;
    for trial in 0..TRIALS {
        let trial_started = Instant::now();
        let mock = new_mock();
        let db = copy_db(&template, &tmp.path().join(format!("trial-{trial}")));
        let url = mock.base_url();
        // The moment is random in progress, not in time (so the machine's speed does not
        // matter): every 5th trial dies 0–400 ms after start (start-up, attribute list,
        // directory scroll — before any PUT); the others as soon as the mock has applied a
        // random number of writes in [1, N).
        let early = trial % 5 == 0;
        let target = if early {
            0
        } else {
            1 + rng.next() % (N as u64 - 1)
        };
        let delay = Duration::from_millis(rng.next() % 400);
        let mut child = Command::new(env!("CARGO_BIN_EXE_intercom-push"))
            .args(push_args(&db, &url))
            .env("INTERCOM_ACCESS_TOKEN", TOKEN)
            .env_remove("INTERCOM_PUSH_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let spawned = Instant::now();
        if early {
            std::thread::sleep(delay);
        } else {
            while mock.stats().company_writes < target
                && spawned.elapsed() < Duration::from_secs(60)
                && child.try_wait().unwrap().is_none()
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let kill_after = spawned.elapsed();
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        // Let the mock finish what it had received when the process died.
        std::thread::sleep(LATENCY * 4 + Duration::from_millis(50));
        let written_before = mock.stats().company_writes;
        let committed = common::db::companies_pushed(&db);
        assert!(
            committed <= written_before,
            "trial {trial}: {committed} hashes saved but only {written_before} writes applied"
        );
        let killed_mid_push = committed > 0 && committed < N as u64;
        mid_push += usize::from(killed_mid_push);

        let (code, report, stderr) = push(&db, &mock);
        let writes = mock.stats().company_writes;
        let resent = writes.saturating_sub(N as u64);
        let bad = mismatches(&payloads, &mock);
        eprintln!(
            "crash_resume: trial {trial:2}: killed after {:4} ms ({}, target {target:4} writes), {committed:4}/{N} recorded, {written_before:4} applied, resume sent {:4} (exit {code}), re-sent {resent:2}, mismatches {}, {:.2} s",
            kill_after.as_millis(),
            if status.code().is_none() { "SIGKILL" } else { "had exited" },
            report["companies"]["updated"],
            bad.len(),
            trial_started.elapsed().as_secs_f64()
        );
        assert_eq!(code, 0, "trial {trial}: resume failed: {stderr}\n{report}");
        assert_eq!(
            count(&report, "companies", "updated"),
            N as u64 - committed,
            "trial {trial}: the resume sends exactly what was not recorded"
        );
        assert_eq!(common::db::companies_pushed(&db), N as u64, "trial {trial}");
        assert!(
            resent <= CONCURRENCY,
            "trial {trial}: {resent} writes were sent twice, more than the {CONCURRENCY} in flight"
        );
        assert_eq!(
            resent,
            written_before - committed,
            "trial {trial}: the only repeats are writes applied but not recorded before the kill"
        );
        assert!(
            bad.is_empty(),
            "trial {trial}: {} mismatches: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
        assert!(
            mock.violations().is_empty(),
            "trial {trial}: creates {:?}",
            mock.violations()
        );
        assert_eq!(mock.stats().violations, 0);
        total_resent += resent;
        max_resent = max_resent.max(resent);
    }
    eprintln!(
        "crash_resume: {TRIALS} trials, {mid_push} killed mid-push, re-sent writes total {total_resent} (max {max_resent} per trial, window {CONCURRENCY}), mismatches 0, creates 0, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        mid_push >= TRIALS * 7 / 10,
        "only {mid_push} of {TRIALS} kills landed while records were being pushed"
    );
}
