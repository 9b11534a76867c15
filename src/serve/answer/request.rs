//! The `/answer` request: its wire types (from which the OpenAPI document is generated, so
//! the two cannot drift) and the checks the schema cannot state.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;

use super::super::body::parse_json;
use super::super::error::ApiError;
use crate::qa::text::is_ecmascript_whitespace;

/// Most ranked answers a request may ask for (the decoder's n-best).
pub const MAX_TOP_K: usize = 20;

/// One question about one passage (`context`) or several (`contexts`, e.g. what a
/// retriever found): give exactly one of the two.
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
    #[serde(default, deserialize_with = "crate::qa::numbers::present")]
    #[schema(
        nullable = false,
        example = "The American Football Conference (AFC) champion Denver Broncos defeated the National Football Conference (NFC) champion Carolina Panthers 24-10.",
        min_length = 1,
        pattern = "\\S"
    )]
    pub context: Option<String>,
    /// Several passages, answered together: 1 to `--max-contexts` strings or `{id, text}`
    /// objects. The answer names the passage it came from (`context_index`, `context_id`).
    #[serde(default, deserialize_with = "crate::qa::numbers::present")]
    #[schema(nullable = false, min_items = 1)]
    pub contexts: Option<Vec<PassageInput>>,
    /// How many ranked answers to return (1 to 20); above 1 the response has `answers`,
    /// ranked across the passages.
    #[serde(default, deserialize_with = "crate::qa::numbers::optional_whole")]
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: Option<usize>,
    /// Longest answer in tokens, 1 to the window length (default: the model's).
    #[serde(default, deserialize_with = "crate::qa::numbers::optional_whole")]
    #[schema(minimum = 1)]
    pub max_answer_len: Option<usize>,
    /// Answer nothing (`no_answer: true`) when the best answer's `score` is below this.
    // A double, so the bounds are checked on the number sent: read as an f32,
    // 1.0000000000000002 would round to 1 and pass.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_score: Option<f64>,
    /// SQuAD v2.0 models: let the model's trained null answer say "not here", past the
    /// threshold tuned on SQuAD v2.0 dev (off by default, as in the HF pipeline: that
    /// threshold also turns down many answerable questions); v1.1 models have none, and
    /// `true` is refused.
    #[serde(default)]
    pub handle_impossible_answer: Option<bool>,
}

/// A passage: its text, or its text with the caller's id for it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PassageInput {
    /// The text alone (not only white space, at most `--max-context-chars` characters).
    Text(String),
    /// The text with an id, returned as `context_id`.
    Identified(IdentifiedPassage),
}

/// A passage with the caller's id.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifiedPassage {
    /// The caller's name for the passage (a document id, a URL).
    pub id: String,
    /// The text (not only white space, at most `--max-context-chars` characters).
    #[schema(min_length = 1, pattern = "\\S")]
    pub text: String,
}

/// The passages of one question as the handler uses them.
#[derive(Debug, Clone)]
pub struct Passages {
    /// In the request's order.
    pub list: Vec<Passage>,
    /// Whether they came as `contexts` (so answers name their passage).
    pub listed: bool,
}

/// A passage as the handler uses it.
#[derive(Debug, Clone)]
pub struct Passage {
    /// The text, shared with the windows made from it.
    pub text: Arc<str>,
    /// The caller's id, when given.
    pub id: Option<String>,
}

// `untagged` gives the schema the same one-or-list shape as the parse below.
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
    pub fn into_requests(self) -> Vec<AnswerRequest> {
        match self {
            Self::One(request) => vec![request],
            Self::Many(requests) => requests,
        }
    }
}

/// The server's bounds on a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// `--max-context-chars`.
    pub max_context_chars: usize,
    /// `--max-contexts`.
    pub max_contexts: usize,
    /// The window length.
    pub max_answer_len: usize,
    /// Whether the model has a trained null answer.
    pub has_null: bool,
}

impl AnswerRequest {
    /// Checks what the schema states and what it cannot (one of `context` or `contexts`),
    /// and hands out the passages.
    pub fn passages(&mut self, limits: &RequestLimits) -> Result<Passages, ApiError> {
        if !has_content(&self.question) {
            return Err(invalid("question is empty or only white space"));
        }
        self.check_options(limits)?;
        let from_list = self.contexts.is_some();
        let passages = match (self.context.take(), self.contexts.take()) {
            (Some(text), None) => vec![Passage::from(PassageInput::Text(text))],
            (None, Some(list)) => list.into_iter().map(Passage::from).collect(),
            (Some(_), Some(_)) => return Err(invalid("give context or contexts, not both")),
            (None, None) => return Err(invalid("give context (a string) or contexts (a list)")),
        };
        if passages.is_empty() || passages.len() > limits.max_contexts {
            return Err(ApiError::Validation(format!(
                "send 1 to {} contexts per question, not {}",
                limits.max_contexts,
                passages.len()
            )));
        }
        for (i, passage) in passages.iter().enumerate() {
            let name = if !from_list {
                "context".to_string()
            } else {
                format!("contexts[{i}]")
            };
            check_passage(&passage.text, &name, limits.max_context_chars)?;
        }
        Ok(Passages {
            list: passages,
            listed: from_list,
        })
    }

    fn check_options(&self, limits: &RequestLimits) -> Result<(), ApiError> {
        if let Some(k) = self.top_k.filter(|k| !(1..=MAX_TOP_K).contains(k)) {
            return Err(ApiError::Validation(format!(
                "top_k must be 1 to {MAX_TOP_K}, not {k}"
            )));
        }
        let longest = limits.max_answer_len;
        if let Some(n) = self.max_answer_len.filter(|n| !(1..=longest).contains(n)) {
            return Err(ApiError::Validation(format!(
                "max_answer_len must be 1 to {longest}, not {n}"
            )));
        }
        if let Some(m) = self.min_score.filter(|m| !(0.0..=1.0).contains(m)) {
            return Err(ApiError::Validation(format!(
                "min_score must be 0 to 1, not {m}"
            )));
        }
        if self.handle_impossible_answer == Some(true) && !limits.has_null {
            return Err(invalid(
                "this model was trained on SQuAD v1.1 and has no null answer; use min_score to abstain",
            ));
        }
        Ok(())
    }
}

impl From<PassageInput> for Passage {
    fn from(input: PassageInput) -> Self {
        match input {
            PassageInput::Text(text) => Self {
                text: text.into(),
                id: None,
            },
            PassageInput::Identified(p) => Self {
                text: p.text.into(),
                id: Some(p.id),
            },
        }
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::Validation(message.into())
}

fn check_passage(text: &str, name: &str, max_chars: usize) -> Result<(), ApiError> {
    if !has_content(text) {
        return Err(ApiError::Validation(format!(
            "{name} is empty or only white space"
        )));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        // 422, not 413: the body fits, a field breaks the document's `maxLength`.
        return Err(ApiError::Validation(format!(
            "{name} has {chars} characters; the limit is {max_chars}"
        )));
    }
    Ok(())
}

/// True when `text` matches the published `\S` pattern (a character that is not ECMAScript
/// white space), so the server accepts exactly what the OpenAPI document allows.
fn has_content(text: &str) -> bool {
    text.chars().any(|c| !is_ecmascript_whitespace(c))
}
