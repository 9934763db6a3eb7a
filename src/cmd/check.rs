//! `check`: a read-only preflight, for the night before the first night. Locally: the database
//! is private, holds an export and fresh payloads. Against the workspace, with `GET`s only: the
//! token and its workspace, the API version, the data attributes the next push would create and
//! those that would stop it, the headroom under the cap, the rate limit, the Preview API.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::CheckArgs;
use crate::config::Settings;
use crate::intercom::{ApiError, Client};
use crate::push::attributes::{list_all, review, stale, ATTRIBUTE_CAP};
use crate::push::PushError;
use crate::store::{Attribute, Store};

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    /// Something to fix before the first night (exit 2).
    Fix,
    /// Worth knowing, nothing to fix.
    Info,
}

#[derive(Debug, Serialize)]
struct Line {
    check: &'static str,
    status: Status,
    detail: String,
}

#[derive(Default)]
struct Report {
    lines: Vec<Line>,
    unreachable: bool,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, detail: impl Into<String>) {
        self.lines.push(Line {
            check,
            status,
            detail: detail.into(),
        });
    }

    fn exit_code(&self) -> u8 {
        if self.unreachable {
            3
        } else if self.lines.iter().any(|l| l.status == Status::Fix) {
            2
        } else {
            0
        }
    }
}

pub fn run(settings: &Settings, args: &CheckArgs) -> Result<u8> {
    let mut report = Report::default();
    let catalog = check_database(settings, &mut report);
    check_workspace(settings, catalog.as_ref(), &mut report)?;
    let code = report.exit_code();
    if args.json {
        let ready = code == 0;
        println!(
            "{}",
            serde_json::json!({"ready": ready, "exit_code": code, "checks": report.lines})
        );
    } else {
        for line in &report.lines {
            let status = match line.status {
                Status::Ok => "ok",
                Status::Fix => "FIX",
                Status::Info => "info",
            };
            println!("{status:<5} {:<11} {}", line.check, line.detail);
        }
        println!(
            "{}",
            match code {
                0 => "ready for the first night",
                2 => "not ready: fix the FIX lines, then check again",
                _ => "Intercom could not be reached: check the network and --region / --base-url",
            }
        );
    }
    Ok(code)
}

/// The catalog and the stale attributes of the payloads, when they are fresh.
type Catalog = (Vec<Attribute>, Vec<String>);

fn check_database(settings: &Settings, report: &mut Report) -> Option<Catalog> {
    let db = settings.db.display();
    if !settings.db.exists() {
        report.add(
            "database",
            Status::Fix,
            format!("no database at {db}: run `intercom-push run --input DIR --dry-run` (or `load`, then `transform`), or pass the right --db"),
        );
        return None;
    }
    let store = match Store::open(&settings.db) {
        Ok(store) => store,
        Err(e) => {
            report.add("database", Status::Fix, e.to_string());
            return None;
        }
    };
    let fresh = store
        .require_extract()
        .map_err(|e| e.to_string())
        .and_then(|version| crate::transform::check_fresh(&store).map(|()| version));
    match fresh {
        Ok(version) => report.add(
            "database",
            Status::Ok,
            format!("{db}: private, export #{version} loaded, payloads up to date"),
        ),
        Err(message) => {
            report.add("database", Status::Fix, format!("{db}: {message}"));
            return None;
        }
    }
    let read = store
        .attributes()
        .and_then(|catalog| Ok((stale(&store, &catalog)?, catalog)));
    match read {
        Ok((stale, catalog)) => Some((catalog, stale)),
        Err(e) => {
            report.add("database", Status::Fix, format!("{db}: {e}"));
            None
        }
    }
}

/// Whether `e` means Intercom was not reached at all.
fn unreachable(e: &ApiError) -> bool {
    e.status.is_none()
}

