//! Start/end logits of one question's windows → ranked answers with character offsets.
//!
//! The search is `run_qa.py`'s `postprocess_qa_predictions`: for each window the top
//! `n_best` start and end tokens, pairs with end ≥ start, at most `max_answer_len` tokens,
//! both inside the context; score = start logit + end logit. Answers are then merged over
//! windows (the same span seen by two overlapping windows is kept once, with its best score)
//! and their text is always the exact substring of the context at the returned offsets.

use thiserror::Error;
use unicode_general_category::{get_general_category, GeneralCategory as Gc};

use crate::qa::features::Window;
use crate::qa::text::CharIndex;

/// Why logits could not be decoded: a caller bug or a model that does not fit its windows.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The number of logit rows differs from the number of windows.
    #[error("{windows} windows but {logits} rows of logits")]
    WindowCount {
        /// Windows of the question.
        windows: usize,
        /// Logit rows given.
        logits: usize,
    },
    /// A logit row is shorter than its window.
    #[error("window {window} has {tokens} tokens but only {logits} logits")]
    ShortLogits {
        /// Which window.
        window: usize,
        /// Its length.
        tokens: usize,
        /// Logits given.
        logits: usize,
    },
}

/// Search limits; defaults are those of `run_qa.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeConfig {
    /// Start and end candidates kept per window, and answers kept per question.
    pub n_best: usize,
    /// Longest answer, in tokens.
    pub max_answer_len: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            n_best: 20,
            max_answer_len: 30,
        }
    }
}

/// Start and end logits of one window (may be longer than the window: padding is ignored):
/// the one logits type of every flow, from the model backends to the decoder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowLogits {
    /// Logit of each token being the answer start.
    pub start: Vec<f32>,
    /// Logit of each token being the answer end.
    pub end: Vec<f32>,
}

/// One candidate answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RankedAnswer {
    /// Exact substring of the context at `start..end`.
    pub text: String,
    /// Character offset of the first character in the context.
    pub start: usize,
    /// Character offset one past the last character.
    pub end: usize,
    /// Start logit + end logit.
    pub score: f32,
    /// Start logit alone (v2.0 compares it with the null score).
    pub start_logit: f32,
    /// End logit alone.
    pub end_logit: f32,
    /// Softmax of `score` over the ranked answers (and the null answer, when included).
    pub probability: f32,
}

/// All we know about one question after decoding.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Best first, deduplicated by span, at most `n_best`.
    pub answers: Vec<RankedAnswer>,
    /// Smallest `[CLS]` start+end score over the windows: how strongly the model says
    /// "no answer" (SQuAD v2.0).
    pub null_score: f32,
}

impl Prediction {
    /// How much more the model believes "no answer" than its best span (the "null odds" of
    /// SQuAD v2.0); infinite when no span was possible.
    pub fn null_margin(&self) -> f32 {
        self.answers.first().map_or(f32::INFINITY, |best| {
            self.null_score - best.start_logit - best.end_logit
        })
    }

    /// The answer given: the best span, unless a v2.0 model's null score beats it by more than
    /// `null_threshold` (then none). `None` as threshold means SQuAD v1.1 rules (always a span
    /// when one was possible).
    pub fn chosen(&self, null_threshold: Option<f32>) -> Option<&RankedAnswer> {
        let best = self.answers.first()?;
        match null_threshold {
            Some(threshold) if self.null_margin() > threshold => None,
            _ => Some(best),
        }
    }

    /// The text of [`Self::chosen`], empty when it is none.
    pub fn chosen_text(&self, null_threshold: Option<f32>) -> &str {
        self.chosen(null_threshold).map_or("", |a| a.text.as_str())
    }
}

/// Decodes one question. `with_null` includes the null answer in the probabilities (models
/// trained on SQuAD v2.0).
pub fn decode(
    context: &str,
    windows: &[Window],
    logits: &[WindowLogits],
    config: &DecodeConfig,
    with_null: bool,
) -> Result<Prediction, DecodeError> {
    if windows.len() != logits.len() {
        return Err(DecodeError::WindowCount {
            windows: windows.len(),
            logits: logits.len(),
        });
    }
    let mut candidates: Vec<(usize, usize, f32, f32)> = vec![];
    let mut null_score = f32::INFINITY;
    for (w, (window, row)) in windows.iter().zip(logits).enumerate() {
        let tokens = window.len();
        if row.start.len() < tokens || row.end.len() < tokens {
            return Err(DecodeError::ShortLogits {
                window: w,
                tokens,
                logits: row.start.len().min(row.end.len()),
            });
        }
        let (start, end) = (&row.start[..tokens], &row.end[..tokens]);
        null_score = null_score.min(start[window.cls_index] + end[window.cls_index]);
        let best_ends = top_indices(end, config.n_best);
        for s in top_indices(start, config.n_best) {
            for &e in &best_ends {
                if e < s || e - s + 1 > config.max_answer_len {
                    continue;
                }
                if let (Some((cs, _)), Some((_, ce))) =
                    (window.context_spans[s], window.context_spans[e])
                {
                    candidates.push((cs, ce, start[s], end[e]));
                }
            }
        }
    }
    Ok(rank(context, candidates, null_score, config, with_null))
}

