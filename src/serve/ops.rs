//! Operational endpoints (liveness, readiness, Prometheus) and the middleware that counts
//! every request, failures included, by route, status and error type.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, ErrorKind};
use super::AppState;

/// Liveness and readiness answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok`, or why not.
    pub status: String,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Status)), tag = "ops")]
pub async fn health() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Readiness: the model is loaded and warmed (the server only listens after that) and the
/// server is not shutting down.
#[utoipa::path(
    get,
    path = "/ready",
    responses((status = 200, body = Status), (status = 503, description = "Shutting down", body = ErrorBody)),
    tag = "ops"
)]
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<Status>, ApiError> {
    if state.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    Ok(Json(Status {
        status: "ok".into(),
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
    tag = "ops"
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Counts and times every request by its route template, and every error by its type.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    metrics
        .request_seconds
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if let Some(ErrorKind(kind)) = response.extensions().get::<ErrorKind>() {
        metrics
            .errors
            .with_label_values(&[route.as_str(), kind])
            .inc();
    }
    response
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
