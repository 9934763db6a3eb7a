use std::process::ExitCode;

use clap::Parser;

use intercom_push::cli::{Cli, Command};
use intercom_push::cmd;
use intercom_push::config::Settings;

/// mimalloc: the load and the transform allocate many small short-lived buffers on several
/// threads, where glibc's allocator spent ≈ 12 % of their CPU (bench/findings.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cmd::redact_token_in_panics();
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    intercom_push::progress::set_quiet(cli.global.quiet);
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS, // e.g. `plan --json | head`
        Err(error) => {
            eprintln!("error: {}", cmd::error_text(&error));
            ExitCode::from(cmd::exit_code(&error))
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let global = &cli.global;
    match &cli.command {
        Command::Load(args) => cmd::load::run(&Settings::resolve(
            global,
            None,
            None,
            args.input.as_deref(),
        )?),
        Command::Transform(mapping) => {
            cmd::transform::run(&Settings::resolve(global, Some(mapping), None, None)?)
        }
        Command::Plan(args) => cmd::plan::run(&Settings::resolve(global, None, None, None)?, args),
        Command::Push(args) => cmd::push::main(global, args),
        Command::Run(args) => cmd::run::main(global, args),
        Command::Reconcile(args) => cmd::reconcile::run(
            &Settings::resolve(global, None, Some(&args.intercom), None)?.with_bulk(&args.bulk)?,
            args,
        ),
        Command::Attributes(args) => cmd::attributes::run(
            &Settings::resolve(global, None, Some(&args.intercom), None)?,
            args,
        ),
        Command::Check(args) => cmd::check::run(
            &Settings::resolve(global, None, Some(&args.intercom), None)?,
            args,
        ),
        Command::Status(args) => {
            cmd::status::run(&Settings::resolve(global, None, None, None)?, args)
        }
        Command::Demo(args) => cmd::demo::run(global, args),
        Command::Mock(args) => cmd::mock::run(args),
        Command::Gen(args) => cmd::gen::run(args),
        Command::Completions(args) => cmd::completions::run(args),
        Command::Man => cmd::man::run(),
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTERCOM_PUSH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
