//! Operational endpoints: liveness, readiness, Prometheus, and the JSON answer for panics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::AppState;

/// Liveness and readiness answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok`, or why not.
    pub status: String,
}

/// Liveness: the process answers and its inference thread is alive, not wedged and not
/// failing every batch (a 503 here makes Kubernetes restart the pod).
#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "The inference thread is dead, stalled or failing", body = ErrorBody),
    ),
    tag = "ops"
)]
pub async fn health(State(state): State<Arc<AppState>>) -> Result<Json<Status>, ApiError> {
    match state.health.verdict().problem() {
        Some(problem) => Err(ApiError::Unhealthy(problem)),
        None => Ok(ok()),
    }
}

/// Readiness: the model is loaded and warmed (the server only listens after that), the
/// inference thread is healthy, and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/ready",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "Shutting down, or the inference thread is unhealthy", body = ErrorBody),
    ),
    tag = "ops"
)]
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<Status>, ApiError> {
    if state.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    health(State(state)).await
}

fn ok() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No API key or a wrong one (with --metrics-auth)", body = ErrorBody),
    ),
    tag = "ops"
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// A handler panic becomes a JSON 500 (and a log line), never a dropped connection.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "handler panicked".into());
    let mut response = ApiError::Internal(message).into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
