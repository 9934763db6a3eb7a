//! Intercom-shaped API errors (`error.list`).

use axum::http::StatusCode;

/// One failed API answer: rendered as
/// `{"type":"error.list","request_id":…,"errors":[{"code":…,"message":…}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Intercom error code, e.g. `company_not_found`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `Link` header value, if any (410 `contact_merged` points to the canonical contact).
    pub link: Option<String>,
}

impl ApiError {
    /// An error with an explicit status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            link: None,
        }
    }

    /// 400 `bad_request` (the spec's answer to an unknown body parameter: "bad 'test' parameter").
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 `parameter_invalid` (the spec's code for invalid values, e.g. on data attributes).
    pub fn parameter_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "parameter_invalid", message)
    }

    /// 404 `company_not_found` with the spec's message.
    pub fn company_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "company_not_found",
            "Company Not Found",
        )
    }

    /// 404 `not_found` with the given message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}
