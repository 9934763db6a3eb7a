//! Command-line definitions (clap). Parsing only: each command lives in `cmd/<name>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::push::reconcile::ReconcileMode;

/// Put customer-success data from a warehouse export onto existing Intercom companies and
/// contacts — only what changed since the last successful push, never creating anything.
///
/// The nightly job is `intercom-push run --input DIR`. Step by step it is `load` (export →
/// SQLite), `transform` (payloads + hashes), `plan` (what would be sent) and `push`.
#[derive(Debug, Parser)]
#[command(
    name = "intercom-push",
    version,
    about,
    long_about,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// State database (SQLite): the last export, payloads and what Intercom accepted.
    #[arg(long, global = true, env = "INTERCOM_PUSH_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// TOML file with the same settings as the flags (flags win). Default:
    /// ./intercom-push.toml when it exists.
    #[arg(long, global = true, env = "INTERCOM_PUSH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// No progress display.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load an export directory into the database, replacing the previous export atomically.
    ///
    /// Each table is a file or a folder of parts (see --input). On any error nothing changes
    /// and the message says `file:line: what and how to fix it`, naming the part file.
    Load(LoadArgs),
    /// Compute every company's and user's Intercom payload and hash from the loaded export.
    Transform(MappingArgs),
    /// Show what the next push would send: payloads that differ from what Intercom accepted.
    Plan(PlanArgs),
    /// Send every company/user payload that changed since Intercom last accepted it.
    ///
    /// Updates existing companies (PUT /companies/{id}) and contacts (PUT /contacts/{id})
    /// only; a record Intercom doesn't have is reported as not_found, never created. The
    /// access token is read from INTERCOM_ACCESS_TOKEN.
    #[command(after_long_help = EXIT_CODES)]
    Push(PushArgs),
    /// The nightly job: load + transform + push.
    ///
    /// Unattended: `--metrics-file` writes Prometheus metrics for node_exporter's textfile
    /// collector, the `runs` history keeps the last `--runs-keep` runs, and the state database
    /// is private (0600). docs/OPERATIONS.md has systemd units, a cron line and alert rules.
    #[command(after_long_help = EXIT_CODES)]
    Run(RunArgs),
    /// Compare what Intercom holds with what it last accepted from us, and send again what
    /// someone else changed ("drift").
    ///
    /// Reads every company (the company directory, one call per page) and every contact we
    /// pushed (100 per search call), compares only the attributes this tool sent to each record,
    /// and lists each one that differs with both values. `--mode repair` (the default) then
    /// sends each drifted record again with one PUT, through the ordinary push (which also
    /// sends whatever changed and was not pushed yet); `--mode report` writes nothing to
    /// Intercom. Attributes written by others that we never sent are never read or touched.
    Reconcile(ReconcileArgs),
    /// List the workspace's data attributes that are ours or carry our prefix — current,
    /// stale (no source makes them any more) or foreign (never touched) — and archive the
    /// stale ones once no record holds a value of ours for them.
    Attributes(AttributesArgs),
    /// Last runs, pending changes, records not found or failing, and the mapping in use.
    Status(StatusArgs),
    /// Before the first night: check, read-only (GETs only), the database, the token and its
    /// workspace, the API version, the data attributes the next push creates or that would stop
    /// it, the headroom under the 250 cap, the rate limit and the Preview API. Exit 0 ready, 2
    /// something to fix (each FIX line says what), 3 Intercom unreachable.
    Check(CheckArgs),
    /// Try it all on the bundled fixtures against an embedded mock Intercom on 127.0.0.1:
    /// runs `run` twice and prints both reports (the second makes no writes).
    Demo(DemoArgs),
    /// Serve the mock Intercom (for tests, benchmarks and trying things) until interrupted.
    ///
    /// It accepts the token in INTERCOM_ACCESS_TOKEN (default `mock-token`). Control endpoints
    /// without auth: GET /_mock/state, POST /_mock/seed, POST /_mock/edit (change records behind
    /// the loader's back), POST /_mock/faults.
    Mock(MockArgs),
    /// Write a deterministic, realistic generated export (for tests and benchmarks), or
    /// change a share of an existing one's accounts with `--mutate P`.
    Gen(GenArgs),
    /// Print the shell completion script: `intercom-push completions bash >
    /// /etc/bash_completion.d/intercom-push` (zsh: a `_intercom-push` file in your $fpath;
    /// fish: ~/.config/fish/completions/intercom-push.fish).
    Completions(CompletionsArgs),
    /// Print the manual page (roff): `intercom-push man > /usr/local/share/man/man1/intercom-push.1`.
    Man,
}

/// The export's layouts: the long help of `--input` for `load` and `run`.
const INPUT_LAYOUTS: &str = "Export directory. Each table (accounts, required; users, elements, \
element_counts, success_metrics, metric_values, indicators, segments) is a file \
`<table>.<csv|json|ndjson|jsonl|parquet>` (CSV and JSON may be .gz or .zst), a folder `<table>/` of \
part files read in name order (as BigQuery, Snowflake and Spark write them; _SUCCESS, _committed_*, \
_started_*, *.crc, hidden and empty files are skipped), Redshift parts `<table>0000_part_00`…, or \
the file, folder or glob that `[tables.<table>] path` names in the config. Headerless or \
`|`-delimited CSV: `header`, `columns`, `delimiter`, `quote`, `escape`, `null` under \
`[tables.<table>]`. The README's \"From your warehouse\" has the unload statement and the config \
lines for BigQuery, Snowflake, Redshift, Databricks/Spark, Postgres and DuckDB.";

