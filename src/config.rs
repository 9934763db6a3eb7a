//! Settings: flags, then the TOML config file, then defaults — parsed once into one
//! validated [`Settings`] value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{BulkArgs, GlobalArgs, IntercomArgs, MappingArgs, OpsArgs, RegionArg};
use crate::extract::options::{TableConfig, TableOptions};
use crate::intercom::{AccessToken, ClientConfig, Region};
use crate::notify::{NotifyOn, NotifySettings, DEFAULT_ON};
use crate::push::bulk::{BulkSettings, BULK_TASK_TIMEOUT};
use crate::push::departures::{Departed, DepartureSettings, MAX_DEPARTED};
use crate::transform::mapping::{Dates, LongStrings, MappingSettings};

pub const DEFAULT_DB: &str = "intercom-push.db";
pub const DEFAULT_CONFIG: &str = "intercom-push.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The config file's keys (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub db: Option<PathBuf>,
    pub input: Option<PathBuf>,
    pub prefix: Option<String>,
    pub monthly_spend: Option<bool>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub dates: Option<Dates>,
    pub long_strings: Option<LongStrings>,
    pub region: Option<RegionArg>,
    pub base_url: Option<String>,
    pub intercom_version: Option<String>,
    pub rate_limit: Option<u32>,
    pub concurrency: Option<usize>,
    pub timeout: Option<f64>,
    pub metrics_file: Option<PathBuf>,
    pub runs_keep: Option<u64>,
    pub departed: Option<Departed>,
    pub max_departed: Option<f64>,
    pub notify_url: Option<String>,
    pub notify_on: Option<Vec<NotifyOn>>,
    pub bulk: Option<bool>,
    pub bulk_task_timeout: Option<f64>,
    /// Per-table settings: `[tables.accounts] path = …`, CSV dialect.
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
}

/// How to reach Intercom (the token is not here: it is read from the environment only
/// when a client is built).
#[derive(Debug, Clone)]
pub struct IntercomSettings {
    pub base_url: String,
    pub intercom_version: String,
    pub rate_limit: Option<u32>,
    pub concurrency: usize,
    /// Timeout of one attempt.
    pub timeout: std::time::Duration,
}

impl IntercomSettings {
    /// The client configuration, with the token from INTERCOM_ACCESS_TOKEN.
    pub fn client_config(&self) -> Result<ClientConfig, crate::intercom::ConfigError> {
        let mut config = ClientConfig::new(self.base_url.clone(), AccessToken::from_env()?);
        config.intercom_version = self.intercom_version.clone();
        config.rate_limit = self.rate_limit;
        config.concurrency = self.concurrency;
        config.timeout = self.timeout;
        Ok(config)
    }
}

/// Everything a command needs to know, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub db: PathBuf,
    pub input: Option<PathBuf>,
    /// How each table is found and read (`[tables.<table>]`); tables not named use defaults.
    pub tables: BTreeMap<&'static str, TableOptions>,
    pub mapping: MappingSettings,
    pub intercom: IntercomSettings,
    /// Where `run`/`push` write their Prometheus metrics.
    pub metrics_file: Option<PathBuf>,
    /// `runs` rows kept.
    pub runs_keep: u64,
    /// Records that leave the export (`departed`, `max_departed`, `--allow-departed`).
    pub departures: DepartureSettings,
    /// Where and when `run` and `push` notify (`notify_url`, `notify_on`).
    pub notify: Option<NotifySettings>,
    /// Intercom's bulk updates (`bulk`, `bulk_task_timeout`, `--bulk`).
    pub bulk: BulkSettings,
}

