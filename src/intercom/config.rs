//! Client configuration: region / base URL, access token, version, rate and retry settings.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

use super::error::ConfigError;

/// Environment variable holding the access token.
pub const TOKEN_ENV: &str = "INTERCOM_ACCESS_TOKEN";

/// Intercom version sent in `Intercom-Version` unless configured otherwise.
pub const DEFAULT_INTERCOM_VERSION: &str = "2.16";

/// Intercom's documented default: 10,000 requests per minute per app = 1,666 per 10-second window.
pub const DEFAULT_WINDOW_LIMIT: u32 = 1666;

/// Intercom data-hosting region; selects the API host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// `https://api.intercom.io`
    Us,
    /// `https://api.eu.intercom.io`
    Eu,
    /// `https://api.au.intercom.io`
    Au,
}

impl Region {
    /// The region's API base URL (from the OpenAPI `servers` list).
    pub fn base_url(self) -> &'static str {
        match self {
            Region::Us => "https://api.intercom.io",
            Region::Eu => "https://api.eu.intercom.io",
            Region::Au => "https://api.au.intercom.io",
        }
    }
}

impl FromStr for Region {
    type Err = ConfigError;

    /// Accepts `us`, `eu`, `au` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "us" => Ok(Region::Us),
            "eu" => Ok(Region::Eu),
            "au" => Ok(Region::Au),
            other => Err(ConfigError::InvalidSetting(format!(
                "unknown Intercom region {other:?}; expected us, eu or au"
            ))),
        }
    }
}

/// An Intercom access token. `Debug` and `Display` print `***`; the value is only readable
/// inside this module tree, where it goes into the `Authorization` header and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token value; fails if it is empty or cannot be sent in an HTTP header.
    pub fn new(value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(ConfigError::MissingToken);
        }
        if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::InvalidToken {
                reason: "it contains spaces, control or non-ASCII characters",
            });
        }
        Ok(AccessToken(trimmed.to_string()))
    }

    /// Reads the token from `INTERCOM_ACCESS_TOKEN`; the error tells the user how to set it.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var(TOKEN_ENV) {
            Ok(v) => Self::new(v),
            Err(std::env::VarError::NotPresent) => Err(ConfigError::MissingToken),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::InvalidToken {
                reason: "INTERCOM_ACCESS_TOKEN is not valid UTF-8",
            }),
        }
    }

    /// The secret value. Crate-private: only the client's header construction and redaction use it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the token in `text` by `***` (defence in depth for text
    /// that came from the network, e.g. an error body echoing the Authorization header).
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything [`Client::new`](super::Client::new) needs. Build with [`ClientConfig::new`] or
/// [`ClientConfig::for_region`], then adjust the public fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base URL, e.g. `https://api.intercom.io`. `https://` is always accepted; `http://`
    /// only for loopback hosts (127.0.0.0/8, `localhost`, `[::1]`).
    pub base_url: String,
    /// Access token (never logged, never in error text).
    pub token: AccessToken,
    /// Sent as `Intercom-Version`; default `2.16`.
    pub intercom_version: String,
    /// User cap in requests per rate window (10 s); a hard ceiling. `None` = follow Intercom's
    /// `X-RateLimit-*` headers, starting at 1,666 per window.
    pub rate_limit: Option<u32>,
    /// Maximum requests in flight; default 16.
    pub concurrency: usize,
    /// Timeout per attempt (connect + send + full answer body); default 30 s.
    pub timeout: Duration,
    /// Attempts per call including the first; default 6.
    pub max_attempts: u32,
    /// Length of Intercom's rate window; 10 s. Only tests should change it.
    pub rate_window: Duration,
    /// Full-jitter backoff base; default 250 ms.
    pub backoff_base: Duration,
    /// Full-jitter backoff cap; default 20 s.
    pub backoff_cap: Duration,
}

impl ClientConfig {
    /// Defaults for the given base URL (validated later by `Client::new`).
    pub fn new(base_url: impl Into<String>, token: AccessToken) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            token,
            intercom_version: DEFAULT_INTERCOM_VERSION.to_string(),
            rate_limit: None,
            concurrency: 16,
            timeout: Duration::from_secs(30),
            max_attempts: 6,
            rate_window: Duration::from_secs(10),
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(20),
        }
    }

    /// Defaults for the given region's API host.
    pub fn for_region(region: Region, token: AccessToken) -> Self {
        Self::new(region.base_url(), token)
    }

    /// Checks every setting; returns the normalised base URL (no trailing slash).
    pub(crate) fn validate(&self) -> Result<String, ConfigError> {
        let base = validate_base_url(&self.base_url)?;
        if self.concurrency == 0 {
            return Err(ConfigError::InvalidSetting(
                "concurrency must be at least 1".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::InvalidSetting(
                "max_attempts must be at least 1".into(),
            ));
        }
        if self.rate_limit == Some(0) {
            return Err(ConfigError::InvalidSetting(
                "rate limit must be at least 1 request per 10 s (omit it to follow Intercom's headers)"
                    .into(),
            ));
        }
        if self.timeout.is_zero() || self.rate_window.is_zero() {
            return Err(ConfigError::InvalidSetting(
                "timeout and rate window must be positive".into(),
            ));
        }
        if self.backoff_base.is_zero() || self.backoff_cap < self.backoff_base {
            return Err(ConfigError::InvalidSetting(
                "backoff base must be positive and not above the cap".into(),
            ));
        }
        let v = &self.intercom_version;
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b.is_ascii_alphabetic())
        {
            return Err(ConfigError::InvalidSetting(format!(
                "Intercom-Version {v:?} is not a version such as 2.16"
            )));
        }
        Ok(base)
    }
}

/// Validates a base URL: `https://` always; `http://` only for loopback hosts. Returns it
/// without trailing slash. No credentials, query or fragment allowed.
pub fn validate_base_url(raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim();
    let url = Url::parse(trimmed).map_err(|e| ConfigError::InvalidBaseUrl {
        url: trimmed.to_string(),
        reason: format!("{e}; expected e.g. https://api.intercom.io"),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::InvalidBaseUrl {
            url: "(not shown: it contains credentials)".into(),
            reason: "remove user:password@ from the URL; the token is sent in a header".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::InvalidBaseUrl {
            url: trimmed.to_string(),
            reason: "remove the ?query / #fragment part".into(),
        });
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback_host(&url) {
                return Err(ConfigError::InsecureBaseUrl {
                    url: trimmed.to_string(),
                });
            }
        }
        other => {
            return Err(ConfigError::InvalidBaseUrl {
                url: trimmed.to_string(),
                reason: format!("scheme {other:?} is not supported; use https://"),
            })
        }
    }
    if url.host().is_none() {
        return Err(ConfigError::InvalidBaseUrl {
            url: trimmed.to_string(),
            reason: "it has no host".into(),
        });
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// True if the URL's host is 127.0.0.0/8, ::1 or `localhost`.
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