/// Exit codes of `run` and `push`, shown by their `--help`.
const EXIT_CODES: &str = "Exit codes: 0 every record succeeded (records Intercom doesn't have are \
not_found, not failures); 1 some records failed, the others were pushed (see `status`; the next \
run retries them); 2 bad input or settings, nothing was pushed (the message says what to fix); \
3 anything else: database, disk, Intercom unreachable, another run holds the lock.";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Export to use. [default: the bundled export, `fixtures/export`, compiled into the binary]
    #[arg(long, short, value_name = "DIR")]
    pub input: Option<PathBuf>,
    /// Latency the mock adds to every answer, in ms.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency_ms: u64,
    /// Write each run's Prometheus metrics to FILE (as `run --metrics-file`).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Push with Intercom's bulk updates (as `run --bulk`); the mock implements them.
    #[arg(long)]
    pub bulk: bool,
}

#[derive(Debug, Args)]
pub struct MockArgs {
    #[command(flatten)]
    pub config: crate::mock::MockConfig,
    /// JSON file with companies, contacts and data attributes to start with.
    #[arg(long, value_name = "FILE")]
    pub seed_file: Option<PathBuf>,
}

/// Where and how to talk to Intercom.
#[derive(Debug, Args, Clone, Default)]
pub struct IntercomArgs {
    /// Intercom's data region: us (api.intercom.io), eu (api.eu.intercom.io) or au
    /// (api.au.intercom.io). [default: us]
    #[arg(long, value_enum)]
    pub region: Option<RegionArg>,
    /// API base URL instead of the region's (e.g. a local mock); plain http:// only on
    /// loopback.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Intercom-Version header. [default: 2.16]
    #[arg(long, value_name = "VERSION")]
    pub intercom_version: Option<String>,
    /// Ceiling in requests per 10 s. [default: what Intercom's X-RateLimit headers say,
    /// starting at 1,666 = 10,000/min]
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Requests in flight at most. [default: 16]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Seconds one attempt may take (connect, send, whole answer) before it is abandoned and
    /// retried. [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionArg {
    Us,
    Eu,
    Au,
}

/// Running unattended: monitoring and the run history.
#[derive(Debug, Args, Clone, Default)]
pub struct OpsArgs {
    /// Write this run's metrics to FILE in Prometheus's text format (for node_exporter's
    /// textfile collector: name it `*.prom` in its directory): exit code, last success time,
    /// duration per stage, records per kind and outcome, API calls, 429s, retries. Replaced
    /// atomically, also when the run fails.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Runs kept in the database's `runs` history; older ones are deleted at the end of each
    /// run. [default: 400]
    #[arg(long, value_name = "N")]
    pub runs_keep: Option<u64>,
    /// What to do with a record that left the export after Intercom accepted it: `clear`
    /// sets every custom attribute we sent it to null in one PUT (monthly_spend and anyone
    /// else's attributes untouched) and reports it `departed`; `keep` leaves its values.
    /// [default: clear]
    #[arg(long, value_enum, value_name = "HOW")]
    pub departed: Option<crate::push::departures::Departed>,
    /// Lift, for this run, the guard that stops a push (exit 2, nothing written) when more than
    /// max_departed % (default 10) of the last pushed export's companies or users left the
    /// export, or its accounts table is empty: for when they really left.
    #[arg(long)]
    pub allow_departed: bool,
    /// After a run that failed, half-failed or was refused (`notify_on` in the config says
    /// which), POST a JSON message to URL: Slack's incoming-webhook shape, which any webhook
    /// receiver takes. It holds counts, the exit code, error codes, the duration and the
    /// database path; never the token, an email or revenue.
    #[arg(long, value_name = "URL")]
    pub notify_url: Option<String>,
}

