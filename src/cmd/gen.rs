//! `gen`: write a deterministic generated export, or mutate one (`--mutate P`).

use anyhow::Result;

use crate::cli::GenArgs;
use crate::gen::{self, GenOptions};

pub fn run(args: &GenArgs) -> Result<u8> {
    if let Some(percent) = args.mutate {
        let summary = gen::mutate(&args.out, percent, args.seed)?;
        println!(
            "mutated {} of {} accounts in {} (new mrr and health score; {} element counts + 1)",
            summary.changed,
            summary.accounts,
            args.out.display(),
            summary.counts_changed
        );
        return Ok(0);
    }
    let options = GenOptions {
        accounts: args.accounts.unwrap_or(0),
        seed: args.seed,
        format: args.format,
        gzip: args.gzip,
        users_per_account: args.users_per_account,
        parts: args.parts,
    };
    let summary = gen::generate(&args.out, &options)?;
    let files: Vec<String> = summary
        .files
        .iter()
        .map(|(file, rows)| format!("{file} {rows}"))
        .collect();
    println!(
        "generated export (seed {}) in {}: {}",
        args.seed,
        args.out.display(),
        files.join(", ")
    );
    Ok(0)
}
