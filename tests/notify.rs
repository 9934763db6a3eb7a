//! Notifications (`notify_url`, `notify_on`) through the binary, received on 127.0.0.1
//! (issue 27, part 2).

mod mock_harness;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercom_push::mock::MockConfig;
use mock_harness::*;
use serde_json::Value;

/// A webhook receiver on 127.0.0.1: every body it was POSTed, answered 200.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (bodies, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let (seen, stopped) = (bodies.clone(), stop.clone());
        std::thread::spawn(move || {
            for _ in 0..6000 {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = stream.read(&mut chunk).unwrap();
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length || n == 0 {
                            break body.to_string();
                        }
                    }
                };
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Receiver { url, bodies, stop }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_run_whose_records_partly_failed_notifies_once_without_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig {
        fail_company_ids: vec!["b".into()],
        ..MockConfig::default()
    });
    seed_small(&mock);
    small_export(&input, "u1", "6");
    let receiver = Receiver::start();
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--notify-url", &receiver.url]);
    assert_eq!(code, 1, "{stderr}");
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let text = bodies[0].to_string();
    assert!(
        bodies[0]["text"]
            .as_str()
            .unwrap()
            .contains("some records failed (exit 1)"),
        "{text}"
    );
    assert!(text.contains("500 server_error"), "the error code: {text}");
    assert!(text.contains("1 failed"), "{text}");
    for secret in [TOKEN, "@x.example", "200.5"] {
        assert!(!text.contains(secret), "the message holds {secret}: {text}");
    }
}

#[test]
fn a_success_is_notified_only_when_asked_and_a_failed_notification_keeps_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, input) = (tmp.path().join("s.db"), tmp.path().join("in"));
    let mock = mock(MockConfig::default());
    seed_small(&mock);
    small_export(&input, "u1", "6");
    let receiver = Receiver::start();
    let (code, _, stderr) = run_json(&db, &input, &mock, &["--notify-url", &receiver.url]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        receiver.bodies().is_empty(),
        "a success notified by default"
    );

    let config = tmp.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "notify_url = {:?}\nnotify_on = [\"always\"]\n",
            receiver.url
        ),
    )
    .unwrap();
    let url = mock.base_url();
    let always = intercom_push(
        &db,
        &[
            "--config",
            config.to_str().unwrap(),
            "push",
            "--base-url",
            &url,
        ],
    );
    assert_eq!(always.code, 0, "{}", always.stderr);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        bodies[0]["text"]
            .as_str()
            .unwrap()
            .contains("push: success (exit 0)"),
        "{bodies:?}"
    );

    // Nobody listens: a warning and a metric, the same exit code.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    let metrics = tmp.path().join("run.prom");
    std::fs::write(
        &config,
        format!("notify_url = {closed:?}\nnotify_on = [\"always\"]\n"),
    )
    .unwrap();
    let failed = intercom_push(
        &db,
        &[
            "--config",
            config.to_str().unwrap(),
            "push",
            "--base-url",
            &url,
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(failed.code, 0, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("could not notify"),
        "{}",
        failed.stderr
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("intercom_push_notify_failures_total 1"),
        "{prom}"
    );
}
