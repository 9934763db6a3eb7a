//! One module per subcommand. Each returns the process exit code or an error that
//! `main` maps to one (see [`exit_code`]).

pub mod attributes;
pub mod demo;
pub mod gen;
pub mod load;
pub mod mock;
pub mod plan;
pub mod push;
pub mod run;
pub mod status;
pub mod transform;

use crate::config::ConfigError;
use crate::extract::ExtractError;
use crate::push::PushError;
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
        match cause.downcast_ref::<PushError>() {
            Some(PushError::Attributes(_) | PushError::NotReady(_)) => return 2,
            Some(PushError::Api(_) | PushError::Store(_)) => return 3,
            None => {}
        }
        match cause.downcast_ref::<ExtractError>() {
            Some(ExtractError::Input { .. }) => return 2,
            Some(ExtractError::Store(_)) => return 3,
            None => {}
        }
        match cause.downcast_ref::<TransformError>() {
            Some(TransformError::Collision(_) | TransformError::Settings(_)) => return 2,
            Some(TransformError::Store(_)) => return 3,
            None => {}
        }
    }
    3
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
