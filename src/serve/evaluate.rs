//! `POST /evaluate`: a SQuAD file in, the official Exact Match and F1 out. Its windows go
//! through the same queue as `/answer` at background priority, so interactive latency stays
//! bounded while it runs; one evaluation at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use tracing::instrument;
use utoipa::{IntoParams, ToSchema};

use super::batcher::BatcherHandle;
use super::body::{media_type, read_bytes, QueryParams};
use super::error::{ApiError, ErrorBody};
use super::queue::Priority;
use super::{off_runtime, AppState};
use crate::pipeline::predict::{
    predict_examples, prediction_files, PredictConfig, PredictError, WindowBackend,
};
use crate::qa::decode::DecodeConfig;
use crate::qa::decode::WindowLogits;
use crate::qa::features::Window;
use crate::qa::squad::metrics::{self, Scores};
use crate::qa::squad::{parse_squad_within, Example, LoadError, SquadFile};

/// Query options of `/evaluate`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EvaluateQuery {
    /// Only the first N questions of the file.
    #[param(minimum = 1, nullable = false)]
    #[serde(default, deserialize_with = "crate::qa::numbers::optional_query_whole")]
    pub limit: Option<usize>,
    /// Include every prediction (id -> answer) in the response.
    #[serde(default)]
    pub predictions: bool,
}

/// Scores of one evaluation, as the official script computes them (percent).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluateResponse {
    /// Exact Match.
    pub exact_match: f64,
    /// Token F1.
    pub f1: f64,
    /// Questions scored.
    pub total: usize,
    /// v2.0: Exact Match on answerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_ans_exact: Option<f64>,
    /// v2.0: F1 on answerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_ans_f1: Option<f64>,
    /// v2.0: answerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_ans_total: Option<usize>,
    /// v2.0: Exact Match on unanswerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_ans_exact: Option<f64>,
    /// v2.0: F1 on unanswerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_ans_f1: Option<f64>,
    /// v2.0: unanswerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_ans_total: Option<usize>,
    /// Questions answered per second, reading and scoring included.
    pub questions_per_second: f64,
    /// Wall time of the evaluation.
    pub duration_ms: u64,
    /// Question id -> predicted answer (with `predictions=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictions: Option<HashMap<String, String>>,
}

/// Batches' worth of windows in one group an evaluation sends to the queue: enough to keep
/// the inference thread's batches full, few enough that an evaluation never floods the queue.
const GROUP_BATCHES: usize = 4;

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
        (status = 400, description = "Malformed JSON, gzip or form", body = ErrorBody),
        (status = 401, description = "No API key or a wrong one (with --api-key or --evaluate-api-key)", body = ErrorBody),
        (status = 404, description = "Turned off on this server (--evaluate off)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Unsupported Content-Type", body = ErrorBody),
        (status = 422, description = "Not a SQuAD file, or bad query parameters", body = ErrorBody),
        (status = 429, description = "Another evaluation is running, or too much work in progress", body = ErrorBody),
        (status = 503, description = "Shutting down", body = ErrorBody),
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
    let result = run(&state, query, request, only_one).await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    state
        .metrics
        .evaluations
        .with_label_values(&[outcome])
        .inc();
    result.map(Json)
}

/// `/evaluate` on a server started with `--evaluate off`.
pub async fn turned_off() -> ApiError {
    ApiError::NotFound("/evaluate is turned off on this server (--evaluate off)".into())
}

async fn run(
    state: &Arc<AppState>,
    query: EvaluateQuery,
    request: Request,
    only_one: OwnedSemaphorePermit,
) -> Result<EvaluateResponse, ApiError> {
    let started = Instant::now();
    let bytes = squad_bytes(request, state).await?;
    let inflate_limit = state.config.evaluate_payload_limit.saturating_mul(4);
    let dataset = off_runtime(move || {
        let parsed = parse_squad_within(&bytes, "the request body", inflate_limit);
        let dataset = parsed.map_err(load_error)?;
        if let Some(path) = dataset.first_empty_list() {
            return Err(ApiError::Validation(format!("{path} is empty")));
        }
        Ok(match query.limit {
            Some(n) => dataset.truncated(n),
            None => dataset,
        })
    })
    .await??;
    let examples = Arc::new(dataset.examples());
    if examples.is_empty() {
        return Err(ApiError::Validation("the file has no questions".into()));
    }
    let answers = predict(state, examples, only_one).await?;
    let scores = metrics::score(&dataset, &answers, None, 1.0)
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    let response = response(&scores, started, query.predictions.then_some(answers));
    state.metrics.last_exact_match.set(response.exact_match);
    state.metrics.last_f1.set(response.f1);
    tracing::info!(
        questions = response.total,
        exact_match = response.exact_match,
        f1 = response.f1,
        seconds = started.elapsed().as_secs_f64(),
        "evaluation finished"
    );
    Ok(response)
}