fn check_workspace(
    settings: &Settings,
    catalog: Option<&Catalog>,
    report: &mut Report,
) -> Result<()> {
    let version = &settings.intercom.intercom_version;
    let client = match settings
        .intercom
        .client_config()
        .map_err(anyhow::Error::from)
        .and_then(|c| Ok(Client::new(c)?))
    {
        Ok(client) => client,
        Err(e) => {
            report.add("token", Status::Fix, crate::cmd::error_text(&e));
            return Ok(());
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let me = runtime.block_on(client.me());
    match me {
        Ok(admin) => {
            let app = admin.app.unwrap_or_default();
            let text = |v: Option<String>| v.unwrap_or_else(|| "?".into());
            report.add(
                "token",
                Status::Ok,
                format!(
                    "valid for workspace `{}` (app id {}, region {}) at {}",
                    text(app.name),
                    text(app.id_code),
                    text(app.region),
                    client.base_url()
                ),
            );
            report.add(
                "version",
                Status::Ok,
                format!("Intercom-Version {version} accepted"),
            );
        }
        Err(e) if unreachable(&e) => {
            report.unreachable = true;
            report.add(
                "token",
                Status::Fix,
                format!("Intercom could not be reached: {e}"),
            );
            return Ok(());
        }
        Err(e) if e.has_code("intercom_version_invalid") => {
            report.add(
                "version",
                Status::Fix,
                format!("Intercom-Version {version} is refused ({e}): set intercom_version (e.g. \"2.16\")"),
            );
            return Ok(());
        }
        Err(e) => {
            report.add(
                "token",
                Status::Fix,
                format!("refused ({e}): set INTERCOM_ACCESS_TOKEN to a valid access token of the workspace's app, and check --region"),
            );
            return Ok(());
        }
    }
    match runtime.block_on(list_all(&client)) {
        Ok(existing) => {
            let live = existing.iter().filter(|a| a.custom && !a.archived).count();
            match catalog {
                Some((catalog, stale)) => {
                    let review = review(&existing, catalog, stale);
                    let names: Vec<&str> = review.missing.iter().map(|a| a.name.as_str()).collect();
                    report.add(
                        "attributes",
                        if names.is_empty() { Status::Ok } else { Status::Info },
                        if names.is_empty() {
                            "every data attribute of the payloads exists".to_string()
                        } else {
                            format!("the next push creates {}: {}", names.len(), names.join(", "))
                        },
                    );
                    for problem in review.problems {
                        report.add("attributes", Status::Fix, problem);
                    }
                    let after = live + names.len();
                    report.add(
                        "cap",
                        if after > ATTRIBUTE_CAP { Status::Fix } else { Status::Ok },
                        format!(
                            "{live} of {ATTRIBUTE_CAP} custom attributes in use (archived ones do not count); {after} after the next push, headroom {}",
                            ATTRIBUTE_CAP.saturating_sub(after)
                        ),
                    );
                }
                None => report.add(
                    "cap",
                    Status::Info,
                    format!("{live} of {ATTRIBUTE_CAP} custom attributes in use (archived ones do not count); the attributes of the next push are known once the payloads are"),
                ),
            }
        }
        Err(PushError::Api(e)) if unreachable(&e) => {
            report.unreachable = true;
            report.add(
                "attributes",
                Status::Fix,
                format!("Intercom could not be reached: {e}"),
            );
        }
        Err(e) => report.add(
            "attributes",
            Status::Fix,
            format!("cannot list the data attributes: {e}"),
        ),
    }
    let limit = client.rate_limit_per_window();
    report.add(
        "rate limit",
        Status::Info,
        format!(
            "{limit} requests per 10 s window (≈ {} a minute), as Intercom's X-RateLimit-Limit says, shared by the app's integrations",
            u64::from(limit) * 6
        ),
    );
    let preview = runtime.block_on(client.answers_preview());
    report.add(
        "preview",
        Status::Info,
        match preview {
            Ok(true) => {
                "the workspace answers the Preview API (Intercom-Version: Preview)".to_string()
            }
            Ok(false) => "the workspace does not answer the Preview API".to_string(),
            Err(e) => format!("the Preview API could not be asked: {e}"),
        },
    );
    Ok(())
}