impl Settings {
    /// Merges flags over the config file over defaults.
    pub fn resolve(
        global: &GlobalArgs,
        mapping: Option<&MappingArgs>,
        intercom: Option<&IntercomArgs>,
        input: Option<&Path>,
    ) -> Result<Settings, ConfigError> {
        let file = load_file(global.config.as_deref())?;
        let intercom = intercom.cloned().unwrap_or_default();
        let region = match intercom.region.or(file.region).unwrap_or(RegionArg::Us) {
            RegionArg::Us => Region::Us,
            RegionArg::Eu => Region::Eu,
            RegionArg::Au => Region::Au,
        };
        let concurrency = intercom.concurrency.or(file.concurrency).unwrap_or(16);
        if concurrency == 0 || intercom.rate_limit.or(file.rate_limit) == Some(0) {
            return Err(ConfigError::Invalid(
                "--concurrency and --rate-limit must be at least 1".into(),
            ));
        }
        let timeout = intercom.timeout.or(file.timeout).unwrap_or(30.0);
        if !(timeout.is_finite() && (0.001..=86_400.0).contains(&timeout)) {
            return Err(ConfigError::Invalid(format!(
                "--timeout {timeout}: give the seconds one request may take, between 0.001 and 86400 (default 30)"
            )));
        }
        let mut tables = BTreeMap::new();
        for (name, table) in &file.tables {
            let (name, options) = table.validate(name).map_err(ConfigError::Invalid)?;
            tables.insert(name, options);
        }
        let defaults = MappingSettings::default();
        let mapping_args = mapping.cloned().unwrap_or_default();
        let mut excludes = file.exclude.clone();
        excludes.extend(mapping_args.exclude.iter().cloned());
        let settings = Settings {
            db: global
                .db
                .clone()
                .or(file.db)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DB)),
            input: input.map(Path::to_path_buf).or(file.input),
            tables,
            mapping: MappingSettings {
                prefix: mapping_args
                    .prefix
                    .or(file.prefix)
                    .unwrap_or(defaults.prefix),
                monthly_spend: !mapping_args.no_monthly_spend && file.monthly_spend.unwrap_or(true),
                excludes,
                dates: mapping_args.dates.or(file.dates).unwrap_or_default(),
                long_strings: mapping_args
                    .long_strings
                    .or(file.long_strings)
                    .unwrap_or_default(),
            },
            intercom: IntercomSettings {
                base_url: intercom
                    .base_url
                    .or(file.base_url)
                    .unwrap_or_else(|| region.base_url().to_string()),
                intercom_version: intercom
                    .intercom_version
                    .or(file.intercom_version)
                    .unwrap_or_else(|| "2.16".into()),
                rate_limit: intercom.rate_limit.or(file.rate_limit),
                concurrency,
                timeout: std::time::Duration::from_secs_f64(timeout),
            },
            metrics_file: file.metrics_file,
            runs_keep: file.runs_keep.unwrap_or(crate::store::DEFAULT_RUNS_KEEP),
            departures: DepartureSettings {
                mode: file.departed.unwrap_or_default(),
                max_percent: file.max_departed.unwrap_or(MAX_DEPARTED),
                allow: false,
            },
            bulk: BulkSettings {
                enabled: file.bulk.unwrap_or(false),
                task_timeout: bulk_task_timeout(file.bulk_task_timeout)?,
            },
            notify: file.notify_url.map(|url| NotifySettings {
                url,
                on: file
                    .notify_on
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ON.to_vec()),
            }),
        };
        if file.notify_on.is_some() && settings.notify.is_none() {
            return Err(ConfigError::Invalid(
                "notify_on is set but notify_url is not: add notify_url = \"https://hooks.slack.com/…\" (or --notify-url)".into(),
            ));
        }
        if !(0.0..=100.0).contains(&settings.departures.max_percent) {
            return Err(ConfigError::Invalid(format!(
                "max_departed = {}: give the percentage of the last pushed export's companies or users that may leave in one export, from 0 to 100 (default {MAX_DEPARTED})",
                settings.departures.max_percent
            )));
        }
        if settings.mapping.prefix.trim().is_empty()
            || settings.mapping.prefix != settings.mapping.prefix.trim()
        {
            return Err(ConfigError::Invalid(format!(
                "prefix {:?} is empty or has surrounding spaces: attribute names are `<prefix> <Name>`; pass e.g. --prefix Vitally",
                settings.mapping.prefix
            )));
        }
        Ok(settings)
    }

    /// Applies `--bulk` and `--bulk-task-timeout` (over the config file's values).
    pub fn with_bulk(mut self, bulk: &BulkArgs) -> Result<Settings, ConfigError> {
        self.bulk.enabled |= bulk.bulk;
        if bulk.bulk_task_timeout.is_some() {
            self.bulk.task_timeout = bulk_task_timeout(bulk.bulk_task_timeout)?;
        }
        Ok(self)
    }

    /// Applies `run`/`push`'s flags (over the config file's values) and checks them.
    pub fn with_ops(mut self, ops: &OpsArgs) -> Result<Settings, ConfigError> {
        if let Some(path) = &ops.metrics_file {
            self.metrics_file = Some(path.clone());
        }
        self.runs_keep = ops.runs_keep.unwrap_or(self.runs_keep);
        self.departures.mode = ops.departed.unwrap_or(self.departures.mode);
        self.departures.allow = ops.allow_departed;
        if let Some(url) = &ops.notify_url {
            let on = self.notify.take().map_or(DEFAULT_ON.to_vec(), |n| n.on);
            self.notify = Some(NotifySettings {
                url: url.clone(),
                on,
            });
        }
        if let Some(notify) = &self.notify {
            if !(notify.url.starts_with("https://") || notify.url.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!(
                    "notify_url {:?}: give the webhook's http(s) URL, e.g. https://hooks.slack.com/services/…",
                    notify.url
                )));
            }
        }
        if self.runs_keep == 0 {
            return Err(ConfigError::Invalid(
                "--runs-keep 0: keep at least the last run (default 400)".into(),
            ));
        }
        if let Some(path) = &self.metrics_file {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            if path.is_dir() {
                return Err(ConfigError::Invalid(format!(
                    "--metrics-file {} is a directory: name a file in it, e.g. {}",
                    path.display(),
                    path.join("intercom_push.prom").display()
                )));
            }
            if !dir.is_dir() {
                return Err(ConfigError::Invalid(format!(
                    "--metrics-file {}: there is no directory {}; create it, or name a file in node_exporter's --collector.textfile.directory",
                    path.display(),
                    dir.display()
                )));
            }
        }
        Ok(self)
    }

    /// The input directory, or an error saying how to give one.
    pub fn require_input(&self) -> Result<&Path, ConfigError> {
        self.input.as_deref().ok_or_else(|| {
            ConfigError::Invalid(
                "no input directory: pass --input DIR (or set `input` in the config file)".into(),
            )
        })
    }
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).is_file() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(FileConfig::default()),
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
        path: shown.clone(),
        message: format!("cannot read it: {e}"),
    })?;
    parse_file(&text).map_err(|message| ConfigError::File {
        path: shown,
        message,
    })
}

