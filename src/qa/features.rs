//! Question + context → model windows: `[CLS] question [SEP] context-slice [SEP]`.
//!
//! Long contexts are cut into overlapping windows (`doc_stride` tokens of overlap) by the
//! tokenizer's own overflow mechanism, so the windows, token type ids and training labels are
//! identical to Hugging Face `run_qa.py` (`prepare_train_features` /
//! `prepare_validation_features`); a fixture test over SQuAD checks that.

use std::path::Path;

use thiserror::Error;
use tokenizers::{
    Encoding, PaddingParams, PostProcessor, Tokenizer, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use crate::qa::text::{is_python_whitespace, CharIndex};

/// Why windows could not be built.
#[derive(Debug, Error)]
pub enum FeatureError {
    /// `tokenizer.json` is missing or invalid.
    #[error("cannot load tokenizer {path}: {message}")]
    LoadTokenizer {
        /// The file.
        path: String,
        /// The tokenizer library's message.
        message: String,
    },
    /// The window sizes cannot work together.
    #[error("invalid window configuration: {0}")]
    Config(String),
    /// The tokenizer failed on this input.
    #[error("tokenization failed: {0}")]
    Tokenize(String),
}

/// Window geometry; defaults are those of BERT's SQuAD recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowConfig {
    /// Tokens per window, special tokens included.
    pub max_seq_len: usize,
    /// Tokens shared by consecutive windows of one context.
    pub doc_stride: usize,
    /// Longer questions are cut to this many tokens.
    pub max_query_len: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            max_seq_len: 384,
            doc_stride: 128,
            max_query_len: 64,
        }
    }
}

impl WindowConfig {
    /// Rejects geometries where a window could hold no new context token after the question
    /// and the overlap (the tokenizer would otherwise fail or loop).
    pub fn validate(&self, special_tokens: usize) -> Result<(), FeatureError> {
        let fixed = self.max_query_len + special_tokens;
        if self.max_query_len == 0 {
            return Err(FeatureError::Config(
                "max_query_len must be at least 1".into(),
            ));
        }
        if self.max_seq_len <= fixed + self.doc_stride {
            return Err(FeatureError::Config(format!(
                "max_seq_len ({}) must exceed max_query_len ({}) + {} special tokens + doc_stride ({})",
                self.max_seq_len, self.max_query_len, special_tokens, self.doc_stride
            )));
        }
        Ok(())
    }
}

/// One model input: a question with one slice of its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Token ids, unpadded.
    pub input_ids: Vec<u32>,
    /// 0 for `[CLS] question [SEP]`, 1 for `context [SEP]`.
    pub token_type_ids: Vec<u32>,
    /// Character span in the context of each context token; `None` for question and special
    /// tokens, which can never be part of an answer.
    pub context_spans: Vec<Option<(usize, usize)>>,
    /// Position of `[CLS]`: the "no answer" label and the null score.
    pub cls_index: usize,
}

impl Window {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// True for a window without tokens (never produced by [`Featurizer`]).
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Training labels (start token, end token) for an answer given as a character span, as
    /// `run_qa.py` computes them: the answer's tokens when it lies wholly inside this window's
    /// context, otherwise (and for no answer) the `[CLS]` index.
    pub fn label(&self, answer: Option<(usize, usize)>) -> (usize, usize) {
        let cls = (self.cls_index, self.cls_index);
        let Some((start_char, end_char)) = answer else {
            return cls;
        };
        let first = self.context_spans.iter().position(Option::is_some);
        let last = self.context_spans.iter().rposition(Option::is_some);
        let (Some(first), Some(last)) = (first, last) else {
            return cls;
        };
        let span = |i: usize| self.context_spans[i].unwrap_or((0, 0));
        if !(span(first).0 <= start_char && span(last).1 >= end_char) {
            return cls;
        }
        // Same walks as run_qa.py: last context token starting at or before the answer start,
        // first context token (from the right) whose end reaches the answer end.
        let mut start = first;
        while start <= last && span(start).0 <= start_char {
            start += 1;
        }
        let mut end = last;
        while end > first && span(end).1 >= end_char {
            end -= 1;
        }
        if span(end).1 >= end_char {
            return (start - 1, end);
        }
        (start - 1, end + 1)
    }
}

/// Turns (question, context) pairs into windows with one tokenizer and one geometry.
#[derive(Clone)]
pub struct Featurizer {
    windows_tokenizer: Tokenizer,
    question_tokenizer: Tokenizer,
    config: WindowConfig,
}

impl Featurizer {
    /// Loads `tokenizer.json` (any BERT-style tokenizer with a pair template) and checks the
    /// geometry against it. Padding and truncation stored in the file are replaced by ours.
    pub fn from_file(path: &Path, config: WindowConfig) -> Result<Self, FeatureError> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| FeatureError::LoadTokenizer {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::new(tokenizer, config)
    }