/// Intercom's bulk updates (Preview API), opt-in.
#[derive(Debug, Args, Clone, Default)]
pub struct BulkArgs {
    /// Send changed companies and users 100 a request with Intercom's bulk updates (Preview
    /// API: only those requests and the company search carry `Intercom-Version: Preview`), and
    /// resolve unknown company ids with the company search. A record's pushed hash is written
    /// once Intercom reports its task completed; a task that fails or times out sends its
    /// records again one PUT each. A workspace without the Preview API is pushed by per-record
    /// PUTs, with a warning. [default: `bulk` in the config, else off]
    #[arg(long)]
    pub bulk: bool,
    /// Seconds a bulk task may take before its records are sent again one by one.
    /// [default: `bulk_task_timeout`, else 600]
    #[arg(long, value_name = "SECONDS")]
    pub bulk_task_timeout: Option<f64>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub intercom: IntercomArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub bulk: BulkArgs,
    /// Send every payload, ignoring what Intercom accepted before.
    #[arg(long)]
    pub full_resync: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Export directory: a file or a folder of parts per table (more with --help).
    #[arg(long, short, value_name = "DIR", long_help = INPUT_LAYOUTS)]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub mapping: MappingArgs,
    #[command(flatten)]
    pub intercom: IntercomArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub bulk: BulkArgs,
    /// Load and transform, then show the plan instead of pushing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send every payload, ignoring what Intercom accepted before.
    #[arg(long)]
    pub full_resync: bool,
    /// Reconcile before pushing: compare what Intercom holds with what it accepted, and
    /// (`repair`, the default) send again what differs, or (`report`) only report it.
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, default_missing_value = "repair", conflicts_with = "dry_run")]
    pub reconcile: Option<ReconcileMode>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub intercom: IntercomArgs,
    #[command(flatten)]
    pub bulk: BulkArgs,
    /// `repair`: send each drifted record again (one PUT each); `report`: only report.
    #[arg(long, value_enum, default_value = "repair")]
    pub mode: ReconcileMode,
    /// Print the report as JSON, with every drifted record and attribute and both values.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Export directory: a file or a folder of parts per table (more with --help).
    #[arg(long, short, value_name = "DIR", long_help = INPUT_LAYOUTS)]
    pub input: Option<PathBuf>,
}

/// How the export maps onto Intercom attributes.
#[derive(Debug, Args, Clone, Default)]
pub struct MappingArgs {
    /// Attribute name prefix: field `healthScore` becomes `<PREFIX> Health Score`.
    /// [default: Vitally]
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Do not send monthly_spend (by default it is the account's MRR, rounded).
    #[arg(long)]
    pub no_monthly_spend: bool,
    /// Leave a source out: a field (`healthScore`, or `field:healthScore`), an Element
    /// (`element:NAME`) or a Success Metric (`metric:NAME`). Repeatable.
    #[arg(long, value_name = "SOURCE")]
    pub exclude: Vec<String>,
    /// How to send a field or Success Metric whose every value is a date: `string` (as
    /// written) or `timestamp` (unix seconds, in a `date` attribute `<attribute> - date`).
    /// [default: string]
    ///
    /// A date is ISO 8601: `2027-03-01`, or a date-time `2027-03-01T10:00:00Z` (or a space for
    /// the `T`, an offset `+02:00`, or no zone = UTC). With `timestamp` Intercom can filter on it
    /// ("renewal in less than 30 days"); a column holding a value before 1970 or one that is not
    /// a valid date stays a string, with a warning naming that value and its file:line.
    #[arg(long, value_enum, value_name = "HOW")]
    pub dates: Option<crate::transform::mapping::Dates>,
    /// What to do with a string value longer than Intercom's 255 characters (Intercom refuses
    /// it, and with it the whole update of that record): `truncate` sends its first 254
    /// characters followed by `…`, with a warning per attribute; `fail` refuses the export
    /// (exit 2) naming the record and the attribute, and changes nothing. [default: truncate]
    #[arg(long, value_enum, value_name = "HOW")]
    pub long_strings: Option<crate::transform::mapping::LongStrings>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// One JSON object per line (NDJSON): companies by company_id, then users.
    #[arg(long)]
    pub json: bool,
    /// Every record, not only those that changed since the last push.
    #[arg(long)]
    pub all: bool,
    /// Records shown in detail by the human plan (totals always count all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub intercom: IntercomArgs,
    /// Print JSON: `{"ready", "exit_code", "checks": [{"check", "status", "detail"}]}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AttributesArgs {
    #[command(flatten)]
    pub intercom: IntercomArgs,
    /// Archive the stale attributes (PUT /data_attributes/{id} {"archived": true}) whose
    /// values were cleared on every record we pushed.
    #[arg(long)]
    pub archive_stale: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Number of accounts (≈ users-per-account users, 10 element counts, 5 metric values,
    /// 2 indicators and 1.5 segments each).
    #[arg(long, value_name = "N", required_unless_present = "mutate")]
    pub accounts: Option<u64>,
    /// Same seed, same bytes.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Output directory (created if needed); with --mutate, the export to change in place.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = crate::gen::GenFormat::Csv)]
    pub format: crate::gen::GenFormat,
    /// Write `<table>.<fmt>.gz` files (CSV and NDJSON; Parquet is compressed inside).
    #[arg(long)]
    pub gzip: bool,
    /// Write each table as a folder `<table>/` of N Spark-style part files
    /// (`part-00000-<uuid>-c000.csv`) and an empty `_SUCCESS`, an account's rows in one part.
    #[arg(long, value_name = "N")]
    pub parts: Option<u32>,
    /// Mean users per account (each account gets 0..=2×this).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub users_per_account: u32,
    /// Instead of generating: change P % of the accounts of the export in --out (new mrr
    /// and health score, one element count + 1), chosen by --seed.
    #[arg(long, value_name = "P", conflicts_with_all = ["accounts", "format", "gzip", "users_per_account", "parts"])]
    pub mutate: Option<f64>,
}
