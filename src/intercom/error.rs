//! Error types of the Intercom client.
//!
//! Neither type ever contains the access token: configuration errors never echo it, and
//! text taken from the network is passed through [`redact`](crate::intercom::config::AccessToken)
//! before it lands in an [`ApiError`].

use std::fmt;

/// A problem with the client's configuration, found before any request is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `INTERCOM_ACCESS_TOKEN` is unset or empty.
    #[error(
        "INTERCOM_ACCESS_TOKEN is not set. Create an access token for your app in Intercom's \
         Developer Hub (Your app → Configure → Authentication), then run \
         `export INTERCOM_ACCESS_TOKEN='<token>'` in the shell that starts intercom-push"
    )]
    MissingToken,
    /// The token cannot be sent in an HTTP header (the value itself is never shown).
    #[error(
        "the Intercom access token is malformed ({reason}); copy it again from the Developer Hub \
         (the value is not shown here)"
    )]
    InvalidToken {
        /// What is wrong with it, without the value.
        reason: &'static str,
    },
    /// A plain `http://` base URL whose host is not loopback.
    #[error(
        "refusing base URL {url}: plain http:// would send the access token unencrypted. \
         Use https://, or http:// only for a local test server on a loopback address \
         (127.0.0.1, localhost or [::1])"
    )]
    InsecureBaseUrl {
        /// The refused URL.
        url: String,
    },
    /// A base URL that cannot be used at all.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The refused URL (credentials, if any were present, are not echoed).
        url: String,
        /// Why it was refused, and how to fix it.
        reason: String,
    },
    /// A numeric or textual setting out of range.
    #[error("invalid Intercom client setting: {0}")]
    InvalidSetting(String),
    /// The HTTP stack could not be initialised (e.g. TLS roots).
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
}

/// Whether retrying the same call later may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A failure that is usually temporary (429, 408, 5xx, timeouts, dropped connections);
    /// the client already retried it `attempts` times, or could not safely retry it.
    Transient,
    /// A failure that retrying will not fix (other 4xx, unexpected answer shape).
    Terminal,
}

/// A failed Intercom API call, after the client's retries.
///
/// `code`, `message` and `request_id` come from Intercom's `error.list` body when there is one
/// (`errors[0]`); `request_id` falls back to the `X-Request-Id` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP method of the call.
    pub method: &'static str,
    /// Request path (without query string), e.g. `/companies/5f4d…`.
    pub path: String,
    /// HTTP status of the last answer, `None` if no answer was received (transport error).
    pub status: Option<u16>,
    /// Intercom's `errors[0].code`, e.g. `company_not_found`.
    pub code: Option<String>,
    /// Intercom's `errors[0].message`, or a description of the transport/parse failure.
    pub message: String,
    /// Intercom's `request_id`, for support tickets.
    pub request_id: Option<String>,
    /// Transient (retries exhausted / not safely retryable) or terminal.
    pub kind: ErrorKind,
    /// Number of attempts made (1 = not retried).
    pub attempts: u32,
}

impl ApiError {
    /// True for HTTP 404 answers.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// True if the failure is transient (see [`ErrorKind::Transient`]).
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// True if Intercom answered with this `errors[0].code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// True if a Preview API call was refused because the workspace does not answer that API:
    /// a 404 on the endpoint itself (not `job_not_found`, a job it does know), or a 400 on the
    /// `Intercom-Version`.
    pub fn preview_unavailable(&self) -> bool {
        match self.status {
            Some(404) => !self.has_code("job_not_found"),
            Some(400) => {
                self.has_code("intercom_version_invalid")
                    || self.message.to_ascii_lowercase().contains("version")
            }
            _ => false,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Intercom {} {} failed", self.method, self.path)?;
        match self.status {
            Some(s) => write!(f, ": HTTP {s}")?,
            None => write!(f, ": no HTTP answer")?,
        }
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " (request_id {id})")?;
        }
        match (self.kind, self.attempts) {
            (ErrorKind::Transient, n) if n > 1 => {
                write!(f, " [transient; gave up after {n} attempts]")
            }
            (ErrorKind::Transient, _) => write!(f, " [transient]"),
            (ErrorKind::Terminal, n) if n > 1 => write!(f, " [after {n} attempts]"),
            (ErrorKind::Terminal, _) => Ok(()),
        }
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, code: &str, message: &str) -> ApiError {
        ApiError {
            method: "PUT",
            path: "/companies/bulk".into(),
            status: Some(status),
            code: Some(code.into()),
            message: message.into(),
            request_id: None,
            kind: ErrorKind::Terminal,
            attempts: 1,
        }
    }

    #[test]
    fn only_a_missing_endpoint_or_a_refused_version_means_no_preview_api() {
        let unavailable = [
            answered(404, "not_found", "Resource Not Found"),
            answered(404, "company_not_found", "Company Not Found"),
            answered(
                400,
                "intercom_version_invalid",
                "Requested API version 'Preview' is not available",
            ),
            answered(400, "bad_request", "Unsupported API Version"),
        ];
        for e in &unavailable {
            assert!(e.preview_unavailable(), "{e}");
        }
        let available = [
            answered(404, "job_not_found", "job job_v2_1 not found"),
            answered(
                403,
                "forbidden",
                "job job_v2_1 is closed for new task updates",
            ),
            answered(
                422,
                "parameter_invalid",
                "maximum number of companies per request is 100",
            ),
            answered(400, "parameter_invalid", "custom attribute does not exist"),
            answered(500, "server_error", "Server Error"),
        ];
        for e in &available {
            assert!(!e.preview_unavailable(), "{e}");
        }
    }
}