/// Parses the config text; a token in it is refused (it comes only from the environment).
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    if let Some(key) = table
        .keys()
        .find(|k| k.to_ascii_lowercase().contains("token"))
    {
        return Err(format!("`{key}`: the access token is read only from the INTERCOM_ACCESS_TOKEN environment variable, never from a file; remove it"));
    }
    FileConfig::deserialize(table).map_err(|e| e.message().to_string())
}

/// `bulk_task_timeout` (seconds) as a duration: 1 s to a day, 600 s when not given.
fn bulk_task_timeout(seconds: Option<f64>) -> Result<std::time::Duration, ConfigError> {
    match seconds {
        None => Ok(BULK_TASK_TIMEOUT),
        Some(s) if s.is_finite() && (1.0..=86_400.0).contains(&s) => {
            Ok(std::time::Duration::from_secs_f64(s))
        }
        Some(s) => Err(ConfigError::Invalid(format!(
            "bulk_task_timeout = {s}: give the seconds a bulk task may take before its records are sent again one by one, from 1 to 86400 (default {})",
            BULK_TASK_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_refuses_a_token() {
        let err = parse_file("access_token = \"abc\"\n").unwrap_err();
        assert!(err.contains("INTERCOM_ACCESS_TOKEN"), "{err}");
        assert!(!err.contains("abc"), "{err}");
    }

    #[test]
    fn config_file_rejects_unknown_keys_and_reads_known_ones() {
        assert!(parse_file("prefx = \"X\"\n").unwrap_err().contains("prefx"));
        let cfg =
            parse_file("prefix = \"Acme\"\nmonthly_spend = false\nexclude = [\"plan\"]\n").unwrap();
        assert_eq!(cfg.prefix.as_deref(), Some("Acme"));
        assert_eq!(cfg.monthly_spend, Some(false));
        assert_eq!(cfg.exclude, vec!["plan".to_string()]);
        assert_eq!(parse_file("timeout = 2.5\n").unwrap().timeout, Some(2.5));
        assert_eq!(
            parse_file("dates = \"timestamp\"\n").unwrap().dates,
            Some(Dates::Timestamp)
        );
        let err = parse_file("dates = \"unix\"\n").unwrap_err();
        assert!(err.contains("timestamp") && err.contains("string"), "{err}");
    }
}
