//! `POST /evaluate`: a SQuAD file in, the official Exact Match and F1 out. Its windows go
//! through the same queue as `/answer` at background priority, so interactive latency stays
//! bounded while it runs; one evaluation at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::header;
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tracing::instrument;
use utoipa::{IntoParams, ToSchema};

use super::answer::decode_windows;
use super::body::{media_type, read_bytes};
use super::error::{ApiError, ErrorBody};
use super::queue::Priority;
use super::{off_runtime, AppState};
use crate::decode::DecodeConfig;
use crate::predict::prediction_files;
use crate::squad::metrics::{self, Scores};
use crate::squad::{parse_squad_within, Example, LoadError};

/// Query options of `/evaluate`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EvaluateQuery {
    /// Only the first N questions of the file.
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

/// Questions of one evaluation in flight at once: enough to keep batches full, few enough
/// that an evaluation never floods the queue.
const IN_FLIGHT: usize = 256;

/// Evaluate the model on a SQuAD v1.1 or v2.0 file.
#[utoipa::path(
    post,
    path = "/evaluate",
    params(EvaluateQuery),
    request_body(
        description = "A SQuAD file: application/json, application/gzip (or Content-Encoding: gzip), or a multipart/form-data upload",
        content_type = "application/json",
        content = Object
    ),
    responses(
        (status = 200, description = "Scores", body = EvaluateResponse),
        (status = 400, description = "Malformed JSON, gzip or form", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Unsupported Content-Type", body = ErrorBody),
        (status = 422, description = "Not a SQuAD file", body = ErrorBody),
        (status = 429, description = "Another evaluation is running", body = ErrorBody),
    ),
    tag = "qa"
)]
#[instrument(skip_all, fields(limit = query.limit))]
pub async fn evaluate(
    State(state): State<Arc<AppState>>,
    Query(query): Query<EvaluateQuery>,
    request: Request,
) -> Result<Json<EvaluateResponse>, ApiError> {
    let _permit = state.admit()?;
    let _only_one = state
        .evaluation
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::EvaluationRunning)?;
    let result = run(&state, query, request).await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    state
        .metrics
        .evaluations
        .with_label_values(&[outcome])
        .inc();
    result.map(Json)
}

async fn run(
    state: &Arc<AppState>,
    query: EvaluateQuery,
    request: Request,
) -> Result<EvaluateResponse, ApiError> {
    let started = Instant::now();
    let bytes = squad_bytes(request, state).await?;
    let inflate_limit = state.config.evaluate_payload_limit.saturating_mul(4);
    let dataset = off_runtime(move || {
        let parsed = parse_squad_within(&bytes, "the request body", inflate_limit);
        parsed
            .map(|d| match query.limit {
                Some(n) => d.truncated(n),
                None => d,
            })
            .map_err(load_error)
    })
    .await??;
    let examples = Arc::new(dataset.examples());
    if examples.is_empty() {
        return Err(ApiError::Validation("the file has no questions".into()));
    }
    let answers = predict(state, examples).await?;
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

/// Every question through the queue at background priority, `IN_FLIGHT` at a time, longest
/// windows together so that batches pad little.
async fn predict(
    state: &Arc<AppState>,
    examples: Arc<Vec<Example>>,
) -> Result<HashMap<String, String>, ApiError> {
    let tokenized = {
        let (featurizer, examples) = (state.featurizer.clone(), examples.clone());
        let started = Instant::now();
        let windows = off_runtime(move || {
            examples
                .iter()
                .map(|e| featurizer.windows(&e.question, &e.context).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?
        .map_err(|e| ApiError::Validation(e.to_string()))?;
        state
            .metrics
            .tokenize_seconds
            .observe(started.elapsed().as_secs_f64());
        windows
    };
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| tokenized[i].iter().map(|w| w.len()).max().unwrap_or(0));
    let mut logits = vec![Vec::new(); examples.len()];
    let mut pending = JoinSet::new();
    let mut next = order.into_iter();
    loop {
        while pending.len() < IN_FLIGHT {
            let Some(i) = next.next() else { break };
            let (batcher, windows) = (state.batcher.clone(), tokenized[i].clone());
            pending.spawn(async move { (i, batcher.infer(windows, Priority::Background).await) });
        }
        let Some(joined) = pending.join_next().await else {
            break;
        };
        let (i, result) = joined.map_err(|e| ApiError::Internal(e.to_string()))?;
        logits[i] = result?;
    }
    let with_null = state.with_null;
    let config = DecodeConfig {
        max_answer_len: state.answer_len,
        ..DecodeConfig::default()
    };
    off_runtime(move || {
        let predictions = examples
            .iter()
            .zip(&tokenized)
            .zip(&logits)
            .map(|((e, w), l)| decode_windows(&e.context, w, l, &config, with_null))
            .collect::<Result<Vec<_>, _>>()?;
        let (answers, _) = prediction_files(&examples, &predictions, with_null.then_some(0.0));
        Ok(answers)
    })
    .await?
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
