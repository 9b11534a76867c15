//! The one error type of the HTTP API and its mapping to status codes, in one place, so that
//! every failure, ours or axum's, reaches the client as `{error, error_type}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

/// Everything a request can fail with.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The body is not valid JSON (or not UTF-8, or truncated).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The body is not what the endpoint reads (e.g. a broken gzip stream or multipart form).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed JSON with missing fields, wrong types or values out of range.
    #[error("{0}")]
    Validation(String),
    /// The body exceeds the endpoint's limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The Content-Type is not one the endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many requests or windows already waiting: try again shortly.
    #[error("{0}")]
    Overloaded(String),
    /// Another evaluation is running (one at a time).
    #[error("an evaluation is already running; try again when it finishes")]
    EvaluationRunning,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The inference thread is dead, wedged or failing: the server needs a restart.
    #[error("unhealthy: {0}")]
    Unhealthy(String),
    /// No such route (or one this server has turned off).
    #[error("{0}")]
    NotFound(String),
    /// No API key, or a wrong one, for a route that needs one.
    #[error("{0}")]
    Unauthorized(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A bug or a model failure: never caused by the request's content.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for humans.
    pub error: String,
    /// Stable machine-readable kind: `invalid_json`, `bad_request`, `validation`,
    /// `payload_too_large`, `unsupported_media_type`, `overloaded`, `evaluation_running`,
    /// `unavailable`, `unhealthy`, `not_found`, `unauthorized`, `method_not_allowed`,
    /// `internal`.
    pub error_type: String,
    /// The request's id (the `x-request-id` header), to find its log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Overloaded(_) | Self::EvaluationRunning => StatusCode::TOO_MANY_REQUESTS,
            Self::ShuttingDown | Self::Unhealthy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `error_type` string (also the `error_type` label of the error metric).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Overloaded(_) => "overloaded",
            Self::EvaluationRunning => "evaluation_running",
            Self::ShuttingDown => "unavailable",
            Self::Unhealthy(_) => "unhealthy",
            Self::NotFound(_) => "not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal(_) => "internal",
        }
    }

    /// Maps one of axum's rejections (body too large, unreadable body, bad multipart form) by
    /// the status axum gives it.
    pub fn from_rejection(status: StatusCode, text: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(text),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(text),
            _ => Self::BadRequest(text),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let message = self.to_string();
        let body = ErrorBody {
            error: message.clone(),
            error_type: self.error_type().to_string(),
            request_id: None,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"bertqa\""),
            );
        }
        if refused_before_the_body_is_read(status) {
            // hyper closes a connection whose request body was left unread; saying so keeps
            // clients from sending their next request on it (they would see it cut off).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response.extensions_mut().insert(ErrorReport {
            error_type: self.error_type(),
            message,
        });
        response
    }
}

/// Statuses a request can get before its body is read (a 64 MiB `/evaluate` upload is not
/// read just to be refused).
fn refused_before_the_body_is_read(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::UNAUTHORIZED
    )
}

/// Marks an error response with what it says, for the tracking middleware (which counts it
/// and writes the request id into its body).
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// The `error_type`.
    pub error_type: &'static str,
    /// The `error` text.
    pub message: String,
}

/// The router's fallback: unknown routes answer in our JSON shape too.
pub async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}

/// The router's method fallback: a known route with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_a_client_or_server_status_and_a_stable_type() {
        let cases = [
            (ApiError::InvalidJson("x".into()), 400, "invalid_json"),
            (ApiError::Validation("x".into()), 422, "validation"),
            (
                ApiError::PayloadTooLarge("x".into()),
                413,
                "payload_too_large",
            ),
            (
                ApiError::UnsupportedMediaType("x".into()),
                415,
                "unsupported_media_type",
            ),
            (ApiError::Overloaded("x".into()), 429, "overloaded"),
            (ApiError::EvaluationRunning, 429, "evaluation_running"),
            (ApiError::ShuttingDown, 503, "unavailable"),
            (ApiError::Unhealthy("x".into()), 503, "unhealthy"),
            (ApiError::Unauthorized("x".into()), 401, "unauthorized"),
            (ApiError::Internal("x".into()), 500, "internal"),
        ];
        for (error, status, kind) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.error_type(), kind);
            let response = error.into_response();
            let retry = response.headers().get(header::RETRY_AFTER).is_some();
            assert_eq!(retry, status == 429 || status == 503);
            let close = response.headers().get(header::CONNECTION);
            let expected = [401, 413, 415, 429].contains(&status).then_some("close");
            let challenge = response.headers().get(header::WWW_AUTHENTICATE).is_some();
            assert_eq!(challenge, status == 401);
            assert_eq!(close.and_then(|v| v.to_str().ok()), expected, "{status}");
        }
    }
}