fn rank(
    context: &str,
    mut candidates: Vec<(usize, usize, f32, f32)>,
    null_score: f32,
    config: &DecodeConfig,
    with_null: bool,
) -> Prediction {
    candidates.sort_by(|a, b| (b.2 + b.3).total_cmp(&(a.2 + a.3)));
    let index = CharIndex::new(context);
    let mut answers: Vec<RankedAnswer> = Vec::with_capacity(config.n_best);
    for (start, end, start_logit, end_logit) in candidates {
        if answers.len() == config.n_best {
            break;
        }
        let end = extend_over_marks(context, &index, end);
        let Some(text) = index.slice(context, start, end).filter(|t| !t.is_empty()) else {
            continue;
        };
        if answers.iter().any(|a| a.start == start && a.end == end) {
            continue;
        }
        answers.push(RankedAnswer {
            text: text.to_string(),
            start,
            end,
            score: start_logit + end_logit,
            start_logit,
            end_logit,
            probability: 0.0,
        });
    }
    let null = (with_null && null_score.is_finite()).then_some(null_score);
    let max = answers
        .iter()
        .map(|a| a.score)
        .chain(null)
        .fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = answers
        .iter()
        .map(|a| a.score)
        .chain(null)
        .map(|s| (s - max).exp())
        .sum();
    for answer in &mut answers {
        answer.probability = (answer.score - max).exp() / total;
    }
    Prediction {
        answers,
        null_score,
    }
}

/// Indices of the `n` largest values, largest first (ties: lower index first).
fn top_indices(values: &[f32], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(n);
    order
}

/// Moves an answer's end past combining marks that belong to its last character, which the
/// tokenizer may have stripped (BERT removes accents) and so left outside every token span.
fn extend_over_marks(context: &str, index: &CharIndex, end: usize) -> usize {
    let mut end = end;
    while let Some(c) = index.byte(end).and_then(|b| context[b..].chars().next()) {
        let mark = matches!(
            get_general_category(c),
            Gc::NonspacingMark | Gc::SpacingMark | Gc::EnclosingMark
        ) || c == '\u{200d}'
            || ('\u{fe00}'..='\u{fe0f}').contains(&c);
        if !mark {
            break;
        }
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_span_is_the_highest_valid_start_plus_end() {
        let context = "Denver Broncos won";
        let w = Window::with_spans(&[
            None,
            None,
            Some((0, 6)),
            Some((7, 14)),
            Some((15, 18)),
            None,
        ]);
        // The best end (token 1) is a question token and must be ignored.
        let start = [0.0, 0.0, 5.0, 1.0, 0.0, 0.0];
        let end = [0.0, 9.0, 0.0, 4.0, 1.0, 0.0];
        let logits = [WindowLogits {
            start: start.to_vec(),
            end: end.to_vec(),
        }];
        let p = decode(context, &[w], &logits, &DecodeConfig::default(), false).unwrap();
        assert_eq!(p.chosen_text(None), "Denver Broncos");
        assert_eq!((p.answers[0].start, p.answers[0].end), (0, 14));
        assert_eq!(p.null_score, 0.0);
        let total: f32 = p.answers.iter().map(|a| a.probability).sum();
        assert!((total - 1.0).abs() < 1e-5);
    }

    #[test]
    fn spans_seen_by_two_windows_are_kept_once() {
        let context = "ab cd";
        let w1 = Window::with_spans(&[None, Some((0, 2)), Some((3, 5))]);
        let w2 = Window::with_spans(&[None, Some((3, 5))]);
        let (s1, e1) = ([0.0, 1.0, 3.0], [0.0, 1.0, 3.0]);
        let (s2, e2) = ([9.0, 2.0], [9.0, 2.0]);
        let logits = [
            WindowLogits {
                start: s1.to_vec(),
                end: e1.to_vec(),
            },
            WindowLogits {
                start: s2.to_vec(),
                end: e2.to_vec(),
            },
        ];
        let p = decode(context, &[w1, w2], &logits, &DecodeConfig::default(), true).unwrap();
        let spans: Vec<_> = p
            .answers
            .iter()
            .map(|a| (a.start, a.end, a.score))
            .collect();
        assert_eq!(spans, vec![(3, 5, 6.0), (0, 5, 4.0), (0, 2, 2.0)]);
        assert_eq!(p.null_score, 0.0);
        assert_eq!((p.chosen_text(Some(0.0)), p.null_margin()), ("cd", -6.0));
        assert_eq!(
            p.chosen(Some(-7.0)),
            None,
            "the null answer wins by more than 7"
        );
        assert_eq!(p.chosen_text(None), "cd", "v1.1 rules always answer");
        assert!(decode(context, &[], &logits, &DecodeConfig::default(), true).is_err());
    }

    #[test]
    fn answers_keep_combining_marks_and_respect_max_length() {
        let context = "cafe\u{301} x";
        let w = Window::with_spans(&[None, Some((0, 4)), Some((6, 7))]);
        let (s, e) = ([0.0, 5.0, 0.0], [0.0, 5.0, 9.0]);
        let logits = [WindowLogits {
            start: s.to_vec(),
            end: e.to_vec(),
        }];
        let config = DecodeConfig {
            n_best: 20,
            max_answer_len: 1,
        };
        let p = decode(context, &[w], &logits, &config, false).unwrap();
        assert_eq!(p.chosen_text(None), "cafe\u{301}");
        assert!(p.answers.iter().all(|a| a.text != "cafe\u{301} x"));
    }
}
