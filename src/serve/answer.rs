//! `POST /answer`: one question (or a list of them) about a context → the answer span.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tracing::instrument;
use utoipa::ToSchema;

use super::body::{parse_json, JsonBytes};
use super::error::{ApiError, ErrorBody};
use super::queue::Priority;
use super::trace::RequestRecord;
use super::AppState;
use crate::qa::decode::{decode, DecodeConfig, Prediction};
use crate::qa::text::is_ecmascript_whitespace;

/// Most ranked answers a request may ask for (the decoder's n-best).
pub const MAX_TOP_K: usize = 20;

/// One question about one context.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The question (not only white space).
    #[schema(
        example = "Which NFL team represented the AFC at Super Bowl 50?",
        min_length = 1,
        pattern = "\\S"
    )]
    pub question: String,
    /// The text that holds the answer (not only white space; at most `--max-context-chars`
    /// characters, the `maxLength` of the document this server serves).
    #[schema(
        example = "The American Football Conference (AFC) champion Denver Broncos defeated the National Football Conference (NFC) champion Carolina Panthers 24-10.",
        min_length = 1,
        pattern = "\\S"
    )]
    pub context: String,
    /// How many ranked answers to return (1 to 20); above 1 the response has `answers`.
    #[serde(default, deserialize_with = "crate::qa::numbers::optional_whole")]
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: Option<usize>,
    /// Longest answer in tokens, 1 to the window length (default: the model's).
    #[serde(default, deserialize_with = "crate::qa::numbers::optional_whole")]
    #[schema(minimum = 1)]
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
    /// Parses a body once: a list (`[` first) is `Many`, anything else `One`, so that a bad
    /// field is reported with its path (`[1].top_k`) instead of serde's "no variant matched".
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            parse_json(body).map(Self::Many)
        } else {
            parse_json(body).map(Self::One)
        }
    }

    /// The questions, in order.
    fn into_requests(self) -> Vec<AnswerRequest> {
        match self {
            Self::One(request) => vec![request],
            Self::Many(requests) => requests,
        }
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
        (status = 401, description = "No API key or a wrong one (with --api-key)", body = ErrorBody),
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
    Extension(record): Extension<Arc<RequestRecord>>,
    JsonBytes(body): JsonBytes,
) -> Result<Json<AnswerOutput>, ApiError> {
    let _request = state.admit(1)?;
    let input = state.pool.run(move || AnswerInput::parse(&body)).await??;
    let many = matches!(input, AnswerInput::Many(_));
    let requests = input.into_requests();
    let limit = state.config.max_client_batch_size;
    if requests.is_empty() || requests.len() > limit {
        return Err(ApiError::Validation(format!(
            "send 1 to {limit} questions per request, not {}",
            requests.len()
        )));
    }
    for request in &requests {
        validate(&state, request)?;
    }
    // The request's own permit counts as its first question.
    let _others = state.admit(requests.len() - 1)?;
    let mut pending = tokio::task::JoinSet::new();
    for (index, request) in requests.into_iter().enumerate() {
        let (state, record) = (state.clone(), record.clone());
        pending.spawn(async move { (index, answer_one(&state, request, &record).await) });
    }
    let mut answers: Vec<Option<AnswerResponse>> = vec![None; pending.len()];
    while let Some(joined) = pending.join_next().await {
        let (index, result) = joined.map_err(|e| ApiError::Internal(e.to_string()))?;
        answers[index] = Some(result?);
    }
    let mut answers = answers.into_iter().flatten();
    Ok(Json(if many {
        AnswerOutput::Many(answers.collect())
    } else {
        let one = answers.next();
        AnswerOutput::One(one.ok_or_else(|| ApiError::Internal("no answer".into()))?)
    }))
}

fn validate(state: &AppState, request: &AnswerRequest) -> Result<(), ApiError> {
    if !has_content(&request.question) {
        return Err(ApiError::Validation(
            "question is empty or only white space".into(),
        ));
    }
    if !has_content(&request.context) {
        return Err(ApiError::Validation(
            "context is empty or only white space".into(),
        ));
    }
    let chars = request.context.chars().count();
    if chars > state.config.max_context_chars {
        // 422, not 413: the body fits, a field breaks the document's `maxLength`.
        return Err(ApiError::Validation(format!(
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

/// True when `text` matches the published `\S` pattern (a character that is not ECMAScript
/// white space), so the server accepts exactly what the OpenAPI document allows.
fn has_content(text: &str) -> bool {
    text.chars().any(|c| !is_ecmascript_whitespace(c))
}

async fn answer_one(
    state: &AppState,
    request: AnswerRequest,
    record: &RequestRecord,
) -> Result<AnswerResponse, ApiError> {
    let AnswerRequest {
        question,
        context,
        top_k,
        max_answer_len,
    } = request;
    let context: Arc<str> = context.into();
    let windows = Arc::new(state.tokenize(question, context.clone(), record).await?);
    let inferred = state
        .batcher
        .infer(windows.clone(), Priority::Interactive)
        .await?;
    record.inferred(&inferred);
    let logits = inferred.logits;
    let decode_config = DecodeConfig {
        max_answer_len: max_answer_len.unwrap_or(state.answer_len),
        ..DecodeConfig::default()
    };
    let with_null = state.with_null;
    let prediction = state
        .pool
        .run(move || {
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