    /// Wraps an already loaded tokenizer.
    pub fn new(mut tokenizer: Tokenizer, config: WindowConfig) -> Result<Self, FeatureError> {
        let special = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true));
        config.validate(special)?;
        tokenizer.with_padding(None::<PaddingParams>);
        let tokenizer_error = |e: tokenizers::Error| FeatureError::Config(e.to_string());
        let mut question_tokenizer = tokenizer.clone();
        question_tokenizer
            .with_truncation(None)
            .map_err(tokenizer_error)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: config.max_seq_len,
                strategy: TruncationStrategy::OnlySecond,
                stride: config.doc_stride,
            }))
            .map_err(tokenizer_error)?;
        Ok(Self {
            windows_tokenizer: tokenizer,
            question_tokenizer,
            config,
        })
    }

    /// The id batches are padded with: `[PAD]`, or 0 (BERT's) if the vocabulary lacks it.
    pub fn pad_id(&self) -> u32 {
        self.windows_tokenizer.token_to_id("[PAD]").unwrap_or(0)
    }

    /// All windows of one question over one context, in context order.
    pub fn windows(&self, question: &str, context: &str) -> Result<Vec<Window>, FeatureError> {
        let question = self.fit_question(question.trim_start_matches(is_python_whitespace))?;
        let mut encoding = self
            .windows_tokenizer
            .encode_char_offsets((question, context), true)
            .map_err(|e| FeatureError::Tokenize(e.to_string()))?;
        let overflowing = encoding.take_overflowing();
        Ok(std::iter::once(encoding)
            .chain(overflowing)
            .map(|e| to_window(&e))
            .collect())
    }

    /// Cuts the question to `max_query_len` tokens (at a token boundary of the text).
    fn fit_question<'q>(&self, question: &'q str) -> Result<&'q str, FeatureError> {
        let mut question = question;
        loop {
            let encoding = self
                .question_tokenizer
                .encode_char_offsets(question, false)
                .map_err(|e| FeatureError::Tokenize(e.to_string()))?;
            if encoding.len() <= self.config.max_query_len {
                return Ok(question);
            }
            // Cut where the first token that does not fit starts. One character can become
            // several tokens (an Indic vowel sign splits in two after accent stripping); such
            // tokens go together, so every pass shortens the text.
            let cut_char = encoding.get_offsets()[self.config.max_query_len].0;
            let index = CharIndex::new(question);
            let cut = index.byte(cut_char).unwrap_or(question.len());
            if cut >= question.len() {
                return Err(FeatureError::Tokenize(
                    "question cannot be cut to max_query_len tokens".into(),
                ));
            }
            question = &question[..cut];
        }
    }
}

fn to_window(encoding: &Encoding) -> Window {
    let sequence_ids = encoding.get_sequence_ids();
    let context_spans = encoding
        .get_offsets()
        .iter()
        .zip(&sequence_ids)
        .map(|(offsets, seq)| (*seq == Some(1)).then_some(*offsets))
        .collect();
    let special = encoding.get_special_tokens_mask();
    Window {
        input_ids: encoding.get_ids().to_vec(),
        token_type_ids: encoding.get_type_ids().to_vec(),
        context_spans,
        cls_index: special.iter().position(|&s| s == 1).unwrap_or(0),
    }
}

#[cfg(test)]
impl Window {
    /// A window with these context spans and `[CLS]` at 0, for tests of span logic (ids and
    /// segment ids do not matter to it).
    pub(crate) fn with_spans(spans: &[Option<(usize, usize)>]) -> Self {
        Window {
            input_ids: vec![1; spans.len()],
            token_type_ids: vec![0; spans.len()],
            context_spans: spans.to_vec(),
            cls_index: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_must_leave_room_for_context() {
        let ok = WindowConfig::default();
        assert!(ok.validate(3).is_ok());
        let tight = WindowConfig {
            max_seq_len: 195,
            doc_stride: 128,
            max_query_len: 64,
        };
        assert!(tight.validate(3).is_err());
        let zero = WindowConfig {
            max_query_len: 0,
            ..ok
        };
        assert!(zero.validate(3).is_err());
    }

    #[test]
    fn labels_point_at_answer_tokens_or_cls() {
        // [CLS] q [SEP] "ab" "cd" "ef" [SEP] over context "ab cd ef"
        let w = Window::with_spans(&[
            None,
            None,
            None,
            Some((0, 2)),
            Some((3, 5)),
            Some((6, 8)),
            None,
        ]);
        assert_eq!(w.label(Some((3, 5))), (4, 4));
        assert_eq!(w.label(Some((0, 8))), (3, 5));
        assert_eq!(w.label(Some((4, 7))), (4, 5));
        assert_eq!(w.label(Some((6, 9))), (0, 0));
        assert_eq!(w.label(None), (0, 0));
        assert_eq!(
            Window::with_spans(&[None, None]).label(Some((0, 1))),
            (0, 0)
        );
    }
}
