//! One module per subcommand. Each returns the process exit code or an error that
//! `main` maps to one (see [`exit_code`]).

pub mod attributes;
pub mod check;
pub mod completions;
pub mod demo;
pub mod gen;
pub mod load;
pub mod man;
pub mod mock;
pub mod plan;
pub mod push;
pub mod reconcile;
pub mod run;
pub mod status;
pub mod transform;

use crate::config::{ConfigError, Settings};
use crate::extract::ExtractError;
use crate::metrics::RunMetrics;
use crate::notify::{NotifySettings, DEFAULT_ON};
use crate::push::PushError;
use crate::store::StoreError;
use crate::transform::TransformError;

/// Exit codes: 0 all done, 1 some records failed, 2 bad input or configuration,
/// 3 anything else (database, I/O, Intercom unreachable).
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.downcast_ref::<ConfigError>().is_some()
            || cause
                .downcast_ref::<crate::intercom::ConfigError>()
                .is_some()
        {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store_exit_code(e);
        }
        match cause.downcast_ref::<PushError>() {
            Some(PushError::Attributes(_) | PushError::NotReady(_) | PushError::Departed(_)) => {
                return 2
            }
            Some(PushError::Api(_)) => return 3,
            Some(PushError::Store(e)) => return store_exit_code(e),
            None => {}
        }
        match cause.downcast_ref::<ExtractError>() {
            Some(ExtractError::Input { .. }) => return 2,
            Some(ExtractError::Store(e)) => return store_exit_code(e),
            None => {}
        }
        match cause.downcast_ref::<TransformError>() {
            Some(
                TransformError::Collision(_)
                | TransformError::Settings(_)
                | TransformError::LongString(_),
            ) => return 2,
            Some(TransformError::Store(e)) => return store_exit_code(e),
            None => {}
        }
    }
    3
}

/// A database other users can write is a setting to fix (2); other database errors are 3.
fn store_exit_code(error: &StoreError) -> u8 {
    match error {
        StoreError::Private(_) => 2,
        _ => 3,
    }
}

/// The error as printed: each cause once (a cause whose text the previous one already holds
/// is left out), then what to do when the disk is full.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !previous.contains(&text) {
            parts.push(text.clone());
        }
        previous = text;
    }
    if error.chain().any(crate::store::is_out_of_space) {
        parts.push("the disk may be full, or a quota or file-size limit reached: free space on the database's filesystem or move the database (docs/OPERATIONS.md), then run again".into());
    }
    parts.join(": ")
}

/// Runs a `run` or `push` under the metrics' clock and writes the metrics file whatever the
/// outcome, a settings error included (then to the file the flag names, if any). A metrics
/// file that cannot be written turns a success into exit 3.
///
/// Then, when the outcome is one `notify_on` names, the notification is sent (see
/// [`crate::notify`]); one that fails is a warning and counts in the metrics, never another
/// exit code.
pub fn with_metrics(
    command: &str,
    ops: &crate::cli::OpsArgs,
    resolve: impl FnOnce() -> Result<Settings, ConfigError>,
    body: impl FnOnce(&Settings, &mut RunMetrics) -> anyhow::Result<u8>,
) -> anyhow::Result<u8> {
    let mut metrics = RunMetrics::start(ops.metrics_file.clone());
    // Until the settings are known (a settings error), the flag's.
    let mut notify = ops.notify_url.clone().map(|url| NotifySettings {
        url,
        on: DEFAULT_ON.to_vec(),
    });
    let mut database = String::new();
    let result = resolve().map_err(anyhow::Error::from).and_then(|settings| {
        metrics.set_path(settings.metrics_file.clone());
        notify = settings.notify.clone();
        database = settings.db.display().to_string();
        body(&settings, &mut metrics)
    });
    let code = match &result {
        Ok(code) => *code,
        Err(error) => exit_code(error),
    };
    if let Some(notify) = notify.filter(|n| n.wants(code, &metrics.summary())) {
        let error = result.as_ref().err().map(error_text);
        let message = crate::notify::message(
            command,
            code,
            error.as_deref(),
            &metrics.summary(),
            &database,
        );
        if let Err(failed) = crate::notify::send(&notify.url, &message) {
            print_warnings(&[failed.to_string()]);
            metrics.notify_failed();
        }
    }
    write_metrics(&metrics, result)
}

/// Writes the metrics of a run that ended with `result`, and returns `result` (or, when it
/// was a success, the error writing them).
pub fn write_metrics(metrics: &RunMetrics, result: anyhow::Result<u8>) -> anyhow::Result<u8> {
    let code = match &result {
        Ok(code) => *code,
        Err(error) => exit_code(error),
    };
    match (metrics.write(code), result) {
        (Ok(()), result) => result,
        (Err(written), Ok(0)) => Err(written.into()),
        (Err(written), Ok(code)) => {
            print_warnings(&[written.to_string()]);
            Ok(code)
        }
        // Unless the run's own error is about that file already.
        (Err(written), Err(error)) => {
            if !error_text(&error).contains(&written.path) {
                print_warnings(&[written.to_string()]);
            }
            Err(error)
        }
    }
}

/// Takes the database's run lock (printing a warning when it takes over a crashed run's).
pub fn lock(
    settings: &crate::config::Settings,
    command: &str,
) -> Result<crate::store::RunLock, crate::store::StoreError> {
    let lock = crate::store::RunLock::acquire(&settings.db, command)?;
    print_warnings(lock.warning.as_slice());
    Ok(lock)
}

/// Prints warnings to stderr, one per line.
pub fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

/// Makes panics print the access token as `***`. A panic message is formatted by whatever code
/// panicked, which need not know that it holds the token; this hook prints what the default one
/// does (thread, location, message, and the backtrace when `RUST_BACKTRACE` asks for one) with
/// every occurrence of `INTERCOM_ACCESS_TOKEN`'s value blanked out. Without a token it changes
/// nothing.
pub fn redact_token_in_panics() {
    let Ok(token) = crate::intercom::AccessToken::from_env() else {
        return;
    };
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::capture();
        let trace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => format!("stack backtrace:\n{backtrace}"),
            _ => "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
                .to_string(),
        };
        let text = format!(
            "thread '{}' panicked at {location}:\n{}\n{trace}",
            thread.name().unwrap_or("<unnamed>"),
            info.payload_as_str().unwrap_or("Box<dyn Any>"),
        );
        eprint!("{}", token.redact(&text));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database x.db: {source}")]
    struct Database {
        source: Sqlite,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("disk I/O error")]
    struct Sqlite {
        source: Code,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Error code 778: Error writing to disk")]
    struct Code;

    #[test]
    fn error_text_says_each_cause_once() {
        let error = anyhow::Error::new(Database {
            source: Sqlite { source: Code },
        })
        .context("loading the export");
        assert_eq!(
            error_text(&error),
            "loading the export: database x.db: disk I/O error: Error code 778: Error writing to disk"
        );
    }
}
