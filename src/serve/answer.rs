//! `POST /answer`: one question (or a list of them) about a context → the answer span.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::instrument;
use utoipa::ToSchema;

use super::body::{from_value, JsonBody};
use super::error::{ApiError, ErrorBody};
use super::queue::Priority;
use super::{off_runtime, AppState};
use crate::qa::decode::{decode, DecodeConfig, Prediction};

/// Most ranked answers a request may ask for (the decoder's n-best).
pub const MAX_TOP_K: usize = 20;

/// One question about one context.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The question.
    #[schema(example = "Which NFL team represented the AFC at Super Bowl 50?")]
    pub question: String,
    /// The text that holds the answer.
    #[schema(
        example = "The American Football Conference (AFC) champion Denver Broncos defeated the National Football Conference (NFC) champion Carolina Panthers 24-10."
    )]
    pub context: String,
    /// How many ranked answers to return (1 to 20); above 1 the response has `answers`.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Longest answer in tokens (default: the model's).
    #[serde(default)]
    pub max_answer_len: Option<usize>,
}

// The handler reads every body into this type and the OpenAPI document is generated from
// it, so the two cannot drift; `untagged` gives the schema the same one-or-list shape.
/// The request body: one question, or a list answered in order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AnswerInput {
    /// One question.
    One(AnswerRequest),
    /// Several questions.
    Many(Vec<AnswerRequest>),
}

impl AnswerInput {
    /// A list is `Many`, anything else `One`: decided on the JSON's shape, so that a bad field
    /// is reported with its path (`[1].top_k`) instead of serde's "no variant matched".
    fn from_json(body: Value) -> Result<Self, ApiError> {
        Ok(match body {
            Value::Array(items) => Self::Many(from_value(Value::Array(items))?),
            other => Self::One(from_value(other)?),
        })
    }
}

/// One answer span.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnswerSpan {
    /// The answer: exactly `context[start..end]` (empty when a SQuAD v2.0 model says the
    /// context holds no answer).
    pub answer: String,
    /// The model's probability for this answer among its candidates (0 to 1).
    pub score: f32,
    /// Character offset of the answer's first character in `context`.
    pub start: usize,
    /// Character offset one past the answer's last character.
    pub end: usize,
}

/// The answer to one question.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnswerResponse {
    /// The best answer.
    #[serde(flatten)]
    pub best: AnswerSpan,
    /// The `top_k` best answers, best first (only when `top_k` > 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<AnswerSpan>>,
}

/// The response body: one answer, or a list in the order of the questions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AnswerOutput {
    /// For one question.
    One(AnswerResponse),
    /// For a list of questions.
    Many(Vec<AnswerResponse>),
}

/// Answer questions about contexts.
#[utoipa::path(
    post,
    path = "/answer",
    request_body = AnswerInput,
    responses(
        (status = 200, description = "The answers", body = AnswerOutput),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body or context too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Overloaded; retry after Retry-After seconds", body = ErrorBody),
        (status = 503, description = "Shutting down", body = ErrorBody),
    ),
    tag = "qa"
)]
#[instrument(skip_all)]
pub async fn answer(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<AnswerOutput>, ApiError> {
    let _permit = state.admit()?;
    match AnswerInput::from_json(body)? {
        AnswerInput::Many(requests) => {
            if requests.is_empty() || requests.len() > state.config.max_client_batch_size {
                return Err(ApiError::Validation(format!(
                    "send 1 to {} questions per request, not {}",
                    state.config.max_client_batch_size,
                    requests.len()
                )));
            }
            for request in &requests {
                validate(&state, request)?;
            }
            let mut pending = tokio::task::JoinSet::new();
            for (index, request) in requests.into_iter().enumerate() {
                let state = state.clone();
                pending.spawn(async move { (index, answer_one(&state, request).await) });
            }
            let mut answers: Vec<Option<AnswerResponse>> = vec![None; pending.len()];
            while let Some(joined) = pending.join_next().await {
                let (index, result) = joined.map_err(|e| ApiError::Internal(e.to_string()))?;
                answers[index] = Some(result?);
            }
            Ok(Json(AnswerOutput::Many(
                answers.into_iter().flatten().collect(),
            )))
        }
        AnswerInput::One(request) => {
            validate(&state, &request)?;
            Ok(Json(AnswerOutput::One(answer_one(&state, request).await?)))
        }
    }
}

fn validate(state: &AppState, request: &AnswerRequest) -> Result<(), ApiError> {
    if request.question.trim().is_empty() {
        return Err(ApiError::Validation("question is empty".into()));
    }
    if request.context.trim().is_empty() {
        return Err(ApiError::Validation("context is empty".into()));
    }
    let chars = request.context.chars().count();
    if chars > state.config.max_context_chars {
        return Err(ApiError::PayloadTooLarge(format!(
            "context has {chars} characters; the limit is {}",
            state.config.max_context_chars
        )));
    }
    if let Some(k) = request.top_k.filter(|k| !(1..=MAX_TOP_K).contains(k)) {
        return Err(ApiError::Validation(format!(
            "top_k must be 1 to {MAX_TOP_K}, not {k}"
        )));
    }
    let longest = state.window.max_seq_len;
    if let Some(n) = request
        .max_answer_len
        .filter(|n| !(1..=longest).contains(n))
    {
        return Err(ApiError::Validation(format!(
            "max_answer_len must be 1 to {longest}, not {n}"
        )));
    }
    Ok(())
}

async fn answer_one(state: &AppState, request: AnswerRequest) -> Result<AnswerResponse, ApiError> {
    let AnswerRequest {
        question,
        context,
        top_k,
        max_answer_len,
    } = request;
    let context: Arc<str> = context.into();
    let windows = Arc::new(state.tokenize(question, context.clone()).await?);
    let logits = state
        .batcher
        .infer(windows.clone(), Priority::Interactive)
        .await?;
    let decode_config = DecodeConfig {
        max_answer_len: max_answer_len.unwrap_or(state.answer_len),
        ..DecodeConfig::default()
    };
    let with_null = state.with_null;
    let prediction = off_runtime(move || {
        decode(&context, &windows, &logits, &decode_config, with_null)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await??;
    Ok(respond(&prediction, top_k.unwrap_or(1), with_null))
}

fn respond(prediction: &Prediction, top_k: usize, with_null: bool) -> AnswerResponse {
    let spans: Vec<AnswerSpan> = prediction
        .answers
        .iter()
        .take(top_k)
        .map(|a| AnswerSpan {
            answer: a.text.clone(),
            score: a.probability,
            start: a.start,
            end: a.end,
        })
        .collect();
    // The null answer's probability is what the spans leave; a v1.1 model has none.
    let null_probability = 1.0
        - prediction
            .answers
            .iter()
            .map(|a| a.probability)
            .sum::<f32>();
    let no_answer = || AnswerSpan {
        answer: String::new(),
        score: if with_null { null_probability } else { 0.0 },
        start: 0,
        end: 0,
    };
    let null_wins = with_null && prediction.best_with_null(0.0).0.is_empty();
    let best = match spans.first() {
        Some(span) if !null_wins => span.clone(),
        _ => no_answer(),
    };
    AnswerResponse {
        best,
        answers: (top_k > 1).then_some(spans),
    }
}
