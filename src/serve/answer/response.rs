//! The `/answer` response: the wire types and how a [`Reading`] becomes one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::request::Passages;
use crate::qa::reader::{PassageAnswer, Reading};

/// One answer span.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnswerSpan {
    /// The answer: exactly the passage's text at `start..end` (empty for no answer).
    pub answer: String,
    /// How likely the answer is right, 0 to 1. With a calibrated model (`/info`'s
    /// `score_calibration`) a probability that compares across passages, requests and
    /// models; otherwise `passage_probability`. For a no-answer: 1 − the best span's score.
    pub score: f32,
    /// The span's probability among the top spans of its own passage (every passage, even
    /// one without the answer, shares out 1: it does not compare across passages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passage_probability: Option<f32>,
    /// Character offset of the answer's first character in its passage.
    pub start: usize,
    /// Character offset one past the answer's last character.
    pub end: usize,
    /// Which of `contexts` the answer is in (only for `contexts` requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_index: Option<usize>,
    /// That passage's `id`, when it was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
}

/// The answer to one question.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnswerResponse {
    /// The best answer, or the no-answer (`answer: ""`, `start` = `end` = 0).
    #[serde(flatten)]
    pub best: AnswerSpan,
    /// True when the service answers nothing: every passage said "no answer" (SQuAD v2.0
    /// models) or the best span scored below `min_score`.
    pub no_answer: bool,
    /// The `top_k` best spans across the passages, best first (only when `top_k` > 1); with
    /// `no_answer`, the spans that were turned down.
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

/// The response for one question's reading.
pub fn respond(reading: &Reading, passages: &Passages, top_k: usize) -> AnswerResponse {
    let span = |a: &PassageAnswer| AnswerSpan {
        answer: a.answer.text.clone(),
        score: a.score,
        passage_probability: Some(a.answer.probability),
        start: a.answer.start,
        end: a.answer.end,
        context_index: passages.listed.then_some(a.passage),
        context_id: passages.list.get(a.passage).and_then(|p| p.id.clone()),
    };
    let best = match (reading.best(), reading.no_answer) {
        (Some(best), _) => span(best),
        (None, score) => AnswerSpan {
            answer: String::new(),
            score: score.unwrap_or(1.0),
            passage_probability: None,
            start: 0,
            end: 0,
            context_index: None,
            context_id: None,
        },
    };
    AnswerResponse {
        best,
        no_answer: reading.best().is_none(),
        answers: (top_k > 1).then(|| reading.answers.iter().map(span).collect()),
    }
}
