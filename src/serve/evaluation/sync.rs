//! `POST /evaluate`: a SQuAD file in, the official Exact Match and F1 out, in one request —
//! for scripts and CI. It runs the same evaluation as a job, waiting for it; when the client
//! leaves, the evaluation is cancelled.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::Json;
use tracing::instrument;

use super::super::body::QueryParams;
use super::super::error::{ApiError, ErrorBody};
use super::super::AppState;
use super::run::{run, Cancel, Ended, EvaluateResponse, Progress};
use super::upload::{receive, EvaluateQuery, UploadRejections};
use crate::qa::squad::SquadFile;

/// Evaluate the model on a SQuAD v1.1 or v2.0 file.
#[utoipa::path(
    post,
    path = "/evaluate",
    params(EvaluateQuery),
    request_body(
        description = "A SQuAD v1.1 or v2.0 file. Also accepted, with the same content: application/gzip (or Content-Encoding: gzip) and a multipart/form-data upload of the file",
        content_type = "application/json",
        content = SquadFile
    ),
    responses(
        (status = 200, description = "Scores", body = EvaluateResponse),
        (status = 429, description = "Another evaluation is running, or too much work in progress", body = ErrorBody),
        UploadRejections,
    ),
    tag = "qa"
)]
#[instrument(skip_all, fields(limit = query.limit))]
pub async fn evaluate(
    State(state): State<Arc<AppState>>,
    QueryParams(query): QueryParams<EvaluateQuery>,
    request: Request,
) -> Result<Json<EvaluateResponse>, ApiError> {
    let _permit = state.admit(1)?;
    let only_one = state
        .evaluation
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::EvaluationRunning)?;
    let upload = receive(&state, request, query.limit).await?;
    let progress = Arc::new(Progress::new(upload.examples.len()));
    let guard = CancelOnDrop(Cancel::default());
    let outcome = run(&state, upload, progress, guard.0.clone(), only_one).await;
    drop(guard);
    match outcome {
        Ok(result) => Ok(Json(EvaluateResponse {
            predictions: query.predictions.then(|| result.answers()),
            ..result.scores
        })),
        Err(Ended::Failed(error)) => Err(error),
        Err(Ended::Cancelled) => Err(ApiError::Internal("the evaluation was cancelled".into())),
    }
}

/// `/evaluate` and `/evaluations` on a server started with `--evaluate off`.
pub async fn turned_off() -> ApiError {
    ApiError::NotFound("evaluation is turned off on this server (--evaluate off)".into())
}

/// Cancels its evaluation when dropped: with the request's future, when the client leaves.
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