/// The SQuAD bytes of the request: a JSON or gzip body, or the first file of a form.
async fn squad_bytes(request: Request, state: &Arc<AppState>) -> Result<Bytes, ApiError> {
    let media = media_type(request.headers());
    let gzip_encoded = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    match media.as_str() {
        "multipart/form-data" => {
            let mut form = Multipart::from_request(request, state)
                .await
                .map_err(|r| ApiError::from_rejection(r.status(), r.body_text()))?;
            let field = form
                .next_field()
                .await
                .map_err(|e| ApiError::from_rejection(e.status(), e.body_text()))?
                .ok_or_else(|| ApiError::BadRequest("the form has no file".into()))?;
            field
                .bytes()
                .await
                .map_err(|e| ApiError::from_rejection(e.status(), e.body_text()))
        }
        "application/json" | "application/gzip" | "application/x-gzip" => {
            read_bytes(request, state).await
        }
        _ if gzip_encoded => read_bytes(request, state).await,
        other => Err(ApiError::UnsupportedMediaType(format!(
            "send a SQuAD file as application/json, application/gzip or multipart/form-data, not {}",
            if other.is_empty() { "no Content-Type" } else { other }
        ))),
    }
}

fn load_error(error: LoadError) -> ApiError {
    match error {
        LoadError::TooLarge { .. } => ApiError::PayloadTooLarge(error.to_string()),
        LoadError::Json {
            malformed: true, ..
        } => ApiError::InvalidJson(error.to_string()),
        LoadError::Json { .. } => ApiError::Validation(error.to_string()),
        LoadError::Gzip { .. } | LoadError::Io { .. } => ApiError::BadRequest(error.to_string()),
    }
}

/// The service's queue as a backend of the one prediction path: each group of windows is
/// sent to the inference thread at background priority (so `/answer`'s windows go first) and
/// waited for from the blocking pool. It holds the one-evaluation permit, so a second
/// evaluation can start only when this one's work has really ended, and it stops at the next
/// group once the request is gone (client disconnected).
struct QueueBackend {
    batcher: BatcherHandle,
    runtime: tokio::runtime::Handle,
    abandoned: Arc<AtomicBool>,
    _only_one: OwnedSemaphorePermit,
}

impl WindowBackend for QueueBackend {
    type Error = ApiError;

    fn run(&mut self, group: &[&Window]) -> Result<Vec<WindowLogits>, ApiError> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Err(ApiError::Internal("the client left the evaluation".into()));
        }
        let windows = Arc::new(group.iter().map(|w| (*w).clone()).collect());
        self.runtime
            .block_on(self.batcher.infer(windows, Priority::Background))
            .map(|inferred| inferred.logits)
    }
}

/// Raises its flag when dropped: with the request's future, when the client disconnects.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Every question through [`predict_examples`] with the queue as its backend. Groups are a
/// few batches long, so the batcher can fill its batches with them while bounding what one
/// evaluation keeps queued.
async fn predict(
    state: &Arc<AppState>,
    examples: Arc<Vec<Example>>,
    only_one: OwnedSemaphorePermit,
) -> Result<HashMap<String, String>, ApiError> {
    let config = PredictConfig {
        max_batch_windows: GROUP_BATCHES * state.config.max_batch_size,
        max_batch_tokens: GROUP_BATCHES * state.config.max_batch_tokens,
        decode: DecodeConfig {
            max_answer_len: state.answer_len,
            ..DecodeConfig::default()
        },
        with_null: state.null_threshold.is_some(),
    };
    let guard = AbandonOnDrop(Arc::new(AtomicBool::new(false)));
    let mut backend = QueueBackend {
        batcher: state.batcher.clone(),
        runtime: tokio::runtime::Handle::current(),
        abandoned: guard.0.clone(),
        _only_one: only_one,
    };
    let featurizer = state.featurizer.clone();
    let null_threshold = state.null_threshold;
    let answers = off_runtime(move || {
        let predictions =
            predict_examples(&examples, &featurizer, &config, &mut backend, |_, _| {}).map_err(
                |e| match e {
                    PredictError::Backend(api) => api,
                    PredictError::Features(e) => ApiError::Validation(e.to_string()),
                    other => ApiError::Internal(other.to_string()),
                },
            )?;
        let (answers, _) = prediction_files(&examples, &predictions, null_threshold);
        Ok(answers)
    })
    .await?;
    drop(guard);
    answers
}

fn response(
    scores: &Scores,
    started: Instant,
    predictions: Option<HashMap<String, String>>,
) -> EvaluateResponse {
    let overall = scores.overall();
    let (has_answer, no_answer) = match scores {
        Scores::V1(_) => (None, None),
        Scores::V2 {
            has_answer,
            no_answer,
            ..
        } => (*has_answer, *no_answer),
    };
    let elapsed = started.elapsed();
    EvaluateResponse {
        exact_match: overall.exact,
        f1: overall.f1,
        total: overall.total,
        has_ans_exact: has_answer.map(|s| s.exact),
        has_ans_f1: has_answer.map(|s| s.f1),
        has_ans_total: has_answer.map(|s| s.total),
        no_ans_exact: no_answer.map(|s| s.exact),
        no_ans_f1: no_answer.map(|s| s.f1),
        no_ans_total: no_answer.map(|s| s.total),
        questions_per_second: overall.total as f64 / elapsed.as_secs_f64().max(1e-9),
        duration_ms: elapsed.as_millis() as u64,
        predictions,
    }
}
