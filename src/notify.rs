//! Notifications: after a `run` or `push` whose outcome the team asked for (`notify_on`), one
//! JSON message POSTed to `notify_url`, in Slack's incoming-webhook shape (`text` and
//! `blocks`), which any other webhook receiver takes as well.
//!
//! Contract: the message holds counts, the exit code, Intercom's error codes, the duration and
//! the database path, never the token, an email or revenue (an error text is cut to its
//! first line and any word holding `@` is left out). Delivery: 10 s per attempt, 3 attempts
//! with backoff; a failure is a warning and a metric, never another exit code.

use std::time::Duration;

use serde_json::{json, Value};

use crate::metrics::RunSummary;

/// When a notification is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// The run failed (exit 3: the database, the disk, Intercom unreachable…).
    Failure,
    /// Some records failed (exit 1).
    Partial,
    /// Bad input or settings, or a guard stopped the run (exit 2).
    Refused,
    /// The run's reconcile found values changed behind the tool's back.
    Drift,
    /// Every run.
    Always,
}

/// The default `notify_on`.
pub const DEFAULT_ON: [NotifyOn; 3] = [NotifyOn::Failure, NotifyOn::Partial, NotifyOn::Refused];

/// Where and when to notify.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifySettings {
    pub url: String,
    pub on: Vec<NotifyOn>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not notify {url}: {reason}")]
pub struct NotifyError {
    url: String,
    reason: String,
}

/// What the run's exit code says, as `notify_on` names it (`None`: a success).
fn outcome(exit_code: u8) -> Option<NotifyOn> {
    match exit_code {
        0 => None,
        1 => Some(NotifyOn::Partial),
        2 => Some(NotifyOn::Refused),
        _ => Some(NotifyOn::Failure),
    }
}

impl NotifySettings {
    /// Whether a run that ended so is notified.
    pub fn wants(&self, exit_code: u8, summary: &RunSummary) -> bool {
        let drifted = summary.drifted.unwrap_or(0) > 0;
        self.on.iter().any(|on| match on {
            NotifyOn::Always => true,
            NotifyOn::Drift => drifted,
            other => outcome(exit_code) == Some(*other),
        })
    }
}

/// `text` without what a message must never carry: the first line only, words holding `@`
/// (an email) left out.
fn scrubbed(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    first
        .split(' ')
        .map(|word| if word.contains('@') { "<email>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The message for a `command` (`run`, `push`) that ended with `exit_code` (and `error`).
pub fn message(
    command: &str,
    exit_code: u8,
    error: Option<&str>,
    summary: &RunSummary,
    database: &str,
) -> Value {
    let outcome = match outcome(exit_code) {
        None if summary.dry_run => "dry run",
        None => "success",
        Some(NotifyOn::Partial) => "some records failed",
        Some(NotifyOn::Refused) => "refused",
        Some(_) => "failed",
    };
    let counts: Vec<String> = summary
        .records
        .iter()
        .map(|(kind, [updated, _, not_found, ambiguous, failed, departed])| {
            format!("{kind}: {updated} updated, {failed} failed, {not_found} not found, {ambiguous} ambiguous, {departed} departed")
        })
        .collect();
    let codes: Vec<String> = summary
        .error_codes
        .iter()
        .take(5)
        .map(|(code, n)| format!("{code} ×{n}"))
        .collect();
    let mut text = format!("intercom-push {command}: {outcome} (exit {exit_code})");
    if let Some(error) = error {
        text.push_str(&format!(" — {}", scrubbed(error)));
    }
    let field = |title: &str, value: String| json!({"type": "mrkdwn", "text": format!("*{title}*\n{value}")});
    let mut fields = vec![
        field("Exit code", exit_code.to_string()),
        field(
            "Duration",
            format!("{:.1} s", summary.duration.as_secs_f64()),
        ),
        field(
            "Records",
            if counts.is_empty() {
                "none pushed".into()
            } else {
                counts.join("\n")
            },
        ),
        field("Database", database.to_string()),
    ];
    if !codes.is_empty() {
        fields.push(field("Top error codes", codes.join(", ")));
    }
    if let Some(drifted) = summary.drifted {
        fields.push(field("Drifted records", drifted.to_string()));
    }
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "fields": fields},
        ],
    })
}

/// POSTs `body` to `url`: 10 s per attempt, 3 attempts, 0.5 s then 1 s apart.
pub fn send(url: &str, body: &Value) -> Result<(), NotifyError> {
    let failed = |reason: String| NotifyError {
        url: url.to_string(),
        reason,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| failed(e.to_string()))?;
    runtime.block_on(async {
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
            }
            match client.post(url).json(body).send().await {
                Ok(answer) if answer.status().is_success() => return Ok(()),
                Ok(answer) => last = format!("HTTP {}", answer.status().as_u16()),
                Err(e) => last = e.without_url().to_string(),
            }
        }
        Err(failed(format!("{last} (3 attempts)")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_never_holds_an_email() {
        let summary = RunSummary {
            records: &[("user", [1, 0, 0, 1, 0, 0])],
            duration: Duration::from_secs(2),
            drifted: None,
            error_codes: &[],
            dry_run: false,
        };
        let body = message(
            "run",
            3,
            Some("2 contacts have email ada@acme.example: no\nmore"),
            &summary,
            "/db",
        );
        let text = body.to_string();
        assert!(
            !text.contains("ada@acme.example") && !text.contains("more"),
            "{text}"
        );
        assert!(text.contains("exit 3"), "{text}");
    }
}
