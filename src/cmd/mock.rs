//! `mock`: serve the mock Intercom until interrupted.

use anyhow::{Context, Result};

use crate::cli::MockArgs;
use crate::mock::{serve_forever, Seed};

pub fn run(args: &MockArgs) -> Result<u8> {
    let seed = match &args.seed_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(serde_json::from_str::<Seed>(&text).with_context(|| {
                format!(
                    "{}: not a seed (companies, contacts, data_attributes)",
                    path.display()
                )
            })?)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(serve_forever(args.config.clone(), seed))
        .context("serving the mock Intercom")?;
    Ok(0)
}
