//! `/evaluations`: start an evaluation job, watch it, read its report, cancel it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tracing::instrument;
use utoipa::ToSchema;

use super::super::body::QueryParams;
use super::super::error::{ApiError, ErrorBody};
use super::super::AppState;
use super::jobs::{Job, JobEnd, JobState};
use super::run::EvaluationResult;
use super::upload::{receive, EvaluateQuery, UploadRejections};
use crate::qa::squad::SquadFile;

/// A job's state, progress and, once done, its result.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationStatus {
    /// The job's id (its address is `/evaluations/{id}`).
    pub id: String,
    /// Where it is.
    pub state: JobState,
    /// Questions answered and scored so far.
    pub questions_done: usize,
    /// Questions in the job.
    pub questions_total: usize,
    /// Milliseconds it has run (0 while queued).
    pub elapsed_ms: u64,
    /// Estimated milliseconds left, from the pace so far (`null` before the first questions
    /// are done and once it has ended).
    pub remaining_ms: Option<u64>,
    /// Exact Match so far (percent; the official score once done).
    pub exact_match: Option<f64>,
    /// F1 so far (percent; the official score once done).
    pub f1: Option<f64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// The official scores and the per-question report, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EvaluationResult>)]
    pub result: Option<Arc<EvaluationResult>>,
}

impl EvaluationStatus {
    fn of(job: &Job, with_result: bool) -> Self {
        let view = job.view();
        let progress = job.progress.snapshot();
        let remaining = (!view.state.is_final() && progress.done > 0).then(|| {
            let per_question = view.elapsed.as_secs_f64() / progress.done as f64;
            let left = (progress.total - progress.done) as f64 * per_question;
            Duration::from_secs_f64(left).as_millis() as u64
        });
        let mut status = Self {
            id: job.id.clone(),
            state: view.state,
            questions_done: progress.done,
            questions_total: progress.total,
            elapsed_ms: view.elapsed.as_millis() as u64,
            remaining_ms: remaining,
            exact_match: progress.exact_match,
            f1: progress.f1,
            error: None,
            result: None,
        };
        match view.end {
            Some(JobEnd::Done(result)) => {
                status.exact_match = Some(result.scores.exact_match);
                status.f1 = Some(result.scores.f1);
                status.result = with_result.then_some(result);
            }
            Some(JobEnd::Failed(error_type, error)) => {
                status.error = Some(ErrorBody {
                    error,
                    error_type: error_type.to_string(),
                    request_id: None,
                });
            }
            Some(JobEnd::Cancelled) | None => {}
        }
        status
    }
}

/// Start an evaluation job on a SQuAD v1.1 or v2.0 file; watch it at the returned address.
#[utoipa::path(
    post,
    path = "/evaluations",
    params(EvaluateQuery),
    request_body(
        description = "A SQuAD v1.1 or v2.0 file, in the same forms as /evaluate",
        content_type = "application/json",
        content = SquadFile
    ),
    responses(
        (status = 202, description = "Queued; Location: /evaluations/{id}", body = EvaluationStatus),
        (status = 429, description = "Too many jobs waiting (--max-queued-evaluations)", body = ErrorBody),
        UploadRejections,
    ),
    tag = "evaluations"
)]
#[instrument(skip_all, fields(limit = query.limit))]
pub async fn start(
    State(state): State<Arc<AppState>>,
    QueryParams(query): QueryParams<EvaluateQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let _permit = state.admit(1)?;
    state.jobs.check_room()?;
    let upload = receive(&state, request, query.limit).await?;
    let job = state.jobs.submit(upload)?;
    tracing::info!(id = %job.id, questions = job.progress.snapshot().total, "evaluation queued");
    let location = HeaderValue::from_str(&format!("/evaluations/{}", job.id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = Json(EvaluationStatus::of(&job, false));
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], body).into_response())
}

/// The jobs kept, oldest first (without their results).
#[utoipa::path(
    get,
    path = "/evaluations",
    responses(
        (status = 200, description = "Every job kept", body = [EvaluationStatus]),
        (status = 401, description = "No API key or a wrong one", body = ErrorBody),
        (status = 404, description = "Turned off on this server (--evaluate off)", body = ErrorBody),
    ),
    tag = "evaluations"
)]
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<EvaluationStatus>> {
    let jobs = state.jobs.list();
    Json(
        jobs.iter()
            .map(|j| EvaluationStatus::of(j, false))
            .collect(),
    )
}

/// A job's state and progress, and its full result once done.
#[utoipa::path(
    get,
    path = "/evaluations/{id}",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = EvaluationStatus),
        (status = 401, description = "No API key or a wrong one", body = ErrorBody),
        (status = 404, description = "No such job (or it is no longer kept)", body = ErrorBody),
    ),
    tag = "evaluations"
)]
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<EvaluationStatus>, ApiError> {
    let job = state.jobs.get(&id).ok_or_else(|| no_such_job(&id))?;
    Ok(Json(EvaluationStatus::of(&job, true)))
}

/// Delete a job: one that has not ended is cancelled first (its queued windows are dropped).
#[utoipa::path(
    delete,
    path = "/evaluations/{id}",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job as it was left (`cancelled` if it had not ended); it is gone afterwards (404)", body = EvaluationStatus),
        (status = 401, description = "No API key or a wrong one", body = ErrorBody),
        (status = 404, description = "No such job (or it is no longer kept)", body = ErrorBody),
    ),
    tag = "evaluations"
)]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<EvaluationStatus>, ApiError> {
    let job = state.jobs.cancel(&id).ok_or_else(|| no_such_job(&id))?;
    tracing::info!(id = %job.id, "evaluation deleted");
    Ok(Json(EvaluationStatus::of(&job, false)))
}

fn no_such_job(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no evaluation job {id:?} (finished jobs are kept for a while)"
    ))
}
