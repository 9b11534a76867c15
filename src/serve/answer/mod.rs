//! `POST /answer`: one question (or a list of them) about one passage or several → the
//! answer span, ranked across the passages, or an explicit "no answer".

mod request;
mod response;

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use tracing::instrument;

pub use self::request::{
    AnswerInput, AnswerRequest, IdentifiedPassage, PassageInput, RequestLimits, MAX_TOP_K,
};
pub use self::response::{AnswerOutput, AnswerResponse, AnswerSpan};
use super::batcher::Arrival;
use super::body::JsonBytes;
use super::error::{ApiError, ErrorBody};
use super::queue::Priority;
use super::trace::RequestRecord;
use super::AppState;
use crate::qa::decode::{decode, DecodeConfig, Prediction};
use crate::qa::features::Window;
use crate::qa::reader::{read, ReaderConfig};

/// Answer questions about passages.
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
    let parsing = state.batcher.expect(1);
    let input = state.pool.run(move || AnswerInput::parse(&body)).await??;
    let many = matches!(input, AnswerInput::Many(_));
    let mut requests = input.into_requests();
    let limit = state.config.max_client_batch_size;
    if requests.is_empty() || requests.len() > limit {
        return Err(ApiError::Validation(format!(
            "send 1 to {limit} questions per request, not {}",
            requests.len()
        )));
    }
    let limits = state.request_limits();
    let passages = requests
        .iter_mut()
        .map(|r| r.passages(&limits))
        .collect::<Result<Vec<_>, _>>()?;
    // The request's own permit counts as its first question.
    let _others = state.admit(requests.len() - 1)?;
    let mut pending = tokio::task::JoinSet::new();
    for (index, (request, passages)) in requests.into_iter().zip(passages).enumerate() {
        let (state, record) = (state.clone(), record.clone());
        let arrival = state.batcher.expect(1);
        pending.spawn(async move {
            let answer = answer_one(&state, request, passages, arrival, &record).await;
            (index, answer)
        });
    }
    drop(parsing);
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

/// One question: every passage's windows through the queue together, each passage decoded,
/// then read across passages. `arrival` tells the batcher its windows are coming.
async fn answer_one(
    state: &AppState,
    request: AnswerRequest,
    passages: request::Passages,
    arrival: Arrival,
    record: &RequestRecord,
) -> Result<AnswerResponse, ApiError> {
    let texts: Vec<Arc<str>> = passages.list.iter().map(|p| p.text.clone()).collect();
    let windows = state
        .tokenize(request.question, texts.clone(), record)
        .await?;
    let counts: Vec<usize> = windows.iter().map(Vec::len).collect();
    let flat: Vec<Window> = windows.into_iter().flatten().collect();
    let flat = Arc::new(flat);
    drop(arrival);
    let inferred = state
        .batcher
        .infer(flat.clone(), Priority::Interactive)
        .await?;
    record.inferred(&inferred);
    let decode_config = DecodeConfig {
        max_answer_len: request.max_answer_len.unwrap_or(state.answer_len),
        ..DecodeConfig::default()
    };
    let reader = ReaderConfig {
        scoring: state.scoring,
        null_threshold: state
            .null_threshold
            .filter(|_| request.handle_impossible_answer == Some(true)),
        // Checked to lie in 0..=1, where scores (f32) live.
        min_score: request.min_score.map(|m| m as f32),
        top_k: request.top_k.unwrap_or(1),
    };
    let with_null = state.null_threshold.is_some();
    let logits = inferred.logits;
    let reading = state
        .pool
        .run(move || {
            let mut predictions: Vec<Prediction> = Vec::with_capacity(texts.len());
            let mut next = 0;
            for (text, count) in texts.iter().zip(counts) {
                let range = next..next + count;
                next += count;
                predictions.push(
                    decode(
                        text,
                        &flat[range.clone()],
                        &logits[range],
                        &decode_config,
                        with_null,
                    )
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
                );
            }
            Ok::<_, ApiError>(read(&predictions, &reader))
        })
        .await??;
    Ok(response::respond(&reading, &passages, reader.top_k))
}
